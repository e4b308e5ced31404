//! Pairing, clipping and layout rules, on hand-made event sequences.

use std::cell::RefCell;

use super::*;
use crate::clock::Clock;
use crate::events::{EventPhase, EventScope, EventTable, OrderedRows};
use crate::lake::rows::{BlockRow, ProcessRow, StreamRow};
use crate::partitions::{Instance, View};
use crate::symbols::{PropertySet, Sym, Symbols};
use crate::tracks::{AsyncDetail, Slice, Track, notes};
use uuid::Uuid;

thread_local! {
    static SYMBOLS: RefCell<Symbols> = RefCell::new(Symbols::new());
}

fn sym(text: &str) -> Sym {
    SYMBOLS.with(|s| s.borrow_mut().intern(text))
}

fn text(sym: Sym) -> String {
    SYMBOLS.with(|s| s.borrow().get(sym).to_string())
}

/// An event and its async ids (zero for thread events).
type TestEvent = (Event, AsyncIds);

fn event(
    ns: i64,
    scope: EventScope,
    phase: EventPhase,
    name: &str,
    span_id: u64,
    parent: u64,
) -> TestEvent {
    let event = Event {
        ns,
        scope,
        phase,
        name: sym(name),
        target: sym("test"),
        file: sym("test.rs"),
        line: 1,
        properties: PropertySet::NONE,
    };
    let ids = AsyncIds {
        span_id,
        parent_span_id: parent,
        depth: 0,
    };
    (event, ids)
}

fn begin(ns: i64, name: &str) -> TestEvent {
    event(ns, EventScope::Thread, EventPhase::Begin, name, 0, 0)
}
fn end(ns: i64, name: &str) -> TestEvent {
    event(ns, EventScope::Thread, EventPhase::End, name, 0, 0)
}
fn abegin(ns: i64, name: &str, id: u64, parent: u64) -> TestEvent {
    event(ns, EventScope::Async, EventPhase::Begin, name, id, parent)
}
fn aend(ns: i64, name: &str, id: u64, parent: u64) -> TestEvent {
    event(ns, EventScope::Async, EventPhase::End, name, id, parent)
}

/// A thread: its name and its chains (bounds and events), each chain one block, with a gap
/// in the stream between chains.
struct TestThread {
    name: String,
    chains: Vec<(i64, i64, Vec<TestEvent>)>,
}

fn thread(name: &str, chains: Vec<(i64, i64, Vec<TestEvent>)>) -> TestThread {
    TestThread {
        name: name.into(),
        chains,
    }
}

/// Which spans to assemble, over which time range.
struct AssemblyOptions {
    thread_spans: bool,
    async_spans: bool,
    range: Option<(i64, i64)>,
}

fn both() -> AssemblyOptions {
    AssemblyOptions {
        thread_spans: true,
        async_spans: true,
        range: None,
    }
}

/// What a trace of these threads shows.
struct Timeline {
    threads: Vec<Track>,
    async_tracks: Vec<Track>,
    stats: AssemblyStats,
}

/// The test threads as a lake would hold them: streams, one block per chain, the events of
/// each block with their places in stream order.
struct TestLake {
    process: ProcessRow,
    streams: Vec<StreamRow>,
    blocks: Vec<BlockRow>,
    events: Vec<(EventOrder, Uuid, TestEvent)>,
}

fn test_lake(threads: &[TestThread]) -> TestLake {
    let epoch = chrono::DateTime::from_timestamp(0, 0).unwrap();
    let process_id = Uuid::from_u128(1);
    let process = ProcessRow {
        exe: "p".into(),
        ..ProcessRow::ticking_in_unix_nanos(process_id)
    };
    let (mut streams, mut blocks, mut events) = (Vec::new(), Vec::new(), Vec::new());
    for (k, thread) in threads.iter().enumerate() {
        let stream_id = Uuid::from_u128(100 + k as u128);
        streams.push(StreamRow {
            stream_id,
            process_id,
            tags: vec!["cpu".into()],
            properties: vec![("thread-name".into(), thread.name.clone())],
            insert_time: epoch,
            format: crate::lake::rows::TRANSIT_FORMAT.into(),
        });
        let mut offset = 0;
        for (begin_ns, end_ns, chain_events) in &thread.chains {
            let position = blocks.len() as u32;
            blocks.push(BlockRow {
                block_id: Uuid::from_u128(1000 + position as u128),
                stream_id,
                process_id,
                begin_time: epoch,
                end_time: epoch,
                begin_ticks: *begin_ns,
                end_ticks: *end_ns,
                nb_objects: chain_events.len() as i32,
                object_offset: offset,
                payload_size: 0,
                insert_time: epoch,
            });
            // The next chain starts after a gap.
            offset += chain_events.len() as i64 + 1;
            for (index, e) in chain_events.iter().enumerate() {
                events.push((EventOrder::new(position, index as u32), stream_id, *e));
            }
        }
    }
    TestLake {
        process,
        streams,
        blocks,
        events,
    }
}

