//! Thread tracks: per stream, begin/end events nest like a call stack.

use super::timeline::{AssemblyStats, Notes, Slice, ThreadTrack, notes};
use super::{Chain, Event, ThreadData, clip_to_range};
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
    Some(ThreadTrack {
        tid,
        name: thread.display_name,
        slices,
    })
}

struct Open<'a> {
    begin_ns: i64,
    event: &'a Event,
    /// Where its slice goes in the chain's list.
    slot: usize,
}

fn same_span(a: &Event, b: &Event) -> bool {
    a.name == b.name && a.line == b.line && a.file == b.file && a.target == b.target
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
    let mut stack: Vec<Open> = Vec::new();
    let mut began_before: Vec<Slice> = Vec::new();
    let mut slots: Vec<Option<Slice>> = Vec::new();
    // Times never go back within a stream: a clock step backwards is pinned to the last time,
    // which keeps the pairs strictly nested.
    let mut now = chain.begin_ns;
    for event in events.iter().filter(|e| e.scope == EventScope::Thread) {
        now = now.max(event.ns);
        match event.phase {
            EventPhase::Begin => {
                slots.push(None);
                stack.push(Open {
                    begin_ns: now,
                    event,
                    slot: slots.len() - 1,
                });
            }
            EventPhase::End => match stack.iter().rposition(|open| same_span(open.event, event)) {
                Some(position) => {
                    while stack.len() > position + 1 {
                        let inner = stack.pop().expect("above position");
                        stats.closed_with_parent += 1;
                        slots[inner.slot] = Some(make_slice(
                            inner.begin_ns,
                            now,
                            inner.event,
                            notes::CLOSED_WITH_PARENT,
                        ));
                    }
                    let open = stack.pop().expect("at position");
                    slots[open.slot] = Some(make_slice(open.begin_ns, now, open.event, 0));
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
        slots[open.slot] = Some(make_slice(open.begin_ns, end, open.event, note));
    }
    out.extend(began_before.into_iter().rev());
    out.extend(
        slots
            .into_iter()
            .map(|s| s.expect("every begun span is closed")),
    );
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
