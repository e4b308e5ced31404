//! A stream's transit type metadata, compiled once into decoding plans.
//!
//! Fields are found by the producer's own offsets in the metadata, never by declaration order.

use anyhow::{Context, Result, bail};
use micromegas_transit::UserDefinedType;

use super::events::{EventPhase, EventScope};

/// Decodes the blocks of one stream.
pub struct StreamDecoder {
    pub(super) object_types: Vec<ObjectType>,
    pub(super) dependency_types: Vec<DependencyType>,
}

pub(super) struct ObjectType {
    pub name: String,
    /// `None` for variable-size records (a u32 length precedes them).
    pub fixed_size: Option<usize>,
    /// How to read it as a span event; `None` for objects we skip.
    pub plan: Option<EventPlan>,
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
    /// A span description: any fixed-size record keyed by its `id` member that has the
    /// members a span event refers to (`target`, `file`, `line`, and `name` for static spans),
    /// whatever its type name (`SpanRecord` and `SpanLocationRecord` from the Rust crate,
    /// `SpanMetadataDependency` and `SpanLocationDependency` from the Unreal plugin).
    SpanDescription(RecordPlan),
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
            .map(|udt| object_type(udt, &all))
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
fn reference_offset(
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

fn scalar_offset(udt: &UserDefinedType, member: &str, size: usize) -> Result<Option<usize>> {
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

fn object_type(udt: &UserDefinedType, all: &[&UserDefinedType]) -> Result<ObjectType> {
    let plan = match classify_event(&udt.name) {
        Some((scope, phase)) if udt.size > 0 => Some(event_plan(udt, scope, phase, all)?),
        _ => None,
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
/// `id` member, and the records that describe spans are kept.
fn dependency_type(udt: &UserDefinedType, all: &[&UserDefinedType]) -> Result<DependencyType> {
    let kind = match udt.name.as_str() {
        "StaticString" => DependencyKind::StaticString,
        "StaticStringDependency" => DependencyKind::StringWithCodec,
        "PropertySetDependency" => property_set_kind(all)?,
        _ if udt.size > 0 && is_span_description(udt) => {
            DependencyKind::SpanDescription(RecordPlan {
                id: scalar_offset(udt, "id", 8)?
                    .with_context(|| format!("{} has no id", udt.name))?,
                name: reference_offset(udt, "name", all)?,
                target: reference_offset(udt, "target", all)?,
                file: reference_offset(udt, "file", all)?,
                line: scalar_offset(udt, "line", 4)?,
            })
        }
        _ => DependencyKind::Unknown,
    };
    Ok(DependencyType {
        name: udt.name.to_string(),
        fixed_size: fixed_size(udt),
        kind,
    })
}

/// A record with an `id` and the members a span event reads from its description: `target`,
/// `file` and `line` (a static span's description also has its `name`). Log and metric
/// descriptions have them too; they never appear in a thread stream, and an event that refers
/// to one reads it the same way.
fn is_span_description(udt: &UserDefinedType) -> bool {
    let has = |member: &str| udt.members.iter().any(|m| m.name.as_str() == member);
    ["id", "target", "file", "line"].iter().all(|m| has(m))
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
