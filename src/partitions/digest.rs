//! A thread partition's digest: what its span events do to the call stack beyond themselves,
//! kept in the catalog so that an export of a time window can pair a stream's spans without
//! reading the partitions the window does not reach.
//!
//! Within a run of a stream's events, a begin and the end that closes it (with everything
//! between) pair among themselves, whatever came before — as long as no end reaches below the
//! spans still open within the run. What remains is the digest: the ends that close spans begun
//! before the run, then the begins still open at its end, in stream order. Pairing a stream with
//! a digest in place of the events gives the same spans except those that begin and end within
//! the run, which a window that does not reach it never shows. A run where an end reaches below
//! spans still open within it (a stream that lost events) has no digest: it is always read.
//!
//! Async spans pair by span id across all threads, in time order. An async partition's digest
//! keeps the events of the ids it does not both begin and end (once each, in that order), and
//! the ids it does: a window that does not reach the partition shows none of those spans —
//! unless the id is seen elsewhere too, which a read checks against the list.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

use crate::events::{EventPhase, EventScope};
use crate::symbols::FastMap;

/// The digests of a partition's thread streams (one, or the small streams it holds).
pub type StreamDigests = BTreeMap<Uuid, Digest>;

/// The key of a span partition file's metadata that holds its row groups' digests in full:
/// the catalog keeps only their [summaries](Digest::summary), which say which row groups a
/// window reads; the events of those standing in come with the file's footer, read with them.
/// (In the catalog, the row-group digests of an 8-hour process were 4 of its 6 MB.)
pub const ROW_GROUP_DIGESTS_KEY: &str = "write_perfetto.row_group_digests";

/// The digest of a thread stream's rows in a partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Digest {
    /// The smallest and largest tick counts of its events.
    pub min_ticks: i64,
    pub max_ticks: i64,
    /// The events that reach beyond the partition, in stream order.
    #[serde(with = "compact_events")]
    pub events: Vec<DigestEvent>,
    /// Of a stream's own partition, its file's row groups, in order, each with its digest (none
    /// for a row group whose events tangle or that has no events): in the catalog their
    /// [summaries](Digest::summary), in the file's footer in full.
    #[serde(default, skip_serializing_if = "RowGroups::is_empty")]
    pub row_groups: RowGroups,
}

/// The row-group digests of a partition, parsed when first asked for: a window needs them only
/// for the partitions it reaches.
#[derive(Debug, Clone)]
pub struct RowGroups<T = RowGroupDigest> {
    text: Option<Box<serde_json::value::RawValue>>,
    parsed: std::sync::OnceLock<Vec<T>>,
}

impl<T> Default for RowGroups<T> {
    fn default() -> Self {
        Self {
            text: None,
            parsed: std::sync::OnceLock::new(),
        }
    }
}

impl<T: serde::de::DeserializeOwned> RowGroups<T> {
    /// The digests; none if their text is malformed (the partition is then read whole).
    pub fn get(&self) -> &[T] {
        self.parsed.get_or_init(|| {
            let text = self.text.as_ref().map_or("[]", |t| t.get());
            serde_json::from_str(text).unwrap_or_default()
        })
    }

    fn is_empty(&self) -> bool {
        self.text.is_none() && self.get().is_empty()
    }
}

impl<T> From<Vec<T>> for RowGroups<T> {
    fn from(groups: Vec<T>) -> Self {
        Self {
            text: None,
            parsed: groups.into(),
        }
    }
}

impl<T: PartialEq + serde::de::DeserializeOwned> PartialEq for RowGroups<T> {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl<T: Serialize + serde::de::DeserializeOwned> Serialize for RowGroups<T> {
    fn serialize<S: serde::Serializer>(&self, to: S) -> Result<S::Ok, S::Error> {
        match &self.text {
            Some(text) => text.serialize(to),
            None => self.get().serialize(to),
        }
    }
}

impl<'de, T> Deserialize<'de> for RowGroups<T> {
    fn deserialize<D: serde::Deserializer<'de>>(from: D) -> Result<Self, D::Error> {
        Ok(Self {
            text: Some(Deserialize::deserialize(from)?),
            parsed: std::sync::OnceLock::new(),
        })
    }
}

