//! The packet stream Perfetto needs: framing, flags, interning, order.

use prost::Message;
use std::collections::{HashMap, HashSet};

use super::TraceWriter;
use super::proto::*;
use crate::symbols::{PropertySet, Symbols};
use crate::tracks::{AsyncDetail, Place, ProcessHeading, Slice, Track, TrackGroup, notes};

fn slice(symbols: &mut Symbols, name: &str, begin_ns: i64, end_ns: i64) -> Slice {
    Slice {
        begin_ns,
        end_ns,
        name: symbols.intern(name),
        target: symbols.intern("app"),
        file: symbols.intern("src/main.rs"),
        line: 7,
        properties: PropertySet::NONE,
        notes: 0,
        detail: None,
    }
}

/// A thread track and a group of one lane.
struct Sample {
    thread: Track,
    group: TrackGroup,
}

fn sample() -> (Sample, Symbols) {
    let mut s = Symbols::new();
    let mut future = slice(&mut s, "fut", 5, 30);
    future.detail = Some(Box::new(AsyncDetail {
        span_id: 1,
        began_on: Some(s.intern("main")),
        ..Default::default()
    }));
    future.notes = notes::UNFINISHED;
    let timeline = Sample {
        thread: Track {
            place: Place::Thread { tid: 2 },
            name: "main".into(),
            slices: vec![
                slice(&mut s, "outer", 10, 100),
                slice(&mut s, "a", 20, 30),
                slice(&mut s, "b", 30, 40),
                slice(&mut s, "a", 50, 60),
            ],
            ..Default::default()
        },
        group: TrackGroup {
            name: "async".into(),
            lanes: vec![Track {
                place: Place::Lane,
                name: "async #1".into(),
                slices: vec![future],
                ..Default::default()
            }],
        },
    };
    (timeline, s)
}

