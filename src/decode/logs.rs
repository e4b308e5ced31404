//! Log entries: what a log stream's objects say, read as Micromegas's `log_entry.rs` reads them.
//!
//! A record gives its time and, depending on its type, a description (level, target, file,
//! line, and the message of a static log), an explicit level and target (interop logs), its
//! message (inline, or a string reference), and a property set. [`decode`] reads the fields a
//! type has ([`RawLog`]) and then applies the one set of rules to all of them.

use anyhow::{Context, Result, bail};
use micromegas_transit::UserDefinedType;
use std::sync::Arc;

use super::dependencies::{Dependencies, Description};
use super::inline::Cursor;
use super::layout::{LevelWidth, level_member, reference_offset, scalar_offset};
use super::records::{u32_at, u64_at};

/// One log entry, with its raw tick time.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    /// Its place among the block's objects (all of them, skipped ones included): with the
    /// block's `object_offset`, its place in the stream.
    pub index: u32,
    pub ticks: i64,
    /// 1 fatal, 2 error, 3 warn, 4 info, 5 debug, 6 trace.
    pub level: u8,
    pub target: Arc<str>,
    pub msg: Arc<str>,
    /// From the log's description; `""` for interop logs, which have none.
    pub file: Arc<str>,
    /// From the log's description; 0 for interop logs.
    pub line: u32,
    /// The property set of a tagged log, sorted by key; `target` and `level` stay in it even
    /// when they override the description's.
    pub properties: Vec<(Arc<str>, Arc<str>)>,
}

/// How a log record is read, by its type name.
pub(super) struct LogPlan {
    fields: LogFields,
    /// `TaggedLogString` only: its `target` and `level` properties override the description's.
    overrides: bool,
}

enum LogFields {
    /// Fixed-size records, by the metadata's offsets.
    Fixed(FixedLog),
    /// Variable-size records, packed (see `inline.rs`).
    Packed(PackedLog),
}

/// Member offsets of a fixed-size log record.
struct FixedLog {
    time: usize,
    desc: Option<usize>,
    level: Option<(usize, LevelWidth)>,
    target: Option<usize>,
    msg: Option<usize>,
}

/// The packed variable-size log records. Each field list is the one Micromegas's reader of that
/// type reads, in that order.
enum PackedLog {
    /// `LogStringEvent` (legacy): desc, time, then the rest of the record is the UTF-8 message.
    LegacyString,
    /// `LogStringEventV2`: desc, time, message.
    String,
    /// `LogStringInteropEventV2` (legacy): time, level `u32`, target (a `StringId`), then the
    /// rest of the record is the UTF-8 message.
    LegacyInterop(Option<InlineRef>),
    /// `LogStringInteropEventV3`: time, level `u8`, target (a `StaticStringRef`), message.
    Interop(Option<InlineRef>),
    /// `TaggedLogInteropEvent`: time, level `u8`, target (a `StaticStringRef`), property set,
    /// message.
    TaggedInterop(Option<InlineRef>),
    /// `TaggedLogString`: desc, property set, time, message.
    TaggedString,
}

/// A string reference embedded in a packed record (`StringId`, `StaticStringRef`): its size
/// and where its id is, from the layout the stream declares under that name. `None` when the
/// stream declares none: as in Micromegas, a record that needs it then fails.
#[derive(Clone, Copy)]
struct InlineRef {
    size: usize,
    id_offset: usize,
}

/// What a record says, before its references are resolved.
struct RawLog {
    ticks: i64,
    desc: Option<u64>,
    level: Option<u32>,
    /// A string reference.
    target: Option<u64>,
    msg: Message,
    properties: Option<u64>,
}

enum Message {
    /// The description's `fmt_str` (static logs).
    FromDescription,
    Reference(u64),
    Inline(Arc<str>),
}

