//! Small thread tracks written together on one sequence, each event naming its track.
//!
//! A track's events are encoded as soon as it arrives, interning names for the whole batch,
//! and kept as bytes; once the batch is full (or the threads end) it is written in time order:
//! its interned data first, then the events, whose packets only need their timestamp deltas.
//! Encoding on arrival keeps the encoder busy while the threads are still being read, so a
//! batch can hold many threads: names are interned once for all of them, and the events of
//! many threads between two others keep timestamp deltas short.

use super::interning::SequenceWriter;
use super::merge::{EventKey, MergeBuffers, Prefetch, nested_events, prefetch};
use crate::symbols::SymbolTable;
use crate::tracks::Track;

/// Interned data is written in packets of about this size at most (entries are not split).
const INTERNED_PACKET_BYTES: usize = 1 << 16;

/// The small threads of a batch, their events encoded.
#[derive(Default)]
pub struct SharedThreads {
    sequence: SequenceWriter,
    /// The tid and name of each thread, in arrival order.
    threads: Vec<(i32, String)>,
    /// Where each thread's run of events starts in `times` (and `starts`).
    runs: Vec<u32>,
    /// The events' `TrackEvent`s, thread after thread, each in its thread's order: the batch
    /// holds little more than the packets it will write.
    records: Vec<u8>,
    /// Each event's time, and where its `TrackEvent` starts in `records`.
    times: Vec<i64>,
    starts: Vec<u32>,
    /// The times of the batch's first and last events.
    bounds: Option<(i64, i64)>,
    /// Interned data entries, in order of first use, and where each of its packets ends.
    interned: Vec<u8>,
    interned_ends: Vec<usize>,
}

impl SharedThreads {
    /// Events held.
    pub fn events(&self) -> usize {
        self.times.len()
    }

    /// Bytes of events held.
    pub fn bytes(&self) -> usize {
        self.records.len()
    }

    /// The threads held: tid and name, in arrival order.
    pub fn threads(&self) -> &[(i32, String)] {
        &self.threads
    }

    /// Encodes the events of `track` (thread `tid`, track `uuid`).
    pub fn add(&mut self, symbols: &SymbolTable, track: &Track, tid: i32, uuid: u64) {
        if self.threads.is_empty() {
            self.sequence.forget_interned();
        }
        self.threads.push((tid, track.name.clone()));
        let run_start = self.times.len();
        self.runs.push(run_start as u32);
        for (ts, slice) in nested_events(&track.slices) {
            self.starts.push(self.records.len() as u32);
            self.times.push(ts);
            let event = &mut self.records;
            match slice {
                Some(i) => {
                    (self.sequence).encode_begin(symbols, &track.slices[i], Some(uuid), event)
                }
                None => self.sequence.encode_end(Some(uuid), event),
            }
            self.keep_interned();
        }
        // A thread's events are in time order: its first and last bound the run.
        if let (Some(&first), Some(&last)) = (self.times.get(run_start), self.times.last()) {
            let (low, high) = self.bounds.unwrap_or((first, last));
            self.bounds = Some((low.min(first), high.max(last)));
        }
    }

    /// Keeps the interned data the event encoded last used first.
    fn keep_interned(&mut self) {
        let interned = self.sequence.interned();
        if interned.is_empty() {
            return;
        }
        let packet_start = self.interned_ends.last().copied().unwrap_or(0);
        let size = self.interned.len() - packet_start;
        if size > 0 && size + interned.len() > INTERNED_PACKET_BYTES {
            self.interned_ends.push(self.interned.len());
        }
        self.interned.extend_from_slice(interned);
    }

    /// Writes the batch's events as sequence `sequence_id`, calling `emit` after each packet;
    /// then holds nothing. The threads' descriptors must be written before.
    pub fn write(
        &mut self,
        sequence_id: u32,
        buffers: &mut MergeBuffers,
        out: &mut Vec<u8>,
        mut emit: impl FnMut(&mut Vec<u8>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        if let Some((first, last)) = self.bounds {
            self.sequence.open(sequence_id, None, first, out);
            emit(out)?;
            let mut start = 0;
            for end in self
                .interned_ends
                .iter()
                .copied()
                .chain([self.interned.len()])
            {
                if end > start {
                    (self.sequence).write_interned(&self.interned[start..end], out);
                    emit(out)?;
                }
                start = end;
            }
            let events = Events {
                records: &self.records,
                starts: &self.starts,
            };
            let lanes = run_keys(&self.runs, &self.times);
            let count = self.times.len();
            for key in buffers.merge_lanes(lanes, (first, last), count, events) {
                (self.sequence).write_encoded(key.ts, events.at(key.item), out);
                emit(out)?;
            }
        }
        self.clear();
        Ok(())
    }

    fn clear(&mut self) {
        self.threads.clear();
        self.runs.clear();
        self.records.clear();
        self.times.clear();
        self.starts.clear();
        self.bounds = None;
        self.interned.clear();
        self.interned_ends.clear();
    }
}

/// The keys of each thread's events, a run of the batch starting at `runs[run]`: (time, run,
/// index of the event in the batch).
fn run_keys<'a>(runs: &[u32], times: &'a [i64]) -> Vec<impl Iterator<Item = EventKey> + 'a> {
    let starts = runs.iter().map(|&start| start as usize);
    let ends = starts.clone().skip(1).chain([times.len()]);
    (starts.zip(ends).enumerate())
        .map(|(run, (start, end))| {
            (start..end).map(move |item| EventKey {
                ts: times[item],
                lane: run as u32,
                item: item as u32,
            })
        })
        .collect()
}

/// The events of a batch, by index.
#[derive(Clone, Copy)]
struct Events<'a> {
    records: &'a [u8],
    starts: &'a [u32],
}

impl<'a> Events<'a> {
    /// The `TrackEvent` of event `item`.
    fn at(self, item: u32) -> &'a [u8] {
        let item = item as usize;
        let start = self.starts[item] as usize;
        let end = (self.starts.get(item + 1)).map_or(self.records.len(), |&end| end as usize);
        &self.records[start..end]
    }
}

impl Prefetch for Events<'_> {
    fn prefetch(&self, key: EventKey) {
        let start = self.starts.get(key.item as usize);
        if let Some(byte) = start.and_then(|&start| self.records.get(start as usize)) {
            prefetch(byte);
        }
    }
}