impl Digest {
    /// A row group's digest as the catalog keeps it: its ticks, without its events.
    pub fn summary(&self) -> Digest {
        Digest {
            min_ticks: self.min_ticks,
            max_ticks: self.max_ticks,
            events: Vec::new(),
            row_groups: RowGroups::default(),
        }
    }
}

/// A row group of a partition file: how many of the partition's blocks it holds (whole, in
/// order), and its digest, if it can have one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowGroupDigest {
    pub blocks: u32,
    pub digest: Option<Digest>,
}

/// A span event as a digest keeps it: with its place in stream order and its strings (shared:
/// the events of a digest use a few names).
#[derive(Debug, Clone, PartialEq)]
pub struct DigestEvent {
    pub block: Uuid,
    pub index: u32,
    pub ticks: i64,
    pub end: bool,
    pub name: Arc<str>,
    pub target: Arc<str>,
    pub file: Arc<str>,
    pub line: u32,
    /// A tagged end's properties.
    pub properties: Vec<(String, String)>,
    /// Async events only.
    pub span_id: u64,
    pub parent_span_id: u64,
    pub depth: u32,
}

/// Numbers as the catalog keeps them: varints (LEB128) in base64, about a byte and a third for
/// a small number. A window export parsed a million span ids of an 8-hour process as JSON
/// numbers, one at a time.
mod varint_text {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64;
    use serde::{Deserialize, Deserializer, Serializer};

    /// `varints`: numbers already encoded, one after another.
    pub fn serialize<S: Serializer>(varints: &[u8], to: S) -> Result<S::Ok, S::Error> {
        to.serialize_str(&BASE64.encode(varints))
    }

    /// The varints, checked to be whole.
    pub fn deserialize<'de, D: Deserializer<'de>>(from: D) -> Result<Vec<u8>, D::Error> {
        use serde::de::Error;
        let text = <std::borrow::Cow<'de, str>>::deserialize(from)?;
        let bytes = BASE64.decode(&*text).map_err(D::Error::custom)?;
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            prost::encoding::decode_varint(&mut rest).map_err(D::Error::custom)?;
        }
        Ok(bytes)
    }
}

/// Digest events as the catalog keeps them: each string and block once, each event a row of
/// varints. Written out as objects, every event repeated its strings: a window export parsed
/// ten megabytes of them for an 8-hour process; as JSON arrays of numbers, parsing the digests
/// of an 8-hour process still took a window export 20 to 30 ms.
mod compact_events {
    use super::{Arc, DigestEvent, Uuid};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64;
    use prost::encoding::{decode_varint, encode_varint};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::HashMap;

    /// `S`: borrowed texts when written, owned ones when read.
    #[derive(Serialize, Deserialize)]
    struct Compact<S> {
        texts: Vec<S>,
        /// In base64: the number of blocks, each block's 16 bytes, the number of events, then
        /// the events, each as varints: block, index, ticks (zigzag, the difference from the
        /// event before), end (0 or 1), name, target, file, line, span id, parent span id,
        /// depth.
        packed: String,
        /// A tagged end's properties: its row, and pairs of texts.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        properties: Vec<(u32, Vec<(u32, u32)>)>,
    }

    /// Numbers each distinct value in order of first use.
    struct Numbering<T>(HashMap<T, u32>, Vec<T>);

    impl<T: std::hash::Hash + Eq + Clone> Numbering<T> {
        fn of(&mut self, value: &T) -> u32 {
            if let Some(&n) = self.0.get(value) {
                return n;
            }
            let n = self.1.len() as u32;
            self.0.insert(value.clone(), n);
            self.1.push(value.clone());
            n
        }
    }

    fn zigzag(value: i64) -> u64 {
        ((value << 1) ^ (value >> 63)) as u64
    }

    fn unzigzag(value: u64) -> i64 {
        (value >> 1) as i64 ^ -((value & 1) as i64)
    }

