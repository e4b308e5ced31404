//! Async tracks: spans paired by `span_id` across threads, laid out on strictly nested lanes.
//!
//! Rule (deterministic, greedy): spans are taken by begin time (longer first at ties, then
//! span id). A span goes on its parent's lane when the parent is the innermost open slice
//! there and the span ends within it; otherwise on the first lane with nothing open; otherwise
//! on a new lane. A span not on its parent's lane gets a flow arrow from the parent.

use super::{AssemblyStats, AsyncEvents, clip_to_range, reaches};
use crate::events::{AsyncIds, Event, EventPhase};
use crate::symbols::{FastMap as HashMap, PropertySet, Sym, Symbols};
use crate::tracks::{AsyncDetail, Flows, Place, Slice, Track, TrackGroup, notes};
use std::num::NonZeroU64;

struct AsyncSpan {
    begin_ns: i64,
    end_ns: i64,
    event: Event,
    ids: AsyncIds,
    began_on: Option<Sym>,
    ended_on: Option<Sym>,
    notes: u8,
}

/// Lays out the async spans of a process; `data` is the `[begin, end]` of all its blocks.
pub fn async_tracks(
    events: AsyncEvents,
    (data, range): ((i64, i64), Option<(i64, i64)>),
    symbols: &Symbols,
    stats: &mut AssemblyStats,
) -> TrackGroup {
    let spans = pair_spans(events, data, range, stats);
    lay_out_spans(spans, range, symbols, stats)
}

/// Clips the spans to the `range`, if any, and lays them out, in whatever order they were
/// paired.
fn lay_out_spans(
    spans: Vec<AsyncSpan>,
    range: Option<(i64, i64)>,
    symbols: &Symbols,
    stats: &mut AssemblyStats,
) -> TrackGroup {
    let mut spans: Vec<AsyncSpan> = (spans.into_iter())
        .filter_map(|mut s| {
            clip_to_range((&mut s.begin_ns, &mut s.end_ns, &mut s.notes), range, stats).then_some(s)
        })
        .collect();
    // Last first: layout pops them, so the list shrinks as the slices grow. In place, no
    // scratch (it would be half the list); the order is total over what a slice shows, so
    // the pairing's order never shows.
    spans.sort_unstable_by(|a, b| layout_order(a, b, symbols).reverse());
    stats.async_spans += spans.len() as u64;
    TrackGroup {
        name: "async".into(),
        lanes: layout(spans),
    }
}

/// Begun spans by id, open. A span id that begins again while open (a duplicate id) shadows
/// its earlier begins: an end closes the latest begin of its id, then the one before, so the
/// duplicates nest instead of one running to the data end and another from its start.
struct OpenIds<T> {
    open: HashMap<u64, T>,
    /// Earlier begins of an open id, innermost last.
    shadowed: HashMap<u64, Vec<T>>,
}

impl<T> OpenIds<T> {
    fn new() -> Self {
        Self {
            open: HashMap::default(),
            shadowed: HashMap::default(),
        }
    }

    /// Opens a span of `id`; `true` if one of that id was open already.
    fn begin(&mut self, id: u64, begin: T) -> bool {
        let Some(previous) = self.open.insert(id, begin) else {
            return false;
        };
        self.shadowed.entry(id).or_default().push(previous);
        true
    }

    /// The begin an end of `id` closes, if any is open.
    fn end(&mut self, id: u64) -> Option<T> {
        let begin = self.open.remove(&id)?;
        if let Some(earlier) = self.shadowed.get_mut(&id) {
            if let Some(previous) = earlier.pop() {
                self.open.insert(id, previous);
            }
            if earlier.is_empty() {
                self.shadowed.remove(&id);
            }
        }
        Some(begin)
    }

    fn len(&self) -> usize {
        self.open.len() + self.shadowed.values().map(Vec::len).sum::<usize>()
    }

    /// The begins never closed.
    fn into_values(self) -> impl Iterator<Item = T> {
        (self.open.into_values()).chain(self.shadowed.into_values().flatten())
    }
}

/// An async event as the pairing of events given in time order holds it.
#[derive(Clone, Copy)]
struct HeldEvent {
    event: Event,
    ids: AsyncIds,
    order: crate::events::EventOrder,
}

