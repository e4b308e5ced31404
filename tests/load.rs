//! Load: many exporters at once on one PostgreSQL lake, cold. Three synthetic processes, eight
//! exporters each, all 24 started together with nothing built yet (not even the catalog
//! table). Every run succeeds with the very bytes a serial export into a fresh cache gives,
//! each partition is built once, and the partition catalog in the lake's database is left
//! consistent: no duplicate or overlapping live rows, every live row's file present, no file
//! without its row.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::damage::run_bounded;
use support::lake::{runtime, sha256_hex, stderr, summary};
use support::partition_lake::{assert_live_rows_consistent, partition_files};
use support::pg::PgCluster;
use support::trace::decode;
use write_perfetto::lake::BlobStore;
use write_perfetto::partitions::catalog::{Catalog, PartitionRow};
use write_perfetto_test_lake::synth::{SynthSpec, generate};
use write_perfetto_test_lake::writer::LakeWriter;

const EXPORTERS_PER_PROCESS: usize = 8;
/// Bound of any one run (they share two cores with each other and with other builds).
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs an export to `out` and returns its summary and trace, failing on any error.
fn export(args: &[&str], out: &Path, cwd: &Path) -> (serde_json::Value, Vec<u8>) {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--json", "-q", "-o", out.to_str().unwrap()]);
    let output = run_bounded(&all, cwd, RUN_TIMEOUT);
    assert!(
        output.status.success(),
        "export {args:?} failed ({}): {}",
        output.status,
        stderr(&output)
    );
    let summary = summary(&output);
    let trace = std::fs::read(out).expect("trace written");
    assert_eq!(summary["sha256"].as_str().unwrap(), sha256_hex(&trace));
    (summary, trace)
}

