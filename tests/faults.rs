//! Faults: unreachable or refusing databases, unwritable or full output directories, Ctrl-C
//! and SIGKILL (an object store that stops: `tests/s3.rs`, `tests/gcs.rs`, `tests/azure.rs`).
//! Each fault gives its exit status and a one-line error naming what is at fault, leaves no
//! partial output behind, and the next clean run produces the same bytes as a run never
//! disturbed.

mod support;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::lake::{
    entries, fixture_copy, reference_trace, run, runtime, succeeded, summary, synthetic_lake,
    write_perfetto,
};
use support::pg::PgCluster;
use support::runs::{RUN_TIMEOUT, assert_mentions, error_line, spawn, wait_bounded, wait_until};
use support::server::free_port;
use support::store_scenarios::MAIN_PROCESS;
use support::tmpfs::Tmpfs;
use write_perfetto::partitions::catalog::Catalog;

// ---------------------------------------------------------------------------------------------
// Helpers

fn temp_files(dir: &Path) -> Vec<String> {
    entries(dir)
        .into_iter()
        .filter(|n| n.starts_with(".write-perfetto-") && n.ends_with(".tmp"))
        .collect()
}

/// Writes `path` until the file system is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = [0u8; 4096];
    for _ in 0..1_000_000 {
        match file.write_all(&chunk).and_then(|_| file.sync_all()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => return, // ENOSPC
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    panic!("{} never filled up", path.display());
}

fn send_signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args(["-s", signal, &child.id().to_string()])
        .stderr(Stdio::null())
        .status()
        .expect("run kill");
    // The process may have exited in the meantime: that is for the caller to find out.
    let _ = status;
}

// ---------------------------------------------------------------------------------------------
// The metadata database

#[test]
fn an_unreachable_metadata_database_exits_5_naming_it() {
    let out_dir = tempfile::tempdir().unwrap();
    let port = free_port(); // nothing listens there any more
    let url = format!("postgres://postgres@127.0.0.1:{port}/micromegas");
    let started = Instant::now();
    let output = run(
        &[
            MAIN_PROCESS,
            "--lake",
            &url,
            "--blobs",
            "file:///nonexistent",
            "-o",
            "out.pftrace",
        ],
        out_dir.path(),
    );
    let line = error_line(&output, 5);
    assert_mentions(
        &line,
        &["lake database", &format!("127.0.0.1:{port}/micromegas")],
    );
    eprintln!(
        "unreachable database reported in {:?}: {line}",
        started.elapsed()
    );
    assert!(entries(out_dir.path()).is_empty());
}

#[test]
fn a_postgresql_server_refusing_the_connection_exits_5_naming_the_database() {
    let cluster = PgCluster::start();
    let out_dir = tempfile::tempdir().unwrap();
    let blobs = format!("file://{}", out_dir.path().display());
    // A database that does not exist, then a role that does not exist.
    for (url, named) in [
        (cluster.url("no_such_lake"), "no_such_lake"),
        (
            format!("postgres://nobody@127.0.0.1:{}/postgres", cluster.port()),
            "nobody",
        ),
    ] {
        for args in [
            vec![
                MAIN_PROCESS,
                "--lake",
                &url,
                "--blobs",
                &blobs,
                "-o",
                "out.pftrace",
            ],
            vec!["processes", "--lake", &url, "--blobs", &blobs],
        ] {
            let output = run(&args, out_dir.path());
            let line = error_line(&output, 5);
            assert_mentions(&line, &["lake database", named]);
            assert!(output.stdout.is_empty());
        }
    }
    assert!(entries(out_dir.path()).is_empty());
}

// ---------------------------------------------------------------------------------------------
// The output file

