//! Values at the edges: numeric flags outside their documented ranges, lake values whose sums
//! or differences leave the integer range, a process with streams but no block yet, and the
//! properties that tagged span ends carry, read back from the trace.

mod support;

use std::collections::BTreeSet;

use support::damage::{lake_sql, thread_blocks};
use support::lake::{fixture_copy, run, runtime, stderr, succeeded};
use support::trace::decode;
use write_perfetto::clock::Clock;
use write_perfetto::decode::{EventPhase, EventScope, StreamDecoder};
use write_perfetto::lake::{Lake, LakeLocation, MetadataReads};
use write_perfetto_test_lake::synth::{SynthSpec, generate};
use write_perfetto_test_lake::writer::LakeWriter;

const MAIN_PROCESS: &str = "9311096b-e5b5-4742-a12e-f1306bfed76d";

/// The one error line of a run that exited with `code`.
fn failed_with(output: &std::process::Output, code: i32) -> String {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(code), "stderr: {text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "not one line: {text:?}");
    lines[0].to_string()
}

#[test]
fn numeric_flags_outside_their_documented_range_are_usage_errors() {
    let lake = fixture_copy();
    let dir = lake.path().to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &[MAIN_PROCESS, "--partition-seconds", "288230376151711744"],
            "--partition-seconds",
        ),
        (
            &[MAIN_PROCESS, "--partition-seconds", "0"],
            "--partition-seconds",
        ),
        (
            &[MAIN_PROCESS, "--partition-seconds", "31622401"],
            "--partition-seconds",
        ),
        (
            &["cache", "gc", "--grace", "18446744073709551615"],
            "--grace",
        ),
        (&["cache", "gc", "--grace", "3153600001"], "--grace"),
        (&["processes", "--limit=-1"], "--limit"),
        (&["processes", "--limit", "0"], "--limit"),
        (&[MAIN_PROCESS, "--jobs", "0"], "--jobs"),
        (&[MAIN_PROCESS, "--threads", "100000"], "--threads"),
    ];
    for (args, flag) in cases {
        let mut all = args.to_vec();
        all.extend(["--lake", dir]);
        let output = run(&all, lake.path());
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(flag),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    // The edges themselves are accepted.
    succeeded(run(
        &[
            MAIN_PROCESS,
            "--lake",
            dir,
            "--partition-seconds",
            "31622400",
            "-o",
            "x.pftrace",
        ],
        lake.path(),
    ));
    succeeded(run(
        &["cache", "gc", "--lake", dir, "--grace", "3153600000"],
        lake.path(),
    ));
    succeeded(run(
        &["processes", "--lake", dir, "--limit", "1"],
        lake.path(),
    ));
}

#[test]
fn a_block_whose_offset_and_object_count_overflow_exits_4_naming_it() {
    let lake = fixture_copy();
    let block = thread_blocks(lake.path(), MAIN_PROCESS)[3].clone();
    lake_sql(
        lake.path(),
        &format!(
            "UPDATE blocks SET object_offset = {} WHERE block_id = '{}'",
            i64::MAX,
            block.block_id
        ),
    );
    let dir = lake.path().to_str().unwrap();
    let line = failed_with(&run(&[MAIN_PROCESS, "--lake", dir], lake.path()), 4);
    assert!(line.contains(&block.block_id.to_string()), "{line}");
    assert!(line.contains("object_offset"), "{line}");
}

#[test]
fn block_end_times_too_far_from_the_process_start_exit_4_naming_the_process() {
    // The frequency is inferred (tsc_frequency 0) from start_time to the last end_time: here
    // their difference in nanoseconds leaves the i64 range.
    let lake = fixture_copy();
    lake_sql(
        lake.path(),
        &format!(
            "UPDATE processes SET start_time = '2262-04-01T00:00:00.000000Z' WHERE process_id = '{MAIN_PROCESS}';
             UPDATE blocks SET end_time = '1677-09-22T00:00:00.000000Z' WHERE process_id = '{MAIN_PROCESS}';"
        ),
    );
    let dir = lake.path().to_str().unwrap();
    let line = failed_with(&run(&[MAIN_PROCESS, "--lake", dir], lake.path()), 4);
    assert!(line.contains(MAIN_PROCESS), "{line}");
}

