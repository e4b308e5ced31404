//! Bad input: a private copy of the fixture lake, damaged one thing at a time (block payloads,
//! metadata rows, absurd values), exported through the built binary. Each case ends either in
//! a correct trace (exit 0, any repair counted in the `--json` summary, the trace decoding
//! cleanly and passing `inspect-trace --strict`) or in a one-line error naming the process,
//! stream, block or column at fault with the documented exit status, no output file and no
//! partition recorded for the damaged data. Never a panic (exit 101), never a hang: every run
//! is bounded.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;
use write_perfetto::lake::MetadataReads;

use support::damage::{
    MAIN_PROCESS, Record, SECONDARY_PROCESS, assert_inspector_clean, blob_literal, buffers,
    envelope, envelope_of_frames, join, lake_sql, payload_path, records, run_bounded, stream_of,
    thread_blocks, type_name, u64_at, udts, udts_cbor, write_payload,
};
use support::lake::{fixture_copy, runtime, sha256_hex, stderr};
use support::trace::{Trace, decode};
use write_perfetto::lake::rows::{BlockRow, StreamRow, StreamTypes};
use write_perfetto::partitions::catalog::Catalog;
use write_perfetto_test_lake::writer::LakeWriter;

const RUN_TIMEOUT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// The harness

/// A private copy of the fixture lake, a partition cache and an output directory of its own.
struct Case {
    lake: tempfile::TempDir,
    /// Current directory of the runs; holds `cache/` and `out/`.
    work: tempfile::TempDir,
}

/// A successful export.
struct Exported {
    summary: serde_json::Value,
    bytes: Vec<u8>,
    trace: Trace,
}

impl Exported {
    fn oddity(&self, name: &str) -> u64 {
        self.summary["oddities"][name]
            .as_u64()
            .unwrap_or_else(|| panic!("no oddity {name} in {}", self.summary))
    }
}

impl Case {
    fn new() -> Case {
        let case = Case {
            lake: fixture_copy(),
            work: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir(case.out_dir()).unwrap();
        case
    }

    fn dir(&self) -> &Path {
        self.lake.path()
    }

    fn out_dir(&self) -> PathBuf {
        self.work.path().join("out")
    }

    fn cache_dir(&self) -> PathBuf {
        self.work.path().join("cache")
    }

    fn trace_path(&self) -> PathBuf {
        self.out_dir().join("trace.perfetto-trace")
    }

    fn sql(&self, sql: &str) {
        lake_sql(self.dir(), sql);
    }

    fn blocks(&self, process: &str) -> Vec<BlockRow> {
        thread_blocks(self.dir(), process)
    }

    fn block(&self, id: &str) -> BlockRow {
        [MAIN_PROCESS, SECONDARY_PROCESS]
            .iter()
            .flat_map(|p| self.blocks(p))
            .find(|b| b.block_id.to_string() == id)
            .unwrap_or_else(|| panic!("no block {id}"))
    }

    fn stream(&self, block: &BlockRow) -> (StreamRow, StreamTypes) {
        stream_of(self.dir(), block)
    }

    /// Exports `process` with `--json` to `out/trace.perfetto-trace`, bounded in time.
    fn run(&self, process: &str) -> Output {
        let output = run_bounded(
            &[
                process,
                "--lake",
                self.dir().to_str().unwrap(),
                "--cache",
                self.cache_dir().to_str().unwrap(),
                "--json",
                "-o",
                self.trace_path().to_str().unwrap(),
            ],
            &self.out_dir(),
            RUN_TIMEOUT,
        );
        assert_ne!(
            output.status.code(),
            Some(101),
            "write-perfetto panicked: {}",
            stderr(&output)
        );
        assert!(
            output.status.code().is_some(),
            "write-perfetto died of a signal: {:?} {}",
            output.status,
            stderr(&output)
        );
        output
    }

    /// The run fails with `code` and one line naming everything in `mentions`; nothing is left
    /// in the output directory. Returns the line.
    fn fails(&self, process: &str, code: i32, mentions: &[&str]) -> String {
        let output = self.run(process);
        let text = stderr(&output);
        assert_eq!(
            output.status.code(),
            Some(code),
            "expected exit {code}; stderr: {text}"
        );
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "stderr is not one line: {text:?}");
        let line = lines[0];
        assert!(
            line.starts_with("write-perfetto: error: "),
            "unexpected stderr: {line:?}"
        );
        for m in mentions {
            assert!(line.contains(m), "{line:?} does not mention {m:?}");
        }
        assert!(output.stdout.is_empty(), "stdout after a failure");
        let left: Vec<_> = std::fs::read_dir(self.out_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "left in the output directory: {left:?}");
        eprintln!("exit {code}: {line}");
        line.to_string()
    }

