//! Test lakes: copies of the committed fixture, damaged copies, PostgreSQL copies.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use write_perfetto::lake::MetadataReads;
use write_perfetto::lake::rows::{LOG_STREAMS, METRIC_STREAMS, THREAD_STREAMS};

use write_perfetto::lake::{BlobStore, Lake, LakeLocation};
use write_perfetto_test_lake::synth::{SynthSpec, generate};
use write_perfetto_test_lake::writer::LakeWriter;

pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/lake")
}

/// A private copy of the fixture lake (tests may write caches or damage it): only the lake
/// itself, `lake.db` and `blobs/` — never a cache an earlier export left beside them.
pub fn fixture_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    copy_lake(&fixture_dir(), dir.path());
    dir
}

/// Copies the lake of `from` (`lake.db`, `blobs/`) to `to`.
pub fn copy_lake(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    std::fs::copy(from.join("lake.db"), to.join("lake.db")).unwrap();
    copy_dir(&from.join("blobs"), &to.join("blobs"));
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub async fn open_embedded(dir: &Path) -> Lake {
    Lake::open(LakeLocation::Embedded {
        dir: dir.to_path_buf(),
    })
    .await
    .unwrap()
}

/// Process ids of the lake, newest first.
pub async fn process_ids(lake: &Lake) -> Vec<String> {
    lake.metadata
        .process_summaries(1000)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.process_id)
        .collect()
}

/// Copies the metadata of every process's thread, log and metrics streams and blocks into an empty PostgreSQL
/// database with Micromegas's schema; payloads stay in `blobs_dir` (served as file://).
pub async fn copy_to_postgres(src_dir: &Path, pg_url: &str) {
    let src = open_embedded(src_dir).await;
    let writer = LakeWriter::create_postgres(pg_url, BlobStore::local(src_dir).unwrap())
        .await
        .unwrap();
    for id in process_ids(&src).await {
        let id = uuid::Uuid::parse_str(&id).unwrap();
        writer
            .insert_process(&src.metadata.process(&id).await.unwrap().unwrap())
            .await
            .unwrap();
        let types = src.metadata.stream_types(&id, &|_| true).await.unwrap();
        for kind in [THREAD_STREAMS, LOG_STREAMS, METRIC_STREAMS] {
            for stream in src.metadata.streams(&id, kind).await.unwrap() {
                let stream_types = &types[&stream.stream_id];
                writer.insert_stream(&stream, stream_types).await.unwrap();
            }
            for block in src.metadata.blocks(&id, kind).await.unwrap() {
                writer.insert_block_row(&block).await.unwrap();
            }
        }
    }
    writer.close().await;
}

/// The built binary, with no lake settings inherited from the environment.
/// A millisecond at +10 ms of a fixture process, its threads' files cut into row groups of a
/// row (a block each): a warm export of it fetches a few row groups of each file.
pub const ROW_GROUP_WINDOW: [&str; 6] = [
    "--begin",
    "+10ms",
    "--end",
    "+11ms",
    "--row-group-rows",
    "1",
];

pub fn write_perfetto() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_write-perfetto"));
    command
        .env_remove("MICROMEGAS_SQL_CONNECTION_STRING")
        .env_remove("MICROMEGAS_OBJECT_STORE_URI")
        .env_remove("RUST_LOG");
    command
}

pub fn run(args: &[&str], cwd: &Path) -> Output {
    write_perfetto()
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run write-perfetto")
}

/// `write-perfetto processes --json` of an embedded lake, run in it: the listed processes.
pub fn processes_json(lake: &Path) -> Vec<serde_json::Value> {
    let output = run(
        &["processes", "--json", "--lake", lake.to_str().unwrap()],
        lake,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The output of a run that must have succeeded.
pub fn succeeded(output: Output) -> Output {
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status.code(),
        stderr(&output)
    );
    output
}

/// The `--json` summary a run printed.
pub fn summary(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("bad --json summary ({e}): {}", stdout(output)))
}

/// The names in `dir`, sorted.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every thread block of every process of the lake, with its stream and its payload.
pub async fn thread_blocks_with_payloads(
    lake: &Lake,
) -> Vec<(
    write_perfetto::lake::rows::StreamTypes,
    write_perfetto::lake::rows::BlockRow,
    Vec<u8>,
)> {
    let mut out = Vec::new();
    for id in process_ids(lake).await {
        let id = uuid::Uuid::parse_str(&id).unwrap();
        let types = lake.metadata.stream_types(&id, &|_| true).await.unwrap();
        for block in lake.metadata.thread_blocks(&id).await.unwrap() {
            let stream = types[&block.stream_id].clone();
            let payload = lake.block_payload(&block).await.unwrap().to_vec();
            out.push((stream, block, payload));
        }
    }
    out
}

/// The trace of `process` exported from the embedded lake at `lake` into a fresh cache: what
/// a run never disturbed produces.
pub fn reference_trace(lake: &Path, process: &str) -> Vec<u8> {
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("reference.pftrace");
    succeeded(run(
        &[
            process,
            "--lake",
            lake.to_str().unwrap(),
            "--cache",
            scratch.path().join("cache").to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        scratch.path(),
    ));
    std::fs::read(out).unwrap()
}

/// A synthetic lake big enough for a run to last a couple of seconds (what `gen-lake --seed 1
/// --threads 8 --spans 200000 --async-spans 20000` writes); returns its process id.
pub fn synthetic_lake(dir: &Path) -> String {
    let spec = SynthSpec {
        seed: 1,
        processes: 1,
        threads: 8,
        spans: 200_000,
        async_spans: 20_000,
        logs: 0,
        measures: 0,
        max_depth: 20,
        events_per_block: 4096,
        tsc_frequency: 0,
        duration_ns: 0,
        async_span_ids: 0,
    };
    let report = runtime().block_on(async {
        let writer = LakeWriter::create_embedded(dir).await.unwrap();
        let report = generate(&writer, &spec).await.unwrap();
        writer.close().await;
        report
    });
    report.process_ids[0].to_string()
}
