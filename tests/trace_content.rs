//! What the traces of the genuine fixture lake contain, read back with a small decoder
//! (tests/support/trace.rs) and checked against what tools/make-fixture/README.md says the
//! fixture's processes did; plus the independent inspector (`../shared/tools/inspect-trace`).

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use write_perfetto::lake::MetadataReads;

use support::lake::{
    fixture_copy, open_embedded, processes_json, run, runtime, sha256_hex, stderr,
};
use support::trace::{Slice, Trace, decode};
use write_perfetto::clock::Clock;
use write_perfetto::decode::{EventPhase, EventScope, StreamDecoder};

const CATEGORY: &str = "make_fixture::workload";
const SOURCE_FILE: &str = "tools/make-fixture/src/workload.rs";

/// A private copy of the fixture and the ids of its two processes.
struct Fixture {
    lake: tempfile::TempDir,
    out: tempfile::TempDir,
    /// The process running the `main` scenario: the parent of the other one.
    main_id: String,
    secondary_id: String,
}

impl Fixture {
    fn new() -> Self {
        let lake = fixture_copy();
        let list = processes_json(lake.path());
        assert_eq!(list.len(), 2, "the fixture has two processes: {list:?}");
        let id = |p: &serde_json::Value| p["process_id"].as_str().unwrap().to_string();
        let (parents, children): (Vec<_>, Vec<_>) =
            list.iter().partition(|p| p["parent_process_id"] == "");
        assert_eq!((parents.len(), children.len()), (1, 1), "{list:?}");
        let main_id = id(parents[0]);
        assert_eq!(
            children[0]["parent_process_id"],
            main_id.as_str(),
            "{list:?}"
        );
        Fixture {
            lake,
            out: tempfile::tempdir().unwrap(),
            main_id,
            secondary_id: id(children[0]),
        }
    }

    fn lake_arg(&self) -> &str {
        self.lake.path().to_str().unwrap()
    }

    /// The trace bytes of `id` exported with `args` (to stdout).
    fn export(&self, id: &str, args: &[&str]) -> Vec<u8> {
        let mut all = vec![id, "--lake", self.lake_arg(), "-q", "-o", "-"];
        all.extend_from_slice(args);
        let output = run(&all, self.out.path());
        assert!(
            output.status.success(),
            "write-perfetto {all:?}: {}",
            stderr(&output)
        );
        assert!(!output.stdout.is_empty());
        output.stdout
    }

    /// Exports and decodes; the trace must replay cleanly.
    fn trace(&self, id: &str, args: &[&str]) -> Trace {
        let trace = decode(&self.export(id, args));
        assert!(
            trace.problems.is_empty(),
            "{args:?}: the trace does not replay cleanly: {:#?}",
            trace.problems
        );
        trace
    }

    /// Exports to a file with `--json`: the decoded trace and the summary.
    fn trace_and_summary(&self, id: &str, args: &[&str]) -> (Trace, serde_json::Value) {
        let path = self.out.path().join(format!("{id}.summary.pftrace"));
        let path_arg = path.to_str().unwrap();
        let mut all = vec![
            id,
            "--lake",
            self.lake_arg(),
            "-q",
            "--json",
            "-o",
            path_arg,
        ];
        all.extend_from_slice(args);
        let output = run(&all, self.out.path());
        assert!(output.status.success(), "{}", stderr(&output));
        let summary = serde_json::from_slice(&output.stdout).unwrap();
        let trace = decode(&std::fs::read(&path).unwrap());
        assert!(trace.problems.is_empty(), "{:#?}", trace.problems);
        (trace, summary)
    }
}

// ---------------------------------------------------------------------------------------------
// What the lake says, independently of the export pipeline
// ---------------------------------------------------------------------------------------------

struct StreamFacts {
    thread_id: String,
    thread_name: Option<String>,
    /// Thread span begins in the stream's blocks.
    thread_begins: usize,
    /// (begin, end) of each block, in Unix ns, in stream order.
    blocks_ns: Vec<(i64, i64)>,
}

impl StreamFacts {
    /// The track name the assembly rules give this thread: its name, else its thread id.
    fn expected_label(&self) -> String {
        match &self.thread_name {
            Some(name) => name.clone(),
            None => format!("thread {}", self.thread_id),
        }
    }
}

struct LakeFacts {
    streams: Vec<StreamFacts>,
    /// The end of the process's data: the largest block end, in Unix ns.
    data_end_ns: i64,
}

