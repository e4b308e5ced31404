//! The static side of a process's log and metric calls: the `LogMetadata` of each log call
//! site (message or format string, level, target, file, line) and the `StaticMetricMetadata`
//! of each metric (name, unit, target, file, line, lod), at fake but plausible addresses, and
//! the interned property sets that tell tagged metric series apart.

use super::catalog::{PropSet, Rodata};
use super::rng::Rng;

/// How a log call site's message is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogForm {
    /// The message is the `fmt_str` (`LogStaticStrEvent`).
    Static,
    /// The message is formatted in the process (`LogStringEventV2`, `TaggedLogString`); the
    /// `fmt_str` has `{}` placeholders, filled as `args` say.
    Formatted(&'static [Arg]),
}

/// What fills a placeholder of a formatted message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    /// A request, job or row id.
    Id,
    /// A duration in milliseconds.
    Millis,
    /// A long explanation (messages then exceed what a trace shows in a name).
    Detail,
}

/// A `LogMetadata` static. String fields are indices into `Catalog::strings`.
pub struct LogDesc {
    pub addr: u64,
    pub fmt_str: usize,
    pub target: usize,
    pub module_path: usize,
    pub file: usize,
    pub line: u32,
    /// 1 fatal … 6 trace.
    pub level: u8,
    pub form: LogForm,
}

/// How a metric's values move.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// A random walk from `start`, steps up to `step`, kept within `min..=max`.
    Gauge {
        start: f64,
        step: f64,
        min: f64,
        max: f64,
    },
    /// A total that grows by up to `max_step`.
    Counter { max_step: u64 },
    /// A frame duration in ticks: about 1/60 s at the process's frequency, ±20%.
    FrameTicks,
}

/// A `StaticMetricMetadata` static. String fields are indices into `Catalog::strings`.
pub struct MetricDesc {
    pub addr: u64,
    pub name: usize,
    pub unit: usize,
    pub target: usize,
    pub file: usize,
    pub line: u32,
    pub lod: u32,
    /// Recorded by `imetric!` (`u64`), else by `fmetric!` (`f64`).
    pub integer: bool,
    pub shape: Shape,
}

/// One series: a metric, and for a tagged one its property set (index into `sets`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Series {
    pub desc: u32,
    pub set: Option<u32>,
}

pub struct LogCatalog {
    pub descs: Vec<LogDesc>,
    /// Per level (index `level - 1`): the static and the formatted call sites.
    pub by_level: Vec<(Vec<u32>, Vec<u32>)>,
}

pub struct MetricCatalog {
    pub descs: Vec<MetricDesc>,
    /// Interned sets of the tagged series (`region=eu`, ...).
    pub sets: Vec<PropSet>,
    pub series: Vec<Series>,
}

/// Words that end a message, by level: what happened, in the tone of that level.
const OUTCOMES: [&[&str]; 6] = [
    &["unrecoverable, aborting", "corrupted, shutting down"],
    &["failed", "timed out", "was rejected", "returned an error"],
    &[
        "is slow",
        "will be retried",
        "hit its limit",
        "used a fallback",
    ],
    &["done", "started", "completed", "ready"],
    &["refreshed", "cached", "skipped", "queued"],
    &["entered", "left", "polled", "checked"],
];

/// Format strings: `%s` is the subject (verb and noun), `%o` the outcome, `{}` placeholders.
const FORMATS: &[(&str, &[Arg])] = &[
    ("%s {} %o in {} ms", &[Arg::Id, Arg::Millis]),
    ("%s {} %o", &[Arg::Id]),
    ("%s %o: {}", &[Arg::Detail]),
];

/// Call sites per level: static, then formatted.
const STATIC_SITES: usize = 6;
const FORMATTED_SITES: usize = 4;

/// (name, unit, integer, shape, tagged by region)
type MetricSpec = (&'static str, &'static str, bool, Shape, bool);

const MIB: f64 = 1024.0 * 1024.0;

