//! A small Perfetto trace reader for tests: framing → packets → interned names resolved per
//! sequence → per track, slices rebuilt by replaying SLICE_BEGIN / SLICE_END, plus the track
//! tree from the descriptors. Anything a viewer would choke on is collected in `problems`.

#![allow(dead_code)]

use prost::Message;
use std::collections::{BTreeMap, HashMap};

use write_perfetto::trace::proto::{
    INCREMENTAL_CLOCK, InternedData, SEQ_INCREMENTAL_STATE_CLEARED, TYPE_COUNTER, TYPE_INSTANT,
    TYPE_SLICE_BEGIN, TYPE_SLICE_END, TracePacket, TrackDescriptor,
};

/// One track descriptor.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    pub uuid: u64,
    pub parent: Option<u64>,
    pub name: Option<String>,
    /// (pid, tid, thread name)
    pub thread: Option<(i32, i32, String)>,
    /// (pid, process name)
    pub process: Option<(i32, String)>,
    /// Shown beside a process's name.
    pub process_labels: Vec<String>,
    pub child_ordering: Option<i32>,
    pub sibling_order_rank: Option<i32>,
    /// A counter track's unit (`Some("")` for a counter without one).
    pub counter_unit: Option<String>,
}

impl Track {
    /// The name a viewer shows: the thread name for thread tracks, else the track name.
    pub fn label(&self) -> String {
        match (&self.thread, &self.name) {
            (Some((_, _, name)), _) => name.clone(),
            (None, Some(name)) => name.clone(),
            (None, None) => match &self.process {
                Some((_, name)) => name.clone(),
                None => String::new(),
            },
        }
    }
}

/// One slice as rebuilt from its BEGIN and END.
#[derive(Debug, Clone, PartialEq)]
pub struct Slice {
    pub name: String,
    pub begin: u64,
    pub end: u64,
    /// Nesting depth on its track (0 = outermost).
    pub depth: usize,
    /// Index (in its track's slice list) of the enclosing slice.
    pub parent: Option<usize>,
    /// (name, value) with values as text (ints printed in decimal).
    pub annotations: Vec<(String, String)>,
    pub flows_out: Vec<u64>,
    pub flows_in: Vec<u64>,
    pub categories: Vec<String>,
    /// `file:line`
    pub source: Option<String>,
}

impl Slice {
    pub fn annotation(&self, name: &str) -> Option<&str> {
        self.annotations
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn annotations_named(&self, name: &str) -> Vec<&str> {
        self.annotations
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    pub fn has(&self, name: &str) -> bool {
        self.annotation(name).is_some()
    }
    pub fn contains(&self, other: &Slice) -> bool {
        self.begin <= other.begin && other.end <= self.end
    }
}

#[derive(Debug, Default)]
pub struct Trace {
    pub packets: usize,
    /// Descriptors by uuid.
    pub tracks: BTreeMap<u64, Track>,
    /// Slices by track uuid, in BEGIN order.
    pub slices: BTreeMap<u64, Vec<Slice>>,
    /// Instant events by track uuid, in order (as slices with `begin == end`).
    pub instants: BTreeMap<u64, Vec<Slice>>,
    /// Counter values by track uuid, in order: (time, value).
    pub counters: BTreeMap<u64, Vec<(u64, f64)>>,
    /// What is wrong with the trace (empty for a good one).
    pub problems: Vec<String>,
}

#[derive(Default)]
struct Interned {
    names: HashMap<u64, String>,
    categories: HashMap<u64, String>,
    annotation_names: HashMap<u64, String>,
    annotation_values: HashMap<u64, String>,
    locations: HashMap<u64, String>,
}

#[derive(Default)]
struct SequenceState {
    cleared: bool,
    last_timestamp: u64,
    /// From `trace_packet_defaults`: events without a track uuid are on this track.
    default_track: Option<u64>,
    /// Timestamps are deltas on the sequence-scoped incremental clock.
    incremental: bool,
    clock: u64,
    interned: Interned,
}

enum Phase {
    Begin(Box<Slice>),
    End,
}

/// Splits the file into packets (field 1 of `Trace`, length-delimited).
pub fn packets(bytes: &[u8]) -> Result<Vec<TracePacket>, String> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let offset = bytes.len() - rest.len();
        if rest[0] != 0x0a {
            return Err(format!(
                "byte {offset}: tag {:#x}, not Trace.packet",
                rest[0]
            ));
        }
        rest = &rest[1..];
        let len = prost::encoding::decode_varint(&mut rest)
            .map_err(|e| format!("byte {offset}: bad length: {e}"))? as usize;
        if len > rest.len() {
            return Err(format!("byte {offset}: packet of {len} bytes is truncated"));
        }
        out.push(
            TracePacket::decode(&rest[..len])
                .map_err(|e| format!("byte {offset}: bad packet: {e}"))?,
        );
        rest = &rest[len..];
    }
    Ok(out)
}

