//! What assembly produces and the trace writer draws: tracks of strictly nested slices.

use crate::symbols::Sym;

/// What happened to a slice's bounds, shown as an argument in the UI (bit flags).
pub type Notes = u8;

pub mod notes {
    use super::Notes;
    pub const BEGAN_BEFORE_DATA: Notes = 1;
    pub const CLOSED_WITH_PARENT: Notes = 1 << 1;
    pub const DID_NOT_END: Notes = 1 << 2;
    pub const CUT_AT_GAP: Notes = 1 << 3;
    pub const UNFINISHED: Notes = 1 << 4;
    pub const BEFORE_RANGE: Notes = 1 << 5;
    pub const AFTER_RANGE: Notes = 1 << 6;

    /// (flag, argument name, argument text), in the order they are shown.
    pub const ALL: [(Notes, &str, &str); 7] = [
        (
            UNFINISHED,
            "unfinished",
            "never ended (future dropped or still running): drawn to the end of the data",
        ),
        (
            BEGAN_BEFORE_DATA,
            "clipped",
            "began before the data: drawn from the start of the data",
        ),
        (
            CLOSED_WITH_PARENT,
            "clipped",
            "no end of its own: closed with its parent",
        ),
        (
            DID_NOT_END,
            "clipped",
            "did not end in the data: drawn to the end of the data",
        ),
        (
            CUT_AT_GAP,
            "clipped",
            "cut at a gap in the stream (missing block)",
        ),
        (
            BEFORE_RANGE,
            "clipped",
            "began before the range: drawn from its start",
        ),
        (
            AFTER_RANGE,
            "clipped",
            "ended after the range: drawn to its end",
        ),
    ];
}

/// What only async spans have.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AsyncDetail {
    pub span_id: u64,
    pub parent_span_id: u64,
    pub depth: u32,
    /// Display names of the threads that polled its begin and end.
    pub began_on: Option<Sym>,
    pub ended_on: Option<Sym>,
    /// Flow arrows that start at this slice (to children drawn on other tracks).
    pub flows_out: Vec<u64>,
    /// The flow arrow that ends at this slice (from its parent on another track).
    pub flow_in: Option<u64>,
}

/// One span as drawn: `begin_ns <= end_ns`, nested strictly within its track.
#[derive(Debug, Clone, PartialEq)]
pub struct Slice {
    pub begin_ns: i64,
    pub end_ns: i64,
    pub name: Sym,
    /// The span's target, shown as its category.
    pub target: Sym,
    pub file: Sym,
    pub line: u32,
    /// JSON of a tagged end's properties (`[["key","value"],...]`), or the empty string.
    pub properties: Sym,
    pub notes: Notes,
    pub detail: Option<Box<AsyncDetail>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ThreadTrack {
    /// Synthetic, positive, unique in the trace.
    pub tid: i32,
    pub name: Sym,
    pub slices: Vec<Slice>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AsyncTrack {
    pub name: String,
    pub slices: Vec<Slice>,
}

/// Everything one trace shows of one process (tests build it whole; exports stream it).
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
