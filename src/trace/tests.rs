//! The packet stream Perfetto needs: framing, flags, interning, order.

use prost::Message;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::proto::*;
use super::write_trace;
use crate::assembly::timeline::{Annotation, AsyncTrack, Slice, ThreadTrack, Timeline};

fn slice(name: &str, begin_ns: i64, end_ns: i64) -> Slice {
    Slice {
        begin_ns,
        end_ns,
        name: Arc::from(name),
        target: Arc::from("app"),
        file: Arc::from("src/main.rs"),
        line: 7,
        annotations: vec![Annotation::text("began on", "main")],
        flows_out: Vec::new(),
        flow_in: None,
    }
}

fn sample() -> Timeline {
    Timeline {
        pid: 1,
        process_name: "app".into(),
        threads: vec![ThreadTrack {
            tid: 2,
            name: "main".into(),
            slices: vec![
                slice("outer", 10, 100),
                slice("a", 20, 30),
                slice("b", 30, 40),
                slice("a", 50, 60),
            ],
        }],
        async_tracks: vec![AsyncTrack {
            name: "async #1".into(),
            slices: vec![slice("fut", 5, 30)],
        }],
        ..Default::default()
    }
}

fn packets(bytes: &[u8]) -> Vec<TracePacket> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        assert_eq!(rest[0], 0x0a, "each packet is Trace field 1");
        rest = &rest[1..];
        let len = prost::encoding::decode_varint(&mut rest).unwrap() as usize;
        out.push(TracePacket::decode(&rest[..len]).unwrap());
        rest = &rest[len..];
    }
    out
}

#[test]
fn descriptors_come_first_and_every_event_names_a_described_track() {
    let mut bytes = Vec::new();
    let written = write_trace(&sample(), &mut bytes).unwrap();
    assert_eq!(written, bytes.len() as u64);
    let packets = packets(&bytes);
    let mut described = HashSet::new();
    for p in &packets {
        if let Some(d) = &p.track_descriptor {
            assert!(d.uuid.unwrap() != 0);
            described.insert(d.uuid.unwrap());
        }
        if let Some(e) = &p.track_event {
            assert!(
                described.contains(&e.track_uuid.unwrap()),
                "descriptor before use"
            );
        }
        assert!(p.trusted_packet_sequence_id.unwrap() != 0);
    }
    assert_eq!(
        described.len(),
        1 + 1 + 2,
        "process, thread, async group, one lane"
    );
}

#[test]
fn each_sequence_clears_state_first_and_keeps_time_order_with_ends_before_begins() {
    let mut bytes = Vec::new();
    write_trace(&sample(), &mut bytes).unwrap();
    let mut last: HashMap<u32, (u64, i32)> = HashMap::new();
    for p in packets(&bytes).iter().filter(|p| p.track_event.is_some()) {
        let seq = p.trusted_packet_sequence_id.unwrap();
        let flags = p.sequence_flags.unwrap();
        let kind = p.track_event.as_ref().unwrap().r#type.unwrap();
        let ts = p.timestamp.unwrap();
        match last.get(&seq) {
            None => assert_eq!(
                flags & SEQ_INCREMENTAL_STATE_CLEARED,
                SEQ_INCREMENTAL_STATE_CLEARED
            ),
            Some(&(prev_ts, prev_kind)) => {
                assert!(ts >= prev_ts, "timestamps non-decreasing");
                let _ = prev_kind;
                assert_eq!(flags, SEQ_NEEDS_INCREMENTAL_STATE);
            }
        }
        last.insert(seq, (ts, kind));
    }
    // "a" ends at 30 where "b" begins: the END is written first.
    let thread_events: Vec<(u64, i32)> = packets(&bytes)
        .iter()
        .filter(|p| p.trusted_packet_sequence_id == Some(2) && p.track_event.is_some())
        .map(|p| {
            (
                p.timestamp.unwrap(),
                p.track_event.as_ref().unwrap().r#type.unwrap(),
            )
        })
        .collect();
    let at_30: Vec<i32> = thread_events
        .iter()
        .filter(|(t, _)| *t == 30)
        .map(|(_, k)| *k)
        .collect();
    assert_eq!(at_30, vec![TYPE_SLICE_END, TYPE_SLICE_BEGIN]);
    assert_eq!(thread_events.len(), 8);
}

#[test]
fn names_are_interned_once_per_sequence_from_iid_one() {
    let mut bytes = Vec::new();
    write_trace(&sample(), &mut bytes).unwrap();
    let mut names: HashMap<(u32, u64), String> = HashMap::new();
    for p in packets(&bytes) {
        let seq = p.trusted_packet_sequence_id.unwrap();
        if let Some(interned) = &p.interned_data {
            for n in &interned.event_names {
                assert!(n.iid.unwrap() >= 1);
                assert!(
                    names
                        .insert((seq, n.iid.unwrap()), n.name.clone().unwrap())
                        .is_none(),
                    "interned once"
                );
            }
        }
        if let Some(e) = &p.track_event
            && e.r#type == Some(TYPE_SLICE_BEGIN)
        {
            assert!(
                names.contains_key(&(seq, e.name_iid.unwrap())),
                "name sent before or with its use"
            );
        }
    }
    let a_entries = names.values().filter(|n| *n == "a").count();
    assert_eq!(a_entries, 1, "\"a\" used twice, interned once");
}

#[test]
fn the_same_timeline_always_gives_the_same_bytes() {
    let (mut first, mut second) = (Vec::new(), Vec::new());
    write_trace(&sample(), &mut first).unwrap();
    write_trace(&sample(), &mut second).unwrap();
    assert_eq!(first, second);
}
