//! What assembly produces and the trace writer draws: tracks of strictly nested slices.

use std::sync::Arc;

/// A key/value shown in the UI's details panel.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    pub name: Arc<str>,
    pub value: AnnotationValue,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AnnotationValue {
    Text(Arc<str>),
    Int(i64),
    Uint(u64),
}

impl Annotation {
    pub fn text(name: &str, value: impl Into<Arc<str>>) -> Self {
        Self {
            name: Arc::from(name),
            value: AnnotationValue::Text(value.into()),
        }
    }
    pub fn uint(name: &str, value: u64) -> Self {
        Self {
            name: Arc::from(name),
            value: AnnotationValue::Uint(value),
        }
    }
}

/// One span as drawn: `begin_ns <= end_ns`, nested strictly within its track.
#[derive(Debug, Clone, PartialEq)]
pub struct Slice {
    pub begin_ns: i64,
    pub end_ns: i64,
    pub name: Arc<str>,
    /// The span's target, shown as its category.
    pub target: Arc<str>,
    pub file: Arc<str>,
    pub line: u32,
    pub annotations: Vec<Annotation>,
    /// Flow arrows that start at this slice (to children drawn on other tracks).
    pub flows_out: Vec<u64>,
    /// The flow arrow that ends at this slice (from its parent on another track).
    pub flow_in: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ThreadTrack {
    /// Synthetic, positive, unique in the trace.
    pub tid: i32,
    pub name: String,
    pub slices: Vec<Slice>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AsyncTrack {
    pub name: String,
    pub slices: Vec<Slice>,
}

/// Everything one trace shows of one process.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Timeline {
    pub pid: i32,
    pub process_name: String,
    pub threads: Vec<ThreadTrack>,
    pub async_tracks: Vec<AsyncTrack>,
    pub stats: AssemblyStats,
}

/// Counts of what assembly did, for the summary.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct AssemblyStats {
    pub thread_spans: u64,
    pub async_spans: u64,
    /// Spans whose begin lies before the data or the range (drawn from its start).
    pub clipped_begin: u64,
    /// Thread spans whose end lies after the data or the range (drawn to its end).
    pub clipped_end: u64,
    /// Async spans that never ended (futures dropped or still running), drawn to the data end.
    pub unfinished_async: u64,
    /// Thread spans closed at a gap in the stream (missing block).
    pub cut_at_gap: u64,
    /// Thread spans without an end of their own, closed when an enclosing span ended.
    pub closed_with_parent: u64,
    /// Ends that matched no open span and were dropped.
    pub unmatched_ends: u64,
    /// Async span ids that began more than once.
    pub duplicate_span_ids: u64,
}