fn lake_facts(dir: &Path, process_id: &str) -> LakeFacts {
    runtime().block_on(async {
        let lake = open_embedded(dir).await;
        let id = uuid::Uuid::parse_str(process_id).unwrap();
        let process = lake.metadata.process(&id).await.unwrap().unwrap();
        let clock =
            Clock::for_process(&process, lake.metadata.block_end_bounds(&id).await.unwrap())
                .unwrap();
        let blocks = lake.metadata.thread_blocks(&id).await.unwrap();
        let mut streams = Vec::new();
        let types = lake.metadata.stream_types(&id, &|_| true).await.unwrap();
        for stream in lake.metadata.thread_streams(&id).await.unwrap() {
            let property = |key: &str| {
                stream
                    .properties
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.clone())
            };
            let stream_types = &types[&stream.stream_id];
            let decoder = StreamDecoder::new(
                &stream_types.dependencies_metadata,
                &stream_types.objects_metadata,
            )
            .unwrap();
            let mut mine: Vec<_> = blocks
                .iter()
                .filter(|b| b.stream_id == stream.stream_id)
                .collect();
            mine.sort_by_key(|b| b.object_offset);
            let mut thread_begins = 0;
            let mut blocks_ns = Vec::new();
            for block in mine {
                let payload = lake.block_payload(block).await.unwrap();
                thread_begins += decoder
                    .decode_block(&payload)
                    .unwrap()
                    .iter()
                    .filter(|e| e.scope == EventScope::Thread && e.phase == EventPhase::Begin)
                    .count();
                blocks_ns.push((
                    clock.relative_ns(block.begin_ticks),
                    clock.relative_ns(block.end_ticks),
                ));
            }
            streams.push(StreamFacts {
                thread_id: property("thread-id").expect("every fixture stream has a thread-id"),
                thread_name: property("thread-name"),
                thread_begins,
                blocks_ns,
            });
        }
        let data_end_ns = blocks
            .iter()
            .map(|b| clock.relative_ns(b.end_ticks.max(b.begin_ticks)))
            .max()
            .unwrap();
        LakeFacts {
            streams,
            data_end_ns,
        }
    })
}

// ---------------------------------------------------------------------------------------------
// 1. The independent inspector
// ---------------------------------------------------------------------------------------------

fn inspector() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("WRITE_PERFETTO_INSPECT_TRACE") {
        let path = PathBuf::from(path);
        assert!(
            path.exists(),
            "WRITE_PERFETTO_INSPECT_TRACE={} does not exist",
            path.display()
        );
        return Some(path);
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tools/inspect-trace");
    path.exists().then_some(path)
}

