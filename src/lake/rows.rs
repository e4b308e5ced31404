//! Plain rows of the lake's three metadata tables, as the tool reads (and test tools write) them.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use uuid::Uuid;

/// One instrumented process run (`processes` table).
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessRow {
    pub process_id: Uuid,
    pub exe: String,
    pub username: String,
    pub realname: String,
    pub computer: String,
    pub distro: String,
    pub cpu_brand: String,
    /// Ticks per second; 0 when the producer could not tell.
    pub tsc_frequency: i64,
    pub start_time: DateTime<Utc>,
    pub start_ticks: i64,
    pub insert_time: DateTime<Utc>,
    pub parent_process_id: Option<Uuid>,
    pub properties: Vec<(String, String)>,
}

#[cfg(test)]
impl ProcessRow {
    /// A process started at the Unix epoch whose ticks are nanoseconds (for tests).
    pub fn ticking_in_unix_nanos(process_id: Uuid) -> Self {
        let epoch = DateTime::from_timestamp(0, 0).expect("the epoch is a time");
        Self {
            process_id,
            exe: String::new(),
            username: String::new(),
            realname: String::new(),
            computer: String::new(),
            distro: String::new(),
            cpu_brand: String::new(),
            tsc_frequency: 1_000_000_000,
            start_time: epoch,
            start_ticks: 0,
            insert_time: epoch,
            parent_process_id: None,
            properties: vec![],
        }
    }
}

/// One stream of a process (`streams` table).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRow {
    pub stream_id: Uuid,
    pub process_id: Uuid,
    pub tags: Vec<String>,
    pub properties: Vec<(String, String)>,
    pub insert_time: DateTime<Utc>,
    pub format: String,
}

/// What a stream's blocks are made of: read only to decode blocks (a warm export of thousands
/// of streams never reads them).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamTypes {
    /// CBOR list of transit type descriptions of the dependencies buffer (shared: a process's
    /// thread streams usually all have the same, and there may be thousands of them).
    pub dependencies_metadata: Bytes,
    /// CBOR list of transit type descriptions of the objects buffer.
    pub objects_metadata: Bytes,
}

impl StreamRow {
    /// The value of a property (`thread-name`, `thread-id`), when the stream has it.
    pub fn property(&self, key: &str) -> Option<&str> {
        (self.properties.iter())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The positions of each stream's blocks in `blocks`, in their order: with thousands of
/// streams, looking a stream's blocks up beats scanning all of them for each stream.
pub fn blocks_by_stream(blocks: &[BlockRow]) -> HashMap<Uuid, Vec<usize>> {
    let mut by_stream: HashMap<Uuid, Vec<usize>> = HashMap::new();
    for (position, block) in blocks.iter().enumerate() {
        by_stream.entry(block.stream_id).or_default().push(position);
    }
    by_stream
}

/// One flushed buffer of events (`blocks` table).
#[derive(Debug, Clone, PartialEq)]
pub struct BlockRow {
    pub block_id: Uuid,
    pub stream_id: Uuid,
    pub process_id: Uuid,
    pub begin_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    /// Relative to the process's `start_ticks`.
    pub begin_ticks: i64,
    pub end_ticks: i64,
    pub nb_objects: i32,
    pub object_offset: i64,
    pub payload_size: i64,
    pub insert_time: DateTime<Utc>,
}

/// The stream format Micromegas uses for its own transit streams.
pub const TRANSIT_FORMAT: &str = "micromegas-transit";

/// A kind of stream, as the `streams` table tells them apart: a tag and a format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamKind {
    pub tag: &'static str,
    pub format: &'static str,
}

impl StreamKind {
    /// Whether a stream is of this kind: its format, and its tag among its tags.
    pub fn holds(self, stream: &StreamRow) -> bool {
        stream.format == self.format && stream.tags.iter().any(|t| t == self.tag)
    }
}

/// The blocks (in their order) of these streams.
pub fn of_streams<'a>(
    streams: &[StreamRow],
    blocks: impl IntoIterator<Item = &'a BlockRow>,
) -> Vec<BlockRow> {
    let ids: std::collections::HashSet<Uuid> = streams.iter().map(|s| s.stream_id).collect();
    (blocks.into_iter())
        .filter(|b| ids.contains(&b.stream_id))
        .cloned()
        .collect()
}

/// The largest `end_ticks` and `end_time` of the blocks: the inputs of the inferred tick
/// frequency.
pub fn end_bounds(blocks: &[BlockRow]) -> (Option<i64>, Option<DateTime<Utc>>) {
    let ticks = blocks.iter().map(|b| b.end_ticks).max();
    (ticks, blocks.iter().map(|b| b.end_time).max())
}

/// Thread streams: span events (and, in Micromegas's own format, nothing else).
pub const THREAD_STREAMS: StreamKind = StreamKind {
    tag: "cpu",
    format: TRANSIT_FORMAT,
};

/// The process's log stream: log entries, which carry no thread.
pub const LOG_STREAMS: StreamKind = StreamKind {
    tag: "log",
    format: TRANSIT_FORMAT,
};

/// The process's metrics stream: measures, which carry no thread.
pub const METRIC_STREAMS: StreamKind = StreamKind {
    tag: "metrics",
    format: TRANSIT_FORMAT,
};

/// Object key of a block payload, relative to the store root.
pub fn block_object_key(process_id: &Uuid, stream_id: &Uuid, block_id: &Uuid) -> String {
    format!("blobs/{process_id}/{stream_id}/{block_id}")
}