    pub fn serialize<'e, S: Serializer>(
        events: &'e [DigestEvent],
        to: S,
    ) -> Result<S::Ok, S::Error> {
        let mut texts = Numbering(HashMap::new(), Vec::new());
        let mut blocks = Numbering(HashMap::new(), Vec::new());
        let mut text = |t: &'e str| texts.of(&t);
        let mut rows = Vec::with_capacity(16 * events.len());
        let mut properties = Vec::new();
        let mut ticks = 0i64;
        for (k, e) in events.iter().enumerate() {
            let strings = [text(&e.name), text(&e.target), text(&e.file)];
            encode_varint(u64::from(blocks.of(&e.block)), &mut rows);
            encode_varint(u64::from(e.index), &mut rows);
            encode_varint(zigzag(e.ticks.wrapping_sub(ticks)), &mut rows);
            ticks = e.ticks;
            encode_varint(u64::from(e.end), &mut rows);
            for n in strings.into_iter().chain([e.line]) {
                encode_varint(u64::from(n), &mut rows);
            }
            for n in [e.span_id, e.parent_span_id, u64::from(e.depth)] {
                encode_varint(n, &mut rows);
            }
            if !e.properties.is_empty() {
                let pairs = e
                    .properties
                    .iter()
                    .map(|(k, v)| (text(k), text(v)))
                    .collect();
                properties.push((k as u32, pairs));
            }
        }
        let mut packed = Vec::with_capacity(10 + 16 * blocks.1.len() + rows.len());
        encode_varint(blocks.1.len() as u64, &mut packed);
        blocks
            .1
            .iter()
            .for_each(|b| packed.extend_from_slice(b.as_bytes()));
        encode_varint(events.len() as u64, &mut packed);
        packed.extend_from_slice(&rows);
        let compact = Compact {
            texts: texts.1,
            packed: BASE64.encode(packed),
            properties,
        };
        compact.serialize(to)
    }

    /// Reads the packed blocks and events back.
    struct Unpacker<'a> {
        rest: &'a [u8],
    }

    impl Unpacker<'_> {
        fn number(&mut self) -> Result<u64, String> {
            decode_varint(&mut self.rest).map_err(|e| e.to_string())
        }

        fn small(&mut self) -> Result<u32, String> {
            u32::try_from(self.number()?).map_err(|_| "a digest number is out of range".into())
        }

        fn block(&mut self) -> Result<Uuid, String> {
            let (bytes, rest) = (self.rest.split_first_chunk::<16>())
                .ok_or("a digest's block list is cut short")?;
            self.rest = rest;
            Ok(Uuid::from_bytes(*bytes))
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(from: D) -> Result<Vec<DigestEvent>, D::Error> {
        use serde::de::Error;
        let compact = Compact::<String>::deserialize(from)?;
        let texts: Vec<Arc<str>> = compact
            .texts
            .iter()
            .map(|t| Arc::from(t.as_str()))
            .collect();
        let packed = BASE64.decode(&compact.packed).map_err(D::Error::custom)?;
        let mut events = unpack(&packed, &texts).map_err(D::Error::custom)?;
        let text = |n: u32| text_of(&texts, n).map_err(D::Error::custom);
        for (row, pairs) in compact.properties {
            let event = events
                .get_mut(row as usize)
                .ok_or_else(|| D::Error::custom("a digest's properties name an event it lacks"))?;
            for (k, v) in pairs {
                event
                    .properties
                    .push((text(k)?.to_string(), text(v)?.to_string()));
            }
        }
        Ok(events)
    }

    fn text_of(texts: &[Arc<str>], n: u32) -> Result<Arc<str>, &'static str> {
        (texts.get(n as usize).cloned()).ok_or("a digest names a text it lacks")
    }

    fn unpack(packed: &[u8], texts: &[Arc<str>]) -> Result<Vec<DigestEvent>, String> {
        let mut input = Unpacker { rest: packed };
        let count = input.number()?;
        let blocks: Vec<Uuid> = (0..count)
            .map(|_| input.block())
            .collect::<Result<_, _>>()?;
        let text = |n: u32| text_of(texts, n);
        let count = input.number()?;
        // Each event takes 11 bytes at least: a count beyond that is damage, not a reservation.
        let mut events = Vec::with_capacity((count as usize).min(input.rest.len() / 11));
        let mut ticks = 0i64;
        for _ in 0..count {
            let block =
                *(blocks.get(input.small()? as usize)).ok_or("a digest names a block it lacks")?;
            let index = input.small()?;
            ticks = ticks.wrapping_add(unzigzag(input.number()?));
            let end = match input.number()? {
                0 => false,
                1 => true,
                _ => return Err("a digest event is neither a begin nor an end".into()),
            };
            let (name, target, file) = (
                text(input.small()?)?,
                text(input.small()?)?,
                text(input.small()?)?,
            );
            events.push(DigestEvent {
                block,
                index,
                ticks,
                end,
                name,
                target,
                file,
                line: input.small()?,
                properties: Vec::new(),
                span_id: input.number()?,
                parent_span_id: input.number()?,
                depth: input.small()?,
            });
        }
        if !input.rest.is_empty() {
            return Err("a digest has bytes beyond its events".into());
        }
        Ok(events)
    }
}

