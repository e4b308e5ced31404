//! Reading a partition that small streams share: each of its streams asks for its own rows, in
//! stream order, so the file is decoded a batch at a time, as far as the stream asking needs,
//! each stream's rows are converted from the batch into its table, and batches are dropped once
//! read. Thousands of streams cost one file read and one decoding, with a batch or two held at
//! a time.

use anyhow::{Result, bail};
use arrow_array::{RecordBatch, UInt32Array};
use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::Mutex;

use super::View;
use super::files::{OpenFile, RowTable, column, keys};
use crate::clock::Clock;
use crate::events::EventOrder;

/// The shared partitions being read, by index in the plan.
#[derive(Default)]
pub struct SharedFiles(Mutex<HashMap<usize, SharedFile>>);

impl SharedFiles {
    /// Appends the rows of blocks at `blocks` positions from the open shared partition
    /// `planned` to `table`. `Ok(false)`: it is not open (or those rows were read already):
    /// the caller opens it again ([`Self::open`]).
    pub fn take<T: RowTable>(
        &self,
        planned: usize,
        blocks: Range<u32>,
        table: &mut T,
        (view, clock): (View, &Clock),
    ) -> Result<bool> {
        let mut files = self.lock();
        let Some(file) = files.get_mut(&planned) else {
            return Ok(false);
        };
        let taken = file.take(blocks, table, view, clock);
        if !matches!(taken, Ok(true)) || file.readers_left == 0 {
            files.remove(&planned);
        }
        taken
    }

    /// Reads the rows of blocks at `blocks` positions from a shared partition just opened
    /// into `table`, and keeps it open for its `readers - 1` other streams.
    pub fn open<T: RowTable>(
        &self,
        planned: usize,
        (file, readers): (OpenFile, usize),
        blocks: Range<u32>,
        table: &mut T,
        (view, clock): (View, &Clock),
    ) -> Result<()> {
        let mut file = SharedFile::new(file, readers);
        file.take(blocks, table, view, clock)?;
        if file.readers_left > 0 {
            self.lock().insert(planned, file);
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<usize, SharedFile>> {
        (self.0.lock()).unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A shared partition file being read in stream order (by streams of one view: one kind of
/// table).
struct SharedFile {
    file: OpenFile,
    /// Decoded batches whose rows may still be asked for. A stream's rows are converted from
    /// them straight into its table: nothing is copied in between.
    held: VecDeque<HeldBatch>,
    /// Every batch is decoded.
    done: bool,
    /// The rows of blocks before this position were read.
    read_to: u32,
    readers_left: usize,
    /// The place in stream order of the last row decoded that this export reads.
    last_order: Option<EventOrder>,
}

/// A batch of a shared file and the block position of each of its rows.
struct HeldBatch {
    batch: RecordBatch,
    /// Never decreasing: a row of a block this export does not read (which no stream asks
    /// for) has the position of the row before it.
    positions: Vec<u32>,
}

impl HeldBatch {
    fn last_position(&self) -> u32 {
        self.positions.last().copied().unwrap_or(0)
    }

    /// The first row whose block is at `position` or later.
    fn first_row_at(&self, position: u32) -> usize {
        self.positions.partition_point(|&p| p < position)
    }
}

impl SharedFile {
    fn new(file: OpenFile, readers: usize) -> Self {
        Self {
            file,
            held: VecDeque::new(),
            done: false,
            read_to: 0,
            readers_left: readers,
            last_order: None,
        }
    }

    /// Appends the rows of blocks at `blocks` positions to `table`; `false` when rows at or
    /// after `blocks.start` were read already.
    fn take<T: RowTable>(
        &mut self,
        blocks: Range<u32>,
        table: &mut T,
        view: View,
        clock: &Clock,
    ) -> Result<bool> {
        if blocks.start < self.read_to {
            return Ok(false);
        }
        // Rows before the blocks asked for are never asked for again.
        while (self.held.front()).is_some_and(|held| held.last_position() < blocks.start) {
            self.held.pop_front();
        }
        while !self.done && (self.held.back()).is_none_or(|held| held.last_position() < blocks.end)
        {
            match self.file.next_batch()? {
                Some(batch) if batch.num_rows() > 0 => {
                    let held = self.hold(batch)?;
                    self.held.push_back(held);
                }
                Some(_) => {}
                None => self.done = true,
            }
        }
        for held in &self.held {
            let rows = held.first_row_at(blocks.start)..held.first_row_at(blocks.end);
            if !rows.is_empty() {
                let keys = &self.file.keys;
                table.read_rows(&held.batch, keys, (view, clock), rows)?;
            }
        }
        self.read_to = blocks.end;
        self.readers_left = self.readers_left.saturating_sub(1);
        Ok(true)
    }

    /// The block positions of a batch's rows, checking that they follow in stream order.
    fn hold(&mut self, batch: RecordBatch) -> Result<HeldBatch> {
        let rows = 0..batch.num_rows();
        let blocks = &self.file.keys.blocks;
        let block = keys(&batch, "block", blocks, &rows)?;
        let index = column::<UInt32Array>(&batch, "index")?.values();
        let mut positions = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(position) = blocks[block[row] as usize] {
                let order = EventOrder::new(position, index[row]);
                if self.last_order.is_some_and(|last| last > order) {
                    bail!("its rows are not in stream order");
                }
                self.last_order = Some(order);
            }
            let last = self.last_order.map_or(0, |o| o.block_position() as u32);
            positions.push(last);
        }
        Ok(HeldBatch { batch, positions })
    }
}
