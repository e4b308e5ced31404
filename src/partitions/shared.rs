//! Reading a partition that small streams share: each of its streams asks for its own rows, in
//! stream order, so the file is decoded a batch at a time, as far as the stream asking needs,
//! and rows are dropped once read. Thousands of streams cost one file read and one decoding,
//! with a batch or two held at a time.

use anyhow::{Result, bail};
use std::any::Any;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Mutex;

use super::View;
use super::files::{BATCH_ROWS, OpenFile, RowTable};
use crate::clock::Clock;

/// The shared partitions being read, by index in the plan.
#[derive(Default)]
pub struct SharedFiles(Mutex<HashMap<usize, Box<dyn Any + Send>>>);

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
        let Some(file) = file.downcast_mut::<SharedFile<T>>() else {
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
        let mut file = SharedFile {
            file,
            rows: T::default(),
            next: 0,
            done: false,
            read_to: 0,
            readers_left: readers,
        };
        file.take(blocks, table, view, clock)?;
        if file.readers_left > 0 {
            self.lock().insert(planned, Box::new(file));
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<usize, Box<dyn Any + Send>>> {
        (self.0.lock()).unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A shared partition file being read in stream order.
struct SharedFile<T> {
    file: OpenFile,
    /// Decoded rows; those before `next` were read.
    rows: T,
    next: usize,
    /// Every batch is decoded.
    done: bool,
    /// The rows of blocks before this position were read.
    read_to: u32,
    readers_left: usize,
}

impl<T: RowTable> SharedFile<T> {
    /// Appends the rows of blocks at `blocks` positions to `table`; `false` when rows at or
    /// after `blocks.start` were read already.
    fn take(
        &mut self,
        blocks: Range<u32>,
        table: &mut T,
        view: View,
        clock: &Clock,
    ) -> Result<bool> {
        if blocks.start < self.read_to {
            return Ok(false);
        }
        let end = blocks.end as usize;
        while !self.done && self.last_block().is_none_or(|last| last < end) {
            let before = self.rows.len();
            self.done = !self.file.read_batch(&mut self.rows, view, clock)?;
            let rows = before.saturating_sub(1)..self.rows.len();
            if !rows
                .clone()
                .skip(1)
                .all(|r| self.rows.order(r - 1) <= self.rows.order(r))
            {
                bail!("its rows are not in stream order");
            }
        }
        let first = self.first_row_at(blocks.start as usize);
        let past = self.first_row_at(end);
        table.append_rows(&self.rows, first..past);
        self.next = past;
        self.read_to = blocks.end;
        self.readers_left = self.readers_left.saturating_sub(1);
        // Read rows go once they are most of what is held (amortized: never a row moved twice
        // on average).
        if self.next >= BATCH_ROWS && 2 * self.next >= self.rows.len() {
            self.rows.drop_front(self.next);
            self.next = 0;
        }
        Ok(true)
    }

    fn last_block(&self) -> Option<usize> {
        let len = self.rows.len();
        (len > self.next).then(|| self.rows.order(len - 1).block_position())
    }

    /// The first unread row whose block is at `position` or later.
    fn first_row_at(&self, position: usize) -> usize {
        let (mut low, mut high) = (self.next, self.rows.len());
        while low < high {
            let middle = (low + high) / 2;
            match self.rows.order(middle).block_position() < position {
                true => low = middle + 1,
                false => high = middle,
            }
        }
        low
    }
}