/// A span event as a partition file being written holds it: its strings, block and property
/// set as keys into the file's tables. What the digest builders see: no string is copied or
/// compared, and most events are dropped as soon as they pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeyedEvent {
    pub block: u32,
    pub index: u32,
    pub ticks: i64,
    pub phase: EventPhase,
    pub scope: EventScope,
    pub name: u32,
    pub target: u32,
    pub file: u32,
    pub line: u32,
    pub properties: u32,
    pub span_id: u64,
    pub parent_span_id: u64,
    pub depth: u32,
}

/// The file's tables, to turn kept events into digest events.
pub trait FileTables {
    fn text(&self, key: u32) -> &str;
    fn block(&self, key: u32) -> Uuid;
    fn property_set(&self, key: u32) -> Vec<(String, String)>;
}

impl DigestEvent {
    fn new(event: &KeyedEvent, tables: &dyn FileTables) -> Self {
        DigestEvent {
            block: tables.block(event.block),
            index: event.index,
            ticks: event.ticks,
            end: event.phase == EventPhase::End,
            name: Arc::from(tables.text(event.name)),
            target: Arc::from(tables.text(event.target)),
            file: Arc::from(tables.text(event.file)),
            line: event.line,
            properties: tables.property_set(event.properties),
            span_id: event.span_id,
            parent_span_id: event.parent_span_id,
            depth: event.depth,
        }
    }
}

/// Makes the digest of a partition from its events, pushed in stream order.
#[derive(Default)]
pub struct DigestBuilder {
    ticks: Option<(i64, i64)>,
    /// Ends that closed spans begun before the partition.
    reaching_back: Vec<KeyedEvent>,
    /// Begins still open, outermost first.
    open: Vec<KeyedEvent>,
    /// An end reached below spans still open within the partition.
    tangled: bool,
}

/// Widens a tick range to take in `ticks`.
fn widen(range: &mut Option<(i64, i64)>, ticks: i64) {
    let (min, max) = range.unwrap_or((ticks, ticks));
    *range = Some((min.min(ticks), max.max(ticks)));
}

impl DigestBuilder {
    /// A thread event of the stream (the partition's rows keep one scope).
    pub fn push(&mut self, event: KeyedEvent) {
        if self.tangled {
            return;
        }
        widen(&mut self.ticks, event.ticks);
        match event.phase {
            EventPhase::Begin => self.open.push(event),
            // As pairing does: the innermost open span of the same name, place and target
            // closes, with every span opened inside it.
            EventPhase::End => match self.open.iter().rposition(|o| same_span(o, &event)) {
                Some(position) => self.open.truncate(position),
                None if self.open.is_empty() => self.reaching_back.push(event),
                None => self.tangled = true,
            },
        }
    }

    /// The digest, or `None` for a partition without thread events or whose events tangle.
    pub fn finish(self, tables: &dyn FileTables) -> Option<Digest> {
        let (min_ticks, max_ticks) = self.ticks?;
        if self.tangled {
            return None;
        }
        let events = (self.reaching_back.iter().chain(&self.open))
            .map(|e| DigestEvent::new(e, tables))
            .collect();
        Some(Digest {
            min_ticks,
            max_ticks,
            events,
            row_groups: RowGroups::default(),
        })
    }
}

