//! A throwaway PostgreSQL cluster for integration tests.
//!
//! `PgCluster::start()` runs Debian's `initdb` + `pg_ctl` (newest version under
//! `/usr/lib/postgresql/*/bin`) in a fresh directory under the system temp dir, listening on
//! a free TCP port of 127.0.0.1 only (trust authentication, user `postgres`), with its unix
//! socket inside that directory. Dropping the value stops the server and removes the directory.
//!
//! The server refuses to run as root, so when the tests run as root, `initdb` and `pg_ctl`
//! run as the `postgres` OS user (`runuser -u postgres --`), which owns the directory. The
//! clients (`psql`, `pg_isready`) only talk TCP and run as the current user.
//!
//! Several test binaries (and several tests of one binary) can each start their own cluster
//! at the same time: directories are unique, and a port taken between probing it and the
//! server binding it is retried with another one. A cluster left behind by a killed test
//! process is stopped and removed by the next `start()`.
//!
//! Only std is used, and the port allocator of `server.rs`.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::server::free_port;

const DIR_PREFIX: &str = "write-perfetto-pg-";
const OS_USER: &str = "postgres";
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const PORT_ATTEMPTS: usize = 8;

pub struct PgCluster {
    /// Everything lives here: `data/` (the cluster), `server.log`, the unix socket.
    base: PathBuf,
    bin: PathBuf,
    port: u16,
    /// Run server-side tools as the `postgres` OS user (we are root).
    as_postgres: bool,
    running: bool,
}

impl PgCluster {
    /// Starts a fresh cluster (initdb + pg_ctl from /usr/lib/postgresql/*/bin, newest version
    /// found) in a temp dir, on a free port on 127.0.0.1, and returns once it accepts
    /// connections.
    pub fn start() -> PgCluster {
        let bin = find_bin_dir();
        let as_postgres = is_root();
        reap_stale_clusters(&bin, as_postgres);

        let base = make_base_dir(as_postgres);
        let mut cluster = PgCluster {
            base,
            bin,
            port: 0,
            as_postgres,
            running: false,
        };
        cluster.initdb();
        cluster.start_server();
        cluster.wait_ready();
        cluster
    }

    /// Creates a new empty database and returns its connection URL, e.g.
    /// postgres://postgres@127.0.0.1:PORT/NAME
    pub fn create_database(&self, name: &str) -> String {
        assert!(
            !name.is_empty()
                && name.len() <= 63
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "invalid database name {name:?}: use [a-z0-9_]+ (at most 63 bytes)"
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(name)
    }

    /// The connection URL of database `name` (which need not exist yet).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://{OS_USER}@127.0.0.1:{}/{name}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the cluster (`data/`), its log (`server.log`) and unix socket.
    pub fn dir(&self) -> &Path {
        &self.base
    }

    /// Runs `sql` (one or more statements) in database `db` with `psql -X -At -v
    /// ON_ERROR_STOP=1 -c`, and returns its stdout (unaligned, tuples only: one row a line,
    /// columns separated by `|`). Panics on any error, with psql's stderr.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.run_psql(db, &[OsStr::new("-c"), OsStr::new(sql)])
    }

    /// Runs the SQL file at `path` in database `db` with `psql -X -v ON_ERROR_STOP=1 -f`, as
    /// one transaction. Panics on any error, with psql's stderr.
    pub fn psql_file(&self, db: &str, path: &Path) -> String {
        self.run_psql(db, &[OsStr::new("-1"), OsStr::new("-f"), path.as_os_str()])
    }

    /// The server log so far (empty if unreadable).
    pub fn server_log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Stops the server (immediately, `pg_ctl stop -m immediate`) — also called from Drop.
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        self.running = false;
        let data = self.data_dir();
        let out = self
            .server_cmd("pg_ctl")
            .args(["stop", "-w", "-t", "30", "-m", "immediate", "-D"])
            .arg(&data)
            .output();
        match out {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "pg_ctl stop failed for {}: {}{}",
                data.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("could not run pg_ctl stop for {}: {e}", data.display()),
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.base.join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.base.join("server.log")
    }