/// Pairs async events given in time order (those of equal times in any order), making each
/// span as it ends: only the spans still open are held, not the process's events. The spans
/// are those [`async_tracks`] makes of the same events, whole.
pub struct AsyncPairing<'a> {
    data: (i64, i64),
    thread_of: &'a dyn Fn(crate::events::EventOrder) -> Sym,
    open: OpenIds<HeldEvent>,
    /// The events of the latest time, not paired yet: at equal times, begins pair first, then
    /// stream order ([`into_pairing_order`]).
    tied: Vec<HeldEvent>,
    spans: Vec<AsyncSpan>,
}

impl<'a> AsyncPairing<'a> {
    /// `data`: the `[begin, end]` of all the process's blocks.
    pub fn new(data: (i64, i64), thread_of: &'a dyn Fn(crate::events::EventOrder) -> Sym) -> Self {
        Self {
            data,
            thread_of,
            open: OpenIds::new(),
            tied: Vec::new(),
            spans: Vec::new(),
        }
    }

    /// The next event in time order; an error if it is earlier than the one before.
    pub fn push(
        &mut self,
        (event, ids, order): (Event, AsyncIds, crate::events::EventOrder),
        stats: &mut AssemblyStats,
    ) -> anyhow::Result<()> {
        if let Some(last) = self.tied.last() {
            if event.ns < last.event.ns {
                anyhow::bail!(
                    "internal error: async events read out of time order ({} ns after {} ns)",
                    event.ns,
                    last.event.ns
                );
            }
            if event.ns > last.event.ns {
                self.pair_tied(stats);
            }
        }
        self.tied.push(HeldEvent { event, ids, order });
        Ok(())
    }

    fn pair_tied(&mut self, stats: &mut AssemblyStats) {
        let end = |e: &HeldEvent| e.event.phase == EventPhase::End;
        self.tied.sort_unstable_by_key(|e| (end(e), e.order));
        let mut tied = std::mem::take(&mut self.tied);
        for held in tied.drain(..) {
            self.pair(held, stats);
        }
        self.tied = tied;
    }

    fn pair(&mut self, held: HeldEvent, stats: &mut AssemblyStats) {
        let span_id = held.ids.span_id;
        if held.event.phase == EventPhase::Begin {
            if self.open.begin(span_id, held) {
                stats.duplicate_span_ids += 1;
            }
            return;
        }
        let thread = (self.thread_of)(held.order);
        let (from, close) = match self.open.end(span_id) {
            Some(begin) => (begin, Close::at(&held.event, thread)),
            None => {
                stats.clipped_begin += 1;
                (held, Close::began_before(&held.event, thread))
            }
        };
        self.make_span(from, &close);
    }

    fn make_span(&mut self, from: HeldEvent, close: &Close) {
        let thread = (self.thread_of)(from.order);
        let span = span_of(from.event, from.ids, thread, close, self.data);
        self.spans.push(span);
    }

    /// Lays out the spans paired, those never ended drawn to the data end.
    pub fn finish(mut self, symbols: &Symbols, stats: &mut AssemblyStats) -> TrackGroup {
        self.pair_tied(stats);
        self.spans.reserve_exact(self.open.len());
        let unfinished = Close::unfinished(self.data.1);
        for begin in std::mem::replace(&mut self.open, OpenIds::new()).into_values() {
            stats.unfinished_async += 1;
            self.make_span(begin, &unfinished);
        }
        lay_out_spans(self.spans, None, symbols, stats)
    }
}

/// The span `close` ends, made of the event it is made from (its begin, or its end when it
/// began before the data), written on thread `thread`.
fn span_of(
    mut event: Event,
    ids: AsyncIds,
    thread: Sym,
    close: &Close,
    data: (i64, i64),
) -> AsyncSpan {
    let (begin_ns, end_ns) = span_bounds(close, event.ns, data);
    let began_on = (close.notes != notes::BEGAN_BEFORE_DATA).then_some(thread);
    if !close.end_properties.is_none() {
        event.properties = close.end_properties;
    }
    AsyncSpan {
        begin_ns,
        end_ns,
        event,
        ids,
        began_on,
        ended_on: close.ended_on,
        notes: close.notes,
    }
}

/// How a span ends.
struct Close {
    end_ns: i64,
    /// A tagged end's properties (`NONE`: none, or the span is made from its end).
    end_properties: PropertySet,
    ended_on: Option<Sym>,
    notes: u8,
}