const METRICS: &[MetricSpec] = &[
    (
        "cpu_usage",
        "percent",
        false,
        Shape::Gauge {
            start: 35.0,
            step: 2.0,
            min: 0.0,
            max: 100.0,
        },
        false,
    ),
    (
        "memory_used",
        "bytes",
        true,
        Shape::Gauge {
            start: 512.0 * MIB,
            step: 4.0 * MIB,
            min: 64.0 * MIB,
            max: 8192.0 * MIB,
        },
        false,
    ),
    ("frame_time", "ticks", true, Shape::FrameTicks, false),
    (
        "request_latency",
        "ms",
        false,
        Shape::Gauge {
            start: 20.0,
            step: 1.5,
            min: 0.2,
            max: 2000.0,
        },
        true,
    ),
    (
        "requests",
        "count",
        true,
        Shape::Counter { max_step: 40 },
        true,
    ),
    (
        "queue_depth",
        "count",
        true,
        Shape::Gauge {
            start: 10.0,
            step: 3.0,
            min: 0.0,
            max: 10_000.0,
        },
        false,
    ),
    (
        "gc_pause",
        "ms",
        false,
        Shape::Gauge {
            start: 2.0,
            step: 0.5,
            min: 0.01,
            max: 200.0,
        },
        false,
    ),
    (
        "cache_hit_ratio",
        "ratio",
        false,
        Shape::Gauge {
            start: 0.9,
            step: 0.01,
            min: 0.0,
            max: 1.0,
        },
        false,
    ),
    (
        "open_connections",
        "count",
        true,
        Shape::Gauge {
            start: 50.0,
            step: 2.0,
            min: 0.0,
            max: 4096.0,
        },
        false,
    ),
    (
        "bytes_sent",
        "bytes",
        true,
        Shape::Counter { max_step: 65_536 },
        false,
    ),
];

const REGIONS: &[&str] = &["eu", "us", "ap"];

/// Where call sites are: a module's (target, module_path, file) string indices.
pub type Module = (usize, usize, usize);

impl LogCatalog {
    /// `LogMetadata` statics from `data_base` on, strings in `rodata`.
    pub fn new(rng: &mut Rng, rodata: &mut Rodata, modules: &[Module], data_base: u64) -> Self {
        let (verbs, nouns) = (super::catalog::VERBS, super::catalog::NOUNS);
        let mut descs = Vec::new();
        let mut by_level = Vec::new();
        for (l, outcomes) in OUTCOMES.iter().enumerate() {
            let (mut statics, mut formatted) = (Vec::new(), Vec::new());
            for k in 0..STATIC_SITES + FORMATTED_SITES {
                let m = rng.index(modules.len());
                let (target, module_path, file) = modules[m];
                let (verb, noun) = (verbs[rng.index(verbs.len())], nouns[rng.index(nouns.len())]);
                let outcome = outcomes[rng.index(outcomes.len())];
                let (text, form) = if k < STATIC_SITES {
                    (format!("{verb} {noun} {outcome}"), LogForm::Static)
                } else {
                    let (format, args) = FORMATS[rng.index(FORMATS.len())];
                    let text = format
                        .replace("%s", &format!("{verb} {noun}"))
                        .replace("%o", outcome);
                    (text, LogForm::Formatted(args))
                };
                let index = descs.len() as u32;
                if k < STATIC_SITES {
                    statics.push(index);
                } else {
                    formatted.push(index);
                }
                descs.push(LogDesc {
                    // A `LogMetadata` is 88 bytes; statics of one crate sit side by side.
                    addr: data_base + u64::from(index) * 0x60,
                    fmt_str: rodata.add(text),
                    target,
                    module_path,
                    file,
                    line: rng.range(10, 2000) as u32,
                    level: l as u8 + 1,
                    form,
                });
            }
            by_level.push((statics, formatted));
        }
        Self { descs, by_level }
    }
}

impl MetricCatalog {
    /// `StaticMetricMetadata` statics from `data_base` on, interned sets from `heap_base` on.
    pub fn new(
        rng: &mut Rng,
        rodata: &mut Rodata,
        modules: &[Module],
        data_base: u64,
        heap_base: u64,
    ) -> Self {
        let region = rodata.add("region".into());
        let sets: Vec<PropSet> = (REGIONS.iter().enumerate())
            .map(|(k, r)| PropSet {
                addr: heap_base + k as u64 * 0x40,
                properties: vec![(region, rodata.add((*r).to_string()))],
            })
            .collect();
        let mut descs = Vec::new();
        let mut series = Vec::new();
        for (k, &(name, unit, integer, shape, tagged)) in METRICS.iter().enumerate() {
            let m = rng.index(modules.len());
            let (target, _, file) = modules[m];
            let desc = k as u32;
            descs.push(MetricDesc {
                addr: data_base + u64::from(desc) * 0x50,
                name: rodata.add(name.to_string()),
                unit: rodata.add(unit.to_string()),
                target,
                file,
                line: rng.range(10, 2000) as u32,
                lod: rng.range(1, 4) as u32,
                integer,
                shape,
            });
            if tagged {
                series.extend((0..sets.len() as u32).map(|s| Series { desc, set: Some(s) }));
            } else {
                series.push(Series { desc, set: None });
            }
        }
        Self {
            descs,
            sets,
            series,
        }
    }
}
