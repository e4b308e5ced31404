//! The track model: what assembly produces and the trace writer draws, whatever kind of data
//! it came from. A track has a place in the process (a thread, or a lane of a group) and
//! strictly nested slices; each slice may carry span ids, flows, notes and properties.
//!
//! A new kind of item (counter values, instants) is a new field of [`Track`] here, drawn by
//! the trace writer's one function per item kind; a new place (a process-scoped track) is a
//! new [`Place`].

use crate::symbols::{PropertySet, Sym};
use std::num::NonZeroU64;

/// What happened to a slice's bounds, shown as an argument in the UI (bit flags).
pub type Notes = u8;

pub mod notes {
    use super::Notes;
    pub const BEGAN_BEFORE_DATA: Notes = 1;
    pub const CLOSED_WITH_PARENT: Notes = 1 << 1;
    pub const DID_NOT_END: Notes = 1 << 2;
    pub const CUT_AT_GAP: Notes = 1 << 3;
    pub const UNFINISHED: Notes = 1 << 4;
    pub const BEFORE_RANGE: Notes = 1 << 5;
    pub const AFTER_RANGE: Notes = 1 << 6;

    /// (flag, argument name, argument text), in the order they are shown.
    pub const ALL: [(Notes, &str, &str); 7] = [
        (
            UNFINISHED,
            "unfinished",
            "never ended (future dropped or still running): drawn to the end of the data",
        ),
        (
            BEGAN_BEFORE_DATA,
            "clipped",
            "began before the data: drawn from the start of the data",
        ),
        (
            CLOSED_WITH_PARENT,
            "clipped",
            "no end of its own: closed with its parent",
        ),
        (
            DID_NOT_END,
            "clipped",
            "did not end in the data: drawn to the end of the data",
        ),
        (
            CUT_AT_GAP,
            "clipped",
            "cut at a gap in the stream (missing block)",
        ),
        (
            BEFORE_RANGE,
            "clipped",
            "began before the range: drawn from its start",
        ),
        (
            AFTER_RANGE,
            "clipped",
            "ended after the range: drawn to its end",
        ),
    ];
}

/// What only async spans have.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AsyncDetail {
    pub span_id: u64,
    pub parent_span_id: u64,
    pub depth: u32,
    /// Display names of the threads that polled its begin and end.
    pub began_on: Option<Sym>,
    pub ended_on: Option<Sym>,
    /// Flow arrows that start at this slice (to children drawn on other tracks).
    pub flows_out: Flows,
    /// The flow arrow that ends at this slice (from its parent on another track).
    pub flow_in: Option<NonZeroU64>,
}

/// Flow ids, in the order they were added: most slices have none, so an empty list takes
/// one word and no allocation (a million async slices are held at once).
#[derive(Debug, Clone, PartialEq, Default)]
#[allow(clippy::box_collection)] // the box is the point: one word instead of a `Vec`'s three
pub struct Flows(Option<Box<Vec<u64>>>);

impl Flows {
    pub fn push(&mut self, flow: NonZeroU64) {
        self.0.get_or_insert_default().push(flow.get());
    }

    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.iter().flat_map(|flows| flows.iter().copied())
    }
}

/// One span as drawn: `begin_ns <= end_ns`, nested strictly within its track.
#[derive(Debug, Clone, PartialEq)]
pub struct Slice {
    pub begin_ns: i64,
    pub end_ns: i64,
    pub name: Sym,
    /// The span's target, shown as its category.
    pub target: Sym,
    pub file: Sym,
    pub line: u32,
    /// A tagged end's properties.
    pub properties: PropertySet,
    pub notes: Notes,
    pub detail: Option<Box<AsyncDetail>>,
}

/// Where a track sits in the process.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Place {
    /// A thread of the process: `tid` is synthetic, positive and unique in the trace.
    Thread { tid: i32 },
    /// A lane of a [`TrackGroup`], drawn in the group's order.
    #[default]
    Lane,
}

/// An instant's arguments, (name, text) as symbols, in order: a log entry has one or two (its
/// level, a long message whole). Kept inline in 16 bytes: a large log has millions of instants.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct InstantArgs([(Sym, Sym); 2]);

impl InstantArgs {
    /// Adds an argument; one beyond the second is a bug of the caller, dropped.
    pub fn push(&mut self, name: Sym, text: Sym) {
        debug_assert!(name != 0, "an argument has a name");
        if let Some(free) = self.0.iter_mut().find(|(n, _)| *n == 0) {
            *free = (name, text);
        } else {
            debug_assert!(false, "an instant has at most two arguments");
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (Sym, Sym)> + '_ {
        self.0.iter().copied().take_while(|&(name, _)| name != 0)
    }
}

/// A moment: a log entry, drawn as an instant event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Instant {
    pub ns: i64,
    pub name: Sym,
    /// Shown as its category.
    pub category: Sym,
    /// The empty symbol when unknown.
    pub file: Sym,
    pub line: u32,
    /// Arguments shown with it, in order (name, text).
    pub args: InstantArgs,
    pub properties: PropertySet,
}

/// One track: its place, its name, and what it shows — slices (strictly nested), instants
/// (in time order), or counter values (in time order, with their unit).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Track {
    pub place: Place,
    pub name: String,
    pub slices: Vec<Slice>,
    pub instants: Vec<Instant>,
    /// (time, value): a counter track when not empty.
    pub counters: Vec<(i64, f64)>,
    /// The counter's unit, shown by the UI.
    pub unit: String,
}

/// Lanes shown together under one named track of the process (the async lanes): their items
/// go on one sequence, so strings are interned once for all of them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrackGroup {
    pub name: String,
    pub lanes: Vec<Track>,
}

/// Items of a group's lanes over a stretch of time, handed on in parts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GroupPart {
    /// As many as the group's, in its order.
    pub lanes: Vec<Track>,
    /// The lane of each item in time order: at equal times lower lanes first, each lane in
    /// its own order (what merging the lanes would give). Its maker knows it already, so the
    /// trace writer need not merge.
    pub order: Vec<u32>,
}

/// What the UI shows at the head of a process's tracks: its name, and labels beside it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProcessHeading {
    pub name: String,
    pub labels: Vec<String>,
}
