//! Which partitions a process needs: blocks grouped by view instance and insert-time bucket,
//! each with the fingerprint of its exact block set. Pure and deterministic.
//!
//! In a per-stream view, the streams with few objects in a bucket share one partition of the
//! process for that bucket: a process with thousands of short-lived threads would otherwise pay
//! a file, a catalog row and a read for each.

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use uuid::Uuid;

use crate::events::EventScope;
use crate::lake::rows::BlockRow;

/// Bumped whenever what a partition file holds, or how it is computed, changes.
pub const FORMAT_VERSION: i64 = 11;

/// How partitions are cut. The output never depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Insert-time width of a partition, in microseconds.
    pub bucket_us: i64,
    /// A stream with fewer objects than this in a bucket goes to the bucket's shared partition
    /// (0: none does).
    pub small_stream_objects: i64,
    /// A stream's own span partition is cut into row groups of about this many rows, at block
    /// edges, each with a digest: a window then reads the row groups it reaches, not the
    /// whole partition.
    pub row_group_rows: usize,
}

/// One hour of insert time per partition, as Micromegas cuts its own.
pub const DEFAULT_BUCKET_SECONDS: i64 = 3600;
/// 366 days: wider partitions would only make every late block rebuild more.
pub const MAX_BUCKET_SECONDS: i64 = 366 * 86_400;
/// About where decoding a stream's blocks costs as much as a partition file of its own
/// (measured: about 3 ms to build one, 0.3 ms to check and read one).
pub const DEFAULT_SMALL_STREAM_OBJECTS: i64 = 4096;
/// Row groups of a stream's own span partitions: one or two blocks of a busy thread (a block
/// holds a few thousand events; a 10 s window of an 8-hour process reads one or two row groups
/// of each file). Their digests are in the file's footer, so more of them cost the catalog
/// nothing; but each costs a build about 0.25 ms (with 2,048 rows, a block each, a cold M
/// export took 1.13×, a 10 s window no less time than with 4,096).
pub const DEFAULT_ROW_GROUP_ROWS: usize = 4 * 1024;
/// An async file's row groups hold this many times as many rows: a window reads one or two
/// async files, and parses the digests of all their row groups to pair what it reads.
pub const ASYNC_ROW_GROUP_FACTOR: usize = 4;

impl Layout {
    /// Rows per row group of an async partition file.
    pub fn async_row_group_rows(&self) -> usize {
        self.row_group_rows.saturating_mul(ASYNC_ROW_GROUP_FACTOR)
    }

    /// `bucket_seconds` is brought within 1 s to [`MAX_BUCKET_SECONDS`], `row_group_rows` to
    /// at least 1.
    pub fn new(bucket_seconds: i64, small_stream_objects: i64, row_group_rows: usize) -> Self {
        Self {
            bucket_us: bucket_seconds.clamp(1, MAX_BUCKET_SECONDS) * 1_000_000,
            small_stream_objects,
            row_group_rows: row_group_rows.max(1),
        }
    }
}

impl Default for Layout {
    fn default() -> Self {
        Self::new(
            DEFAULT_BUCKET_SECONDS,
            DEFAULT_SMALL_STREAM_OBJECTS,
            DEFAULT_ROW_GROUP_ROWS,
        )
    }
}

/// What one partition holds: a view of one kind of data, described once here. Planning,
/// freshness, storage and the catalog know a view only by this description; a new kind of
/// data adds a constant (and, for new rows, a row format in [`super::files`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct View {
    /// Orders views in a plan (and so the build's explanations).
    rank: u8,
    /// Its name in the catalog and in file keys: never change it (that orphans partitions).
    name: &'static str,
    /// One partition per stream, or one per process.
    pub per: Instance,
    /// What its rows are.
    pub rows: Rows,
}

/// What a view's rows are: which of a decoded block's items it keeps, in which row format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rows {
    /// Span events of this scope ([`super::span_rows`]).
    Spans(EventScope),
    /// Log entries ([`super::log_rows`]).
    Logs,
    /// Measures ([`super::measure_rows`]).
    Measures,
}

/// What a view's partitions are cut by, besides insert time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Instance {
    Stream,
    Process,
}

