//! Damaging a private copy of the fixture lake one thing at a time (block payloads rebuilt
//! record by record in the real wire format, metadata rows edited with SQL), and running the
//! exporter with a bound on its run time.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use write_perfetto::lake::MetadataReads;

use micromegas_telemetry::block_wire_format::BlockPayload;
use micromegas_telemetry::compression::compress;
use micromegas_telemetry::wire_format::encode_cbor;
use micromegas_transit::UserDefinedType;
use write_perfetto::decode::decode_payload;
use write_perfetto::lake::rows::{BlockRow, StreamRow, StreamTypes, block_object_key};
use write_perfetto_test_lake::writer::LakeWriter;

use super::lake::{open_embedded, runtime, write_perfetto};

/// The fixture lake's main process (six thread streams, async spans on two workers).
pub const MAIN_PROCESS: &str = "9311096b-e5b5-4742-a12e-f1306bfed76d";
/// The fixture lake's secondary process (two thread streams of one block each).
pub const SECONDARY_PROCESS: &str = "c3271d73-e3e6-40cf-a7bc-35316172d3e4";

// ---------------------------------------------------------------------------------------------
// Bounded runs

/// Runs the exporter with `args` in `cwd`, its stdout and stderr captured through files (no
/// pipe can fill up), killing it and failing the test if it runs longer than `timeout`.
pub fn run_bounded(args: &[&str], cwd: &Path, timeout: Duration) -> Output {
    let mut command = write_perfetto();
    command.args(args);
    run_command_bounded(command, cwd, timeout)
}

pub fn run_command_bounded(mut command: Command, cwd: &Path, timeout: Duration) -> Output {
    let logs = tempfile::tempdir().expect("temp dir");
    let stdout_path = logs.path().join("stdout");
    let stderr_path = logs.path().join("stderr");
    let mut child = command
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", command.get_program()));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "write-perfetto still running after {timeout:?} (a hang); stderr so far: {}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: std::fs::read(&stdout_path).unwrap(),
        stderr: std::fs::read(&stderr_path).unwrap(),
    }
}

// ---------------------------------------------------------------------------------------------
// Metadata

/// Runs SQL on the embedded lake in `lake_dir`.
pub fn lake_sql(lake_dir: &Path, sql: &str) {
    runtime().block_on(async {
        let writer = LakeWriter::create_embedded(lake_dir).await.unwrap();
        writer.execute_sql(sql).await.unwrap();
        writer.close().await;
    })
}

/// The thread blocks of a process, as the exporter reads them (by stream, offset, id).
pub fn thread_blocks(lake_dir: &Path, process_id: &str) -> Vec<BlockRow> {
    let id = uuid::Uuid::parse_str(process_id).unwrap();
    runtime().block_on(async {
        let lake = open_embedded(lake_dir).await;
        lake.metadata.thread_blocks(&id).await.unwrap()
    })
}

/// The thread streams of a process, in stream id order.
pub fn thread_streams(lake_dir: &Path, process_id: &str) -> Vec<StreamRow> {
    let id = uuid::Uuid::parse_str(process_id).unwrap();
    runtime().block_on(async {
        let lake = open_embedded(lake_dir).await;
        lake.metadata.thread_streams(&id).await.unwrap()
    })
}

/// The stream of a block, and its type descriptions.
pub fn stream_of(lake_dir: &Path, block: &BlockRow) -> (StreamRow, StreamTypes) {
    let stream = thread_streams(lake_dir, &block.process_id.to_string())
        .into_iter()
        .find(|s| s.stream_id == block.stream_id)
        .expect("the block's stream");
    let types = runtime().block_on(async {
        let lake = open_embedded(lake_dir).await;
        let wanted = |id| id == block.stream_id;
        let types = lake.metadata.stream_types(&block.process_id, &wanted).await;
        types
            .unwrap()
            .remove(&block.stream_id)
            .expect("the stream's types")
    });
    (stream, types)
}

/// A CBOR list of type descriptions (a stream's metadata column), decoded.
pub fn udts(cbor: &[u8]) -> Vec<UserDefinedType> {
    ciborium::de::from_reader(cbor).expect("CBOR list of type descriptions")
}

