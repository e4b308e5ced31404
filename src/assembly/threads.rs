//! Thread tracks: per stream, begin/end events nest like a call stack.
//!
//! A large thread is made in pieces ([`ThreadPieces`]): its slices are handed on whenever its
//! call stack is empty, so only a piece of its track is held at a time.

use super::{AssemblyStats, Chain, ThreadData, clip_to_range};
use crate::events::{Event, EventPhase, EventScope};
use crate::symbols::Sym;
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
        let mut pairing = ChainPairing::new(chain, slices.len());
        for event in thread_events(&thread.events[chain.events.clone()]) {
            pairing.event(event, &mut slices, stats);
        }
        pairing.finish(index == last_chain, &mut slices, stats);
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

fn thread_events(events: &[Event]) -> impl Iterator<Item = &Event> {
    events.iter().filter(|e| e.scope == EventScope::Thread)
}

/// What an end names of the span it closes: its name, place and target.
fn span_of(event: &Event) -> (Sym, u32, Sym, Sym) {
    (event.name, event.line, event.file, event.target)
}

fn same_span(slice: &Slice, event: &Event) -> bool {
    (slice.name, slice.line, slice.file, slice.target) == span_of(event)
}

/// Pairs one chain's events, one at a time, appending its slices outermost first: with equal
/// bounds (same-time or clipped spans) the writer keeps this order, so a parent is never drawn
/// inside its child. Spans that began before the data come first, the last to end (the
/// outermost) leading; then spans begun in the data, in begin order.
struct ChainPairing {
    /// Where the chain's slices start in the output.
    first: usize,
    begin_ns: i64,
    end_ns: i64,
    /// Spans begun and not yet ended: their slices are in place, their ends still to be set.
    stack: Vec<usize>,
    began_before: Vec<Slice>,
    /// Times never go back within a stream: a clock step backwards is pinned to the last time,
    /// which keeps the pairs strictly nested.
    now: i64,
}

impl ChainPairing {
    fn new(chain: &Chain, first: usize) -> Self {
        Self {
            first,
            begin_ns: chain.begin_ns,
            end_ns: chain.end_ns,
            stack: Vec::new(),
            began_before: Vec::new(),
            now: chain.begin_ns,
        }
    }

    /// Pairs the chain's next thread event.
    fn event(&mut self, event: &Event, out: &mut Vec<Slice>, stats: &mut AssemblyStats) {
        self.now = self.now.max(event.ns);
        let now = self.now;
        match event.phase {
            EventPhase::Begin => {
                // In place at once, in begin order; its end is set when it closes.
                out.push(make_slice(now, now, event, 0));
                self.stack.push(out.len() - 1);
            }
            EventPhase::End => {
                let stack = &mut self.stack;
                match stack.iter().rposition(|&slot| same_span(&out[slot], event)) {
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
                        self.began_before.push(make_slice(
                            self.begin_ns.min(now),
                            now,
                            event,
                            notes::BEGAN_BEFORE_DATA,
                        ));
                    }
                    None => stats.unmatched_ends += 1,
                }
            }
        }
    }

    /// Closes what is still open at the chain's end (the data's end when `is_last`, else a
    /// gap), and puts the spans that began before the data first.
    fn finish(mut self, is_last: bool, out: &mut Vec<Slice>, stats: &mut AssemblyStats) {
        let end = self.end_ns.max(self.now);
        let note = if is_last {
            notes::DID_NOT_END
        } else {
            notes::CUT_AT_GAP
        };
        while let Some(open) = self.stack.pop() {
            if is_last {
                stats.clipped_end += 1;
            } else {
                stats.cut_at_gap += 1;
            }
            close(&mut out[open], end, note);
        }
        if !self.began_before.is_empty() {
            let first = self.first;
            out.splice(first..first, self.began_before.into_iter().rev());
        }
    }
}

