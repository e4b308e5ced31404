//! Genuine blocks of the Rust producer: micromegas-tracing 0.33 instrumentation (its log and
//! metric macros, its interop entry points) recorded in memory, each block encoded as the
//! telemetry sink encodes it (`encode_block`, `make_stream_info`), then decoded and checked
//! field by field against what was logged, and against Micromegas's parser.

use micromegas_tracing::dispatch::{
    flush_log_buffer, flush_metrics_buffer, init_event_dispatch, log_interop,
    log_interop_dyn_tagged,
};
use micromegas_tracing::event::in_memory_sink::InMemorySink;
use micromegas_tracing::event::{EventBlock, ExtractDeps, TracingBlock};
use micromegas_tracing::levels::{Level, LevelFilter};
use micromegas_tracing::logs::{LogBlock, LogMetadata, LogStaticStrInteropEvent};
use micromegas_tracing::property_set::{DynProperty, Property, PropertySet};
use micromegas_tracing::source_path::trim_source_path;
use micromegas_tracing::string_id::StringId;
use micromegas_tracing::{debug, error, fatal, fmetric, imetric, info, trace, warn};
use micromegas_transit::{HeterogeneousQueue, UserDefinedType};
use std::collections::HashMap;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, OnceLock};

use super::{FREQUENCY, TestBlock, decode_and_compare, envelope, metadata_column};
use crate::decode::{LogEntry, Measure};

/// The type list a stream declares: its queue's types, then their secondary types (the layouts
/// they embed), as the telemetry sink's `make_stream_info` flattens them.
pub(super) fn stream_metadata(udts: Vec<UserDefinedType>) -> Vec<u8> {
    fn secondaries(udt: &UserDefinedType, out: &mut Vec<UserDefinedType>) {
        for secondary in &udt.secondary_udts {
            if !out.iter().any(|t| t.name == secondary.name) {
                out.push(secondary.clone());
            }
            secondaries(secondary, out);
        }
    }
    let mut extra = Vec::new();
    for udt in &udts {
        secondaries(udt, &mut extra);
    }
    metadata_column(&[udts, extra].concat())
}

/// A block as the sink sends it: dependencies extracted from the events, both buffers framed.
fn encode<Q>(block: &EventBlock<Q>) -> TestBlock
where
    Q: HeterogeneousQueue + ExtractDeps,
    <Q as ExtractDeps>::DepsQueue: HeterogeneousQueue,
{
    let dependencies = block.events.extract(&block.dyn_deps);
    TestBlock {
        dependencies_metadata: stream_metadata(<Q as ExtractDeps>::DepsQueue::reflect_contained()),
        objects_metadata: stream_metadata(Q::reflect_contained()),
        payload: envelope(dependencies.as_bytes(), block.events.as_bytes()),
    }
}

/// What the instrumented code below recorded, and what it logged.
pub(super) struct Capture {
    pub log_blocks: Vec<TestBlock>,
    pub metrics_blocks: Vec<TestBlock>,
    /// Objects in the log blocks, decoded or not.
    log_objects: usize,
    expected_logs: Vec<LogEntry>,
    /// With tick counts in seconds at [`FREQUENCY`].
    expected_measures: Vec<Measure>,
    /// The tick counter before and after the instrumented code ran.
    window: (i64, i64),
}

/// The event dispatch is process-wide and can be set up once: every test of this module reads
/// the one capture.
pub(super) fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let sink = Arc::new(InMemorySink::new());
        // Small buffers, so that the log and metric calls span several blocks.
        init_event_dispatch(128, 256, 1024, sink.clone(), HashMap::new(), false)
            .expect("the event dispatch is set up once");
        micromegas_tracing::levels::set_max_level(LevelFilter::Trace);
        let start = micromegas_tracing::time::now();
        let expected_logs = emit_logs();
        let expected_measures = emit_measures();
        let end = micromegas_tracing::time::now();
        flush_log_buffer();
        flush_metrics_buffer();
        let state = sink.state.lock().unwrap();
        Capture {
            log_blocks: state.log_blocks.iter().map(|b| encode(b)).collect(),
            metrics_blocks: state.metrics_blocks.iter().map(|b| encode(b)).collect(),
            log_objects: state.log_blocks.iter().map(|b| b.nb_objects()).sum(),
            expected_logs,
            expected_measures,
            window: (start, end),
        }
    })
}

fn this_file() -> Arc<str> {
    Arc::from(trim_source_path(file!()))
}

fn strings(pairs: &[(&str, &str)]) -> Vec<(Arc<str>, Arc<str>)> {
    let mut pairs: Vec<_> = pairs
        .iter()
        .map(|(k, v)| (Arc::from(*k), Arc::from(*v)))
        .collect();
    pairs.sort();
    pairs
}

fn log(level: u8, target: &str, msg: &str, line: u32, properties: &[(&str, &str)]) -> LogEntry {
    LogEntry {
        index: 0,
        ticks: 0,
        level,
        target: Arc::from(target),
        msg: Arc::from(msg),
        file: if line == 0 {
            Arc::from("")
        } else {
            this_file()
        },
        line,
        properties: strings(properties),
    }
}

