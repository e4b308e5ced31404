//! A PostgreSQL lake whose payloads live in a real S3-compatible server (moto): the same
//! processes, the same bytes as the lake on local disk, the partitions kept in S3 (or in
//! `--cache DIR`) reused; S3 stopping before or during a run exits 5 naming what it could not
//! reach (the scenarios: `support/store_scenarios.rs`).

mod support;

use support::s3::S3Server;
use support::store_scenarios::*;

#[test]
fn a_postgresql_lake_with_payloads_in_s3_exports_the_same_bytes_cold_and_warm() {
    exports_the_same_bytes_cold_and_warm::<S3Server>("s3_lake");
}

#[test]
fn a_window_reads_part_of_its_files_from_s3_with_the_local_bytes() {
    a_window_reads_part_of_its_files_with_the_local_bytes::<S3Server>("s3_window");
}

#[test]
fn with_a_cache_dir_s3_is_only_read_and_the_bytes_are_the_same() {
    exports_the_same_bytes_with_a_cache_dir::<S3Server>("s3_cache_dir");
}

#[test]
fn s3_down_before_the_run_exits_5_naming_it() {
    down_before_the_run_exits_5_naming_the_store::<S3Server>("s3_down_before");
}

#[test]
fn s3_lost_after_partitions_were_stored_exits_5_then_rebuilds() {
    lost_after_partitions_were_stored_exits_5_then_rebuilds::<S3Server>("s3_down_warm");
}

#[test]
fn s3_dying_mid_run_exits_5_naming_the_block_and_the_next_run_matches() {
    dying_mid_run_exits_5_naming_the_block::<S3Server>("s3_mid_run");
}
