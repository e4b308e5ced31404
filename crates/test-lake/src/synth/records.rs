//! What a process logs and measures: the next log entry or measure at a given time, drawn from
//! the process's call sites ([`super::record_catalog`]), and the stream their blocks go to.
//!
//! Log entries: a level first, skewed as real programs log (mostly info and debug, some trace,
//! few warnings and errors, rare fatal), then a call site of that level; 70% static messages,
//! 20% formatted ones, 10% formatted and tagged with a property set (half interned, half with
//! a runtime value). Measures: a series, then its next value (a random walk, a growing total,
//! or a frame time in ticks).

use super::SynthReport;
use super::catalog::Catalog;
use super::deps::{DepTypes, Tag};
use super::record_block::{LogBody, LogEvent, MeasureEvent, RecordBlock, RecordLayouts};
use super::record_catalog::{Arg, LogForm, Shape};
use super::rng::Rng;
use uuid::Uuid;

/// Log levels fatal … trace, per mille.
const LEVEL_PER_MILLE: [u64; 6] = [1, 10, 40, 450, 399, 100];

/// A source of records for one stream.
pub trait RecordSource {
    /// Draws the next record at `time` and appends it to `block`.
    fn push_next(&mut self, rng: &mut Rng, time: i64, block: &mut RecordBlock);
    /// Adds what was drawn to the report.
    fn report(&self, report: &mut SynthReport);
}

pub struct LogSource<'a> {
    catalog: &'a Catalog,
    layouts: &'a RecordLayouts,
    /// Entries drawn, by level (index `level - 1`).
    levels: [u64; 6],
}

impl<'a> LogSource<'a> {
    pub fn new(catalog: &'a Catalog, layouts: &'a RecordLayouts) -> Self {
        Self {
            catalog,
            layouts,
            levels: [0; 6],
        }
    }

    fn next(&mut self, rng: &mut Rng, time: i64) -> LogEvent {
        let mut roll = rng.below(1000);
        let level = (LEVEL_PER_MILLE.iter())
            .position(|&p| {
                let hit = roll < p;
                roll = roll.saturating_sub(p);
                hit
            })
            .unwrap_or(3);
        self.levels[level] += 1;
        let (statics, formatted) = &self.catalog.logs.by_level[level];
        let form = rng.below(1000);
        if form < 700 {
            let desc = statics[rng.skewed(statics.len())];
            return LogEvent {
                desc,
                time,
                body: LogBody::Static,
            };
        }
        let desc = formatted[rng.skewed(formatted.len())];
        let msg = self.format(rng, desc);
        let body = if form < 900 {
            LogBody::Formatted(msg)
        } else {
            LogBody::Tagged(msg, self.tag(rng))
        };
        LogEvent { desc, time, body }
    }

    /// The call site's format string with its placeholders filled.
    fn format(&self, rng: &mut Rng, desc: u32) -> String {
        let desc = &self.catalog.logs.descs[desc as usize];
        let LogForm::Formatted(args) = desc.form else {
            unreachable!("formatted call sites only")
        };
        let text = &self.catalog.strings[desc.fmt_str].text;
        let mut msg = String::with_capacity(text.len() + 16);
        for (k, piece) in text.split("{}").enumerate() {
            if k > 0 {
                msg.push_str(&arg(rng, args[k - 1]));
            }
            msg.push_str(piece);
        }
        msg
    }

    fn tag(&self, rng: &mut Rng) -> Tag {
        let set = rng.index(self.catalog.prop_sets.len()) as u32;
        if rng.per_mille(500) {
            Tag::Interned(set)
        } else {
            Tag::Merged {
                set,
                name: rng.index(self.catalog.dyn_prop_names.len()) as u32,
                value: rng.below(10_000),
            }
        }
    }
}

fn arg(rng: &mut Rng, arg: Arg) -> String {
    match arg {
        Arg::Id => rng.below(1_000_000).to_string(),
        Arg::Millis => rng.log_uniform(1, 10_000).to_string(),
        Arg::Detail => format!(
            "/var/lib/synth/shard-{:02}/segment-{:06}.db ({} bytes): upstream 10.0.{}.{}:{} \
             answered 503 Service Unavailable after {} retries; serving the copy cached {} s ago",
            rng.below(64),
            rng.below(1_000_000),
            rng.log_uniform(1, 1 << 30),
            rng.below(256),
            rng.below(256),
            rng.range(1024, 65_536),
            rng.range(1, 6),
            rng.below(3600),
        ),
    }
}