    /// Like [`fails`] with exit 4, and no live partition holds the stream's events (neither its
    /// thread partition nor the process's async partition).
    fn fails_on_block(&self, block: &BlockRow, what: &str) -> String {
        let process = block.process_id.to_string();
        let line = self.fails(
            &process,
            4,
            &[
                &block.block_id.to_string(),
                &block.stream_id.to_string(),
                what,
            ],
        );
        let live = self.live_partitions(&process);
        let stream = block.stream_id.to_string();
        assert!(
            !live
                .iter()
                .any(|(view, instance)| instance == &stream || view == "async_events"),
            "a partition holding block {} was recorded: {live:?}",
            block.block_id
        );
        line
    }

    /// (view, instance) of the live rows of the run's partition catalog.
    fn live_partitions(&self, process: &str) -> Vec<(String, String)> {
        let path = self.cache_dir().join("catalog.db");
        if !path.exists() {
            return Vec::new();
        }
        let id = uuid::Uuid::parse_str(process).unwrap();
        runtime().block_on(async {
            let catalog = Catalog::open_sqlite(&path, &|_| {}).await.unwrap();
            catalog
                .live_rows(&id)
                .await
                .unwrap()
                .into_iter()
                .map(|r| (r.view, r.instance))
                .collect()
        })
    }

    /// The run succeeds; the summary describes the file, which decodes without a problem and
    /// passes the independent inspector.
    fn exports(&self, process: &str) -> Exported {
        let output = self.run(process);
        assert_eq!(
            output.status.code(),
            Some(0),
            "export failed: {}",
            stderr(&output)
        );
        let summary: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("--json summary");
        let bytes = std::fs::read(self.trace_path()).expect("trace written");
        assert_eq!(summary["sha256"].as_str().unwrap(), sha256_hex(&bytes));
        let trace = decode(&bytes);
        assert!(trace.problems.is_empty(), "{:#?}", trace.problems);
        assert_inspector_clean(&self.trace_path());
        eprintln!("exit 0: oddities {}", summary["oddities"]);
        Exported {
            summary,
            bytes,
            trace,
        }
    }
}

/// The export of an undamaged copy.
fn reference(process: &str) -> Exported {
    Case::new().exports(process)
}

/// The blocks of the fixture's main process on the thread stream named `thread`, in stream order.
fn fixture_thread_blocks(thread: &str) -> Vec<BlockRow> {
    let lake = support::lake::fixture_dir();
    let stream = support::damage::thread_streams(&lake, MAIN_PROCESS)
        .into_iter()
        .find(|s| {
            s.properties
                .iter()
                .any(|(k, v)| k == "thread-name" && v == thread)
        })
        .unwrap_or_else(|| panic!("the fixture has no thread stream named {thread}"));
    let blocks = support::damage::thread_blocks(&lake, MAIN_PROCESS);
    blocks
        .into_iter()
        .filter(|b| b.stream_id == stream.stream_id)
        .collect()
}

/// The fixture's main-thread block of the main process: thread spans only.
static MAIN_THREAD_BLOCK: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let blocks = fixture_thread_blocks("main");
    assert_eq!(blocks.len(), 1, "the main thread has one block");
    blocks[0].block_id.to_string()
});

/// Rewrites a block's payload from its (possibly edited) buffers.
fn rewrite(case: &Case, block: &BlockRow, dependencies: &[u8], objects: &[u8]) {
    write_payload(case.dir(), block, &envelope(dependencies, objects));
}

// ---------------------------------------------------------------------------------------------
// 1. Which streams are read

