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

/// Where the rows of blocks at `blocks` positions are among rows in stream order.
fn rows_of_blocks(orders: &[EventOrder], blocks: std::ops::Range<u32>) -> std::ops::Range<usize> {
    let first = orders.partition_point(|o| o.block_position() < blocks.start as usize);
    let end = orders.partition_point(|o| o.block_position() < blocks.end as usize);
    first..end.max(first)
}

impl EventTable {
    /// Appends the events of `from` (in stream order) whose blocks are at `blocks` positions.
    pub fn append_blocks(&mut self, from: &EventTable, blocks: std::ops::Range<u32>) {
        let rows = rows_of_blocks(&from.orders, blocks);
        self.events.extend_from_slice(&from.events[rows.clone()]);
        self.orders.extend_from_slice(&from.orders[rows.clone()]);
        if !from.ids.is_empty() {
            self.ids.extend_from_slice(&from.ids[rows]);
        }
    }

    pub fn clear(&mut self) {
        self.events.clear();
        self.ids.clear();
        self.orders.clear();
    }

    /// Puts rows in stream order (partitions of one instance may interleave blocks).
    pub fn sort(&mut self) {
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

impl<T: Copy> RowsInOrder<T> {
    /// Appends the rows of `from` (in stream order) whose blocks are at `blocks` positions.
    pub fn append_blocks(&mut self, from: &Self, blocks: std::ops::Range<u32>) {
        let rows = rows_of_blocks(&from.orders, blocks);
        self.rows.extend_from_slice(&from.rows[rows.clone()]);
        self.orders.extend_from_slice(&from.orders[rows]);
    }

    pub fn clear(&mut self) {
        self.rows.clear();
        self.orders.clear();
    }

    /// Puts rows in stream order (partitions of one instance may interleave blocks).
    pub fn sort(&mut self) {
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
