//! Trace writing: a [`Timeline`] → `.perfetto-trace` bytes.
//!
//! Layout: sequence 1 carries the track descriptors (process, threads, async group and lanes);
//! each track then gets a sequence of its own with interned names, categories, source
//! locations and annotation names, events in timestamp order, ENDs before BEGINs at equal times.

mod interning;
pub mod proto;

use anyhow::Result;
use prost::Message;
use std::io::Write;

use crate::assembly::timeline::{Slice, Timeline};
use interning::SequenceWriter;
use proto::{
    CHILD_ORDERING_EXPLICIT, ProcessDescriptor, ThreadDescriptor, TracePacket, TrackDescriptor,
};

const DESCRIPTOR_SEQUENCE: u32 = 1;

/// Track uuids: stable functions of the track's position, never zero.
fn process_uuid(pid: i32) -> u64 {
    0x7000_0000_0000_0000 | pid as u64
}
fn thread_uuid(pid: i32, index: usize) -> u64 {
    process_uuid(pid) ^ (0x0100_0000_0000 | (index as u64 + 1) << 8)
}
fn async_group_uuid(pid: i32) -> u64 {
    process_uuid(pid) ^ 0x0200_0000_0000
}
fn async_lane_uuid(pid: i32, index: usize) -> u64 {
    process_uuid(pid) ^ (0x0300_0000_0000 | (index as u64 + 1) << 8)
}

/// Counts the bytes written through it.
struct CountingWriter<W: Write> {
    inner: W,
    bytes: u64,
}

impl<W: Write> CountingWriter<W> {
    fn packet(&mut self, packet: &TracePacket) -> Result<()> {
        let body = packet.encode_to_vec();
        let mut frame = Vec::with_capacity(body.len() + 6);
        frame.push(0x0a); // Trace.packet, length-delimited
        prost::encoding::encode_varint(body.len() as u64, &mut frame);
        frame.extend_from_slice(&body);
        self.inner.write_all(&frame)?;
        self.bytes += frame.len() as u64;
        Ok(())
    }
}

/// Writes the whole trace; returns the number of bytes written.
pub fn write_trace(timeline: &Timeline, out: impl Write) -> Result<u64> {
    let mut out = CountingWriter {
        inner: out,
        bytes: 0,
    };
    for descriptor in descriptors(timeline) {
        out.packet(&TracePacket {
            trusted_packet_sequence_id: Some(DESCRIPTOR_SEQUENCE),
            track_descriptor: Some(descriptor),
            ..Default::default()
        })?;
    }
    let mut sequence_id = DESCRIPTOR_SEQUENCE;
    let thread_tracks = timeline
        .threads
        .iter()
        .enumerate()
        .map(|(i, t)| (thread_uuid(timeline.pid, i), &t.slices));
    let async_tracks = timeline
        .async_tracks
        .iter()
        .enumerate()
        .map(|(i, t)| (async_lane_uuid(timeline.pid, i), &t.slices));
    for (uuid, slices) in thread_tracks.chain(async_tracks) {
        sequence_id += 1;
        write_track_events(&mut out, sequence_id, uuid, slices)?;
    }
    out.inner.flush()?;
    Ok(out.bytes)
}

fn descriptors(timeline: &Timeline) -> Vec<TrackDescriptor> {
    let pid = timeline.pid;
    let mut list = vec![TrackDescriptor {
        uuid: Some(process_uuid(pid)),
        process: Some(ProcessDescriptor {
            pid: Some(pid),
            process_name: Some(timeline.process_name.clone()),
        }),
        ..Default::default()
    }];
    for (i, thread) in timeline.threads.iter().enumerate() {
        list.push(TrackDescriptor {
            uuid: Some(thread_uuid(pid, i)),
            parent_uuid: Some(process_uuid(pid)),
            thread: Some(ThreadDescriptor {
                pid: Some(pid),
                tid: Some(thread.tid),
                thread_name: Some(thread.name.clone()),
            }),
            ..Default::default()
        });
    }
    if !timeline.async_tracks.is_empty() {
        list.push(TrackDescriptor {
            uuid: Some(async_group_uuid(pid)),
            parent_uuid: Some(process_uuid(pid)),
            name: Some("async".into()),
            child_ordering: Some(CHILD_ORDERING_EXPLICIT),
            ..Default::default()
        });
        for (i, lane) in timeline.async_tracks.iter().enumerate() {
            list.push(TrackDescriptor {
                uuid: Some(async_lane_uuid(pid, i)),
                parent_uuid: Some(async_group_uuid(pid)),
                name: Some(lane.name.clone()),
                sibling_order_rank: Some(i as i32),
                ..Default::default()
            });
        }
    }
    list
}

/// Emits BEGIN/END pairs of strictly nested slices in timestamp order (ENDs first at ties).
fn write_track_events<W: Write>(
    out: &mut CountingWriter<W>,
    sequence_id: u32,
    uuid: u64,
    slices: &[Slice],
) -> Result<()> {
    let mut order: Vec<usize> = (0..slices.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (&slices[a], &slices[b]);
        x.begin_ns
            .cmp(&y.begin_ns)
            .then(y.end_ns.cmp(&x.end_ns))
            .then(a.cmp(&b))
    });
    let mut seq = SequenceWriter::new(sequence_id, uuid);
    let Some(&first) = order.first() else {
        return Ok(());
    };
    out.packet(&seq.start(slices[first].begin_ns))?;
    let mut open: Vec<i64> = Vec::new();
    for index in order {
        let slice = &slices[index];
        while let Some(&end) = open.last() {
            if end > slice.begin_ns {
                break;
            }
            out.packet(&seq.end(end))?;
            open.pop();
        }
        out.packet(&seq.begin(slice))?;
        open.push(slice.end_ns);
    }
    while let Some(end) = open.pop() {
        out.packet(&seq.end(end))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
