//! Async tracks: spans paired by `span_id` across threads, laid out on strictly nested lanes.
//!
//! Rule (deterministic, greedy): spans are taken by begin time (longer first at ties, then
//! span id). A span goes on its parent's lane when the parent is the innermost open slice
//! there and the span ends within it; otherwise on the first lane with nothing open; otherwise
//! on a new lane. A span not on its parent's lane gets a flow arrow from the parent.

use std::collections::HashMap as StdHashMap;

type HashMap<K, V> = StdHashMap<K, V, foldhash::fast::RandomState>;

use super::timeline::{AssemblyStats, AsyncDetail, AsyncTrack, Slice, notes};
use super::{AsyncEvents, Event, clip_to_range};
use crate::decode::EventPhase;
use crate::symbols::Sym;

struct AsyncSpan {
    begin_ns: i64,
    end_ns: i64,
    event: Event,
    began_on: Option<Sym>,
    ended_on: Option<Sym>,
    notes: u8,
}

/// Lays out the async spans of a process; `data` is the `[begin, end]` of all its blocks.
pub fn async_tracks(
    events: AsyncEvents,
    data: (i64, i64),
    range: Option<(i64, i64)>,
    stats: &mut AssemblyStats,
) -> Vec<AsyncTrack> {
    let mut spans: Vec<AsyncSpan> = pair_spans(events, data, stats)
        .into_iter()
        .filter_map(|mut s| {
            clip_to_range((&mut s.begin_ns, &mut s.end_ns, &mut s.notes), range, stats).then_some(s)
        })
        .collect();
    // Last first: layout pops them, so the list shrinks as the slices grow. In place, no
    // scratch (it would be half the list).
    spans.sort_unstable_by(|a, b| {
        b.begin_ns
            .cmp(&a.begin_ns)
            .then(a.end_ns.cmp(&b.end_ns))
            .then(b.event.span_id.cmp(&a.event.span_id))
            .then(b.event.name.cmp(&a.event.name))
            .then(b.event.ns.cmp(&a.event.ns))
    });
    stats.async_spans += spans.len() as u64;
    layout(spans)
}

/// Pairs begins and ends by span id, in time order over all threads.
/// The events are consumed: only the spans remain (a third of the memory).
fn pair_spans(
    input: AsyncEvents,
    (data_begin, data_end): (i64, i64),
    stats: &mut AssemblyStats,
) -> Vec<AsyncSpan> {
    let AsyncEvents {
        events,
        orders,
        thread_of,
    } = input;
    // Pairing is per span id, so only a span's own begin-before-end matters: at equal times
    // begins go first (a zero-length span stays whole), then stream order.
    let mut sequence: Vec<u32> = (0..events.len() as u32).collect();
    sequence.sort_by_key(|&i| {
        let e = &events[i as usize];
        (e.ns, e.phase == EventPhase::End, orders[i as usize])
    });
    let mut open: HashMap<u64, AsyncSpan> = HashMap::default();
    // A span id that begins again while open (a duplicate id): the earlier spans wait here,
    // innermost last. An end closes the latest begin of its id, then the one before, so the
    // duplicates nest instead of one running to the data end and another from its start.
    let mut shadowed: HashMap<u64, Vec<AsyncSpan>> = HashMap::default();
    let mut done: Vec<AsyncSpan> = Vec::with_capacity(events.len() / 2 + 1);
    for i in sequence {
        let event = events[i as usize];
        let thread = thread_of(orders[i as usize]);
        match event.phase {
            EventPhase::Begin => {
                let span = AsyncSpan {
                    begin_ns: event.ns,
                    end_ns: event.ns,
                    event,
                    began_on: Some(thread),
                    ended_on: None,
                    notes: notes::UNFINISHED,
                };
                if let Some(previous) = open.insert(event.span_id, span) {
                    stats.duplicate_span_ids += 1;
                    shadowed.entry(event.span_id).or_default().push(previous);
                }
            }
            EventPhase::End => match open.remove(&event.span_id) {
                Some(mut span) => {
                    span.end_ns = event.ns;
                    span.ended_on = Some(thread);
                    span.notes = 0;
                    if event.properties != 0 {
                        span.event.properties = event.properties;
                    }
                    done.push(span);
                    if let Some(earlier) = shadowed.get_mut(&event.span_id) {
                        if let Some(previous) = earlier.pop() {
                            open.insert(event.span_id, previous);
                        }
                        if earlier.is_empty() {
                            shadowed.remove(&event.span_id);
                        }
                    }
                }
                None => {
                    stats.clipped_begin += 1;
                    let begin_ns = data_begin.min(event.ns);
                    done.push(AsyncSpan {
                        begin_ns,
                        end_ns: event.ns,
                        event,
                        began_on: None,
                        ended_on: Some(thread),
                        notes: notes::BEGAN_BEFORE_DATA,
                    });
                }
            },
        }
    }
    // Whatever the maps' order, one id's spans come in a fixed order (the sort tells ids apart).
    done.extend(open.into_values());
    done.extend(shadowed.into_values().flatten());
    for span in done.iter_mut().filter(|s| s.notes & notes::UNFINISHED != 0) {
        stats.unfinished_async += 1;
        span.end_ns = data_end.max(span.begin_ns);
    }
    done
}