/// Adds the entries of a packet's interned data to its sequence's tables.
fn intern(table: &mut Interned, data: InternedData) {
    for e in data.event_names {
        table
            .names
            .insert(e.iid.unwrap_or(0), e.name.unwrap_or_default());
    }
    for e in data.event_categories {
        table
            .categories
            .insert(e.iid.unwrap_or(0), e.name.unwrap_or_default());
    }
    for e in data.debug_annotation_names {
        table
            .annotation_names
            .insert(e.iid.unwrap_or(0), e.name.unwrap_or_default());
    }
    for e in data.debug_annotation_string_values {
        table.annotation_values.insert(
            e.iid.unwrap_or(0),
            String::from_utf8(e.str.unwrap_or_default()).unwrap_or_default(),
        );
    }
    for e in data.source_locations {
        table.locations.insert(
            e.iid.unwrap_or(0),
            format!(
                "{}:{}",
                e.file_name.unwrap_or_default(),
                e.line_number.unwrap_or(0)
            ),
        );
    }
}

fn lookup(
    table: &HashMap<u64, String>,
    iid: u64,
    what: &str,
    problems: &mut Vec<String>,
) -> String {
    match table.get(&iid) {
        Some(s) => s.clone(),
        None => {
            problems.push(format!("{what} iid {iid} is not interned on its sequence"));
            format!("<unresolved {what} {iid}>")
        }
    }
}

