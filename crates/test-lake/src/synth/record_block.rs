//! Builds the payload of one log or metrics block: the objects buffer record by record, and the
//! dependencies buffer as `LogMsgQueue::extract` / `MetricsMsgQueue::extract` (0.33) lay it
//! out: for each record in order, the description's strings and the description (once per
//! block), then the interned property set of a tagged record (see [`super::deps`]).
//!
//! Fixed-size records are written at the offsets of the stream's metadata; the variable-size
//! ones (`LogStringEventV2`, `TaggedLogString`), which declare no members, as their
//! `write_value` writes them: `desc u64, [properties u64,] time i64`, then the message as a
//! `DynString` (`u8 codec, u32 len, bytes`).

use anyhow::{Context, Result};

use super::catalog::{CODEC_UTF8, Catalog};
use super::deps::{DepTypes, Deps, FinishedBlock, Tag, put_u32, put_u64};
use super::metadata::{
    LOG_DEPENDENCIES, LOG_OBJECTS, METRICS_DEPENDENCIES, METRICS_OBJECTS, TypeDesc,
};

/// What a log record carries besides its description and time.
#[derive(Debug, Clone, PartialEq)]
pub enum LogBody {
    /// `LogStaticStrEvent`: the message is the description's `fmt_str`.
    Static,
    /// `LogStringEventV2`: a message formatted in the process.
    Formatted(String),
    /// `TaggedLogString`: a formatted message and a property set.
    Tagged(String, Tag),
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogEvent {
    /// Index into `LogCatalog::descs`.
    pub desc: u32,
    pub time: i64,
    pub body: LogBody,
}

/// A measure of a series (index into `MetricCatalog::series`); `value` holds the bits of a `u64`
/// or an `f64`, as the series' metric is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeasureEvent {
    pub series: u32,
    pub time: i64,
    pub value: u64,
}

/// Type index and member offsets of a fixed-size record type.
struct Fixed {
    index: u8,
    size: usize,
    /// Offsets of the members named at construction, in that order.
    offsets: Vec<usize>,
}

impl Fixed {
    fn of(table: &[TypeDesc], name: &str, members: &[&str]) -> Result<Self> {
        let (index, ty) = type_named(table, name)?;
        let offsets = (members.iter())
            .map(|m| {
                ty.member(m)
                    .map(|m| m.offset)
                    .with_context(|| format!("{name} has no {m}"))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            index,
            size: ty.size,
            offsets,
        })
    }

    /// A record with `values[i]` at the i-th offset; `u32s` lists those written as `u32`.
    fn record(&self, values: &[u64], u32s: usize) -> Vec<u8> {
        let mut record = vec![0u8; self.size];
        let split = values.len() - u32s;
        for (&at, &v) in self.offsets.iter().zip(&values[..split]) {
            put_u64(&mut record, at, v);
        }
        for (&at, &v) in self.offsets[split..].iter().zip(&values[split..]) {
            put_u32(&mut record, at, v as u32);
        }
        record
    }
}

fn type_named<'a>(table: &'a [TypeDesc], name: &str) -> Result<(u8, &'a TypeDesc)> {
    let at = (table.iter().position(|t| t.name == name)).with_context(|| format!("no {name}"))?;
    Ok((u8::try_from(at)?, &table[at]))
}

/// Where everything goes in log and metrics blocks, from the streams' metadata.
pub struct RecordLayouts {
    pub log_deps: DepTypes,
    pub metric_deps: DepTypes,
    /// `LogMetadataRecord`: id, fmt_str, target, module_path, file; line, level.
    log_desc: Fixed,
    /// `MetricMetadataDependency`: id, name, unit, target, file; line, lod.
    metric_desc: Fixed,
    /// `LogStaticStrEvent`: desc, time.
    static_log: Fixed,
    string_log: u8,
    tagged_log: u8,
    /// Integer, float, tagged integer, tagged float: desc, value, time[, properties].
    measures: [Fixed; 4],
}

impl RecordLayouts {
    pub fn new() -> Result<Self> {
        let desc = ["desc", "value", "time"];
        let tagged = ["desc", "value", "time", "properties"];
        let measure = |name: &str, members: &[&str]| Fixed::of(METRICS_OBJECTS, name, members);
        Ok(Self {
            log_deps: DepTypes::of(LOG_DEPENDENCIES)?,
            metric_deps: DepTypes::of(METRICS_DEPENDENCIES)?,
            log_desc: Fixed::of(
                LOG_DEPENDENCIES,
                "LogMetadataRecord",
                &[
                    "id",
                    "fmt_str",
                    "target",
                    "module_path",
                    "file",
                    "line",
                    "level",
                ],
            )?,
            metric_desc: Fixed::of(
                METRICS_DEPENDENCIES,
                "MetricMetadataDependency",
                &["id", "name", "unit", "target", "file", "line", "lod"],
            )?,
            static_log: Fixed::of(LOG_OBJECTS, "LogStaticStrEvent", &["desc", "time"])?,
            string_log: type_named(LOG_OBJECTS, "LogStringEventV2")?.0,
            tagged_log: type_named(LOG_OBJECTS, "TaggedLogString")?.0,
            measures: [
                measure("IntegerMetricEvent", &desc)?,
                measure("FloatMetricEvent", &desc)?,
                measure("TaggedIntegerMetricEvent", &tagged)?,
                measure("TaggedFloatMetricEvent", &tagged)?,
            ],
        })
    }
}

