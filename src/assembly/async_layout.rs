//! Async tracks: spans paired by `span_id` across threads, laid out on strictly nested lanes.
//!
//! Rule (deterministic, greedy): spans are taken by begin time (longer first at ties, then
//! span id). A span goes on its parent's lane when the parent is the innermost open slice
//! there and the span ends within it; otherwise on the first lane with nothing open; otherwise
//! on a new lane. A span not on its parent's lane gets a flow arrow from the parent.

use std::collections::HashMap;
use std::sync::Arc;

use super::timeline::{Annotation, AssemblyStats, AsyncTrack, Slice};
use super::{ThreadData, clip};
use crate::decode::{EventPhase, EventScope, SpanEvent};

struct AsyncSpan<'a> {
    begin_ns: i64,
    end_ns: i64,
    event: &'a SpanEvent,
    began_on: Option<&'a Arc<str>>,
    ended_on: Option<&'a Arc<str>>,
    unfinished: bool,
    clipped_begin: bool,
}

pub fn async_tracks(
    threads: &[ThreadData],
    range: Option<(i64, i64)>,
    stats: &mut AssemblyStats,
) -> Vec<AsyncTrack> {
    let spans = pair_spans(threads, stats);
    let mut spans: Vec<(AsyncSpan, bool, bool)> = spans
        .into_iter()
        .filter_map(|mut s| {
            let (begin, end, cut_begin, cut_end) = clip(s.begin_ns, s.end_ns, range)?;
            s.begin_ns = begin;
            s.end_ns = end;
            Some((s, cut_begin, cut_end))
        })
        .collect();
    spans.sort_by(|(a, ..), (b, ..)| {
        a.begin_ns
            .cmp(&b.begin_ns)
            .then(b.end_ns.cmp(&a.end_ns))
            .then(a.event.span_id.cmp(&b.event.span_id))
            .then(a.event.name.cmp(&b.event.name))
    });
    stats.async_spans += spans.len() as u64;
    layout(spans, stats)
}

