//! Thread tracks: per stream, begin/end events nest like a call stack.

use super::timeline::{AssemblyStats, Notes, Slice, ThreadTrack, notes};
use super::{Chain, Event, ThreadData, clip};
use crate::decode::{EventPhase, EventScope};

/// The track of one thread, or `None` when it has no span in the range.
pub fn thread_track(
    thread: &ThreadData,
    tid: i32,
    range: Option<(i64, i64)>,
    stats: &mut AssemblyStats,
) -> Option<ThreadTrack> {
    let mut slices = Vec::new();
    let last_chain = thread.chains.len().saturating_sub(1);
    for (index, chain) in thread.chains.iter().enumerate() {
        pair_chain(chain, index, index == last_chain, &mut slices, stats);
    }
    // Outer spans first: with equal bounds (same-time or clipped spans), the writer keeps
    // this order, so a parent is never drawn inside its child.
    slices.sort_by_key(|(order, _)| *order);
    let slices: Vec<Slice> = slices
        .into_iter()
        .filter_map(|(_, s)| clip_slice(s, range, stats))
        .collect();
    if slices.is_empty() {
        return None;
    }
    stats.thread_spans += slices.len() as u64;
    Some(ThreadTrack {
        tid,
        name: thread.display_name,
        slices,
    })
}

struct Open<'a> {
    begin_ns: i64,
    event: &'a Event,
    order: Order,
}

/// Where a slice goes in its track's list: by chain, then outermost first. Spans begun in the
/// data count up in begin order; spans that began before the data count down as they end,
/// since each one that ends later encloses those that ended before it.
type Order = (usize, i64);

fn same_span(a: &Event, b: &Event) -> bool {
    a.name == b.name && a.line == b.line && a.file == b.file && a.target == b.target
}

fn pair_chain(
    chain: &Chain,
    chain_index: usize,
    is_last: bool,
    slices: &mut Vec<(Order, Slice)>,
    stats: &mut AssemblyStats,
) {
    let mut stack: Vec<Open> = Vec::new();
    let (mut begun, mut clipped) = (0i64, 0i64);
    // Times never go back within a stream: a clock step backwards is pinned to the last time,
    // which keeps the pairs strictly nested.
    let mut now = chain.begin_ns;
    for event in chain
        .events
        .iter()
        .filter(|e| e.scope == EventScope::Thread)
    {
        now = now.max(event.ns);
        match event.phase {
            EventPhase::Begin => {
                begun += 1;
                stack.push(Open {
                    begin_ns: now,
                    event,
                    order: (chain_index, begun),
                });
            }
            EventPhase::End => match stack.iter().rposition(|open| same_span(open.event, event)) {
                Some(position) => {
                    while stack.len() > position + 1 {
                        let inner = stack.pop().expect("above position");
                        stats.closed_with_parent += 1;
                        slices.push((
                            inner.order,
                            make_slice(inner.begin_ns, now, inner.event, notes::CLOSED_WITH_PARENT),
                        ));
                    }
                    let open = stack.pop().expect("at position");
                    slices.push((open.order, make_slice(open.begin_ns, now, open.event, 0)));
                }
                None if stack.is_empty() => {
                    stats.clipped_begin += 1;
                    clipped -= 1;
                    let slice = make_slice(
                        chain.begin_ns.min(now),
                        now,
                        event,
                        notes::BEGAN_BEFORE_DATA,
                    );
                    slices.push(((chain_index, clipped), slice));
                }
                None => stats.unmatched_ends += 1,
            },
        }
    }
    let end = chain.end_ns.max(now);
    let note = if is_last {
        notes::DID_NOT_END
    } else {
        notes::CUT_AT_GAP
    };
    while let Some(open) = stack.pop() {
        if is_last {
            stats.clipped_end += 1;
        } else {
            stats.cut_at_gap += 1;
        }
        slices.push((open.order, make_slice(open.begin_ns, end, open.event, note)));
    }
}

fn make_slice(begin_ns: i64, end_ns: i64, event: &Event, notes: Notes) -> Slice {
    Slice {
        begin_ns,
        end_ns,
        name: event.name,
        target: event.target,
        file: event.file,
        line: event.line,
        properties: event.properties,
        notes,
        detail: None,
    }
}

fn clip_slice(
    mut slice: Slice,
    range: Option<(i64, i64)>,
    stats: &mut AssemblyStats,
) -> Option<Slice> {
    let (begin, end, cut_begin, cut_end) = clip(slice.begin_ns, slice.end_ns, range)?;
    slice.begin_ns = begin;
    slice.end_ns = end;
    if cut_begin {
        stats.clipped_begin += 1;
        slice.notes |= notes::BEFORE_RANGE;
    }
    if cut_end {
        stats.clipped_end += 1;
        slice.notes |= notes::AFTER_RANGE;
    }
    Some(slice)
}
