//! A throwaway S3-compatible server (moto's `moto_server`) for integration tests.
//!
//! `S3Server::start()` runs `moto_server -H 127.0.0.1 -p PORT` on a free port of 127.0.0.1,
//! returns once it answers HTTP, and kills it on Drop. moto keeps everything in memory: a
//! stopped server has lost its buckets, and [`S3Server::restart`] brings up an empty one on
//! the same port.
//!
//! Environment variables are process-global, so this module never sets any: child processes
//! get the `AWS_*` settings through [`S3Server::configure`] (`Command::envs`), and in-process
//! uploads use a store built with explicit settings ([`S3Server::store`]).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const PORT_ATTEMPTS: usize = 5;
const INSTALL_HINT: &str = "install moto: pip install 'moto[server]'";

/// Credentials moto accepts (it does not check them) and the region it defaults to.
const ACCESS_KEY_ID: &str = "testing";
const SECRET_ACCESS_KEY: &str = "testing";
const REGION: &str = "us-east-1";

pub struct S3Server {
    child: Option<Child>,
    port: u16,
    /// moto's output, for diagnostics.
    log_dir: tempfile::TempDir,
}

impl S3Server {
    /// Starts moto on a free port of 127.0.0.1 and waits until it answers.
    pub fn start() -> S3Server {
        let mut server = S3Server {
            child: None,
            port: 0,
            log_dir: tempfile::tempdir().expect("temp dir"),
        };
        let mut last_failure = String::new();
        // A port taken between probing it and moto binding it: try another one.
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port();
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(e) => {
                    last_failure = e;
                    server.stop();
                }
            }
        }
        panic!("could not start moto_server: {last_failure}");
    }

    /// Stops the server (its content is lost) and starts an empty one on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return,
                Err(e) if Instant::now() >= deadline => {
                    panic!("could not restart moto_server on port {}: {e}", self.port)
                }
                Err(_) => {
                    self.stop();
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    /// Kills the server; its port then refuses connections. Also called from Drop.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The settings a client of this server needs, as `AWS_*` environment variables.
    pub fn client_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_ENDPOINT", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    /// Points a child process at this server: removes every inherited `AWS_*` variable (a
    /// developer's profile must not redirect it) and sets [`S3Server::client_env`].
    pub fn configure<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        for (key, _) in std::env::vars_os() {
            if key.to_str().is_some_and(|k| k.starts_with("AWS_")) {
                command.env_remove(key);
            }
        }
        command.envs(self.client_env())
    }

    /// Creates a bucket (a plain HTTP `PUT /bucket`: moto checks no signature).
    pub fn create_bucket(&self, bucket: &str) {
        let (status, body) = http(self.port, "PUT", &format!("/{bucket}"))
            .unwrap_or_else(|e| panic!("PUT /{bucket} on moto: {e}"));
        assert_eq!(status, 200, "creating bucket {bucket}: {body}");
    }

    /// An object store on `bucket`, configured explicitly (no environment variables).
    pub fn store(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        Arc::new(
            AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_endpoint(self.endpoint())
                .with_allow_http(true)
                .with_region(REGION)
                .with_access_key_id(ACCESS_KEY_ID)
                .with_secret_access_key(SECRET_ACCESS_KEY)
                .build()
                .expect("S3 store for moto"),
        )
    }

    /// Uploads every file under `dir` to `bucket`, keyed `prefix/<path relative to dir>`.
    /// Returns how many files were uploaded.
    pub async fn upload_dir(&self, bucket: &str, prefix: &str, dir: &Path) -> usize {
        let store = self.store(bucket);
        let mut count = 0;
        for file in files_under(dir) {
            let relative = file.strip_prefix(dir).unwrap();
            let key = format!(
                "{}/{}",
                prefix.trim_matches('/'),
                relative.to_str().expect("UTF-8 path")
            );
            let data = std::fs::read(&file).unwrap();
            store
                .put(&ObjectPath::from(key.as_str()), data.into())
                .await
                .unwrap_or_else(|e| panic!("uploading {key}: {e}"));
            count += 1;
        }
        count
    }

    /// The keys of `bucket` under `prefix`, sorted.
    pub async fn list(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let store = self.store(bucket);
        let prefix = ObjectPath::from(prefix);
        let mut keys: Vec<String> = store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .unwrap_or_else(|e| panic!("listing {bucket}/{prefix}: {e}"));
        keys.sort();
        keys
    }

    /// moto's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.log_dir.path().join("moto.log")
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("moto log file");
        let mut command = moto_command();
        let child = command
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("could not run {command:?} ({INSTALL_HINT}): {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return Err(format!(
                    "moto_server on port {} exited ({status}):\n{}",
                    self.port,
                    self.log()
                ));
            }
            if http(self.port, "GET", "/").is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "moto_server on port {} not ready after {READY_TIMEOUT:?}:\n{}",
                    self.port,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `moto_server`, or `python3 -m moto.server` when the script is not on PATH (a Python
/// installation whose scripts directory is not); panics with the install hint without moto.
fn moto_command() -> Command {
    let on_path = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| dir.join("moto_server").is_file())
    });
    if on_path {
        return Command::new("moto_server");
    }
    let module = Command::new("python3")
        .args(["-c", "import moto.server"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !module {
        panic!("moto_server is not on PATH and python3 cannot import moto.server: {INSTALL_HINT}");
    }
    let mut command = Command::new("python3");
    command.args(["-m", "moto.server"]);
    command
}

/// One HTTP/1.1 request without a body; returns the status and the body.
fn http(port: u16, method: &str, path: &str) -> Result<(u16, String), String> {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .and_then(|_| stream.set_write_timeout(Some(Duration::from_secs(10))))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("send: {e}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| format!("receive: {e}"))?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    files
}

/// A TCP port of 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0 to find a free port")
}
