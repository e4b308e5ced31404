//! One sequence's packets: interning tables and the flags Perfetto needs to resolve them.

use std::collections::HashMap;
use std::sync::Arc;

use super::proto::*;
use crate::assembly::timeline::{AnnotationValue, Slice};

pub struct SequenceWriter {
    sequence_id: u32,
    track_uuid: u64,
    first_packet: bool,
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
            first_packet: true,
            names: HashMap::new(),
            categories: HashMap::new(),
            locations: HashMap::new(),
            annotation_names: HashMap::new(),
            annotation_values: HashMap::new(),
        }
    }

    fn packet(
        &mut self,
        timestamp_ns: i64,
        event: TrackEvent,
        interned: InternedData,
    ) -> TracePacket {
        let flags = if std::mem::take(&mut self.first_packet) {
            SEQ_INCREMENTAL_STATE_CLEARED | SEQ_NEEDS_INCREMENTAL_STATE
        } else {
            SEQ_NEEDS_INCREMENTAL_STATE
        };
        let has_interned = interned != InternedData::default();
        TracePacket {
            timestamp: Some(timestamp_ns.max(0) as u64),
            trusted_packet_sequence_id: Some(self.sequence_id),
            track_event: Some(event),
            interned_data: has_interned.then_some(interned),
            sequence_flags: Some(flags),
            ..Default::default()
        }
    }

    pub fn end(&mut self, timestamp_ns: i64) -> TracePacket {
        let event = TrackEvent {
            r#type: Some(TYPE_SLICE_END),
            track_uuid: Some(self.track_uuid),
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
            track_uuid: Some(self.track_uuid),
            source_location_iid,
            flow_ids: slice.flows_out.clone(),
            terminating_flow_ids: slice.flow_in.into_iter().collect(),
        };
        self.packet(slice.begin_ns, event, interned)
    }
}