impl Close {
    /// At `end`, written on `thread`, which closes a span begun in the data.
    fn at(end: &Event, thread: Sym) -> Self {
        Self {
            end_ns: end.ns,
            end_properties: end.properties,
            ended_on: Some(thread),
            notes: 0,
        }
    }

    /// At `end`, which closes a span begun before the data: the span is made of it.
    fn began_before(end: &Event, thread: Sym) -> Self {
        Self {
            end_ns: end.ns,
            end_properties: PropertySet::NONE,
            ended_on: Some(thread),
            notes: notes::BEGAN_BEFORE_DATA,
        }
    }

    /// Never: the span is drawn to the data's end.
    fn unfinished(data_end: i64) -> Self {
        Self {
            end_ns: data_end,
            end_properties: PropertySet::NONE,
            ended_on: None,
            notes: notes::UNFINISHED,
        }
    }
}

/// How a span ends, found by the pairing pass of a whole read; the span is made afterwards.
struct Ending {
    /// The event the span is made from: its begin, or its end when it began before the data.
    at: u32,
    close: Close,
}

/// By begin, longer first, then span id; the rest only tells apart spans that would
/// otherwise tie (an id used again).
fn layout_order(a: &AsyncSpan, b: &AsyncSpan, symbols: &Symbols) -> std::cmp::Ordering {
    a.begin_ns
        .cmp(&b.begin_ns)
        .then(b.end_ns.cmp(&a.end_ns))
        .then(a.ids.span_id.cmp(&b.ids.span_id))
        .then_with(|| tie_break(a, b, symbols))
}

/// Spans alike in place and id, by what they show, strings compared as text: symbols are
/// numbered in the order an export meets their strings, which the partition layout and the
/// window change (a window of partitions cut at other times laid two spans of a reused id
/// out the other way round).
fn tie_break(a: &AsyncSpan, b: &AsyncSpan, symbols: &Symbols) -> std::cmp::Ordering {
    let text = |sym: Sym| symbols.get(sym);
    let properties = |set: PropertySet| {
        (symbols.properties(set).iter()).map(move |&(k, v)| (symbols.get(k), symbols.get(v)))
    };
    let shown = |s: &AsyncSpan| {
        let e = &s.event;
        (
            (e.ns, text(e.name), text(e.target), text(e.file), e.line),
            (s.ids.parent_span_id, s.ids.depth, s.notes),
            (s.began_on.map(text), s.ended_on.map(text)),
        )
    };
    (shown(a).cmp(&shown(b)))
        .then_with(|| properties(a.event.properties).cmp(properties(b.event.properties)))
}

/// Pairs begins and ends by span id, in time order over all threads; makes the spans that
/// reach the time `range`, if any. The events are consumed as the spans are made, so the two
/// never take their full size at once.
fn pair_spans(
    mut input: AsyncEvents,
    data: (i64, i64),
    range: Option<(i64, i64)>,
    stats: &mut AssemblyStats,
) -> Vec<AsyncSpan> {
    let mut endings = pair_ids(&mut input, data.1, stats);
    if let Some((from, to)) = range {
        // A window of a long process pairs every span of the partitions it reads, and shows
        // a few: only those are made.
        endings.retain(|ending| {
            let bounds = span_bounds(&ending.close, input.events[ending.at as usize].ns, data);
            reaches(bounds, (from, to))
        });
    }
    make_spans(input, endings, data)
}

/// The begin and end of the span `close` ends, made from an event at `event_ns`.
fn span_bounds(close: &Close, event_ns: i64, (data_begin, _): (i64, i64)) -> (i64, i64) {
    let begin_ns = match close.notes == notes::BEGAN_BEFORE_DATA {
        true => data_begin.min(event_ns),
        false => event_ns,
    };
    let end_ns = match close.notes == notes::UNFINISHED {
        true => close.end_ns.max(begin_ns),
        false => close.end_ns,
    };
    (begin_ns, end_ns)
}

/// Marks an end in a pairing key: ends sort after begins at equal times. Indices fit below
/// it: 2^31 events would take 128 GB.
const END_BIT: u32 = 1 << 31;