/// The events of the test lake, as partitions would give them.
struct TestSource<'a> {
    lake: &'a TestLake,
}

impl EventSource<EventTable> for TestSource<'_> {
    async fn read(
        &mut self,
        view: View,
        instance: Uuid,
        symbols: &mut Symbols,
        table: &mut EventTable,
    ) -> anyhow::Result<()> {
        table.clear();
        let _ = symbols; // the events' strings are interned already
        let wanted = (self.lake.events.iter()).filter(|(_, stream, (e, _))| {
            Some(e.scope) == view.span_scope()
                && (view.per == Instance::Process || *stream == instance)
        });
        for (order, _, (event, ids)) in wanted {
            table.events.push(*event);
            table.orders.push(*order);
            if view.per == Instance::Process {
                table.ids.push(*ids);
            }
        }
        Ok(())
    }
}

/// Assembles the threads through the export's path ([`ProcessAssembler`]).
fn assemble(_name: String, threads: &[TestThread], options: &AssemblyOptions) -> Timeline {
    let lake = test_lake(threads);
    let clock = Clock::for_process(&lake.process, (None, None)).unwrap();
    let process = ProcessData {
        process_id: lake.process.process_id,
        streams: &lake.streams,
        blocks: &lake.blocks,
        clock: &clock,
        range: options.range,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let symbols = SYMBOLS.with(|s| s.borrow().clone());
    let mut assembler = ProcessAssembler::new(TestSource { lake: &lake }, process, symbols);
    let mut timeline = Timeline {
        threads: Vec::new(),
        async_tracks: Vec::new(),
        stats: AssemblyStats::default(),
    };
    runtime.block_on(async {
        if options.thread_spans {
            for k in 0..assembler.thread_count() {
                let tid = FIRST_TID + timeline.threads.len() as i32;
                timeline
                    .threads
                    .extend(assembler.thread_track(k, tid).await.unwrap());
            }
        }
        if options.async_spans {
            timeline.async_tracks = assembler.async_tracks().await.unwrap().lanes;
        }
    });
    timeline.stats = assembler.stats;
    // Thread names were interned by the assembler.
    SYMBOLS.with(|s| *s.borrow_mut() = assembler.symbols);
    timeline
}

fn spans(slices: &[Slice]) -> Vec<(String, i64, i64)> {
    let mut v: Vec<_> = slices
        .iter()
        .map(|s| (text(s.name), s.begin_ns, s.end_ns))
        .collect();
    v.sort();
    v
}

/// The argument `key` of a slice as the trace shows it.
fn note(slice: &Slice, key: &str) -> Option<String> {
    if let Some(detail) = &slice.detail {
        match key {
            "began on" => return detail.began_on.map(text),
            "ended on" => return detail.ended_on.map(text),
            _ => {}
        }
    }
    notes::ALL
        .iter()
        .find(|(flag, name, _)| slice.notes & flag != 0 && *name == key)
        .map(|(_, _, t)| t.to_string())
}

fn find<'a>(slices: &'a [Slice], name: &str) -> &'a Slice {
    slices
        .iter()
        .find(|s| text(s.name) == name)
        .unwrap_or_else(|| panic!("no slice {name}"))
}

fn detail(slice: &Slice) -> &AsyncDetail {
    slice.detail.as_ref().expect("an async slice")
}

