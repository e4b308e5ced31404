//! Trace writing: tracks of slices → `.perfetto-trace` bytes, streamed track by track.
//!
//! Sequence 1 carries the track descriptors, each written just before the first events that
//! use it. Each track then gets a sequence of its own, written as Perfetto's SDK writes them:
//! a first packet that clears the incremental state and sets the sequence's defaults (its
//! track, an incremental clock), then one packet per event carrying a timestamp delta and
//! interned ids (names, categories, source locations, annotation names and texts). Events are
//! in timestamp order, ENDs before BEGINs at equal times.

mod encode;
mod interning;
pub mod proto;

use anyhow::Result;
use std::io::Write;

use crate::assembly::timeline::{AsyncTrack, Slice, ThreadTrack, Timeline};
use crate::symbols::Symbols;
use interning::SequenceWriter;
use prost::Message;
use proto::{
    CHILD_ORDERING_EXPLICIT, ProcessDescriptor, ThreadDescriptor, TracePacket, TrackDescriptor,
};

const DESCRIPTOR_SEQUENCE: u32 = 1;

/// Track uuids: stable functions of the track's identity, never zero.
fn process_uuid(pid: i32) -> u64 {
    0x7000_0000_0000_0000 | pid as u64
}
fn thread_uuid(pid: i32, tid: i32) -> u64 {
    process_uuid(pid) ^ (0x0100_0000_0000 | (tid as u64) << 8)
}
fn async_group_uuid(pid: i32) -> u64 {
    process_uuid(pid) ^ 0x0200_0000_0000
}
fn async_lane_uuid(pid: i32, index: usize) -> u64 {
    process_uuid(pid) ^ (0x0300_0000_0000 | (index as u64 + 1) << 8)
}

/// Writes one process's trace, track by track; nothing is kept once a track is written.
pub struct TraceWriter<W: Write> {
    out: W,
    bytes: u64,
    pid: i32,
    next_sequence: u32,
    frame: Vec<u8>,
    sequence: SequenceWriter,
}

impl<W: Write> TraceWriter<W> {
    /// Starts the trace with the process track.
    pub fn new(out: W, pid: i32, process_name: &str) -> Result<Self> {
        let mut writer = Self {
            out,
            bytes: 0,
            pid,
            next_sequence: DESCRIPTOR_SEQUENCE,
            frame: Vec::new(),
            sequence: SequenceWriter::default(),
        };
        writer.descriptor(TrackDescriptor {
            uuid: Some(process_uuid(pid)),
            process: Some(ProcessDescriptor {
                pid: Some(pid),
                process_name: Some(process_name.to_string()),
            }),
            ..Default::default()
        })?;
        Ok(writer)
    }

    pub fn thread_track(&mut self, symbols: &Symbols, track: &ThreadTrack) -> Result<()> {
        self.descriptor(TrackDescriptor {
            uuid: Some(thread_uuid(self.pid, track.tid)),
            parent_uuid: Some(process_uuid(self.pid)),
            thread: Some(ThreadDescriptor {
                pid: Some(self.pid),
                tid: Some(track.tid),
                thread_name: Some(symbols.get(track.name).to_string()),
            }),
            ..Default::default()
        })?;
        self.track_events(symbols, thread_uuid(self.pid, track.tid), &track.slices)
    }

    /// The async lanes, grouped under one `async` track of the process.
    pub fn async_tracks(&mut self, symbols: &Symbols, tracks: &[AsyncTrack]) -> Result<()> {
        if tracks.is_empty() {
            return Ok(());
        }
        self.descriptor(TrackDescriptor {
            uuid: Some(async_group_uuid(self.pid)),
            parent_uuid: Some(process_uuid(self.pid)),
            name: Some("async".into()),
            child_ordering: Some(CHILD_ORDERING_EXPLICIT),
            ..Default::default()
        })?;
        for (i, lane) in tracks.iter().enumerate() {
            self.descriptor(TrackDescriptor {
                uuid: Some(async_lane_uuid(self.pid, i)),
                parent_uuid: Some(async_group_uuid(self.pid)),
                name: Some(lane.name.clone()),
                sibling_order_rank: Some(i as i32),
                ..Default::default()
            })?;
        }
        for (i, lane) in tracks.iter().enumerate() {
            self.track_events(symbols, async_lane_uuid(self.pid, i), &lane.slices)?;
        }
        Ok(())
    }

    /// Flushes; returns the number of bytes written, and the output.
    pub fn finish(mut self) -> Result<(u64, W)> {
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
        self.frame.clear();
        encode::frame(&body, &mut self.frame);
        self.emit()
    }

    fn emit(&mut self) -> Result<()> {
        self.out.write_all(&self.frame)?;
        self.bytes += self.frame.len() as u64;
        Ok(())
    }

    /// BEGIN/END pairs of strictly nested slices in timestamp order (ENDs first at ties).
    fn track_events(&mut self, symbols: &Symbols, uuid: u64, slices: &[Slice]) -> Result<()> {
        let mut order: Vec<u32> = (0..slices.len() as u32).collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (&slices[a as usize], &slices[b as usize]);
            x.begin_ns
                .cmp(&y.begin_ns)
                .then(y.end_ns.cmp(&x.end_ns))
                .then(a.cmp(&b))
        });
        let Some(&first) = order.first() else {
            return Ok(());
        };
        self.next_sequence += 1;
        self.frame.clear();
        self.sequence.start(
            self.next_sequence,
            uuid,
            slices[first as usize].begin_ns,
            &mut self.frame,
        );
        self.emit()?;
        let mut open: Vec<i64> = Vec::new();
        for index in order {
            let slice = &slices[index as usize];
            while let Some(&end) = open.last() {
                if end > slice.begin_ns {
                    break;
                }
                self.frame.clear();
                self.sequence.end(end, &mut self.frame);
                self.emit()?;
                open.pop();
            }
            self.frame.clear();
            self.sequence.begin(symbols, slice, &mut self.frame);
            self.emit()?;
            open.push(slice.end_ns);
        }
        while let Some(end) = open.pop() {
            self.frame.clear();
            self.sequence.end(end, &mut self.frame);
            self.emit()?;
        }
        Ok(())
    }
}

/// Writes a whole timeline; returns the number of bytes written.
pub fn write_trace(timeline: &Timeline, symbols: &Symbols, out: impl Write) -> Result<u64> {
    let mut writer = TraceWriter::new(out, timeline.pid, &timeline.process_name)?;
    for thread in &timeline.threads {
        writer.thread_track(symbols, thread)?;
    }
    writer.async_tracks(symbols, &timeline.async_tracks)?;
    Ok(writer.finish()?.0)
}

#[cfg(test)]
mod tests;