/// Puts the events in the order pairing takes them, in place. Pairing is per span id, so only
/// a span's own begin-before-end matters: at equal times begins go first (a zero-length span
/// stays whole), then stream order. The events come as read ([`AsyncEvents`]), not in stream
/// order (a window's were not, and that sort took as long as this one): the keys are sorted
/// by time and kind, then the few that tie put in stream order. The index ends each key
/// (places repeat only where the lake repeats a block), so the order is total. The keys are
/// 16 bytes, sorted apart from the events (a cache miss per comparison otherwise), then the
/// events are moved: a 24-byte copy of each event to pair, held beside them, was the async
/// stage's peak (48 MB of a 1M-async-span export's).
fn into_pairing_order(input: &mut AsyncEvents) {
    let end = |e: &Event| match e.phase {
        EventPhase::End => END_BIT,
        EventPhase::Begin => 0,
    };
    let mut keys: Vec<(i64, u32)> = (input.events.iter().enumerate())
        .map(|(i, e)| (e.ns, i as u32 | end(e)))
        .collect();
    keys.sort_unstable();
    let orders = &input.orders;
    for tied in keys.chunk_by_mut(|a, b| a.0 == b.0 && (a.1 & END_BIT) == (b.1 & END_BIT)) {
        if tied.len() > 1 {
            tied.sort_unstable_by_key(|&(_, r)| (orders[(r & !END_BIT) as usize], r));
        }
    }
    let order: Vec<u32> = keys.into_iter().map(|(_, r)| r & !END_BIT).collect();
    permute(input, &order);
}

/// Moves the events so that the `k`th is the one at `order[k]` before, in place: cycle by
/// cycle, each event moved once.
fn permute(input: &mut AsyncEvents, order: &[u32]) {
    let AsyncEvents {
        events,
        ids,
        orders,
        ..
    } = input;
    let mut placed = vec![false; order.len()];
    for start in 0..order.len() {
        if placed[start] {
            continue;
        }
        let held = (events[start], ids[start], orders[start]);
        let mut at = start;
        loop {
            placed[at] = true;
            let from = order[at] as usize;
            if from == start {
                (events[at], ids[at], orders[at]) = held;
                break;
            }
            (events[at], ids[at], orders[at]) = (events[from], ids[from], orders[from]);
            at = from;
        }
    }
}

/// The pairing pass: which event each span is made from, and how it ends.
fn pair_ids(input: &mut AsyncEvents, data_end: i64, stats: &mut AssemblyStats) -> Vec<Ending> {
    into_pairing_order(input);
    let AsyncEvents {
        events,
        ids,
        orders,
        thread_of,
    } = input;
    // span id → the event that began it.
    let mut open: OpenIds<u32> = OpenIds::new();
    // One ending per begin, and one per end of a span begun before the data (few): sized
    // for the begins, then exactly for what is left open, as doubling a million of them
    // for the last few would be the stage's peak.
    let begins = events
        .iter()
        .filter(|e| e.phase == EventPhase::Begin)
        .count();
    let mut endings: Vec<Ending> = Vec::with_capacity(begins);
    for (i, (event, ids)) in events.iter().zip(ids.iter()).enumerate() {
        let (i, span_id) = (i as u32, ids.span_id);
        match event.phase == EventPhase::End {
            false => {
                if open.begin(span_id, i) {
                    stats.duplicate_span_ids += 1;
                }
            }
            true => {
                let thread = thread_of(orders[i as usize]);
                let ending = match open.end(span_id) {
                    Some(begin) => Ending {
                        at: begin,
                        close: Close::at(event, thread),
                    },
                    None => {
                        stats.clipped_begin += 1;
                        let close = Close::began_before(event, thread);
                        Ending { at: i, close }
                    }
                };
                endings.push(ending);
            }
        }
    }
    endings.reserve_exact(open.len());
    for begin in open.into_values() {
        stats.unfinished_async += 1;
        let close = Close::unfinished(data_end);
        endings.push(Ending { at: begin, close });
    }
    endings
}