/// Exports the fixture's main process from a fresh fixture copy to `out`.
fn export_fixture(lake: &Path, out: &Path, cwd: &Path) -> Output {
    run(
        &[
            MAIN_PROCESS,
            "--lake",
            lake.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        cwd,
    )
}

/// After a failed write the lake's cache still gives the reference bytes.
fn assert_next_clean_run_matches(lake: &Path, reference: &[u8]) {
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("clean.pftrace");
    succeeded(export_fixture(lake, &out, out_dir.path()));
    assert!(std::fs::read(&out).unwrap() == reference);
    assert_eq!(entries(out_dir.path()), ["clean.pftrace"]);
}

#[test]
fn a_missing_output_directory_exits_5_naming_it() {
    let lake = fixture_copy();
    let reference = reference_trace(lake.path(), MAIN_PROCESS);
    let work = tempfile::tempdir().unwrap();
    let missing = work.path().join("missing");
    let output = export_fixture(lake.path(), &missing.join("out.pftrace"), work.path());
    let line = error_line(&output, 5);
    assert_mentions(&line, &[missing.to_str().unwrap(), "does not exist"]);
    assert!(entries(work.path()).is_empty());

    // A regular file where the directory should be.
    let file = work.path().join("file");
    std::fs::write(&file, b"not a directory").unwrap();
    let output = export_fixture(lake.path(), &file.join("out.pftrace"), work.path());
    let line = error_line(&output, 5);
    assert_mentions(&line, &[file.to_str().unwrap()]);
    assert_eq!(entries(work.path()), ["file"]);
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");

    assert_next_clean_run_matches(lake.path(), &reference);
}

#[test]
fn an_output_path_that_is_a_directory_exits_5_and_leaves_no_temporary_file() {
    let lake = fixture_copy();
    let reference = reference_trace(lake.path(), MAIN_PROCESS);
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("trace.pftrace");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("inside"), b"kept").unwrap();
    let output = export_fixture(lake.path(), &target, work.path());
    let line = error_line(&output, 5);
    assert_mentions(&line, &[target.to_str().unwrap()]);
    assert_eq!(entries(work.path()), ["trace.pftrace"]);
    assert_eq!(entries(&target), ["inside"]);
    assert_next_clean_run_matches(lake.path(), &reference);
}

#[test]
fn a_read_only_output_directory_exits_5_naming_it() {
    // Tests run as root, which ignores permission bits: a read-only mount is what refuses.
    let lake = fixture_copy();
    let work = tempfile::tempdir().unwrap();
    let read_only = work.path().join("ro");
    std::fs::create_dir(&read_only).unwrap();
    let mount = match Tmpfs::mount(&read_only, "ro,size=64k") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("skipping the read-only output directory case: {why}");
            return;
        }
    };
    let output = export_fixture(lake.path(), &read_only.join("out.pftrace"), work.path());
    let line = error_line(&output, 5);
    assert_mentions(&line, &[read_only.to_str().unwrap()]);
    assert!(entries(&read_only).is_empty());
    drop(mount);
    assert_next_clean_run_matches(lake.path(), &reference_trace(lake.path(), MAIN_PROCESS));
}

#[test]
fn a_full_disk_exits_5_and_leaves_nothing_in_the_output_directory() {
    let lake = fixture_copy();
    let reference = reference_trace(lake.path(), MAIN_PROCESS);
    let work = tempfile::tempdir().unwrap();
    let full = work.path().join("full");
    std::fs::create_dir(&full).unwrap();
    let mount = match Tmpfs::mount(&full, "size=64k") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("skipping the full disk case: {why}");
            return;
        }
    };
    // Fill the disk: creating the temporary file still works, writing the trace does not.
    fill(&full.join("filler"));
    let out = full.join("out.pftrace");
    let output = export_fixture(lake.path(), &out, work.path());
    let line = error_line(&output, 5);
    assert_mentions(&line, &[out.to_str().unwrap(), "No space left on device"]);
    assert_eq!(entries(&full), ["filler"], "left behind");
    drop(mount);
    assert_next_clean_run_matches(lake.path(), &reference);
}

// ---------------------------------------------------------------------------------------------
// Interruptions

/// The partition files stored under `files_root` (a cache directory, or an embedded lake), as
/// keys relative to it.
fn partition_keys(files_root: &Path) -> Vec<String> {
    let mut keys = Vec::new();
    let mut pending = vec![files_root.join("write-perfetto/partitions")];
    while let Some(dir) = pending.pop() {
        let Ok(read) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in read.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let key = path.strip_prefix(files_root).unwrap();
                keys.push(key.to_string_lossy().into_owned());
            }
        }
    }
    keys.sort();
    keys
}