const MODULE: &str = module_path!();

/// Every kind of log record the crate writes, the three that Micromegas does not read
/// (`LogStaticStrInteropEventV2`, `TaggedLogStaticStrEvent`, `TaggedLogTemplateEvent`) among
/// them; returns the entries expected, in order.
fn emit_logs() -> Vec<LogEntry> {
    let mut expected = Vec::new();
    // LogStaticStrEvent
    let line = line!() + 1;
    info!("static message");
    expected.push(log(4, MODULE, "static message", line, &[]));
    // LogStringEventV2
    let line = line!() + 1;
    warn!("formatted {}", 42);
    expected.push(log(3, MODULE, "formatted 42", line, &[]));
    let line = line!() + 1;
    error!(target: "custom::target", "with a target {}", "é");
    expected.push(log(2, "custom::target", "with a target é", line, &[]));
    let line = line!() + 1;
    fatal!("fatal {}", 0);
    expected.push(log(1, MODULE, "fatal 0", line, &[]));
    // TaggedLogString, with an interned set, then with a set made in the block.
    let line = line!() + 1;
    debug!(user = "alice", "tagged {}", 7);
    expected.push(log(5, MODULE, "tagged 7", line, &[("user", "alice")]));
    let request = String::from("r-17");
    let line = line!() + 1;
    trace!(request = %request, "dynamic {}", 1);
    expected.push(log(6, MODULE, "dynamic 1", line, &[("request", "r-17")]));
    // TaggedLogString whose properties override the description's target and level.
    let overrides = PropertySet::find_or_create(vec![
        Property::new("target", "overridden::target"),
        Property::new("level", "warning"),
    ]);
    let line = line!() + 1;
    info!(..overrides, "overridden {}", 2);
    expected.push(log(
        3,
        "overridden::target",
        "overridden 2",
        line,
        &[("level", "warning"), ("target", "overridden::target")],
    ));
    // Interop: LogStaticStrInteropEventV2 (not read), LogStringInteropEventV3,
    // TaggedLogInteropEvent.
    let interop = LogMetadata {
        level: Level::Warn,
        level_filter: AtomicU32::new(0),
        fmt_str: "",
        target: "interop::target",
        module_path: "interop",
        file: "interop.rs",
        line: 12,
    };
    log_interop(&interop, format_args!("interop static"));
    // Not a literal: rustc would fold it into the format string, and the message be static.
    let three = std::hint::black_box(3);
    log_interop(&interop, format_args!("interop {three}"));
    expected.push(log(3, "interop::target", "interop 3", 0, &[]));
    let peer = String::from("10.0.0.1");
    log_interop_dyn_tagged(
        &interop,
        &[DynProperty::new("peer", &peer)],
        format_args!("tagged interop {}", std::hint::black_box(5)),
    );
    expected.push(log(
        3,
        "interop::target",
        "tagged interop 5",
        0,
        &[("peer", "10.0.0.1")],
    ));
    // TaggedLogStaticStrEvent and TaggedLogTemplateEvent (not read).
    info!(kind = "static", "tagged static message");
    let name = String::from("bob");
    info!(user = %name, "{user} logged in");
    expected
}

fn measure(
    name: &str,
    unit: &str,
    target: &str,
    value: f64,
    integer: bool,
    properties: &[(&str, &str)],
) -> Measure {
    Measure {
        index: 0,
        ticks: 0,
        name: Arc::from(name),
        unit: Arc::from(unit),
        target: Arc::from(target),
        value,
        integer,
        properties: strings(properties),
    }
}

/// Every kind of measure record the crate writes; returns the measures expected (tick counts in
/// seconds), in order.
fn emit_measures() -> Vec<Measure> {
    let seconds = |ticks: f64| ticks * (1000.0 / FREQUENCY as f64) / 1000.0;
    let mut expected = Vec::new();
    // IntegerMetricEvent, FloatMetricEvent
    imetric!("requests", "count", 3);
    expected.push(measure("requests", "count", MODULE, 3.0, true, &[]));
    fmetric!("latency", "ms", 1.5);
    expected.push(measure("latency", "ms", MODULE, 1.5, false, &[]));
    imetric!(target: "metric::target", "big", "count", u64::MAX);
    expected.push(measure(
        "big",
        "count",
        "metric::target",
        u64::MAX as f64,
        true,
        &[],
    ));
    // Tick counts: integers become seconds (a count past i64::MAX wraps, as in Micromegas),
    // floats stay in ticks.
    imetric!("frame_time", "ticks", 3_000_000);
    expected.push(measure(
        "frame_time",
        "seconds",
        MODULE,
        seconds(3e6),
        true,
        &[],
    ));
    imetric!("wrapped", "ticks", u64::MAX);
    expected.push(measure(
        "wrapped",
        "seconds",
        MODULE,
        seconds(-1.0),
        true,
        &[],
    ));
    fmetric!("float_ticks", "ticks", 2.0);
    expected.push(measure("float_ticks", "ticks", MODULE, 2.0, false, &[]));
    // TaggedIntegerMetricEvent and TaggedFloatMetricEvent, interned and made in the block.
    imetric!("rows", "count", region = "eu", 7);
    expected.push(measure(
        "rows",
        "count",
        MODULE,
        7.0,
        true,
        &[("region", "eu")],
    ));
    let host = String::from("db-1");
    fmetric!("load", "ratio", host = %host, 0.25);
    expected.push(measure(
        "load",
        "ratio",
        MODULE,
        0.25,
        false,
        &[("host", "db-1")],
    ));
    // Properties override name, unit and target; the unit they give makes a tick count.
    let overrides = PropertySet::find_or_create(vec![
        Property::new("name", "renamed"),
        Property::new("target", "renamed::target"),
        Property::new("unit", "ticks"),
    ]);
    imetric!("original", "count", ..overrides, 9);
    expected.push(measure(
        "renamed",
        "seconds",
        "renamed::target",
        seconds(9.0),
        true,
        &[
            ("name", "renamed"),
            ("target", "renamed::target"),
            ("unit", "ticks"),
        ],
    ));
    fmetric!("original_f", "count", ..overrides, 0.5);
    expected.push(measure(
        "renamed",
        "ticks",
        "renamed::target",
        0.5,
        false,
        &[
            ("name", "renamed"),
            ("target", "renamed::target"),
            ("unit", "ticks"),
        ],
    ));
    expected
}