/// Decodes a whole trace. Framing errors panic; semantic problems land in `problems`.
pub fn decode(bytes: &[u8]) -> Trace {
    let packets = packets(bytes).unwrap_or_else(|e| panic!("trace framing: {e}"));
    let mut trace = Trace {
        packets: packets.len(),
        ..Default::default()
    };
    let mut sequences: HashMap<u32, SequenceState> = HashMap::new();
    // Per track: (timestamp, file order, event).
    let mut events: BTreeMap<u64, Vec<(u64, usize, Phase)>> = BTreeMap::new();
    for (index, mut packet) in packets.into_iter().enumerate() {
        let problems = &mut trace.problems;
        if let Some(descriptor) = packet.track_descriptor {
            add_descriptor(&mut trace.tracks, descriptor, problems);
        }
        if let Some(sequence_id) = packet.trusted_packet_sequence_id {
            let state = sequences.entry(sequence_id).or_default();
            if packet.sequence_flags.unwrap_or(0) & SEQ_INCREMENTAL_STATE_CLEARED != 0 {
                *state = SequenceState {
                    cleared: true,
                    ..Default::default()
                };
            }
            if let Some(defaults) = &packet.trace_packet_defaults {
                state.default_track = defaults
                    .track_event_defaults
                    .as_ref()
                    .and_then(|d| d.track_uuid);
                state.incremental = defaults.timestamp_clock_id == Some(INCREMENTAL_CLOCK);
            }
            if let Some(snapshot) = &packet.clock_snapshot {
                for clock in snapshot
                    .clocks
                    .iter()
                    .filter(|c| c.clock_id == Some(INCREMENTAL_CLOCK))
                {
                    state.clock = clock.timestamp.unwrap_or(0);
                }
            }
            // Interned data may come in a packet of its own, ahead of the events using it.
            if let Some(data) = packet.interned_data.take() {
                if !state.cleared {
                    problems.push(format!(
                        "packet {index}: sequence {sequence_id} interns before its incremental state was cleared"
                    ));
                }
                intern(&mut state.interned, data);
            }
        }
        let Some(event) = packet.track_event else {
            continue;
        };
        let Some(sequence_id) = packet.trusted_packet_sequence_id else {
            problems.push(format!("packet {index}: track event without a sequence id"));
            continue;
        };
        let state = sequences.entry(sequence_id).or_default();
        if !state.cleared {
            problems.push(format!(
                "packet {index}: sequence {sequence_id} used before its incremental state was cleared"
            ));
        }
        let Some(raw_timestamp) = packet.timestamp else {
            problems.push(format!("packet {index}: track event without a timestamp"));
            continue;
        };
        let timestamp = if state.incremental && packet.timestamp_clock_id.is_none() {
            state.clock += raw_timestamp;
            state.clock
        } else {
            raw_timestamp
        };
        if timestamp < state.last_timestamp {
            problems.push(format!(
                "packet {index}: sequence {sequence_id} goes back in time ({} → {timestamp})",
                state.last_timestamp
            ));
        }
        state.last_timestamp = timestamp;
        let Some(uuid) = event.track_uuid.or(state.default_track) else {
            problems.push(format!("packet {index}: track event without a track uuid"));
            continue;
        };
        let phase = match event.r#type {
            Some(TYPE_SLICE_BEGIN) | Some(TYPE_INSTANT) => {
                let table = &state.interned;
                let name = match event.name_iid {
                    Some(iid) => lookup(&table.names, iid, "event name", problems),
                    None => {
                        problems.push(format!("packet {index}: BEGIN without a name"));
                        String::new()
                    }
                };
                let annotations = event
                    .debug_annotations
                    .iter()
                    .map(|a| {
                        let name = lookup(
                            &table.annotation_names,
                            a.name_iid.unwrap_or(0),
                            "annotation name",
                            problems,
                        );
                        let value = if let Some(v) = a.uint_value {
                            v.to_string()
                        } else if let Some(v) = a.int_value {
                            v.to_string()
                        } else if let Some(v) = &a.string_value {
                            v.clone()
                        } else if let Some(iid) = a.string_value_iid {
                            lookup(&table.annotation_values, iid, "annotation value", problems)
                        } else {
                            problems
                                .push(format!("packet {index}: annotation {name} has no value"));
                            String::new()
                        };
                        (name, value)
                    })
                    .collect();
                let categories = event
                    .category_iids
                    .iter()
                    .map(|&iid| lookup(&table.categories, iid, "category", problems))
                    .collect();
                let source = event
                    .source_location_iid
                    .map(|iid| lookup(&table.locations, iid, "source location", problems));
                Phase::Begin(Box::new(Slice {
                    name,
                    begin: timestamp,
                    end: timestamp,
                    depth: 0,
                    parent: None,
                    annotations,
                    flows_out: event.flow_ids.clone(),
                    flows_in: event.terminating_flow_ids.clone(),
                    categories,
                    source,
                }))
            }
            Some(TYPE_SLICE_END) => Phase::End,
            Some(TYPE_COUNTER) => {
                let value = event.double_counter_value.unwrap_or(f64::NAN);
                trace
                    .counters
                    .entry(uuid)
                    .or_default()
                    .push((timestamp, value));
                continue;
            }
            other => {
                problems.push(format!("packet {index}: unexpected event type {other:?}"));
                continue;
            }
        };
        let phase = match (event.r#type, phase) {
            (Some(TYPE_INSTANT), Phase::Begin(instant)) => {
                trace.instants.entry(uuid).or_default().push(*instant);
                continue;
            }
            (_, phase) => phase,
        };
        events
            .entry(uuid)
            .or_default()
            .push((timestamp, index, phase));
    }
    for (uuid, mut list) in events {
        if !trace.tracks.contains_key(&uuid) {
            trace
                .problems
                .push(format!("track {uuid} has events but no descriptor"));
        }
        // Trace processor orders a track's events by timestamp (stable for ties).
        list.sort_by_key(|&(ts, index, _)| (ts, index));
        let slices = replay(uuid, list, &mut trace.problems);
        trace.slices.insert(uuid, slices);
    }
    trace
}

fn add_descriptor(
    tracks: &mut BTreeMap<u64, Track>,
    d: TrackDescriptor,
    problems: &mut Vec<String>,
) {
    let Some(uuid) = d.uuid else {
        problems.push("track descriptor without a uuid".into());
        return;
    };
    let track = Track {
        uuid,
        parent: d.parent_uuid,
        name: d.name,
        thread: d.thread.map(|t| {
            (
                t.pid.unwrap_or(0),
                t.tid.unwrap_or(0),
                t.thread_name.unwrap_or_default(),
            )
        }),
        process_labels: (d.process.as_ref()).map_or(Vec::new(), |p| p.process_labels.clone()),
        process: d
            .process
            .map(|p| (p.pid.unwrap_or(0), p.process_name.unwrap_or_default())),
        child_ordering: d.child_ordering,
        sibling_order_rank: d.sibling_order_rank,
        counter_unit: d.counter.map(|c| c.unit_name.unwrap_or_default()),
    };
    if let Some(previous) = tracks.get(&uuid)
        && previous != &track
    {
        problems.push(format!("track {uuid} described twice, differently"));
    }
    tracks.insert(uuid, track);
}

