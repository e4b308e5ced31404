//! The reference: a block read by Micromegas's own parser (micromegas-transit with
//! micromegas-tracing's readers of variable-size records, as its analytics reads blocks), then
//! turned into log entries and measures by the rules of its `log_entry.rs` and `measure.rs`,
//! written here member by member as those files read them. The decoder must agree with it.

use anyhow::{Context, Result};
use micromegas_transit::value::{Object, Value};
use micromegas_transit::{UserDefinedType, parse_object_buffer, read_dependencies};
use std::sync::Arc;

use super::{FREQUENCY, TestBlock};
use crate::decode::{LogEntry, Measure, decode_payload};

pub struct Reference {
    pub logs: Vec<LogEntry>,
    /// With tick counts converted at [`FREQUENCY`], as `measure.rs` does.
    pub measures: Vec<Measure>,
}

pub fn read(block: &TestBlock) -> Result<Reference> {
    let dep_udts: Vec<UserDefinedType> =
        ciborium::de::from_reader(&block.dependencies_metadata[..])?;
    let obj_udts: Vec<UserDefinedType> = ciborium::de::from_reader(&block.objects_metadata[..])?;
    let buffers = decode_payload(&block.payload)?;
    let bump = bumpalo::Bump::new();
    let readers = micromegas_tracing::parsing::make_custom_readers();
    let deps = read_dependencies(&bump, &readers, &dep_udts, &buffers.dependencies)?;
    let mut reference = Reference {
        logs: Vec::new(),
        measures: Vec::new(),
    };
    let mut index = 0u32;
    parse_object_buffer(
        &bump,
        &readers,
        &deps,
        &obj_udts,
        &buffers.objects,
        |value| {
            if let Value::Object(object) = value {
                if let Some(log) = log_entry(object, index)? {
                    reference.logs.push(log);
                }
                if let Some(measure) = measure(object, index)? {
                    reference.measures.push(measure);
                }
            }
            index += 1;
            Ok(true)
        },
    )?;
    Ok(reference)
}

fn text(s: &str) -> Arc<str> {
    Arc::from(s)
}

fn properties_of(set: &Object) -> Vec<(Arc<str>, Arc<str>)> {
    let mut properties: Vec<_> = set
        .members
        .iter()
        .map(|(k, v)| {
            (
                text(k),
                text(v.as_str().expect("property values are strings")),
            )
        })
        .collect();
    properties.sort();
    properties
}

/// `log_entry_from_value`, plus the file and line of the description where there is one.
fn log_entry(object: &Object, index: u32) -> Result<Option<LogEntry>> {
    let ticks = || object.get::<i64>("time");
    let desc = || object.get::<&Object>("desc");
    let (level, target, msg, properties): (u32, &str, &str, Vec<_>) = match object.type_name {
        "LogStaticStrEvent" => (
            desc()?.get("level")?,
            desc()?.get("target")?,
            desc()?.get("fmt_str")?,
            Vec::new(),
        ),
        "LogStringEvent" | "LogStringEventV2" => (
            desc()?.get("level")?,
            desc()?.get("target")?,
            object.get("msg")?,
            Vec::new(),
        ),
        "LogStaticStrInteropEvent" | "LogStringInteropEventV2" | "LogStringInteropEventV3" => (
            object.get("level")?,
            object.get("target")?,
            object.get("msg")?,
            Vec::new(),
        ),
        "TaggedLogInteropEvent" => (
            object.get("level")?,
            object.get("target")?,
            object.get("msg")?,
            properties_of(object.get::<&Object>("properties")?),
        ),
        "TaggedLogString" => {
            let mut level: u32 = desc()?.get("level")?;
            let mut target: &str = desc()?.get("target")?;
            let set = object.get::<&Object>("properties")?;
            for &(name, value) in set.members {
                match (name, value) {
                    ("target", Value::String(value)) => target = value,
                    ("level", Value::String(value)) => {
                        level = micromegas_tracing::levels::Level::parse(value)
                            .context("parsing log level")? as u32
                    }
                    _ => {}
                }
            }
            (level, target, object.get("msg")?, properties_of(set))
        }
        _ => return Ok(None),
    };
    let (file, line) = match desc() {
        Ok(desc) => (desc.get::<&str>("file")?, desc.get::<u32>("line")?),
        Err(_) => ("", 0),
    };
    Ok(Some(LogEntry {
        index,
        ticks: ticks()?,
        level: u8::try_from(level)?,
        target: text(target),
        msg: text(msg),
        file: text(file),
        line,
        properties,
    }))
}

/// `measure_from_value`, with `ConvertTicks::delta_ticks_to_ms` at [`FREQUENCY`].
fn measure(object: &Object, index: u32) -> Result<Option<Measure>> {
    let (integer, tagged) = match object.type_name {
        "IntegerMetricEvent" => (true, false),
        "FloatMetricEvent" => (false, false),
        "TaggedIntegerMetricEvent" => (true, true),
        "TaggedFloatMetricEvent" => (false, true),
        _ => return Ok(None),
    };
    let desc = object.get::<&Object>("desc")?;
    let mut target: &str = desc.get("target")?;
    let mut name: &str = desc.get("name")?;
    let mut unit: &str = desc.get("unit")?;
    let mut properties = Vec::new();
    if tagged {
        let set = object.get::<&Object>("properties")?;
        for &(key, value) in set.members {
            match (key, value) {
                ("target", Value::String(value)) => target = value,
                ("name", Value::String(value)) => name = value,
                ("unit", Value::String(value)) => unit = value,
                _ => {}
            }
        }
        properties = properties_of(set);
    }
    let mut value = if integer {
        object.get::<u64>("value")? as f64
    } else {
        object.get::<f64>("value")?
    };
    if integer && unit == "ticks" {
        let inv_tsc_frequency_ms = 1000.0 / FREQUENCY as f64;
        value = (object.get::<u64>("value")? as i64) as f64 * inv_tsc_frequency_ms / 1000.0;
        unit = "seconds";
    }
    Ok(Some(Measure {
        index,
        ticks: object.get::<i64>("time")?,
        name: text(name),
        unit: text(unit),
        target: text(target),
        value,
        integer,
        properties,
    }))
}
