//! A process still being ingested: a writer replays the fixture's main process into an empty
//! lake in ingestion order (payloads, then rows; a new stream together with its first block, in
//! one transaction) while exporters run in a loop on one shared cache. Every export succeeds,
//! or says the process has no data yet; each trace is exactly the trace of one prefix of the
//! ingestion (computed independently, without partitions); and when ingestion is over the
//! cache built meanwhile exports the same bytes as a cold cache.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::damage::{assert_inspector_clean, run_command_bounded};
use support::lake::{fixture_dir, open_embedded, runtime, sha256_hex, stderr, write_perfetto};
use support::pg::PgCluster;
use write_perfetto::lake::rows::{BlockRow, ProcessRow, StreamRow, StreamTypes};
use write_perfetto::lake::{BlobStore, Lake, MetadataReads};
use write_perfetto_test_lake::writer::LakeWriter;

const MAIN_PROCESS: &str = "9311096b-e5b5-4742-a12e-f1306bfed76d";
const EXPORTERS: usize = 2;

/// The fixture process as its ingestion would deliver it.
struct Ingestion {
    process: ProcessRow,
    streams: Vec<(StreamRow, StreamTypes)>,
    /// Blocks in the order they were inserted (insert time, then id), with their payloads.
    blocks: Vec<(BlockRow, bytes::Bytes)>,
}

async fn ingestion() -> Ingestion {
    let lake = open_embedded(&fixture_dir()).await;
    let id = uuid::Uuid::parse_str(MAIN_PROCESS).unwrap();
    let process = lake.metadata.process(&id).await.unwrap().unwrap();
    let mut types = lake.metadata.stream_types(&id, &|_| true).await.unwrap();
    let streams = (lake.metadata.thread_streams(&id).await.unwrap())
        .into_iter()
        .map(|s| {
            let t = types.remove(&s.stream_id).unwrap();
            (s, t)
        })
        .collect();
    let mut blocks = Vec::new();
    for block in lake.metadata.thread_blocks(&id).await.unwrap() {
        let payload = lake.block_payload(&block).await.unwrap();
        blocks.push((block, payload));
    }
    blocks.sort_by_key(|(b, _)| (b.insert_time, b.block_id));
    Ingestion {
        process,
        streams,
        blocks,
    }
}

/// Writes the ingestion's first steps to `writer`: the process, then block after block (a
/// block of a new stream arrives with its stream row, in one transaction). `after_block` runs
/// after each block is committed, with the number committed so far.
async fn replay(
    ingestion: &Ingestion,
    writer: &LakeWriter,
    mut after_block: impl AsyncFnMut(usize),
) {
    writer.insert_process(&ingestion.process).await.unwrap();
    let mut known = BTreeSet::new();
    for (k, (block, payload)) in ingestion.blocks.iter().enumerate() {
        if known.insert(block.stream_id) {
            let stream = ingestion
                .streams
                .iter()
                .find(|(s, _)| s.stream_id == block.stream_id)
                .unwrap();
            writer
                .insert_stream_with_block((&stream.0, &stream.1), block, payload.clone())
                .await
                .unwrap();
        } else {
            writer.insert_block(block, payload.clone()).await.unwrap();
        }
        after_block(k + 1).await;
    }
}

/// The trace of every prefix of the ingestion (1..=all blocks), by sha256, computed by the
/// in-memory oracle on a lake holding exactly that prefix.
async fn prefix_traces(ingestion: &Ingestion) -> BTreeMap<String, usize> {
    let dir = tempfile::tempdir().unwrap();
    let writer = LakeWriter::create_embedded(dir.path()).await.unwrap();
    let lake = open_embedded(dir.path()).await;
    let mut traces = BTreeMap::new();
    replay(ingestion, &writer, async |prefix| {
        let trace = oracle_trace(&lake).await;
        traces.insert(sha256_hex(&trace), prefix);
    })
    .await;
    traces
}

async fn oracle_trace(lake: &Lake) -> Vec<u8> {
    let id = uuid::Uuid::parse_str(MAIN_PROCESS).unwrap();
    support::oracle::reference_trace(lake, id).await
}

/// The lake being written, and how an exporter reaches it.
struct Target {
    /// The object store directory (payloads; partition files of the default cache).
    dir: tempfile::TempDir,
    lake_args: Vec<String>,
    _cluster: Option<PgCluster>,
}

impl Target {
    async fn sqlite() -> (Target, LakeWriter) {
        let dir = tempfile::tempdir().unwrap();
        let writer = LakeWriter::create_embedded(dir.path()).await.unwrap();
        let lake_args = vec!["--lake".into(), dir.path().display().to_string()];
        let target = Target {
            dir,
            lake_args,
            _cluster: None,
        };
        (target, writer)
    }

    async fn postgres() -> (Target, LakeWriter) {
        let dir = tempfile::tempdir().unwrap();
        let cluster = PgCluster::start();
        let url = cluster.create_database("live");
        let writer = LakeWriter::create_postgres(&url, BlobStore::local(dir.path()).unwrap())
            .await
            .unwrap();
        let lake_args = vec![
            "--lake".into(),
            url,
            "--blobs".into(),
            format!("file://{}", dir.path().display()),
        ];
        let target = Target {
            dir,
            lake_args,
            _cluster: Some(cluster),
        };
        (target, writer)
    }
}

