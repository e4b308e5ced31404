//! Span events: what a thread stream's objects buffer says, decoded against the stream layout.

use anyhow::{Result, bail};
use std::sync::Arc;

use super::dependencies::{Dependencies, Location};
use super::layout::{EventPlan, NameSource, StreamDecoder};

/// Thread spans nest as a call stack on one stream; async spans pair by `span_id` process-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventScope {
    Thread,
    Async,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventPhase {
    Begin,
    End,
}

/// One begin or end of a span, with its raw tick time.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanEvent {
    pub scope: EventScope,
    pub phase: EventPhase,
    pub ticks: i64,
    pub name: Arc<str>,
    pub target: Arc<str>,
    pub file: Arc<str>,
    pub line: u32,
    /// Async only (0 for thread events).
    pub span_id: u64,
    pub parent_span_id: u64,
    pub depth: u32,
    /// Properties of a tagged end, sorted by key.
    pub properties: Vec<(Arc<str>, Arc<str>)>,
}

pub(super) fn read(
    decoder: &StreamDecoder,
    deps: &Dependencies,
    buffer: &[u8],
) -> Result<Vec<SpanEvent>> {
    let mut events = Vec::new();
    let mut offset = 0usize;
    while offset < buffer.len() {
        let type_index = buffer[offset] as usize;
        offset += 1;
        let Some(object_type) = decoder.object_types.get(type_index) else {
            bail!(
                "object type index {type_index} out of range (the stream declares {})",
                decoder.object_types.len()
            );
        };
        let size = match object_type.fixed_size {
            Some(size) => size,
            None => {
                let Some(bytes) = buffer.get(offset..offset + 4) else {
                    bail!("truncated object record at offset {offset}");
                };
                offset += 4;
                u32::from_le_bytes(bytes.try_into().expect("4 bytes")) as usize
            }
        };
        let Some(record) = offset
            .checked_add(size)
            .and_then(|end| buffer.get(offset..end))
        else {
            bail!(
                "truncated {} record at offset {offset}: needs {size} bytes",
                object_type.name
            );
        };
        offset += size;
        if let Some(plan) = &object_type.plan {
            events.push(decode_event(plan, deps, record)?);
        }
    }
    Ok(events)
}

fn decode_event(plan: &EventPlan, deps: &Dependencies, record: &[u8]) -> Result<SpanEvent> {
    let location: &Location = deps.location(read_u64(record, plan.location_offset))?;
    let name = match plan.name {
        NameSource::Location => location.name.clone().unwrap_or_else(|| Arc::from("")),
        NameSource::String(offset) => deps.string(read_u64(record, offset))?.clone(),
    };
    let properties = match plan.properties_offset {
        Some(offset) => deps.property_set(read_u64(record, offset))?.to_vec(),
        None => Vec::new(),
    };
    Ok(SpanEvent {
        scope: plan.scope,
        phase: plan.phase,
        ticks: read_u64(record, plan.time_offset) as i64,
        name,
        target: location.target.clone(),
        file: location.file.clone(),
        line: location.line,
        span_id: plan.span_id_offset.map_or(0, |o| read_u64(record, o)),
        parent_span_id: plan
            .parent_span_id_offset
            .map_or(0, |o| read_u64(record, o)),
        depth: plan.depth_offset.map_or(0, |o| read_u32(record, o)),
        properties,
    })
}

// Offsets were checked against the record size when the plan was built.
fn read_u64(record: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(
        record[offset..offset + 8]
            .try_into()
            .expect("checked offset"),
    )
}

fn read_u32(record: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(
        record[offset..offset + 4]
            .try_into()
            .expect("checked offset"),
    )
}
