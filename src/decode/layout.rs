//! A stream's transit type metadata, compiled once into decoding plans.
//!
//! Fields are found by the producer's own offsets in the metadata, never by declaration order.

use anyhow::{Context, Result, bail};
use micromegas_transit::UserDefinedType;

use super::events::{EventPhase, EventScope};
use super::logs::{LogPlan, log_plan};
use super::measures::{MeasurePlan, measure_plan};

/// Decodes the blocks of one stream.
pub struct StreamDecoder {
    pub(super) object_types: Vec<ObjectType>,
    pub(super) dependency_types: Vec<DependencyType>,
}

pub(super) struct ObjectType {
    pub name: String,
    /// `None` for variable-size records (a u32 length precedes them).
    pub fixed_size: Option<usize>,
    /// How to read it; `None` for objects we skip.
    pub plan: Option<ObjectPlan>,
}

/// What an object becomes, by its type name.
pub(super) enum ObjectPlan {
    Span(EventPlan),
    Log(LogPlan),
    Measure(MeasurePlan),
}

pub(super) enum NameSource {
    /// The name is in the span record the location member refers to.
    Location,
    /// The name is a string reference at this offset.
    String(usize),
}

pub(super) struct EventPlan {
    pub scope: EventScope,
    pub phase: EventPhase,
    pub location_offset: usize,
    pub name: NameSource,
    pub time_offset: usize,
    pub span_id_offset: Option<usize>,
    pub parent_span_id_offset: Option<usize>,
    pub depth_offset: Option<usize>,
    pub properties_offset: Option<usize>,
}

/// How a record of the dependencies buffer is read.
pub(super) struct DependencyType {
    pub name: String,
    pub fixed_size: Option<usize>,
    pub kind: DependencyKind,
}

pub(super) enum DependencyKind {
    /// `u64 id` + UTF-8 bytes.
    StaticString,
    /// `u64 id, u8 codec, u32 len, bytes`.
    StringWithCodec,
    /// An event description: any fixed-size record keyed by its `id` member that has the
    /// members every description has (`target`, `file`, `line`), whatever its type name: span
    /// descriptions (`SpanRecord`, `SpanLocationRecord` from the Rust crate,
    /// `SpanMetadataDependency`, `SpanLocationDependency` from the Unreal plugin), log
    /// descriptions (`LogMetadataRecord`, `LogMetadataDependency`) and metric descriptions
    /// (`MetricMetadataDependency` of both).
    Description(RecordPlan),
    /// A property set: `u64 id, u32 count`, then `count` properties of the `Property` layout
    /// the metadata declares (`None`: it declares none, so a property set cannot be read).
    PropertySet(Option<PropertyLayout>),
    Unknown,
}

pub(super) struct PropertyLayout {
    pub size: usize,
    pub name_offset: usize,
    pub value_offset: usize,
}

pub(super) struct RecordPlan {
    pub id: usize,
    pub name: Option<usize>,
    pub target: Option<usize>,
    pub file: Option<usize>,
    pub line: Option<usize>,
    pub fmt_str: Option<usize>,
    pub level: Option<(usize, LevelWidth)>,
    pub unit: Option<usize>,
}

/// A log description's level: `u32` in the Rust crate, `uint8` in the Unreal plugin; Micromegas
/// reads either as a u32.
#[derive(Clone, Copy)]
pub(super) enum LevelWidth {
    U8,
    U32,
}

impl StreamDecoder {
    /// Builds the decoder from the stream's `dependencies_metadata` and `objects_metadata`
    /// columns (CBOR lists of type descriptions).
    pub fn new(dependencies_metadata: &[u8], objects_metadata: &[u8]) -> Result<Self> {
        let dep_udts = parse_udts(dependencies_metadata).context("dependencies_metadata")?;
        let obj_udts = parse_udts(objects_metadata).context("objects_metadata")?;
        let all: Vec<&UserDefinedType> = dep_udts.iter().chain(obj_udts.iter()).collect();
        let dependency_types = dep_udts
            .iter()
            .map(|udt| dependency_type(udt, &all))
            .collect::<Result<Vec<_>>>()
            .context("dependencies_metadata")?;
        let object_types = obj_udts
            .iter()
            .map(|udt| object_type(udt, &all, &obj_udts))
            .collect::<Result<Vec<_>>>()
            .context("objects_metadata")?;
        Ok(Self {
            object_types,
            dependency_types,
        })
    }
}

fn parse_udts(cbor: &[u8]) -> Result<Vec<UserDefinedType>> {
    let udts: Vec<UserDefinedType> = ciborium::de::from_reader(cbor)
        .map_err(|e| anyhow::anyhow!("not a CBOR list of type descriptions: {e}"))?;
    if udts.len() > 256 {
        bail!(
            "{} types declared, but a type index is one byte",
            udts.len()
        );
    }
    Ok(udts)
}