/// Whether some end of these events closes a span begun before them: its slice would come
/// first in the track, so the track cannot be handed on in pieces before all is paired.
fn ends_a_span_begun_before(events: &[Event]) -> bool {
    let mut stack = Vec::new();
    for event in thread_events(events) {
        match event.phase {
            EventPhase::Begin => stack.push(span_of(event)),
            EventPhase::End => match stack.iter().rposition(|&b| b == span_of(event)) {
                Some(position) => stack.truncate(position),
                None if stack.is_empty() => return true,
                None => {}
            },
        }
    }
    false
}

/// How many slices the pieces of a large thread hold: at least `first` in its first piece
/// (which tells the writer that the track is a large one), then at least `rest` in each.
#[derive(Debug, Clone, Copy)]
pub struct PieceSizes {
    pub first: usize,
    pub rest: usize,
}

/// A large thread's track, made piece by piece: each piece ends where the call stack is empty
/// (every slice in it is closed), before the slices begun at that very time (a slice begun at
/// the same time and ending later is drawn before them, so they go with it). Only the whole
/// data of one gapless chain, and no span begun before it, can be cut so: its pieces then hold
/// the slices of the whole track, in its order. Its events are all given at once
/// ([`ThreadPieces::of`]) or run by run as read ([`ThreadPieces::fed`]).
pub struct ThreadPieces {
    name: String,
    tid: i32,
    sizes: PieceSizes,
    /// The events to pair: all the thread's, or the run given last.
    events: Vec<Event>,
    /// The next of them to pair.
    next: usize,
    /// More events are to come after these.
    more: bool,
    pairing: Option<ChainPairing>,
    /// Slices made and not handed on yet.
    out: Vec<Slice>,
    pieces: usize,
}

/// What making the next piece of a large thread came to.
pub enum PieceStep {
    /// A piece, and whether it is the last.
    Piece(Track, bool),
    /// The events given are all paired: the next run is needed ([`ThreadPieces::feed`], or
    /// [`ThreadPieces::no_more_events`]).
    NeedsEvents,
}

impl ThreadPieces {
    /// The thread's pieces, if it is large enough to be cut and can be; else the data back.
    pub fn of(
        thread: ThreadData,
        tid: i32,
        range: Option<(i64, i64)>,
        sizes: PieceSizes,
    ) -> Result<Self, ThreadData> {
        let cut = range.is_none()
            && thread.chains.len() == 1
            && thread.events.len() >= 2 * (sizes.first + sizes.rest)
            && !ends_a_span_begun_before(&thread.events);
        if !cut {
            return Err(thread);
        }
        let mut pieces = Self::fed(thread.name, &thread.chains[0], tid, sizes);
        let chain = thread.chains[0].events.clone();
        let mut events = thread.events;
        events.truncate(chain.end);
        pieces.next = chain.start;
        pieces.events = events;
        pieces.more = false;
        Ok(pieces)
    }

    /// The pieces of a thread whose events (one gapless chain of them, none ending a span
    /// begun before the first) are given run by run, as read.
    pub fn fed(name: String, chain: &Chain, tid: i32, sizes: PieceSizes) -> Self {
        Self {
            name,
            tid,
            sizes,
            events: Vec::new(),
            next: 0,
            more: true,
            pairing: Some(ChainPairing::new(chain, 0)),
            out: Vec::new(),
            pieces: 0,
        }
    }

    /// The buffer of the events given last, all paired, emptied: to read the next run into.
    pub fn spent_events(&mut self) -> Vec<Event> {
        let mut spent = std::mem::take(&mut self.events);
        spent.clear();
        spent
    }

    /// Gives the next run of events.
    pub fn feed(&mut self, events: Vec<Event>) {
        self.next = 0;
        self.events = events;
    }

    /// Says that all events were given.
    pub fn no_more_events(&mut self) {
        self.more = false;
    }

