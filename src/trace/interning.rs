//! One track's sequence: interning tables, the incremental clock, and the packets' bytes.

use prost::Message;

use super::encode::{bytes_field, fixed64_field, frame, varint, varint_field, varint_len};
use super::proto::*;
use crate::symbols::{FastMap, PropertySet, Sym, SymbolTable, TextIndex};
use crate::tracks::{Instant, Slice, notes};

/// Ids remembered by a small index (a symbol, a slot) for the current sequence only: a new
/// sequence starts a new generation instead of clearing them.
#[derive(Default)]
struct Slots(Vec<(u32, u64)>);

impl Slots {
    fn get(&self, index: usize, generation: u32) -> Option<u64> {
        match self.0.get(index) {
            Some(&(g, id)) if g == generation => Some(id),
            _ => None,
        }
    }

    fn set(&mut self, index: usize, generation: u32, id: u64) {
        if index >= self.0.len() {
            self.0.resize(index + 1, (0, 0));
        }
        self.0[index] = (generation, id);
    }
}

/// Interned ids of symbols on the current sequence.
#[derive(Default)]
struct SymTable {
    ids: Slots,
    next: u64,
}

impl SymTable {
    fn reset(&mut self) {
        self.next = 0;
    }

    /// The id of `sym` on this sequence, and whether it is new (ids start at 1).
    fn intern(&mut self, sym: Sym, generation: u32) -> (u64, bool) {
        if let Some(id) = self.ids.get(sym as usize, generation) {
            return (id, false);
        }
        self.next += 1;
        self.ids.set(sym as usize, generation, self.next);
        (self.next, true)
    }
}

/// A text to intern on a sequence: a symbol's, or a fixed one of the writer.
#[derive(Clone, Copy)]
enum Text {
    Sym(Sym),
    Fixed(&'static str),
}

impl Text {
    fn get(self, symbols: &SymbolTable) -> &str {
        match self {
            Text::Sym(sym) => symbols.get(sym),
            Text::Fixed(text) => text,
        }
    }
}

/// Interned ids of texts on the current sequence, found by text (a symbol's text and an equal
/// fixed text share one id). Holds no copy of a text: a large log has long messages by the
/// hundred thousand.
#[derive(Default)]
struct TextTable {
    index: TextIndex,
    /// The text of id `k + 1`.
    texts: Vec<Text>,
}

impl TextTable {
    fn clear(&mut self) {
        self.index.clear();
        self.texts.clear();
    }