#[test]
fn a_process_whose_only_stream_is_an_empty_log_stream_exits_3_naming_it() {
    let case = Case::new();
    let process_id = "7e57a110-0000-4000-8000-000000000001";
    runtime().block_on(async {
        let lake = support::lake::open_embedded(case.dir()).await;
        let secondary = uuid::Uuid::parse_str(SECONDARY_PROCESS).unwrap();
        let mut process = lake.metadata.process(&secondary).await.unwrap().unwrap();
        let mut stream = lake.metadata.thread_streams(&secondary).await.unwrap()[0].clone();
        let wanted = |id| id == stream.stream_id;
        let mut types = lake
            .metadata
            .stream_types(&secondary, &wanted)
            .await
            .unwrap();
        let types = types.remove(&stream.stream_id).unwrap();
        process.process_id = uuid::Uuid::parse_str(process_id).unwrap();
        stream.process_id = process.process_id;
        stream.stream_id = uuid::Uuid::parse_str("7e57a110-0000-4000-8000-000000000002").unwrap();
        stream.tags = vec!["log".into()];
        let writer = LakeWriter::create_embedded(case.dir()).await.unwrap();
        writer.insert_process(&process).await.unwrap();
        writer.insert_stream(&stream, &types).await.unwrap();
        writer.close().await;
    });
    case.fails(
        process_id,
        3,
        &[process_id, "no thread streams", "no log entries yet"],
    );
}

#[test]
fn a_stream_of_another_format_is_skipped_and_its_blocks_never_read() {
    let expected = reference(MAIN_PROCESS);
    let case = Case::new();
    let template = case.block(&MAIN_THREAD_BLOCK);
    let (mut stream, mut types) = case.stream(&template);
    stream.stream_id = uuid::Uuid::parse_str("0717b000-0000-4000-8000-000000000001").unwrap();
    stream.format = "otlp/v1/traces".into();
    stream.tags = vec!["cpu".into()];
    types.objects_metadata = b"not transit metadata".to_vec().into();
    types.dependencies_metadata = b"not transit metadata either".to_vec().into();
    // Same ticks and times as a genuine block: the inferred tick frequency does not move.
    let mut block = template.clone();
    block.stream_id = stream.stream_id;
    block.block_id = uuid::Uuid::parse_str("0717b000-0000-4000-8000-000000000002").unwrap();
    runtime().block_on(async {
        let writer = LakeWriter::create_embedded(case.dir()).await.unwrap();
        writer.insert_stream(&stream, &types).await.unwrap();
        writer
            .insert_block(
                &block,
                bytes::Bytes::from_static(b"\xffgarbage, not a payload"),
            )
            .await
            .unwrap();
        writer.close().await;
    });
    assert!(payload_path(case.dir(), &block).is_file());
    let got = case.exports(MAIN_PROCESS);
    assert_eq!(got.summary["blocks_read"], expected.summary["blocks_read"]);
    assert!(got.bytes == expected.bytes, "the trace changed");
}

// ---------------------------------------------------------------------------------------------
// 2. Damaged block payloads: exit 4 naming the block and its stream

#[test]
fn an_empty_block_payload_exits_4_naming_the_block() {
    let case = Case::new();
    let block = case.block(&MAIN_THREAD_BLOCK);
    write_payload(case.dir(), &block, b"");
    case.fails_on_block(&block, "empty payload");
}

#[test]
fn a_payload_that_is_not_cbor_exits_4_naming_the_block() {
    let case = Case::new();
    let block = case.block(&MAIN_THREAD_BLOCK);
    write_payload(case.dir(), &block, b"\xff\xfe\xfd this is not CBOR");
    case.fails_on_block(&block, "not a CBOR block envelope");
}

#[test]
fn a_cbor_map_with_the_wrong_keys_exits_4_naming_the_block() {
    let case = Case::new();
    let block = case.block(&MAIN_THREAD_BLOCK);
    let (dependencies, objects) = buffers(case.dir(), &block);
    let mut map = std::collections::BTreeMap::new();
    map.insert("deps", serde_bytes_like(dependencies));
    map.insert("objs", serde_bytes_like(objects));
    let payload = micromegas_telemetry::wire_format::encode_cbor(&map).unwrap();
    write_payload(case.dir(), &block, &payload);
    case.fails_on_block(&block, "not a CBOR block envelope");
}

/// A byte string in CBOR (ciborium writes `Vec<u8>` as an array of integers otherwise).
fn serde_bytes_like(bytes: Vec<u8>) -> ciborium::Value {
    ciborium::Value::Bytes(bytes)
}

