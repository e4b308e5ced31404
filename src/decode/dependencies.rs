//! The dependencies buffer of a block: strings, span descriptions and property sets by id.

use anyhow::{Result, bail};

use crate::symbols::FastMap as HashMap;
use std::sync::Arc;

use super::layout::{DependencyKind, DependencyType, PropertyLayout, RecordPlan};
use super::records::{for_each_record, u32_at, u64_at};

/// What a span event's description reference points to.
pub struct Location {
    /// Set for span records (static spans); named spans carry their name in the event.
    pub name: Option<Arc<str>>,
    pub target: Arc<str>,
    pub file: Arc<str>,
    pub line: u32,
}

pub type Properties = Vec<(Arc<str>, Arc<str>)>;

#[derive(Default)]
pub struct Dependencies {
    strings: HashMap<u64, Arc<str>>,
    locations: HashMap<u64, Location>,
    property_sets: HashMap<u64, Properties>,
}

impl Dependencies {
    pub fn string(&self, id: u64) -> Result<&Arc<str>> {
        match self.strings.get(&id) {
            Some(s) => Ok(s),
            None => bail!("reference to unknown string dependency {id:#x}"),
        }
    }

    pub fn location(&self, id: u64) -> Result<&Location> {
        match self.locations.get(&id) {
            Some(l) => Ok(l),
            None => bail!("reference to unknown span description {id:#x}"),
        }
    }

    pub fn property_set(&self, id: u64) -> Result<&Properties> {
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
                insert_unique(&mut deps.strings, id, decode_codec_string(rest)?)?;
            }
            DependencyKind::SpanDescription(_) | DependencyKind::PropertySet(_) => {
                pending.push((ty, record))
            }
            DependencyKind::Unknown => {}
        }
        Ok(())
    })?;
    for (ty, record) in pending {
        match &ty.kind {
            DependencyKind::SpanDescription(plan) => {
                let (id, location) = read_location(plan, record, &deps)?;
                if deps.locations.insert(id, location).is_some() {
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

/// `u8 codec, u32 len, bytes`: 0 = ANSI (read as UTF-8, lossy), 1 = UTF-16LE, 2 = UTF-8.
fn decode_codec_string(rest: &[u8]) -> Result<Arc<str>> {
    if rest.len() < 5 {
        bail!("string dependency header truncated");
    }
    let codec = rest[0];
    let len = u32::from_le_bytes(rest[1..5].try_into().expect("4 bytes")) as usize;
    let Some(bytes) = rest.get(5..5 + len) else {
        bail!(
            "string dependency of {len} bytes truncated to {}",
            rest.len() - 5
        );
    };
    Ok(match codec {
        0 | 2 => Arc::from(String::from_utf8_lossy(bytes).as_ref()),
        1 => {
            if !len.is_multiple_of(2) {
                bail!("UTF-16 string dependency has an odd length ({len} bytes)");
            }
            let units = bytes
                .chunks_exact(2)
                .map(|p| u16::from_le_bytes([p[0], p[1]]));
            let text: String = char::decode_utf16(units)
                .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect();
            Arc::from(text)
        }
        other => bail!("unknown string codec {other}"),
    })
}

fn read_location(plan: &RecordPlan, record: &[u8], deps: &Dependencies) -> Result<(u64, Location)> {
    let string_at = |offset: Option<usize>| -> Result<Arc<str>> {
        match offset {
            Some(o) => deps.string(u64_at(record, o)).cloned(),
            None => Ok(Arc::from("")),
        }
    };
    let location = Location {
        name: plan
            .name
            .map(|o| deps.string(u64_at(record, o)).cloned())
            .transpose()?,
        target: string_at(plan.target)?,
        file: string_at(plan.file)?,
        line: plan.line.map_or(0, |o| u32_at(record, o)),
    };
    Ok((u64_at(record, plan.id), location))
}

fn read_property_set(
    record: &[u8],
    layout: &PropertyLayout,
    deps: &Dependencies,
) -> Result<(u64, Properties)> {
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
    let mut set: Properties = body
        .chunks_exact(size)
        .map(|p| {
            Ok((
                deps.string(u64_at(p, layout.name_offset))?.clone(),
                deps.string(u64_at(p, layout.value_offset))?.clone(),
            ))
        })
        .collect::<Result<_>>()?;
    set.sort();
    Ok((id, set))
}
