//! The log entries and measures of the genuine fixture lake, and `--children`: each entry and
//! value checked against what tools/make-fixture/README.md says the program recorded, and at
//! the moment it was recorded — inside the span that was open on the thread that recorded it.

mod support;

use std::collections::BTreeMap;

use support::lake::{fixture_copy, processes_json, run, runtime, stderr, succeeded};
use support::oracle::reference_trace_of;
use support::trace::{Slice, Trace, Track, decode};

const SOURCE_FILE: &str = "tools/make-fixture/src/workload.rs";
const TARGET: &str = "make_fixture::workload";
const LEVELS: [&str; 6] = ["fatal", "error", "warn", "info", "debug", "trace"];
const LONG_MESSAGE: &str = "a long debug message that goes on and on, well past the length that \
    a log instant's name keeps in the trace, so that the name is shortened with an ellipsis \
    while the whole message stays in the entry's arguments";
const DEEP_ITERATIONS: usize = 30;
const NAMED_STAGES: [&str; 3] = ["stage_parse", "stage_plan", "stage_execute"];
const NAMED_ITERATIONS: usize = 10;

/// A private copy of the fixture; its main process and that process's child.
struct Fixture {
    lake: tempfile::TempDir,
    main_id: String,
    child_id: String,
}

impl Fixture {
    fn new() -> Self {
        let lake = fixture_copy();
        let list = processes_json(lake.path());
        let id = |p: &serde_json::Value| p["process_id"].as_str().unwrap().to_string();
        let main = list.iter().find(|p| p["parent_process_id"] == "").unwrap();
        let child = list.iter().find(|p| p["parent_process_id"] != "").unwrap();
        assert_eq!(child["parent_process_id"], main["process_id"]);
        Fixture {
            main_id: id(main),
            child_id: id(child),
            lake,
        }
    }

    fn export(&self, id: &str, args: &[&str]) -> Vec<u8> {
        let lake = self.lake.path().to_str().unwrap();
        let mut all = vec![id, "--lake", lake, "-q", "-o", "-"];
        all.extend_from_slice(args);
        let output = run(&all, self.lake.path());
        assert!(output.status.success(), "{all:?}: {}", stderr(&output));
        output.stdout
    }

    fn trace(&self, id: &str, args: &[&str]) -> Trace {
        let trace = decode(&self.export(id, args));
        assert!(trace.problems.is_empty(), "{:#?}", trace.problems);
        trace
    }
}

/// A group's lanes (by sibling rank) under the process track of `pid`.
fn lanes<'a>(trace: &'a Trace, pid: i32, group: &str) -> Vec<&'a Track> {
    let process = (trace.process_tracks().into_iter())
        .find(|t| t.process.as_ref().is_some_and(|(p, _)| *p == pid))
        .expect("the process track");
    let Some(group) = (trace.children(process.uuid).into_iter()).find(|t| t.label() == group)
    else {
        return vec![];
    };
    let mut lanes = trace.children(group.uuid);
    lanes.sort_by_key(|t| t.sibling_order_rank);
    lanes
}

/// Log instants by lane (level) name, in time order.
fn log_entries(trace: &Trace, pid: i32) -> BTreeMap<String, Vec<Slice>> {
    (lanes(trace, pid, "log").into_iter())
        .map(|lane| (lane.label(), trace.instants[&lane.uuid].clone()))
        .collect()
}

/// Counter values by series name: (unit, [(time, value)]).
fn series(trace: &Trace, pid: i32) -> BTreeMap<String, (String, Vec<(u64, f64)>)> {
    (lanes(trace, pid, "metrics").into_iter())
        .map(|lane| {
            let unit = lane.counter_unit.clone().unwrap_or_default();
            (lane.label(), (unit, trace.counters[&lane.uuid].clone()))
        })
        .collect()
}