#[test]
fn eight_concurrent_cold_exporters_per_process_agree_with_serial_exports_and_leave_a_consistent_catalog()
 {
    let started = Instant::now();
    let cluster = PgCluster::start();
    let url = cluster.create_database("load_lake");
    // The object store of the lake: block payloads, then the partition files of the exporters.
    let store = tempfile::tempdir().unwrap();
    let blobs = format!("file://{}", store.path().display());
    let spec = SynthSpec {
        seed: 20261127,
        processes: 3,
        threads: 4,
        spans: 3 * 4 * 20_000,
        async_spans: 3 * 4_000,
        ..SynthSpec::default()
    };
    let report = runtime().block_on(async {
        let writer = LakeWriter::create_postgres(&url, BlobStore::local(store.path()).unwrap())
            .await
            .unwrap();
        let report = generate(&writer, &spec).await.unwrap();
        writer.close().await;
        report
    });
    let ids: Vec<String> = report.process_ids.iter().map(|id| id.to_string()).collect();
    assert_eq!(ids.len(), 3);
    eprintln!(
        "lake: {} blocks, {} events, {} payload bytes, generated in {:?}",
        report.blocks,
        report.events,
        report.payload_bytes,
        started.elapsed()
    );
    let lake_args = ["--lake", url.as_str(), "--blobs", blobs.as_str()];
    let work = tempfile::tempdir().unwrap();

    // Serial exports, each into a fresh cache of its own (the lake's catalog stays untouched),
    // with the default partition width.
    let serial_started = Instant::now();
    let mut reference: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (i, id) in ids.iter().enumerate() {
        let cache = work.path().join(format!("serial-cache-{i}"));
        let mut args = vec![id.as_str()];
        args.extend(lake_args);
        args.extend(["--cache", cache.to_str().unwrap()]);
        let (summary, trace) = export(
            &args,
            &work.path().join(format!("serial-{i}.pftrace")),
            work.path(),
        );
        assert_eq!(summary["partitions_reused"], 0);
        assert!(summary["spans"]["thread"].as_u64().unwrap() > 0);
        assert!(summary["spans"]["async"].as_u64().unwrap() > 0);
        let decoded = decode(&trace);
        assert!(decoded.problems.is_empty(), "{:#?}", decoded.problems);
        reference.insert(id.clone(), trace);
    }
    let serial = serial_started.elapsed();
    assert_eq!(
        cluster
            .psql(
                "load_lake",
                "SELECT count(*) FROM pg_tables WHERE tablename = 'write_perfetto_partitions'"
            )
            .trim(),
        "0",
        "the serial exports wrote to the lake's catalog"
    );

    // 24 exporters at once, cold, through the lake's own catalog, with one-second partitions
    // (several per stream: more rows to race for).
    let concurrent_started = Instant::now();
    let runs: Vec<(String, PathBuf)> = (0..EXPORTERS_PER_PROCESS)
        .flat_map(|k| ids.iter().map(move |id| (id.clone(), k)))
        .map(|(id, k)| {
            let out = work.path().join(format!("{id}-{k}.pftrace"));
            (id, out)
        })
        .collect();
    let results: Vec<(serde_json::Value, Vec<u8>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = runs
            .iter()
            .map(|(id, out)| {
                let work = work.path();
                scope.spawn(move || {
                    let mut args = vec![id.as_str()];
                    args.extend(lake_args);
                    args.extend(["--partition-seconds", "1"]);
                    export(&args, out, work)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("an exporter run failed"))
            .collect()
    });
    let concurrent = concurrent_started.elapsed();

    let mut built: BTreeMap<String, u64> = BTreeMap::new();
    let mut partitions: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for ((id, out), (summary, trace)) in runs.iter().zip(&results) {
        assert!(
            trace == &reference[id],
            "{}: differs from the serial export of process {id}",
            out.display()
        );
        *built.entry(id.clone()).or_default() += summary["partitions_built"].as_u64().unwrap();
        partitions.entry(id.clone()).or_default().insert(
            summary["partitions_built"].as_u64().unwrap()
                + summary["partitions_reused"].as_u64().unwrap(),
        );
    }

    // The catalog: one live row per partition, built once, no retired row (nothing was ever
    // replaced), files and rows in one-to-one correspondence.
    let rows: Vec<PartitionRow> = runtime().block_on(async {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        let catalog = Catalog::open_postgres(pool.clone()).await.unwrap();
        let rows = catalog.all_rows().await.unwrap();
        pool.close().await;
        rows
    });
    assert_live_rows_consistent(&rows, store.path());
    assert!(
        rows.iter().all(|r| r.retired_us.is_none()),
        "a cold concurrent build retired rows: {rows:#?}"
    );
    let mut live_keys = BTreeSet::new();
    for r in &rows {
        assert!(
            live_keys.insert((&r.view, &r.instance, r.begin_us)),
            "duplicate live row: {r:?}"
        );
    }
    for id in &ids {
        let of_process = rows.iter().filter(|r| &r.process_id == id).count() as u64;
        let needed: Vec<u64> = partitions[id].iter().copied().collect();
        assert_eq!(needed, vec![of_process], "process {id}: partitions per run");
        assert_eq!(
            built[id], of_process,
            "process {id}: each partition built exactly once by the {EXPORTERS_PER_PROCESS} exporters"
        );
        assert!(of_process > 5, "process {id}: {of_process} partitions only");
    }
    let files: BTreeSet<String> = partition_files(store.path()).into_iter().collect();
    let keys: BTreeSet<String> = rows.iter().map(|r| r.file_key.clone()).collect();
    assert_eq!(
        files, keys,
        "partition files without a row, or rows without a file"
    );

    // Warm: each process once more, everything reused, the same bytes.
    for (i, id) in ids.iter().enumerate() {
        let mut args = vec![id.as_str()];
        args.extend(lake_args);
        args.extend(["--partition-seconds", "1"]);
        let (summary, trace) = export(
            &args,
            &work.path().join(format!("warm-{i}.pftrace")),
            work.path(),
        );
        assert_eq!(summary["partitions_built"], 0, "{summary}");
        assert!(trace == reference[id], "warm export of {id} differs");
    }
    eprintln!(
        "{} partitions; serial exports {serial:?} (3 runs), concurrent {concurrent:?} ({} runs), total {:?}",
        rows.len(),
        runs.len(),
        started.elapsed()
    );
}