/// Rebuilds slices: BEGIN opens at depth = open count, END closes the innermost open slice.
fn replay(uuid: u64, events: Vec<(u64, usize, Phase)>, problems: &mut Vec<String>) -> Vec<Slice> {
    let mut slices: Vec<Slice> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    for (timestamp, index, phase) in events {
        match phase {
            Phase::Begin(slice) => {
                let mut slice = *slice;
                slice.depth = open.len();
                slice.parent = open.last().copied();
                open.push(slices.len());
                slices.push(slice);
            }
            Phase::End => match open.pop() {
                Some(i) => slices[i].end = timestamp,
                None => problems.push(format!(
                    "packet {index}: END on track {uuid} with no open slice"
                )),
            },
        }
    }
    for i in open {
        problems.push(format!(
            "track {uuid}: slice {:?} never ends",
            slices[i].name
        ));
    }
    slices
}

impl Trace {
    pub fn track(&self, uuid: u64) -> &Track {
        &self.tracks[&uuid]
    }

    pub fn children(&self, uuid: u64) -> Vec<&Track> {
        self.tracks
            .values()
            .filter(|t| t.parent == Some(uuid))
            .collect()
    }

    pub fn slices_of(&self, uuid: u64) -> &[Slice] {
        self.slices.get(&uuid).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn process_tracks(&self) -> Vec<&Track> {
        self.tracks
            .values()
            .filter(|t| t.process.is_some())
            .collect()
    }

    /// Tracks with a thread descriptor, in descriptor (uuid) order.
    pub fn thread_tracks(&self) -> Vec<&Track> {
        self.tracks
            .values()
            .filter(|t| t.thread.is_some())
            .collect()
    }

    /// The `async` group track, if any.
    pub fn async_group(&self) -> Option<&Track> {
        self.tracks
            .values()
            .find(|t| t.thread.is_none() && t.name.as_deref() == Some("async"))
    }

    /// The async lanes, ordered by `sibling_order_rank`.
    pub fn async_tracks(&self) -> Vec<&Track> {
        let Some(group) = self.async_group() else {
            return Vec::new();
        };
        let mut lanes = self.children(group.uuid);
        lanes.sort_by_key(|t| t.sibling_order_rank);
        lanes
    }

    pub fn thread_track_named(&self, label: &str) -> Option<&Track> {
        self.thread_tracks()
            .into_iter()
            .find(|t| t.label() == label)
    }

    /// Every slice with the uuid of its track.
    pub fn all_slices(&self) -> impl Iterator<Item = (u64, &Slice)> {
        self.slices
            .iter()
            .flat_map(|(&uuid, list)| list.iter().map(move |s| (uuid, s)))
    }

    /// Thread slices keyed by track label, for comparing traces whose uuids/tids differ; the
    /// labels must be unique (threads sharing a name cannot be compared this way).
    pub fn thread_slices_by_label(&self) -> BTreeMap<String, Vec<Slice>> {
        let mut by_label = BTreeMap::new();
        for t in self.thread_tracks() {
            let slices = self.slices_of(t.uuid).to_vec();
            if !slices.is_empty() {
                let previous = by_label.insert(t.label(), slices);
                assert!(previous.is_none(), "two thread tracks {:?}", t.label());
            }
        }
        by_label
    }

    /// Async slices of every lane: (lane label, slice).
    pub fn async_slices(&self) -> Vec<(String, &Slice)> {
        self.async_tracks()
            .into_iter()
            .flat_map(|t| self.slices_of(t.uuid).iter().map(move |s| (t.label(), s)))
            .collect()
    }

    /// The chain of enclosing slice names on the track, innermost first.
    pub fn ancestors<'a>(&'a self, uuid: u64, slice: &'a Slice) -> Vec<&'a str> {
        let list = self.slices_of(uuid);
        let mut out = Vec::new();
        let mut parent = slice.parent;
        while let Some(i) = parent {
            out.push(list[i].name.as_str());
            parent = list[i].parent;
        }
        out
    }
}