#[test]
fn a_process_with_thread_streams_but_no_block_yet_exits_3_with_no_span_data_yet() {
    let lake = fixture_copy();
    lake_sql(
        lake.path(),
        &format!("DELETE FROM blocks WHERE process_id = '{MAIN_PROCESS}'"),
    );
    let dir = lake.path().to_str().unwrap();
    let line = failed_with(&run(&[MAIN_PROCESS, "--lake", dir], lake.path()), 3);
    assert!(line.contains("no span data yet"), "{line}");
    assert!(line.contains(MAIN_PROCESS), "{line}");
    assert!(
        !lake
            .path()
            .join(format!("{MAIN_PROCESS}.perfetto-trace"))
            .exists(),
        "no trace for a process without data"
    );
}

/// (span name, end in ns, sorted properties) of a span.
type TaggedEnd = (String, u64, Vec<(String, String)>);

/// Every tagged thread span end of the process, decoded straight from the blocks.
async fn tagged_thread_ends(lake: &Lake, id: uuid::Uuid) -> BTreeSet<TaggedEnd> {
    let process = lake.metadata.process(&id).await.unwrap().unwrap();
    let clock =
        Clock::for_process(&process, lake.metadata.block_end_bounds(&id).await.unwrap()).unwrap();
    let mut ends = BTreeSet::new();
    let types = lake.metadata.stream_types(&id, &|_| true).await.unwrap();
    for stream in lake.metadata.thread_streams(&id).await.unwrap() {
        let t = &types[&stream.stream_id];
        let decoder = StreamDecoder::new(&t.dependencies_metadata, &t.objects_metadata).unwrap();
        let blocks = lake.metadata.thread_blocks(&id).await.unwrap();
        for block in blocks.iter().filter(|b| b.stream_id == stream.stream_id) {
            let payload = lake.block_payload(block).await.unwrap();
            for event in decoder.decode_block(&payload).unwrap() {
                if event.scope == EventScope::Thread
                    && event.phase == EventPhase::End
                    && !event.properties.is_empty()
                {
                    let mut properties: Vec<(String, String)> = event
                        .properties
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect();
                    properties.sort();
                    ends.insert((
                        event.name.to_string(),
                        clock.event_ns(event.ticks) as u64,
                        properties,
                    ));
                }
            }
        }
    }
    ends
}

#[test]
fn properties_of_tagged_thread_span_ends_are_arguments_of_their_slices() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SynthSpec {
        seed: 11,
        processes: 1,
        threads: 3,
        spans: 6_000,
        async_spans: 600,
        events_per_block: 500,
        ..Default::default()
    };
    let (id, expected) = runtime().block_on(async {
        let writer = LakeWriter::create_embedded(dir.path()).await.unwrap();
        let report = generate(&writer, &spec).await.unwrap();
        writer.close().await;
        let id = report.process_ids[0];
        let lake = Lake::open(LakeLocation::Embedded {
            dir: dir.path().to_path_buf(),
        })
        .await
        .unwrap();
        (id, tagged_thread_ends(&lake, id).await)
    });
    assert!(
        !expected.is_empty(),
        "the synthetic process tags some thread span ends"
    );

    let out = dir.path().join("out.pftrace");
    succeeded(run(
        &[
            &id.to_string(),
            "--lake",
            dir.path().to_str().unwrap(),
            "--spans",
            "thread",
            "-o",
            out.to_str().unwrap(),
        ],
        dir.path(),
    ));
    let trace = decode(&std::fs::read(&out).unwrap());
    let keys: BTreeSet<&str> = expected
        .iter()
        .flat_map(|(_, _, props)| props.iter().map(|(k, _)| k.as_str()))
        .collect();
    let shown: BTreeSet<TaggedEnd> = trace
        .all_slices()
        .filter_map(|(_, slice)| {
            let mut properties: Vec<(String, String)> = slice
                .annotations
                .iter()
                .filter(|(k, _)| keys.contains(k.as_str()))
                .cloned()
                .collect();
            properties.sort();
            (!properties.is_empty()).then(|| (slice.name.clone(), slice.end, properties))
        })
        .collect();
    assert_eq!(shown, expected);
}