#[test]
fn a_bad_lz4_frame_exits_4_naming_the_block() {
    let case = Case::new();
    let block = case.block(&MAIN_THREAD_BLOCK);
    let (dependencies, _) = buffers(case.dir(), &block);
    // The frame magic, then garbage.
    let mut frame = vec![0x04, 0x22, 0x4d, 0x18];
    frame.extend_from_slice(b"\x40\x70\xdfgarbage where LZ4 blocks should be");
    let payload = envelope_of_frames(
        micromegas_telemetry::compression::compress(&dependencies).unwrap(),
        frame,
    );
    write_payload(case.dir(), &block, &payload);
    case.fails_on_block(&block, "LZ4");
}

#[test]
fn a_truncated_transit_record_exits_4_naming_the_block() {
    let case = Case::new();
    let block = case.block(&MAIN_THREAD_BLOCK);
    let (dependencies, mut objects) = buffers(case.dir(), &block);
    objects.truncate(objects.len() - 3);
    rewrite(&case, &block, &dependencies, &objects);
    case.fails_on_block(&block, "truncated");
}

#[test]
fn an_object_type_index_out_of_range_exits_4_naming_the_block() {
    let case = Case::new();
    let block = case.block(&MAIN_THREAD_BLOCK);
    let (dependencies, mut objects) = buffers(case.dir(), &block);
    objects[0] = 200;
    rewrite(&case, &block, &dependencies, &objects);
    case.fails_on_block(&block, "type index 200 out of range");
}

#[test]
fn a_reference_to_an_unknown_dependency_exits_4_naming_the_block() {
    let case = Case::new();
    let block = case.block(&MAIN_THREAD_BLOCK);
    let (_, objects) = buffers(case.dir(), &block);
    rewrite(&case, &block, &[], &objects);
    case.fails_on_block(&block, "unknown");
}

#[test]
fn invalid_utf8_in_a_static_string_is_replaced_and_the_export_succeeds() {
    let expected = reference(MAIN_PROCESS);
    let case = Case::new();
    let block = case.block(&MAIN_THREAD_BLOCK);
    let (_, stream) = case.stream(&block);
    let types = udts(&stream.dependencies_metadata);
    let (dependencies, objects) = buffers(case.dir(), &block);
    let mut deps = records(&dependencies, &types);
    // The strings the block's span records name their spans with.
    let names: Vec<u64> = deps
        .iter()
        .filter(|r| type_name(&types, r) == "SpanRecord")
        .map(|r| u64_at(&r.body, 8))
        .collect();
    assert!(!names.is_empty());
    let mut damaged = Vec::new();
    for r in deps
        .iter_mut()
        .filter(|r| type_name(&types, r) == "StaticString" && names.contains(&u64_at(&r.body, 0)))
    {
        let text = String::from_utf8(r.body[8..].to_vec()).unwrap();
        r.body[8] = 0xff; // never valid in UTF-8
        damaged.push(text);
    }
    rewrite(&case, &block, &join(&deps, &types), &objects);

    let got = case.exports(MAIN_PROCESS);
    let main = |e: &Exported| {
        let track = e
            .trace
            .thread_tracks()
            .into_iter()
            .find(|t| t.label() == "main")
            .expect("main thread track")
            .uuid;
        e.trace.slices_of(track).to_vec()
    };
    let (before, after) = (main(&expected), main(&got));
    assert_eq!(before.len(), after.len());
    let mut replaced = 0;
    for (b, a) in before.iter().zip(&after) {
        assert_eq!((b.begin, b.end, b.depth), (a.begin, a.end, a.depth));
        if damaged.contains(&b.name) {
            let mut chars = b.name.chars();
            chars.next();
            assert_eq!(a.name, format!("\u{fffd}{}", chars.as_str()));
            replaced += 1;
        } else {
            assert_eq!(a.name, b.name);
        }
    }
    assert!(replaced > 0, "no slice carries a replaced name");
}