/// The plan of a log record type, or `None` if the type is not one Micromegas reads as a log.
/// A known type whose shape is not the one Micromegas reads (fixed-size where it reads a
/// variable-size record, or the reverse; a member missing) is an error.
///
/// micromegas-tracing 0.33 also writes `TaggedLogStaticStrEvent`, `TaggedLogTemplateEvent`
/// (a message rendered from its properties) and `LogStaticStrInteropEventV2`, which
/// Micromegas's `log_entry.rs` does not read (it warns and skips them): they are skipped here
/// too, so that the two tools show the same entries.
pub(super) fn log_plan(
    udt: &UserDefinedType,
    all: &[&UserDefinedType],
    objects: &[UserDefinedType],
) -> Result<Option<LogPlan>> {
    let name = udt.name.as_str();
    let inline_ref = |ref_type: &str| inline_ref(objects, ref_type);
    let (fields, overrides) = match name {
        "LogStaticStrEvent" | "LogStaticStrInteropEvent" => {
            (LogFields::Fixed(fixed_log(udt, all)?), false)
        }
        "LogStringEvent" => (LogFields::Packed(PackedLog::LegacyString), false),
        "LogStringEventV2" => (LogFields::Packed(PackedLog::String), false),
        "LogStringInteropEventV2" => (
            LogFields::Packed(PackedLog::LegacyInterop(inline_ref("StringId")?)),
            false,
        ),
        "LogStringInteropEventV3" => (
            LogFields::Packed(PackedLog::Interop(inline_ref("StaticStringRef")?)),
            false,
        ),
        "TaggedLogInteropEvent" => (
            LogFields::Packed(PackedLog::TaggedInterop(inline_ref("StaticStringRef")?)),
            false,
        ),
        "TaggedLogString" => (LogFields::Packed(PackedLog::TaggedString), true),
        _ => return Ok(None),
    };
    let packed = matches!(fields, LogFields::Packed(_));
    if packed != (udt.size == 0) {
        bail!(
            "{name} is declared {}, but its records are {}",
            if udt.size == 0 {
                "variable-size"
            } else {
                "fixed-size"
            },
            if packed {
                "variable-size"
            } else {
                "fixed-size"
            }
        );
    }
    Ok(Some(LogPlan { fields, overrides }))
}

/// `LogStaticStrEvent {desc, time}` and `LogStaticStrInteropEvent {time, level, target, msg}`.
fn fixed_log(udt: &UserDefinedType, all: &[&UserDefinedType]) -> Result<FixedLog> {
    let required = |offset: Option<usize>, member: &str| {
        offset.with_context(|| format!("{} has no {member} member", udt.name))
    };
    let time = required(scalar_offset(udt, "time", 8)?, "time")?;
    if udt.name.as_str() == "LogStaticStrEvent" {
        return Ok(FixedLog {
            time,
            desc: Some(required(reference_offset(udt, "desc", all)?, "desc")?),
            level: None,
            target: None,
            msg: None,
        });
    }
    Ok(FixedLog {
        time,
        desc: None,
        level: Some(
            level_member(udt)?.with_context(|| format!("{} has no level member", udt.name))?,
        ),
        target: Some(required(reference_offset(udt, "target", all)?, "target")?),
        msg: Some(required(reference_offset(udt, "msg", all)?, "msg")?),
    })
}

/// The layout named `ref_type` in the objects list, which must be a reference type whose `id`
/// member is a reference, as Micromegas reads it.
fn inline_ref(objects: &[UserDefinedType], ref_type: &str) -> Result<Option<InlineRef>> {
    let Some(udt) = objects.iter().find(|t| t.name.as_str() == ref_type) else {
        return Ok(None);
    };
    let id = udt.members.iter().find(|m| m.name.as_str() == "id");
    match id {
        Some(id) if udt.is_reference && id.is_reference && id.size >= 8 => {
            match id.offset.checked_add(8) {
                Some(end) if end <= udt.size => Ok(Some(InlineRef {
                    size: udt.size,
                    id_offset: id.offset,
                })),
                _ => bail!(
                    "{ref_type}.id at offset {} exceeds its {} bytes",
                    id.offset,
                    udt.size
                ),
            }
        }
        _ => bail!("{ref_type} is not a reference type with an 8-byte id reference"),
    }
}

/// Decodes one log record; `index` is its place among the block's objects.
pub(super) fn decode(
    plan: &LogPlan,
    type_name: &str,
    deps: &Dependencies,
    record: &[u8],
    index: u32,
) -> Result<LogEntry> {
    let raw = match &plan.fields {
        LogFields::Fixed(fixed) => read_fixed(fixed, record),
        LogFields::Packed(packed) => read_packed(packed, type_name, record)?,
    };
    resolve(raw, plan.overrides, deps, index)
}

fn read_fixed(plan: &FixedLog, record: &[u8]) -> RawLog {
    RawLog {
        ticks: u64_at(record, plan.time) as i64,
        desc: plan.desc.map(|o| u64_at(record, o)),
        level: plan.level.map(|(offset, width)| match width {
            LevelWidth::U8 => u32::from(record[offset]),
            LevelWidth::U32 => u32_at(record, offset),
        }),
        target: plan.target.map(|o| u64_at(record, o)),
        msg: match plan.msg {
            Some(o) => Message::Reference(u64_at(record, o)),
            None => Message::FromDescription,
        },
        properties: None,
    }
}