/// The partition catalog `catalog_db`, whose files are under `files_root`, has no live row
/// whose file is missing, and at most one live row per partition. Returns (live rows,
/// partition files without any row).
fn check_catalog(catalog_db: &Path, files_root: &Path) -> (usize, usize) {
    let rows = runtime().block_on(async {
        let catalog = Catalog::open_sqlite(catalog_db, &|_| {}).await.unwrap();
        catalog.all_rows().await.unwrap()
    });
    let live: Vec<_> = rows.iter().filter(|r| r.retired_us.is_none()).collect();
    let mut keys = std::collections::HashSet::new();
    for row in &live {
        assert!(
            files_root.join(&row.file_key).is_file(),
            "live catalog row without its file: {row:?}"
        );
        assert!(
            keys.insert((&row.view, &row.instance, row.begin_us)),
            "two live rows for one partition: {row:?}"
        );
    }
    let known: std::collections::HashSet<&str> = rows.iter().map(|r| r.file_key.as_str()).collect();
    let orphans: Vec<String> = partition_keys(files_root)
        .into_iter()
        .filter(|key| !known.contains(key.as_str()))
        .collect();
    if !orphans.is_empty() {
        eprintln!("partition files without a catalog row: {orphans:?}");
    }
    (live.len(), orphans.len())
}

/// An export started in the background that stops at a named point of the run
/// (`write_perfetto::pause`) and waits there to be interrupted or killed.
struct PausedRun {
    child: Child,
    /// Whether the run reached the point (else it ended first).
    reached: bool,
}

/// Starts an export that pauses at `point` (`NAME` or `NAME:N`, the Nth time) and waits until
/// it is there (or ended without reaching it).
fn run_until(args: &[&str], cwd: &Path, log: &Path, point: &str) -> PausedRun {
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("paused");
    let mut command = write_perfetto();
    command
        .args(args)
        .env("WRITE_PERFETTO_PAUSE_AT", point)
        .env("WRITE_PERFETTO_PAUSE_FILE", &marker);
    let mut child = spawn(command, cwd, log);
    // The poll only decides how soon the test notices; what it sees does not depend on it.
    let reached = wait_until(&mut child, Duration::from_millis(5), || marker.exists());
    PausedRun { child, reached }
}

#[test]
fn ctrl_c_exits_130_and_leaves_nothing_behind_while_building_and_while_writing() {
    let base = tempfile::tempdir().unwrap();
    let lake = base.path().join("lake");
    let id = synthetic_lake(&lake);
    let lake_arg = lake.to_str().unwrap();
    let reference = reference_trace(&lake, &id);
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("stderr");
    let cache = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let cache_arg = cache.path().to_str().unwrap();
    let catalog = cache.path().join("catalog.db");
    let args = [
        &id,
        "--lake",
        lake_arg,
        "--cache",
        cache_arg,
        "--jobs",
        "1",
        "--threads",
        "4",
        "-o",
        "out.pftrace",
    ];

    // 1. Cold cache: interrupted between two partition commits of the build.
    let mut paused = run_until(&args, out_dir.path(), &log, "partition-recorded:2");
    assert!(paused.reached, "the build never recorded two partitions");
    send_signal(&paused.child, "INT");
    assert_interrupted(wait_bounded(&mut paused.child, RUN_TIMEOUT), &log);
    assert!(
        entries(out_dir.path()).is_empty(),
        "left behind: {:?}",
        entries(out_dir.path())
    );
    let (live, orphans) = check_catalog(&catalog, cache.path());
    assert_eq!(
        (live, orphans),
        (2, 0),
        "what the interrupted build committed"
    );

    // 2. Warm cache: interrupted while the trace is being written (its temporary file exists).
    let mut paused = run_until(&args, out_dir.path(), &log, "thread-track-written:2");
    assert!(paused.reached, "the run never wrote two thread tracks");
    assert_eq!(
        temp_files(out_dir.path()).len(),
        1,
        "the trace is being written"
    );
    send_signal(&paused.child, "INT");
    assert_interrupted(wait_bounded(&mut paused.child, RUN_TIMEOUT), &log);
    let left = entries(out_dir.path());
    assert!(left.is_empty(), "left behind: {left:?}");

    // The next run completes the cache and gives the undisturbed bytes.
    succeeded(run(&args, out_dir.path()));
    assert!(std::fs::read(out_dir.path().join("out.pftrace")).unwrap() == reference);
}