/// The slices named `name` on the thread track whose label starts with `thread`, in time order.
fn spans<'a>(trace: &'a Trace, thread: &str, name: &str) -> Vec<&'a Slice> {
    let track = (trace.thread_tracks().into_iter())
        .find(|t| t.label().starts_with(thread))
        .unwrap_or_else(|| panic!("no thread {thread}"));
    let mut found: Vec<&Slice> = (trace.slices_of(track.uuid).iter())
        .filter(|s| s.name == name)
        .collect();
    found.sort_by_key(|s| s.begin);
    found
}

fn inside(time: u64, span: &Slice) -> bool {
    span.begin <= time && time <= span.end
}

fn properties(entry: &Slice) -> Vec<String> {
    (entry.annotations.iter())
        .filter(|(name, _)| name != "level" && name != "message")
        .map(|(name, value)| format!("{name}={value}"))
        .collect()
}

#[test]
fn the_main_process_log_entries_are_on_one_lane_per_level_with_message_level_and_target() {
    let fixture = Fixture::new();
    let trace = fixture.trace(&fixture.main_id, &[]);
    let entries = log_entries(&trace, 1);
    let lane_names: Vec<&str> = (lanes(&trace, 1, "log").into_iter())
        .map(|t| t.name.as_deref().unwrap())
        .collect();
    assert_eq!(lane_names, LEVELS, "every level, most severe first");
    for (level, list) in &entries {
        for entry in list {
            assert_eq!(entry.annotation("level"), Some(level.as_str()));
            let source = entry.source.as_deref().unwrap_or_default();
            assert!(source.starts_with(&format!("{SOURCE_FILE}:")), "{source}");
        }
    }
    let shown = |level: &str| -> Vec<(String, String, Vec<String>)> {
        (entries[level].iter())
            .map(|e| (e.name.clone(), e.categories.join(","), properties(e)))
            .collect()
    };
    let plain = |message: &str| (message.to_string(), TARGET.to_string(), vec![]);
    assert_eq!(
        shown("fatal"),
        [plain("a fatal entry 1; the program goes on")]
    );
    let custom = "fixture::custom_target".to_string();
    assert_eq!(
        shown("error"),
        [("an error with code 42".into(), custom, vec![])]
    );
    let tagged =
        |message: &str, property: &str| (message.into(), TARGET.into(), vec![property.to_string()]);
    assert_eq!(
        shown("warn"),
        [
            plain("2 workers, 30 deep iterations"),
            tagged("tagged warning after 3 attempts", "attempt=3")
        ]
    );
    assert_eq!(
        shown("info"),
        [
            plain("fixture main scenario starting"),
            tagged("tagged info 7", "user=alice")
        ]
    );
    let debug = shown("debug");
    assert_eq!(debug.len(), DEEP_ITERATIONS + 1);
    // Shortened in the name, whole in the arguments.
    let long = (entries["debug"].iter())
        .find(|e| e.annotation("message") == Some(LONG_MESSAGE))
        .expect("the long message, whole");
    assert!(long.name.ends_with('…') && long.name.chars().count() <= 121);
    assert!(LONG_MESSAGE.starts_with(long.name.trim_end_matches('…')));
    assert_eq!(
        shown("trace").len(),
        NAMED_STAGES.len() * NAMED_ITERATIONS + 1
    );
}

