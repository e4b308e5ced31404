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
    /// Each thread's run of events in `records`: where it starts, and its first event's time.
    runs: Vec<(usize, i64)>,
    /// The events, thread after thread, each in its thread's order: the time since the event
    /// before it in its thread (a varint), then its `TrackEvent`'s length (a varint) and the
    /// `TrackEvent`. A record is about as long as its event: the batch holds little more than
    /// the packets it will write.
    records: Vec<u8>,
    events: usize,
    last_ns: i64,
    /// Interned data entries, in order of first use, and where each of its packets ends.
    interned: Vec<u8>,
    interned_ends: Vec<usize>,
    /// One event, being encoded.
    event: Vec<u8>,
}

impl SharedThreads {
    /// Events held.
    pub fn events(&self) -> usize {
        self.events
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
            self.last_ns = i64::MIN;
        }
        self.threads.push((tid, track.name.clone()));
        let mut events = nested_events(&track.slices).peekable();
        let Some(&(first, _)) = events.peek() else {
            return;
        };
        self.runs.push((self.records.len(), first));
        let mut before = first;
        for (ts, slice) in events {
            self.event.clear();
            let event = &mut self.event;
            match slice {
                Some(i) => {
                    (self.sequence).encode_begin(symbols, &track.slices[i], Some(uuid), event)
                }
                None => self.sequence.encode_end(Some(uuid), event),
            }
            // A thread's events are in time order: the difference is never negative.
            varint(ts.saturating_sub(before).max(0) as u64, &mut self.records);
            varint(self.event.len() as u64, &mut self.records);
            self.records.extend_from_slice(&self.event);
            self.events += 1;
            self.keep_interned();
            before = ts;
        }
        self.last_ns = self.last_ns.max(before);
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
        if let Some(first) = self.runs.iter().map(|&(_, ts)| ts).min() {
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
            let records = &self.records[..];
            let ends = self.runs.iter().skip(1).map(|&(at, _)| at);
            let lanes = (self
                .runs
                .iter()
                .zip(ends.chain([records.len()]))
                .enumerate())
            .map(|(run, (&(at, ts), end))| Run {
                records: &records[..end],
                at,
                ts,
                run: run as u32,
            })
            .collect();
            let bounds = (first, self.last_ns);
            let events = Events(records);
            for key in buffers.merge_lanes(lanes, bounds, self.events, events) {
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
        self.events = 0;
        self.interned.clear();
        self.interned_ends.clear();
    }
}

/// The keys of one thread's events, read from its records: (time, run, where the event's
/// length is).
struct Run<'a> {
    /// The records up to the end of the run.
    records: &'a [u8],
    /// Where the next record starts.
    at: usize,
    /// The time of the event before it (of the first, for the first).
    ts: i64,
    run: u32,
}

impl Iterator for Run<'_> {
    type Item = EventKey;

    fn next(&mut self) -> Option<EventKey> {
        let mut rest = self.records.get(self.at..).filter(|r| !r.is_empty())?;
        let delta = prost::encoding::decode_varint(&mut rest).ok()?;
        let item = self.records.len() - rest.len();
        let len = prost::encoding::decode_varint(&mut rest).ok()? as usize;
        self.at = self.records.len() - rest.len() + len;
        self.ts = self.ts.saturating_add(delta as i64);
        Some(EventKey {
            ts: self.ts,
            lane: self.run,
            item: item as u32,
        })
    }
}

/// The records of a batch, read by where an event's length is.
#[derive(Clone, Copy)]
struct Events<'a>(&'a [u8]);

impl<'a> Events<'a> {
    /// The `TrackEvent` whose length is at `at`.
    fn at(self, at: u32) -> &'a [u8] {
        let mut rest = &self.0[at as usize..];
        let len = prost::encoding::decode_varint(&mut rest).unwrap_or(0) as usize;
        &rest[..len.min(rest.len())]
    }
}

impl Prefetch for Events<'_> {
    fn prefetch(&self, key: EventKey) {
        if let Some(byte) = self.0.get(key.item as usize) {
            prefetch(byte);
        }
    }
}