fn written() -> Vec<u8> {
    let (timeline, symbols) = sample();
    let mut bytes = Vec::new();
    let mut writer = TraceWriter::new(&mut bytes);
    let heading = ProcessHeading {
        name: "app".into(),
        labels: vec!["process 1234".into()],
    };
    writer.start_process(&heading).unwrap();
    writer.track(&symbols, timeline.thread.clone()).unwrap();
    writer.flush_threads().unwrap();
    writer.track_group(&symbols, &timeline.group).unwrap();
    let (count, _) = writer.finish().unwrap();
    assert_eq!(count, bytes.len() as u64);
    bytes
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

/// A track event as the trace processor resolves it.
struct Resolved {
    sequence: u32,
    track: u64,
    timestamp: u64,
    kind: i32,
}

/// Applies each sequence's defaults and incremental clock; fails on events before a clear.
fn resolve(packets: &[TracePacket]) -> Vec<Resolved> {
    let mut state: HashMap<u32, (Option<u64>, u64)> = HashMap::new();
    let mut out = Vec::new();
    for p in packets {
        let seq = p.trusted_packet_sequence_id.expect("sequence id");
        assert!(seq != 0);
        if p.sequence_flags.unwrap_or(0) & SEQ_INCREMENTAL_STATE_CLEARED != 0 {
            let defaults = p
                .trace_packet_defaults
                .as_ref()
                .expect("a clearing packet sets the defaults");
            assert_eq!(defaults.timestamp_clock_id, Some(INCREMENTAL_CLOCK));
            let clock = p.clock_snapshot.as_ref().expect("and the clock origin");
            let origin = clock
                .clocks
                .iter()
                .find(|c| c.clock_id == Some(INCREMENTAL_CLOCK))
                .unwrap();
            assert_eq!(origin.is_incremental, Some(true));
            let track = defaults
                .track_event_defaults
                .as_ref()
                .and_then(|d| d.track_uuid);
            state.insert(seq, (track, origin.timestamp.unwrap()));
        }
        let Some(event) = &p.track_event else {
            continue;
        };
        assert_eq!(p.sequence_flags, Some(SEQ_NEEDS_INCREMENTAL_STATE));
        let (track, clock) = state
            .get_mut(&seq)
            .expect("an event after its sequence was cleared");
        *clock += p.timestamp.unwrap();
        out.push(Resolved {
            sequence: seq,
            track: event.track_uuid.or(*track).unwrap(),
            timestamp: *clock,
            kind: event.r#type.unwrap(),
        });
    }
    out
}

#[test]
fn every_event_names_a_track_described_earlier_in_the_file() {
    let packets = packets(&written());
    let mut described: HashSet<u64> = HashSet::new();
    let mut state: HashMap<u32, u64> = HashMap::new();
    for p in &packets {
        if let Some(d) = &p.track_descriptor {
            assert!(d.uuid.unwrap() != 0);
            assert!(
                described.insert(d.uuid.unwrap()),
                "each track described once"
            );
        }
        let default_track = p
            .trace_packet_defaults
            .as_ref()
            .and_then(|d| d.track_event_defaults.as_ref());
        if let Some(track) = default_track.and_then(|t| t.track_uuid) {
            assert!(
                described.contains(&track),
                "descriptor before the sequence that uses it"
            );
            state.insert(p.trusted_packet_sequence_id.unwrap(), track);
        }
        if let Some(uuid) = p.track_event.as_ref().and_then(|e| e.track_uuid) {
            assert!(
                described.contains(&uuid),
                "descriptor before the event that names it"
            );
        }
    }
    assert_eq!(
        described.len(),
        1 + 1 + 2,
        "process, thread, async group, one lane"
    );
    let events = resolve(&packets);
    assert_eq!(events.len(), 10);
    assert!(events.iter().all(|e| described.contains(&e.track)));
}

#[test]
fn async_slices_carry_their_ids_threads_and_notes_as_interned_arguments() {
    let packets = packets(&written());
    let names: Vec<String> = packets
        .iter()
        .filter_map(|p| p.interned_data.as_ref())
        .flat_map(|d| {
            d.debug_annotation_names
                .iter()
                .map(|n| n.name.clone().unwrap())
        })
        .collect();
    for expected in [
        "span_id",
        "parent_span_id",
        "depth",
        "began on",
        "unfinished",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    let texts: Vec<Vec<u8>> = packets
        .iter()
        .filter_map(|p| p.interned_data.as_ref())
        .flat_map(|d| {
            d.debug_annotation_string_values
                .iter()
                .map(|v| v.str.clone().unwrap())
        })
        .collect();
    assert!(texts.iter().any(|t| t == b"main"));
}

#[test]
fn each_sequence_keeps_time_order_with_ends_before_begins() {
    let events = resolve(&packets(&written()));
    let mut last: HashMap<u32, u64> = HashMap::new();
    for e in &events {
        assert!(
            e.timestamp >= *last.get(&e.sequence).unwrap_or(&0),
            "timestamps non-decreasing"
        );
        last.insert(e.sequence, e.timestamp);
    }
    let thread: Vec<(u64, i32)> = events
        .iter()
        .filter(|e| e.sequence == 2)
        .map(|e| (e.timestamp, e.kind))
        .collect();
    assert_eq!(
        thread,
        vec![
            (10, TYPE_SLICE_BEGIN),
            (20, TYPE_SLICE_BEGIN),
            (30, TYPE_SLICE_END),
            (30, TYPE_SLICE_BEGIN),
            (40, TYPE_SLICE_END),
            (50, TYPE_SLICE_BEGIN),
            (60, TYPE_SLICE_END),
            (100, TYPE_SLICE_END),
        ],
        "\"a\" ends at 30 where \"b\" begins: the END comes first"
    );
}

#[test]
fn names_are_interned_once_per_sequence_from_iid_one() {
    let mut names: HashMap<(u32, u64), String> = HashMap::new();
    for p in packets(&written()) {
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
    assert_eq!(written(), written());
}

#[test]
fn every_clock_snapshot_reads_real_time_equal_to_the_trace_clock_for_utc_display() {
    let packets = packets(&written());
    let snapshots: Vec<&ClockSnapshot> = (packets.iter())
        .filter_map(|p| p.clock_snapshot.as_ref())
        .collect();
    assert!(!snapshots.is_empty());
    for snapshot in snapshots {
        let reading = |id| {
            (snapshot.clocks.iter())
                .find(|c| c.clock_id == Some(id))
                .and_then(|c| c.timestamp)
        };
        let boottime = reading(BUILTIN_CLOCK_BOOTTIME).expect("the trace clock");
        assert_eq!(reading(BUILTIN_CLOCK_REALTIME), Some(boottime));
    }
}

#[test]
fn the_process_descriptor_carries_the_heading_labels() {
    let packets = packets(&written());
    let process = (packets.iter())
        .filter_map(|p| p.track_descriptor.as_ref()?.process.as_ref())
        .next()
        .expect("a process descriptor");
    assert_eq!(process.process_name.as_deref(), Some("app"));
    assert_eq!(process.process_labels, ["process 1234"]);
}

/// A thread track (tid `tid`) of slices named `name` over `times`.
fn thread(symbols: &mut Symbols, tid: i32, name: &str, times: &[(i64, i64)]) -> Track {
    Track {
        place: Place::Thread { tid },
        name: format!("worker-{tid}"),
        slices: (times.iter())
            .map(|&(begin, end)| slice(symbols, name, begin, end))
            .collect(),
        ..Default::default()
    }
}

/// The trace of one process with these thread tracks.
fn threads_trace(symbols: &Symbols, tracks: Vec<Track>) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut writer = TraceWriter::new(&mut bytes);
    writer.start_process(&ProcessHeading::default()).unwrap();
    for track in tracks {
        writer.track(symbols.table(), track).unwrap();
    }
    writer.flush_threads().unwrap();
    writer.finish().unwrap();
    bytes
}

/// `small` thread tracks of two slices and one of `large_slices` nested ones, written.
fn threads_written(small: i32, large_slices: i64) -> Vec<u8> {
    let mut symbols = Symbols::new();
    let times = |tid: i32, slices: i64| -> Vec<(i64, i64)> {
        (0..slices)
            .map(|k| (10 * k + tid as i64, 10 * k + tid as i64 + 5))
            .collect()
    };
    let mut tracks: Vec<Track> = (2..2 + small)
        .map(|tid| thread(&mut symbols, tid, "a", &times(tid, 2)))
        .collect();
    let large = 2 + small;
    tracks.push(thread(
        &mut symbols,
        large,
        "a",
        &times(large, large_slices),
    ));
    threads_trace(&symbols, tracks)
}

#[test]
fn small_threads_share_one_sequence_where_names_are_interned_once_and_a_large_one_has_its_own() {
    let packets = packets(&threads_written(50, 600));
    let events = resolve(&packets);
    let sequences: HashSet<u32> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(
        sequences.len(),
        2,
        "one for the small threads, one for the large"
    );
    // The large thread is written at once, the small ones when flushed.
    let large = events.first().unwrap().sequence;
    let (on_large, on_shared): (Vec<&Resolved>, Vec<&Resolved>) =
        events.iter().partition(|e| e.sequence == large);
    assert_eq!(on_large.len(), 1200);
    assert_eq!(on_shared.len(), 50 * 4);
    let tracks: HashSet<u64> = on_shared.iter().map(|e| e.track).collect();
    assert_eq!(tracks.len(), 50, "each small thread keeps its own track");
    // Each event of the shared sequence names its track; the large one's events do not.
    let named = |seq: u32| {
        (packets.iter())
            .filter(|p| p.trusted_packet_sequence_id == Some(seq))
            .filter_map(|p| p.track_event.as_ref())
            .all(|e| e.track_uuid.is_some())
    };
    let shared = on_shared[0].sequence;
    assert!(named(shared));
    assert!(!named(large));
    let interned_a = (packets.iter())
        .filter(|p| p.trusted_packet_sequence_id == Some(shared))
        .filter_map(|p| p.interned_data.as_ref())
        .flat_map(|d| &d.event_names)
        .filter(|n| n.name.as_deref() == Some("a"))
        .count();
    assert_eq!(interned_a, 1, "\"a\" interned once for the 50 threads");
}

#[test]
fn a_trace_finished_with_small_threads_unwritten_is_an_error_not_a_silent_loss() {
    let (timeline, symbols) = sample();
    let mut writer = TraceWriter::new(Vec::new());
    writer.start_process(&ProcessHeading::default()).unwrap();
    writer.track(&symbols, timeline.thread).unwrap();
    assert!(writer.finish().is_err());
}

/// Log-like lanes: instants at times with repeats, each lane in time order.
fn instant_lanes(symbols: &mut Symbols, lanes: usize, per_lane: i64) -> Vec<Track> {
    let name = symbols.intern("entry");
    (0..lanes)
        .map(|lane| Track {
            place: Place::Lane,
            name: format!("lane {lane}"),
            instants: (0..per_lane)
                .map(|k| crate::tracks::Instant {
                    ns: 1_000 + (k * (lane as i64 + 1)) / 3,
                    name,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
        .collect()
}

#[test]
fn a_group_written_in_parts_of_time_gives_the_bytes_of_the_group_written_whole() {
    let mut symbols = Symbols::new();
    let group = TrackGroup {
        name: "log".into(),
        lanes: instant_lanes(&mut symbols, 3, 500),
    };
    let mut whole = TraceWriter::new(Vec::new());
    whole.track_group(&symbols, &group).unwrap();
    let whole = whole.finish().unwrap().1;
    let mut parts = TraceWriter::new(Vec::new());
    let head = TrackGroup {
        name: group.name.clone(),
        lanes: (group.lanes.iter())
            .map(|lane| Track {
                instants: Vec::new(),
                ..lane.clone()
            })
            .collect(),
    };
    parts.start_group(&head).unwrap();
    // Parts cut between times: all of a time's instants in one part.
    for (from, to) in [
        (0, 1_050),
        (1_050, 1_051),
        (1_051, 1_200),
        (1_200, i64::MAX),
    ] {
        let part: Vec<Track> = (group.lanes.iter())
            .map(|lane| Track {
                instants: (lane.instants.iter())
                    .filter(|i| (from..to).contains(&i.ns))
                    .cloned()
                    .collect(),
                ..lane.clone()
            })
            .collect();
        parts.group_part(&symbols, &part, None).unwrap();
    }
    let parts = parts.finish().unwrap().1;
    assert!(whole.len() > 10_000);
    assert_eq!(parts, whole);
}

/// `threads` small thread tracks of `slices` slices each, all over the same time: slice `j` of
/// thread `k` (tid `2 + k`) from `10 j + k` to `10 j + k + 5`, named after `k % 7`.
fn small_threads_written(threads: usize, slices: i64) -> Vec<u8> {
    let mut symbols = Symbols::new();
    let tracks = (0..threads as i64)
        .map(|k| {
            let times: Vec<(i64, i64)> =
                (0..slices).map(|j| (10 * j + k, 10 * j + k + 5)).collect();
            thread(
                &mut symbols,
                2 + k as i32,
                &format!("span {}", k % 7),
                &times,
            )
        })
        .collect();
    threads_trace(&symbols, tracks)
}

#[test]
fn small_threads_beyond_one_batch_go_on_several_sequences_with_every_event_on_its_track() {
    let (threads, slices) = (500, 300);
    let packets = packets(&small_threads_written(threads, slices));
    let events = resolve(&packets);
    let sequences: HashSet<u32> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(
        sequences.len(),
        2,
        "300,000 events: more than a batch holds"
    );
    let mut shown: Vec<(u64, u64, i32)> = (events.iter())
        .map(|e| (e.track, e.timestamp, e.kind))
        .collect();
    shown.sort();
    let mut expected: Vec<(u64, u64, i32)> = (0..threads as u64)
        .flat_map(|k| {
            let track = ((2 + k) << 1) | 1;
            (0..slices as u64).flat_map(move |j| {
                let begin = 10 * j + k;
                [
                    (track, begin, TYPE_SLICE_BEGIN),
                    (track, begin + 5, TYPE_SLICE_END),
                ]
            })
        })
        .collect();
    expected.sort();
    assert_eq!(shown, expected);
}

#[test]
fn a_batch_of_small_threads_sends_its_names_before_its_events_in_time_order() {
    let packets = packets(&small_threads_written(40, 20));
    let shared = packets.last().unwrap().trusted_packet_sequence_id;
    let on_shared: Vec<&TracePacket> = (packets.iter())
        .filter(|p| p.trusted_packet_sequence_id == shared)
        .collect();
    let first_event = (on_shared.iter())
        .position(|p| p.track_event.is_some())
        .unwrap();
    let names: Vec<&str> = (on_shared[..first_event].iter())
        .filter_map(|p| p.interned_data.as_ref())
        .flat_map(|d| &d.event_names)
        .filter_map(|n| n.name.as_deref())
        .collect();
    assert_eq!(names.len(), 7, "each name interned once, ahead: {names:?}");
    assert!(
        on_shared[first_event..]
            .iter()
            .all(|p| p.interned_data.is_none())
    );
    let times: Vec<u64> = (resolve(&packets).iter())
        .filter(|e| Some(e.sequence) == shared)
        .map(|e| e.timestamp)
        .collect();
    assert_eq!(times.len(), 40 * 40);
    assert!(times.is_sorted(), "one time order across the threads");
}

#[test]
fn a_batch_with_many_long_names_sends_them_in_packets_of_bounded_size() {
    let mut symbols = Symbols::new();
    let long = "x".repeat(200);
    let tracks = (0..1_000)
        .map(|k| {
            thread(
                &mut symbols,
                2 + k,
                &format!("{long} {k}"),
                &[(k as i64, k as i64 + 1)],
            )
        })
        .collect();
    let bytes = threads_trace(&symbols, tracks);
    let packets = packets(&bytes);
    let interned: Vec<usize> = (packets.iter())
        .filter_map(|p| p.interned_data.as_ref())
        .map(|d| d.encoded_len())
        .collect();
    let names: usize = (packets.iter())
        .filter_map(|p| p.interned_data.as_ref())
        .map(|d| d.event_names.len())
        .sum();
    assert_eq!(names, 1_000);
    assert!(interned.len() >= 3, "200 kB of names: {interned:?}");
    assert!(interned.iter().all(|&size| size <= 1 << 16), "{interned:?}");
}

#[test]
fn small_threads_keep_every_field_of_events_of_any_size() {
    // Thread k's slice j starts (k + j) % 40 flows: its event's record is from a few bytes to
    // over 350, on both sides of the one-byte size the batch keeps before each record.
    let mut symbols = Symbols::new();
    let flows = |k: u64, j: u64| -> Vec<u64> { (1..=(k + j) % 40).map(|f| 1000 * k + f).collect() };
    let tracks: Vec<Track> = (0..30u64)
        .map(|k| {
            let times: Vec<(i64, i64)> = (0..4)
                .map(|j| (10 * j + k as i64, 10 * j + k as i64 + 5))
                .collect();
            let mut track = thread(&mut symbols, 2 + k as i32, "a", &times);
            for (j, slice) in track.slices.iter_mut().enumerate() {
                let mut detail = AsyncDetail::default();
                for flow in flows(k, j as u64) {
                    detail
                        .flows_out
                        .push(std::num::NonZeroU64::new(flow).unwrap());
                }
                slice.detail = Some(Box::new(detail));
            }
            track
        })
        .collect();
    let packets = packets(&threads_trace(&symbols, tracks));
    let mut begins: Vec<(u64, Vec<u64>)> = (packets.iter())
        .filter_map(|p| p.track_event.as_ref())
        .filter(|e| e.r#type == Some(TYPE_SLICE_BEGIN))
        .map(|e| (e.track_uuid.unwrap(), e.flow_ids.clone()))
        .collect();
    begins.sort();
    let mut expected: Vec<(u64, Vec<u64>)> = (0..30u64)
        .flat_map(|k| (0..4).map(move |j| ((((2 + k) << 1) | 1), flows(k, j))))
        .collect();
    expected.sort();
    assert_eq!(begins, expected);
}

#[test]
fn a_large_thread_written_in_pieces_gives_the_bytes_of_its_track_written_whole() {
    let mut symbols = Symbols::new();
    // Frames of nested slices; each frame ends where the next begins (an END and a BEGIN at
    // one time), and holds a zero-length slice followed at that time by a longer sibling
    // (which the writer draws first).
    let mut times = Vec::new();
    for frame in 0..300i64 {
        let t = 100 * frame;
        times.extend([
            (t, t + 100),
            (t + 10, t + 10),
            (t + 10, t + 40),
            (t + 20, t + 30),
        ]);
    }
    let mut small_before = thread(&mut symbols, 2, "early", &[(0, 5)]);
    small_before.name = "small".into();
    let large = thread(&mut symbols, 3, "frame", &times);
    let small_after = thread(&mut symbols, 4, "late", &[(7, 9)]);
    let whole = threads_trace(
        &symbols,
        vec![small_before.clone(), large.clone(), small_after.clone()],
    );
    // Cut where every slice before has ended by the next begin, which is later than theirs
    // (`open_across`: or after a frame's outer slice, still open).
    for (frames_per_piece, open_across) in [(1, false), (7, true), (150, false), (299, true)] {
        let mut bytes = Vec::new();
        let mut writer = TraceWriter::new(&mut bytes);
        writer.start_process(&ProcessHeading::default()).unwrap();
        writer.track(symbols.table(), small_before.clone()).unwrap();
        let first = 4 * frames_per_piece + usize::from(open_across);
        let (head, rest) = large.slices.split_at(first);
        let pieces: Vec<&[Slice]> = [head]
            .into_iter()
            .chain(rest.chunks(4 * frames_per_piece))
            .collect();
        for (k, slices) in pieces.iter().enumerate() {
            let piece = Track {
                slices: slices.to_vec(),
                ..large.clone()
            };
            let last = k + 1 == pieces.len();
            writer
                .thread_piece(symbols.table(), &piece, k == 0, last)
                .unwrap();
        }
        writer.track(symbols.table(), small_after.clone()).unwrap();
        writer.flush_threads().unwrap();
        writer.finish().unwrap();
        assert!(
            bytes == whole,
            "{frames_per_piece} frames per piece, {open_across}"
        );
    }
}
