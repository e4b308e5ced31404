//! Trace writing: tracks ([`crate::tracks`]) → `.perfetto-trace` bytes, streamed track by
//! track, without knowing what kind of data a track came from.
//!
//! Sequence 1 carries the track descriptors, each written just before the first events that
//! use it. A thread track with many events gets a sequence of its own, written as Perfetto's
//! SDK writes them: a first packet that clears the incremental state and sets the sequence's
//! defaults (its track, an incremental clock), then one packet per event carrying a timestamp
//! delta and interned ids (names, categories, source locations, annotation names and texts).
//! The lanes of a group, and small thread tracks gathered together, share a sequence instead,
//! each event naming its track: names are interned once for all of them (for small threads,
//! encoded as they arrive, in packets of interned data ahead of the events). Events of a
//! sequence are in timestamp order, ENDs before BEGINs at equal times.

mod encode;
mod interning;
mod merge;
pub mod proto;
mod shared;

use anyhow::{Result, bail};
use std::io::Write;

use crate::symbols::SymbolTable;
use crate::tracks::{Place, ProcessHeading, Slice, Track, TrackGroup};
use interning::SequenceWriter;
use merge::{
    EventKey, GivenMerge, Item, MergeBuffers, Merged, item, nested_events, nested_events_continued,
};
use prost::Message;
use proto::{
    CHILD_ORDERING_EXPLICIT, CounterDescriptor, ProcessDescriptor, ThreadDescriptor, TracePacket,
    TrackDescriptor,
};
use shared::SharedThreads;

const DESCRIPTOR_SEQUENCE: u32 = 1;

/// Track uuids: stable functions of the track's identity, never zero. Where tracks share a
/// sequence (the lanes of a group, small threads) each event names its track, so those uuids
/// are small: odd for threads (from the tid), even for lanes (numbered across the trace).
/// Process and group uuids never appear in events. Thread ids, lane and group numbers run on
/// over the processes of a trace, so they stay unique.
fn process_uuid(index: usize) -> u64 {
    (1 << 40) | index as u64
}

/// The pid of the `index`th process of a trace.
pub fn pid_of(index: usize) -> i32 {
    index as i32 + 1
}

/// The `group`th group written (0: the async lanes, then logs, ...).
fn group_uuid(group: u64) -> u64 {
    (2 << 40) | group
}
fn thread_uuid(tid: i32) -> u64 {
    ((tid as u64) << 1) | 1
}
/// The `lane`th lane written, in all groups.
fn lane_uuid(lane: u64) -> u64 {
    (lane + 1) << 1
}

/// A thread track with fewer events than this shares a sequence with other such tracks, each
/// event naming its track (2–3 bytes), instead of having one of its own where every name it
/// uses is interned again: with thousands of short-lived threads, that doubled the trace.
const SHARED_SEQUENCE_EVENTS: usize = 1024;
/// A thread track of this many slices has a sequence of its own.
pub const OWN_SEQUENCE_SLICES: usize = SHARED_SEQUENCE_EVENTS / 2;
/// Small thread tracks are gathered until they hold this many events, or this many bytes once
/// encoded, then written together (bounded memory, time order within the sequence). Each batch
/// interns again the names it uses, and the more threads a batch holds the shorter its
/// timestamp deltas; but its writing, in time order, waits for its last thread and then holds
/// the encoder. 2,000 threads of 400 events each (the thread benchmark, warm; wall time paired
/// with batches of 2^16): 2^16 events 22.71 bytes per event; 2^18 22.15, +3%; 3 × 2^17 21.99,
/// +7%; all in one 21.73, +10%.
const SHARED_BATCH_EVENTS: usize = 1 << 18;
const SHARED_BATCH_BYTES: usize = 16 << 20;

