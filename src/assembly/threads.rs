//! Thread tracks: per stream, begin/end events nest like a call stack.

use super::{AssemblyStats, Chain, ThreadData, clip_to_range};
use crate::events::{Event, EventPhase, EventScope};
use crate::tracks::{Notes, Place, Slice, Track, notes};

/// The track of one thread, or `None` when it has no span in the range.
pub fn thread_track(
    thread: &ThreadData,
    tid: i32,
    range: Option<(i64, i64)>,
    stats: &mut AssemblyStats,
) -> Option<Track> {
    // About one slice per two events: no doubling past what is needed.
    let mut slices = Vec::with_capacity(thread.events.len() / 2 + 1);
    let last_chain = thread.chains.len().saturating_sub(1);
    for (index, chain) in thread.chains.iter().enumerate() {
        pair_chain(
            chain,
            &thread.events[chain.events.clone()],
            index == last_chain,
            &mut slices,
            stats,
        );
    }
    slices.retain_mut(|s| {
        clip_to_range((&mut s.begin_ns, &mut s.end_ns, &mut s.notes), range, stats)
    });
    if slices.is_empty() {
        return None;
    }
    stats.thread_spans += slices.len() as u64;
    Some(Track {
        place: Place::Thread { tid },
        name: thread.name.clone(),
        slices,
        ..Default::default()
    })
}

fn same_span(slice: &Slice, event: &Event) -> bool {
    slice.name == event.name
        && slice.line == event.line
        && slice.file == event.file
        && slice.target == event.target
}

/// Pairs one chain's events and appends its slices outermost first: with equal bounds
/// (same-time or clipped spans) the writer keeps this order, so a parent is never drawn
/// inside its child. Spans that began before the data come first, the last to end (the
/// outermost) leading; then spans begun in the data, in begin order.
fn pair_chain(
    chain: &Chain,
    events: &[Event],
    is_last: bool,
    out: &mut Vec<Slice>,
    stats: &mut AssemblyStats,
) {
    let first = out.len();
    // Spans begun and not yet ended: their slices are in place, their ends still to be set.
    let mut stack: Vec<usize> = Vec::new();
    let mut began_before: Vec<Slice> = Vec::new();
    // Times never go back within a stream: a clock step backwards is pinned to the last time,
    // which keeps the pairs strictly nested.
    let mut now = chain.begin_ns;
    for event in events.iter().filter(|e| e.scope == EventScope::Thread) {
        now = now.max(event.ns);
        match event.phase {
            EventPhase::Begin => {
                // In place at once, in begin order; its end is set when it closes.
                out.push(make_slice(now, now, event, 0));
                stack.push(out.len() - 1);
            }
            EventPhase::End => match stack.iter().rposition(|&slot| same_span(&out[slot], event)) {
                Some(position) => {
                    while stack.len() > position + 1 {
                        let inner = stack.pop().expect("above position");
                        stats.closed_with_parent += 1;
                        close(&mut out[inner], now, notes::CLOSED_WITH_PARENT);
                    }
                    let open = stack.pop().expect("at position");
                    close(&mut out[open], now, 0);
                    // A tagged end carries the span's properties (a begin carries none).
                    if !event.properties.is_none() {
                        out[open].properties = event.properties;
                    }
                }
                None if stack.is_empty() => {
                    stats.clipped_begin += 1;
                    began_before.push(make_slice(
                        chain.begin_ns.min(now),
                        now,
                        event,
                        notes::BEGAN_BEFORE_DATA,
                    ));
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
        close(&mut out[open], end, note);
    }
    if !began_before.is_empty() {
        out.splice(first..first, began_before.into_iter().rev());
    }
}

fn close(slice: &mut Slice, end_ns: i64, notes: Notes) {
    slice.end_ns = end_ns;
    slice.notes = notes;
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