fn without_place<T: Clone>(items: &[T], clear: impl Fn(&mut T)) -> Vec<T> {
    items
        .iter()
        .cloned()
        .map(|mut item| {
            clear(&mut item);
            item
        })
        .collect()
}

#[test]
fn log_blocks_decode_to_what_was_logged() {
    let capture = capture();
    assert!(capture.log_blocks.len() > 1, "the logs span several blocks");
    let decoded: Vec<LogEntry> = capture
        .log_blocks
        .iter()
        .flat_map(|b| b.decode().unwrap().logs)
        .collect();
    let (start, end) = capture.window;
    assert!(decoded.iter().all(|l| (start..=end).contains(&l.ticks)));
    assert_eq!(
        without_place(&decoded, |l| (l.index, l.ticks) = (0, 0)),
        capture.expected_logs
    );
}

#[test]
fn records_micromegas_does_not_read_are_skipped_but_keep_their_place() {
    let capture = capture();
    let mut decoded = 0;
    for block in &capture.log_blocks {
        let logs = block.decode().unwrap().logs;
        assert!(logs.windows(2).all(|w| w[0].index < w[1].index));
        decoded += logs.len();
    }
    // LogStaticStrInteropEventV2, TaggedLogStaticStrEvent, TaggedLogTemplateEvent.
    assert_eq!(capture.log_objects - decoded, 3);
}

#[test]
fn metrics_blocks_decode_to_what_was_measured() {
    let capture = capture();
    assert!(
        capture.metrics_blocks.len() > 1,
        "the measures span several blocks"
    );
    let decoded: Vec<Measure> = capture
        .metrics_blocks
        .iter()
        .flat_map(|b| b.decode().unwrap().measures)
        .collect();
    let (start, end) = capture.window;
    assert!(decoded.iter().all(|m| (start..=end).contains(&m.ticks)));
    let shown: Vec<Measure> = decoded
        .into_iter()
        .map(|m| m.ticks_in_seconds(FREQUENCY))
        .collect();
    assert_eq!(
        without_place(&shown, |m| (m.index, m.ticks) = (0, 0)),
        capture.expected_measures
    );
}

#[test]
fn every_genuine_block_decodes_as_micromegas_reads_it() {
    let capture = capture();
    for block in capture.log_blocks.iter().chain(&capture.metrics_blocks) {
        decode_and_compare(block);
    }
}

#[test]
fn log_and_metrics_blocks_hold_no_spans() {
    let capture = capture();
    for block in capture.log_blocks.iter().chain(&capture.metrics_blocks) {
        let decoded = block.decode().unwrap();
        assert!(decoded.spans.is_empty());
        assert!(
            block
                .decoder()
                .decode_block(&block.payload)
                .unwrap()
                .is_empty()
        );
    }
}

/// `LogStaticStrInteropEvent` (fixed-size, strings by reference) is no longer written by the
/// dispatch; the crate still declares and serializes it, so a block is made of it directly.
#[test]
fn static_interop_records_decode_as_micromegas_reads_them() {
    let mut block = LogBlock::new(1024, uuid::Uuid::nil(), uuid::Uuid::nil(), 0);
    for (level, target, msg) in [(Level::Error, "net", "lost"), (Level::Trace, "net", "ok")] {
        block.events.push(LogStaticStrInteropEvent {
            time: 1000 + level as i64,
            level: level as u32,
            target: StringId::from(target),
            msg: StringId::from(msg),
        });
    }
    let decoded = decode_and_compare(&encode(&block));
    let summary: Vec<_> = decoded
        .logs
        .iter()
        .map(|l| {
            (
                l.index, l.ticks, l.level, &*l.target, &*l.msg, &*l.file, l.line,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (0, 1002, 2, "net", "lost", "", 0),
            (1, 1006, 6, "net", "ok", "", 0)
        ]
    );
}