    /// The next piece; `None` after the last.
    pub fn next_piece(&mut self, stats: &mut AssemblyStats) -> Option<PieceStep> {
        let pairing = self.pairing.as_mut()?;
        let target = match self.pieces {
            0 => self.sizes.first,
            _ => self.sizes.rest,
        };
        while let Some(event) = self.events.get(self.next) {
            self.next += 1;
            if event.scope != EventScope::Thread {
                continue;
            }
            pairing.event(event, &mut self.out, stats);
            if event.phase == EventPhase::End
                && pairing.stack.is_empty()
                && self.out.len() >= target
            {
                let now = pairing.now;
                let cut = self.out.partition_point(|s| s.begin_ns < now);
                if cut > 0 {
                    // Exactly its size (pieces wait for the encoder), the buffer kept.
                    let piece: Vec<Slice> = self.out.drain(..cut).collect();
                    return Some(self.piece(piece, false, stats));
                }
            }
        }
        if self.more {
            return Some(PieceStep::NeedsEvents);
        }
        let pairing = self.pairing.take().expect("checked above");
        pairing.finish(true, &mut self.out, stats);
        let piece = std::mem::take(&mut self.out);
        Some(self.piece(piece, true, stats))
    }

    fn piece(&mut self, slices: Vec<Slice>, last: bool, stats: &mut AssemblyStats) -> PieceStep {
        self.pieces += 1;
        stats.thread_spans += slices.len() as u64;
        let track = Track {
            place: Place::Thread { tid: self.tid },
            name: self.name.clone(),
            slices,
            ..Default::default()
        };
        PieceStep::Piece(track, last)
    }