/// Writes a trace of one or more processes, track by track; nothing is kept once a track is
/// written.
pub struct TraceWriter<W: Write> {
    out: W,
    bytes: u64,
    /// Processes started so far; the tracks written belong to the last.
    processes: usize,
    next_sequence: u32,
    /// Groups written so far.
    groups: u64,
    /// Lanes written so far, in all groups.
    lanes: u64,
    /// Small thread tracks waiting to be written together, their events encoded.
    small_threads: SharedThreads,
    frame: Vec<u8>,
    sequence: SequenceWriter,
    /// Kept from one merged sequence to the next.
    merge_buffers: MergeBuffers,
    /// The lanes of the group started last, and its sequence once it has one.
    group_lanes: Vec<u64>,
    group_sequence: Option<u32>,
    /// The ends of the slices still open after the last piece of a thread.
    thread_open: Vec<i64>,
}

impl<W: Write> TraceWriter<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            bytes: 0,
            processes: 0,
            next_sequence: DESCRIPTOR_SEQUENCE,
            groups: 0,
            lanes: 0,
            small_threads: SharedThreads::default(),
            frame: Vec::new(),
            sequence: SequenceWriter::default(),
            merge_buffers: MergeBuffers::default(),
            group_lanes: Vec::new(),
            group_sequence: None,
            thread_open: Vec::new(),
        }
    }

    /// Starts the next process (pid 1, 2, …): the tracks written from now on are its own.
    pub fn start_process(&mut self, heading: &ProcessHeading) -> Result<()> {
        self.ensure_threads_flushed()?;
        self.processes += 1;
        self.descriptor(TrackDescriptor {
            uuid: Some(self.process_uuid()),
            process: Some(ProcessDescriptor {
                pid: Some(self.pid()),
                process_name: Some(heading.name.clone()),
                process_labels: heading.labels.clone(),
            }),
            ..Default::default()
        })
    }

    fn pid(&self) -> i32 {
        pid_of(self.processes.saturating_sub(1))
    }

    fn process_uuid(&self) -> u64 {
        process_uuid(self.processes.saturating_sub(1))
    }

    /// A thread of the process: written now on a sequence of its own, or, when small, encoded
    /// to be written with other small ones ([`Self::flush_threads`] writes the last of them).
    pub fn track(&mut self, symbols: &SymbolTable, track: Track) -> Result<()> {
        let tid = thread_tid(&track)?;
        let events = 2 * track.slices.len();
        if events >= SHARED_SEQUENCE_EVENTS {
            self.thread_descriptor(&track.name, tid)?;
            return self.track_events(symbols, thread_uuid(tid), &track.slices);
        }
        let shared = &mut self.small_threads;
        shared.add(symbols, &track, tid, thread_uuid(tid));
        if shared.events() >= SHARED_BATCH_EVENTS || shared.bytes() >= SHARED_BATCH_BYTES {
            self.flush_threads()?;
        }
        Ok(())
    }

    /// A piece of a large thread's track, on a sequence of its own: the `first` piece
    /// describes the thread, and each piece's slices come after those of the pieces before
    /// (the slices of [`Self::track`]'s track, cut where none is open). The same bytes as
    /// the whole track written at once, which must have been a large one.
    pub fn thread_piece(
        &mut self,
        symbols: &SymbolTable,
        track: &Track,
        first: bool,
        last: bool,
    ) -> Result<()> {
        let tid = thread_tid(track)?;
        let open = std::mem::take(&mut self.thread_open);
        let mut events = nested_events_continued(&track.slices, open, last);
        if first {
            // Nothing is open before it: its first event is the BEGIN of its earliest slice.
            let Some(first_ts) = track.slices.iter().map(|s| s.begin_ns).min() else {
                bail!("internal error: a thread's first piece has no slice");
            };
            self.thread_descriptor(&track.name, tid)?;
            self.next_sequence += 1;
            let uuid = Some(thread_uuid(tid));
            (self.sequence).start(self.next_sequence, uuid, first_ts, &mut self.frame);
            self.emit()?;
        }
        self.nested(symbols, &track.slices, events.by_ref())?;
        self.thread_open = events.into_open();
        Ok(())
    }

    /// Writes the small thread tracks kept so far, on one sequence.
    pub fn flush_threads(&mut self) -> Result<()> {
        let mut shared = std::mem::take(&mut self.small_threads);
        for (tid, name) in shared.threads() {
            self.thread_descriptor(name, *tid)?;
        }
        let mut buffers = std::mem::take(&mut self.merge_buffers);
        let sequence = self.next_sequence + u32::from(shared.events() > 0);
        let (out, bytes, frame) = (&mut self.out, &mut self.bytes, &mut self.frame);
        let written = shared.write(sequence, &mut buffers, frame, |frame| {
            emit(frame, out, bytes)
        });
        self.next_sequence = sequence;
        self.merge_buffers = buffers;
        self.small_threads = shared;
        written
    }

    fn ensure_threads_flushed(&self) -> Result<()> {
        if !self.small_threads.threads().is_empty() {
            anyhow::bail!("internal error: thread tracks left unwritten");
        }
        Ok(())
    }

    fn thread_descriptor(&mut self, name: &str, tid: i32) -> Result<()> {
        self.descriptor(TrackDescriptor {
            uuid: Some(thread_uuid(tid)),
            parent_uuid: Some(self.process_uuid()),
            thread: Some(ThreadDescriptor {
                pid: Some(self.pid()),
                tid: Some(tid),
                thread_name: Some(name.to_owned()),
            }),
            ..Default::default()
        })
    }

    /// A group's lanes, under one track of the process named after the group.
    pub fn track_group(&mut self, symbols: &SymbolTable, group: &TrackGroup) -> Result<()> {
        self.start_group(group)?;
        self.group_part(symbols, &group.lanes, None)
    }

    /// Describes a group and its lanes (names; units of counter lanes), whose items
    /// [`Self::group_part`] then writes, in one or more parts.
    pub fn start_group(&mut self, group: &TrackGroup) -> Result<()> {
        self.ensure_threads_flushed()?;
        self.group_lanes.clear();
        self.group_sequence = None;
        let tracks = &group.lanes;
        if tracks.is_empty() {
            return Ok(());
        }
        let g = self.groups;
        self.groups += 1;
        let first_lane = self.lanes;
        self.lanes += tracks.len() as u64;
        self.group_lanes = (first_lane..self.lanes).map(lane_uuid).collect();
        self.descriptor(TrackDescriptor {
            uuid: Some(group_uuid(g)),
            parent_uuid: Some(self.process_uuid()),
            name: Some(group.name.clone()),
            child_ordering: Some(CHILD_ORDERING_EXPLICIT),
            ..Default::default()
        })?;
        for (i, lane) in tracks.iter().enumerate() {
            let counter = (!lane.counters.is_empty()).then(|| CounterDescriptor {
                unit_name: (!lane.unit.is_empty()).then(|| lane.unit.clone()),
            });
            self.descriptor(TrackDescriptor {
                uuid: Some(self.group_lanes[i]),
                parent_uuid: Some(group_uuid(g)),
                name: Some(lane.name.clone()),
                sibling_order_rank: Some(i as i32),
                counter,
                ..Default::default()
            })?;
        }
        Ok(())
    }

    /// Items of the lanes of the group started last (lane by lane, in its order), all later
    /// than those of its previous parts: they continue its one sequence, where names and
    /// threads are interned once for all lanes. `order`: their merged order, when known
    /// ([`crate::tracks::GroupPart::order`]).
    pub fn group_part(
        &mut self,
        symbols: &SymbolTable,
        lanes: &[Track],
        order: Option<&[u32]>,
    ) -> Result<()> {
        if lanes.len() != self.group_lanes.len() {
            bail!("internal error: a group's part has another number of lanes than the group");
        }
        let uuids = std::mem::take(&mut self.group_lanes);
        let mut buffers = std::mem::take(&mut self.merge_buffers);
        let events = match order {
            Some(order) => Merged::Given(GivenMerge::of(lanes, order)),
            None => buffers.merge(lanes),
        };
        let written = self.write_merged(symbols, lanes, &uuids, events);
        self.merge_buffers = buffers;
        self.group_lanes = uuids;
        written
    }

    /// The events of a group's lanes (`uuids`), each naming its lane, in time order: they
    /// continue the sequence of the group's earlier parts, if any.
    fn write_merged(
        &mut self,
        symbols: &SymbolTable,
        tracks: &[Track],
        uuids: &[u64],
        events: impl Iterator<Item = EventKey>,
    ) -> Result<()> {
        let mut events = events.peekable();
        let Some(first) = events.peek() else {
            return Ok(());
        };
        if self.group_sequence != Some(self.next_sequence) {
            self.next_sequence += 1;
            (self.sequence).start(self.next_sequence, None, first.ts, &mut self.frame);
            self.emit()?;
            self.group_sequence = Some(self.next_sequence);
        }
        for key in events {
            let lane = key.lane as usize;
            let (uuid, out) = (Some(uuids[lane]), &mut self.frame);
            match item(&tracks[lane], key) {
                Item::Begin(slice) => self.sequence.begin(symbols, slice, uuid, out),
                Item::End => self.sequence.end(key.ts, uuid, out),
                Item::Instant(instant) => self.sequence.instant(symbols, instant, uuid, out),
                Item::Counter(value) => self.sequence.counter(key.ts, value, uuid, out),
            }
            self.emit()?;
        }
        Ok(())
    }

    /// Flushes; returns the number of bytes written, and the output.
    pub fn finish(mut self) -> Result<(u64, W)> {
        self.ensure_threads_flushed()?;
        self.drain()?;
        self.out.flush()?;
        Ok((self.bytes, self.out))
    }

    fn descriptor(&mut self, descriptor: TrackDescriptor) -> Result<()> {
        let packet = TracePacket {
            trusted_packet_sequence_id: Some(DESCRIPTOR_SEQUENCE),
            track_descriptor: Some(descriptor),
            ..Default::default()
        };
        let body = packet.encode_to_vec();
        encode::frame(&body, &mut self.frame);
        self.emit()
    }

    /// Packets accumulate in one buffer, handed to the output in large writes ([`emit`]).
    fn emit(&mut self) -> Result<()> {
        emit(&mut self.frame, &mut self.out, &mut self.bytes)
    }

    fn drain(&mut self) -> Result<()> {
        drain(&mut self.frame, &mut self.out, &mut self.bytes)
    }

    /// The events of one track on a sequence of its own, whose default track it is.
    fn track_events(&mut self, symbols: &SymbolTable, uuid: u64, slices: &[Slice]) -> Result<()> {
        let mut events = nested_events(slices).peekable();
        let Some(&(first_ts, _)) = events.peek() else {
            return Ok(());
        };
        self.next_sequence += 1;
        self.sequence
            .start(self.next_sequence, Some(uuid), first_ts, &mut self.frame);
        self.emit()?;
        self.nested(symbols, slices, &mut events)
    }

    /// BEGINs and ENDs of a track's slices on its own sequence, started already.
    fn nested(
        &mut self,
        symbols: &SymbolTable,
        slices: &[Slice],
        events: &mut impl Iterator<Item = (i64, Option<usize>)>,
    ) -> Result<()> {
        for (ts, slice) in events {
            match slice {
                Some(i) => (self.sequence).begin(symbols, &slices[i], None, &mut self.frame),
                None => self.sequence.end(ts, None, &mut self.frame),
            }
            self.emit()?;
        }
        Ok(())
    }
}

/// Hands the packets gathered in `frame` to `out` once they make a large write.
fn emit(frame: &mut Vec<u8>, out: &mut impl Write, bytes: &mut u64) -> Result<()> {
    if frame.len() >= 1 << 18 {
        drain(frame, out, bytes)?;
    }
    Ok(())
}

fn drain(frame: &mut Vec<u8>, out: &mut impl Write, bytes: &mut u64) -> Result<()> {
    out.write_all(frame)?;
    *bytes += frame.len() as u64;
    frame.clear();
    Ok(())
}

fn thread_tid(track: &Track) -> Result<i32> {
    match track.place {
        Place::Thread { tid } => Ok(tid),
        Place::Lane => anyhow::bail!("internal error: a group's lane written as a thread"),
    }
}

#[cfg(test)]
mod tests;
