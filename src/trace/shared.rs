//! Small thread tracks written together on one sequence, each event naming its track.
//!
//! A track's events are encoded as soon as it arrives, interning names for the whole batch,
//! and kept as bytes; once the batch is full (or the threads end) it is written in time order:
//! its interned data first, then the events, whose packets only need their timestamp deltas.
//! Encoding on arrival keeps the encoder busy while the threads are still being read, so a
//! batch can hold many threads: names are interned once for all of them, and the events of
//! many threads between two others keep timestamp deltas short.

use super::encode::varint;
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
    /// Where each thread's run of events starts in `times` (and `offsets`).
    runs: Vec<u32>,
    /// The events' `TrackEvent`s, thread after thread, each in its thread's order and after its
    /// size (a varint): the batch holds little more than the packets it will write.
    records: Vec<u8>,
    /// Each event's time, and where its record starts in `records`. Read in each thread's
    /// order to make the merge's keys, which carry the offset: the merged order then reads
    /// nothing else at random.
    times: Vec<i64>,
    offsets: Vec<u32>,
    /// Bytes of `records` that are sizes.
    size_bytes: usize,
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

    /// Bytes of events held (their sizes before them not counted).
    pub fn bytes(&self) -> usize {
        self.records.len() - self.size_bytes
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
            let offset = self.records.len();
            self.offsets.push(offset as u32);
            self.times.push(ts);
            // A one-byte size first, widened in place when the record is larger (rare).
            self.records.push(0);
            let event = &mut self.records;
            match slice {
                Some(i) => {
                    (self.sequence).encode_begin(symbols, &track.slices[i], Some(uuid), event)
                }
                None => self.sequence.encode_end(Some(uuid), event),
            }
            self.size_bytes += set_size(&mut self.records, offset);
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
            let events = Events(&self.records);
            let lanes = run_keys(&self.runs, &self.times, &self.offsets);
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
        self.offsets.clear();
        self.size_bytes = 0;
        self.bounds = None;
        self.interned.clear();
        self.interned_ends.clear();
    }
}

/// Writes the size of the record at `offset` (after its placeholder byte) before it; returns
/// the length of the size.
fn set_size(records: &mut Vec<u8>, offset: usize) -> usize {
    let size = records.len() - offset - 1;
    if size < 0x80 {
        records[offset] = size as u8;
        return 1;
    }
    let mut prefix = Vec::with_capacity(10);
    varint(size as u64, &mut prefix);
    let length = prefix.len();
    records.splice(offset..offset + 1, prefix);
    length
}

/// The keys of each thread's events, a run of the batch starting at `runs[run]`: (time, run,
/// offset of the event's record).
fn run_keys<'a>(
    runs: &[u32],
    times: &'a [i64],
    offsets: &'a [u32],
) -> Vec<impl Iterator<Item = EventKey> + 'a> {
    let starts = runs.iter().map(|&start| start as usize);
    let ends = starts.clone().skip(1).chain([times.len()]);
    (starts.zip(ends).enumerate())
        .map(|(run, (start, end))| {
            (times[start..end].iter().zip(&offsets[start..end])).map(move |(&ts, &offset)| {
                EventKey {
                    ts,
                    lane: run as u32,
                    item: offset,
                }
            })
        })
        .collect()
}

/// The records of a batch, by offset.
#[derive(Clone, Copy)]
struct Events<'a>(&'a [u8]);

impl<'a> Events<'a> {
    /// The `TrackEvent` of the record at `offset`.
    fn at(self, offset: u32) -> &'a [u8] {
        let mut record = &self.0[offset as usize..];
        // The batch wrote the size itself ([`set_size`]): it always decodes.
        let size = prost::encoding::decode_varint(&mut record).unwrap_or_default();
        &record[..size as usize]
    }
}

impl Prefetch for Events<'_> {
    fn prefetch(&self, key: EventKey) {
        if let Some(byte) = self.0.get(key.item as usize) {
            prefetch(byte);
        }
    }
}