/// Makes the spans from the last event to the first, giving back the events' memory as it
/// goes (each event makes at most one span).
fn make_spans(input: AsyncEvents, mut endings: Vec<Ending>, data: (i64, i64)) -> Vec<AsyncSpan> {
    let AsyncEvents {
        mut events,
        mut ids,
        mut orders,
        thread_of,
    } = input;
    endings.sort_unstable_by_key(|e| e.at);
    let mut spans = Vec::with_capacity(endings.len());
    while let Some(ending) = endings.pop() {
        let at = ending.at as usize;
        let thread = thread_of(orders[at]);
        spans.push(span_of(events[at], ids[at], thread, &ending.close, data));
        events.truncate(at);
        ids.truncate(at);
        orders.truncate(at);
        if spans.len().is_multiple_of(1 << 16) {
            events.shrink_to_fit();
            ids.shrink_to_fit();
            orders.shrink_to_fit();
            endings.shrink_to_fit();
        }
    }
    spans
}

struct Lane {
    /// Open slices: (end_ns, index into the lane's slices).
    open: Vec<(i64, usize)>,
    slices: Vec<Slice>,
}

/// `spans`: in reverse layout order.
fn layout(mut spans: Vec<AsyncSpan>) -> Vec<Track> {
    let mut lanes: Vec<Lane> = Vec::new();
    // Lanes with nothing open, by index: the first free lane is the smallest.
    let mut free: std::collections::BTreeSet<usize> = std::collections::BTreeSet::new();
    // Lanes with something open, by the end of their innermost slice: the next to free up.
    let mut busy: std::collections::BinaryHeap<std::cmp::Reverse<(i64, usize)>> =
        std::collections::BinaryHeap::new();
    let mut parents = Parents::of(&spans);
    let mut next_flow = NonZeroU64::MIN;
    while let Some(span) = spans.pop() {
        // Give back what the spans taken so far held (a shrinking reallocation is cheap).
        if spans.len().is_multiple_of(1 << 16) {
            spans.shrink_to_fit();
            parents.shrink();
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
        let parent = parents.take_parent_of(&span);
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
            next_flow = next_flow.saturating_add(1);
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
        parents.place(span.ids.span_id, (lane_index, lane.slices.len() - 1));
    }
    lanes
        .into_iter()
        .enumerate()
        .map(|(i, lane)| Track {
            place: Place::Lane,
            name: format!("async #{}", i + 1),
            slices: lane.slices,
            ..Default::default()
        })
        .collect()
}

/// Where the spans named as parents were placed: by span id, the lane and slice of the most
/// recent span placed with that id. Only ids that a span still to be placed names as its
/// parent are kept: a map of every span placed was the largest buffer of the layout (53 MB
/// of a 1M-async-span export's peak).
struct Parents(HashMap<u64, Parent>);

#[derive(Default)]
struct Parent {
    /// Spans still to be placed that name it.
    children_left: u32,
    /// (lane, slice) of the most recent span placed with its id.
    placed: Option<(u32, u32)>,
}

impl Parents {
    fn of(spans: &[AsyncSpan]) -> Self {
        let mut parents: HashMap<u64, Parent> = HashMap::default();
        for span in spans.iter().filter(|s| s.ids.parent_span_id != 0) {
            parents
                .entry(span.ids.parent_span_id)
                .or_default()
                .children_left += 1;
        }
        Self(parents)
    }

    /// Where the parent of `span`, the next to be placed, was placed (`None`: it names none, or
    /// no span with its parent's id was placed before it). Forgets the parent once it has no
    /// child left to place.
    fn take_parent_of(&mut self, span: &AsyncSpan) -> Option<(usize, usize)> {
        // Ids never named as a parent (0 among them) are not in the map.
        let id = span.ids.parent_span_id;
        let parent = self.0.get_mut(&id)?;
        let found = parent.placed;
        parent.children_left -= 1;
        if parent.children_left == 0 {
            self.0.remove(&id);
        }
        found.map(|(lane, slice)| (lane as usize, slice as usize))
    }

    /// Records where a span was placed, if a span still to be placed names it as its parent.
    fn place(&mut self, span_id: u64, (lane, slice): (usize, usize)) {
        if let Some(parent) = self.0.get_mut(&span_id) {
            parent.placed = Some((lane as u32, slice as u32));
        }
    }

    fn shrink(&mut self) {
        self.0.shrink_to_fit();
    }
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
            span_id: span.ids.span_id,
            parent_span_id: span.ids.parent_span_id,
            depth: span.ids.depth,
            began_on: span.began_on,
            ended_on: span.ended_on,
            flows_out: Flows::default(),
            flow_in: None,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventOrder, EventScope};
    use crate::symbols::Symbols;

    /// Two streams' async events, as (stream, time, begin?, span id), with equal times across
    /// them and span ids used twice: id 2 begins on both at once, and stream order says which
    /// of its ends closes which.
    const EVENTS: [(u32, i64, bool, u64); 12] = [
        (0, 10, true, 1),
        (0, 10, true, 2),
        (0, 20, false, 1),
        (0, 20, true, 1),
        (0, 30, false, 1),
        (0, 30, false, 2),
        (1, 10, true, 3),
        (1, 10, false, 3),
        (1, 10, true, 2),
        (1, 20, false, 2),
        (1, 20, true, 4),
        (1, 30, false, 4),
    ];

    /// The events of `EVENTS` in this order, with the symbols and threads they name.
    struct Input {
        symbols: Symbols,
        threads: [Sym; 2],
        held: Vec<HeldEvent>,
    }

    fn input(order: impl Iterator<Item = usize>) -> Input {
        let mut symbols = Symbols::new();
        let (name, threads) = (
            symbols.intern("s"),
            [symbols.intern("a"), symbols.intern("b")],
        );
        let held = order.map(|i| {
            let (stream, ns, begin, span_id) = EVENTS[i];
            let phase = if begin {
                EventPhase::Begin
            } else {
                EventPhase::End
            };
            let event = Event {
                ns,
                name,
                target: name,
                file: name,
                line: i as u32,
                properties: PropertySet::NONE,
                scope: EventScope::Async,
                phase,
            };
            let ids = AsyncIds {
                span_id,
                ..Default::default()
            };
            let order = EventOrder::new(stream, i as u32);
            HeldEvent { event, ids, order }
        });
        Input {
            symbols,
            threads,
            held: held.collect(),
        }
    }

    #[test]
    fn async_events_paired_as_they_come_in_time_order_lay_out_as_all_at_once() {
        let whole = lay_out(0..EVENTS.len());
        let mut whole_stats = AssemblyStats::default();
        let _ = lay_out_counting(0..EVENTS.len(), &mut whole_stats);
        // In time order, equal times in reverse: the pairing puts them in its own order.
        let mut by_time: Vec<usize> = (0..EVENTS.len()).collect();
        by_time.sort_by_key(|&i| (EVENTS[i].1, std::cmp::Reverse(i)));
        let Input {
            symbols,
            threads,
            held,
        } = input(by_time.into_iter());
        let thread_of = |order: EventOrder| threads[order.block_position()];
        let mut pairing = AsyncPairing::new((0, 40), &thread_of);
        let mut stats = AssemblyStats::default();
        for h in &held {
            pairing.push((h.event, h.ids, h.order), &mut stats).unwrap();
        }
        assert_eq!(pairing.finish(&symbols, &mut stats), whole);
        assert_eq!(stats, whole_stats);
        let mut late = AsyncPairing::new((0, 40), &thread_of);
        let last = held.last().unwrap();
        late.push((last.event, last.ids, last.order), &mut stats)
            .unwrap();
        let earlier = late.push((held[0].event, held[0].ids, held[0].order), &mut stats);
        assert!(
            earlier.is_err(),
            "an event earlier than the last is refused"
        );
    }

    fn lay_out(order: impl Iterator<Item = usize>) -> TrackGroup {
        lay_out_counting(order, &mut AssemblyStats::default())
    }

    fn lay_out_counting(
        order: impl Iterator<Item = usize>,
        stats: &mut AssemblyStats,
    ) -> TrackGroup {
        let Input {
            symbols,
            threads,
            held,
        } = input(order);
        let input = AsyncEvents {
            events: held.iter().map(|h| h.event).collect(),
            ids: held.iter().map(|h| h.ids).collect(),
            orders: held.iter().map(|h| h.order).collect(),
            thread_of: &|order: EventOrder| threads[order.block_position()],
        };
        async_tracks(input, ((0, 40), None), &symbols, stats)
    }

    #[test]
    fn async_events_lay_out_the_same_whatever_order_they_are_read_in() {
        let in_stream_order = lay_out(0..EVENTS.len());
        assert!(in_stream_order.lanes.len() > 1);
        assert_eq!(lay_out((0..EVENTS.len()).rev()), in_stream_order);
        let interleaved = (0..6).flat_map(|i| [i + 6, i]);
        assert_eq!(lay_out(interleaved), in_stream_order);
    }
}
