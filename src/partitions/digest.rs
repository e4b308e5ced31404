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

use crate::decode::SpanEvent;
use crate::events::{EventPhase, EventScope};

/// The digests of a partition's thread streams (one, or the small streams it holds).
pub type StreamDigests = BTreeMap<Uuid, Digest>;

/// The digest of a thread stream's rows in a partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Digest {
    /// The smallest and largest tick counts of its events.
    pub min_ticks: i64,
    pub max_ticks: i64,
    /// The events that reach beyond the partition, in stream order.
    pub events: Vec<DigestEvent>,
}

/// A span event as a digest keeps it: with its place in stream order and its strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DigestEvent {
    pub block: Uuid,
    pub index: u32,
    pub ticks: i64,
    pub end: bool,
    pub name: String,
    pub target: String,
    pub file: String,
    pub line: u32,
    /// A tagged end's properties.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<(String, String)>,
    /// Async events only.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub span_id: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub parent_span_id: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub depth: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl DigestEvent {
    fn new(block: Uuid, index: u32, event: &SpanEvent) -> Self {
        DigestEvent {
            block,
            index,
            ticks: event.ticks,
            end: event.phase == EventPhase::End,
            name: event.name.to_string(),
            target: event.target.to_string(),
            file: event.file.to_string(),
            line: event.line,
            properties: (event.properties.iter())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            span_id: event.span_id,
            parent_span_id: event.parent_span_id,
            depth: u64::from(event.depth),
        }
    }
}

/// Makes the digest of a partition from its events, pushed in stream order.
#[derive(Default)]
pub struct DigestBuilder {
    ticks: Option<(i64, i64)>,
    /// Ends that closed spans begun before the partition.
    reaching_back: Vec<DigestEvent>,
    /// Begins still open, outermost first.
    open: Vec<DigestEvent>,
    /// An end reached below spans still open within the partition.
    tangled: bool,
}

impl DigestBuilder {
    pub fn push(&mut self, block: Uuid, index: u32, event: &SpanEvent) {
        if self.tangled || event.scope != EventScope::Thread {
            return;
        }
        let (min, max) = self.ticks.unwrap_or((event.ticks, event.ticks));
        self.ticks = Some((min.min(event.ticks), max.max(event.ticks)));
        let kept = || DigestEvent::new(block, index, event);
        match event.phase {
            EventPhase::Begin => self.open.push(kept()),
            // As pairing does: the innermost open span of the same name, place and target
            // closes, with every span opened inside it.
            EventPhase::End => match self.open.iter().rposition(|o| same_span(o, event)) {
                Some(position) => self.open.truncate(position),
                None if self.open.is_empty() => self.reaching_back.push(kept()),
                None => self.tangled = true,
            },
        }
    }

    /// The digest, or `None` for a partition without thread events or whose events tangle.
    pub fn finish(self) -> Option<Digest> {
        let (min_ticks, max_ticks) = self.ticks?;
        if self.tangled {
            return None;
        }
        let mut events = self.reaching_back;
        events.extend(self.open);
        Some(Digest {
            min_ticks,
            max_ticks,
            events,
        })
    }
}

/// The digest of an async partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AsyncDigest {
    /// The smallest and largest tick counts of its events.
    pub min_ticks: i64,
    pub max_ticks: i64,
    /// The events of the span ids it does not both begin and end.
    pub events: Vec<DigestEvent>,
    /// The span ids it begins and ends, ascending, as hex of the LEB128 differences.
    pub paired_ids: String,
}

