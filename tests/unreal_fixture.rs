//! The Unreal Engine producer: the fixture lake `fixtures/unreal-lake` holds one process as the
//! Micromegas Unreal plugin sends it and the ingestion server stores it
//! (`tools/make-unreal-fixture`). Every block parses with Micromegas's own transit parser and
//! custom readers, our decoder reads the thread blocks exactly as that parser does, and the
//! export shows exactly the spans the generator recorded (`fixtures/unreal-expected.json`).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use micromegas_transit::value::{Object, Value};
use micromegas_transit::{UserDefinedType, parse_object_buffer, read_dependencies};
use support::lake::{processes_json, run, stderr};
use support::trace::decode;
use support::unreal::{
    StoredBlock, all_blocks, unreal_expected, unreal_fixture_copy, unreal_fixture_dir,
};
use write_perfetto::decode::{EventPhase, EventScope, StreamDecoder, decode_payload};

/// (begin?, ticks, name, target, file, line) of one thread span event.
type ThreadEventKey = (bool, i64, String, String, String, u32);

fn udts(cbor: &[u8]) -> Vec<UserDefinedType> {
    ciborium::de::from_reader(cbor).unwrap()
}

/// Parses a block the way Micromegas's analytics does (`parse_block`: transit's
/// `read_dependencies` and `parse_object_buffer` with micromegas-tracing's custom readers), and
/// hands each object to `each`.
fn parse_with_transit(block: &StoredBlock, mut each: impl FnMut(&Object<'_>)) -> usize {
    let dep_udts = udts(&block.dependencies_metadata);
    let obj_udts = udts(&block.objects_metadata);
    let buffers = decode_payload(&block.payload).unwrap();
    let bump = bumpalo::Bump::new();
    let readers = micromegas_tracing::parsing::make_custom_readers();
    let deps = read_dependencies(&bump, &readers, &dep_udts, &buffers.dependencies)
        .unwrap_or_else(|e| panic!("block {}: dependencies: {e:#}", block.block_id));
    let mut count = 0;
    parse_object_buffer(
        &bump,
        &readers,
        &deps,
        &obj_udts,
        &buffers.objects,
        |value| {
            let Value::Object(object) = value else {
                panic!("block {}: object {count} is not an object", block.block_id);
            };
            each(object);
            count += 1;
            Ok(true)
        },
    )
    .unwrap_or_else(|e| panic!("block {}: objects: {e:#}", block.block_id));
    count
}

/// A thread event as Micromegas's `thread_block_processor.rs` reads it.
fn reference_thread_event(object: &Object<'_>) -> ThreadEventKey {
    let (desc, name) = match object.get::<&Object>("thread_span_desc") {
        Ok(desc) => (desc, desc.get::<&str>("name").unwrap()),
        Err(_) => {
            let desc = object.get::<&Object>("thread_span_location").unwrap();
            (desc, object.get::<&str>("name").unwrap())
        }
    };
    (
        object.type_name.starts_with("Begin"),
        object.get::<i64>("time").unwrap(),
        name.to_string(),
        desc.get::<&str>("target").unwrap().to_string(),
        desc.get::<&str>("file").unwrap().to_string(),
        desc.get::<u32>("line").unwrap(),
    )
}

#[test]
fn every_unreal_block_parses_with_micromegas_transit_and_thread_blocks_decode_as_it_reads_them() {
    let expected = unreal_expected();
    let blocks = all_blocks(&unreal_fixture_dir());
    let mut blocks_per_stream: BTreeMap<String, usize> = BTreeMap::new();
    let mut types: BTreeSet<String> = BTreeSet::new();
    let mut log_messages = Vec::new();
    let mut metrics = Vec::new();
    let mut thread_events = 0;
    for block in &blocks {
        *blocks_per_stream
            .entry(block.stream_id.clone())
            .or_default() += 1;
        let tag = block.tags[0].as_str();
        let mut reference = Vec::new();
        let count = parse_with_transit(block, |object| {
            types.insert(object.type_name.to_string());
            match tag {
                "cpu" => reference.push(reference_thread_event(object)),
                "log" => {
                    let level = object
                        .get::<u8>("level")
                        .or_else(|_| {
                            object
                                .get::<&Object>("desc")
                                .and_then(|d| d.get::<u8>("level"))
                        })
                        .unwrap();
                    log_messages.push((level, object.get::<&str>("msg").unwrap().to_string()));
                }
                "metrics" => {
                    let desc = object.get::<&Object>("desc").unwrap();
                    let value = if object.type_name == "TaggedIntegerMetricEvent" {
                        object.get::<u64>("value").unwrap() as f64
                    } else {
                        object.get::<f64>("value").unwrap()
                    };
                    metrics.push((
                        desc.get::<&str>("name").unwrap().to_string(),
                        desc.get::<&str>("unit").unwrap().to_string(),
                        desc.get::<u8>("lod").unwrap(),
                        value,
                    ));
                }
                other => panic!("unexpected stream tag {other}"),
            }
        });
        assert_eq!(count as i64, block.nb_objects, "block {}", block.block_id);
        if tag != "cpu" {
            continue;
        }
        let decoder =
            StreamDecoder::new(&block.dependencies_metadata, &block.objects_metadata).unwrap();
        let ours: Vec<ThreadEventKey> = decoder
            .decode_block(&block.payload)
            .unwrap_or_else(|e| panic!("block {}: {e:#}", block.block_id))
            .into_iter()
            .map(|e| {
                assert_eq!(e.scope, EventScope::Thread);
                (
                    e.phase == EventPhase::Begin,
                    e.ticks,
                    e.name.to_string(),
                    e.target.to_string(),
                    e.file.to_string(),
                    e.line,
                )
            })
            .collect();
        assert_eq!(ours, reference, "block {}", block.block_id);
        thread_events += ours.len();
    }

    // Every block of every stream was read, and nothing else is in the lake.
    let streams = expected["streams"].as_array().unwrap();
    let expected_blocks: BTreeMap<String, usize> = streams
        .iter()
        .map(|s| {
            (
                s["stream_id"].as_str().unwrap().to_string(),
                s["blocks"].as_u64().unwrap() as usize,
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(blocks_per_stream, expected_blocks);
    let tags: BTreeSet<&str> = blocks.iter().map(|b| b.tags[0].as_str()).collect();
    assert_eq!(tags, BTreeSet::from(["cpu", "log", "metrics"]));
    let expected_thread_events: usize = expected["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| 2 * t["spans"].as_array().unwrap().len())
        .sum();
    assert_eq!(thread_events, expected_thread_events);
    assert_eq!(
        types,
        [
            "BeginThreadSpanEvent",
            "EndThreadSpanEvent",
            "BeginThreadNamedSpanEvent",
            "EndThreadNamedSpanEvent",
            "TaggedLogInteropEvent",
            "TaggedLogString",
            "TaggedIntegerMetricEvent",
            "TaggedFloatMetricEvent",
        ]
        .into_iter()
        .map(String::from)
        .collect()
    );
    // Log levels are one byte, messages are wide strings (non-ASCII included).
    assert!(
        log_messages.contains(&(3, "Fichier manquant : /Game/Maps/L_Arena_Décor".to_string())),
        "{log_messages:?}"
    );
    assert!(
        log_messages.contains(&(4, "Frame 2 done".to_string())),
        "{log_messages:?}"
    );
    assert!(
        metrics.contains(&("FrameTime".to_string(), "ms".to_string(), 2, 16.75)),
        "{metrics:?}"
    );
    assert!(
        metrics.contains(&("QueueSize".to_string(), "count".to_string(), 1, 7.0)),
        "{metrics:?}"
    );
}

#[test]
fn unreal_span_descriptions_are_re_sent_in_every_block_that_refers_to_them() {
    // The plugin extracts each block's dependencies from its own events: a description used in
    // two blocks is in both, so each block decodes on its own.
    let blocks = all_blocks(&unreal_fixture_dir());
    let mut seen_in: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for block in blocks.iter().filter(|b| b.tags[0] == "cpu") {
        let decoder =
            StreamDecoder::new(&block.dependencies_metadata, &block.objects_metadata).unwrap();
        for event in decoder.decode_block(&block.payload).unwrap() {
            seen_in
                .entry(event.name.to_string())
                .or_default()
                .insert(block.block_id.clone());
        }
    }
    assert!(
        seen_in["FEngineLoop::Tick"].len() >= 3,
        "FEngineLoop::Tick is in several blocks: {seen_in:?}"
    );
}

fn inspector() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("WRITE_PERFETTO_INSPECT_TRACE") {
        return Some(PathBuf::from(path));
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tools/inspect-trace");
    path.exists().then_some(path)
}

/// Nanoseconds of a tick count, converted at the process's `tsc_frequency` from its start.
fn ns(expected: &serde_json::Value, ticks: u64, start_ns: i128) -> u64 {
    let freq = expected["tsc_frequency"].as_i64().unwrap() as i128;
    let start_ticks = expected["start_ticks"].as_u64().unwrap() as i128;
    let scaled = (ticks as i128 - start_ticks) * 1_000_000_000;
    assert_eq!(scaled % freq, 0, "whole nanoseconds at {freq} Hz");
    (start_ns + scaled / freq) as u64
}

#[test]
fn the_unreal_process_exports_exactly_its_spans_thread_names_and_times() {
    let expected = unreal_expected();
    let lake = unreal_fixture_copy();
    let lake_arg = lake.path().to_str().unwrap();
    let process_id = expected["process_id"].as_str().unwrap();

    // Listed, with its executable.
    let list = processes_json(lake.path());
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["process_id"], process_id);

    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("unreal.perfetto-trace");
    let output = run(
        &[
            &process_id[..8],
            "--lake",
            lake_arg,
            "-q",
            "-o",
            file.to_str().unwrap(),
        ],
        lake.path(),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let bytes = std::fs::read(&file).unwrap();
    let trace = decode(&bytes);
    assert!(trace.problems.is_empty(), "{:#?}", trace.problems);

    let processes = trace.process_tracks();
    assert_eq!(processes.len(), 1);
    assert_eq!(processes[0].process.as_ref().unwrap().1, expected["exe"]);
    assert!(
        trace.async_tracks().is_empty(),
        "the plugin has no async spans"
    );

    let start_ns = chrono::DateTime::parse_from_rfc3339(expected["start_time"].as_str().unwrap())
        .unwrap()
        .timestamp_nanos_opt()
        .unwrap() as i128;
    let by_label = trace.thread_slices_by_label();
    let threads = expected["threads"].as_array().unwrap();
    let labels: BTreeSet<String> = threads
        .iter()
        .map(|t| t["thread_name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(by_label.keys().cloned().collect::<BTreeSet<_>>(), labels);
    assert!(labels.contains("UnnamedThread"), "{labels:?}");
    let mut max_depth = 0;
    for thread in threads {
        let label = thread["thread_name"].as_str().unwrap().to_string();
        let slices = &by_label[&label];
        let spans = thread["spans"].as_array().unwrap();
        assert_eq!(slices.len(), spans.len(), "{label}");
        for (slice, span) in slices.iter().zip(spans) {
            let depth = span["depth"].as_u64().unwrap() as usize;
            max_depth = max_depth.max(depth);
            assert_eq!(slice.name, span["name"].as_str().unwrap(), "{label}");
            assert_eq!(slice.depth, depth, "{label}: {}", slice.name);
            assert_eq!(
                (slice.begin, slice.end),
                (
                    ns(&expected, span["begin_ticks"].as_u64().unwrap(), start_ns),
                    ns(&expected, span["end_ticks"].as_u64().unwrap(), start_ns)
                ),
                "{label}: {}",
                slice.name
            );
            assert_eq!(slice.categories, vec![span["target"].as_str().unwrap()]);
            assert_eq!(
                slice.source.as_deref(),
                Some(
                    format!(
                        "{}:{}",
                        span["file"].as_str().unwrap(),
                        span["line"].as_u64().unwrap()
                    )
                    .as_str()
                )
            );
            assert!(
                !slice.has("clipped"),
                "{label}: {} is complete in the lake",
                slice.name
            );
        }
    }
    assert!(max_depth >= 6, "nested ≥ 7 levels");
    // Names in every codec the plugin writes.
    let names: BTreeSet<&str> = by_label
        .values()
        .flatten()
        .map(|s| s.name.as_str())
        .collect();
    for name in [
        "FEngineLoop::Tick",                 // ANSI literal (SpanMetadata)
        "TG_PrePhysics",                     // ANSI FName entry
        "Wächterturm_C_1",                   // wide FName entry
        "物理クエリ: Sweep",                 // wide TEXT() literal
        "D3D12 Present",                     // ANSI name of a named span
        "AsyncLoading::D\u{FFFD}compresser", // CP-1252 byte in an ANSI literal
    ] {
        assert!(names.contains(name), "{name:?} missing from {names:?}");
    }

    // The independent inspector finds nothing wrong.
    let Some(inspector) = inspector() else {
        eprintln!("SKIPPED inspector: inspect-trace not found");
        return;
    };
    let summary = out.path().join("inspect.json");
    let output = std::process::Command::new(&inspector)
        .arg(&file)
        .args(["--strict", "-q", "--json"])
        .arg(&summary)
        .output()
        .expect("run inspect-trace");
    assert!(
        output.status.success(),
        "inspector failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        stderr(&output)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(json["errors"], 0, "{json}");
    assert_eq!(json["warnings"], 0, "{json}");
}

/// Rewrites the `objects_metadata` of one stream of the lake in `dir`.
fn damage_objects_metadata(
    dir: &Path,
    stream_id: &str,
    damage: impl FnOnce(&mut Vec<UserDefinedType>),
) {
    support::lake::runtime().block_on(async {
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(dir.join("lake.db"));
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        let cbor: Vec<u8> =
            sqlx::query_scalar("SELECT objects_metadata FROM streams WHERE stream_id = $1")
                .bind(stream_id)
                .fetch_one(&pool)
                .await
                .unwrap();
        let mut types = udts(&cbor);
        damage(&mut types);
        let mut out = Vec::new();
        ciborium::ser::into_writer(&types, &mut out).unwrap();
        sqlx::query("UPDATE streams SET objects_metadata = $1 WHERE stream_id = $2")
            .bind(out)
            .bind(stream_id)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    });
}

/// Exports the Unreal process of a damaged copy: it must exit 4 with one line naming the
/// stream and every one of `names`.
fn assert_unusable_layout(damage: impl FnOnce(&mut Vec<UserDefinedType>), names: &[&str]) {
    let expected = unreal_expected();
    let game_thread = expected["threads"][0]["stream_id"].as_str().unwrap();
    let lake = unreal_fixture_copy();
    damage_objects_metadata(lake.path(), game_thread, damage);
    let output = run(
        &[
            expected["process_id"].as_str().unwrap(),
            "--lake",
            lake.path().to_str().unwrap(),
            "-q",
            "-o",
            "-",
        ],
        lake.path(),
    );
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(4), "{message}");
    assert!(output.stdout.is_empty());
    assert!(message.contains(game_thread), "{message}");
    for name in names {
        assert!(message.contains(name), "{name:?} not in {message}");
    }
}

fn member<'a>(
    types: &'a mut [UserDefinedType],
    ty: &str,
    name: &str,
) -> &'a mut micromegas_transit::Member {
    types
        .iter_mut()
        .find(|t| t.name.as_str() == ty)
        .unwrap()
        .members
        .iter_mut()
        .find(|m| m.name.as_str() == name)
        .unwrap()
}

#[test]
fn an_unreal_name_reference_beyond_its_event_exits_4_naming_the_stream_and_member() {
    assert_unusable_layout(
        |types| member(types, "BeginThreadNamedSpanEvent", "name").offset = 28,
        &["BeginThreadNamedSpanEvent.name", "exceeds"],
    );
}

#[test]
fn a_member_offset_that_overflows_with_its_inner_id_offset_exits_4_naming_the_stream_and_member() {
    // A name held by value in a type whose id sits at offset 8: the member's offset plus 8
    // does not fit in an address.
    assert_unusable_layout(
        |types| {
            let name = member(types, "BeginThreadNamedSpanEvent", "name");
            name.is_reference = false;
            name.offset = usize::MAX - 4;
            types.push(UserDefinedType {
                name: std::sync::Arc::new("StaticStringRef".into()),
                size: 16,
                members: vec![micromegas_transit::Member {
                    name: std::sync::Arc::new("id".into()),
                    type_name: "uint64".into(),
                    offset: 8,
                    size: 8,
                    is_reference: true,
                }],
                is_reference: true,
                secondary_udts: vec![],
            });
        },
        &["BeginThreadNamedSpanEvent.name", "overflows"],
    );
}

#[test]
fn an_unreal_reference_narrower_than_an_id_exits_4_naming_the_stream_and_member() {
    assert_unusable_layout(
        |types| member(types, "EndThreadSpanEvent", "thread_span_desc").size = 4,
        &["EndThreadSpanEvent.thread_span_desc", "narrower"],
    );
}

#[test]
fn an_unreal_name_held_by_value_of_an_undeclared_type_exits_4_naming_the_stream_and_member() {
    // The thread metadata declares no `StaticStringRef` type: a name held by value could not be
    // resolved, as transit could not either.
    assert_unusable_layout(
        |types| member(types, "EndThreadNamedSpanEvent", "name").is_reference = false,
        &["EndThreadNamedSpanEvent.name", "neither a reference"],
    );
}

/// The process's start in Unix nanoseconds, as the expected JSON records it.
fn start_ns(expected: &serde_json::Value) -> i128 {
    chrono::DateTime::parse_from_rfc3339(expected["start_time"].as_str().unwrap())
        .unwrap()
        .timestamp_nanos_opt()
        .unwrap() as i128
}

/// Exports the Unreal process of `lake` with `extra` arguments and decodes the trace.
fn export_unreal(lake: &Path, process_id: &str, extra: &[&str]) -> support::trace::Trace {
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("unreal.perfetto-trace");
    let mut args = vec![process_id, "--lake", lake.to_str().unwrap(), "-q"];
    args.extend(["-o", file.to_str().unwrap()]);
    args.extend(extra);
    let output = run(&args, lake);
    assert!(output.status.success(), "{}", stderr(&output));
    decode(&std::fs::read(&file).unwrap())
}

/// A log entry as shown: (lane, time, message, target, level, source, properties).
type LogLine = (String, u64, String, String, String, Option<String>, String);

/// The Unreal process's log entries are instants on a "log" group, one lane per level (most
/// severe first), each at its time with its message, target, level, source and properties —
/// exactly what the plugin recorded; `--log-level` and `--no-logs` narrow them.
#[test]
fn the_unreal_process_log_entries_are_instants_on_one_lane_per_level() {
    let expected = unreal_expected();
    let lake = unreal_fixture_copy();
    let process_id = expected["process_id"].as_str().unwrap();
    let start_ns = start_ns(&expected);
    let export = |extra: &[&str]| export_unreal(lake.path(), process_id, extra);
    let levels = ["fatal", "error", "warn", "info", "debug", "trace"];
    let mut recorded: Vec<LogLine> = vec![];
    for log in expected["logs"].as_array().unwrap() {
        let level = levels[log["level"].as_u64().unwrap() as usize - 1].to_string();
        let file = log["file"].as_str().unwrap();
        let source = (!file.is_empty()).then(|| format!("{file}:{}", log["line"]));
        let properties: Vec<String> = (log["properties"].as_array().unwrap().iter())
            .map(|p| format!("{}={}", p[0].as_str().unwrap(), p[1].as_str().unwrap()))
            .collect();
        recorded.push((
            level.clone(),
            ns(&expected, log["ticks"].as_u64().unwrap(), start_ns),
            log["msg"].as_str().unwrap().to_string(),
            log["target"].as_str().unwrap().to_string(),
            level,
            source,
            properties.join(","),
        ));
    }
    let shown = |trace: &support::trace::Trace| {
        let group = trace.tracks.values().find(|t| t.label() == "log");
        let Some(group) = group else {
            return (vec![], vec![]);
        };
        let mut lanes = trace.children(group.uuid);
        lanes.sort_by_key(|t| t.sibling_order_rank);
        let names: Vec<String> = lanes.iter().map(|t| t.label()).collect();
        let mut entries = vec![];
        for lane in lanes {
            for i in trace
                .instants
                .get(&lane.uuid)
                .map(Vec::as_slice)
                .unwrap_or(&[])
            {
                let properties: Vec<String> = (i.annotations.iter())
                    .filter(|(n, _)| n != "level" && n != "message")
                    .map(|(n, v)| format!("{n}={v}"))
                    .collect();
                entries.push((
                    lane.label(),
                    i.begin,
                    i.name.clone(),
                    i.categories.join(","),
                    i.annotation("level").unwrap_or_default().to_string(),
                    i.source.clone(),
                    properties.join(","),
                ));
            }
        }
        entries.sort_by_key(|e| (e.1, e.2.clone()));
        (names, entries)
    };
    let mut all = recorded.clone();
    all.sort_by_key(|e| (e.1, e.2.clone()));
    let (lanes, entries) = shown(&export(&[]));
    assert_eq!(lanes, vec!["warn", "info"], "one lane per level present");
    assert_eq!(entries, all);
    assert!(
        entries.len() >= 3,
        "the fixture logs at more than one level"
    );

    let (lanes, entries) = shown(&export(&["--log-level", "warn"]));
    assert_eq!(lanes, vec!["warn"]);
    assert_eq!(
        entries.len(),
        recorded.iter().filter(|e| e.0 == "warn").count()
    );
    assert_eq!(shown(&export(&["--no-logs"])), (vec![], vec![]));
}

/// The Unreal process's measures are counter tracks on a "metrics" group, one per series
/// (a tagged series named with its properties), with its unit, each value at its time exactly
/// as the plugin recorded it; `--no-metrics` leaves them out.
#[test]
fn the_unreal_process_measures_are_counter_tracks_one_per_series() {
    let expected = unreal_expected();
    let lake = unreal_fixture_copy();
    let process_id = expected["process_id"].as_str().unwrap();
    let start_ns = start_ns(&expected);
    let export = |extra: &[&str]| export_unreal(lake.path(), process_id, extra);
    // Series name (with its tags) → (unit, [(time, value)]), as recorded.
    let mut recorded: BTreeMap<String, (String, Vec<(u64, f64)>)> = BTreeMap::new();
    for m in expected["metrics"].as_array().unwrap() {
        let tags: Vec<String> = (m["properties"].as_array().unwrap().iter())
            .map(|p| format!("{}={}", p[0].as_str().unwrap(), p[1].as_str().unwrap()))
            .collect();
        let name = m["name"].as_str().unwrap();
        let series = match tags.is_empty() {
            true => name.to_string(),
            false => format!("{name} {{{}}}", tags.join(", ")),
        };
        let entry = recorded
            .entry(series)
            .or_insert_with(|| (m["unit"].as_str().unwrap().to_string(), vec![]));
        let time = ns(&expected, m["ticks"].as_u64().unwrap(), start_ns);
        entry.1.push((time, m["value"].as_f64().unwrap()));
    }
    let shown = |trace: &support::trace::Trace| {
        let mut series = BTreeMap::new();
        if let Some(group) = trace.tracks.values().find(|t| t.label() == "metrics") {
            for lane in trace.children(group.uuid) {
                let values = trace.counters.get(&lane.uuid).cloned().unwrap_or_default();
                let unit = lane.counter_unit.clone().expect("a counter track");
                series.insert(lane.label(), (unit, values));
            }
        }
        series
    };
    let series = shown(&export(&[]));
    assert_eq!(series, recorded);
    assert!(
        series.len() >= 2,
        "the fixture records more than one series"
    );
    assert!(shown(&export(&["--no-metrics"])).is_empty());
}