#[test]
fn sigkill_at_any_point_leaves_a_consistent_cache_and_the_next_run_matches() {
    let base = tempfile::tempdir().unwrap();
    let lake = base.path().join("lake");
    let id = synthetic_lake(&lake);
    let lake_arg = lake.to_str().unwrap();
    let reference = reference_trace(&lake, &id);
    let catalog = lake.join("write-perfetto/catalog.db");
    let out_dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("stderr");
    let args = [&id, "--lake", lake_arg, "--jobs", "2", "-o", "out.pftrace"];

    // The lake's own cache, killed at successive points of successive runs: each run reuses
    // what the previous ones committed, so the points move from the build to the writing.
    // (point, live rows after the kill, orphan files after the kill)
    let points = [
        ("catalog-opened", 0, 0),
        ("partition-file-stored", 0, 1),
        ("partition-recorded", 1, 1),
        ("partition-recorded:3", 4, 1),
        ("partition-file-stored:2", 5, 2),
    ];
    for (point, live_after, orphans_after) in points {
        let mut paused = run_until(&args, out_dir.path(), &log, point);
        assert!(paused.reached, "the run ended before {point}");
        send_signal(&paused.child, "KILL");
        let status = wait_bounded(&mut paused.child, RUN_TIMEOUT);
        assert!(!status.success());
        assert!(
            !entries(out_dir.path()).contains(&"out.pftrace".to_string()),
            "a killed run left its output"
        );
        assert_eq!(
            check_catalog(&catalog, &lake),
            (live_after, orphans_after),
            "cache after SIGKILL at {point}"
        );
    }
    // Killed while writing: the cache is complete by then (nothing is built any more).
    for _ in 0..2 {
        let mut paused = run_until(&args, out_dir.path(), &log, "thread-track-written");
        assert!(
            paused.reached,
            "the run ended before writing a thread track"
        );
        send_signal(&paused.child, "KILL");
        assert!(!wait_bounded(&mut paused.child, RUN_TIMEOUT).success());
        assert!(!entries(out_dir.path()).contains(&"out.pftrace".to_string()));
    }
    // Temporary files of killed runs remain (nothing can delete them on SIGKILL); they do
    // not disturb the next run.
    assert_eq!(temp_files(out_dir.path()).len(), 2);
    let output = succeeded(run(
        &[&id, "--lake", lake_arg, "-o", "out.pftrace", "--json"],
        out_dir.path(),
    ));
    assert!(std::fs::read(out_dir.path().join("out.pftrace")).unwrap() == reference);
    assert_eq!(
        summary(&output)["partitions_built"],
        0,
        "the killed runs completed the cache"
    );
    let (live_after, orphans) = check_catalog(&catalog, &lake);
    assert_eq!(
        orphans, 2,
        "the files of the two builds killed before their commit"
    );
    // `cache gc` removes the files of builds killed before their commit, nothing else.
    succeeded(run(
        &["cache", "gc", "--grace", "0", "--lake", lake_arg, "--json"],
        out_dir.path(),
    ));
    assert_eq!(check_catalog(&catalog, &lake), (live_after, 0));
    let output = succeeded(run(
        &[&id, "--lake", lake_arg, "-o", "again.pftrace", "--json"],
        out_dir.path(),
    ));
    assert_eq!(summary(&output)["partitions_built"], 0);
    assert!(std::fs::read(out_dir.path().join("again.pftrace")).unwrap() == reference);
}

/// Exit 130 and the one line that says so, on stderr (captured in `log`).
fn assert_interrupted(status: std::process::ExitStatus, log: &std::path::Path) {
    let said = std::fs::read_to_string(log).unwrap();
    assert_eq!(status.code(), Some(130), "{status:?}: {said}");
    assert_eq!(said.trim(), "write-perfetto: interrupted");
}
