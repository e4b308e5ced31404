//! A deterministic, seeded generator of synthetic lakes in the real wire format.
//!
//! [`generate`] writes processes, streams and blocks through a [`LakeWriter`] exactly as
//! Micromegas's ingestion would store what micromegas-tracing 0.33 sends: the stream metadata
//! of the real queues ([`metadata`]), block payloads as the telemetry sink encodes them (CBOR
//! envelope of two LZ4 frames), dependencies as the queues' `extract` lays them out
//! (`deps.rs`). Everything (ids, times, names, addresses, values) derives from
//! [`SynthSpec::seed`]: the same spec gives byte-identical lakes.
//!
//! Per process: `threads` thread streams (tag `cpu`, `thread-id` and `thread-name` properties,
//! one thread unnamed, one whose id shares its low 32 bits with thread 0's), a log and a metrics
//! stream; thread spans nested up to `max_depth` (about 70% plain, 20% named, 10% with runtime
//! names, some UTF-16), async spans in trees up to 5 deep whose begin and end often sit on
//! different threads (1% never end), about 3% of ends tagged with property sets.
//!
//! The log stream holds `logs` entries (the process's share), the metrics stream `measures`,
//! spread over the time range of the process's spans (or, without spans, 100 µs apart from
//! 1 ms after the start), times strictly increasing; none of them when both are 0, and then
//! the lake is byte for byte the one generated before they existed (their draws are apart
//! from the spans'). Log entries: all six levels (about 0.1% fatal, 1% error, 4% warn, 45%
//! info, 40% debug, 10% trace), from 10 call sites per level; 70% `LogStaticStrEvent`, 20%
//! `LogStringEventV2` (formatted messages, some longer than 120 characters), 10%
//! `TaggedLogString` (half with interned property sets, half with a runtime value). Measures:
//! 14 series of 10 metrics (`IntegerMetricEvent`, `FloatMetricEvent`; two tagged by region,
//! `TaggedIntegerMetricEvent` / `TaggedFloatMetricEvent`; a frame time in `ticks`), values
//! that walk, grow or jitter as real ones do. Only record types write-perfetto's decoder reads
//! (as Micromegas's own `log_entry.rs` and `measure.rs` do) are generated.
//!
//! Generation is streamed: a block is encoded (on the blocking pool, a few at a time) and
//! written as soon as it is full; memory stays flat whatever the size of the lake.

mod block;
mod catalog;
mod deps;
pub mod metadata;
mod process;
mod record_block;
mod record_catalog;
mod records;
mod rng;
#[cfg(test)]
mod tests;

use anyhow::{Result, bail};
use serde::Serialize;
use uuid::Uuid;

use crate::writer::LakeWriter;
use block::Layouts;
use process::{ProcessGen, Share};
use record_block::RecordLayouts;
use rng::Rng;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthSpec {
    pub seed: u64,
    pub processes: usize,
    /// Thread streams per process.
    pub threads: usize,
    /// Thread spans in total (over all processes and threads).
    pub spans: u64,
    /// Async spans in total.
    pub async_spans: u64,
    /// Log entries in total (over all processes), in each process's log stream.
    pub logs: u64,
    /// Measures in total, in each process's metrics stream.
    pub measures: u64,
    /// Deepest thread call stack.
    pub max_depth: u32,
    /// Objects per block (each block holds this many, less up to 1/8, the last one fewer).
    pub events_per_block: usize,
    /// Written to `processes.tsc_frequency`; 0 makes readers infer it from the blocks (a nominal
    /// frequency derived from the seed still places the blocks in time).
    pub tsc_frequency: i64,
    /// Spreads each thread's spans over about this long (nanoseconds), with idle time between
    /// its top-level spans, as a long-running process does; 0: back to back (the same lake as
    /// before the option existed).
    pub duration_ns: i64,
    /// Async span ids start over after this many (reused, as by a producer whose counter
    /// wraps or restarts); 0: every async span has an id of its own.
    pub async_span_ids: u64,
}

impl Default for SynthSpec {
    fn default() -> Self {
        Self {
            seed: 0,
            processes: 1,
            threads: 4,
            spans: 10_000,
            async_spans: 1_000,
            logs: 0,
            measures: 0,
            max_depth: 20,
            events_per_block: 4096,
            tsc_frequency: 0,
            duration_ns: 0,
            async_span_ids: 0,
        }
    }
}

/// What was generated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SynthReport {
    pub process_ids: Vec<Uuid>,
    /// Stream rows, of every kind.
    pub streams: usize,
    /// Stream rows tagged `cpu`.
    pub thread_streams: usize,
    /// Blocks of every stream.
    pub blocks: usize,
    /// Thread spans: each has a begin and an end event.
    pub thread_spans: u64,
    /// Async spans: each has a begin event, and an end event unless counted in `async_unended`.
    pub async_spans: u64,
    pub async_unended: u64,
    /// Objects in the thread streams' blocks (begin and end events).
    pub events: u64,
    /// Log entries (objects of the log streams' blocks).
    pub log_entries: u64,
    /// Log entries by level: fatal, error, warn, info, debug, trace.
    pub log_levels: [u64; 6],
    /// Measures (objects of the metrics streams' blocks).
    pub measures: u64,
    /// Metric series with at least one measure (a metric, and the property set of a tagged
    /// one), summed over processes.
    pub metric_series: u64,
    /// Bytes of all block payloads.
    pub payload_bytes: u64,
}

/// Writes the lake described by `spec` through `writer`.
pub async fn generate(writer: &LakeWriter, spec: &SynthSpec) -> Result<SynthReport> {
    if spec.processes == 0 {
        bail!("at least one process is needed");
    }
    if spec.threads == 0 && (spec.spans > 0 || spec.async_spans > 0) {
        bail!("spans need at least one thread");
    }
    if spec.max_depth == 0 || spec.events_per_block == 0 {
        bail!("max_depth and events_per_block must be positive");
    }
    if spec.events_per_block > i32::MAX as usize {
        // `blocks.nb_objects` is an INT.
        bail!("events_per_block must be at most {}", i32::MAX);
    }
    if spec.tsc_frequency < 0 {
        bail!("tsc_frequency must be 0 (unknown) or positive");
    }
    let layouts = Layouts::new()?;
    let record_layouts = RecordLayouts::new()?;
    let root = Rng::new(spec.seed);
    let mut report = SynthReport::default();
    let mut first_process = None;
    for p in 0..spec.processes {
        let share = |total: u64| {
            total / spec.processes as u64 + u64::from((p as u64) < total % spec.processes as u64)
        };
        let generator = ProcessGen::new(
            spec,
            (&layouts, &record_layouts),
            root.fork(p as u64),
            Share {
                spans: share(spec.spans),
                async_spans: share(spec.async_spans),
                logs: share(spec.logs),
                measures: share(spec.measures),
            },
            first_process,
        );
        first_process.get_or_insert(generator.process_id());
        generator.run(writer, &mut report).await?;
    }
    Ok(report)
}