    /// A command for a server-side tool (`initdb`, `pg_ctl`), run as `postgres` when we are
    /// root, from the cluster directory (the postgres user may not be able to enter ours).
    fn server_cmd(&self, tool: &str) -> Command {
        server_cmd(&self.bin, tool, self.as_postgres, &self.base)
    }

    fn initdb(&self) {
        let out = self
            .server_cmd("initdb")
            .args([
                "-A",
                "trust",
                "-U",
                OS_USER,
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "-D",
            ])
            .arg(self.data_dir())
            .output()
            .unwrap_or_else(|e| panic!("could not run initdb: {e}"));
        check(&out, "initdb");

        // Settings for a disposable, test-only server. The port is given on the command line.
        let conf = format!(
            "\n# write-perfetto test cluster\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             shared_buffers = 32MB\n\
             max_connections = 200\n\
             logging_collector = off\n\
             log_min_messages = warning\n",
            self.base.display().to_string().replace('\'', "''")
        );
        let conf_path = self.data_dir().join("postgresql.conf");
        let mut text = fs::read_to_string(&conf_path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", conf_path.display()));
        text.push_str(&conf);
        fs::write(&conf_path, text)
            .unwrap_or_else(|e| panic!("writing {}: {e}", conf_path.display()));
    }

    /// `pg_ctl start` on a free port; retries with another port when the one probed was
    /// taken by someone else in the meantime.
    fn start_server(&mut self) {
        let mut last_failure = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let log_len_before = fs::metadata(self.log_path()).map(|m| m.len()).unwrap_or(0);
            let out = self
                .server_cmd("pg_ctl")
                .args(["start", "-w", "-t", "30", "-D"])
                .arg(self.data_dir())
                .arg("-l")
                .arg(self.log_path())
                .arg("-o")
                .arg(format!("-p {port}"))
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| panic!("could not run pg_ctl start: {e}"));
            if out.status.success() {
                self.port = port;
                self.running = true;
                return;
            }
            let log = self.server_log();
            let new_log = log.get(log_len_before as usize..).unwrap_or(&log);
            last_failure = format!(
                "pg_ctl start on port {port} failed ({}):\n{}{}\n--- server log ---\n{new_log}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if !(new_log.contains("could not bind") || new_log.contains("already in use")) {
                break;
            }
            // Port race lost: make sure nothing is left running, then try another port.
            let _ = self
                .server_cmd("pg_ctl")
                .args(["stop", "-m", "immediate", "-D"])
                .arg(self.data_dir())
                .output();
        }
        panic!(
            "could not start the test PostgreSQL cluster in {}: {last_failure}",
            self.base.display()
        );
    }

    /// Bounded wait until a client can connect over TCP and run a query.
    fn wait_ready(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let ready = client_cmd(&self.bin, "pg_isready")
                .args([
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    OS_USER,
                    "-d",
                    "postgres",
                    "-p",
                ])
                .arg(self.port.to_string())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
                && client_cmd(&self.bin, "psql")
                    .args([
                        "-X",
                        "-At",
                        "-h",
                        "127.0.0.1",
                        "-U",
                        OS_USER,
                        "-d",
                        "postgres",
                    ])
                    .arg("-p")
                    .arg(self.port.to_string())
                    .args(["-c", "select 1"])
                    .output()
                    .map(|o| o.status.success() && o.stdout.starts_with(b"1"))
                    .unwrap_or(false);
            if ready {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "test PostgreSQL cluster on 127.0.0.1:{} not ready after {:?}\n--- server log ({}) ---\n{}",
                    self.port,
                    READY_TIMEOUT,
                    self.log_path().display(),
                    self.server_log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn run_psql(&self, db: &str, args: &[&OsStr]) -> String {
        let out = client_cmd(&self.bin, "psql")
            .args([
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                OS_USER,
            ])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-d")
            .arg(db)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("could not run psql: {e}"));
        check(&out, &format!("psql {args:?} on database {db}"));
        String::from_utf8(out.stdout).expect("psql output is not UTF-8")
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop();
        if let Err(e) = fs::remove_dir_all(&self.base) {
            eprintln!("could not remove {}: {e}", self.base.display());
        }
    }
}

