//! The scenarios every object store's tests run (`tests/s3.rs`, `tests/gcs.rs`,
//! `tests/azure.rs`, `tests/faults.rs`): a PostgreSQL lake whose block payloads are in the store
//! exports the same bytes as the lake on local disk, cold and warm, with its partitions kept in
//! the store or in `--cache DIR`; a store that stops before or during a run makes it exit 5
//! naming what could not be reached, and the next run, the store back, gives the same bytes.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use write_perfetto::lake::{Lake, LakeLocation, MetadataDb};
use write_perfetto::partitions::catalog::Catalog;

use super::lake::{
    ROW_GROUP_WINDOW, copy_to_postgres, entries, fixture_copy, reference_trace, run, runtime,
    succeeded, summary, synthetic_lake, write_perfetto,
};
use super::pg::PgCluster;
use super::runs::{RUN_TIMEOUT, assert_mentions, error_line, spawn, wait_bounded, wait_until};
use super::stores::{StoreServer, list, load_dir};

pub const BUCKET: &str = "micromegas-lake";
/// Where the lake lives in the bucket: payloads under `lake/blobs/`, partitions under
/// `lake/write-perfetto/partitions/`.
pub const PREFIX: &str = "lake";
/// The fixture lake's main process.
pub const MAIN_PROCESS: &str = "9311096b-e5b5-4742-a12e-f1306bfed76d";

/// A PostgreSQL lake (the metadata of an embedded lake) whose payloads are in `S`'s store.
pub struct StoreLake<S: StoreServer> {
    pub server: S,
    /// Kept running for the lake's lifetime.
    _cluster: PgCluster,
    pub url: String,
    pub blobs_url: String,
    /// The embedded lake: the payloads uploaded, the reference exports.
    pub dir: tempfile::TempDir,
}

impl<S: StoreServer> StoreLake<S> {
    /// The committed fixture lake.
    pub fn fixture(database: &str) -> Self {
        Self::new(database, fixture_copy())
    }

    /// A synthetic lake big enough for a run to last a while; returns its process id too.
    pub fn synthetic(database: &str) -> (Self, String) {
        let dir = tempfile::tempdir().unwrap();
        let id = synthetic_lake(dir.path());
        (Self::new(database, dir), id)
    }

    fn new(database: &str, dir: tempfile::TempDir) -> Self {
        let server = S::start();
        let cluster = PgCluster::start();
        let url = cluster.create_database(database);
        runtime().block_on(copy_to_postgres(dir.path(), &url));
        let lake = StoreLake {
            blobs_url: server.url(BUCKET, PREFIX),
            server,
            _cluster: cluster,
            url,
            dir,
        };
        lake.load_blobs();
        lake
    }

    /// Creates the bucket and uploads the block payloads (after a restart, the store is empty).
    pub fn load_blobs(&self) -> usize {
        let blobs = self.dir.path().join("blobs");
        let uploaded = load_dir(&self.server, BUCKET, &format!("{PREFIX}/blobs"), &blobs);
        assert!(uploaded > 0);
        uploaded
    }

    /// The binary pointed at this lake and its store: `args`, then `--lake`, `--blobs`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = self.bare_command(args);
        self.server.configure(&mut command);
        command
    }

    /// [`StoreLake::command`] without the store's settings.
    pub fn bare_command(&self, args: &[&str]) -> Command {
        let mut command = write_perfetto();
        command
            .args(args)
            .args(["--lake", &self.url, "--blobs", &self.blobs_url]);
        command
    }

    pub fn run(&self, args: &[&str], cwd: &Path) -> Output {
        self.command(args)
            .current_dir(cwd)
            .output()
            .expect("run write-perfetto")
    }

    /// The embedded lake's export of `process`.
    pub fn reference(&self, process: &str) -> Vec<u8> {
        reference_trace(self.dir.path(), process)
    }

    /// The partition files in the store.
    pub fn stored_partitions(&self) -> Vec<String> {
        let store = self.server.store(BUCKET);
        let prefix = format!("{PREFIX}/write-perfetto/partitions");
        runtime().block_on(list(store.as_ref(), &prefix))
    }

    /// The store keys of the live rows of the partition catalog (a table of the lake's
    /// database), sorted.
    pub fn live_partitions(&self) -> Vec<String> {
        let rows = runtime().block_on(async {
            let lake = Lake::open(LakeLocation::Postgres {
                url: self.url.clone(),
                blobs_url: format!("file://{}", self.dir.path().display()),
            })
            .await
            .unwrap();
            let MetadataDb::Postgres(pool) = &lake.metadata else {
                panic!("a PostgreSQL lake")
            };
            let catalog = Catalog::open_postgres(pool.clone()).await.unwrap();
            catalog.all_rows().await.unwrap()
        });
        let mut live: Vec<String> = rows
            .into_iter()
            .filter(|r| r.retired_us.is_none())
            .map(|r| format!("{PREFIX}/{}", r.file_key))
            .collect();
        live.sort();
        live
    }

    /// `127.0.0.1:PORT` of the store, as errors name it.
    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.server.port())
    }

    /// Shows, in the test's output, the error line of a failure and how soon it came.
    fn reported(&self, failure: &str, started: Instant, line: &str) {
        let after = started.elapsed();
        eprintln!("{} {failure}: reported after {after:?}: {line}", S::NAME);
    }

    /// Exports `process` to `out` with `--json` (and `extra` flags); the output of the run.
    pub fn export(&self, process: &str, out: &Path, extra: &[&str]) -> Output {
        let mut args = vec![process, "--json", "-o", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.run(&args, out.parent().unwrap())
    }
}

