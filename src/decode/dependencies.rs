//! The dependencies buffer of a block: strings, event descriptions and property sets by id.

use anyhow::{Context, Result, bail};

use crate::symbols::FastMap as HashMap;
use std::sync::Arc;

use super::inline::decode_string;
use super::layout::{DependencyKind, DependencyType, LevelWidth, PropertyLayout, RecordPlan};
use super::records::{for_each_record, u32_at, u64_at};

/// What an event's description reference points to: a span, log or metric description. The
/// members a kind of description lacks are `None` (a span location has no name, a span record
/// no level); the event that needs one fails when it is missing.
pub struct Description {
    /// Span records (static spans) and metric descriptions; named spans carry their name in
    /// the event.
    pub name: Option<Arc<str>>,
    pub target: Arc<str>,
    pub file: Arc<str>,
    pub line: u32,
    /// Log descriptions: the message of a static log.
    pub fmt_str: Option<Arc<str>>,
    /// Log descriptions: `u32` in the Rust crate, one byte in the Unreal plugin.
    pub level: Option<u32>,
    /// Metric descriptions.
    pub unit: Option<Arc<str>>,
}

pub type Properties = Vec<(Arc<str>, Arc<str>)>;

/// A property set, sorted by key for display, and as written, for the rules that let a
/// property override a column: Micromegas applies them in the producer's order, the last one
/// winning.
pub struct PropertySet {
    pub sorted: Properties,
    pub as_written: Properties,
}

#[derive(Default)]
pub struct Dependencies {
    strings: HashMap<u64, Arc<str>>,
    descriptions: HashMap<u64, Description>,
    property_sets: HashMap<u64, PropertySet>,
}

impl Dependencies {
    pub fn string(&self, id: u64) -> Result<&Arc<str>> {
        match self.strings.get(&id) {
            Some(s) => Ok(s),
            None => bail!("reference to unknown string dependency {id:#x}"),
        }
    }

    pub fn description(&self, id: u64) -> Result<&Description> {
        match self.descriptions.get(&id) {
            Some(d) => Ok(d),
            None => bail!("reference to unknown event description {id:#x}"),
        }
    }

    pub fn property_set(&self, id: u64) -> Result<&PropertySet> {
        match self.property_sets.get(&id) {
            Some(p) => Ok(p),
            None => bail!("reference to unknown property set {id:#x}"),
        }
    }
}

/// Reads the buffer in two passes: strings first, then the records that refer to them, so that
/// the order of records within the buffer does not matter.
pub fn read(types: &[DependencyType], buffer: &[u8]) -> Result<Dependencies> {
    let mut deps = Dependencies::default();
    let mut pending: Vec<(&DependencyType, &[u8])> = Vec::new();
    for_each_record(buffer, types, "dependency", |ty, record| {
        match &ty.kind {
            DependencyKind::StaticString => {
                let (id, text) = split_id(record, &ty.name)?;
                insert_unique(
                    &mut deps.strings,
                    id,
                    Arc::from(String::from_utf8_lossy(text).as_ref()),
                )?;
            }
            DependencyKind::StringWithCodec => {
                let (id, rest) = split_id(record, &ty.name)?;
                // What follows the string is not checked, as Micromegas's parser does not.
                let (text, _) = decode_string(rest).context("string dependency")?;
                insert_unique(&mut deps.strings, id, text)?;
            }
            DependencyKind::Description(_) | DependencyKind::PropertySet(_) => {
                pending.push((ty, record))
            }
            DependencyKind::Unknown => {}
        }
        Ok(())
    })?;
    for (ty, record) in pending {
        match &ty.kind {
            DependencyKind::Description(plan) => {
                let (id, description) = read_description(plan, record, &deps)?;
                if deps.descriptions.insert(id, description).is_some() {
                    bail!("duplicate dependency id {id:#x}");
                }
            }
            DependencyKind::PropertySet(layout) => {
                let Some(layout) = layout else {
                    bail!("a property set, but the stream's metadata declares no Property layout");
                };
                let (id, set) = read_property_set(record, layout, &deps)?;
                if deps.property_sets.insert(id, set).is_some() {
                    bail!("duplicate dependency id {id:#x}");
                }
            }
            _ => unreachable!("only records are pending"),
        }
    }
    Ok(deps)
}

fn insert_unique(map: &mut HashMap<u64, Arc<str>>, id: u64, value: Arc<str>) -> Result<()> {
    if map.insert(id, value).is_some() {
        bail!("duplicate dependency id {id:#x}");
    }
    Ok(())
}

fn split_id<'a>(record: &'a [u8], type_name: &str) -> Result<(u64, &'a [u8])> {
    if record.len() < 8 {
        bail!(
            "{type_name} record of {} bytes is shorter than its id",
            record.len()
        );
    }
    Ok((u64_at(record, 0), &record[8..]))
}

fn read_description(
    plan: &RecordPlan,
    record: &[u8],
    deps: &Dependencies,
) -> Result<(u64, Description)> {
    let optional_string = |offset: Option<usize>| -> Result<Option<Arc<str>>> {
        offset
            .map(|o| deps.string(u64_at(record, o)).cloned())
            .transpose()
    };
    let string_or_empty = |offset: Option<usize>| {
        Ok::<_, anyhow::Error>(optional_string(offset)?.unwrap_or_else(|| Arc::from("")))
    };
    let description = Description {
        name: optional_string(plan.name)?,
        target: string_or_empty(plan.target)?,
        file: string_or_empty(plan.file)?,
        line: plan.line.map_or(0, |o| u32_at(record, o)),
        fmt_str: optional_string(plan.fmt_str)?,
        level: plan.level.map(|(offset, width)| match width {
            LevelWidth::U8 => u32::from(record[offset]),
            LevelWidth::U32 => u32_at(record, offset),
        }),
        unit: optional_string(plan.unit)?,
    };
    Ok((u64_at(record, plan.id), description))
}

fn read_property_set(
    record: &[u8],
    layout: &PropertyLayout,
    deps: &Dependencies,
) -> Result<(u64, PropertySet)> {
    if record.len() < 12 {
        bail!("property set record truncated");
    }
    let id = u64_at(record, 0);
    let count = u32::from_le_bytes(record[8..12].try_into().expect("4 bytes")) as usize;
    let body = &record[12..];
    // The layout's offsets were checked against its size when the plan was built.
    let size = layout.size;
    if size == 0 || count.checked_mul(size) != Some(body.len()) {
        bail!(
            "property set {id:#x} declares {count} properties of {size} bytes in {} bytes",
            body.len()
        );
    }
    let as_written: Properties = body
        .chunks_exact(size)
        .map(|p| {
            Ok((
                deps.string(u64_at(p, layout.name_offset))?.clone(),
                deps.string(u64_at(p, layout.value_offset))?.clone(),
            ))
        })
        .collect::<Result<_>>()?;
    let mut sorted = as_written.clone();
    sorted.sort();
    Ok((id, PropertySet { sorted, as_written }))
}