fn fixed_size(udt: &UserDefinedType) -> Option<usize> {
    (udt.size > 0).then_some(udt.size)
}

/// Offset of a member that holds a u64 reference: a reference member, or a member whose type
/// is itself a reference type (its `id` member holds the reference).
pub(super) fn reference_offset(
    udt: &UserDefinedType,
    member: &str,
    all: &[&UserDefinedType],
) -> Result<Option<usize>> {
    let Some(m) = udt.members.iter().find(|m| m.name.as_str() == member) else {
        return Ok(None);
    };
    if m.is_reference && m.size < 8 {
        bail!(
            "{}.{member} is a reference of {} bytes, narrower than its 8-byte id",
            udt.name,
            m.size
        );
    }
    // Held by value: its type must be a reference type (transit reads such a member as what
    // its type's `id` refers to), e.g. the Rust crate's `StringId`.
    let inner = if m.is_reference {
        0
    } else {
        let id = all
            .iter()
            .find(|t| *t.name == m.type_name && t.is_reference)
            .and_then(|ty| ty.members.iter().find(|im| im.name.as_str() == "id"));
        match id {
            Some(id) => id.offset,
            None => bail!(
                "{}.{member} is neither a reference nor of a reference type ({})",
                udt.name,
                m.type_name
            ),
        }
    };
    let Some(offset) = m.offset.checked_add(inner) else {
        bail!(
            "{}.{member} at offset {} + {inner} overflows",
            udt.name,
            m.offset
        );
    };
    check_field(udt, member, offset, 8)?;
    Ok(Some(offset))
}

pub(super) fn scalar_offset(
    udt: &UserDefinedType,
    member: &str,
    size: usize,
) -> Result<Option<usize>> {
    let Some(m) = udt.members.iter().find(|m| m.name.as_str() == member) else {
        return Ok(None);
    };
    if m.size != size {
        bail!("{}.{member} has size {}, expected {size}", udt.name, m.size);
    }
    check_field(udt, member, m.offset, size)?;
    Ok(Some(m.offset))
}

fn check_field(udt: &UserDefinedType, member: &str, offset: usize, size: usize) -> Result<()> {
    match offset.checked_add(size) {
        Some(end) if end <= udt.size => Ok(()),
        _ => bail!(
            "{}.{member} at offset {offset} exceeds the type's {} bytes",
            udt.name,
            udt.size
        ),
    }
}

/// `objects` is the objects list alone: Micromegas's readers of variable-size records look the
/// layouts they embed up there.
fn object_type(
    udt: &UserDefinedType,
    all: &[&UserDefinedType],
    objects: &[UserDefinedType],
) -> Result<ObjectType> {
    let plan = match classify_event(&udt.name) {
        Some((scope, phase)) if udt.size > 0 => {
            Some(ObjectPlan::Span(event_plan(udt, scope, phase, all)?))
        }
        Some(_) => None,
        None => match log_plan(udt, all, objects)? {
            Some(plan) => Some(ObjectPlan::Log(plan)),
            None => measure_plan(udt, all)?.map(ObjectPlan::Measure),
        },
    };
    Ok(ObjectType {
        name: udt.name.to_string(),
        fixed_size: fixed_size(udt),
        plan,
    })
}

/// The span events, by the type names Micromegas's analytics reads them by
/// (`thread_block_processor.rs`, `async_block_processing.rs`): the eight of micromegas-tracing
/// 0.30 — which the Unreal plugin also uses for its four thread events — and the 0.33 dynamic-name
/// and tagged-end variants, each read as its plain counterpart. Any other object is skipped.
fn classify_event(name: &str) -> Option<(EventScope, EventPhase)> {
    use EventPhase::{Begin, End};
    use EventScope::{Async, Thread};
    Some(match name {
        "BeginThreadSpanEvent" | "BeginThreadNamedSpanEvent" | "BeginThreadDynNamedSpanEvent" => {
            (Thread, Begin)
        }
        "EndThreadSpanEvent"
        | "EndThreadNamedSpanEvent"
        | "EndThreadDynNamedSpanEvent"
        | "TaggedEndThreadSpanEvent"
        | "TaggedEndThreadNamedSpanEvent" => (Thread, End),
        "BeginAsyncSpanEvent" | "BeginAsyncNamedSpanEvent" | "BeginAsyncDynNamedSpanEvent" => {
            (Async, Begin)
        }
        "EndAsyncSpanEvent"
        | "EndAsyncNamedSpanEvent"
        | "EndAsyncDynNamedSpanEvent"
        | "TaggedEndAsyncSpanEvent"
        | "TaggedEndAsyncNamedSpanEvent" => (Async, End),
        _ => return None,
    })
}