    /// The buffer of the events, once the pieces are made (to reuse it).
    pub fn into_events(self) -> Vec<Event> {
        self.events
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::{PropertySet, Symbols};

    /// A small deterministic generator (no dependency for a test).
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = (self.0.wrapping_mul(6364136223846793005)).wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    /// One stream's events: spans nested, mostly well, with same-time events, zero-length
    /// siblings, clock steps back, tagged ends, ends closing their parent's children, ends of
    /// nothing open, spans left open at the end; `began_before`: ends of spans begun earlier.
    fn stream(seed: u64, n: usize, began_before: bool) -> ThreadData {
        let (mut rng, mut symbols) = (Lcg(seed), Symbols::new());
        let names: Vec<u32> = (0..5).map(|i| symbols.intern(&format!("f{i}"))).collect();
        let tag = symbols.intern("tag");
        let tagged = symbols.intern_properties(&[(tag, tag)]);
        let (mut events, mut open, mut ns) = (Vec::new(), Vec::<u32>::new(), 1_000i64);
        let event = |ns, name, phase, properties| Event {
            ns,
            name,
            target: name,
            file: name,
            line: 1,
            properties,
            scope: EventScope::Thread,
            phase,
        };
        while events.len() < n {
            ns += match rng.below(10) {
                0..=2 => 0,
                3 => -5,
                _ => rng.below(50) as i64,
            };
            let roll = rng.below(100);
            if open.is_empty() && began_before && roll < 2 {
                events.push(event(ns, names[4], EventPhase::End, PropertySet::NONE));
            } else if open.is_empty() || (roll < 40 && open.len() < 8) {
                let name = names[rng.below(4) as usize];
                open.push(name);
                events.push(event(ns, name, EventPhase::Begin, PropertySet::NONE));
            } else if roll < 45 {
                events.push(event(ns, names[4], EventPhase::End, PropertySet::NONE));
            } else {
                let depth = if roll < 50 {
                    rng.below(open.len() as u64) as usize
                } else {
                    open.len() - 1
                };
                let name = open[depth];
                // The latest span of that name is the one it ends.
                open.truncate(open.iter().rposition(|&n| n == name).unwrap_or(depth));
                let properties = if roll % 7 == 0 {
                    tagged
                } else {
                    PropertySet::NONE
                };
                events.push(event(ns, name, EventPhase::End, properties));
            }
        }
        let chain = Chain {
            begin_ns: 900,
            end_ns: ns + 100,
            events: 0..events.len(),
        };
        ThreadData {
            name: "t".into(),
            events,
            chains: vec![chain],
        }
    }

    const SIZES: PieceSizes = PieceSizes { first: 20, rest: 7 };

    /// The pieces of a thread, its events given at once, or in runs of `run` events.
    fn in_pieces(thread: ThreadData, run: Option<usize>) -> (Vec<Vec<Slice>>, AssemblyStats) {
        let mut stats = AssemblyStats::default();
        let (mut pieces, mut runs) = match run {
            None => match ThreadPieces::of(thread, 2, None, SIZES) {
                Ok(pieces) => (pieces, Vec::new()),
                Err(_) => panic!("the thread can be cut"),
            },
            Some(run) => {
                let fed = ThreadPieces::fed(thread.name.clone(), &thread.chains[0], 2, SIZES);
                let runs: Vec<Vec<Event>> = thread.events.chunks(run).map(<[_]>::to_vec).collect();
                (fed, runs.into_iter().rev().collect())
            }
        };
        let mut out = Vec::new();
        while let Some(step) = pieces.next_piece(&mut stats) {
            match step {
                PieceStep::Piece(track, last) => {
                    out.push(track.slices);
                    if last {
                        break;
                    }
                }
                PieceStep::NeedsEvents => match runs.pop() {
                    Some(run) => {
                        pieces.feed(run);
                    }
                    None => pieces.no_more_events(),
                },
            }
        }
        (out, stats)
    }

    #[test]
    fn a_large_thread_in_pieces_has_the_slices_and_counts_of_its_whole_track() {
        for seed in 0..40 {
            let thread = stream(seed, 3_000, false);
            let mut whole_stats = AssemblyStats::default();
            let whole = thread_track(&thread, 2, None, &mut whole_stats).unwrap();
            let fed = in_pieces(thread.clone(), Some(1 + seed as usize * 17));
            let (pieces, stats) = in_pieces(thread, None);
            assert_eq!(
                fed,
                (pieces.clone(), stats.clone()),
                "seed {seed}: fed in runs"
            );
            assert!(
                pieces.len() > 10,
                "seed {seed}: cut into {} pieces",
                pieces.len()
            );
            assert_eq!(pieces.concat(), whole.slices, "seed {seed}");
            assert_eq!(stats, whole_stats, "seed {seed}");
            for pair in pieces.windows(2) {
                let (before, after) = (&pair[0], &pair[1]);
                let latest_end = before.iter().map(|s| s.end_ns).max().unwrap();
                let first_begin = after.iter().map(|s| s.begin_ns).min();
                assert!(
                    first_begin
                        .is_none_or(|b| b > before.last().unwrap().begin_ns && b >= latest_end),
                    "seed {seed}: a piece ends where nothing is open, before what begins later"
                );
            }
        }
    }

    #[test]
    fn a_thread_with_spans_begun_before_its_data_or_with_gaps_is_made_whole() {
        let began_before = (0..40)
            .map(|seed| stream(seed, 3_000, true))
            .find(|t| {
                thread_track(t, 2, None, &mut AssemblyStats::default())
                    .unwrap()
                    .slices[0]
                    .notes
                    == notes::BEGAN_BEFORE_DATA
            })
            .expect("some stream has spans begun before its data");
        assert!(ThreadPieces::of(began_before, 2, None, SIZES).is_err());
        let mut gapped = stream(1, 3_000, false);
        let mut second = gapped.chains[0].clone();
        gapped.chains[0].events.end = 1_500;
        second.events.start = 1_500;
        gapped.chains.push(second);
        assert!(ThreadPieces::of(gapped, 2, None, SIZES).is_err());
        let windowed = ThreadPieces::of(stream(1, 3_000, false), 2, Some((0, 5_000)), SIZES);
        assert!(windowed.is_err());
    }
}
