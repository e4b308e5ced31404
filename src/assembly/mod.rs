//! Span assembly: paired, clipped, laid-out spans of one process.
//!
//! Thread spans pair as a call stack per stream, across blocks and partitions, and are cut
//! only where the stream itself has a gap. Async spans pair by `span_id` across all threads,
//! then are laid out on as few strictly nested tracks as a deterministic greedy rule allows.
//! Exports feed one thread at a time ([`thread_track`]) and then the async events
//! ([`async_tracks`]); [`assemble`] does the whole process at once.

mod async_layout;
mod threads;
pub mod timeline;

use crate::decode::{EventPhase, EventScope};
use crate::symbols::Sym;
pub use async_layout::async_tracks;
pub use threads::thread_track;
use timeline::Notes;
pub use timeline::{AssemblyStats, Timeline};

/// A span event with its time in Unix nanoseconds and its strings interned (32 bytes: a large
/// process has tens of millions).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event {
    pub ns: i64,
    pub name: Sym,
    pub target: Sym,
    pub file: Sym,
    pub line: u32,
    /// JSON of a tagged end's properties, or the empty string.
    pub properties: Sym,
    pub scope: EventScope,
    pub phase: EventPhase,
}

/// What only async events carry, kept beside the events: thread events, most of the data,
/// have none.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AsyncIds {
    pub span_id: u64,
    pub parent_span_id: u64,
    pub depth: u32,
}

/// A run of blocks of one stream with no gap in `object_offset`: its bounds, and the range
/// of its events in the thread's event list.
#[derive(Debug, Clone, PartialEq)]
pub struct Chain {
    pub begin_ns: i64,
    pub end_ns: i64,
    pub events: std::ops::Range<usize>,
}

/// One thread stream's data, in stream order.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadData {
    /// Shown on the track and in async span annotations.
    pub display_name: Sym,
    pub events: Vec<Event>,
    /// The async ids of `events`, index by index; may stop short where only thread events
    /// follow (empty when there is no async event).
    pub async_ids: Vec<AsyncIds>,
    pub chains: Vec<Chain>,
}

/// The async events of a process: events, their places in stream order, and the thread (a
/// display name) that wrote each, found from its place.
pub struct AsyncEvents<'a> {
    pub events: Vec<Event>,
    /// Index by index with `events`.
    pub ids: Vec<AsyncIds>,
    pub orders: Vec<u64>,
    pub thread_of: &'a dyn Fn(u64) -> Sym,
}

/// Which spans to assemble, over which time range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AssemblyOptions {
    pub thread_spans: bool,
    pub async_spans: bool,
    /// Keep only spans overlapping `[begin, end]` (ns), clipped to it.
    pub range: Option<(i64, i64)>,
}

/// The first tid of thread tracks (pid is 1).
pub const FIRST_TID: i32 = 2;

/// Builds the timeline of a process from its threads' data (in a stable order); async events
/// are taken from the same chains.
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
        for thread in threads {
            let tid = FIRST_TID + timeline.threads.len() as i32;
            timeline
                .threads
                .extend(thread_track(thread, tid, options.range, &mut stats));
        }
    }
    if options.async_spans {
        let (mut events, mut ids, mut threads_of_events) = (Vec::new(), Vec::new(), Vec::new());
        let (mut begin, mut end) = (i64::MAX, i64::MIN);
        for thread in threads {
            for chain in &thread.chains {
                begin = begin.min(chain.begin_ns);
                end = end.max(chain.end_ns);
                for i in chain.events.clone() {
                    let event = thread.events[i];
                    if event.scope == EventScope::Async {
                        events.push(event);
                        ids.push(thread.async_ids.get(i).copied().unwrap_or_default());
                        threads_of_events.push(thread.display_name);
                    }
                }
            }
        }
        let orders = (0..events.len() as u64).collect();
        let thread_of = |order: u64| threads_of_events[order as usize];
        let input = AsyncEvents {
            events,
            ids,
            orders,
            thread_of: &thread_of,
        };
        timeline.async_tracks = async_tracks(input, (begin, end), options.range, &mut stats);
    }
    timeline.stats = stats;
    timeline
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
    if *end < from || *begin > to {
        return false;
    }
    if *begin < from {
        *begin = from;
        stats.clipped_begin += 1;
        *slice_notes |= timeline::notes::BEFORE_RANGE;
    }
    if *end > to {
        *end = to;
        stats.clipped_end += 1;
        *slice_notes |= timeline::notes::AFTER_RANGE;
    }
    true
}

#[cfg(test)]
mod tests;