    /// The id of `text` on this sequence, and whether it is new (ids start at 1).
    fn intern(&mut self, symbols: &SymbolTable, text: Text) -> (u64, bool) {
        let wanted = text.get(symbols);
        let hash = self.index.hash(wanted);
        let texts = &self.texts;
        let known = |iid: u32| texts[iid as usize - 1].get(symbols) == wanted;
        if let Some(iid) = self.index.find(hash, known) {
            return (iid as u64, false);
        }
        self.texts.push(text);
        let iid = self.texts.len() as u32;
        self.index.insert(hash, iid);
        (iid as u64, true)
    }
}

#[derive(Default)]
pub struct SequenceWriter {
    sequence_id: u32,
    last_ns: u64,
    generation: u32,
    names: SymTable,
    categories: SymTable,
    locations: FastMap<(Sym, u32), u64>,
    annotation_names: TextTable,
    texts: TextTable,
    /// Ids of the async detail's argument names, by slot.
    detail_names: Slots,
    /// Text ids of symbols (thread names, log levels and messages, property values), by symbol:
    /// each is hashed once per sequence, not once per event.
    sym_texts: Slots,
    /// Annotation name ids of symbols (property keys), by symbol.
    sym_annotation_names: Slots,
    event: Vec<u8>,
    interned: Vec<u8>,
    scratch: Vec<u8>,
}

/// An argument name of the async detail, and its slot in the cache of their ids.
type DetailName = (usize, &'static str);
const SPAN_ID: DetailName = (0, "span_id");
const PARENT_SPAN_ID: DetailName = (1, "parent_span_id");
const DEPTH: DetailName = (2, "depth");
const BEGAN_ON: DetailName = (3, "began on");
const ENDED_ON: DetailName = (4, "ended on");

/// `InternedData` field numbers.
const INTERNED_CATEGORY: u32 = 1;
const INTERNED_NAME: u32 = 2;
const INTERNED_ANNOTATION_NAME: u32 = 3;
const INTERNED_SOURCE_LOCATION: u32 = 4;
const INTERNED_ANNOTATION_STRING: u32 = 29;
/// `DebugAnnotation` value field numbers.
const ANNOTATION_UINT_VALUE: u32 = 3;
const ANNOTATION_STRING_VALUE_IID: u32 = 17;

impl SequenceWriter {
    /// Opens a new sequence: clears the incremental state, sets the defaults (the track, the
    /// incremental clock) and the clock's origin.
    /// `track_uuid`: the track of every event of the sequence, or `None` when each event
    /// names its own.
    pub fn start(
        &mut self,
        sequence_id: u32,
        track_uuid: Option<u64>,
        first_ns: i64,
        out: &mut Vec<u8>,
    ) {
        self.forget_interned();
        self.open(sequence_id, track_uuid, first_ns, out);
    }

    /// Starts interning afresh: what is encoded from now on belongs to a new sequence, opened
    /// later by [`Self::open`] (events may be encoded before their sequence is written).
    pub fn forget_interned(&mut self) {
        self.generation += 1;
        self.names.reset();
        self.categories.reset();
        self.locations.clear();
        self.annotation_names.clear();
        self.texts.clear();
    }

    /// Writes the first packet of the sequence whose names were interned since
    /// [`Self::forget_interned`]: like [`Self::start`], without forgetting them.
    pub fn open(
        &mut self,
        sequence_id: u32,
        track_uuid: Option<u64>,
        first_ns: i64,
        out: &mut Vec<u8>,
    ) {
        self.sequence_id = sequence_id;
        let origin = first_ns.max(0) as u64;
        self.last_ns = origin;
        let packet = TracePacket {
            trusted_packet_sequence_id: Some(sequence_id),
            sequence_flags: Some(SEQ_INCREMENTAL_STATE_CLEARED),
            trace_packet_defaults: Some(TracePacketDefaults {
                timestamp_clock_id: Some(INCREMENTAL_CLOCK),
                track_event_defaults: track_uuid.map(|uuid| TrackEventDefaults {
                    track_uuid: Some(uuid),
                }),
            }),
            clock_snapshot: Some(ClockSnapshot {
                clocks: vec![
                    Clock {
                        clock_id: Some(BUILTIN_CLOCK_BOOTTIME),
                        timestamp: Some(origin),
                        is_incremental: None,
                    },
                    // Trace times are Unix times already: the real-time clock reads the same.
                    Clock {
                        clock_id: Some(BUILTIN_CLOCK_REALTIME),
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
        };
        frame(&packet.encode_to_vec(), out);
    }

    pub fn end(&mut self, timestamp_ns: i64, track_uuid: Option<u64>, out: &mut Vec<u8>) {
        self.event.clear();
        self.append_end(track_uuid);
        self.finish_packet(timestamp_ns, out);
    }

    /// Appends an END's `TrackEvent` to `events` instead of writing it (its interned data:
    /// [`Self::interned`]).
    pub fn encode_end(&mut self, track_uuid: Option<u64>, events: &mut Vec<u8>) {
        self.appending_to(events, |writer| writer.append_end(track_uuid));
    }

    /// Runs `append` with `events` as the event being encoded.
    fn appending_to(&mut self, events: &mut Vec<u8>, append: impl FnOnce(&mut Self)) {
        std::mem::swap(&mut self.event, events);
        append(self);
        std::mem::swap(&mut self.event, events);
    }

    fn append_end(&mut self, track_uuid: Option<u64>) {
        varint_field(9, TYPE_SLICE_END as u64, &mut self.event);
        if let Some(uuid) = track_uuid {
            varint_field(11, uuid, &mut self.event);
        }
        self.interned.clear();
    }

    pub fn begin(
        &mut self,
        symbols: &SymbolTable,
        slice: &Slice,
        track_uuid: Option<u64>,
        out: &mut Vec<u8>,
    ) {
        self.event.clear();
        self.append_begin(symbols, slice, track_uuid);
        self.finish_packet(slice.begin_ns, out);
    }

    /// Appends a BEGIN's `TrackEvent` to `events` instead of writing it (its interned data:
    /// [`Self::interned`]).
    pub fn encode_begin(
        &mut self,
        symbols: &SymbolTable,
        slice: &Slice,
        track_uuid: Option<u64>,
        events: &mut Vec<u8>,
    ) {
        self.appending_to(events, |writer| {
            writer.append_begin(symbols, slice, track_uuid)
        });
    }

    fn append_begin(&mut self, symbols: &SymbolTable, slice: &Slice, track_uuid: Option<u64>) {
        self.interned.clear();
        self.category(symbols, slice.target);
        self.annotations(symbols, slice);
        self.kind_name_track(symbols, TYPE_SLICE_BEGIN, slice.name, track_uuid);
        self.location(symbols, slice.file, slice.line);
        if let Some(detail) = &slice.detail {
            for flow in detail.flows_out.iter() {
                fixed64_field(47, flow, &mut self.event);
            }
            if let Some(flow) = detail.flow_in {
                fixed64_field(48, flow.get(), &mut self.event);
            }
        }
    }

    /// The entries of interned data that the event encoded last by `encode_*` used first:
    /// [`Self::write_interned`] writes them, before [`Self::write_encoded`] writes the event.
    pub fn interned(&self) -> &[u8] {
        &self.interned
    }

    /// Writes entries of interned data (from [`Self::interned`]) in a packet of their own.
    pub fn write_interned(&mut self, interned: &[u8], out: &mut Vec<u8>) {
        packet(self.sequence_id, None, &[], interned, out);
    }

    /// Writes an event encoded earlier on this sequence (by `encode_*`), at
    /// `timestamp_ns`: its interned data was written before it.
    pub fn write_encoded(&mut self, timestamp_ns: i64, event: &[u8], out: &mut Vec<u8>) {
        let delta = self.advance_clock(timestamp_ns);
        packet(self.sequence_id, Some(delta), event, &[], out);
    }

    /// An instant event: a log entry.
    pub fn instant(
        &mut self,
        symbols: &SymbolTable,
        instant: &Instant,
        track_uuid: Option<u64>,
        out: &mut Vec<u8>,
    ) {
        self.event.clear();
        self.interned.clear();
        self.category(symbols, instant.category);
        self.sym_annotations(symbols, instant.args.iter());
        self.property_annotations(symbols, instant.properties);
        self.kind_name_track(symbols, TYPE_INSTANT, instant.name, track_uuid);
        self.location(symbols, instant.file, instant.line);
        self.finish_packet(instant.ns, out);
    }

    /// A counter value (a measure) on a counter track.
    pub fn counter(&mut self, ns: i64, value: f64, track_uuid: Option<u64>, out: &mut Vec<u8>) {
        self.event.clear();
        self.interned.clear();
        varint_field(9, TYPE_COUNTER as u64, &mut self.event);
        if let Some(uuid) = track_uuid {
            varint_field(11, uuid, &mut self.event);
        }
        fixed64_field(44, value.to_bits(), &mut self.event);
        self.finish_packet(ns, out);
    }

    /// The event's category (field 3), interned; none for the empty symbol.
    fn category(&mut self, symbols: &SymbolTable, category: Sym) {
        if category != 0 {
            let (iid, new) = self.categories.intern(category, self.generation);
            if new {
                self.add_interned(INTERNED_CATEGORY, iid, symbols.get(category));
            }
            varint_field(3, iid, &mut self.event);
        }
    }

    /// The event's type (9), interned name (10) and track (11) when it names its own.
    fn kind_name_track(
        &mut self,
        symbols: &SymbolTable,
        kind: i32,
        name: Sym,
        track_uuid: Option<u64>,
    ) {
        varint_field(9, kind as u64, &mut self.event);
        let (name_iid, new) = self.names.intern(name, self.generation);
        if new {
            self.add_interned(INTERNED_NAME, name_iid, symbols.get(name));
        }
        varint_field(10, name_iid, &mut self.event);
        if let Some(uuid) = track_uuid {
            varint_field(11, uuid, &mut self.event);
        }
    }

    /// The event's source location (field 34), interned; none when the file is unknown.
    fn location(&mut self, symbols: &SymbolTable, file: Sym, line: u32) {
        if file == 0 {
            return;
        }
        let next = self.locations.len() as u64 + 1;
        let iid = *self.locations.entry((file, line)).or_insert(next);
        if iid == next {
            self.scratch.clear();
            varint_field(1, iid, &mut self.scratch);
            bytes_field(2, symbols.get(file).as_bytes(), &mut self.scratch);
            varint_field(4, line as u64, &mut self.scratch);
            bytes_field(INTERNED_SOURCE_LOCATION, &self.scratch, &mut self.interned);
        }
        varint_field(34, iid, &mut self.event);
    }

    /// Arguments: async ids and threads, what was clipped, a tagged end's properties.
    fn annotations(&mut self, symbols: &SymbolTable, slice: &Slice) {
        if let Some(detail) = &slice.detail {
            self.uint_annotation(symbols, SPAN_ID, detail.span_id);
            self.uint_annotation(symbols, PARENT_SPAN_ID, detail.parent_span_id);
            self.uint_annotation(symbols, DEPTH, detail.depth as u64);
            if let Some(thread) = detail.began_on {
                self.thread_annotation(symbols, BEGAN_ON, thread);
            }
            if let Some(thread) = detail.ended_on {
                self.thread_annotation(symbols, ENDED_ON, thread);
            }
        }
        if slice.notes != 0 {
            for (flag, name, text) in notes::ALL {
                if slice.notes & flag != 0 {
                    self.text_annotation(symbols, name, text);
                }
            }
        }
        self.property_annotations(symbols, slice.properties);
    }

    fn property_annotations(&mut self, symbols: &SymbolTable, properties: PropertySet) {
        let pairs = symbols.properties(properties).iter().copied();
        self.sym_annotations(symbols, pairs);
    }

    /// Text arguments whose names and texts are symbols.
    fn sym_annotations(&mut self, symbols: &SymbolTable, args: impl Iterator<Item = (Sym, Sym)>) {
        for (key, value) in args {
            let name_iid = match self.sym_annotation_names.get(key as usize, self.generation) {
                Some(iid) => iid,
                None => {
                    let iid = self.annotation_name(symbols, Text::Sym(key));
                    self.sym_annotation_names
                        .set(key as usize, self.generation, iid);
                    iid
                }
            };
            let iid = self.sym_text(symbols, value);
            self.annotation(name_iid, ANNOTATION_STRING_VALUE_IID, iid);
        }
    }

    fn annotation_name(&mut self, symbols: &SymbolTable, name: Text) -> u64 {
        let (iid, new) = self.annotation_names.intern(symbols, name);
        if new {
            self.add_interned(INTERNED_ANNOTATION_NAME, iid, name.get(symbols));
        }
        iid
    }

    /// The id of one of the async detail's argument names, without hashing it again.
    fn detail_name(&mut self, symbols: &SymbolTable, (slot, name): DetailName) -> u64 {
        if let Some(iid) = self.detail_names.get(slot, self.generation) {
            return iid;
        }
        let iid = self.annotation_name(symbols, Text::Fixed(name));
        self.detail_names.set(slot, self.generation, iid);
        iid
    }

    fn uint_annotation(&mut self, symbols: &SymbolTable, name: DetailName, value: u64) {
        let name_iid = self.detail_name(symbols, name);
        self.annotation(name_iid, ANNOTATION_UINT_VALUE, value);
    }

    fn text_annotation(&mut self, symbols: &SymbolTable, name: &'static str, text: &'static str) {
        let name_iid = self.annotation_name(symbols, Text::Fixed(name));
        let iid = self.text(symbols, Text::Fixed(text));
        self.annotation(name_iid, ANNOTATION_STRING_VALUE_IID, iid);
    }

    /// The id of an annotation text, interning it if new on this sequence.
    fn text(&mut self, symbols: &SymbolTable, text: Text) -> u64 {
        let (iid, new) = self.texts.intern(symbols, text);
        if new {
            self.add_interned(INTERNED_ANNOTATION_STRING, iid, text.get(symbols));
        }
        iid
    }

    /// The text id of a symbol, interning its text the first time on this sequence.
    fn sym_text(&mut self, symbols: &SymbolTable, sym: Sym) -> u64 {
        if let Some(iid) = self.sym_texts.get(sym as usize, self.generation) {
            return iid;
        }
        let iid = self.text(symbols, Text::Sym(sym));
        self.sym_texts.set(sym as usize, self.generation, iid);
        iid
    }

    /// Thread names are symbols: their text ids are remembered by symbol, not hashed per span.
    fn thread_annotation(&mut self, symbols: &SymbolTable, name: DetailName, thread: Sym) {
        let name_iid = self.detail_name(symbols, name);
        let iid = self.sym_text(symbols, thread);
        self.annotation(name_iid, ANNOTATION_STRING_VALUE_IID, iid);
    }

    /// A `DebugAnnotation {name_iid = 1; <value_field> = value}` of the event.
    fn annotation(&mut self, name_iid: u64, value_field: u32, value: u64) {
        self.scratch.clear();
        varint_field(1, name_iid, &mut self.scratch);
        varint_field(value_field, value, &mut self.scratch);
        bytes_field(4, &self.scratch, &mut self.event);
    }

    /// An `InternedData` entry `{iid = 1; name = 2}` as its field `field` in this packet.
    fn add_interned(&mut self, field: u32, iid: u64, text: &str) {
        self.scratch.clear();
        varint_field(1, iid, &mut self.scratch);
        bytes_field(2, text.as_bytes(), &mut self.scratch);
        bytes_field(field, &self.scratch, &mut self.interned);
    }

    fn finish_packet(&mut self, timestamp_ns: i64, out: &mut Vec<u8>) {
        let delta = self.advance_clock(timestamp_ns);
        packet(
            self.sequence_id,
            Some(delta),
            &self.event,
            &self.interned,
            out,
        );
    }

    /// The delta of the incremental clock to `timestamp_ns`, which becomes its reading.
    fn advance_clock(&mut self, timestamp_ns: i64) -> u64 {
        let now = timestamp_ns.max(0) as u64;
        // Callers write in non-decreasing time order, so a delta is never negative.
        let delta = now.saturating_sub(self.last_ns);
        self.last_ns += delta;
        delta
    }
}

/// A packet of a sequence: timestamp (delta) if any, sequence id, the event if any, interned
/// data if any, flags; then framing.
fn packet(sequence_id: u32, delta: Option<u64>, event: &[u8], interned: &[u8], out: &mut Vec<u8>) {
    // Written straight into the frame: the packet's size is known from its parts.
    let field = |len: usize| 1 + varint_len(len as u64) + len;
    let mut size = 1 + varint_len(sequence_id as u64) + 2;
    if let Some(delta) = delta {
        size += 1 + varint_len(delta);
    }
    if !event.is_empty() {
        size += field(event.len());
    }
    if !interned.is_empty() {
        size += field(interned.len());
    }
    out.reserve(size + 6);
    out.push(0x0a);
    varint(size as u64, out);
    if let Some(delta) = delta {
        varint_field(8, delta, out);
    }
    varint_field(10, sequence_id as u64, out);
    if !event.is_empty() {
        bytes_field(11, event, out);
    }
    if !interned.is_empty() {
        bytes_field(12, interned, out);
    }
    varint_field(13, SEQ_NEEDS_INCREMENTAL_STATE as u64, out);
}