impl View {
    /// Thread span events of one stream.
    pub const THREAD_SPANS: View = View {
        rank: 0,
        name: "thread_spans",
        per: Instance::Stream,
        rows: Rows::Spans(EventScope::Thread),
    };
    /// Async span events of all the thread streams of one process.
    pub const ASYNC_SPANS: View = View {
        rank: 1,
        name: "async_events",
        per: Instance::Process,
        rows: Rows::Spans(EventScope::Async),
    };
    /// Log entries of the process (its log streams).
    pub const LOGS: View = View {
        rank: 2,
        name: "log_entries",
        per: Instance::Process,
        rows: Rows::Logs,
    };
    /// Measures of the process (its metrics streams).
    pub const MEASURES: View = View {
        rank: 3,
        name: "measures",
        per: Instance::Process,
        rows: Rows::Measures,
    };

    pub fn name(self) -> &'static str {
        self.name
    }

    /// The scope of the span events it holds, for a span view.
    pub fn span_scope(self) -> Option<EventScope> {
        match self.rows {
            Rows::Spans(scope) => Some(scope),
            Rows::Logs | Rows::Measures => None,
        }
    }

    /// The instance a block of `process_id` belongs to in this view.
    pub fn instance_of(self, process_id: Uuid, block: &BlockRow) -> Uuid {
        match self.per {
            Instance::Stream => block.stream_id,
            Instance::Process => process_id,
        }
    }
}

/// One partition as needed now.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub view: View,
    /// Stream id (per-stream view) or process id (per-process view, or the small streams of a
    /// per-stream view).
    pub instance: Uuid,
    /// The small streams of a per-stream view, sharing this partition: each reads its own
    /// rows from it. Empty otherwise.
    pub small_streams: Vec<Uuid>,
    /// Insert-time range `[begin_us, end_us)` in Unix microseconds.
    pub begin_us: i64,
    pub end_us: i64,
    /// Indexes into the block list given to [`plan`], in stream order.
    pub blocks: Vec<usize>,
    pub fingerprint: String,
    pub nb_objects: i64,
}

/// Groups `blocks` (ordered by stream, object offset, id) into partitions of the layout's
/// insert-time buckets: per stream (the small ones of a bucket together) for a per-stream view,
/// per process for a per-process view.
pub fn plan(process_id: Uuid, blocks: &[BlockRow], views: &[View], layout: Layout) -> Vec<Planned> {
    let bucket_us = layout.bucket_us;
    let bucket_of = |block: &BlockRow| block.insert_time.timestamp_micros().div_euclid(bucket_us);
    let mut stream_objects: HashMap<(Uuid, i64), i64> = HashMap::new();
    for block in blocks {
        *stream_objects
            .entry((block.stream_id, bucket_of(block)))
            .or_default() += i64::from(block.nb_objects);
    }
    let mut groups: BTreeMap<(View, Uuid, i64), Vec<usize>> = BTreeMap::new();
    for (index, block) in blocks.iter().enumerate() {
        let bucket = bucket_of(block);
        let small = stream_objects[&(block.stream_id, bucket)] < layout.small_stream_objects;
        for &view in views {
            let instance = match view.per {
                Instance::Stream if small => process_id,
                _ => view.instance_of(process_id, block),
            };
            groups
                .entry((view, instance, bucket))
                .or_default()
                .push(index);
        }
    }
    groups
        .into_iter()
        .map(|((view, instance, bucket), indexes)| {
            let shared = view.per == Instance::Stream && instance == process_id;
            let mut small_streams: Vec<Uuid> = match shared {
                true => indexes.iter().map(|&i| blocks[i].stream_id).collect(),
                false => Vec::new(),
            };
            small_streams.dedup();
            Planned {
                view,
                instance,
                small_streams,
                begin_us: bucket * bucket_us,
                end_us: (bucket + 1) * bucket_us,
                fingerprint: fingerprint(view, indexes.iter().map(|&i| &blocks[i])),
                nb_objects: indexes.iter().map(|&i| blocks[i].nb_objects as i64).sum(),
                blocks: indexes,
            }
        })
        .collect()
}