#[test]
fn an_odd_length_utf16_string_dependency_exits_4_naming_the_block() {
    let case = Case::new();
    // The first block with a string dependency of its own codec (runtime span names).
    let (block, types, mut deps, objects) = case
        .blocks(MAIN_PROCESS)
        .into_iter()
        .find_map(|block| {
            let types = udts(&case.stream(&block).1.dependencies_metadata);
            let (dependencies, objects) = buffers(case.dir(), &block);
            let deps = records(&dependencies, &types);
            deps.iter()
                .any(|r| type_name(&types, r) == "StaticStringDependency")
                .then_some((block, types, deps, objects))
        })
        .expect("a block with a StaticStringDependency");
    let record: &mut Record = deps
        .iter_mut()
        .find(|r| type_name(&types, r) == "StaticStringDependency")
        .unwrap();
    // u64 id, u8 codec, u32 len, bytes: UTF-16 with an odd byte count.
    let len = u32::from_le_bytes(record.body[9..13].try_into().unwrap());
    let odd = if len % 2 == 1 { len } else { len - 1 };
    record.body[8] = 1;
    record.body[9..13].copy_from_slice(&odd.to_le_bytes());
    rewrite(&case, &block, &join(&deps, &types), &objects);
    case.fails_on_block(&block, "odd length");
}

