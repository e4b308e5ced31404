//! A PostgreSQL lake whose payloads live in Google Cloud Storage's emulator (fake-gcs-server):
//! the same processes, the same bytes as the lake on local disk, the partitions kept in the
//! bucket (or in `--cache DIR`) reused; the emulator stopping before or during a run exits 5
//! naming what could not be reached (the scenarios: `support/store_scenarios.rs`).
//!
//! fake-gcs-server lacks the XML API's PUT Object, the request write-perfetto stores partition
//! files with; the scenarios reach it through a front that supplies that one request
//! (`support/gcs_front.rs`). The last test talks to the emulator itself.

mod support;

use support::gcs::GcsServer;
use support::runs::{assert_mentions, error_line};
use support::store_scenarios::*;

#[test]
fn a_postgresql_lake_with_payloads_in_gcs_exports_the_same_bytes_cold_and_warm() {
    exports_the_same_bytes_cold_and_warm::<GcsServer>("gcs_lake");
}

#[test]
fn a_window_reads_part_of_its_files_from_gcs_with_the_local_bytes() {
    a_window_reads_part_of_its_files_with_the_local_bytes::<GcsServer>("gcs_window");
}

#[test]
fn with_a_cache_dir_gcs_is_only_read_and_the_bytes_are_the_same() {
    exports_the_same_bytes_with_a_cache_dir::<GcsServer>("gcs_cache_dir");
}

#[test]
fn gcs_down_before_the_run_exits_5_naming_it() {
    down_before_the_run_exits_5_naming_the_store::<GcsServer>("gcs_down_before");
}

#[test]
fn gcs_lost_after_partitions_were_stored_exits_5_then_rebuilds() {
    lost_after_partitions_were_stored_exits_5_then_rebuilds::<GcsServer>("gcs_down_warm");
}

#[test]
fn gcs_dying_mid_run_exits_5_naming_the_block_and_the_next_run_matches() {
    dying_mid_run_exits_5_naming_the_block::<GcsServer>("gcs_mid_run");
}

/// Straight to fake-gcs-server, as the README's emulator settings say: blocks are read, so
/// `--cache DIR` gives the local disk's bytes; without it the first write (the XML API PUT
/// Object the emulator lacks) is answered 400, and the run exits 5 naming the store and the
/// emulator's answer, leaving nothing behind.
#[test]
fn straight_to_fake_gcs_server_reads_work_and_its_400_to_a_write_exits_5_naming_the_store() {
    let lake = StoreLake::<GcsServer>::fixture("gcs_bare");
    let reference = lake.reference(MAIN_PROCESS);
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out.pftrace");
    let cache = work.path().join("cache");
    let args = [MAIN_PROCESS, "-o", out.to_str().unwrap()];
    let bare_run = |extra: &[&str]| {
        let mut command = lake.bare_command(&[&args[..], extra].concat());
        lake.server.configure_bare(&mut command);
        command.current_dir(work.path()).output().unwrap()
    };

    let output = bare_run(&["--cache", cache.to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    assert!(std::fs::read(&out).unwrap() == reference);
    std::fs::remove_file(&out).unwrap();

    let line = error_line(&bare_run(&[]), 5);
    eprintln!("fake-gcs-server's answer to a partition file: {line}");
    let store = format!("gs://{BUCKET}/{PREFIX}");
    assert_mentions(
        &line,
        &[
            "partition files",
            &store,
            "PUT",
            "400",
            "invalid uploadType",
        ],
    );
    assert_eq!(support::lake::entries(work.path()), ["cache"]);
    assert_eq!(lake.stored_partitions(), Vec::<String>::new());
}