#[test]
fn the_inspector_finds_no_error_and_no_warning_in_any_fixture_trace() {
    let Some(inspector) = inspector() else {
        eprintln!(
            "SKIPPED: inspect-trace not found (set WRITE_PERFETTO_INSPECT_TRACE or provide \
             ../shared/tools/inspect-trace)"
        );
        return;
    };
    let fixture = Fixture::new();
    for id in [&fixture.main_id, &fixture.secondary_id] {
        for spans in ["thread", "async", "both"] {
            let bytes = fixture.export(id, &["--spans", spans]);
            let ours = decode(&bytes);
            assert!(ours.problems.is_empty(), "{spans}: {:#?}", ours.problems);
            let file = fixture
                .out
                .path()
                .join(format!("{id}-{spans}.perfetto-trace"));
            let summary = fixture.out.path().join(format!("{id}-{spans}.json"));
            std::fs::write(&file, &bytes).unwrap();
            let output = std::process::Command::new(&inspector)
                .arg(&file)
                .args(["--strict", "-q", "--json"])
                .arg(&summary)
                .output()
                .expect("run inspect-trace");
            let text = String::from_utf8_lossy(&output.stdout);
            let result = text
                .lines()
                .find(|l| l.starts_with("RESULT"))
                .unwrap_or("no RESULT line");
            eprintln!("{id} --spans {spans}: {result}");
            assert!(
                output.status.success(),
                "{id} --spans {spans}: inspector failed:\n{text}\n{}",
                stderr(&output)
            );
            let json: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
            assert_eq!(json["errors"], 0, "{id} --spans {spans}: {json}");
            assert_eq!(json["warnings"], 0, "{id} --spans {spans}: {json}");
            // Its per-track slice counts are ours.
            for (uuid, stats) in json["tracks"].as_object().unwrap() {
                let uuid: u64 = uuid.parse().unwrap();
                assert!(ours.tracks.contains_key(&uuid), "track {uuid}");
                let begins = stats.get("begin").and_then(|b| b.as_u64()).unwrap_or(0);
                assert_eq!(
                    begins as usize,
                    ours.slices_of(uuid).len(),
                    "{id} --spans {spans}: slices on {}",
                    stats["label"]
                );
            }
            assert_eq!(json["tracks"].as_object().unwrap().len(), ours.tracks.len());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Thread tracks
// ---------------------------------------------------------------------------------------------

/// (name, depth) → count, per thread, as the README lists them.
fn expected_thread_spans() -> BTreeMap<&'static str, BTreeMap<(String, usize), usize>> {
    let mut all = BTreeMap::new();
    let map = |list: &[(&str, usize, usize)]| -> BTreeMap<(String, usize), usize> {
        list.iter()
            .map(|&(name, depth, count)| ((name.to_string(), depth), count))
            .collect()
    };
    all.insert(
        "main",
        map(&[
            ("main_scenario", 0, 1),
            ("log_every_kind", 1, 1),
            ("run_sync_threads", 1, 1),
            ("run_async_runtime", 1, 1),
        ]),
    );
    all.insert(
        "fixture-sync-deep",
        map(&[
            ("deep_outer", 0, 1),
            ("deep_iteration", 1, 30),
            ("make_fixture::workload::deep_level_2", 2, 30),
            ("deep_level_3", 3, 30),
            ("deep_level_4", 4, 30),
            ("deep_level_5", 5, 60),
            ("deep_leaf", 6, 60),
        ]),
    );
    let mut named = map(&[
        ("named_outer", 0, 1),
        ("stage_parse", 1, 10),
        ("stage_plan", 1, 10),
        ("stage_execute", 1, 10),
    ]);
    for stage in ["stage_parse", "stage_plan", "stage_execute"] {
        for iteration in 0..10 {
            for item in 0..2 {
                named.insert((format!("{stage} item {iteration}.{item}"), 2), 1);
            }
        }
    }
    all.insert("fixture-named-spans", named);
    all.insert("", map(&[("unnamed_outer", 0, 1), ("unnamed_step", 1, 12)]));
    all.insert("worker", map(&[("sync_in_async", 0, 1)]));
    all
}

fn thread_kind(facts: &StreamFacts) -> &'static str {
    match facts.thread_name.as_deref() {
        None => "",
        Some("main") => "main",
        Some("fixture-sync-deep") => "fixture-sync-deep",
        Some("fixture-named-spans") => "fixture-named-spans",
        Some(n) if n.starts_with("fixture-worker-") => "worker",
        Some(other) => panic!("unexpected thread {other}"),
    }
}

fn count_by_name_and_depth(slices: &[Slice]) -> BTreeMap<(String, usize), usize> {
    let mut counts = BTreeMap::new();
    for s in slices {
        *counts.entry((s.name.clone(), s.depth)).or_default() += 1;
    }
    counts
}

#[test]
fn thread_tracks_show_every_thread_span_of_the_main_process_once_complete_and_nested() {
    let fixture = Fixture::new();
    let facts = lake_facts(fixture.lake.path(), &fixture.main_id);
    let (trace, summary) = fixture.trace_and_summary(&fixture.main_id, &[]);

    let processes = trace.process_tracks();
    assert_eq!(processes.len(), 1);
    let process = processes[0];
    let (pid, process_name) = process.process.clone().unwrap();
    assert!(pid > 0);
    assert_eq!(process_name, "make-fixture");
    // Beside the name, the UI shows the process id, to find the process in the lake again.
    assert_eq!(
        process.process_labels,
        [format!("process {}", fixture.main_id)]
    );
    let summary_threads = summary["processes"][0]["threads"].as_array().unwrap();
    assert_eq!(summary_threads.len(), trace.thread_tracks().len());

    // One track per stream with thread spans, named after the stream, as many slices as begins.
    let threads = trace.thread_tracks();
    let with_spans: Vec<&StreamFacts> = facts
        .streams
        .iter()
        .filter(|s| s.thread_begins > 0)
        .collect();
    assert_eq!(facts.streams.len(), 6, "six thread streams");
    assert_eq!(
        with_spans.len(),
        5,
        "main, deep, named, unnamed, one worker"
    );
    assert_eq!(threads.len(), with_spans.len());
    let labels: BTreeSet<String> = threads.iter().map(|t| t.label()).collect();
    assert_eq!(labels.len(), threads.len(), "labels unique: {labels:?}");
    let mut tids = BTreeSet::new();
    for stream in &with_spans {
        let label = stream.expected_label();
        let track = trace
            .thread_track_named(&label)
            .unwrap_or_else(|| panic!("no thread track {label:?} among {labels:?}"));
        let (track_pid, tid, _) = track.thread.clone().unwrap();
        assert_eq!(track.parent, Some(process.uuid));
        assert_eq!(track_pid, pid);
        assert!(tid > 0, "{label}: tid {tid}");
        assert!(tids.insert(tid), "{label}: tid {tid} is not unique");
        // The real 64-bit thread id (the tid cannot hold it) is in the summary, by tid.
        let real: u64 = stream.thread_id.parse().unwrap();
        assert!(real > i32::MAX as u64, "{label}: pthread ids are 64-bit");
        let entry = (summary_threads.iter())
            .find(|t| t["tid"] == tid)
            .unwrap_or_else(|| panic!("{label}: tid {tid} not in the summary"));
        assert_eq!(entry["name"], label.as_str());
        assert_eq!(entry["thread_id"], stream.thread_id.as_str(), "{label}");
        let slices = trace.slices_of(track.uuid);
        assert_eq!(slices.len(), stream.thread_begins, "{label}");
        assert_eq!(
            count_by_name_and_depth(slices),
            expected_thread_spans()[thread_kind(stream)],
            "{label}"
        );
        for s in slices {
            assert!(!s.has("clipped"), "{label}: {s:?}");
            assert!(!s.has("unfinished"), "{label}: {s:?}");
            assert!(s.flows_in.is_empty() && s.flows_out.is_empty(), "{s:?}");
            assert!(s.begin <= s.end, "{s:?}");
            assert_eq!(s.categories, vec![CATEGORY.to_string()], "{s:?}");
            let source = s.source.as_deref().unwrap();
            let line: u32 = source
                .strip_prefix(&format!("{SOURCE_FILE}:"))
                .unwrap_or_else(|| panic!("{source}"))
                .parse()
                .unwrap();
            assert!(line > 0);
            if let Some(parent) = s.parent {
                assert!(slices[parent].contains(s), "{label}: {s:?}");
            }
        }
    }
    let unnamed = with_spans.iter().find(|s| s.thread_name.is_none()).unwrap();
    assert!(
        labels.contains(&format!("thread {}", unnamed.thread_id)),
        "{labels:?}"
    );

    // deep_outer crosses all ten blocks of its stream and is one slice over the whole thread.
    let deep_facts = facts
        .streams
        .iter()
        .find(|s| s.thread_name.as_deref() == Some("fixture-sync-deep"))
        .unwrap();
    assert_eq!(deep_facts.blocks_ns.len(), 10);
    let deep = trace
        .thread_track_named(&deep_facts.expected_label())
        .unwrap();
    let slices = trace.slices_of(deep.uuid);
    let outers: Vec<&Slice> = slices.iter().filter(|s| s.name == "deep_outer").collect();
    assert_eq!(outers.len(), 1);
    let outer = outers[0];
    assert_eq!(outer.depth, 0);
    assert_eq!(outer.begin, slices.iter().map(|s| s.begin).min().unwrap());
    assert_eq!(outer.end, slices.iter().map(|s| s.end).max().unwrap());
    for pair in deep_facts.blocks_ns.windows(2) {
        let boundary = pair[0].1 as u64;
        assert!(
            outer.begin < boundary && boundary < outer.end,
            "deep_outer [{}, {}] crosses the block boundary {boundary}",
            outer.begin,
            outer.end
        );
    }
    let stream_begin = deep_facts.blocks_ns[0].0 as u64;
    let stream_end = deep_facts.blocks_ns[9].1 as u64;
    assert!(
        (outer.end - outer.begin) * 10 >= (stream_end - stream_begin) * 9,
        "deep_outer covers ≥ 90% of its stream"
    );
    for s in slices.iter().filter(|s| s.name != "deep_outer") {
        assert_eq!(
            trace.ancestors(deep.uuid, s).last(),
            Some(&"deep_outer"),
            "{s:?}"
        );
    }
    let leaf_stack = [
        "deep_level_5",
        "deep_level_4",
        "deep_level_3",
        "make_fixture::workload::deep_level_2",
        "deep_iteration",
        "deep_outer",
    ];
    for leaf in slices.iter().filter(|s| s.name == "deep_leaf") {
        assert_eq!(leaf.depth, 6);
        assert_eq!(trace.ancestors(deep.uuid, leaf), leaf_stack);
    }

    // Named and dyn-named spans: stages in order, items under their stage.
    let named = trace
        .thread_track_named(
            &facts
                .streams
                .iter()
                .find(|s| s.thread_name.as_deref() == Some("fixture-named-spans"))
                .unwrap()
                .expected_label(),
        )
        .unwrap();
    let slices = trace.slices_of(named.uuid);
    let stages: Vec<&str> = slices
        .iter()
        .filter(|s| s.depth == 1)
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(
        stages,
        ["stage_parse", "stage_plan", "stage_execute"].repeat(10)
    );
    let mut iteration_of_stage: HashMap<&str, usize> = HashMap::new();
    for s in slices.iter() {
        match s.depth {
            0 => assert_eq!(s.name, "named_outer"),
            1 => *iteration_of_stage.entry(s.name.as_str()).or_default() += 1,
            _ => {
                let stage = &slices[s.parent.unwrap()];
                let iteration = iteration_of_stage[stage.name.as_str()] - 1;
                assert!(
                    s.name
                        .starts_with(&format!("{} item {iteration}.", stage.name)),
                    "{} under {} (iteration {iteration})",
                    s.name,
                    stage.name
                );
            }
        }
    }

    let main = trace
        .thread_track_named(
            &facts
                .streams
                .iter()
                .find(|s| s.thread_name.as_deref() == Some("main"))
                .unwrap()
                .expected_label(),
        )
        .unwrap();
    let slices = trace.slices_of(main.uuid);
    let names: Vec<(&str, usize)> = slices.iter().map(|s| (s.name.as_str(), s.depth)).collect();
    assert_eq!(
        names,
        [
            ("main_scenario", 0),
            ("log_every_kind", 1),
            ("run_sync_threads", 1),
            ("run_async_runtime", 1)
        ]
    );
}

#[test]
fn the_secondary_process_has_its_two_threads_and_no_async_track() {
    let fixture = Fixture::new();
    let trace = fixture.trace(&fixture.secondary_id, &[]);
    assert!(trace.async_group().is_none());
    let by_label = trace.thread_slices_by_label();
    assert_eq!(by_label.len(), 2);
    let mut seen = BTreeMap::new();
    for (label, slices) in &by_label {
        let names: Vec<(&str, usize)> = slices.iter().map(|s| (s.name.as_str(), s.depth)).collect();
        seen.insert(label.clone(), names);
        assert!(
            slices.iter().all(|s| s.annotations.is_empty()),
            "{slices:?}"
        );
    }
    assert_eq!(seen["main"], [("secondary_main", 0), ("secondary_wait", 1)]);
    let mut worker = vec![("secondary_worker_main", 0), ("secondary_work", 1)];
    for _ in 0..3 {
        worker.push(("secondary_step", 2));
        worker.push(("secondary_leaf", 3));
    }
    assert_eq!(seen["secondary-worker"], worker);
}

// ---------------------------------------------------------------------------------------------
// 3. Async tracks
// ---------------------------------------------------------------------------------------------

/// span_id → (name, parent_span_id, depth), from the README's table.
fn expected_async_spans() -> BTreeMap<u64, (&'static str, u64, u64)> {
    let mut m = BTreeMap::new();
    let named = [
        (1, "async_root", 0, 0),
        (2, "async_parent", 1, 1),
        (3, "async_child_a", 2, 2),
        (4, "async_grandchild", 3, 3),
        (5, "async_child_b", 2, 2),
        (6, "overlap_left", 1, 1),
        (7, "overlap_right", 1, 1),
        (8, "make_fixture::workload::fetch_resource", 1, 1),
        (9, "fetch_io", 8, 2),
        (10, "make_fixture::workload::fetch_resource", 1, 1),
        (11, "fetch_io", 10, 2),
        (12, "dyn_async_0", 1, 1),
        (13, "dyn_async_1", 1, 1),
        (14, "dyn_async_2", 1, 1),
        (15, "spawned_task", 1, 1),
        (16, "spawned_child", 15, 2),
        (17, "ticker", 1, 1),
        (58, "hop_across_workers", 1, 1),
        (59, "worker_blocker", 1, 1),
        (60, "abandoned_by_timeout", 1, 1),
        (61, "select_winner", 1, 1),
        (62, "select_loser", 1, 1),
    ];
    for (id, name, parent, depth) in named {
        m.insert(id, (name, parent, depth));
    }
    for id in 18..=57 {
        m.insert(id, ("async_tick", 17, 2));
    }
    m
}

/// An async slice with where it is drawn.
struct Placed<'a> {
    lane: u64,
    index: usize,
    slice: &'a Slice,
}