#[test]
fn each_log_entry_is_at_the_time_it_was_logged_inside_the_span_that_logged_it() {
    let fixture = Fixture::new();
    let trace = fixture.trace(&fixture.main_id, &[]);
    let entries = log_entries(&trace, 1);
    let named = |level: &str, name: &str| -> u64 {
        let found = entries[level].iter().find(|e| e.name == name);
        found
            .unwrap_or_else(|| panic!("no {level} entry {name:?}"))
            .begin
    };
    let iterations = spans(&trace, "fixture-sync-deep", "deep_iteration");
    assert_eq!(iterations.len(), DEEP_ITERATIONS);
    for (i, span) in iterations.iter().enumerate() {
        assert!(inside(named("debug", &format!("deep iteration {i}")), span));
    }
    for stage in NAMED_STAGES {
        let stage_spans = spans(&trace, "fixture-named-spans", stage);
        assert_eq!(stage_spans.len(), NAMED_ITERATIONS);
        for (i, span) in stage_spans.iter().enumerate() {
            let message = format!("stage {stage} of iteration {i}");
            assert!(inside(named("trace", &message), span), "{message}");
        }
    }
    // The eight entries of `log_every_kind`, in the order they were logged.
    let scope = spans(&trace, "main", "log_every_kind")[0];
    let first_logged = [
        ("info", "fixture main scenario starting"),
        ("warn", "2 workers, 30 deep iterations"),
        ("error", "an error with code 42"),
        ("fatal", "a fatal entry 1; the program goes on"),
        ("info", "tagged info 7"),
        ("warn", "tagged warning after 3 attempts"),
    ];
    let times: Vec<u64> = first_logged.iter().map(|(l, m)| named(l, m)).collect();
    assert!(times.is_sorted(), "{times:?}");
    let long = entries["debug"]
        .iter()
        .find(|e| e.name.ends_with('…'))
        .unwrap();
    let last = named("trace", "trace detail é");
    assert!(times[5] <= long.begin && long.begin <= last);
    assert!(times.iter().chain([&last]).all(|&t| inside(t, scope)));
}

#[test]
fn each_metric_series_is_a_counter_track_with_its_unit_and_the_values_recorded() {
    let fixture = Fixture::new();
    let trace = fixture.trace(&fixture.main_id, &[]);
    let series = series(&trace, 1);
    let units: Vec<(&str, &str)> = (series.iter())
        .map(|(name, (unit, _))| (name.as_str(), unit.as_str()))
        .collect();
    assert_eq!(
        units,
        [
            ("fixture_deep_iteration", "count"),
            ("fixture_iteration_time", "seconds"),
            ("fixture_latency {host=fixture-host}", "ms"),
            ("fixture_load", "ratio"),
            ("fixture_rows {region=eu}", "count"),
            ("fixture_rows {region=us}", "count"),
        ]
    );
    let values = |name: &str| -> Vec<f64> { series[name].1.iter().map(|(_, v)| *v).collect() };
    let upto = |n: usize, step: usize, from: usize| -> Vec<f64> {
        (0..n).map(|i| (from + i * step) as f64).collect()
    };
    assert_eq!(
        values("fixture_deep_iteration"),
        upto(DEEP_ITERATIONS, 1, 0)
    );
    assert_eq!(values("fixture_rows {region=eu}"), upto(6, 2, 0));
    assert_eq!(values("fixture_rows {region=us}"), upto(6, 2, 1));
    assert_eq!(values("fixture_latency {host=fixture-host}"), [1.5, 2.25]);
    let load: Vec<f64> = (0..NAMED_ITERATIONS)
        .flat_map(|i| [i as f64 / NAMED_ITERATIONS as f64; 3])
        .collect();
    assert_eq!(values("fixture_load"), load);

    // Recorded inside the iteration they measure; the `ticks` series, in seconds, is at most
    // the iteration's own duration and more than nothing.
    let iterations = spans(&trace, "fixture-sync-deep", "deep_iteration");
    let samples = series["fixture_deep_iteration"].1.iter();
    let durations = series["fixture_iteration_time"].1.iter();
    for ((span, (at, _)), (end_at, seconds)) in iterations.iter().zip(samples).zip(durations) {
        assert!(inside(*at, span) && inside(*end_at, span));
        let span_seconds = (span.end - span.begin) as f64 / 1e9;
        assert!(
            *seconds > 0.0 && *seconds <= span_seconds,
            "{seconds} s in {span_seconds} s"
        );
    }
}