/// Every process of the fixture lake exports from the store the same bytes as from the local
/// disk: cold (partitions built and stored in the store), warm (reused from it, no block read),
/// and on stdout. The store then holds exactly the catalog's live partition files.
pub fn exports_the_same_bytes_cold_and_warm<S: StoreServer>(database: &str) {
    let lake = StoreLake::<S>::fixture(database);
    let work = tempfile::tempdir().unwrap();
    let dir = lake.dir.path().to_str().unwrap();

    // The same listing as the embedded lake.
    let listing = &["processes", "--json"];
    let embedded_list = succeeded(run(&[listing, &["--lake", dir][..]].concat(), work.path()));
    let store_list = succeeded(lake.run(listing, work.path()));
    assert_eq!(embedded_list.stdout, store_list.stdout);
    let processes: Vec<serde_json::Value> = serde_json::from_slice(&store_list.stdout).unwrap();
    assert!(processes.len() >= 2);

    let mut built_total = 0;
    for process in &processes {
        let id = process["process_id"].as_str().unwrap();
        built_total += cold_then_warm(&lake, id, work.path(), &[]);
        let piped = succeeded(lake.run(&[id, "-o", "-"], work.path()));
        assert!(piped.stdout == lake.reference(id), "{id}: -o - differs");
    }

    let live = lake.live_partitions();
    assert_eq!(live.len() as u64, built_total);
    assert_eq!(lake.stored_partitions(), live);
    // Nothing but the traces in the working directory.
    for name in entries(work.path()) {
        assert!(name.ends_with(".pftrace"), "unexpected file {name}");
    }
}

/// With `--cache DIR` the partitions go to DIR, not to the store (which is only read), and the
/// exports are the local disk's bytes, cold and warm.
pub fn exports_the_same_bytes_with_a_cache_dir<S: StoreServer>(database: &str) {
    let lake = StoreLake::<S>::fixture(database);
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let cache_flag = ["--cache", cache.to_str().unwrap()];
    cold_then_warm(&lake, MAIN_PROCESS, work.path(), &cache_flag);
    assert!(cache.join("catalog.db").is_file());
    assert_eq!(lake.stored_partitions(), Vec::<String>::new());
    assert_eq!(lake.live_partitions(), Vec::<String>::new());
}

/// A window of the main process whose thread files are cut into row groups of a block: a warm
/// export fetches only the row groups it reads and the footers (ranges of the files, which a
/// remote store serves at once), and gives the local disk's bytes, as the cold one does.
pub fn a_window_reads_part_of_its_files_with_the_local_bytes<S: StoreServer>(database: &str) {
    let lake = StoreLake::<S>::fixture(database);
    let work = tempfile::tempdir().unwrap();
    let window = [&ROW_GROUP_WINDOW[..], &["--small-stream-objects", "0"]].concat();
    let local = work.path().join("local.pftrace");
    let (dir, local_arg) = (lake.dir.path().to_str().unwrap(), local.to_str().unwrap());
    let local_args = [&[MAIN_PROCESS, "--lake", dir, "-o", local_arg][..], &window].concat();
    succeeded(run(&local_args, work.path()));
    let reference = std::fs::read(&local).unwrap();
    for pass in ["cold", "warm"] {
        let out = work.path().join(format!("{pass}.pftrace"));
        let s = summary(&succeeded(lake.export(MAIN_PROCESS, &out, &window)));
        let count = |key: &str| s[key].as_u64().unwrap();
        assert!(
            std::fs::read(&out).unwrap() == reference,
            "{pass}: the {} export of the window differs from the local disk's",
            S::NAME
        );
        if pass == "warm" {
            assert_eq!(count("partitions_built"), 0, "{s}");
            assert!(count("partition_bytes_read") > 0, "{s}");
        }
    }
}