#[test]
fn member_offsets_beyond_the_type_size_exit_4_naming_the_stream() {
    let case = Case::new();
    let block = case.block(&MAIN_THREAD_BLOCK);
    let (stream, stream_types) = case.stream(&block);
    let mut types = udts(&stream_types.objects_metadata);
    let begin = types
        .iter_mut()
        .find(|t| t.name.as_str() == "BeginThreadSpanEvent")
        .unwrap();
    let size = begin.size;
    let time = begin
        .members
        .iter_mut()
        .find(|m| m.name.as_str() == "time")
        .unwrap();
    time.offset = size + 8;
    case.sql(&format!(
        "UPDATE streams SET objects_metadata = {} WHERE stream_id = '{}'",
        blob_literal(&udts_cbor(&types)),
        stream.stream_id
    ));
    let line = case.fails(
        MAIN_PROCESS,
        4,
        &[
            &stream.stream_id.to_string(),
            "BeginThreadSpanEvent.time",
            "exceeds",
        ],
    );
    assert!(line.contains("metadata"), "{line}");
    let live = case.live_partitions(MAIN_PROCESS);
    assert!(
        !live
            .iter()
            .any(|(view, instance)| instance == &stream.stream_id.to_string()
                || view == "async_events"),
        "{live:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Metadata

#[test]
fn a_null_block_object_count_exits_4_naming_the_block_and_the_column() {
    let case = Case::new();
    case.sql(&format!(
        "UPDATE blocks SET nb_objects = NULL WHERE block_id = '{}'",
        *MAIN_THREAD_BLOCK
    ));
    case.fails(
        MAIN_PROCESS,
        4,
        &["blocks.nb_objects", "NULL", MAIN_THREAD_BLOCK.as_str()],
    );
}

#[test]
fn a_null_process_start_time_exits_4_naming_the_process_and_the_column() {
    let case = Case::new();
    case.sql(&format!(
        "UPDATE processes SET start_time = NULL WHERE process_id = '{MAIN_PROCESS}'"
    ));
    case.fails(
        MAIN_PROCESS,
        4,
        &["processes.start_time", "NULL", MAIN_PROCESS],
    );
}

#[test]
fn a_null_stream_objects_metadata_exits_4_naming_the_stream_and_the_column() {
    let case = Case::new();
    let stream = case
        .stream(&case.block(&MAIN_THREAD_BLOCK))
        .0
        .stream_id
        .to_string();
    case.sql(&format!(
        "UPDATE streams SET objects_metadata = NULL WHERE stream_id = '{stream}'"
    ));
    case.fails(
        MAIN_PROCESS,
        4,
        &["streams.objects_metadata", "NULL", &stream],
    );
}

#[test]
fn tsc_frequency_0_with_a_single_block_is_inferred_from_it() {
    // The reference without the log and metrics blocks: the thread blocks alone bound its clock.
    let reference_case = Case::new();
    reference_case.sql(&format!(
        "DELETE FROM blocks WHERE process_id = '{SECONDARY_PROCESS}' AND stream_id IN \
         (SELECT stream_id FROM streams WHERE tags NOT LIKE '%\"cpu\"%')"
    ));
    let expected = reference_case.exports(SECONDARY_PROCESS);
    let case = Case::new();
    let blocks = case.blocks(SECONDARY_PROCESS);
    assert_eq!(blocks.len(), 2);
    let process = runtime().block_on(async {
        let lake = support::lake::open_embedded(case.dir()).await;
        let id = uuid::Uuid::parse_str(SECONDARY_PROCESS).unwrap();
        lake.metadata.process(&id).await.unwrap().unwrap()
    });
    assert_eq!(
        process.tsc_frequency, 0,
        "the secondary process has no frequency"
    );
    let start_ns = process.start_time.timestamp_nanos_opt().unwrap() as u64;
    // Keep only the thread block that ends last (the main thread's), and no other block of any
    // stream (log and metrics blocks would bound the clock too).
    let kept = blocks.iter().max_by_key(|b| b.end_ticks).unwrap();
    case.sql(&format!(
        "DELETE FROM blocks WHERE process_id = '{SECONDARY_PROCESS}' AND block_id != '{}'",
        kept.block_id
    ));
    assert_eq!(case.blocks(SECONDARY_PROCESS).len(), 1);

    let got = case.exports(SECONDARY_PROCESS);
    assert_eq!(got.summary["thread_tracks"], 1);
    assert_eq!(got.summary["blocks_read"], 1);
    let by_label = got.trace.thread_slices_by_label();
    let (label, slices) = by_label.iter().next().unwrap();
    assert_eq!(&expected.trace.thread_slices_by_label()[label], slices);
    // The inferred frequency puts the spans between the process start and the block end.
    let end_ns = kept.end_time.timestamp_nanos_opt().unwrap() as u64;
    for s in slices {
        assert!(
            start_ns <= s.begin && s.end <= end_ns + 1_000,
            "{s:?} outside [{start_ns}, {end_ns}]"
        );
    }
}

/// The blocks of the fixture's deep call-stack thread (ten blocks), in stream order.
fn deep_stack_blocks(case: &Case) -> Vec<BlockRow> {
    let stream = fixture_thread_blocks("fixture-sync-deep")[0].stream_id;
    let blocks: Vec<BlockRow> = case
        .blocks(MAIN_PROCESS)
        .into_iter()
        .filter(|b| b.stream_id == stream)
        .collect();
    assert!(blocks.len() > 2);
    blocks
}

#[test]
fn a_block_ending_before_it_begins_is_placed_by_its_events() {
    let expected = reference(MAIN_PROCESS);
    let case = Case::new();
    // A block's bounds only bound the spans it leaves open; its events carry their own times.
    // A middle block and the stream's last one (whose end closes what is left open) end
    // before they begin: they are taken as ending at their last event.
    let deep = deep_stack_blocks(&case);
    for block in [&deep[deep.len() / 2], deep.last().unwrap()] {
        case.sql(&format!(
            "UPDATE blocks SET end_ticks = begin_ticks - 100000 WHERE block_id = '{}'",
            block.block_id
        ));
    }
    let got = case.exports(MAIN_PROCESS);
    assert!(got.bytes == expected.bytes, "the trace changed");
}

#[test]
fn blocks_of_one_stream_overlapping_in_time_still_nest() {
    let expected = reference(MAIN_PROCESS);
    let case = Case::new();
    let deep = deep_stack_blocks(&case);
    // Every block but the first begins where the first does.
    for b in &deep[1..] {
        case.sql(&format!(
            "UPDATE blocks SET begin_ticks = {}, begin_time = '{}' WHERE block_id = '{}'",
            deep[0].begin_ticks,
            write_perfetto_test_lake::writer::time_text(&deep[0].begin_time),
            b.block_id
        ));
    }
    let got = case.exports(MAIN_PROCESS);
    assert_eq!(
        got.trace.thread_slices_by_label(),
        expected.trace.thread_slices_by_label()
    );
}

#[test]
fn duplicate_async_span_ids_are_counted_and_the_trace_still_nests() {
    let expected = reference(MAIN_PROCESS);
    let case = Case::new();
    // A worker stream of one block holding async spans: the same block again, under a new id
    // and the next object offset, repeats every span id.
    let workers = ["fixture-worker-0", "fixture-worker-1"].map(fixture_thread_blocks);
    let original = (workers.into_iter())
        .find(|blocks| blocks.len() == 1)
        .expect("a worker stream of one block")
        .remove(0);
    let mut copy = original.clone();
    copy.block_id = uuid::Uuid::parse_str("d0b1e000-0000-4000-8000-000000000001").unwrap();
    copy.object_offset = original.object_offset + original.nb_objects as i64;
    copy.begin_ticks = original.end_ticks;
    copy.begin_time = original.end_time;
    let payload = std::fs::read(payload_path(case.dir(), &original)).unwrap();
    runtime().block_on(async {
        let writer = LakeWriter::create_embedded(case.dir()).await.unwrap();
        writer
            .insert_block(&copy, bytes::Bytes::from(payload))
            .await
            .unwrap();
        writer.close().await;
    });
    let got = case.exports(MAIN_PROCESS);
    let duplicates = got.oddity("duplicate_span_ids");
    assert!(duplicates > 0, "{}", got.summary);
    assert_eq!(expected.oddity("duplicate_span_ids"), 0);
    // Visible in the trace: the duplicated ids are on two slices each (the latest begin takes
    // the first end, so a duplicated pair nests), as is the id of each copied end of a span
    // begun on another thread (one slice from its begin, one from the data start: clipped).
    let copied_ends = got.oddity("clipped_begin");
    assert_eq!(expected.oddity("clipped_begin"), 0);
    let mut slices_of_id: std::collections::BTreeMap<String, usize> = Default::default();
    for (_, slice) in got.trace.async_slices() {
        *slices_of_id
            .entry(slice.annotation("span_id").expect("span_id").to_string())
            .or_default() += 1;
    }
    assert_eq!(
        slices_of_id.values().filter(|&&n| n == 2).count() as u64,
        duplicates + copied_ends
    );
    assert!(slices_of_id.values().all(|&n| n <= 2));
    assert_eq!(
        got.summary["spans"]["async"].as_u64().unwrap(),
        expected.summary["spans"]["async"].as_u64().unwrap() + duplicates + copied_ends,
        "one more slice per duplicate, and one per copied end of a span begun elsewhere"
    );
    // Strictly nested lanes (checked by the decoder and the inspector above): every slice lies
    // within its parent on its lane.
    for (uuid, slices) in &got.trace.slices {
        for s in slices {
            if let Some(p) = s.parent {
                assert!(
                    slices[p].contains(s),
                    "track {uuid}: {s:?} outside its parent"
                );
            }
        }
    }
    // The same bytes whatever the order of the pairing's hash maps (seeded per run).
    for _ in 0..2 {
        std::fs::remove_file(case.trace_path()).unwrap();
        assert!(
            case.exports(MAIN_PROCESS).bytes == got.bytes,
            "exports differ"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Absurd times

#[test]
fn a_process_start_time_before_1970_exits_4_naming_the_process() {
    let case = Case::new();
    case.sql(&format!(
        "UPDATE processes SET start_time = '1960-01-01T00:00:00.000000Z', tsc_frequency = 1000000000 \
         WHERE process_id = '{MAIN_PROCESS}'"
    ));
    case.fails(MAIN_PROCESS, 4, &[MAIN_PROCESS, "1960"]);
}

#[test]
fn block_ticks_beyond_the_nanosecond_range_exit_4_naming_the_process() {
    let case = Case::new();
    case.sql(&format!(
        "UPDATE processes SET tsc_frequency = 1000000000 WHERE process_id = '{MAIN_PROCESS}';
         UPDATE blocks SET end_ticks = {} WHERE block_id = '{}'",
        i64::MAX,
        *MAIN_THREAD_BLOCK
    ));
    case.fails(
        MAIN_PROCESS,
        4,
        &[MAIN_PROCESS, &i64::MAX.to_string(), "outside the range"],
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Ids in another case

#[test]
fn ids_stored_in_upper_case_export_the_same_trace() {
    let case = Case::new();
    case.sql(
        "UPDATE processes SET process_id = upper(process_id), \
           parent_process_id = upper(parent_process_id);
         UPDATE streams SET stream_id = upper(stream_id), process_id = upper(process_id);
         UPDATE blocks SET block_id = upper(block_id), stream_id = upper(stream_id), \
           process_id = upper(process_id)",
    );
    let upper = case.exports(MAIN_PROCESS);
    assert_eq!(upper.bytes, reference(MAIN_PROCESS).bytes);
}
