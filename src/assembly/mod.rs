//! Span assembly: paired, clipped, laid-out spans of one process as a [`Timeline`].
//!
//! Thread spans pair as a call stack per stream, across blocks and partitions, and are cut
//! only where the stream itself has a gap. Async spans pair by `span_id` across all threads,
//! then are laid out on as few strictly nested tracks as a deterministic greedy rule allows.

mod async_layout;
mod threads;
pub mod timeline;

use std::sync::Arc;

use crate::decode::SpanEvent;
pub use timeline::{AssemblyStats, Timeline};

/// A span event with its time in Unix nanoseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedEvent {
    pub ns: i64,
    pub event: SpanEvent,
}

/// A run of blocks of one stream with no gap in `object_offset`.
#[derive(Debug, Clone, PartialEq)]
pub struct Chain {
    pub begin_ns: i64,
    pub end_ns: i64,
    pub events: Vec<TimedEvent>,
}

/// One thread stream's data, in stream order.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadData {
    /// Shown on the track and in async span annotations.
    pub display_name: Arc<str>,
    pub chains: Vec<Chain>,
}

/// Which spans to assemble, over which time range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AssemblyOptions {
    pub thread_spans: bool,
    pub async_spans: bool,
    /// Keep only spans overlapping `[begin, end]` (ns), clipped to it.
    pub range: Option<(i64, i64)>,
}

/// Builds the timeline of a process from its threads' data (in a stable order).
pub fn assemble(
    process_name: String,
    threads: &[ThreadData],
    options: &AssemblyOptions,
) -> Timeline {
    let mut stats = AssemblyStats::default();
    let mut timeline = Timeline {
        pid: 1,
        process_name,
        ..Default::default()
    };
    if options.thread_spans {
        timeline.threads = threads::thread_tracks(threads, options.range, &mut stats);
    }
    if options.async_spans {
        timeline.async_tracks = async_layout::async_tracks(threads, options.range, &mut stats);
    }
    timeline.stats = stats;
    timeline
}

/// Clips `[begin, end]` to the range; `None` when they do not overlap.
/// Returns the clipped bounds and whether each side was clipped.
fn clip(begin: i64, end: i64, range: Option<(i64, i64)>) -> Option<(i64, i64, bool, bool)> {
    match range {
        None => Some((begin, end, false, false)),
        Some((from, to)) => {
            if end < from || begin > to {
                return None;
            }
            Some((begin.max(from), end.min(to), begin < from, end > to))
        }
    }
}

#[cfg(test)]
mod tests;
