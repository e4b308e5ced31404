//! The exported bytes equal an independent in-memory reference: every block decoded directly
//! (no partitions), paired and laid out whole, written whole — on synthetic lakes large
//! enough to span many blocks, partitions and insert-time buckets, cold and warm.

mod support;

use support::lake::{run, runtime};
use support::oracle::reference_trace;
use write_perfetto::lake::{Lake, LakeLocation};
use write_perfetto_test_lake::synth::{SynthSpec, generate};
use write_perfetto_test_lake::writer::LakeWriter;

#[test]
fn exports_equal_the_in_memory_reference_cold_warm_and_with_any_partition_size() {
    let dir = tempfile::tempdir().unwrap();
    let lake_dir = dir.path().join("lake");
    let spec = SynthSpec {
        seed: 7,
        processes: 2,
        threads: 5,
        spans: 40_000,
        async_spans: 4_000,
        events_per_block: 700,
        ..Default::default()
    };
    let (ids, references) = runtime().block_on(async {
        let writer = LakeWriter::create_embedded(&lake_dir).await.unwrap();
        let report = generate(&writer, &spec).await.unwrap();
        writer.close().await;
        let lake = Lake::open(LakeLocation::Embedded {
            dir: lake_dir.clone(),
        })
        .await
        .unwrap();
        let mut references = Vec::new();
        for id in &report.process_ids {
            references.push(reference_trace(&lake, *id).await);
        }
        (report.process_ids, references)
    });
    let lake_arg = lake_dir.to_str().unwrap();
    for (id, reference) in ids.iter().zip(&references) {
        let id = id.to_string();
        for (label, extra) in [
            ("cold", vec!["--partition-seconds", "3600"]),
            ("warm", vec!["--partition-seconds", "3600"]),
            ("1 s partitions, cold", vec!["--partition-seconds", "1"]),
            (
                "1 s partitions, warm, one thread",
                vec!["--partition-seconds", "1", "--threads", "1", "--jobs", "1"],
            ),
        ] {
            let mut args = vec![id.as_str(), "--lake", lake_arg, "-o", "-"];
            args.extend(extra);
            let output = run(&args, dir.path());
            assert!(
                output.status.success(),
                "{label}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(
                output.stdout == *reference,
                "{label}: process {id} differs from the in-memory reference"
            );
        }
    }
}

/// `WRITE_PERFETTO_ORACLE_LAKE=DIR cargo test --release --test oracle -- --ignored` checks a
/// large generated lake (e.g. a benchmark lake) the same way.
#[test]
#[ignore = "needs a generated lake named by WRITE_PERFETTO_ORACLE_LAKE"]
fn a_large_lake_exports_equal_the_in_memory_reference() {
    let lake_dir = std::path::PathBuf::from(
        std::env::var("WRITE_PERFETTO_ORACLE_LAKE").expect("set WRITE_PERFETTO_ORACLE_LAKE"),
    );
    let cache = tempfile::tempdir().unwrap();
    let (id, reference) = runtime().block_on(async {
        let lake = Lake::open(LakeLocation::Embedded {
            dir: lake_dir.clone(),
        })
        .await
        .unwrap();
        let id = lake.metadata.process_summaries(1).await.unwrap()[0]
            .process_id
            .clone();
        let reference = reference_trace(&lake, uuid::Uuid::parse_str(&id).unwrap()).await;
        (id, reference)
    });
    let args = [
        id.as_str(),
        "--lake",
        lake_dir.to_str().unwrap(),
        "--cache",
        cache.path().to_str().unwrap(),
        "-o",
        "-",
    ];
    let output = run(&args, cache.path());
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.stdout == reference,
        "process {id} differs from the in-memory reference"
    );
}
