//! Measures: what a metrics stream's objects say, read as Micromegas's `measure.rs` reads them.
//!
//! Every measure record is fixed-size: a description (name, unit, target), a value (`u64` or
//! `f64`, by type name), a time, and for the tagged ones a property set whose `target`, `name`
//! and `unit` override the description's.
//!
//! Micromegas shows an integer measure whose unit is `ticks` in seconds. The conversion needs
//! the process's tick frequency, which the decoder does not have: the decoder keeps the ticks
//! and says which measures are tick counts ([`Measure::is_tick_count`]); the caller converts
//! them with [`Measure::ticks_in_seconds`].

use anyhow::{Context, Result, bail};
use micromegas_transit::UserDefinedType;
use std::sync::Arc;

use super::dependencies::Dependencies;
use super::layout::{reference_offset, scalar_offset};
use super::records::u64_at;

/// One measure, with its raw tick time.
#[derive(Debug, Clone, PartialEq)]
pub struct Measure {
    /// Its place among the block's objects (all of them, skipped ones included): with the
    /// block's `object_offset`, its place in the stream.
    pub index: u32,
    pub ticks: i64,
    pub name: Arc<str>,
    pub unit: Arc<str>,
    pub target: Arc<str>,
    /// An integer measure's value as `f64` (`value as f64`, as `measure.rs` does), except for a
    /// tick count, whose value is `value as i64 as f64`, the signed tick count `measure.rs`
    /// converts.
    pub value: f64,
    /// Recorded as an integer (`IntegerMetricEvent`, `TaggedIntegerMetricEvent`).
    pub integer: bool,
    /// The property set of a tagged measure, sorted by key; `target`, `name` and `unit` stay
    /// in it even when they override the description's.
    pub properties: Vec<(Arc<str>, Arc<str>)>,
}

/// The unit Micromegas gives a tick count once it is converted.
pub const SECONDS_UNIT: &str = "seconds";

impl Measure {
    /// `measure.rs`'s rule: an integer measure in unit `ticks` is a duration in ticks, shown in
    /// seconds. Float measures in `ticks` are left as they are.
    pub fn is_tick_count(&self) -> bool {
        self.integer && &*self.unit == "ticks"
    }

    /// The measure as Micromegas shows it: a tick count becomes seconds (unit `seconds`), at
    /// `frequency` ticks per second (the process's, positive, as `clock::Clock` has it); any
    /// other measure is returned as it is.
    pub fn ticks_in_seconds(mut self, frequency: i64) -> Self {
        if self.is_tick_count() {
            self.value = ticks_to_seconds(self.value, frequency);
            self.unit = Arc::from(SECONDS_UNIT);
        }
        self
    }
}

/// A duration in ticks → seconds, computed as Micromegas's `ConvertTicks::delta_ticks_to_ms`
/// then `/ 1000`: `ticks × (1000 / frequency) / 1000`, so that the two tools give the same
/// floats.
pub fn ticks_to_seconds(ticks: f64, frequency: i64) -> f64 {
    ticks * (1000.0 / frequency as f64) / 1000.0
}

/// Member offsets of a measure record type.
pub(super) struct MeasurePlan {
    desc: usize,
    value: usize,
    time: usize,
    /// The tagged types only: `measure.rs` ignores any other type's properties.
    properties: Option<usize>,
    integer: bool,
}

/// The plan of a measure record type, or `None` if the type is not one Micromegas reads as a
/// measure. A known type whose shape is not the one Micromegas reads is an error.
pub(super) fn measure_plan(
    udt: &UserDefinedType,
    all: &[&UserDefinedType],
) -> Result<Option<MeasurePlan>> {
    let (integer, tagged) = match udt.name.as_str() {
        "IntegerMetricEvent" => (true, false),
        "FloatMetricEvent" => (false, false),
        "TaggedIntegerMetricEvent" => (true, true),
        "TaggedFloatMetricEvent" => (false, true),
        _ => return Ok(None),
    };
    if udt.size == 0 {
        bail!(
            "{} is declared variable-size, but its records are fixed-size",
            udt.name
        );
    }
    let required = |offset: Option<usize>, member: &str| {
        offset.with_context(|| format!("{} has no {member} member", udt.name))
    };
    Ok(Some(MeasurePlan {
        desc: required(reference_offset(udt, "desc", all)?, "desc")?,
        value: required(value_offset(udt, integer)?, "value")?,
        time: required(scalar_offset(udt, "time", 8)?, "time")?,
        properties: if tagged {
            Some(required(
                reference_offset(udt, "properties", all)?,
                "properties",
            )?)
        } else {
            None
        },
        integer,
    }))
}

/// The `value` member, whose type must be one Micromegas's parser reads as the number the
/// measure type says (an integer read as a float would be nonsense, not a value).
fn value_offset(udt: &UserDefinedType, integer: bool) -> Result<Option<usize>> {
    let Some(m) = udt.members.iter().find(|m| m.name.as_str() == "value") else {
        return Ok(None);
    };
    let expected: &[&str] = if integer {
        &["u64", "uint64", "i64", "int64"]
    } else {
        &["f64"]
    };
    if !expected.contains(&m.type_name.as_str()) {
        bail!(
            "{}.value is of type {}, expected {}",
            udt.name,
            m.type_name,
            expected.join(" or ")
        );
    }
    scalar_offset(udt, "value", 8)
}

/// Decodes one measure record; `index` is its place among the block's objects.
pub(super) fn decode(
    plan: &MeasurePlan,
    deps: &Dependencies,
    record: &[u8],
    index: u32,
) -> Result<Measure> {
    let desc = deps.description(u64_at(record, plan.desc))?;
    let mut name = desc
        .name
        .clone()
        .context("the metric's description has no name")?;
    let mut unit = desc
        .unit
        .clone()
        .context("the metric's description has no unit")?;
    let mut target = desc.target.clone();
    let properties = match plan.properties {
        Some(offset) => {
            let set = deps.property_set(u64_at(record, offset))?;
            // In the producer's order, as Micromegas applies them: the last one wins.
            for (key, value) in &set.as_written {
                match &**key {
                    "target" => target = value.clone(),
                    "name" => name = value.clone(),
                    "unit" => unit = value.clone(),
                    _ => {}
                }
            }
            set.sorted.clone()
        }
        None => Vec::new(),
    };
    let bits = u64_at(record, plan.value);
    let value = match (plan.integer, &*unit == "ticks") {
        // `measure.rs` converts `value as i64`.
        (true, true) => bits as i64 as f64,
        (true, false) => bits as f64,
        (false, _) => f64::from_bits(bits),
    };
    Ok(Measure {
        index,
        ticks: u64_at(record, plan.time) as i64,
        name,
        unit,
        target,
        value,
        integer: plan.integer,
        properties,
    })
}