impl RecordSource for LogSource<'_> {
    fn push_next(&mut self, rng: &mut Rng, time: i64, block: &mut RecordBlock) {
        let event = self.next(rng, time);
        block.push_log(self.catalog, self.layouts, &event);
    }

    fn report(&self, report: &mut SynthReport) {
        for (total, n) in report.log_levels.iter_mut().zip(self.levels) {
            *total += n;
        }
        report.log_entries += self.levels.iter().sum::<u64>();
    }
}

pub struct MetricSource<'a> {
    catalog: &'a Catalog,
    layouts: &'a RecordLayouts,
    /// Ticks per second, for frame times in ticks.
    frequency: i64,
    /// The last value of each series, and how many measures it has.
    values: Vec<(f64, u64)>,
}

impl<'a> MetricSource<'a> {
    pub fn new(catalog: &'a Catalog, layouts: &'a RecordLayouts, frequency: i64) -> Self {
        let values = (catalog.metrics.series.iter())
            .map(|s| match catalog.metrics.descs[s.desc as usize].shape {
                Shape::Gauge { start, .. } => (start, 0),
                _ => (0.0, 0),
            })
            .collect();
        Self {
            catalog,
            layouts,
            frequency,
            values,
        }
    }

    fn next(&mut self, rng: &mut Rng, time: i64) -> MeasureEvent {
        let series = rng.index(self.values.len());
        let desc = &self.catalog.metrics.descs[self.catalog.metrics.series[series].desc as usize];
        let (last, count) = &mut self.values[series];
        *last = match desc.shape {
            Shape::Gauge { step, min, max, .. } => {
                let delta = (rng.below(2001) as f64 - 1000.0) / 1000.0 * step;
                (*last + delta).clamp(min, max)
            }
            Shape::Counter { max_step } => *last + rng.below(max_step + 1) as f64,
            Shape::FrameTicks => {
                self.frequency as f64 / 60.0 * (0.8 + rng.below(401) as f64 / 1000.0)
            }
        };
        *count += 1;
        let value = match desc.integer {
            true => last.round() as u64,
            false => last.to_bits(),
        };
        MeasureEvent {
            series: series as u32,
            time,
            value,
        }
    }
}

impl RecordSource for MetricSource<'_> {
    fn push_next(&mut self, rng: &mut Rng, time: i64, block: &mut RecordBlock) {
        let event = self.next(rng, time);
        block.push_measure(self.catalog, self.layouts, &event);
    }

    fn report(&self, report: &mut SynthReport) {
        report.measures += self.values.iter().map(|&(_, n)| n).sum::<u64>();
        report.metric_series += self.values.iter().filter(|&&(_, n)| n > 0).count() as u64;
    }
}

/// The log or metrics stream of a process while its blocks are filled.
pub struct RecordStream {
    pub stream_id: Uuid,
    pub block: RecordBlock,
    /// Absolute ticks where the current block began.
    pub block_begin: i64,
    pub block_target: usize,
    pub object_offset: i64,
    pub last_time: i64,
}

impl RecordStream {
    pub fn new(stream_id: Uuid, deps: DepTypes, begin: i64) -> Self {
        Self {
            stream_id,
            block: RecordBlock::new(deps),
            block_begin: begin,
            block_target: 0,
            object_offset: 0,
            last_time: begin,
        }
    }

    /// Record times of a stream strictly increase.
    pub fn stamp(&mut self, time: i64) -> i64 {
        let time = time.max(self.last_time + 1);
        self.last_time = time;
        time
    }
}

/// The time of record `i` of `n` spread over `[from, to]`: one in each of `n` equal slices, at
/// a random place in it.
pub fn spread(rng: &mut Rng, (from, to): (i64, i64), i: u64, n: u64) -> i64 {
    let span = i128::from((to - from).max(0));
    let slice = (span / i128::from(n.max(1))).max(1);
    let start = i128::from(from) + span * i128::from(i) / i128::from(n.max(1));
    (start + i128::from(rng.below(slice as u64))) as i64
}