#[test]
fn a_panic_exits_70_with_one_line_and_leaves_no_file_behind() {
    let lake = fixture_copy();
    let out = tempfile::tempdir().unwrap();
    let dir = lake.path().to_str().unwrap();
    // On an async worker while partitions are stored (cold cache), then in the trace
    // encoder's thread (the cache is complete by then).
    for point in ["partition-recorded", "thread-track-written"] {
        let output = support::lake::write_perfetto()
            .args([MAIN_PROCESS, "--lake", dir, "-o", "t.pftrace"])
            .env("WRITE_PERFETTO_PANIC_AT", point)
            .current_dir(out.path())
            .output()
            .unwrap();
        let line = failed_with(&output, 70);
        assert!(
            line.starts_with("write-perfetto: internal error: "),
            "{line}"
        );
        assert!(line.contains(&format!("test panic at {point}")), "{line}");
        assert!(
            support::lake::entries(out.path()).is_empty(),
            "a file was left behind"
        );
    }
}

/// Values a numeric flag may be given: its edges, the integer types' edges, random integers of
/// every width (seeded), and text that is not a number.
fn flag_values(min: i128, max: i128, seed: u64) -> Vec<String> {
    let mut values: Vec<String> = [
        min - 1,
        min,
        max,
        max + 1,
        0,
        -1,
        i64::MIN as i128,
        i64::MAX as i128,
        u64::MAX as i128,
        u64::MAX as i128 + 1,
    ]
    .iter()
    .map(i128::to_string)
    .collect();
    let mut state = seed;
    for _ in 0..8 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let bits = (state >> 58) as u32; // 0..63
        values.push(((state >> 1) >> (63 - bits.min(62))).to_string());
    }
    values.extend(["", "1e3", "0x10", "12abc", "--", " 5"].map(String::from));
    values
}

#[test]
fn any_value_of_a_numeric_flag_is_used_or_refused_as_a_usage_error_never_a_crash() {
    let lake = fixture_copy();
    let dir = lake.path().to_str().unwrap();
    let out = tempfile::tempdir().unwrap();
    // (arguments before the flag, flag, documented range)
    let flags: &[(&[&str], &str, i128, i128)] = &[
        (
            &[MAIN_PROCESS, "-o", "t.pftrace"],
            "--partition-seconds",
            1,
            31_622_400,
        ),
        (&[MAIN_PROCESS, "-o", "t.pftrace"], "--jobs", 1, 1024),
        (&[MAIN_PROCESS, "-o", "t.pftrace"], "--threads", 1, 256),
        (&["cache", "gc"], "--grace", 0, 3_153_600_000),
        (&["processes"], "--limit", 1, 1_000_000),
    ];
    for (seed, (before, flag, min, max)) in flags.iter().enumerate() {
        for value in flag_values(*min, *max, seed as u64 + 1) {
            let mut args = before.to_vec();
            let flag_value = format!("{flag}={value}");
            args.extend([flag_value.as_str(), "--lake", dir]);
            let output = run(&args, out.path());
            let in_range = value
                .parse::<i128>()
                .is_ok_and(|v| (*min..=*max).contains(&v));
            let expected = if in_range { 0 } else { 2 };
            assert_eq!(
                output.status.code(),
                Some(expected),
                "{args:?}: {}",
                stderr(&output)
            );
        }
    }
}

#[test]
fn an_export_whose_stderr_is_closed_still_succeeds() {
    // `write-perfetto -v ... 2>&1 | head -1`: every later line to stderr fails with EPIPE.
    let lake = fixture_copy();
    let out = tempfile::tempdir().unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let status = support::lake::write_perfetto()
        .args([MAIN_PROCESS, "--lake", lake.path().to_str().unwrap(), "-v"])
        .args(["-o", "t.pftrace"])
        .current_dir(out.path())
        .stderr(writer)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let reference = run(
        &[
            MAIN_PROCESS,
            "--lake",
            lake.path().to_str().unwrap(),
            "-o",
            "-",
        ],
        out.path(),
    );
    assert!(std::fs::read(out.path().join("t.pftrace")).unwrap() == succeeded(reference).stdout);
}