/// Whether an end of a stream whose partitions have these digests (in stream order) closes a
/// span begun before the stream's first event: pairing the digests' events as pairing pairs
/// the stream's (the events a digest leaves out pair among themselves, with nothing open
/// around them but what the digests before left open).
pub fn ends_reach_before(digests: &[&Digest]) -> bool {
    let mut open: Vec<&DigestEvent> = Vec::new();
    let same = |open: &DigestEvent, end: &DigestEvent| {
        (open.name == end.name && open.line == end.line)
            && (open.file == end.file && open.target == end.target)
    };
    for event in digests.iter().flat_map(|d| &d.events) {
        if !event.end {
            open.push(event);
            continue;
        }
        match open.iter().rposition(|o| same(o, event)) {
            Some(position) => open.truncate(position),
            None if open.is_empty() => return true,
            None => {}
        }
    }
    false
}

/// The digest of an async partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AsyncDigest {
    /// The smallest and largest tick counts of its events.
    pub min_ticks: i64,
    pub max_ticks: i64,
    /// The events of the span ids it does not both begin and end.
    #[serde(with = "compact_events")]
    pub events: Vec<DigestEvent>,
    /// The span ids it begins and ends.
    #[serde(rename = "paired_id_steps")]
    pub paired: PairedIds,
    /// Of a partition, the digests of its file's row groups, in order (in the catalog their
    /// [summaries](AsyncDigest::summary), in the file's footer in full). Its rows are in time
    /// order: a window reads the few row groups it reaches.
    #[serde(default, skip_serializing_if = "RowGroups::is_empty")]
    pub row_groups: RowGroups<Option<AsyncDigest>>,
    /// An id it paired came again (its events and ids are then empty): it never stands in
    /// for its events, but a partition's row groups may.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tangled: bool,
}

impl AsyncDigest {
    /// A row group's digest as the catalog keeps it: its ticks and whether it tangles, without
    /// its events and ids.
    pub fn summary(&self) -> AsyncDigest {
        AsyncDigest {
            min_ticks: self.min_ticks,
            max_ticks: self.max_ticks,
            events: Vec::new(),
            paired: PairedIds::default(),
            row_groups: RowGroups::default(),
            tangled: self.tangled,
        }
    }
}

/// Span ids, ascending, each as its difference from the one before (span ids count up: most
/// differences take a byte), in varints (LEB128), as the catalog keeps them: compared as they
/// are decoded, never made a list (the async digests of an 8-hour process pair a million ids,
/// 18 MB as numbers, decoded for a window export only to be compared once).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PairedIds(Vec<u8>);

impl PairedIds {
    /// The ids whose differences are `steps`.
    pub fn of_steps(steps: impl IntoIterator<Item = u64>) -> Self {
        let mut bytes = Vec::new();
        steps
            .into_iter()
            .for_each(|step| prost::encoding::encode_varint(step, &mut bytes));
        Self(bytes)
    }

    /// The ids, ascending; `None` where they stop adding up (then nothing more).
    pub fn ids(&self) -> impl Iterator<Item = Option<u64>> + '_ {
        let (mut rest, mut last, mut failed) = (&self.0[..], 0u64, false);
        std::iter::from_fn(move || {
            if rest.is_empty() || failed {
                return None;
            }
            let id = (prost::encoding::decode_varint(&mut rest).ok())
                .and_then(|step| last.checked_add(step));
            failed = id.is_none();
            last = id.unwrap_or(last);
            Some(id)
        })
    }

    /// Whether any of the ids is also in `seen` (ascending); `true` when they do not add up.
    pub fn any_in(&self, seen: &[u64]) -> bool {
        let mut seen = seen.iter().peekable();
        for id in self.ids() {
            let Some(id) = id else { return true };
            while seen.next_if(|&&s| s < id).is_some() {}
            if seen.peek() == Some(&&id) {
                return true;
            }
        }
        false
    }
}

impl Serialize for PairedIds {
    fn serialize<S: serde::Serializer>(&self, to: S) -> Result<S::Ok, S::Error> {
        varint_text::serialize(&self.0, to)
    }
}

impl<'de> Deserialize<'de> for PairedIds {
    fn deserialize<D: serde::Deserializer<'de>>(from: D) -> Result<Self, D::Error> {
        varint_text::deserialize(from).map(Self)
    }
}