/// Every track of the timeline nests strictly: sorted by begin, each slice ends before the
/// innermost open slice that contains its begin.
fn assert_strictly_nested(timeline: &Timeline) {
    let tracks = timeline
        .threads
        .iter()
        .map(|t| &t.slices)
        .chain(timeline.async_tracks.iter().map(|t| &t.slices));
    for slices in tracks {
        let mut sorted: Vec<&Slice> = slices.iter().collect();
        sorted.sort_by(|a, b| a.begin_ns.cmp(&b.begin_ns).then(b.end_ns.cmp(&a.end_ns)));
        let mut open: Vec<i64> = Vec::new();
        for s in sorted {
            assert!(s.begin_ns <= s.end_ns, "{s:?}");
            while open.last().is_some_and(|&e| e <= s.begin_ns) {
                open.pop();
            }
            if let Some(&parent_end) = open.last() {
                assert!(
                    s.end_ns <= parent_end,
                    "slice {} [{}, {}] outlives its parent ending {parent_end}",
                    s.name,
                    s.begin_ns,
                    s.end_ns
                );
            }
            open.push(s.end_ns);
        }
    }
}

#[test]
fn a_span_crossing_blocks_of_one_chain_is_one_slice() {
    let t = thread(
        "main",
        vec![(
            0,
            100,
            vec![
                begin(10, "outer"),
                begin(20, "inner"),
                end(30, "inner"),
                end(90, "outer"),
            ],
        )],
    );
    let timeline = assemble("p".into(), &[t], &both());
    assert_eq!(
        spans(&timeline.threads[0].slices),
        vec![("inner".into(), 20, 30), ("outer".into(), 10, 90)]
    );
    assert_eq!(timeline.stats.thread_spans, 2);
    assert_eq!(timeline.stats.clipped_begin + timeline.stats.clipped_end, 0);
}

#[test]
fn an_end_without_begin_starts_at_the_data_start_and_says_so() {
    let t = thread(
        "main",
        vec![(
            5,
            100,
            vec![
                end(20, "inner"),
                end(30, "outer"),
                begin(40, "next"),
                end(50, "next"),
            ],
        )],
    );
    let timeline = assemble("p".into(), &[t], &both());
    let slices = &timeline.threads[0].slices;
    assert_eq!(
        spans(slices),
        vec![
            ("inner".into(), 5, 20),
            ("next".into(), 40, 50),
            ("outer".into(), 5, 30)
        ]
    );
    assert!(
        note(find(slices, "outer"), "clipped")
            .unwrap()
            .contains("before the data")
    );
    assert_eq!(timeline.stats.clipped_begin, 2);
    assert_strictly_nested(&timeline);
}

#[test]
fn a_begin_never_ended_stops_at_the_data_end_and_says_so() {
    let t = thread(
        "main",
        vec![(
            0,
            100,
            vec![begin(10, "main loop"), begin(20, "work"), end(30, "work")],
        )],
    );
    let timeline = assemble("p".into(), &[t], &both());
    let slices = &timeline.threads[0].slices;
    assert_eq!(find(slices, "main loop").end_ns, 100);
    assert!(
        note(find(slices, "main loop"), "clipped")
            .unwrap()
            .contains("did not end")
    );
    assert_eq!(timeline.stats.clipped_end, 1);
}

#[test]
fn a_gap_in_the_stream_closes_what_is_open_at_the_gap() {
    let t = thread(
        "main",
        vec![
            (0, 50, vec![begin(10, "a"), begin(20, "b")]),
            (60, 100, vec![end(70, "b"), end(80, "a")]),
        ],
    );
    let timeline = assemble("p".into(), &[t], &both());
    let slices = &timeline.threads[0].slices;
    assert_eq!(
        spans(slices),
        vec![
            ("a".into(), 10, 50),
            ("a".into(), 60, 80),
            ("b".into(), 20, 50),
            ("b".into(), 60, 70)
        ]
    );
    assert_eq!(timeline.stats.cut_at_gap, 2);
    assert_strictly_nested(&timeline);
}

#[test]
fn an_end_that_skips_the_innermost_span_closes_it_with_its_parent_and_keeps_the_thread() {
    let t = thread(
        "main",
        vec![(
            0,
            100,
            vec![
                begin(10, "a"),
                begin(20, "lost"),
                end(30, "a"),
                begin(40, "c"),
                end(50, "c"),
            ],
        )],
    );
    let timeline = assemble("p".into(), &[t], &both());
    let slices = &timeline.threads[0].slices;
    assert_eq!(
        spans(slices),
        vec![
            ("a".into(), 10, 30),
            ("c".into(), 40, 50),
            ("lost".into(), 20, 30)
        ]
    );
    assert!(
        note(find(slices, "lost"), "clipped")
            .unwrap()
            .contains("closed with its parent")
    );
    assert_eq!(timeline.stats.closed_with_parent, 1);
}