fn read_packed(plan: &PackedLog, type_name: &str, record: &[u8]) -> Result<RawLog> {
    let mut cursor = Cursor::new(record, type_name);
    let raw = match plan {
        PackedLog::LegacyString | PackedLog::String => {
            let desc = cursor.u64("desc")?;
            let ticks = cursor.i64("time")?;
            let msg = if matches!(plan, PackedLog::LegacyString) {
                cursor.utf8_rest("msg")?
            } else {
                cursor.string("msg")?
            };
            described(desc, ticks, msg, None)
        }
        PackedLog::TaggedString => {
            let desc = cursor.u64("desc")?;
            let properties = cursor.u64("properties")?;
            let ticks = cursor.i64("time")?;
            described(desc, ticks, cursor.string("msg")?, Some(properties))
        }
        PackedLog::LegacyInterop(layout) => {
            let layout = layout.context("the stream declares no StringId layout")?;
            let ticks = cursor.i64("time")?;
            let level = cursor.u32("level")?;
            let target = inline_id(&mut cursor, layout)?;
            interop(ticks, level, target, cursor.utf8_rest("msg")?, None)
        }
        PackedLog::Interop(layout) | PackedLog::TaggedInterop(layout) => {
            let layout = layout.context("the stream declares no StaticStringRef layout")?;
            let ticks = cursor.i64("time")?;
            let level = u32::from(cursor.u8("level")?);
            let target = inline_id(&mut cursor, layout)?;
            let properties = match plan {
                PackedLog::TaggedInterop(_) => Some(cursor.u64("properties")?),
                _ => None,
            };
            interop(ticks, level, target, cursor.string("msg")?, properties)
        }
    };
    cursor.finish()?;
    Ok(raw)
}

fn described(desc: u64, ticks: i64, msg: Arc<str>, properties: Option<u64>) -> RawLog {
    RawLog {
        ticks,
        desc: Some(desc),
        level: None,
        target: None,
        msg: Message::Inline(msg),
        properties,
    }
}

fn interop(ticks: i64, level: u32, target: u64, msg: Arc<str>, properties: Option<u64>) -> RawLog {
    RawLog {
        ticks,
        desc: None,
        level: Some(level),
        target: Some(target),
        msg: Message::Inline(msg),
        properties,
    }
}

fn inline_id(cursor: &mut Cursor, layout: InlineRef) -> Result<u64> {
    let bytes = cursor.take(layout.size, "target")?;
    Ok(u64_at(bytes, layout.id_offset))
}

/// The rules of `log_entry.rs`: level and target from the record when it has them, else from
/// its description; the message inline, by reference, or the description's `fmt_str`; file and
/// line from the description.
fn resolve(raw: RawLog, overrides: bool, deps: &Dependencies, index: u32) -> Result<LogEntry> {
    let desc: Option<&Description> = raw.desc.map(|id| deps.description(id)).transpose()?;
    let from_desc =
        |what: &str| desc.with_context(|| format!("a log without a description has no {what}"));
    let mut level = match raw.level {
        Some(level) => level,
        None => from_desc("level")?
            .level
            .context("the log's description has no level")?,
    };
    let mut target = match raw.target {
        Some(id) => deps.string(id)?.clone(),
        None => from_desc("target")?.target.clone(),
    };
    let msg = match raw.msg {
        Message::Inline(msg) => msg,
        Message::Reference(id) => deps.string(id)?.clone(),
        Message::FromDescription => from_desc("message")?
            .fmt_str
            .clone()
            .context("the log's description has no fmt_str")?,
    };
    let properties = match raw.properties {
        Some(id) => {
            let set = deps.property_set(id)?;
            if overrides {
                apply_overrides(&set.as_written, &mut target, &mut level)?;
            }
            set.sorted.clone()
        }
        None => Vec::new(),
    };
    Ok(LogEntry {
        index,
        ticks: raw.ticks,
        level: checked_level(level)?,
        target,
        msg,
        file: desc.map_or_else(|| Arc::from(""), |d| d.file.clone()),
        line: desc.map_or(0, |d| d.line),
        properties,
    })
}

/// In the producer's order, as Micromegas applies them: the last `target` wins, and every
/// `level` must be a level name (`Level::parse`: the lowercase names, `warning` for warn).
fn apply_overrides(
    properties: &[(Arc<str>, Arc<str>)],
    target: &mut Arc<str>,
    level: &mut u32,
) -> Result<()> {
    for (key, value) in properties {
        match &**key {
            "target" => *target = value.clone(),
            "level" => *level = parse_level(value)?,
            _ => {}
        }
    }
    Ok(())
}

fn parse_level(name: &str) -> Result<u32> {
    Ok(match name {
        "fatal" => 1,
        "error" => 2,
        "warning" => 3,
        "info" => 4,
        "debug" => 5,
        "trace" => 6,
        _ => bail!("level property {name:?} is not a log level name"),
    })
}

/// Producers only write the six levels (`Level` in the Rust crate, `LogLevel` in the Unreal
/// plugin); anything else is damage.
fn checked_level(level: u32) -> Result<u8> {
    match u8::try_from(level) {
        Ok(level @ 1..=6) => Ok(level),
        _ => bail!("log level {level} is not one of 1 (fatal) to 6 (trace)"),
    }
}