/// `/usr/lib/postgresql/<newest version>/bin`.
fn find_bin_dir() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let newest = fs::read_dir(root)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file()
                && bin.join("pg_ctl").is_file()
                && bin.join("psql").is_file())
            .then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version);
    match newest {
        Some((_, bin)) => bin,
        None => panic!(
            "no PostgreSQL server binaries found in /usr/lib/postgresql/*/bin: these tests need \
             Debian's `postgresql` package (`apt-get install -y postgresql`; `.ci/run` installs it)"
        ),
    }
}

/// Whether this process runs as root (the owner of /proc/self is our effective uid).
/// Whether the tests run as root (who ignores file permissions).
pub fn is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// A command with the PG* environment variables removed (so a developer's PGHOST, PGPORT,
/// PGDATA, ... cannot redirect it) and a bounded connect timeout.
fn base_cmd(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("PG")) {
            cmd.env_remove(key);
        }
    }
    cmd.env("PGCONNECT_TIMEOUT", "5");
    cmd
}

fn client_cmd(bin: &Path, tool: &str) -> Command {
    let mut cmd = base_cmd(bin.join(tool));
    cmd.stdin(Stdio::null());
    cmd
}

fn server_cmd(bin: &Path, tool: &str, as_postgres: bool, cwd: &Path) -> Command {
    let mut cmd = if as_postgres {
        let mut cmd = base_cmd("runuser");
        cmd.args(["-u", OS_USER, "--"]).arg(bin.join(tool));
        cmd
    } else {
        base_cmd(bin.join(tool))
    };
    cmd.current_dir(cwd).stdin(Stdio::null());
    cmd
}

fn check(out: &Output, what: &str) {
    if !out.status.success() {
        panic!(
            "{what} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Creates `<temp>/write-perfetto-pg-<pid>-<n>-<nanos>`, owned by `postgres` when we are root.
fn make_base_dir(as_postgres: bool) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // Root's TMPDIR may be a directory the postgres user cannot enter: use /tmp then.
    let parent = if as_postgres {
        PathBuf::from("/tmp")
    } else {
        std::env::temp_dir()
    };
    let base = parent.join(format!("{DIR_PREFIX}{}-{n}-{nanos}", std::process::id()));
    fs::create_dir(&base).unwrap_or_else(|e| panic!("creating {}: {e}", base.display()));
    if as_postgres {
        let out = base_cmd("chown")
            .arg(format!("{OS_USER}:"))
            .arg(&base)
            .output()
            .unwrap_or_else(|e| panic!("could not run chown: {e}"));
        if !out.status.success() {
            let _ = fs::remove_dir(&base);
            check(
                &out,
                &format!(
                    "chown {OS_USER}: {} (does the `{OS_USER}` user exist?)",
                    base.display()
                ),
            );
        }
    }
    // The server wants its socket directory private enough; 0700 also keeps others out.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&base, fs::Permissions::from_mode(0o700))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", base.display()));
    base
}

/// Stops and removes clusters whose creating process no longer exists (a test binary that
/// was killed before its `Drop` ran leaves its postmaster running).
fn reap_stale_clusters(bin: &Path, as_postgres: bool) {
    let parent = if as_postgres {
        PathBuf::from("/tmp")
    } else {
        std::env::temp_dir()
    };
    let Ok(entries) = fs::read_dir(&parent) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let dir = entry.path();
        let data = dir.join("data");
        if data.join("postmaster.pid").exists() {
            let _ = server_cmd(bin, "pg_ctl", as_postgres, &dir)
                .args(["stop", "-w", "-t", "10", "-m", "immediate", "-D"])
                .arg(&data)
                .output();
        }
        let _ = fs::remove_dir_all(&dir);
    }
}