#[test]
fn an_end_matching_nothing_open_is_dropped_and_counted() {
    let t = thread(
        "main",
        vec![(0, 100, vec![begin(10, "a"), end(20, "stray"), end(30, "a")])],
    );
    let timeline = assemble("p".into(), &[t], &both());
    assert_eq!(
        spans(&timeline.threads[0].slices),
        vec![("a".into(), 10, 30)]
    );
    assert_eq!(timeline.stats.unmatched_ends, 1);
}

#[test]
fn a_clock_stepping_back_never_breaks_nesting() {
    let t = thread(
        "main",
        vec![(
            0,
            100,
            vec![begin(50, "a"), begin(40, "b"), end(45, "b"), end(60, "a")],
        )],
    );
    let timeline = assemble("p".into(), &[t], &both());
    assert_strictly_nested(&timeline);
}

#[test]
fn async_spans_pair_across_threads_and_say_where_they_ran() {
    let t1 = thread("one", vec![(0, 100, vec![abegin(10, "fetch", 1, 0)])]);
    let t2 = thread("two", vec![(0, 100, vec![aend(40, "fetch", 1, 0)])]);
    let timeline = assemble("p".into(), &[t1, t2], &both());
    let slice = &timeline.async_tracks[0].slices[0];
    assert_eq!((slice.begin_ns, slice.end_ns), (10, 40));
    assert_eq!(note(slice, "began on").unwrap(), "one");
    assert_eq!(note(slice, "ended on").unwrap(), "two");
}

#[test]
fn a_child_nests_on_its_parents_track_and_overlapping_siblings_get_their_own_with_a_flow() {
    let t = thread(
        "main",
        vec![(
            0,
            100,
            vec![
                abegin(10, "parent", 1, 0),
                abegin(20, "child a", 2, 1),
                abegin(25, "child b", 3, 1),
                aend(50, "child a", 2, 1),
                aend(60, "child b", 3, 1),
                aend(90, "parent", 1, 0),
            ],
        )],
    );
    let timeline = assemble("p".into(), &[t], &both());
    assert_eq!(timeline.async_tracks.len(), 2);
    let lane0 = &timeline.async_tracks[0].slices;
    let lane1 = &timeline.async_tracks[1].slices;
    assert_eq!(
        spans(lane0),
        vec![("child a".into(), 20, 50), ("parent".into(), 10, 90)]
    );
    assert_eq!(spans(lane1), vec![("child b".into(), 25, 60)]);
    let flow = detail(&lane1[0])
        .flow_in
        .expect("child b is linked to its parent");
    assert!(
        detail(find(lane0, "parent"))
            .flows_out
            .iter()
            .any(|f| f == flow.get())
    );
    assert!(detail(find(lane0, "child a")).flow_in.is_none());
    assert_strictly_nested(&timeline);
}

#[test]
fn a_child_outliving_its_parent_goes_to_another_track() {
    let t = thread(
        "main",
        vec![(
            0,
            100,
            vec![
                abegin(10, "parent", 1, 0),
                abegin(20, "spawned", 2, 1),
                aend(30, "parent", 1, 0),
                aend(80, "spawned", 2, 1),
            ],
        )],
    );
    let timeline = assemble("p".into(), &[t], &both());
    assert_eq!(timeline.async_tracks.len(), 2);
    assert_strictly_nested(&timeline);
}

#[test]
fn a_dropped_future_runs_to_the_data_end_marked_unfinished() {
    let t = thread("main", vec![(0, 100, vec![abegin(10, "dropped", 7, 0)])]);
    let timeline = assemble("p".into(), &[t], &both());
    let slice = &timeline.async_tracks[0].slices[0];
    assert_eq!((slice.begin_ns, slice.end_ns), (10, 100));
    assert!(note(slice, "unfinished").is_some());
    assert_eq!(timeline.stats.unfinished_async, 1);
}

#[test]
fn a_range_keeps_overlapping_spans_clipped_to_it() {
    let t = thread(
        "main",
        vec![(
            0,
            100,
            vec![
                begin(10, "a"),
                end(30, "a"),
                begin(40, "b"),
                end(60, "b"),
                begin(70, "c"),
                end(90, "c"),
            ],
        )],
    );
    let options = AssemblyOptions {
        range: Some((50, 75)),
        ..both()
    };
    let timeline = assemble("p".into(), &[t], &options);
    let slices = &timeline.threads[0].slices;
    assert_eq!(
        spans(slices),
        vec![("b".into(), 50, 60), ("c".into(), 70, 75)]
    );
    assert!(
        note(find(slices, "b"), "clipped")
            .unwrap()
            .contains("before the range")
    );
}

