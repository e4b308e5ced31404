//! Span events: what a thread stream's objects buffer says, decoded against the stream layout.

use anyhow::Result;
use std::sync::Arc;

use super::dependencies::{Dependencies, Description};
use super::layout::{EventPlan, NameSource};
use super::records::{u32_at, u64_at};

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

pub(super) fn decode_event(
    plan: &EventPlan,
    deps: &Dependencies,
    record: &[u8],
) -> Result<SpanEvent> {
    let location: &Description = deps.description(u64_at(record, plan.location_offset))?;
    let name = match plan.name {
        NameSource::Location => location.name.clone().unwrap_or_else(|| Arc::from("")),
        NameSource::String(offset) => deps.string(u64_at(record, offset))?.clone(),
    };
    let properties = match plan.properties_offset {
        Some(offset) => deps.property_set(u64_at(record, offset))?.sorted.clone(),
        None => Vec::new(),
    };
    Ok(SpanEvent {
        scope: plan.scope,
        phase: plan.phase,
        ticks: u64_at(record, plan.time_offset) as i64,
        name,
        target: location.target.clone(),
        file: location.file.clone(),
        line: location.line,
        span_id: plan.span_id_offset.map_or(0, |o| u64_at(record, o)),
        parent_span_id: plan.parent_span_id_offset.map_or(0, |o| u64_at(record, o)),
        depth: plan.depth_offset.map_or(0, |o| u32_at(record, o)),
        properties,
    })
}