/// A cold export of `process` builds its partitions, a warm one reuses them all; both give the
/// local disk's bytes. Returns how many partitions were built.
fn cold_then_warm<S: StoreServer>(
    lake: &StoreLake<S>,
    process: &str,
    work: &Path,
    extra: &[&str],
) -> u64 {
    let reference = lake.reference(process);
    assert!(!reference.is_empty());
    let mut built_cold = 0;
    for pass in ["cold", "warm"] {
        let out = work.join(format!("{process}.{}.{pass}.pftrace", S::NAME));
        let s = summary(&succeeded(lake.export(process, &out, extra)));
        let count = |key: &str| s[key].as_u64().unwrap();
        if pass == "cold" {
            assert_eq!(count("partitions_reused"), 0, "{process} {pass}: {s}");
            assert!(count("partitions_built") > 0, "{process} {pass}: {s}");
            assert!(count("blocks_read") > 0, "{s}");
            built_cold = count("partitions_built");
        } else {
            assert!(count("partitions_reused") > 0, "{process} {pass}: {s}");
            assert_eq!(count("partitions_built"), 0, "{process} {pass}: {s}");
            assert_eq!(count("blocks_read"), 0, "{s}");
        }
        assert!(
            std::fs::read(&out).unwrap() == reference,
            "{process} {pass}: the {} export differs from the local disk's",
            S::NAME
        );
        assert_eq!(count("bytes"), reference.len() as u64);
    }
    built_cold
}

/// The store down before the run: exit 5 naming where the partition files were to be stored;
/// back up (empty), the next run builds everything and gives the same bytes.
pub fn down_before_the_run_exits_5_naming_the_store<S: StoreServer>(database: &str) {
    let mut lake = StoreLake::<S>::fixture(database);
    lake.server.stop();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("out.pftrace");
    let started = Instant::now();
    let line = error_line(&lake.export(MAIN_PROCESS, &out, &[]), 5);
    lake.reported("down before the run", started, &line);
    assert_mentions(&line, &["partition files", &lake.address()]);
    assert!(entries(out_dir.path()).is_empty());

    lake.server.restart();
    lake.load_blobs();
    let output = succeeded(lake.export(MAIN_PROCESS, &out, &[]));
    assert!(summary(&output)["partitions_built"].as_u64().unwrap() > 0);
    assert!(std::fs::read(&out).unwrap() == lake.reference(MAIN_PROCESS));
}

/// The store lost after the partitions were stored in it: the warm run exits 5 naming a
/// partition file; the store back without them, they are rebuilt, same bytes.
pub fn lost_after_partitions_were_stored_exits_5_then_rebuilds<S: StoreServer>(database: &str) {
    let mut lake = StoreLake::<S>::fixture(database);
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("out.pftrace");
    let cold = succeeded(lake.export(MAIN_PROCESS, &out, &[]));
    assert!(summary(&cold)["partitions_built"].as_u64().unwrap() > 0);
    std::fs::remove_file(&out).unwrap();

    lake.server.stop();
    let started = Instant::now();
    let line = error_line(&lake.export(MAIN_PROCESS, &out, &[]), 5);
    lake.reported("down on a warm run", started, &line);
    assert_mentions(&line, &["partition file", "write-perfetto/partitions/"]);
    assert!(entries(out_dir.path()).is_empty());

    lake.server.restart();
    lake.load_blobs();
    let s = summary(&succeeded(lake.export(MAIN_PROCESS, &out, &[])));
    assert_eq!(s["partitions_reused"].as_u64().unwrap(), 0, "{s}");
    assert!(s["partitions_built"].as_u64().unwrap() > 0, "{s}");
    assert!(std::fs::read(&out).unwrap() == lake.reference(MAIN_PROCESS));
}

/// The store stopped once an export has fetched some of the blocks, one at a time: exit 5
/// naming the block and the store, nothing left behind; back up, the next run matches and
/// every live catalog row has its file in the store.
pub fn dying_mid_run_exits_5_naming_the_block<S: StoreServer>(database: &str) {
    let (mut lake, id) = StoreLake::<S>::synthetic(database);
    let reference = lake.reference(&id);
    let out_dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("stderr");
    let args = [id.as_str(), "--jobs", "1", "--json", "-o", "out.pftrace"];

    let mut child = spawn(lake.command(&args), out_dir.path(), &log);
    let blobs = format!("{PREFIX}/blobs/");
    let fetched = || lake.server.gets_logged(BUCKET, &blobs);
    let reached = wait_until(&mut child, Duration::from_millis(2), || fetched() >= 10);
    assert!(
        reached,
        "the export ended after fetching {} blocks, before 10: {}",
        fetched(),
        std::fs::read_to_string(&log).unwrap()
    );
    let started = Instant::now();
    lake.server.stop();
    let status = wait_bounded(&mut child, RUN_TIMEOUT);
    let output = Output {
        status,
        stdout: Vec::new(),
        stderr: std::fs::read(&log).unwrap(),
    };
    let line = error_line(&output, 5);
    lake.reported("stopped mid-run", started, &line);
    assert_mentions(&line, &["block", &lake.address()]);
    let left = entries(out_dir.path());
    assert!(left.is_empty(), "left behind: {left:?}");

    lake.server.restart();
    lake.load_blobs();
    let output = succeeded(lake.run(&args, out_dir.path()));
    assert!(std::fs::read(out_dir.path().join("out.pftrace")).unwrap() == reference);
    eprintln!(
        "after the {} outage: {}",
        S::NAME,
        String::from_utf8_lossy(&output.stdout).trim()
    );
    let stored = lake.stored_partitions();
    for key in lake.live_partitions() {
        assert!(stored.contains(&key), "live row without its file: {key}");
    }
}