/// Makes the digest of an async partition from its events, pushed in stream order. Only the
/// events of ids not yet paired are held; a paired id is a number.
#[derive(Default)]
pub struct AsyncDigestBuilder {
    ticks: Option<(i64, i64)>,
    /// The one event seen of each id not yet settled.
    pending: FastMap<u64, KeyedEvent>,
    /// Ids with two events or more: paired, or kept (seen more than twice, or ended before
    /// they began: all their events are kept).
    settled: FastMap<u64, Settled>,
    kept: Vec<KeyedEvent>,
    /// An id paired within the partition came again: its first events are gone.
    tangled: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Settled {
    Paired,
    Kept,
}

impl AsyncDigestBuilder {
    /// An async event (the partition's rows keep one scope).
    pub fn push(&mut self, event: KeyedEvent) {
        widen(&mut self.ticks, event.ticks);
        if self.tangled {
            return;
        }
        let id = event.span_id;
        match self.settled.get(&id) {
            Some(Settled::Kept) => return self.kept.push(event),
            Some(Settled::Paired) => {
                self.tangled = true;
                return;
            }
            None => {}
        }
        let Some(earlier) = self.pending.remove(&id) else {
            self.pending.insert(id, event);
            return;
        };
        // Pairing takes an id's events by time, begins first at equal times.
        let pair = match (earlier.phase, event.phase) {
            (EventPhase::Begin, EventPhase::End) => earlier.ticks <= event.ticks,
            (EventPhase::End, EventPhase::Begin) => event.ticks <= earlier.ticks,
            _ => false,
        };
        if pair {
            self.settled.insert(id, Settled::Paired);
        } else {
            self.settled.insert(id, Settled::Kept);
            self.kept.extend([earlier, event]);
        }
    }

