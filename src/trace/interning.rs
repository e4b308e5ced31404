//! One sequence's packets: interning tables and the flags Perfetto needs to resolve them.

use std::collections::HashMap;
use std::sync::Arc;

use super::proto::*;
use crate::assembly::timeline::{AnnotationValue, Slice};

/// Packets of one track's sequence, written as Perfetto's SDK writes them: the first packet
/// clears the incremental state and sets the sequence's defaults (the track, and an
/// incremental clock), so each event carries only a timestamp delta and interned ids.
pub struct SequenceWriter {
    sequence_id: u32,
    track_uuid: u64,
    /// Timestamp of the previous packet; `None` before the first.
    last_ns: Option<u64>,
    names: HashMap<Arc<str>, u64>,
    categories: HashMap<Arc<str>, u64>,
    locations: HashMap<(Arc<str>, u32), u64>,
    annotation_names: HashMap<Arc<str>, u64>,
    annotation_values: HashMap<Arc<str>, u64>,
}

/// Looks `key` up, or gives it the next id (from 1) and reports it as new.
fn intern<K: std::hash::Hash + Eq + Clone>(table: &mut HashMap<K, u64>, key: &K) -> (u64, bool) {
    if let Some(&iid) = table.get(key) {
        return (iid, false);
    }
    let iid = table.len() as u64 + 1;
    table.insert(key.clone(), iid);
    (iid, true)
}

impl SequenceWriter {
    pub fn new(sequence_id: u32, track_uuid: u64) -> Self {
        Self {
            sequence_id,
            track_uuid,
            last_ns: None,
            names: HashMap::new(),
            categories: HashMap::new(),
            locations: HashMap::new(),
            annotation_names: HashMap::new(),
            annotation_values: HashMap::new(),
        }
    }

    /// The packet that opens the sequence: defaults, and the incremental clock's origin.
    pub fn start(&mut self, first_ns: i64) -> TracePacket {
        let origin = first_ns.max(0) as u64;
        self.last_ns = Some(origin);
        TracePacket {
            trusted_packet_sequence_id: Some(self.sequence_id),
            sequence_flags: Some(SEQ_INCREMENTAL_STATE_CLEARED),
            trace_packet_defaults: Some(TracePacketDefaults {
                timestamp_clock_id: Some(INCREMENTAL_CLOCK),
                track_event_defaults: Some(TrackEventDefaults {
                    track_uuid: Some(self.track_uuid),
                }),
            }),
            clock_snapshot: Some(ClockSnapshot {
                clocks: vec![
                    Clock {
                        clock_id: Some(BUILTIN_CLOCK_BOOTTIME),
                        timestamp: Some(origin),
                        is_incremental: None,
                    },
                    Clock {
                        clock_id: Some(INCREMENTAL_CLOCK),
                        timestamp: Some(origin),
                        is_incremental: Some(true),
                    },
                ],
            }),
            ..Default::default()
        }
    }

    fn packet(
        &mut self,
        timestamp_ns: i64,
        event: TrackEvent,
        interned: InternedData,
    ) -> TracePacket {
        let now = timestamp_ns.max(0) as u64;
        let last = self.last_ns.expect("start() opens the sequence");
        // Callers write in non-decreasing time order, so a delta is never negative.
        let delta = now.saturating_sub(last);
        self.last_ns = Some(last + delta);
        let has_interned = interned != InternedData::default();
        TracePacket {
            timestamp: Some(delta),
            trusted_packet_sequence_id: Some(self.sequence_id),
            track_event: Some(event),
            interned_data: has_interned.then_some(interned),
            sequence_flags: Some(SEQ_NEEDS_INCREMENTAL_STATE),
            ..Default::default()
        }
    }

    pub fn end(&mut self, timestamp_ns: i64) -> TracePacket {
        let event = TrackEvent {
            r#type: Some(TYPE_SLICE_END),
            ..Default::default()
        };
        self.packet(timestamp_ns, event, InternedData::default())
    }

    pub fn begin(&mut self, slice: &Slice) -> TracePacket {
        let mut interned = InternedData::default();
        let (name_iid, new) = intern(&mut self.names, &slice.name);
        if new {
            interned.event_names.push(EventName {
                iid: Some(name_iid),
                name: Some(slice.name.to_string()),
            });
        }
        let mut category_iids = Vec::new();
        if !slice.target.is_empty() {
            let (iid, new) = intern(&mut self.categories, &slice.target);
            if new {
                interned.event_categories.push(EventCategory {
                    iid: Some(iid),
                    name: Some(slice.target.to_string()),
                });
            }
            category_iids.push(iid);
        }
        let mut source_location_iid = None;
        if !slice.file.is_empty() {
            let key = (slice.file.clone(), slice.line);
            let (iid, new) = intern(&mut self.locations, &key);
            if new {
                interned.source_locations.push(SourceLocation {
                    iid: Some(iid),
                    file_name: Some(slice.file.to_string()),
                    line_number: Some(slice.line),
                });
            }
            source_location_iid = Some(iid);
        }
        let debug_annotations = slice
            .annotations
            .iter()
            .map(|a| {
                let (name_iid, new) = intern(&mut self.annotation_names, &a.name);
                if new {
                    interned.debug_annotation_names.push(DebugAnnotationName {
                        iid: Some(name_iid),
                        name: Some(a.name.to_string()),
                    });
                }
                let mut annotation = DebugAnnotation {
                    name_iid: Some(name_iid),
                    ..Default::default()
                };
                match &a.value {
                    AnnotationValue::Text(text) => {
                        let (iid, new) = intern(&mut self.annotation_values, text);
                        if new {
                            interned
                                .debug_annotation_string_values
                                .push(InternedString {
                                    iid: Some(iid),
                                    str: Some(text.as_bytes().to_vec()),
                                });
                        }
                        annotation.string_value_iid = Some(iid);
                    }
                    AnnotationValue::Int(v) => annotation.int_value = Some(*v),
                    AnnotationValue::Uint(v) => annotation.uint_value = Some(*v),
                }
                annotation
            })
            .collect();
        let event = TrackEvent {
            category_iids,
            debug_annotations,
            r#type: Some(TYPE_SLICE_BEGIN),
            name_iid: Some(name_iid),
            track_uuid: None,
            source_location_iid,
            flow_ids: slice.flows_out.clone(),
            terminating_flow_ids: slice.flow_in.into_iter().collect(),
        };
        self.packet(slice.begin_ns, event, interned)
    }
}