/// What one export during ingestion gave.
#[derive(Debug)]
enum Outcome {
    Trace(PathBuf),
    NoDataYet,
}

/// One export of the main process into `out`, with the shared cache (`extra` arguments).
fn export(target: &Target, extra: &[String], out: &Path) -> Outcome {
    let mut command = write_perfetto();
    command
        .arg(MAIN_PROCESS)
        .args(&target.lake_args)
        .args(extra)
        .args(["--partition-seconds", "1", "-q", "-o"])
        .arg(out);
    let output = run_command_bounded(command, target.dir.path(), Duration::from_secs(120));
    match output.status.code() {
        Some(0) => Outcome::Trace(out.to_path_buf()),
        Some(3) => {
            let text = stderr(&output);
            assert!(
                // Before the process row, before its first stream, before its first block.
                ["no process", "has no thread streams", "no span data yet"]
                    .iter()
                    .any(|early| text.contains(early)),
                "exit 3 for another reason than an early process: {text}"
            );
            Outcome::NoDataYet
        }
        _ => panic!(
            "an export during ingestion failed ({:?}): {}",
            output.status,
            stderr(&output)
        ),
    }
}

/// Replays the fixture process into `target` while `EXPORTERS` exporters loop on one shared
/// cache, then checks every trace against the oracle of the prefixes. `rt`: the runtime the
/// writer was made on (its pool runs there).
fn exports_during_ingestion_show_one_prefix_each(
    rt: tokio::runtime::Runtime,
    (target, writer): (Target, LakeWriter),
    cache: &[String],
) {
    let ingestion = rt.block_on(ingestion());
    let prefixes = rt.block_on(prefix_traces(&ingestion));
    assert_eq!(
        prefixes.len(),
        ingestion.blocks.len(),
        "each prefix has its own trace"
    );
    let outputs = tempfile::tempdir().unwrap();
    let done = AtomicBool::new(false);
    let traces: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    let early = Mutex::new(0usize);
    let target = Arc::new(target);
    std::thread::scope(|scope| {
        for exporter in 0..EXPORTERS {
            let (target, outputs, done, traces, early) =
                (target.clone(), outputs.path(), &done, &traces, &early);
            scope.spawn(move || {
                let mut run = 0;
                // At least one run after ingestion ended, so every exporter sees the end too.
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    let out = outputs.join(format!("{exporter}-{run}.pftrace"));
                    match export(&target, cache, &out) {
                        Outcome::Trace(path) => traces.lock().unwrap().push(path),
                        Outcome::NoDataYet => *early.lock().unwrap() += 1,
                    }
                    run += 1;
                    if finished {
                        break;
                    }
                }
            });
        }
        // The exporters stop when ingestion ends, also when the writer fails (a panic here must
        // fail the test, not leave the exporters looping).
        struct Done<'a>(&'a AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let _done = Done(&done);
        rt.block_on(replay(&ingestion, &writer, async |_| {
            // The pace of a live process (the outcome may not depend on it).
            tokio::time::sleep(Duration::from_millis(15)).await;
        }));
    });
    rt.block_on(writer.close());

    let traces = traces.into_inner().unwrap();
    let mut seen = BTreeMap::new();
    for path in &traces {
        let sha = sha256_hex(&std::fs::read(path).unwrap());
        let prefix = prefixes.get(&sha).unwrap_or_else(|| {
            panic!(
                "{} is the trace of no prefix of the ingestion",
                path.display()
            )
        });
        seen.entry(*prefix).or_insert_with(|| path.clone());
    }
    eprintln!(
        "{} exports during ingestion ({} before the first block) showed prefixes {:?} of {}",
        traces.len(),
        early.into_inner().unwrap(),
        seen.keys().collect::<Vec<_>>(),
        ingestion.blocks.len()
    );
    for path in seen.values() {
        assert_inspector_clean(path);
    }
    // The last run of each exporter started after the last block: it saw everything.
    assert!(seen.contains_key(&ingestion.blocks.len()));

    // The cache built during ingestion gives what a cold cache gives.
    let warm = outputs.path().join("warm.pftrace");
    let cold_cache = tempfile::tempdir().unwrap();
    let cold = outputs.path().join("cold.pftrace");
    let cold_args = vec![
        "--cache".to_string(),
        cold_cache.path().display().to_string(),
    ];
    assert!(matches!(export(&target, cache, &warm), Outcome::Trace(_)));
    assert!(matches!(
        export(&target, &cold_args, &cold),
        Outcome::Trace(_)
    ));
    assert!(std::fs::read(&warm).unwrap() == std::fs::read(&cold).unwrap());
}

#[test]
fn a_process_being_ingested_into_sqlite_exports_one_prefix_at_a_time() {
    // The writer's pool lives on the runtime it was made on: the replay uses that one.
    let rt = runtime();
    let lake = rt.block_on(Target::sqlite());
    // The lake's own cache: DIR/write-perfetto/.
    exports_during_ingestion_show_one_prefix_each(rt, lake, &[]);
}

#[test]
fn a_process_being_ingested_into_postgres_exports_one_prefix_at_a_time() {
    let rt = runtime();
    let lake = rt.block_on(Target::postgres());
    let cache = tempfile::tempdir().unwrap();
    let args = vec!["--cache".to_string(), cache.path().display().to_string()];
    exports_during_ingestion_show_one_prefix_each(rt, lake, &args);
}
