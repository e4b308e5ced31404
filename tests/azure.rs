//! A PostgreSQL lake whose payloads live in Azure Blob Storage's emulator (Azurite): the same
//! processes, the same bytes as the lake on local disk, the partitions kept in the container (or
//! in `--cache DIR`) reused; Azurite stopping before or during a run exits 5 naming what could
//! not be reached (the scenarios: `support/store_scenarios.rs`).

mod support;

use support::azure::AzureServer;
use support::store_scenarios::*;

#[test]
fn a_postgresql_lake_with_payloads_in_azure_exports_the_same_bytes_cold_and_warm() {
    exports_the_same_bytes_cold_and_warm::<AzureServer>("azure_lake");
}

#[test]
fn a_window_reads_part_of_its_files_from_azure_with_the_local_bytes() {
    a_window_reads_part_of_its_files_with_the_local_bytes::<AzureServer>("azure_window");
}

#[test]
fn with_a_cache_dir_azure_is_only_read_and_the_bytes_are_the_same() {
    exports_the_same_bytes_with_a_cache_dir::<AzureServer>("azure_cache_dir");
}

#[test]
fn azure_down_before_the_run_exits_5_naming_it() {
    down_before_the_run_exits_5_naming_the_store::<AzureServer>("azure_down_before");
}

#[test]
fn azure_lost_after_partitions_were_stored_exits_5_then_rebuilds() {
    lost_after_partitions_were_stored_exits_5_then_rebuilds::<AzureServer>("azure_down_warm");
}

#[test]
fn azure_dying_mid_run_exits_5_naming_the_block_and_the_next_run_matches() {
    dying_mid_run_exits_5_naming_the_block::<AzureServer>("azure_mid_run");
}