struct Lane {
    /// Open slices: (end_ns, index into the lane's slices).
    open: Vec<(i64, usize)>,
    slices: Vec<Slice>,
}

/// `spans`: in reverse layout order.
fn layout(mut spans: Vec<AsyncSpan>) -> Vec<AsyncTrack> {
    let mut lanes: Vec<Lane> = Vec::new();
    // Lanes with nothing open, by index: the first free lane is the smallest.
    let mut free: std::collections::BTreeSet<usize> = std::collections::BTreeSet::new();
    // Lanes with something open, by the end of their innermost slice: the next to free up.
    let mut busy: std::collections::BinaryHeap<std::cmp::Reverse<(i64, usize)>> =
        std::collections::BinaryHeap::new();
    // span id → (lane, slice index) of the most recent span placed with that id.
    let mut placed: HashMap<u64, (u32, u32)> = HashMap::default();
    let mut next_flow: u64 = 1;
    let mut taken = 0usize;
    while let Some(span) = spans.pop() {
        // Give back what the spans taken so far held (a shrinking reallocation is cheap).
        taken += 1;
        if taken.is_multiple_of(1 << 16) {
            spans.shrink_to_fit();
        }
        // Close what ended by this begin, lane by lane, in order of the innermost ends.
        while let Some(&std::cmp::Reverse((end, lane_index))) = busy.peek() {
            if end > span.begin_ns {
                break;
            }
            busy.pop();
            let lane = &mut lanes[lane_index];
            if lane.open.last().map(|&(e, _)| e) != Some(end) {
                continue; // stale entry: the lane changed since
            }
            while lane.open.last().is_some_and(|&(e, _)| e <= span.begin_ns) {
                lane.open.pop();
            }
            match lane.open.last() {
                Some(&(e, _)) => busy.push(std::cmp::Reverse((e, lane_index))),
                None => {
                    free.insert(lane_index);
                }
            }
        }
        let parent = (span.event.parent_span_id != 0)
            .then(|| placed.get(&span.event.parent_span_id))
            .flatten()
            .map(|&(lane, slice)| (lane as usize, slice as usize));
        let on_parent_lane = parent.filter(|&(lane, slice)| {
            lanes[lane]
                .open
                .last()
                .is_some_and(|&(end, top)| top == slice && end >= span.end_ns)
        });
        let lane_index = match on_parent_lane {
            Some((lane, _)) => lane,
            None => match free.pop_first() {
                Some(lane) => lane,
                None => {
                    lanes.push(Lane {
                        open: Vec::new(),
                        slices: Vec::new(),
                    });
                    lanes.len() - 1
                }
            },
        };
        let mut slice = async_slice(&span);
        if let (Some((parent_lane, parent_slice)), None) = (parent, on_parent_lane) {
            let flow = next_flow;
            next_flow += 1;
            if let Some(detail) = lanes[parent_lane].slices[parent_slice].detail.as_mut() {
                detail.flows_out.push(flow);
            }
            if let Some(detail) = slice.detail.as_mut() {
                detail.flow_in = Some(flow);
            }
        }
        let lane = &mut lanes[lane_index];
        lane.slices.push(slice);
        lane.open.push((span.end_ns, lane.slices.len() - 1));
        busy.push(std::cmp::Reverse((span.end_ns, lane_index)));
        let at = (lane_index as u32, lane.slices.len() as u32 - 1);
        placed.insert(span.event.span_id, at);
    }
    lanes
        .into_iter()
        .enumerate()
        .map(|(i, lane)| AsyncTrack {
            name: format!("async #{}", i + 1),
            slices: lane.slices,
        })
        .collect()
}

fn async_slice(span: &AsyncSpan) -> Slice {
    let e = &span.event;
    Slice {
        begin_ns: span.begin_ns,
        end_ns: span.end_ns,
        name: e.name,
        target: e.target,
        file: e.file,
        line: e.line,
        properties: e.properties,
        notes: span.notes,
        detail: Some(Box::new(AsyncDetail {
            span_id: e.span_id,
            parent_span_id: e.parent_span_id,
            depth: e.depth,
            began_on: span.began_on,
            ended_on: span.ended_on,
            flows_out: Vec::new(),
            flow_in: None,
        })),
    }
}