impl AsyncDigest {
    /// The span ids begun and ended within, ascending.
    pub fn paired_ids(&self) -> Option<Vec<u64>> {
        let bytes = (0..self.paired_ids.len() / 2)
            .map(|i| u8::from_str_radix(self.paired_ids.get(2 * i..2 * i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        let (mut ids, mut value, mut shift, mut last) = (Vec::new(), 0u64, 0, 0u64);
        for byte in bytes {
            value |= u64::from(byte & 0x7f).checked_shl(shift)?;
            shift += 7;
            if byte & 0x80 == 0 {
                last = last.checked_add(value)?;
                ids.push(last);
                (value, shift) = (0, 0);
            }
        }
        Some(ids)
    }
}

/// Makes the digest of an async partition from its events, pushed in stream order.
#[derive(Default)]
pub struct AsyncDigestBuilder {
    events: Vec<(Uuid, u32, SpanEvent)>,
}

impl AsyncDigestBuilder {
    pub fn push(&mut self, block: Uuid, index: u32, event: &SpanEvent) {
        if event.scope == EventScope::Async {
            self.events.push((block, index, event.clone()));
        }
    }

    pub fn finish(self) -> Option<AsyncDigest> {
        let ticks = self.events.iter().map(|(_, _, e)| e.ticks);
        let min_ticks = ticks.clone().min()?;
        let max_ticks = ticks.max()?;
        // By id, then as pairing takes them: time, begins first, stream order (push order).
        let mut sequence: Vec<usize> = (0..self.events.len()).collect();
        sequence.sort_by_key(|&i| {
            let e = &self.events[i].2;
            (e.span_id, e.ticks, e.phase == EventPhase::End, i)
        });
        let (mut paired, mut kept) = (Vec::new(), Vec::new());
        for same_id in
            sequence.chunk_by(|&a, &b| self.events[a].2.span_id == self.events[b].2.span_id)
        {
            let phases: Vec<EventPhase> = same_id.iter().map(|&i| self.events[i].2.phase).collect();
            match phases.as_slice() {
                [EventPhase::Begin, EventPhase::End] => {
                    paired.push(self.events[same_id[0]].2.span_id)
                }
                _ => kept.extend(same_id.iter().map(|&i| {
                    let (block, index, event) = &self.events[i];
                    DigestEvent::new(*block, *index, event)
                })),
            }
        }
        Some(AsyncDigest {
            min_ticks,
            max_ticks,
            events: kept,
            paired_ids: leb128_hex_differences(&paired),
        })
    }
}

fn leb128_hex_differences(ascending: &[u64]) -> String {
    use std::fmt::Write;
    let mut text = String::new();
    let mut last = 0;
    for &id in ascending {
        let mut value = id - last;
        last = id;
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            let more = if value == 0 { 0 } else { 0x80 };
            let _ = write!(text, "{:02x}", byte | more);
            if value == 0 {
                break;
            }
        }
    }
    text
}

fn same_span(open: &DigestEvent, end: &SpanEvent) -> bool {
    let same = |kept: &str, text: &Arc<str>| kept == &**text;
    same(&open.name, &end.name)
        && open.line == end.line
        && same(&open.file, &end.file)
        && same(&open.target, &end.target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(phase: EventPhase, name: &str, ticks: i64) -> SpanEvent {
        SpanEvent {
            scope: EventScope::Thread,
            phase,
            ticks,
            name: Arc::from(name),
            target: Arc::from("t"),
            file: Arc::from("f.rs"),
            line: 1,
            span_id: 0,
            parent_span_id: 0,
            depth: 0,
            properties: Vec::new(),
        }
    }

    fn digest(events: &[(EventPhase, &str)]) -> Option<Digest> {
        let mut builder = DigestBuilder::default();
        for (i, (phase, name)) in events.iter().enumerate() {
            builder.push(Uuid::nil(), i as u32, &event(*phase, name, 10 - i as i64));
        }
        builder.finish()
    }

    fn kept(digest: &Digest) -> Vec<(bool, &str)> {
        (digest.events.iter())
            .map(|e| (e.end, e.name.as_str()))
            .collect()
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
    fn async_ids_begun_and_ended_within_are_listed_and_the_rest_kept() {
        let mut builder = AsyncDigestBuilder::default();
        let mut push = |id: u64, phase, ticks| {
            let mut e = event(phase, "f", ticks);
            (e.scope, e.span_id) = (EventScope::Async, id);
            builder.push(Uuid::nil(), 0, &e);
        };
        push(300, Begin, 1);
        push(5, End, 2); // begun before
        push(300, End, 3);
        push(7, Begin, 4); // ends after
        push(1 << 40, Begin, 5);
        push(1 << 40, End, 5);
        push(9, End, 6); // ends before it begins: not a pair
        push(9, Begin, 7);
        let d = builder.finish().unwrap();
        assert_eq!(d.paired_ids(), Some(vec![300, 1 << 40]));
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
}