    /// The digest, or `None` for a partition without async events; where an id it paired
    /// came again, a tangled one (only its ticks).
    pub fn finish(self, tables: &dyn FileTables) -> Option<AsyncDigest> {
        let (min_ticks, max_ticks) = self.ticks?;
        if self.tangled {
            return Some(AsyncDigest {
                min_ticks,
                max_ticks,
                events: Vec::new(),
                paired: PairedIds::default(),
                row_groups: RowGroups::default(),
                tangled: true,
            });
        }
        let kept = self.kept.iter().chain(self.pending.values());
        let mut events: Vec<DigestEvent> = kept.map(|e| DigestEvent::new(e, tables)).collect();
        // One order, whatever the map's: the same catalog text for the same blocks.
        events.sort_by_key(|e| (e.block, e.index));
        let paired = self.settled.iter().filter(|(_, s)| **s == Settled::Paired);
        let mut paired: Vec<u64> = paired.map(|(&id, _)| id).collect();
        paired.sort_unstable();
        let mut last = 0;
        let paired = PairedIds::of_steps(
            paired
                .into_iter()
                .map(|id| id - std::mem::replace(&mut last, id)),
        );
        Some(AsyncDigest {
            min_ticks,
            max_ticks,
            events,
            paired,
            row_groups: RowGroups::default(),
            tangled: false,
        })
    }
}

/// Equal keys are equal strings: the file's string table holds each string once.
fn same_span(open: &KeyedEvent, end: &KeyedEvent) -> bool {
    open.name == end.name
        && open.line == end.line
        && open.file == end.file
        && open.target == end.target
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A file's string table: each name is a key (its place), the other strings fixed.
    #[derive(Default)]
    pub struct Names(Vec<String>);

    impl Names {
        fn key(&mut self, name: &str) -> u32 {
            match self.0.iter().position(|n| n == name) {
                Some(k) => k as u32,
                None => {
                    self.0.push(name.to_string());
                    self.0.len() as u32 - 1
                }
            }
        }

        /// A span event of the file, named `name`.
        pub fn event(
            &mut self,
            scope: EventScope,
            phase: EventPhase,
            name: &str,
            ticks: i64,
        ) -> KeyedEvent {
            KeyedEvent {
                block: 0,
                index: 0,
                ticks,
                phase,
                scope,
                name: self.key(name),
                target: self.key("t"),
                file: self.key("f.rs"),
                line: 1,
                properties: 0,
                span_id: 0,
                parent_span_id: 0,
                depth: 0,
            }
        }
    }

    impl FileTables for Names {
        fn text(&self, key: u32) -> &str {
            &self.0[key as usize]
        }

        fn block(&self, _: u32) -> Uuid {
            Uuid::nil()
        }

        fn property_set(&self, _: u32) -> Vec<(String, String)> {
            Vec::new()
        }
    }

    fn digest(events: &[(EventPhase, &str)]) -> Option<Digest> {
        let (mut builder, mut names) = (DigestBuilder::default(), Names::default());
        for (i, (phase, name)) in events.iter().enumerate() {
            builder.push(names.event(EventScope::Thread, *phase, name, 10 - i as i64));
        }
        builder.finish(&names)
    }

    fn kept(digest: &Digest) -> Vec<(bool, &str)> {
        (digest.events.iter()).map(|e| (e.end, &*e.name)).collect()
    }

    use EventPhase::{Begin, End};

    #[test]
    fn spans_begun_and_ended_within_leave_only_what_reaches_beyond() {
        let d = digest(&[
            (End, "earlier"),
            (Begin, "a"),
            (Begin, "b"),
            (End, "b"),
            (End, "a"),
            (End, "older"),
            (Begin, "c"),
            (Begin, "d"),
            (Begin, "e"),
            (End, "d"), // closes e with it
        ])
        .unwrap();
        assert_eq!(
            kept(&d),
            [(true, "earlier"), (true, "older"), (false, "c")],
            "ends reaching back, then the spans still open"
        );
        assert_eq!((d.min_ticks, d.max_ticks), (1, 10));
    }

    #[test]
    fn an_end_reaches_before_the_stream_only_when_no_partition_before_left_its_span_open() {
        let first = digest(&[(Begin, "a"), (Begin, "b"), (End, "b")]).unwrap();
        let closes_a = digest(&[(End, "a"), (Begin, "c")]).unwrap();
        let closes_c = digest(&[(End, "c")]).unwrap();
        let closes_z = digest(&[(Begin, "x"), (End, "x"), (End, "z")]).unwrap();
        assert!(!ends_reach_before(&[&first, &closes_a, &closes_c]));
        assert!(ends_reach_before(&[
            &first, &closes_a, &closes_c, &closes_z
        ]));
        assert!(
            ends_reach_before(&[&closes_a]),
            "the stream's first end of a"
        );
        assert!(
            !ends_reach_before(&[&first, &closes_z]),
            "z closes nothing while a is open: an unmatched end, dropped as pairing drops it"
        );
    }

    #[test]
    fn async_ids_begun_and_ended_within_are_listed_and_the_rest_kept() {
        let (mut builder, mut names) = (AsyncDigestBuilder::default(), Names::default());
        let mut push = |id: u64, phase, ticks| {
            let mut e = names.event(EventScope::Async, phase, "f", ticks);
            e.span_id = id;
            builder.push(e);
        };
        push(300, Begin, 1);
        push(5, End, 2); // begun before
        push(300, End, 3);
        push(7, Begin, 4); // ends after
        push(1 << 40, Begin, 5);
        push(1 << 40, End, 5);
        push(9, End, 6); // ends before it begins: not a pair
        push(9, Begin, 7);
        let d = builder.finish(&names).unwrap();
        let paired: Option<Vec<u64>> = d.paired.ids().collect();
        assert_eq!(paired, Some(vec![300, 1 << 40]));
        let mut kept: Vec<(u64, bool)> = d.events.iter().map(|e| (e.span_id, e.end)).collect();
        kept.sort();
        assert_eq!(kept, [(5, true), (7, false), (9, false), (9, true)]);
        assert_eq!((d.min_ticks, d.max_ticks), (1, 7));
    }

    #[test]
    fn an_end_reaching_below_spans_still_open_within_leaves_no_digest() {
        assert_eq!(digest(&[(Begin, "a"), (End, "earlier")]), None);
        assert!(digest(&[(Begin, "a"), (End, "a"), (End, "earlier")]).is_some());
    }

    #[test]
    fn paired_ids_go_through_the_catalog_text_as_one_string_whatever_their_size() {
        let steps = vec![0, 1, 127, 128, 300, 1 << 40, u64::MAX - (1 << 40) - 556];
        for steps in [vec![], steps] {
            let digest = AsyncDigest {
                min_ticks: 0,
                max_ticks: 1,
                events: Vec::new(),
                paired: PairedIds::of_steps(steps),
                row_groups: RowGroups::default(),
                tangled: false,
            };
            let text = serde_json::to_string(&digest).unwrap();
            assert!(text.contains("\"paired_id_steps\":\""), "{text}");
            let back: AsyncDigest = serde_json::from_str(&text).unwrap();
            assert_eq!(back, digest);
        }
        let whole = AsyncDigest {
            min_ticks: 0,
            max_ticks: 1,
            events: Vec::new(),
            paired: PairedIds::of_steps([1]),
            row_groups: RowGroups::default(),
            tangled: false,
        };
        let text = serde_json::to_string(&whole).unwrap();
        assert!(serde_json::from_str::<AsyncDigest>(&text).is_ok());
        let damaged = text.replace("\"paired_id_steps\":\"AQ\"", "\"paired_id_steps\":\"gA\"");
        assert_ne!(damaged, text);
        assert!(
            serde_json::from_str::<AsyncDigest>(&damaged).is_err(),
            "a varint cut short is an error"
        );
    }

    #[test]
    fn row_group_digests_are_parsed_only_when_asked_for_and_come_back_equal() {
        let group = |blocks, digest| RowGroupDigest { blocks, digest };
        let inner = digest(&[(Begin, "a"), (End, "a"), (Begin, "b")]).unwrap();
        let mut outer = digest(&[(Begin, "b")]).unwrap();
        outer.row_groups = vec![group(2, Some(inner)), group(1, None)].into();
        let text = serde_json::to_string(&outer).unwrap();
        let back: Digest = serde_json::from_str(&text).unwrap();
        assert!(back.row_groups.parsed.get().is_none(), "not parsed yet");
        assert_eq!(back, outer);
        // Of a shape this version does not know: none, so the partition is read whole.
        let other = text.replace("\"blocks\":2", "\"blocks\":\"two\"");
        let back: Digest = serde_json::from_str(&other).unwrap();
        assert!(back.row_groups.get().is_empty());
    }

    #[test]
    fn digest_events_keep_every_field_through_the_catalog_text_and_each_string_once() {
        let event = |k: u32, name: &str, properties: Vec<(String, String)>| DigestEvent {
            block: Uuid::from_u128(1 + u128::from(k % 2)),
            index: k,
            ticks: -5 + i64::from(k) * 1_000_000_007,
            end: k.is_multiple_of(3),
            name: Arc::from(name),
            target: Arc::from("app::module"),
            file: Arc::from("src/module.rs"),
            line: 10 + k,
            properties,
            span_id: u64::from(k) << 40,
            parent_span_id: u64::MAX - u64::from(k),
            depth: k,
        };
        let tagged = vec![("key".to_string(), "app::module".to_string())];
        let mut events: Vec<DigestEvent> = (0..40)
            .map(|k| event(k, ["poll", "render"][k as usize % 2], vec![]))
            .chain([event(40, "tagged", tagged)])
            .collect();
        // Times far apart both ways: each is kept as its difference from the one before.
        events[7].ticks = i64::MAX;
        events[8].ticks = i64::MIN;
        let digest = AsyncDigest {
            min_ticks: -5,
            max_ticks: 7,
            events: events.clone(),
            paired: PairedIds::of_steps([1, 2]),
            row_groups: RowGroups::default(),
            tangled: false,
        };
        let text = serde_json::to_string(&digest).unwrap();
        assert_eq!(text.matches("src/module.rs").count(), 1, "{text}");
        assert_eq!(text.matches("app::module").count(), 1, "{text}");
        let back: AsyncDigest = serde_json::from_str(&text).unwrap();
        assert_eq!(back, digest);
        let truncated = text.replace("\"texts\":[", "\"texts\":[],\"x\":[");
        assert!(
            serde_json::from_str::<AsyncDigest>(&truncated).is_err(),
            "a missing text is an error"
        );
        let packed = text.split("\"packed\":\"").nth(1).unwrap();
        let packed = &packed[..packed.find('"').unwrap()];
        for cut in (1..packed.len()).step_by(3) {
            let damaged = text.replace(packed, &packed[..cut]);
            assert!(
                serde_json::from_str::<AsyncDigest>(&damaged).is_err(),
                "cut at {cut}"
            );
        }
    }
}