fn span_id(s: &Slice) -> u64 {
    s.annotation("span_id")
        .expect("async slices carry span_id")
        .parse()
        .unwrap()
}

fn async_by_span_id(trace: &Trace) -> BTreeMap<u64, Placed<'_>> {
    let mut out = BTreeMap::new();
    for lane in trace.async_tracks() {
        for (index, slice) in trace.slices_of(lane.uuid).iter().enumerate() {
            let previous = out.insert(
                span_id(slice),
                Placed {
                    lane: lane.uuid,
                    index,
                    slice,
                },
            );
            assert!(previous.is_none(), "span id {} drawn twice", span_id(slice));
        }
    }
    out
}

#[test]
fn async_tracks_lay_out_every_future_on_strictly_nested_lanes_linked_to_their_parents() {
    let fixture = Fixture::new();
    let facts = lake_facts(fixture.lake.path(), &fixture.main_id);
    let trace = fixture.trace(&fixture.main_id, &[]);
    let workers: BTreeSet<String> = facts
        .streams
        .iter()
        .filter(|s| {
            s.thread_name
                .as_deref()
                .is_some_and(|n| n.starts_with("fixture-worker-"))
        })
        .map(|s| s.expected_label())
        .collect();
    assert_eq!(workers.len(), 2);

    let group = trace.async_group().expect("an async group track");
    let process = trace.process_tracks()[0].uuid;
    assert_eq!(group.parent, Some(process));
    assert_eq!(group.child_ordering, Some(3), "explicit child ordering");
    let lanes = trace.async_tracks();
    assert!(lanes.len() >= 2, "overlapping futures need ≥ 2 lanes");
    for (i, lane) in lanes.iter().enumerate() {
        assert_eq!(
            lane.name.as_deref(),
            Some(format!("async #{}", i + 1).as_str())
        );
        assert_eq!(lane.sibling_order_rank, Some(i as i32));
        assert!(lane.thread.is_none());
        assert!(
            !trace.slices_of(lane.uuid).is_empty(),
            "{} is empty",
            lane.label()
        );
    }

    // Every span once, with the README's name, parent and depth.
    let spans = async_by_span_id(&trace);
    let expected = expected_async_spans();
    assert_eq!(spans.len(), 62);
    for (id, placed) in &spans {
        let s = placed.slice;
        let (name, parent, depth) = expected[id];
        assert_eq!(s.name, name, "span {id}");
        assert_eq!(
            s.annotation("parent_span_id"),
            Some(parent.to_string().as_str())
        );
        assert_eq!(s.annotation("depth"), Some(depth.to_string().as_str()));
        assert_eq!(s.categories, vec![CATEGORY.to_string()]);
        assert!(s.source.as_deref().unwrap().starts_with(SOURCE_FILE));
        assert!(!s.has("clipped"), "{s:?}");
        let began = s.annotation("began on").expect("began on");
        assert!(workers.contains(began), "{began}");
        if let Some(ended) = s.annotation("ended on") {
            assert!(workers.contains(ended), "{ended}");
        }
    }

    // Lanes nest strictly: any two slices of a lane are disjoint or nested.
    for lane in &lanes {
        let slices = trace.slices_of(lane.uuid);
        for (i, a) in slices.iter().enumerate() {
            if let Some(p) = a.parent {
                assert!(slices[p].contains(a));
            }
            for b in &slices[i + 1..] {
                assert!(
                    a.end <= b.begin || a.contains(b) || b.contains(a),
                    "{}: {} [{}, {}] and {} [{}, {}] overlap without nesting",
                    lane.label(),
                    a.name,
                    a.begin,
                    a.end,
                    b.name,
                    b.begin,
                    b.end
                );
            }
        }
    }

    // A child sits directly under its parent on the parent's lane, or gets one flow from it.
    let mut flows_out: BTreeMap<u64, u64> = BTreeMap::new();
    for (id, placed) in &spans {
        for &flow in &placed.slice.flows_out {
            assert!(flows_out.insert(flow, *id).is_none(), "flow {flow} reused");
        }
    }
    let mut flows_in = BTreeSet::new();
    for (id, placed) in &spans {
        let s = placed.slice;
        let parent_id = expected[id].1;
        if parent_id == 0 {
            assert!(s.flows_in.is_empty());
            continue;
        }
        let parent = &spans[&parent_id];
        if placed.lane == parent.lane {
            assert_eq!(
                s.parent,
                Some(parent.index),
                "span {id}: directly under its parent"
            );
            assert!(
                s.flows_in.is_empty(),
                "span {id}: no flow on its parent's lane"
            );
        } else {
            assert_eq!(s.flows_in.len(), 1, "span {id}: one flow from its parent");
            let flow = s.flows_in[0];
            assert_eq!(
                flows_out.get(&flow),
                Some(&parent_id),
                "span {id}: flow {flow}"
            );
            assert!(flows_in.insert(flow));
        }
    }
    assert_eq!(
        flows_in,
        flows_out.keys().copied().collect(),
        "every flow ends once"
    );

    // Overlapping siblings: on different lanes, one of them linked to async_root by a flow.
    for (left, right) in [(6, 7), (8, 10)] {
        let (l, r) = (&spans[&left], &spans[&right]);
        assert!(
            l.slice.begin < r.slice.begin
                && r.slice.begin < l.slice.end
                && l.slice.end < r.slice.end,
            "{left} and {right} overlap without nesting"
        );
        assert_ne!(l.lane, r.lane, "{left} and {right} on different lanes");
        assert!(
            !l.slice.flows_in.is_empty() || !r.slice.flows_in.is_empty(),
            "one of {left} and {right} is off its parent's lane"
        );
    }

    // Children that fit in their parent nest under it on the same lane.
    for (child, parent) in [(2, 1), (3, 2), (4, 3), (5, 2)] {
        let (c, p) = (&spans[&child], &spans[&parent]);
        assert!(p.slice.contains(c.slice), "{child} within {parent}");
        assert_eq!(c.lane, p.lane, "{child} on the lane of {parent}");
        assert_eq!(
            c.slice.parent,
            Some(p.index),
            "{child} directly under {parent}"
        );
    }

    // Dropped futures: drawn to the end of the data, marked unfinished; nothing else is.
    let unfinished: BTreeSet<u64> = spans
        .iter()
        .filter(|(_, p)| p.slice.has("unfinished"))
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(unfinished, BTreeSet::from([60, 62]));
    for id in [60, 62] {
        let s = spans[&id].slice;
        assert_eq!(
            s.end, facts.data_end_ns as u64,
            "span {id} ends at the data end"
        );
        assert!(s.begin < s.end);
        assert!(s.annotation("ended on").is_none());
    }
    for (id, placed) in &spans {
        if !unfinished.contains(id) {
            assert!(placed.slice.annotation("ended on").is_some(), "span {id}");
            assert!(placed.slice.end < facts.data_end_ns as u64, "span {id}");
        }
    }

    // The hop: begins on one worker, ends on the other.
    let hop = spans[&58].slice;
    let (began, ended) = (hop.annotation("began on"), hop.annotation("ended on"));
    assert!(began.is_some() && ended.is_some());
    assert_ne!(began, ended, "hop_across_workers changes worker");
    assert!(
        spans[&59].slice.end > hop.end,
        "worker_blocker ends after the hop"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. --spans
// ---------------------------------------------------------------------------------------------

#[test]
fn span_kinds_select_tracks_and_both_is_the_union_of_thread_and_async() {
    let fixture = Fixture::new();
    let id = &fixture.main_id;
    let thread = fixture.trace(id, &["--spans", "thread"]);
    let asynchronous = fixture.trace(id, &["--spans", "async"]);
    let both = fixture.trace(id, &["--spans", "both"]);

    assert!(thread.async_group().is_none());
    assert!(thread.async_tracks().is_empty());
    assert!(
        thread
            .tracks
            .values()
            .all(|t| !t.label().starts_with("async")),
        "no async track in --spans thread"
    );
    for (uuid, slices) in &thread.slices {
        assert!(thread.track(*uuid).thread.is_some() || slices.is_empty());
    }

    for t in asynchronous.thread_tracks() {
        assert!(
            asynchronous.slices_of(t.uuid).is_empty(),
            "--spans async draws nothing on {}",
            t.label()
        );
    }
    assert_eq!(asynchronous.async_slices().len(), 62);

    let thread_tracks = |t: &Trace| -> Vec<_> {
        t.thread_tracks()
            .into_iter()
            .map(|track| (track.clone(), t.slices_of(track.uuid).to_vec()))
            .collect()
    };
    assert_eq!(thread_tracks(&both), thread_tracks(&thread));
    assert_eq!(both.thread_slices_by_label().len(), 5);
    let async_tracks = |t: &Trace| -> Vec<_> {
        t.async_tracks()
            .into_iter()
            .map(|track| (track.label(), t.slices_of(track.uuid).to_vec()))
            .collect()
    };
    assert_eq!(async_tracks(&both), async_tracks(&asynchronous));
}

// ---------------------------------------------------------------------------------------------
// 5. --begin / --end
// ---------------------------------------------------------------------------------------------

fn rfc3339(ns: u64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns as i64)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// What a slice becomes in `[from, to]`: `None` when outside, else the clipped bounds and how
/// many `clipped` annotations it gains.
fn clipped(s: &Slice, from: u64, to: u64) -> Option<(u64, u64, usize)> {
    if s.end < from || s.begin > to {
        return None;
    }
    Some((
        s.begin.max(from),
        s.end.min(to),
        usize::from(s.begin < from) + usize::from(s.end > to),
    ))
}

/// (name, begin, end, clipped annotations, other annotations) of a thread slice.
type ThreadKey = (String, u64, u64, usize, Vec<(String, String)>);

fn thread_key(s: &Slice, begin: u64, end: u64, clips: usize) -> ThreadKey {
    let others = s
        .annotations
        .iter()
        .filter(|(n, _)| n != "clipped")
        .cloned()
        .collect();
    (s.name.clone(), begin, end, clips, others)
}

/// The export of `[from, to]` keeps exactly the overlapping spans, clipped and annotated.
fn check_range(fixture: &Fixture, full: &Trace, from: Option<u64>, to: Option<u64>) -> Trace {
    let mut args = Vec::new();
    let (begin_arg, end_arg);
    if let Some(from) = from {
        begin_arg = rfc3339(from);
        args.extend(["--begin", begin_arg.as_str()]);
    }
    if let Some(to) = to {
        end_arg = rfc3339(to);
        args.extend(["--end", end_arg.as_str()]);
    }
    let ranged = fixture.trace(&fixture.main_id, &args);
    let (from, to) = (from.unwrap_or(0), to.unwrap_or(u64::MAX));

    // Thread slices, per thread: same multiset; threads left with nothing have no track.
    let mut expected: BTreeMap<String, Vec<ThreadKey>> = BTreeMap::new();
    let mut dropped = 0;
    for (label, slices) in full.thread_slices_by_label() {
        for s in &slices {
            match clipped(s, from, to) {
                Some((b, e, c)) => expected
                    .entry(label.clone())
                    .or_default()
                    .push(thread_key(s, b, e, c)),
                None => dropped += 1,
            }
        }
    }
    let mut actual: BTreeMap<String, Vec<ThreadKey>> = BTreeMap::new();
    for (label, slices) in ranged.thread_slices_by_label() {
        for s in &slices {
            assert!(
                from <= s.begin && s.end <= to,
                "{label}: {s:?} outside the range"
            );
            let clips = s.annotations_named("clipped");
            assert!(clips.iter().all(|c| c.contains("range")), "{s:?}");
            actual.entry(label.clone()).or_default().push(thread_key(
                s,
                s.begin,
                s.end,
                clips.len(),
            ));
        }
    }
    for list in expected.values_mut().chain(actual.values_mut()) {
        list.sort();
    }
    assert_eq!(
        actual.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "thread tracks kept"
    );
    assert_eq!(actual, expected, "thread slices kept and clipped");
    assert_eq!(ranged.thread_tracks().len(), expected.len());

    // Async slices by span id (lanes may differ once begins are clipped).
    let full_async = async_by_span_id(full);
    let ranged_async = async_by_span_id(&ranged);
    let mut kept = BTreeSet::new();
    for (id, placed) in &full_async {
        let s = placed.slice;
        match clipped(s, from, to) {
            None => {
                dropped += 1;
                assert!(!ranged_async.contains_key(id), "span {id} is outside");
            }
            Some((b, e, c)) => {
                kept.insert(*id);
                let r = ranged_async
                    .get(id)
                    .unwrap_or_else(|| panic!("span {id} overlaps the range"))
                    .slice;
                assert_eq!((r.name.as_str(), r.begin, r.end), (s.name.as_str(), b, e));
                let clips = r.annotations_named("clipped");
                assert_eq!(clips.len(), c, "span {id}: {r:?}");
                assert!(clips.iter().all(|c| c.contains("range")), "{r:?}");
                let others = |x: &Slice| -> Vec<(String, String)> {
                    x.annotations
                        .iter()
                        .filter(|(n, _)| n != "clipped")
                        .cloned()
                        .collect()
                };
                assert_eq!(others(r), others(s), "span {id}");
            }
        }
    }
    assert_eq!(ranged_async.len(), kept.len());
    assert!(dropped > 0, "the range leaves some spans out");

    // Log instants and counter values: exactly those of the full trace inside the range.
    let in_range = |t: u64| from <= t && t <= to;
    let instants = |trace: &Trace| -> Vec<(u64, String)> {
        let all = trace.instants.values().flatten();
        let mut list: Vec<_> = all.map(|i| (i.begin, i.name.clone())).collect();
        list.sort();
        list
    };
    let mut expected = instants(full);
    expected.retain(|(t, _)| in_range(*t));
    assert_eq!(instants(&ranged), expected);
    let values = |trace: &Trace| -> Vec<(u64, u64)> {
        let all = trace.counters.values().flatten();
        let mut list: Vec<_> = all.map(|(t, v)| (*t, v.to_bits())).collect();
        list.sort();
        list
    };
    let mut expected = values(full);
    expected.retain(|(t, _)| in_range(*t));
    assert_eq!(values(&ranged), expected);
    ranged
}

fn deep_outer(trace: &Trace) -> (u64, Slice) {
    trace
        .thread_tracks()
        .into_iter()
        .find_map(|t| {
            trace
                .slices_of(t.uuid)
                .iter()
                .find(|s| s.name == "deep_outer")
                .map(|s| (t.uuid, s.clone()))
        })
        .expect("deep_outer")
}

#[test]
fn a_time_range_keeps_only_overlapping_spans_clipped_to_it() {
    let fixture = Fixture::new();
    let full = fixture.trace(&fixture.main_id, &[]);

    // The middle third of the deep thread.
    let (_, outer) = deep_outer(&full);
    let third = (outer.end - outer.begin) / 3;
    let (from, to) = (outer.begin + third, outer.end - third);
    let ranged = check_range(&fixture, &full, Some(from), Some(to));
    let (deep, clipped_outer) = deep_outer(&ranged);
    assert_eq!((clipped_outer.begin, clipped_outer.end), (from, to));
    assert_eq!(clipped_outer.annotations_named("clipped").len(), 2);
    assert_eq!(clipped_outer.depth, 0);
    let slices = ranged.slices_of(deep);
    // At least the outer span and one whole iteration (6 levels), not all 241 spans.
    assert!(slices.len() >= 7 && slices.len() < 241, "{}", slices.len());
    for s in slices.iter().filter(|s| s.name == "deep_leaf") {
        assert_eq!(s.depth, 6);
        assert_eq!(ranged.ancestors(deep, s).last(), Some(&"deep_outer"));
    }
    assert!(
        ranged.async_slices().is_empty(),
        "no future runs while the sync threads do"
    );

    // Across the async part: from the middle of overlap_right to the middle of the hop.
    let spans = async_by_span_id(&full);
    let mid = |s: &Slice| s.begin + (s.end - s.begin) / 2;
    let ranged = check_range(
        &fixture,
        &full,
        Some(mid(spans[&7].slice)),
        Some(mid(spans[&58].slice)),
    );
    let kept = async_by_span_id(&ranged);
    assert!(kept.contains_key(&1) && kept.contains_key(&7) && kept.contains_key(&58));
    assert!(!kept.contains_key(&2) && !kept.contains_key(&60));

    // Only a begin: the dropped futures are still drawn to the end of the data.
    let ranged = check_range(&fixture, &full, Some(mid(spans[&61].slice)), None);
    let kept = async_by_span_id(&ranged);
    for id in [60, 62] {
        assert!(kept[&id].slice.has("unfinished"));
        assert_eq!(kept[&id].slice.end, spans[&id].slice.end);
    }
}

/// (name, begin, end, names of the enclosing slices innermost first) of a thread slice.
type StackKey = (String, u64, u64, Vec<String>);

/// Every kept thread slice keeps its call stack (the names of its enclosing slices).
fn assert_call_stacks_survive_clipping(full: &Trace, ranged: &Trace, from: u64, to: u64) {
    let stacks = |t: &Trace, clip: bool| -> BTreeMap<String, Vec<StackKey>> {
        let mut out = BTreeMap::new();
        for track in t.thread_tracks() {
            let mut list = Vec::new();
            for s in t.slices_of(track.uuid) {
                let Some((b, e, _)) = (if clip {
                    clipped(s, from, to)
                } else {
                    Some((s.begin, s.end, 0))
                }) else {
                    continue;
                };
                let stack = t
                    .ancestors(track.uuid, s)
                    .into_iter()
                    .map(String::from)
                    .collect();
                list.push((s.name.clone(), b, e, stack));
            }
            list.sort();
            if !list.is_empty() {
                out.insert(track.label(), list);
            }
        }
        out
    };
    assert_eq!(stacks(ranged, false), stacks(full, true));
}

#[test]
fn clipping_keeps_call_stacks_even_when_nested_spans_are_clipped_to_the_same_bounds() {
    let fixture = Fixture::new();
    let full = fixture.trace(&fixture.main_id, &[]);
    let (_, outer) = deep_outer(&full);
    // 20 µs around the middle of the deep thread: inside one deep_leaf, so the whole stack
    // (deep_outer … deep_leaf, and main_scenario > run_sync_threads) is clipped to the range.
    let middle = outer.begin + (outer.end - outer.begin) / 2;
    for (from, to) in [
        (middle - 10_000, middle + 10_000),
        (
            outer.begin + (outer.end - outer.begin) / 3,
            outer.end - (outer.end - outer.begin) / 3,
        ),
    ] {
        let ranged = fixture.trace(
            &fixture.main_id,
            &["--begin", &rfc3339(from), "--end", &rfc3339(to)],
        );
        assert_call_stacks_survive_clipping(&full, &ranged, from, to);
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Determinism
// ---------------------------------------------------------------------------------------------

#[test]
fn exports_are_byte_identical_run_after_run_and_whatever_the_thread_count() {
    let fixture = Fixture::new();
    for id in [&fixture.main_id, &fixture.secondary_id] {
        let first = fixture.export(id, &[]);
        let second = fixture.export(id, &[]);
        let one_thread = fixture.export(id, &["--threads", "1"]);
        assert!(first == second, "{id}: two runs differ");
        assert!(first == one_thread, "{id}: --threads 1 differs");
        eprintln!("{id} --spans both: sha256 {}", sha256_hex(&first));
        for spans in ["thread", "async"] {
            assert!(
                fixture.export(id, &["--spans", spans])
                    == fixture.export(id, &["--spans", spans, "--threads", "1"]),
                "{id} --spans {spans}"
            );
        }
    }
}