pub fn udts_cbor(types: &[UserDefinedType]) -> Vec<u8> {
    encode_cbor(&types.to_vec()).unwrap()
}

/// `X'0a1b...'`: a SQLite blob literal.
pub fn blob_literal(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("X'{hex}'")
}

// ---------------------------------------------------------------------------------------------
// Payloads

pub fn payload_path(lake_dir: &Path, block: &BlockRow) -> PathBuf {
    lake_dir.join(block_object_key(
        &block.process_id,
        &block.stream_id,
        &block.block_id,
    ))
}

/// The two decompressed buffers of a block: (dependencies, objects).
pub fn buffers(lake_dir: &Path, block: &BlockRow) -> (Vec<u8>, Vec<u8>) {
    let payload = std::fs::read(payload_path(lake_dir, block)).unwrap();
    let buffers = decode_payload(&payload).unwrap();
    (buffers.dependencies, buffers.objects)
}

/// A payload as the telemetry sink encodes it: CBOR envelope of two LZ4 frames.
pub fn envelope(dependencies: &[u8], objects: &[u8]) -> Vec<u8> {
    envelope_of_frames(compress(dependencies).unwrap(), compress(objects).unwrap())
}

/// An envelope around frames given as they are (compressed or not).
pub fn envelope_of_frames(dependencies: Vec<u8>, objects: Vec<u8>) -> Vec<u8> {
    encode_cbor(&BlockPayload {
        dependencies,
        objects,
    })
    .unwrap()
}

pub fn write_payload(lake_dir: &Path, block: &BlockRow, payload: &[u8]) {
    std::fs::write(payload_path(lake_dir, block), payload).unwrap();
}

/// One transit record: its type index and its bytes (without the length prefix of
/// variable-size types).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub type_index: u8,
    pub body: Vec<u8>,
}

/// Splits a buffer into its records, reading sizes from the type descriptions.
pub fn records(buffer: &[u8], types: &[UserDefinedType]) -> Vec<Record> {
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < buffer.len() {
        let type_index = buffer[offset];
        offset += 1;
        let ty = &types[type_index as usize];
        let size = if ty.size > 0 {
            ty.size
        } else {
            let len = u32::from_le_bytes(buffer[offset..offset + 4].try_into().unwrap());
            offset += 4;
            len as usize
        };
        out.push(Record {
            type_index,
            body: buffer[offset..offset + size].to_vec(),
        });
        offset += size;
    }
    out
}

/// The buffer of `records` (the inverse of [`records`]).
pub fn join(records: &[Record], types: &[UserDefinedType]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        out.push(r.type_index);
        if types[r.type_index as usize].size == 0 {
            out.extend_from_slice(&(r.body.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(&r.body);
    }
    out
}

pub fn type_name(types: &[UserDefinedType], record: &Record) -> String {
    types[record.type_index as usize].name.to_string()
}

pub fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(bytes[offset..offset + 8].try_into().unwrap())
}

// ---------------------------------------------------------------------------------------------
// The independent inspector

pub fn inspector() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("WRITE_PERFETTO_INSPECT_TRACE") {
        return Some(PathBuf::from(path));
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tools/inspect-trace");
    path.exists().then_some(path)
}

/// `inspect-trace --strict` finds no error and no warning in the trace at `path` (skipped,
/// with a note, when the inspector is not there).
pub fn assert_inspector_clean(path: &Path) {
    let Some(inspector) = inspector() else {
        eprintln!("SKIPPED inspect-trace: not found (set WRITE_PERFETTO_INSPECT_TRACE)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.json");
    let mut command = Command::new(&inspector);
    command
        .arg(path)
        .args(["--strict", "-q", "--json"])
        .arg(&summary);
    let output = run_command_bounded(command, dir.path(), Duration::from_secs(300));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "inspect-trace --strict failed on {}:\n{text}\n{}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(json["errors"], 0, "{json}");
    assert_eq!(json["warnings"], 0, "{json}");
}