/// Pairs begins and ends by span id, in time order over all threads.
fn pair_spans<'a>(threads: &'a [ThreadData], stats: &mut AssemblyStats) -> Vec<AsyncSpan<'a>> {
    let mut events: Vec<(i64, usize, usize, &'a SpanEvent)> = Vec::new();
    let (mut data_begin, mut data_end) = (i64::MAX, i64::MIN);
    for (thread_index, thread) in threads.iter().enumerate() {
        for chain in &thread.chains {
            data_begin = data_begin.min(chain.begin_ns);
            data_end = data_end.max(chain.end_ns);
            for e in chain
                .events
                .iter()
                .filter(|e| e.event.scope == EventScope::Async)
            {
                events.push((e.ns, thread_index, events.len(), &e.event));
            }
        }
    }
    // Pairing is per span id, so only a span's own begin-before-end matters: at equal times
    // begins go first (a zero-length span stays whole), then thread and stream order.
    events.sort_by_key(|&(ns, thread, seq, e)| (ns, e.phase == EventPhase::End, thread, seq));
    let mut open: HashMap<u64, AsyncSpan<'a>> = HashMap::new();
    let mut done: Vec<AsyncSpan<'a>> = Vec::new();
    for (ns, thread, _, event) in events {
        let thread_name = Some(&threads[thread].display_name);
        match event.phase {
            EventPhase::Begin => {
                let span = AsyncSpan {
                    begin_ns: ns,
                    end_ns: ns,
                    event,
                    began_on: thread_name,
                    ended_on: None,
                    unfinished: true,
                    clipped_begin: false,
                };
                if let Some(previous) = open.insert(event.span_id, span) {
                    stats.duplicate_span_ids += 1;
                    done.push(previous);
                }
            }
            EventPhase::End => match open.remove(&event.span_id) {
                Some(mut span) => {
                    span.end_ns = ns;
                    span.ended_on = thread_name;
                    span.unfinished = false;
                    done.push(span);
                }
                None => {
                    stats.clipped_begin += 1;
                    done.push(AsyncSpan {
                        begin_ns: data_begin.min(ns),
                        end_ns: ns,
                        event,
                        began_on: None,
                        ended_on: thread_name,
                        unfinished: false,
                        clipped_begin: true,
                    });
                }
            },
        }
    }
    done.extend(open.into_values());
    for span in done.iter_mut().filter(|s| s.unfinished) {
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

fn layout(spans: Vec<(AsyncSpan, bool, bool)>, stats: &mut AssemblyStats) -> Vec<AsyncTrack> {
    let mut lanes: Vec<Lane> = Vec::new();
    // span id → (lane, slice index) of the most recent span placed with that id.
    let mut placed: HashMap<u64, (usize, usize)> = HashMap::new();
    let mut next_flow: u64 = 1;
    for (span, cut_begin, cut_end) in spans {
        for lane in lanes.iter_mut() {
            while lane
                .open
                .last()
                .is_some_and(|&(end, _)| end <= span.begin_ns)
            {
                lane.open.pop();
            }
        }
        let parent = (span.event.parent_span_id != 0)
            .then(|| placed.get(&span.event.parent_span_id).copied())
            .flatten();
        let on_parent_lane = parent.filter(|&(lane, slice)| {
            lanes[lane]
                .open
                .last()
                .is_some_and(|&(end, top)| top == slice && end >= span.end_ns)
        });
        let lane_index = match on_parent_lane {
            Some((lane, _)) => lane,
            None => match lanes.iter().position(|l| l.open.is_empty()) {
                Some(free) => free,
                None => {
                    lanes.push(Lane {
                        open: Vec::new(),
                        slices: Vec::new(),
                    });
                    lanes.len() - 1
                }
            },
        };
        let mut slice = async_slice(&span, cut_begin, cut_end, stats);
        if let (Some((parent_lane, parent_slice)), None) = (parent, on_parent_lane) {
            let flow = next_flow;
            next_flow += 1;
            lanes[parent_lane].slices[parent_slice].flows_out.push(flow);
            slice.flow_in = Some(flow);
        }
        let lane = &mut lanes[lane_index];
        lane.slices.push(slice);
        lane.open.push((span.end_ns, lane.slices.len() - 1));
        placed.insert(span.event.span_id, (lane_index, lane.slices.len() - 1));
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

fn async_slice(
    span: &AsyncSpan,
    cut_begin: bool,
    cut_end: bool,
    stats: &mut AssemblyStats,
) -> Slice {
    let e = span.event;
    let mut annotations = vec![
        Annotation::uint("span_id", e.span_id),
        Annotation::uint("parent_span_id", e.parent_span_id),
        Annotation::uint("depth", e.depth as u64),
    ];
    if let Some(thread) = span.began_on {
        annotations.push(Annotation::text("began on", thread.clone()));
    }
    if let Some(thread) = span.ended_on {
        annotations.push(Annotation::text("ended on", thread.clone()));
    }
    if span.unfinished {
        annotations.push(Annotation::text(
            "unfinished",
            "never ended (future dropped or still running): drawn to the end of the data",
        ));
    }
    if span.clipped_begin {
        annotations.push(Annotation::text(
            "clipped",
            "began before the data: drawn from the start of the data",
        ));
    }
    if cut_begin {
        stats.clipped_begin += 1;
        annotations.push(Annotation::text(
            "clipped",
            "began before the range: drawn from its start",
        ));
    }
    if cut_end {
        stats.clipped_end += 1;
        annotations.push(Annotation::text(
            "clipped",
            "ended after the range: drawn to its end",
        ));
    }
    for (key, value) in &e.properties {
        annotations.push(Annotation {
            name: key.clone(),
            value: super::timeline::AnnotationValue::Text(value.clone()),
        });
    }
    Slice {
        begin_ns: span.begin_ns,
        end_ns: span.end_ns,
        name: e.name.clone(),
        target: e.target.clone(),
        file: e.file.clone(),
        line: e.line,
        annotations,
        flows_out: Vec::new(),
        flow_in: None,
    }
}