#[test]
fn children_puts_the_child_process_in_the_same_trace_with_its_own_tracks() {
    let fixture = Fixture::new();
    let alone = fixture.trace(&fixture.main_id, &[]);
    assert_eq!(alone.process_tracks().len(), 1);
    let both = fixture.trace(&fixture.main_id, &["--children"]);
    let pids: Vec<i32> = (both.process_tracks().into_iter())
        .map(|t| t.process.as_ref().unwrap().0)
        .collect();
    assert_eq!(pids, [1, 2]);
    // The child's own threads, log entries and measures, under its process.
    let child_threads: Vec<String> = (both.thread_tracks().into_iter())
        .filter(|t| t.thread.as_ref().unwrap().0 == 2)
        .map(|t| t.label())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(child_threads.len(), 2, "{child_threads:?}");
    assert!(child_threads.iter().any(|l| l == "secondary-worker"));
    let entries = log_entries(&both, 2);
    let messages: Vec<&str> = (entries.values().flatten())
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(messages.len(), 4, "{messages:?}");
    assert_eq!(entries["error"][0].name, "secondary process done, 3 steps");
    assert_eq!(
        series(&both, 2)["secondary_steps_done"]
            .1
            .iter()
            .map(|(_, v)| *v)
            .collect::<Vec<_>>(),
        [1.0, 2.0, 3.0]
    );
    // On one timeline: the child started after its parent, and its entries come after the
    // parent's first ones.
    let parent_first = log_entries(&both, 1)
        .values()
        .flatten()
        .map(|e| e.begin)
        .min();
    let child_first = entries.values().flatten().map(|e| e.begin).min();
    assert!(parent_first < child_first);
    // The parent's part is what it shows alone.
    assert_eq!(log_entries(&both, 1), log_entries(&alone, 1));
    assert_eq!(series(&both, 1), series(&alone, 1));
}

#[test]
fn children_exports_the_same_bytes_as_the_reference_and_lists_the_processes() {
    let fixture = Fixture::new();
    let lake_dir = fixture.lake.path();
    let ids = [&fixture.main_id, &fixture.child_id].map(|id| uuid::Uuid::parse_str(id).unwrap());
    let expected = runtime().block_on(async {
        let lake = support::lake::open_embedded(lake_dir).await;
        reference_trace_of(&lake, &ids).await
    });
    let out = tempfile::tempdir().unwrap();
    let trace_path = out.path().join("both.pftrace");
    let lake = lake_dir.to_str().unwrap();
    let path = trace_path.to_str().unwrap();
    let args = [
        fixture.main_id.as_str(),
        "--lake",
        lake,
        "--children",
        "--json",
        "-o",
        path,
    ];
    let summary = succeeded(run(&args, out.path()));
    assert_eq!(std::fs::read(&trace_path).unwrap(), expected);
    let summary: serde_json::Value = serde_json::from_slice(&summary.stdout).unwrap();
    let listed: Vec<(String, serde_json::Value, i64)> = (summary["processes"].as_array())
        .unwrap()
        .iter()
        .map(|p| {
            let id = p["process_id"].as_str().unwrap().to_string();
            (
                id,
                p["parent_process_id"].clone(),
                p["pid"].as_i64().unwrap(),
            )
        })
        .collect();
    let main = fixture.main_id.clone();
    assert_eq!(
        listed,
        [
            (main.clone(), serde_json::Value::Null, 1),
            (fixture.child_id.clone(), serde_json::Value::from(main), 2)
        ]
    );
    // Warm (partitions reused): the same bytes.
    let warm = succeeded(run(&args, out.path()));
    let warm: serde_json::Value = serde_json::from_slice(&warm.stdout).unwrap();
    assert_eq!(warm["partitions_built"], 0);
    assert_eq!(std::fs::read(&trace_path).unwrap(), expected);
}

#[test]
fn children_of_a_process_without_any_is_the_process_alone() {
    let fixture = Fixture::new();
    let alone = fixture.export(&fixture.child_id, &[]);
    assert_eq!(fixture.export(&fixture.child_id, &["--children"]), alone);
}
