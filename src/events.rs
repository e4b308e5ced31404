//! The events of a process as read back from its partitions: times in Unix nanoseconds,
//! strings as symbols, each with its place in stream order.
//!
//! The vocabulary between the partitions (which produce it) and assembly (which pairs it):
//! neither imports the other.

pub use crate::decode::{EventPhase, EventScope};
use crate::symbols::{PropertySet, Sym};

/// A span event with its time in Unix nanoseconds and its strings interned (32 bytes: a large
/// process has tens of millions).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event {
    pub ns: i64,
    pub name: Sym,
    pub target: Sym,
    pub file: Sym,
    pub line: u32,
    /// A tagged end's properties (`PropertySet::NONE` for most events).
    pub properties: PropertySet,
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

/// An event's place in stream order: the position of its block in the process's block list
/// (ordered by stream, object offset, block id), then its index in the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventOrder(u64);

impl EventOrder {
    pub fn new(block_position: u32, index: u32) -> Self {
        Self((block_position as u64) << 32 | index as u64)
    }

    /// The position of the event's block in the process's block list.
    pub fn block_position(self) -> usize {
        (self.0 >> 32) as usize
    }
}

/// Events read from partitions, with their places in stream order.
#[derive(Debug, Default)]
pub struct EventTable {
    pub events: Vec<Event>,
    /// Index by index with `events` for async events; empty for thread events.
    pub ids: Vec<AsyncIds>,
    pub orders: Vec<EventOrder>,
}

/// Rows read from partitions, each with its place in stream order.
pub trait OrderedRows {
    fn clear(&mut self);
    fn reserve(&mut self, rows: usize);
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Puts rows in stream order (partitions of one instance may interleave blocks).
    fn sort(&mut self);
}

/// Room for `rows` more rows. A read starts on an empty table that kept the buffers of the
/// last: when they are too small, they are replaced by buffers of exactly the size needed, as
/// growing them would double them (the async events of a 10M-span process, read after its
/// largest thread, took 113 MB instead of 64). The rows of further files of one read grow
/// them as usual.
fn room_for<T>(rows_of: &mut Vec<T>, rows: usize) {
    if rows_of.is_empty() && rows_of.capacity() < rows {
        *rows_of = Vec::new();
        rows_of.reserve_exact(rows);
    } else {
        rows_of.reserve(rows);
    }
}

impl EventTable {
    /// Room for as many async ids as there is room for events (an async read's).
    pub fn ids_room(&mut self) {
        let room = self.events.capacity() - self.ids.len();
        room_for(&mut self.ids, room);
    }

    /// Room for exactly `rows` more rows, async ids included.
    pub fn reserve_exact(&mut self, rows: usize) {
        self.events.reserve_exact(rows);
        self.ids.reserve_exact(rows);
        self.orders.reserve_exact(rows);
    }
}

impl OrderedRows for EventTable {
    fn clear(&mut self) {
        self.events.clear();
        self.ids.clear();
        self.orders.clear();
    }

    fn reserve(&mut self, rows: usize) {
        room_for(&mut self.events, rows);
        room_for(&mut self.orders, rows);
    }

    fn len(&self) -> usize {
        self.orders.len()
    }

    fn sort(&mut self) {
        if self.orders.is_sorted() {
            return;
        }
        let mut permutation: Vec<u32> = (0..self.orders.len() as u32).collect();
        permutation.sort_by_key(|&i| self.orders[i as usize]);
        self.events = permutation
            .iter()
            .map(|&i| self.events[i as usize])
            .collect();
        if !self.ids.is_empty() {
            self.ids = permutation.iter().map(|&i| self.ids[i as usize]).collect();
        }
        self.orders = permutation
            .iter()
            .map(|&i| self.orders[i as usize])
            .collect();
    }
}

/// A log entry with its time in Unix nanoseconds and its strings interned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogRow {
    pub ns: i64,
    /// 1 fatal, 2 error, 3 warn, 4 info, 5 debug, 6 trace.
    pub level: u8,
    pub target: Sym,
    pub msg: Sym,
    /// The empty symbol when unknown.
    pub file: Sym,
    pub line: u32,
    pub properties: PropertySet,
}

/// A measure with its time in Unix nanoseconds and its strings interned; `value` as recorded
/// (a tick count is converted to seconds at assembly, where the clock is known).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeasureRow {
    pub ns: i64,
    pub name: Sym,
    pub unit: Sym,
    pub target: Sym,
    pub value: f64,
    /// Recorded as an integer.
    pub integer: bool,
    pub properties: PropertySet,
}

/// Rows of one kind read from partitions, with their places in stream order.
#[derive(Debug)]
pub struct RowsInOrder<T> {
    pub rows: Vec<T>,
    pub orders: Vec<EventOrder>,
}

/// Log entries read from partitions.
pub type LogTable = RowsInOrder<LogRow>;
/// Measures read from partitions.
pub type MeasureTable = RowsInOrder<MeasureRow>;

impl<T> Default for RowsInOrder<T> {
    fn default() -> Self {
        Self {
            rows: Vec::new(),
            orders: Vec::new(),
        }
    }
}

impl<T: Copy> OrderedRows for RowsInOrder<T> {
    fn clear(&mut self) {
        self.rows.clear();
        self.orders.clear();
    }

    fn reserve(&mut self, rows: usize) {
        self.rows.reserve(rows);
        self.orders.reserve(rows);
    }

    fn len(&self) -> usize {
        self.orders.len()
    }

    fn sort(&mut self) {
        if self.orders.is_sorted() {
            return;
        }
        let mut rows: Vec<(EventOrder, T)> = (self.orders.iter().copied())
            .zip(self.rows.iter().copied())
            .collect();
        rows.sort_by_key(|(order, _)| *order);
        (self.orders, self.rows) = rows.into_iter().unzip();
    }
}