/// Covers the exact block set (ids, streams, object counts and offsets, payload sizes, tick
/// bounds) and the format version: any change to any of them changes it.
pub fn fingerprint<'a>(view: View, blocks: impl Iterator<Item = &'a BlockRow>) -> String {
    let mut sorted: Vec<&BlockRow> = blocks.collect();
    sorted.sort_by_key(|b| b.block_id);
    let mut hasher = Sha256::new();
    hasher.update(format!(
        "write-perfetto partition v{FORMAT_VERSION} {}\n",
        view.name()
    ));
    // One line per block, written into one buffer: a string allocated and formatted per
    // block was half the freshness check of a 5,735-block process.
    let (mut line, mut uuid) = (String::with_capacity(128), Uuid::encode_buffer());
    for b in sorted {
        line.clear();
        line.push_str(b.block_id.hyphenated().encode_lower(&mut uuid));
        line.push(' ');
        line.push_str(b.stream_id.hyphenated().encode_lower(&mut uuid));
        let nb_objects = i64::from(b.nb_objects);
        for n in [
            nb_objects,
            b.object_offset,
            b.payload_size,
            b.begin_ticks,
            b.end_ticks,
        ] {
            let _ = write!(line, " {n}");
        }
        line.push('\n');
        hasher.update(line.as_bytes());
    }
    format!("{:x}", hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn block(n: u128, stream: u128, insert_minute: u32, nb_objects: i32) -> BlockRow {
        let t = Utc
            .with_ymd_and_hms(2026, 1, 1, 10, insert_minute, 0)
            .unwrap();
        BlockRow {
            block_id: Uuid::from_u128(n),
            stream_id: Uuid::from_u128(stream),
            process_id: Uuid::from_u128(1),
            begin_time: t,
            end_time: t,
            begin_ticks: 0,
            end_ticks: 10,
            nb_objects,
            object_offset: 0,
            payload_size: 100,
            insert_time: t,
        }
    }

    #[test]
    fn blocks_group_by_stream_and_bucket_for_threads_and_by_process_for_async() {
        let blocks = vec![block(1, 10, 0, 5), block(2, 10, 40, 5), block(3, 20, 10, 5)];
        let planned = plan(
            Uuid::from_u128(1),
            &blocks,
            &[View::THREAD_SPANS, View::ASYNC_SPANS],
            Layout::new(30 * 60, 0, DEFAULT_ROW_GROUP_ROWS),
        );
        let shape: Vec<(View, u128, Vec<usize>)> = planned
            .iter()
            .map(|p| (p.view, p.instance.as_u128(), p.blocks.clone()))
            .collect();
        assert_eq!(
            shape,
            vec![
                (View::THREAD_SPANS, 10, vec![0]),
                (View::THREAD_SPANS, 10, vec![1]),
                (View::THREAD_SPANS, 20, vec![2]),
                (View::ASYNC_SPANS, 1, vec![0, 2]),
                (View::ASYNC_SPANS, 1, vec![1]),
            ]
        );
    }

    #[test]
    fn streams_with_few_objects_in_a_bucket_share_the_process_partition_of_that_bucket() {
        let blocks = vec![
            block(1, 10, 0, 3000),
            block(2, 10, 5, 2000),
            block(3, 10, 40, 10),
            block(4, 20, 10, 100),
            block(5, 30, 20, 50),
        ];
        let planned = plan(
            Uuid::from_u128(1),
            &blocks,
            &[View::THREAD_SPANS, View::ASYNC_SPANS],
            Layout::new(30 * 60, 4096, DEFAULT_ROW_GROUP_ROWS),
        );
        let shape: Vec<(View, u128, Vec<usize>, Vec<u128>)> = (planned.iter())
            .map(|p| {
                let small = p.small_streams.iter().map(Uuid::as_u128).collect();
                (p.view, p.instance.as_u128(), p.blocks.clone(), small)
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                (View::THREAD_SPANS, 1, vec![3, 4], vec![20, 30]),
                // Stream 10 is small in the second bucket only.
                (View::THREAD_SPANS, 1, vec![2], vec![10]),
                (View::THREAD_SPANS, 10, vec![0, 1], vec![]),
                (View::ASYNC_SPANS, 1, vec![0, 1, 3, 4], vec![]),
                (View::ASYNC_SPANS, 1, vec![2], vec![]),
            ]
        );
    }

    #[test]
    fn a_replaced_block_with_the_same_object_count_changes_the_fingerprint() {
        let original = [block(1, 10, 0, 5), block(2, 10, 1, 5)];
        let replaced = [block(1, 10, 0, 5), block(3, 10, 1, 5)];
        let f = |b: &[BlockRow]| fingerprint(View::THREAD_SPANS, b.iter());
        assert_ne!(f(&original), f(&replaced));
        assert_eq!(
            f(&original),
            f(&[original[1].clone(), original[0].clone()]),
            "order does not matter"
        );
        assert_ne!(
            fingerprint(View::THREAD_SPANS, original.iter()),
            fingerprint(View::ASYNC_SPANS, original.iter())
        );
    }
}
