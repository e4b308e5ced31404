//! Span assembly: the events of a process, paired, clipped and laid out as tracks.
//!
//! Thread spans pair as a call stack per stream, across blocks and partitions, and are cut
//! only where the stream itself has a gap. Async spans pair by `span_id` across all threads,
//! then are laid out on as few strictly nested tracks as a deterministic greedy rule allows.
//! [`ProcessAssembler`] is the one path from events to tracks: it reads each view instance
//! from an [`EventSource`] (the partition cache in an export, direct decoding in the tests'
//! reference) and yields one thread track at a time, then the async lanes.

mod async_layout;
pub mod logs;
mod metrics;
mod process;
mod threads;

use crate::events::{AsyncIds, Event, EventOrder};
use crate::symbols::Sym;
use crate::tracks::{Notes, notes};
pub use async_layout::{AsyncPairing, async_tracks};
pub use process::{EventSource, ProcessAssembler, ProcessData, ThreadPart, process_heading};
pub use threads::{PieceSizes, thread_track};

/// A run of blocks of one stream with no gap in `object_offset`: its bounds, and the range
/// of its events in the thread's event list.
#[derive(Debug, Clone, PartialEq)]
pub struct Chain {
    pub begin_ns: i64,
    pub end_ns: i64,
    pub events: std::ops::Range<usize>,
}

/// One thread stream's events, in stream order.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadData {
    /// The track's name.
    pub name: String,
    pub events: Vec<Event>,
    pub chains: Vec<Chain>,
}

/// The async events of a process, in any order: events, their places in stream order, and
/// the thread (a display name) that wrote each, found from its place.
pub struct AsyncEvents<'a> {
    pub events: Vec<Event>,
    /// Index by index with `events`.
    pub ids: Vec<AsyncIds>,
    pub orders: Vec<EventOrder>,
    pub thread_of: &'a dyn Fn(EventOrder) -> Sym,
}

/// The first tid of thread tracks in a trace of one process (its pid is 1); with more
/// processes, tids start above the last pid.
pub const FIRST_TID: i32 = 2;

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
    /// Log entries shown, by level (index: Micromegas's level, 0 and 7+ for unknown ones).
    #[serde(skip)]
    pub log_levels: [u64; 8],
    /// Metric series (counter tracks) and their values shown.
    #[serde(skip)]
    pub metric_series: u64,
    #[serde(skip)]
    pub metric_samples: u64,
}

impl AssemblyStats {
    /// Adds the counts of another process's assembly.
    pub fn add(&mut self, other: &Self) {
        let Self {
            thread_spans,
            async_spans,
            clipped_begin,
            clipped_end,
            unfinished_async,
            cut_at_gap,
            closed_with_parent,
            unmatched_ends,
            duplicate_span_ids,
            log_levels,
            metric_series,
            metric_samples,
        } = other;
        self.thread_spans += thread_spans;
        self.async_spans += async_spans;
        self.clipped_begin += clipped_begin;
        self.clipped_end += clipped_end;
        self.unfinished_async += unfinished_async;
        self.cut_at_gap += cut_at_gap;
        self.closed_with_parent += closed_with_parent;
        self.unmatched_ends += unmatched_ends;
        self.duplicate_span_ids += duplicate_span_ids;
        for (sum, n) in self.log_levels.iter_mut().zip(log_levels) {
            *sum += n;
        }
        self.metric_series += metric_series;
        self.metric_samples += metric_samples;
    }
}

/// Whether a slice from `begin` to `end` shows in the range `(from, to)` (touching it is
/// enough: it shows clipped to an instant at the edge).
fn reaches((begin, end): (i64, i64), (from, to): (i64, i64)) -> bool {
    end >= from && begin <= to
}

/// Clips a span's `[begin, end]` to the range, marking and counting each side cut; returns
/// whether the span overlaps the range at all.
fn clip_to_range(
    bounds: (&mut i64, &mut i64, &mut Notes),
    range: Option<(i64, i64)>,
    stats: &mut AssemblyStats,
) -> bool {
    let (begin, end, slice_notes) = bounds;
    let Some((from, to)) = range else { return true };
    if !reaches((*begin, *end), (from, to)) {
        return false;
    }
    if *begin < from {
        *begin = from;
        stats.clipped_begin += 1;
        *slice_notes |= notes::BEFORE_RANGE;
    }
    if *end > to {
        *end = to;
        stats.clipped_end += 1;
        *slice_notes |= notes::AFTER_RANGE;
    }
    true
}

#[cfg(test)]
mod tests;