#[test]
fn async_spans_touching_a_range_show_at_its_edges_and_the_others_do_not() {
    let span = |id: u64, name: &str, b: i64, e: i64| [abegin(b, name, id, 0), aend(e, name, id, 0)];
    let events = [
        span(1, "ends at the start", 10, 50),
        span(2, "begins at the end", 75, 90),
        span(3, "ends before", 10, 49),
        span(4, "begins after", 76, 90),
        span(5, "across", 20, 80),
    ]
    .concat();
    let t = thread("main", vec![(0, 100, events)]);
    let options = AssemblyOptions {
        range: Some((50, 75)),
        ..both()
    };
    let timeline = assemble("p".into(), &[t], &options);
    let mut shown: Vec<(String, i64, i64)> = (timeline.async_tracks.iter())
        .flat_map(|lane| spans(&lane.slices))
        .collect();
    shown.sort();
    assert_eq!(
        shown,
        vec![
            ("across".into(), 50, 75),
            ("begins at the end".into(), 75, 75),
            ("ends at the start".into(), 50, 50),
        ]
    );
    assert_eq!(timeline.stats.async_spans, 3);
}

#[test]
fn random_async_forests_always_lay_out_strictly_nested() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..50 {
        let mut events = Vec::new();
        for id in 1..=40u64 {
            let parent = if id > 1 && next() % 3 != 0 {
                next() % (id - 1) + 1
            } else {
                0
            };
            let b = (next() % 1000) as i64;
            let e = b + (next() % 300) as i64;
            events.push(abegin(b, "s", id, parent));
            if next() % 10 != 0 {
                events.push(aend(e, "s", id, parent));
            }
        }
        events.sort_by_key(|e| e.0.ns);
        let timeline = assemble("p".into(), &[thread("t", vec![(0, 2000, events)])], &both());
        assert_eq!(timeline.stats.async_spans, 40);
        assert_strictly_nested(&timeline);
    }
}

#[test]
fn a_parent_and_child_with_equal_bounds_keep_their_order() {
    let t = thread(
        "main",
        vec![(
            0,
            100,
            vec![
                begin(10, "outer"),
                begin(10, "inner"),
                end(20, "inner"),
                end(20, "outer"),
            ],
        )],
    );
    let timeline = assemble("p".into(), &[t], &both());
    let names: Vec<String> = timeline.threads[0]
        .slices
        .iter()
        .map(|s| text(s.name))
        .collect();
    assert_eq!(
        names,
        vec!["outer", "inner"],
        "outer first, so the writer opens it first"
    );
    let clipped = thread(
        "main",
        vec![(0, 100, vec![end(20, "inner"), end(20, "outer")])],
    );
    let timeline = assemble("p".into(), &[clipped], &both());
    let names: Vec<String> = timeline.threads[0]
        .slices
        .iter()
        .map(|s| text(s.name))
        .collect();
    assert_eq!(names, vec!["outer", "inner"]);
}

#[test]
fn a_span_id_reused_while_open_gives_two_nested_spans_not_two_clipped_ones() {
    let t = thread(
        "main",
        vec![(
            0,
            100,
            vec![
                abegin(10, "a", 5, 0),
                abegin(20, "b", 5, 0),
                aend(30, "b", 5, 0),
                aend(40, "a", 5, 0),
            ],
        )],
    );
    let timeline = assemble("p".into(), &[t], &both());
    assert_eq!(timeline.stats.duplicate_span_ids, 1);
    assert_eq!(
        timeline.stats.unfinished_async + timeline.stats.clipped_begin,
        0
    );
    let slices: Vec<_> = timeline
        .async_tracks
        .iter()
        .flat_map(|t| t.slices.iter())
        .collect();
    let mut bounds: Vec<(i64, i64)> = slices.iter().map(|s| (s.begin_ns, s.end_ns)).collect();
    bounds.sort();
    assert_eq!(bounds, vec![(10, 40), (20, 30)]);
    assert_strictly_nested(&timeline);
}