fn event_plan(
    udt: &UserDefinedType,
    scope: EventScope,
    phase: EventPhase,
    all: &[&UserDefinedType],
) -> Result<EventPlan> {
    let location_offset = [
        "thread_span_desc",
        "span_desc",
        "thread_span_location",
        "span_location",
    ]
    .iter()
    .find_map(|m| reference_offset(udt, m, all).transpose())
    .transpose()?
    .with_context(|| format!("{} has no span description member", udt.name))?;
    let name = match reference_offset(udt, "name", all)? {
        Some(offset) => NameSource::String(offset),
        None => NameSource::Location,
    };
    let time_offset = scalar_offset(udt, "time", 8)?
        .with_context(|| format!("{} has no time member", udt.name))?;
    let async_field = |member: &str, size: usize| -> Result<Option<usize>> {
        let offset = scalar_offset(udt, member, size)?;
        if scope == EventScope::Async && offset.is_none() {
            bail!("{} has no {member} member", udt.name);
        }
        Ok(offset)
    };
    Ok(EventPlan {
        scope,
        phase,
        location_offset,
        name,
        time_offset,
        span_id_offset: async_field("span_id", 8)?,
        parent_span_id_offset: async_field("parent_span_id", 8)?,
        depth_offset: async_field("depth", 4)?,
        properties_offset: reference_offset(udt, "properties", all)?,
    })
}

/// Dependencies are read as Micromegas's transit parser reads them: the string types and the
/// property sets have their own encodings; every other fixed-size type is a record keyed by its
/// `id` member, and the records that describe events are kept.
fn dependency_type(udt: &UserDefinedType, all: &[&UserDefinedType]) -> Result<DependencyType> {
    let kind = match udt.name.as_str() {
        "StaticString" => DependencyKind::StaticString,
        "StaticStringDependency" => DependencyKind::StringWithCodec,
        "PropertySetDependency" => property_set_kind(all)?,
        _ if udt.size > 0 && is_description(udt) => {
            DependencyKind::Description(description_plan(udt, all)?)
        }
        _ => DependencyKind::Unknown,
    };
    Ok(DependencyType {
        name: udt.name.to_string(),
        fixed_size: fixed_size(udt),
        kind,
    })
}

/// A record with an `id` and the members every event description has: `target`, `file` and
/// `line`. The members of one kind of description (a static span's `name`, a log's `fmt_str`
/// and `level`, a metric's `name` and `unit`) are read when present; an event that needs one
/// its description lacks fails.
fn is_description(udt: &UserDefinedType) -> bool {
    let has = |member: &str| udt.members.iter().any(|m| m.name.as_str() == member);
    ["id", "target", "file", "line"].iter().all(|m| has(m))
}

fn description_plan(udt: &UserDefinedType, all: &[&UserDefinedType]) -> Result<RecordPlan> {
    Ok(RecordPlan {
        id: scalar_offset(udt, "id", 8)?.with_context(|| format!("{} has no id", udt.name))?,
        name: reference_offset(udt, "name", all)?,
        target: reference_offset(udt, "target", all)?,
        file: reference_offset(udt, "file", all)?,
        line: scalar_offset(udt, "line", 4)?,
        fmt_str: reference_offset(udt, "fmt_str", all)?,
        level: level_member(udt)?,
        unit: reference_offset(udt, "unit", all)?,
    })
}

pub(super) fn level_member(udt: &UserDefinedType) -> Result<Option<(usize, LevelWidth)>> {
    let Some(m) = udt.members.iter().find(|m| m.name.as_str() == "level") else {
        return Ok(None);
    };
    let width = match m.size {
        1 => LevelWidth::U8,
        4 => LevelWidth::U32,
        other => bail!("{}.level has size {other}, expected 1 or 4", udt.name),
    };
    Ok(Some((
        scalar_offset(udt, "level", m.size)?.expect("found above"),
        width,
    )))
}

/// The `Property` layout: a secondary type of the Rust crate's metadata, a dependency type of
/// the Unreal plugin's; found by name either way. Producers without property sets may not
/// declare it: a block that holds a property set then fails when it is read.
fn property_set_kind(all: &[&UserDefinedType]) -> Result<DependencyKind> {
    let Some(property) = all.iter().find(|t| t.name.as_str() == "Property") else {
        return Ok(DependencyKind::PropertySet(None));
    };
    Ok(DependencyKind::PropertySet(Some(PropertyLayout {
        size: property.size,
        name_offset: reference_offset(property, "name", all)?.context("Property has no name")?,
        value_offset: reference_offset(property, "value", all)?.context("Property has no value")?,
    })))
}

impl super::records::RecordType for ObjectType {
    fn name(&self) -> &str {
        &self.name
    }
    fn fixed_size(&self) -> Option<usize> {
        self.fixed_size
    }
}

impl super::records::RecordType for DependencyType {
    fn name(&self) -> &str {
        &self.name
    }
    fn fixed_size(&self) -> Option<usize> {
        self.fixed_size
    }
}