/// The log or metrics block being filled.
pub struct RecordBlock {
    objects: Vec<u8>,
    nb_objects: usize,
    deps: Deps,
}

impl RecordBlock {
    pub fn new(deps: DepTypes) -> Self {
        Self {
            objects: Vec::new(),
            nb_objects: 0,
            deps: Deps::new(deps),
        }
    }

    pub fn nb_objects(&self) -> usize {
        self.nb_objects
    }

    pub fn push_log(&mut self, catalog: &Catalog, layouts: &RecordLayouts, event: &LogEvent) {
        let desc = self.record_log_desc(catalog, layouts, event.desc);
        let time = event.time as u64;
        match &event.body {
            LogBody::Static => {
                let record = layouts.static_log.record(&[desc, time], 0);
                self.push_fixed(layouts.static_log.index, &record);
            }
            LogBody::Formatted(msg) => {
                self.push_packed(layouts.string_log, &[desc, time], msg);
            }
            LogBody::Tagged(msg, tag) => {
                let set = self.deps.record_tag(catalog, &catalog.prop_sets, *tag);
                self.push_packed(layouts.tagged_log, &[desc, set, time], msg);
            }
        }
    }

    pub fn push_measure(
        &mut self,
        catalog: &Catalog,
        layouts: &RecordLayouts,
        event: &MeasureEvent,
    ) {
        let series = catalog.metrics.series[event.series as usize];
        let desc = self.record_metric_desc(catalog, layouts, series.desc);
        let integer = catalog.metrics.descs[series.desc as usize].integer;
        let time = event.time as u64;
        let (layout, record) = match series.set {
            None => {
                let layout = &layouts.measures[usize::from(!integer)];
                (layout, layout.record(&[desc, event.value, time], 0))
            }
            Some(set) => {
                let sets = &catalog.metrics.sets;
                let set = self.deps.record_tag(catalog, sets, Tag::Interned(set));
                let layout = &layouts.measures[2 + usize::from(!integer)];
                (layout, layout.record(&[desc, event.value, time, set], 0))
            }
        };
        self.push_fixed(layout.index, &record);
    }

    fn push_fixed(&mut self, type_index: u8, record: &[u8]) {
        self.objects.push(type_index);
        self.objects.extend_from_slice(record);
        self.nb_objects += 1;
    }

    /// A variable-size record: its `u64` fields, then the message as a UTF-8 `DynString`.
    fn push_packed(&mut self, type_index: u8, fields: &[u64], msg: &str) {
        let size = fields.len() * 8 + 1 + 4 + msg.len();
        self.objects.push(type_index);
        self.objects.extend_from_slice(&(size as u32).to_le_bytes());
        for field in fields {
            self.objects.extend_from_slice(&field.to_le_bytes());
        }
        self.objects.push(CODEC_UTF8);
        self.objects
            .extend_from_slice(&(msg.len() as u32).to_le_bytes());
        self.objects.extend_from_slice(msg.as_bytes());
        self.nb_objects += 1;
    }

    /// `record_log_event_dependencies`: fmt_str, target, module_path, file, then the record.
    fn record_log_desc(&mut self, catalog: &Catalog, layouts: &RecordLayouts, d: u32) -> u64 {
        let desc = &catalog.logs.descs[d as usize];
        if self.deps.first_sight(desc.addr) {
            let mut values = vec![desc.addr];
            for s in [desc.fmt_str, desc.target, desc.module_path, desc.file] {
                values.push(self.deps.record_string_index(catalog, s));
            }
            values.extend([u64::from(desc.line), u64::from(desc.level)]);
            let layout = &layouts.log_desc;
            self.deps
                .push_record(layout.index, &layout.record(&values, 2));
        }
        desc.addr
    }

    /// `record_metric_event_dependencies`: name, unit, target, file, then the record.
    fn record_metric_desc(&mut self, catalog: &Catalog, layouts: &RecordLayouts, d: u32) -> u64 {
        let desc = &catalog.metrics.descs[d as usize];
        if self.deps.first_sight(desc.addr) {
            let mut values = vec![desc.addr];
            for s in [desc.name, desc.unit, desc.target, desc.file] {
                values.push(self.deps.record_string_index(catalog, s));
            }
            values.extend([u64::from(desc.line), u64::from(desc.lod)]);
            let layout = &layouts.metric_desc;
            self.deps
                .push_record(layout.index, &layout.record(&values, 2));
        }
        desc.addr
    }

    /// The block's two buffers; empties the builder for the next block.
    pub fn finish(&mut self, catalog: &Catalog) -> FinishedBlock {
        FinishedBlock {
            dependencies: self.deps.finish(catalog),
            objects: std::mem::take(&mut self.objects),
            nb_objects: std::mem::take(&mut self.nb_objects),
        }
    }
}
