//! Partitions: the span events of a process, materialized as Parquet files and reused only
//! when provably current.
//!
//! Two views: thread span events per stream, async span events per process, cut by
//! insert-time bucket. A partition is reused when a live catalog row has its very insert range
//! (bounds compared for equality, so an equal range is a match, never a miss) with the same
//! fingerprint of the exact block set and the same format version; anything else is rebuilt
//! under a per-process build lock, then swapped in atomically. Spans are paired later, at
//! assembly, so a partition boundary never cuts a span.

mod build;
pub mod catalog;
mod digest;
mod files;
mod log_rows;
mod measure_rows;
pub mod plan;
mod ranges;
mod read_ahead;
mod runs;
mod shared;
mod skipping;
mod span_rows;

use anyhow::{Context, Result};
use bytes::Bytes;
use futures::StreamExt;
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

use crate::clock::Clock;
use crate::error::{FailureKind, failure};
use crate::events::{EventScope, EventTable};
use crate::lake::rows::{BlockRow, StreamRow, blocks_by_stream};
use crate::lake::{BlobStore, Lake, LakeLocation, MetadataDb};
use crate::symbols::Symbols;
use catalog::{Catalog, PartitionRow};
pub use files::RowTable;
use files::{OpenFile, PartitionRows, read_file};
use plan::Rows;
pub use plan::{
    DEFAULT_BUCKET_SECONDS, DEFAULT_ROW_GROUP_ROWS, DEFAULT_SMALL_STREAM_OBJECTS, Instance, Layout,
    MAX_BUCKET_SECONDS, View,
};
use plan::{FORMAT_VERSION, Planned};
use ranges::{FileRanges, SparseFile};
use read_ahead::{Limit, ReadAhead, Started};
use runs::StreamsInRuns;
pub use runs::{RunReading, StreamRuns};
use shared::SharedFiles;

/// Where partitions live and how they are cut.
pub struct PartitionCache {
    catalog: Catalog,
    store: BlobStore,
    layout: Layout,
    /// The live catalog rows of each process, as first read in this run: all the views of a
    /// process are checked against one read (what is found stale is read again under the
    /// build lock), and the read may start before the process's blocks are known.
    live: Mutex<HashMap<Uuid, Arc<Vec<PartitionRow>>>>,
}

/// What an export needs from the partitions.
#[derive(Clone, Copy)]
pub struct EventsRequest<'a> {
    pub process_id: Uuid,
    /// The process's thread streams.
    pub streams: &'a [StreamRow],
    /// Their blocks, ordered by stream, object offset, block id.
    pub blocks: &'a [BlockRow],
    pub views: &'a [View],
    /// Blocks fetched and decoded at once.
    pub concurrency: usize,
    /// Receives one line per partition decision.
    pub explain: &'a (dyn Fn(String) + Sync),
}

/// What happened to the partitions of one export.
#[derive(Debug, Default, Clone, Copy)]
pub struct PartitionStats {
    pub reused: u64,
    pub built: u64,
    pub blocks_read: u64,
    pub payload_bytes: u64,
    /// Partition files fetched to be read (ahead of their reader or not).
    pub files_read: u64,
    /// Their bytes read: all of each, or what the row groups read need.
    pub bytes_read: u64,
}

impl PartitionStats {
    pub fn add(&mut self, other: PartitionStats) {
        self.reused += other.reused;
        self.built += other.built;
        self.blocks_read += other.blocks_read;
        self.payload_bytes += other.payload_bytes;
        self.files_read += other.files_read;
        self.bytes_read += other.bytes_read;
    }
}

/// Why a partition must be (re)built.
#[derive(Debug, Clone, PartialEq)]
pub enum Stale {
    /// No live row covers it: a first build.
    NoPartition,
    /// A live row exists but cannot serve: why (new blocks, damaged file, ...).
    Outdated(String),
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stale::NoPartition => f.write_str("no partition yet"),
            Stale::Outdated(why) => f.write_str(why),
        }
    }
}

/// A partition file as the catalog records it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFile {
    pub key: String,
    pub size: i64,
    /// xxh3-64 of the file's bytes, in hex.
    pub checksum: String,
    /// The digests of a thread partition's streams, as JSON ([`digest::StreamDigests`]).
    pub digest: Option<Arc<str>>,
    /// Its footer and row groups by byte range and checksum, as JSON ([`FileRanges`]).
    pub ranges: Option<Arc<str>>,
}

/// The partition files of an export, and which rows of them each view instance reads. A file
/// found damaged when read is replaced here by its rebuilt successor ([`PartitionCache::heal`]).
pub struct Prepared {
    planned: Vec<Planned>,
    /// The current file of each planned partition.
    files: Mutex<Vec<StoredFile>>,
    /// Per view instance (a stream or the process): the partitions holding its rows.
    instances: HashMap<(View, Uuid), Vec<InstanceRows>>,
    /// Shared partitions opened by the first of their streams to read them, read on by the
    /// others.
    shared: SharedFiles,
    /// The files of the partitions read next, fetched while the current one is decoded.
    read_ahead: ReadAhead,
    stats: Mutex<PartitionStats>,
    /// Partitions rebuilt after damage in this run: healed once, never twice.
    healed: Mutex<HashSet<usize>>,
    /// Found on the first read of a window export ([`Prepared::stand_ins`]).
    stand_ins: Mutex<Option<Arc<StandIns>>>,
    /// Found on the first read run by run ([`Prepared::runs_of`]).
    streams_in_runs: std::sync::OnceLock<StreamsInRuns>,
}

/// Where a view instance's rows are: a partition (index in the plan), all of it or, in a
/// partition of small streams, the rows of the instance's blocks (positions in the request).
#[derive(Clone)]
struct InstanceRows {
    planned: usize,
    blocks: Option<Range<u32>>,
}

impl Prepared {
    fn new(planned: Vec<Planned>, files: Vec<StoredFile>, blocks: &[BlockRow]) -> Self {
        let positions = blocks_by_stream(blocks);
        let range_of = |stream: &Uuid| {
            let positions = positions.get(stream).map_or(&[][..], Vec::as_slice);
            let first = positions.first().map_or(0, |&b| b as u32);
            first..positions.last().map_or(0, |&b| b as u32 + 1)
        };
        let mut instances: HashMap<(View, Uuid), Vec<InstanceRows>> = HashMap::new();
        for (i, p) in planned.iter().enumerate() {
            if p.small_streams.is_empty() {
                let rows = InstanceRows {
                    planned: i,
                    blocks: None,
                };
                instances
                    .entry((p.view, p.instance))
                    .or_default()
                    .push(rows);
            }
            for stream in &p.small_streams {
                let blocks = Some(range_of(stream));
                let rows = InstanceRows { planned: i, blocks };
                instances.entry((p.view, *stream)).or_default().push(rows);
            }
        }
        Self {
            planned,
            files: Mutex::new(files),
            instances,
            shared: SharedFiles::default(),
            read_ahead: ReadAhead::default(),
            stats: Mutex::new(PartitionStats::default()),
            healed: Mutex::new(HashSet::new()),
            stand_ins: Mutex::new(None),
            streams_in_runs: std::sync::OnceLock::new(),
        }
    }

    pub fn stats(&self) -> PartitionStats {
        *lock(&self.stats)
    }

    /// Starts finding an async instance's stand-ins on a blocking thread. Its partitions are
    /// held back from reading ahead meanwhile; then those that stand in are never fetched.
    fn find_async_stand_ins(
        &self,
        parts: &[InstanceRows],
        files: &[StoredFile],
        clock: Clock,
        range: (i64, i64),
    ) -> PendingAsyncStandIns {
        let planned: Vec<usize> = parts.iter().map(|part| part.planned).collect();
        planned.iter().for_each(|&p| self.read_ahead.hold(p));
        let texts: Vec<Option<Arc<str>>> =
            (planned.iter()).map(|&p| files[p].digest.clone()).collect();
        let read_ahead = self.read_ahead.clone();
        let task = tokio::task::spawn_blocking(move || {
            let found = AsyncStandIns::of(&texts, &clock, range);
            for (k, &p) in planned.iter().enumerate() {
                if found.standing[k] {
                    read_ahead.never(p);
                    continue;
                }
                if let Some(groups) = found.groups_read_first(k) {
                    read_ahead.only(p, groups);
                }
                read_ahead.release(p);
            }
            found
        });
        PendingAsyncStandIns {
            found: tokio::sync::OnceCell::new(),
            task: Mutex::new(Some(task)),
        }
    }

    /// The blocks (positions) of a part of an instance's rows: a partition's own, or in a
    /// shared partition (its blocks ascending) those of the stream.
    fn blocks_of(&self, part: &InstanceRows) -> &[usize] {
        let all = &self.planned[part.planned].blocks;
        let Some(stream) = &part.blocks else {
            return all;
        };
        let from = all.partition_point(|&b| b < stream.start as usize);
        let to = all.partition_point(|&b| b < stream.end as usize);
        &all[from..to]
    }

    /// The digests that stand in for the rows of thread streams in partitions a window does
    /// not need, by (partition, stream), found for every thread stream on first use. A
    /// partition all of whose streams stand in is never fetched, not even ahead.
    fn stand_ins(
        &self,
        (lake_blocks, range): (&[BlockRow], (i64, i64)),
        clock: &Clock,
    ) -> Arc<StandIns> {
        let mut found = lock(&self.stand_ins);
        if let Some(found) = &*found {
            return found.clone();
        }
        let files = lock(&self.files);
        let thread_parts = (self.instances.iter())
            .filter(|((view, _), _)| *view == View::THREAD_SPANS)
            .flat_map(|(_, parts)| parts.iter().map(|part| part.planned));
        let mut planned: Vec<usize> = thread_parts.collect();
        planned.sort_unstable();
        planned.dedup();
        let texts: Vec<Option<&str>> = (planned.iter())
            .map(|&p| files[p].digest.as_deref())
            .collect();
        let parsed: HashMap<usize, Option<digest::StreamDigests>> = (planned.iter().copied())
            .zip(parse_digests(&texts, |json| {
                serde_json::from_str(json).ok()
            }))
            .collect();
        let mut stand_ins = StandIns::default();
        for ((view, instance), parts) in &self.instances {
            if *view == View::ASYNC_SPANS {
                let pending = self.find_async_stand_ins(parts, &files, *clock, range);
                stand_ins.async_parts.insert(*instance, pending);
            }
        }
        for ((view, stream), parts) in &self.instances {
            if *view != View::THREAD_SPANS {
                continue;
            }
            // Each part, or each row group of it, and where it comes from.
            let mut stream_parts = Vec::new();
            let mut origins = Vec::new();
            for part in parts {
                let blocks = self.blocks_of(part);
                let digest = parsed[&part.planned].as_ref().and_then(|d| d.get(stream));
                // A partition in one piece wholly before or after the window stands in (or is
                // read) whole: its row groups would all do the same, and go unparsed.
                let outside = |d: &&digest::Digest| {
                    skipping::side_of(d, blocks, lake_blocks, clock, range).is_some()
                        && skipping::in_one_piece(blocks, lake_blocks)
                };
                let reached = digest.filter(|d| !outside(d));
                match reached.and_then(|d| row_group_parts(part, blocks, d)) {
                    Some(groups) => {
                        origins.extend((0..groups.len()).map(|g| (part, Some(g))));
                        stream_parts.extend(groups);
                    }
                    None => {
                        let blocks = blocks.to_vec();
                        stream_parts.push(skipping::StreamPart { blocks, digest });
                        origins.push((part, None));
                    }
                }
            }
            let standing = skipping::stand_ins(&stream_parts, lake_blocks, clock, range);
            for ((part, group), (stands, kept)) in origins
                .into_iter()
                .zip(standing.into_iter().zip(stream_parts))
            {
                let digest = kept.digest.filter(|_| stands);
                match (group, digest) {
                    (None, Some(digest)) => {
                        let key = (part.planned, *stream);
                        stand_ins.digests.insert(key, digest.clone());
                        *stand_ins.per_partition.entry(part.planned).or_default() += 1;
                    }
                    (None, None) => {}
                    (Some(g), digest) => {
                        let groups = stand_ins.row_groups.entry(part.planned).or_default();
                        match digest {
                            Some(_) => groups.standing.push(g),
                            None => groups.read.push(g),
                        }
                    }
                }
            }
        }
        // A partition none of whose row groups stands in is read whole.
        stand_ins
            .row_groups
            .retain(|_, groups| !groups.standing.is_empty());
        for (&planned, &count) in &stand_ins.per_partition {
            if count >= self.planned[planned].small_streams.len().max(1) {
                self.read_ahead.never(planned);
            }
        }
        // Read in part: the footer, with the digests of the rest, comes with the row groups
        // read (alone if none is).
        for (&planned, groups) in &stand_ins.row_groups {
            self.read_ahead.only(planned, groups.read.clone());
        }
        let stand_ins = Arc::new(stand_ins);
        *found = Some(stand_ins.clone());
        stand_ins
    }
}

/// What reading a view instance's rows needs.
#[derive(Clone, Copy)]
struct Reading<'a> {
    prepared: &'a Prepared,
    view: View,
    block_position: &'a HashMap<Uuid, u32>,
    clock: &'a Clock,
    concurrency: usize,
}

/// Digests standing in for a window export's unneeded rows ([`Prepared::stand_ins`]).
#[derive(Default)]
struct StandIns {
    /// By (partition, stream).
    digests: HashMap<(usize, Uuid), digest::Digest>,
    /// How many streams of each partition stand in.
    per_partition: HashMap<usize, usize>,
    /// Of a stream's own partitions, by partition: those where some row groups stand in.
    row_groups: HashMap<usize, RowGroupStandIns>,
    /// By async instance (a process): found while the thread streams are read (parsing their
    /// digests took 8-14 ms of a 10 s window's 140); their files are not fetched ahead until
    /// then, and those that stand in never are.
    async_parts: HashMap<Uuid, PendingAsyncStandIns>,
}

/// An async instance's stand-ins, being found on a thread of their own.
struct PendingAsyncStandIns {
    found: tokio::sync::OnceCell<Arc<AsyncStandIns>>,
    task: Mutex<Option<tokio::task::JoinHandle<AsyncStandIns>>>,
}

impl PendingAsyncStandIns {
    async fn get(&self) -> Result<Arc<AsyncStandIns>> {
        let found = self.found.get_or_try_init(|| async {
            let task = lock(&self.task).take();
            let task = task.context("internal error: async stand-ins taken twice")?;
            let found = task
                .await
                .context("internal error: finding async stand-ins failed")?;
            anyhow::Ok(Arc::new(found))
        });
        Ok(found.await?.clone())
    }
}

/// An async instance's partitions, in its order: their digests, and which stand in for them at
/// first ([`skipping::async_stand_ins`]).
#[derive(Default)]
struct AsyncStandIns {
    digests: Vec<Option<digest::AsyncDigest>>,
    standing: Vec<bool>,
    /// Of each partition read, which of its row groups stand in at first; `None`: read whole.
    groups: Vec<Option<Vec<bool>>>,
}

impl AsyncStandIns {
    /// `texts`: the digests of the instance's partitions, in its order.
    fn of(texts: &[Option<Arc<str>>], clock: &Clock, range: (i64, i64)) -> Self {
        let digests: Vec<Option<digest::AsyncDigest>> = (texts.iter())
            .map(|text| serde_json::from_str(text.as_deref()?).ok().flatten())
            .collect();
        let standing = skipping::async_stand_ins(&digests, clock, range);
        let groups = (digests.iter().zip(&standing))
            .map(|(digest, &stands)| {
                let groups = digest.as_ref().filter(|_| !stands)?.row_groups.get();
                (!groups.is_empty()).then(|| skipping::async_stand_ins(groups, clock, range))
            })
            .collect();
        Self {
            digests,
            standing,
            groups,
        }
    }

    /// The row groups of the partition at `k` read first, if it is read in part.
    fn groups_read_first(&self, k: usize) -> Option<Vec<usize>> {
        let standing = self.groups[k].as_ref()?;
        Some((0..standing.len()).filter(|&g| !standing[g]).collect())
    }

    /// The row-group digests of the partition at `k` in full, from its footer's `text`: as
    /// many as the catalog's summaries, with the same ticks.
    fn full_group_digests(&self, k: usize, text: &str) -> Result<Vec<Option<digest::AsyncDigest>>> {
        let full: Vec<Option<digest::AsyncDigest>> =
            serde_json::from_str(text).context("its row groups' digests are malformed")?;
        let summaries = self.digests[k]
            .as_ref()
            .map_or(&[][..], |d| d.row_groups.get());
        let summary =
            |g: &Option<digest::AsyncDigest>| g.as_ref().map(digest::AsyncDigest::summary);
        if !full.iter().map(summary).eq(summaries.iter().cloned()) {
            anyhow::bail!("its row groups' digests differ from the catalog's");
        }
        Ok(full)
    }

    /// The partitions and row groups standing in whose digests pair any of the ids `seen`
    /// (ascending): they no longer stand in, and are to be read (a partition whole).
    /// `in_full`: the row-group digests of the partitions cut into row groups.
    fn pairing_any(
        &self,
        seen: &[u64],
        (standing, groups_standing): (&mut [bool], &mut [Option<Vec<bool>>]),
        in_full: &HashMap<usize, Vec<Option<digest::AsyncDigest>>>,
    ) -> Vec<(usize, Option<Vec<usize>>)> {
        let mut to_read = Vec::new();
        for (k, digest) in self.digests.iter().enumerate() {
            if standing[k] && skipping::pairs_any(digest.as_ref(), seen) {
                standing[k] = false;
                to_read.push((k, None));
            }
            let Some(groups) = groups_standing[k].as_mut() else {
                continue;
            };
            let digests = in_full.get(&k).map_or(&[][..], Vec::as_slice);
            // A digest missing counts as pairing: the row group is read.
            let pairs = |g: usize| {
                digests
                    .get(g)
                    .is_none_or(|d| skipping::pairs_any(d.as_ref(), seen))
            };
            let pairing = |g: &usize| groups[*g] && pairs(*g);
            let paired: Vec<usize> = (0..groups.len()).filter(pairing).collect();
            paired.iter().for_each(|&g| groups[g] = false);
            if !paired.is_empty() {
                to_read.push((k, Some(paired)));
            }
        }
        to_read
    }

    /// The digests standing in: of partitions, then of row groups (`in_full`, by partition).
    fn standing_digests<'a>(
        &'a self,
        (standing, groups_standing): (&[bool], &[Option<Vec<bool>>]),
        in_full: &'a HashMap<usize, Vec<Option<digest::AsyncDigest>>>,
    ) -> Vec<&'a digest::AsyncDigest> {
        let partitions = (self.digests.iter().zip(standing))
            .filter(|(_, s)| **s)
            .filter_map(|(d, _)| d.as_ref());
        let cut = (groups_standing.iter().enumerate()).filter_map(|(k, g)| Some((k, g.as_ref()?)));
        let groups = cut.flat_map(|(k, groups)| {
            let digests = in_full.get(&k).map_or(&[][..], Vec::as_slice);
            (digests.iter().zip(groups))
                .filter(|(_, s)| **s)
                .filter_map(|(d, _)| d.as_ref())
        });
        partitions.chain(groups).collect()
    }
}

/// A partition's row groups: those whose digests stand in, and those read, each ascending.
#[derive(Default)]
struct RowGroupStandIns {
    standing: Vec<usize>,
    read: Vec<usize>,
}

/// The digests of a thread file's row groups that stand in, from its footer's `text`.
fn standing_row_groups(text: &str, groups: &RowGroupStandIns) -> Result<Vec<digest::Digest>> {
    let mut all: Vec<digest::RowGroupDigest> =
        serde_json::from_str(text).context("its row groups' digests are malformed")?;
    let mut take = |g: usize| {
        let digest = all.get_mut(g).and_then(|group| group.digest.take());
        digest.with_context(|| format!("its footer lacks the digest of row group {g}"))
    };
    groups.standing.iter().map(|&g| take(g)).collect()
}

/// Appends the events of a thread digest standing in for rows not read.
fn append_thread_digest(
    events: &mut EventTable,
    digest: &digest::Digest,
    symbols: &mut Symbols,
    block_position: &HashMap<Uuid, u32>,
    clock: &Clock,
) {
    let kept = (&digest.events[..], EventScope::Thread);
    skipping::append_digest(events, kept, symbols, block_position, clock);
}

/// The row groups of a stream's own partition as parts of the stream's rows, each with its
/// blocks (`blocks`: the partition's, in order) and digest; `None` when the file has no
/// row-group digests that add up to its blocks.
fn row_group_parts<'d>(
    part: &InstanceRows,
    blocks: &[usize],
    digest: &'d digest::Digest,
) -> Option<Vec<skipping::StreamPart<'d>>> {
    let groups = digest.row_groups.get();
    let counted: usize = groups.iter().map(|g| g.blocks as usize).sum();
    if part.blocks.is_some() || groups.is_empty() || counted != blocks.len() {
        return None;
    }
    let mut rest = blocks;
    let parts = (groups.iter()).map(|group| {
        let (own, after) = rest.split_at(group.blocks as usize);
        rest = after;
        let blocks = own.to_vec();
        skipping::StreamPart {
            blocks,
            digest: group.digest.as_ref(),
        }
    });
    Some(parts.collect())
}

/// Bytes of partition files fetched ahead of their reader, at most (beyond one file): on a
/// remote store, each fetch is a round trip, which files fetched ahead overlap; the budget
/// keeps the memory they hold flat, however large the process.
const READ_AHEAD_BYTES: u64 = 64 << 20;

/// Files fetched ahead from a local store, at most, and their bytes (beyond one file): a
/// local read costs no round trip, so one file ahead keeps the decoder busy; the large files
/// of a large process held four ahead (66 MB of a 10M-span export's peak).
const LOCAL_READ_AHEAD_FILES: usize = 4;
const LOCAL_READ_AHEAD_BYTES: u64 = 8 << 20;

/// Where the partitions of `planned`'s view end in the plan (views are read one after the
/// other). From a local store, a file larger than the read-ahead budget is fetched ahead only
/// for the same view: the first file of the next stage, fetched while the last (and largest)
/// thread of a 10M-span process was read, was 23 MB of the export's peak, and a local fetch
/// costs no round trip to hide.
fn view_end(plan: &[Planned], planned: usize) -> usize {
    let view = plan[planned].view;
    planned + plan[planned..].partition_point(|p| p.view == view)
}

/// A partition file's bytes, checked against the catalog: whole (its size and checksum), or
/// for a read of these row groups, when the catalog has the file's ranges, only theirs and
/// the footer's (each range's checksum).
async fn fetch_checked(
    store: BlobStore,
    planned: usize,
    file: StoredFile,
    groups: Option<Vec<usize>>,
) -> Result<SparseFile> {
    fetch_ranges(store, planned, file, groups.map(|groups| (groups, true))).await
}

/// As [`fetch_checked`], the footer only if asked for with the row groups.
async fn fetch_ranges(
    store: BlobStore,
    planned: usize,
    file: StoredFile,
    groups: Option<(Vec<usize>, bool)>,
) -> Result<SparseFile> {
    let damaged = |reason: String| {
        anyhow::Error::new(DamagedPartition {
            planned,
            key: file.key.clone(),
            reason,
        })
    };
    let unreadable = |e: object_store::Error| match e {
        object_store::Error::NotFound { .. } => damaged("the file is missing".into()),
        e => failure(
            FailureKind::Io,
            format!("cannot read partition file {}: {e}", file.key),
        ),
    };
    let ranged = |groups: &[usize], footer: bool| {
        let ranges = FileRanges::parse(file.ranges.as_deref()?)?;
        let to_fetch = ranges.to_fetch((groups, footer))?;
        Some((ranges, to_fetch))
    };
    if let Some((groups, footer)) = &groups
        && let Some((ranges, to_fetch)) = ranged(groups, *footer)
    {
        let fetched = match store.get_ranges(&file.key, &to_fetch).await {
            Ok(fetched) => fetched,
            // A file shorter than recorded fails its ranges: its size tells.
            Err(e) => match store.size(&file.key).await {
                Ok(size) if size as i64 != file.size => {
                    return Err(damaged(wrong_size(size as i64, file.size)));
                }
                _ => return Err(unreadable(e)),
            },
        };
        let wanted = (&groups[..], *footer);
        return (ranges.assemble(wanted, file.size as u64, fetched)).map_err(damaged);
    }
    let data = store.get(&file.key).await.map_err(unreadable)?;
    if data.len() as i64 != file.size {
        return Err(damaged(wrong_size(data.len() as i64, file.size)));
    }
    if checksum(&data) != file.checksum {
        return Err(damaged("its checksum does not match the catalog's".into()));
    }
    Ok(SparseFile::whole(data))
}

fn wrong_size(found: i64, recorded: i64) -> String {
    format!("wrong size: it has {found} bytes, the catalog recorded {recorded}")
}

/// Parses digests (megabytes of JSON for a long process) on two threads, in order: a window
/// export waits for its thread streams' before it reads anything.
fn parse_digests<T: Send>(
    texts: &[Option<&str>],
    parse: impl Fn(&str) -> Option<T> + Sync,
) -> Vec<Option<T>> {
    let parse_all = |texts: &[Option<&str>]| -> Vec<Option<T>> {
        texts.iter().map(|text| text.and_then(&parse)).collect()
    };
    let bytes = |texts: &[Option<&str>]| texts.iter().flatten().map(|t| t.len()).sum::<usize>();
    if bytes(texts) < PARALLEL_DIGEST_BYTES {
        return parse_all(texts);
    }
    // Split where half the bytes are on each side.
    let half = bytes(texts) / 2;
    let mut seen = 0;
    let split = (texts.iter().position(|text| {
        seen += text.map_or(0, str::len);
        seen >= half
    }))
    .map_or(texts.len(), |k| k + 1);
    let (first, second) = texts.split_at(split);
    std::thread::scope(|scope| {
        let other = scope.spawn(|| parse_all(second));
        let mut parsed = parse_all(first);
        match other.join() {
            Ok(rest) => parsed.extend(rest),
            Err(panic) => std::panic::resume_unwind(panic),
        }
        parsed
    })
}

/// Digests of at least this many bytes are parsed on two threads.
const PARALLEL_DIGEST_BYTES: usize = 256 << 10;

/// A mutex whose holder cannot leave its data half-updated (each use is one assignment).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A partition file that does not hold what the catalog says: missing, truncated, altered or
/// undecodable. The export heals it ([`PartitionCache::heal`]) and reads again.
#[derive(Debug)]
pub struct DamagedPartition {
    planned: usize,
    key: String,
    reason: String,
}

impl std::fmt::Display for DamagedPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "partition file {} is damaged: {}", self.key, self.reason)
    }
}

impl std::error::Error for DamagedPartition {}

/// A partition file whose rows cannot be read: damaged.
fn undecodable(planned: usize, file: &StoredFile, e: anyhow::Error) -> anyhow::Error {
    anyhow::Error::new(DamagedPartition {
        planned,
        key: file.key.clone(),
        reason: format!("it cannot be decoded ({e:#})"),
    })
}

/// xxh3-64 of a partition file: fast enough to check every file on every read.
fn checksum(data: &[u8]) -> String {
    format!("{:016x}", ranges::xxh3(data))
}

const FILE_PREFIX: &str = "write-perfetto/partitions";
/// The catalog's file in a local cache directory.
const CATALOG_FILE: &str = "catalog.db";

/// An embedded lake's own catalog, beside its files.
fn embedded_catalog(lake_dir: &Path) -> PathBuf {
    lake_dir.join("write-perfetto").join(CATALOG_FILE)
}

/// The live catalog rows of a process, by view and instance: thousands of thread streams
/// each look theirs up once instead of scanning all the rows.
struct LiveRows<'a>(HashMap<(&'a str, Uuid), Vec<&'a PartitionRow>>);

impl<'a> LiveRows<'a> {
    fn index(rows: &'a [PartitionRow]) -> Self {
        let mut by_instance: HashMap<(&str, Uuid), Vec<&PartitionRow>> = HashMap::new();
        for row in rows {
            // A row whose instance is not a uuid matches no planned partition.
            if let Ok(instance) = Uuid::parse_str(&row.instance) {
                let key = (row.view.as_str(), instance);
                by_instance.entry(key).or_default().push(row);
            }
        }
        Self(by_instance)
    }

    fn of(&self, view: View, instance: Uuid) -> &[&'a PartitionRow] {
        (self.0.get(&(view.name(), instance))).map_or(&[], Vec::as_slice)
    }
}

impl PartitionCache {
    /// `cache_dir` puts catalog and files in a local directory; otherwise they live with the
    /// lake (embedded: `DIR/write-perfetto/`; PostgreSQL: a table in the lake's database and
    /// files in its object store) — unless the lake refuses writes (read-only credentials or
    /// storage): then in a per-user directory ([`fallback_dir`]), said once through `warn`.
    /// `process_id`: the process the export is for, when known, whose live rows are read with
    /// the catalog (a remote one, in the same round trip as its schema version).
    pub async fn open(
        lake: &Lake,
        cache_dir: Option<&Path>,
        layout: Layout,
        warn: &dyn Fn(&str),
        process_id: Option<Uuid>,
    ) -> Result<Self> {
        let cache = match cache_dir {
            Some(dir) => Self::in_directory(dir, layout, warn).await?,
            None => match Self::with_lake(lake, layout, warn, process_id).await {
                Err(e) if refuses_writes(&e) => {
                    Self::fallback(lake, layout, warn, &crate::error::one_line(&e)).await?
                }
                opened => opened?,
            },
        };
        if let Some(id) = process_id {
            // Kept for the export; a failure here is met, and said, when they are read again.
            let _ = cache.live_rows(id).await;
        }
        Ok(cache)
    }

    /// The per-user cache of this lake, for when the lake refuses writes (`why`).
    pub async fn fallback(
        lake: &Lake,
        layout: Layout,
        warn: &dyn Fn(&str),
        why: &str,
    ) -> Result<Self> {
        let dir = fallback_dir(&lake.location)?;
        warn(&format!(
            "the lake refuses to keep the partition cache ({why}); keeping it in {} instead (--cache DIR chooses)",
            dir.display()
        ));
        Self::in_directory(&dir, layout, warn).await
    }

    /// The local catalog file an export opens: `--cache DIR`'s, or an embedded lake's own;
    /// `None` when the catalog lives in the lake's database.
    pub fn local_catalog(lake: &Lake, cache_dir: Option<&Path>) -> Option<PathBuf> {
        match (cache_dir, &lake.location) {
            (Some(dir), _) => Some(dir.join(CATALOG_FILE)),
            (None, LakeLocation::Embedded { dir }) => Some(embedded_catalog(dir)),
            (None, _) => None,
        }
    }

    async fn in_directory(dir: &Path, layout: Layout, warn: &dyn Fn(&str)) -> Result<Self> {
        let catalog = Catalog::open_sqlite(&dir.join(CATALOG_FILE), warn).await?;
        Ok(Self::new(catalog, BlobStore::local(dir)?, layout))
    }

    async fn with_lake(
        lake: &Lake,
        layout: Layout,
        warn: &dyn Fn(&str),
        process_id: Option<Uuid>,
    ) -> Result<Self> {
        match (&lake.location, &lake.metadata) {
            (LakeLocation::Embedded { dir }, _) => {
                let catalog = Catalog::open_sqlite(&embedded_catalog(dir), warn).await?;
                Ok(Self::new(catalog, BlobStore::local(dir)?, layout))
            }
            (LakeLocation::Postgres { .. }, MetadataDb::Postgres(pool)) => {
                let (catalog, live) = Catalog::open_postgres_for(pool.clone(), process_id)
                    .await
                    .context("cannot create the partition catalog in the lake's database")?;
                let cache = Self::new(catalog, lake.blobs.clone(), layout);
                if let (Some(id), Some(rows)) = (process_id, live) {
                    lock(&cache.live).insert(id, Arc::new(rows));
                }
                Ok(cache)
            }
            (LakeLocation::Postgres { .. }, MetadataDb::Sqlite(_)) => Err(failure(
                FailureKind::Internal,
                "internal error: a PostgreSQL lake opened a SQLite pool",
            )),
        }
    }

    fn new(catalog: Catalog, store: BlobStore, layout: Layout) -> Self {
        Self {
            catalog,
            store,
            layout,
            live: Mutex::new(HashMap::new()),
        }
    }

    /// The live catalog rows of a process, read once per run.
    pub async fn live_rows(&self, process_id: Uuid) -> Result<Arc<Vec<PartitionRow>>> {
        if let Some(rows) = lock(&self.live).get(&process_id) {
            return Ok(rows.clone());
        }
        let rows = Arc::new(self.catalog.live_rows(&process_id).await?);
        lock(&self.live).insert(process_id, rows.clone());
        Ok(rows)
    }

    /// Makes every partition the request needs current (reusing what is, building the rest
    /// under the process's build lock) and returns their files.
    pub async fn prepare(&self, lake: &Lake, request: &EventsRequest<'_>) -> Result<Prepared> {
        crate::pause::at(crate::pause::Point::CatalogOpened);
        let planned = plan::plan(
            request.process_id,
            request.blocks,
            request.views,
            self.layout,
        );
        if planned.is_empty() {
            // No data of these views (a process without logs): no catalog round trip.
            return Ok(Prepared::new(planned, Vec::new(), request.blocks));
        }
        let mut stats = PartitionStats::default();
        let mut keys: Vec<Option<StoredFile>> = vec![None; planned.len()];
        let live = self.live_rows(request.process_id).await?;
        let live = LiveRows::index(&live);
        let mut stale = Vec::new();
        for (i, p) in planned.iter().enumerate() {
            match Self::reusable(p, &live) {
                Ok(key) => {
                    (request.explain)(format!("{}: reused", describe(p)));
                    stats.reused += 1;
                    keys[i] = Some(key);
                }
                Err(reason) => stale.push((i, reason)),
            }
        }
        if !stale.is_empty() {
            self.build_under_lock(lake, request, &planned, stale, &mut stats, &mut keys)
                .await?;
        }
        let files = (planned.iter().zip(keys))
            .map(|(p, key)| {
                key.ok_or_else(|| {
                    failure(
                        FailureKind::Internal,
                        format!(
                            "internal error: {} was neither reused nor built",
                            describe(p)
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let prepared = Prepared::new(planned, files, request.blocks);
        *lock(&prepared.stats) = stats;
        Ok(prepared)
    }

    /// Replaces a damaged partition file: its row is retired and the partition rebuilt from
    /// its blocks (or taken from another exporter that healed it first) under the process's
    /// build lock. A partition is healed at most once per run: damaged again, it is an error.
    pub async fn heal(
        &self,
        lake: &Lake,
        request: &EventsRequest<'_>,
        prepared: &Prepared,
        damaged: &DamagedPartition,
    ) -> Result<()> {
        let i = damaged.planned;
        let p = &prepared.planned[i];
        if !lock(&prepared.healed).insert(i) {
            return Err(failure(
                FailureKind::Io,
                format!("{damaged} again, right after it was rebuilt: check the cache's storage"),
            ));
        }
        (request.explain)(format!(
            "{}: {}; rebuilding it",
            describe(p),
            damaged.reason
        ));
        self.catalog
            .retire(&damaged.key)
            .await
            .context("cannot retire a damaged partition in the catalog")?;
        let mut stats = PartitionStats::default();
        let mut keys: Vec<Option<StoredFile>> = vec![None; prepared.planned.len()];
        let stale = vec![(i, Stale::Outdated(format!("damaged: {}", damaged.reason)))];
        self.build_under_lock(
            lake,
            request,
            &prepared.planned,
            stale,
            &mut stats,
            &mut keys,
        )
        .await?;
        let file = keys[i].take().ok_or_else(|| {
            failure(
                FailureKind::Internal,
                format!("internal error: {} was not rebuilt", describe(p)),
            )
        })?;
        lock(&prepared.files)[i] = file;
        // The stand-ins were found with the damaged file's digest: its row groups may be cut
        // otherwise than the rebuilt file's (another `--row-group-rows`). Found again on the
        // next read, from the rebuilt file's.
        *lock(&prepared.stand_ins) = None;
        let mut totals = lock(&prepared.stats);
        totals.reused = totals.reused.saturating_sub(1);
        totals.add(stats);
        Ok(())
    }

    /// Builds the `stale` partitions (or takes what another exporter built meanwhile) under
    /// the process's build lock, once the store has shown it takes writes.
    async fn build_under_lock(
        &self,
        lake: &Lake,
        request: &EventsRequest<'_>,
        planned: &[Planned],
        stale: Vec<(usize, Stale)>,
        stats: &mut PartitionStats,
        keys: &mut [Option<StoredFile>],
    ) -> Result<()> {
        self.check_writable().await?;
        let build_lock = self.catalog.lock(&request.process_id).await?;
        let built = self
            .build_stale(lake, request, planned, stale, stats, keys)
            .await;
        build_lock.release().await?;
        built
    }

    /// Stores and deletes a probe file: a store that refuses writes is found before any block
    /// is decoded ([`CacheRefused`]); the partition files that follow need no such check.
    async fn check_writable(&self) -> Result<()> {
        let probe = format!("{FILE_PREFIX}/.probe-{}", Uuid::new_v4());
        let stored = self.store.put(&probe, Bytes::from_static(b"probe")).await;
        if let Err(e) = stored {
            let e = e.context(format!(
                "cannot store partition files in {}",
                self.store.description()
            ));
            return Err(match refuses_writes(&e) {
                true => e.context(CacheRefused),
                false => e,
            });
        }
        self.store.delete(&probe).await
    }

    /// The file of a live row proving the partition current; otherwise why there is none.
    fn reusable(p: &Planned, live: &LiveRows<'_>) -> Result<StoredFile, Stale> {
        let same_instance: Vec<&PartitionRow> = (live.of(p.view, p.instance).iter())
            .copied()
            .filter(|r| r.begin_us < p.end_us && r.end_us > p.begin_us)
            .collect();
        // Only a row with the very same bounds: a wider row may be retired by a sibling's
        // rebuild in this very run, which would leave the partition served from it unrecorded.
        let Some(row) = same_instance
            .iter()
            .find(|r| r.begin_us == p.begin_us && r.end_us == p.end_us)
        else {
            return Err(if same_instance.is_empty() {
                Stale::NoPartition
            } else {
                Stale::Outdated("partition bounds changed".into())
            });
        };
        if row.format_version != FORMAT_VERSION {
            return Err(Stale::Outdated(format!(
                "format version changed ({} → {FORMAT_VERSION})",
                row.format_version
            )));
        }
        let Some(checksum) = &row.checksum else {
            return Err(Stale::Outdated(
                "recorded by an older write-perfetto, without a checksum".into(),
            ));
        };
        if p.view.span_scope().is_some() && row.digest.is_none() {
            return Err(Stale::Outdated(
                "recorded by an older write-perfetto, without a digest".into(),
            ));
        }
        if row.fingerprint != p.fingerprint {
            let now = p.blocks.len() as i64;
            return Err(Stale::Outdated(match now - row.nb_blocks {
                n if n > 0 => format!("{n} new block{}", if n == 1 { "" } else { "s" }),
                n if n < 0 => format!("{} block{} gone", -n, if n == -1 { "" } else { "s" }),
                _ => "blocks replaced or changed".into(),
            }));
        }
        // The file itself is not looked at here: each read checks its size and checksum, and
        // a file found missing or damaged then is rebuilt in the same run. A look now would
        // cost a round trip per partition on a remote store.
        Ok(StoredFile {
            key: row.file_key.clone(),
            size: row.file_size,
            checksum: checksum.clone(),
            digest: row.digest.as_deref().map(Arc::from),
            ranges: row.ranges.as_deref().map(Arc::from),
        })
    }

    async fn build_stale(
        &self,
        lake: &Lake,
        request: &EventsRequest<'_>,
        planned: &[Planned],
        stale: Vec<(usize, Stale)>,
        stats: &mut PartitionStats,
        keys: &mut [Option<StoredFile>],
    ) -> Result<()> {
        // Another exporter may have built them while we waited for the lock.
        let live = self.catalog.live_rows(&request.process_id).await?;
        let live = LiveRows::index(&live);
        let mut to_build = Vec::new();
        for (i, first_reason) in stale {
            match Self::reusable(&planned[i], &live) {
                Ok(key) => {
                    (request.explain)(format!(
                        "{}: reused (built meanwhile by another exporter)",
                        describe(&planned[i])
                    ));
                    stats.reused += 1;
                    keys[i] = Some(key);
                }
                Err(_) => to_build.push((i, first_reason)),
            }
        }
        if to_build.is_empty() {
            return Ok(());
        }
        build::build(self, lake, request, planned, &to_build, stats, keys).await
    }

    /// Writes a partition's file, then records it in the catalog (retiring what it replaces).
    async fn store_partition(
        &self,
        process_id: Uuid,
        p: &Planned,
        mut rows: Box<dyn PartitionRows>,
    ) -> Result<StoredFile> {
        let digest = rows.take_digest()?;
        // Only span partitions are read in part (by window exports).
        let ranged = p.view.span_scope().is_some();
        // Parquet encoding is CPU work: off the async workers.
        let (data, ranges) = tokio::task::spawn_blocking(move || {
            let data = rows.finish()?;
            let ranges = ranged.then(|| FileRanges::of(&data)).transpose()?;
            anyhow::Ok((data, ranges.map(|r| r.to_text())))
        })
        .await
        .map_err(|e| crate::error::task_failed("encoding a partition", e))??;
        let file_key = format!(
            "{FILE_PREFIX}/{}/{}/{}-{}-{}.parquet",
            p.view.name(),
            p.instance,
            p.begin_us,
            p.end_us,
            Uuid::new_v4()
        );
        let file_size = data.len() as i64;
        let checksum = checksum(&data);
        self.store.put(&file_key, data).await?;
        crate::pause::at(crate::pause::Point::PartitionFileStored);
        self.catalog
            .replace(&PartitionRow {
                view: p.view.name().into(),
                instance: p.instance.to_string(),
                process_id: process_id.to_string(),
                begin_us: p.begin_us,
                end_us: p.end_us,
                fingerprint: p.fingerprint.clone(),
                format_version: FORMAT_VERSION,
                nb_blocks: p.blocks.len() as i64,
                nb_objects: p.nb_objects,
                file_key: file_key.clone(),
                file_size,
                created_us: catalog::now_us(),
                retired_us: None,
                checksum: Some(checksum.clone()),
                digest: digest.clone(),
                ranges: ranges.clone(),
            })
            .await
            .context("cannot record the partition in the catalog")?;
        crate::pause::at(crate::pause::Point::PartitionRecorded);
        Ok(StoredFile {
            key: file_key,
            size: file_size,
            checksum,
            digest: digest.map(Arc::from),
            ranges: ranges.map(Arc::from),
        })
    }

    /// Reads the rows of a view instance (a stream or the process) into `table`, in stream
    /// order (async spans: as read, each with its place in that order): its partition files
    /// fetched concurrently and decoded in order, except the shared ones another of their
    /// streams decoded already.
    ///
    /// With a `window` (the time range shown, and the request's blocks), the span partitions
    /// nothing shown can come from are not read: their digests stand in for them
    /// ([`skipping`]).
    #[allow(clippy::too_many_arguments)]
    pub async fn read_rows<T: RowTable>(
        &self,
        prepared: &Prepared,
        view: View,
        instance: Uuid,
        symbols: &mut Symbols,
        block_position: &HashMap<Uuid, u32>,
        clock: &Clock,
        concurrency: usize,
        window: Option<(&[BlockRow], (i64, i64))>,
        table: &mut T,
    ) -> Result<()> {
        table.clear();
        let parts = (prepared.instances.get(&(view, instance))).map_or(&[][..], Vec::as_slice);
        let reading = Reading {
            prepared,
            view,
            block_position,
            clock,
            concurrency,
        };
        let all: Vec<&InstanceRows> = parts.iter().collect();
        match (window, view) {
            (Some(window), View::ASYNC_SPANS) => {
                let stand_ins = prepared.stand_ins(window, clock);
                // Every async instance with partitions has its own; one without has none.
                let found = match stand_ins.async_parts.get(&instance) {
                    Some(pending) => pending.get().await?,
                    None => Arc::default(),
                };
                self.read_async_window(&reading, &all, &found, symbols, table)
                    .await?
            }
            (Some(window), View::THREAD_SPANS) => {
                let stand_ins = prepared.stand_ins(window, clock);
                let mut read = Vec::new();
                for &part in &all {
                    let stand_in = stand_ins.digests.get(&(part.planned, instance));
                    match (stand_in, table.as_events()) {
                        (Some(digest), Some(events)) => {
                            append_thread_digest(events, digest, symbols, block_position, clock)
                        }
                        // Read whole, or in part (the footer then stands in for the rest).
                        _ => read.push(part),
                    }
                }
                let footers =
                    (self.read_parts(&reading, &read, &stand_ins, symbols, table)).await?;
                if let Some(events) = table.as_events() {
                    for (part, text) in read
                        .iter()
                        .filter_map(|p| Some((p, footers.get(&p.planned)?)))
                    {
                        let Some(groups) = stand_ins.row_groups.get(&part.planned) else {
                            continue;
                        };
                        let file = || lock(&prepared.files)[part.planned].clone();
                        let standing = standing_row_groups(text, groups)
                            .map_err(|e| undecodable(part.planned, &file(), e))?;
                        for digest in &standing {
                            append_thread_digest(events, digest, symbols, block_position, clock);
                        }
                    }
                }
            }
            _ => {
                self.read_parts(&reading, &all, &StandIns::default(), symbols, table)
                    .await?;
            }
        }
        // Async events are paired in time order, stream order only breaking ties: putting
        // them in stream order first would be a sort of all of them for nothing.
        if view != View::ASYNC_SPANS {
            table.sort();
        }
        Ok(())
    }

    /// Reads the async partitions a window needs, or the row groups of them it needs; the
    /// digests of the others stand in. A partition or row group whose digest lists a span id
    /// also seen in what is read is read too (its pair of that id would pair otherwise), until
    /// none is.
    async fn read_async_window<T: RowTable>(
        &self,
        reading: &Reading<'_>,
        parts: &[&InstanceRows],
        found: &AsyncStandIns,
        symbols: &mut Symbols,
        table: &mut T,
    ) -> Result<()> {
        let mut standing = found.standing.clone();
        let mut groups_standing = found.groups.clone();
        let mut to_read: Vec<(usize, Option<Vec<usize>>)> = (0..parts.len())
            .filter(|&k| !standing[k])
            .map(|k| (k, found.groups_read_first(k)))
            .collect();
        // Of each partition read by row groups (all in the first round), its row groups'
        // digests, from its footer.
        let mut in_full = HashMap::new();
        while !to_read.is_empty() {
            let footers = (self.read_async_parts(reading, parts, &to_read, symbols, table)).await?;
            for (k, groups) in &to_read {
                let (Some(_), Some(text)) = (groups, footers.get(&parts[*k].planned)) else {
                    continue;
                };
                let file = || lock(&reading.prepared.files)[parts[*k].planned].clone();
                let digests = found
                    .full_group_digests(*k, text)
                    .map_err(|e| undecodable(parts[*k].planned, &file(), e))?;
                in_full.entry(*k).or_insert(digests);
            }
            let Some(events) = table.as_events() else {
                return Ok(());
            };
            let kept = found.standing_digests((&standing, &groups_standing), &in_full);
            let seen = skipping::span_ids_seen(events, &kept);
            to_read = found.pairing_any(&seen, (&mut standing, &mut groups_standing), &in_full);
        }
        if let Some(events) = table.as_events() {
            let kept = found.standing_digests((&standing, &groups_standing), &in_full);
            // At once: the table was read to its exact size, and the first event appended
            // would double it (a 10 s window of the 8-hour lake: 28 MB more at its peak).
            events.reserve_exact(kept.iter().map(|k| k.events.len()).sum());
            let (position, clock) = (reading.block_position, reading.clock);
            for kept in kept {
                let kept = (&kept.events[..], EventScope::Async);
                skipping::append_digest(events, kept, symbols, position, clock);
            }
        }
        Ok(())
    }

    /// Reads these async partitions (by place in `parts`): whole, or these row groups (none:
    /// the footer alone). Returns the footers' row-group digests, by partition.
    async fn read_async_parts<T: RowTable>(
        &self,
        reading: &Reading<'_>,
        parts: &[&InstanceRows],
        to_read: &[(usize, Option<Vec<usize>>)],
        symbols: &mut Symbols,
        table: &mut T,
    ) -> Result<HashMap<usize, String>> {
        let mut stand_ins = StandIns::default();
        let mut read = Vec::new();
        for (k, groups) in to_read {
            let part = parts[*k];
            if let Some(groups) = groups {
                let groups = RowGroupStandIns {
                    standing: Vec::new(),
                    read: groups.clone(),
                };
                stand_ins.row_groups.insert(part.planned, groups);
            }
            read.push(part);
        }
        self.read_parts(reading, &read, &stand_ins, symbols, table)
            .await
    }

    /// Reads these parts of an instance's rows into `table` (rows appended, not sorted).
    /// Returns, by partition, the row-group digests of the files read by row groups.
    async fn read_parts<T: RowTable>(
        &self,
        reading: &Reading<'_>,
        parts: &[&InstanceRows],
        stand_ins: &StandIns,
        symbols: &mut Symbols,
        table: &mut T,
    ) -> Result<HashMap<usize, String>> {
        let Reading {
            prepared,
            view,
            block_position,
            clock,
            concurrency,
        } = *reading;
        let shared_reading = (view, clock);
        let mut to_fetch = Vec::new();
        for &part in parts {
            let file = || lock(&prepared.files)[part.planned].clone();
            if let Some(blocks) = part.blocks.clone() {
                let taken = prepared
                    .shared
                    .take(part.planned, blocks, table, shared_reading);
                if taken.map_err(|e| undecodable(part.planned, &file(), e))? {
                    continue;
                }
            }
            to_fetch.push((part, file()));
        }
        let groups_read =
            |part: &InstanceRows| (stand_ins.row_groups.get(&part.planned)).map(|g| &g.read[..]);
        let mut fetches = futures::stream::iter(to_fetch.iter())
            .map(|&(part, ref file)| async move {
                let groups = groups_read(part);
                let data = self.fetch(prepared, (part.planned, groups), file, concurrency);
                (part, file, data.await)
            })
            .buffered(concurrency.max(1));
        let mut footers = HashMap::new();
        while let Some((part, file, data)) = fetches.next().await {
            let data = data?;
            let read = match part.blocks.clone() {
                None => {
                    let data = (data, groups_read(part));
                    let read = read_file(table, data, view, symbols, block_position, clock);
                    read.map(|footer| {
                        footer.map(|text| footers.insert(part.planned, text));
                    })
                }
                Some(blocks) => {
                    OpenFile::open::<T>(data, view, symbols, block_position).and_then(|opened| {
                        // Streams whose digests stand in never read it.
                        let standing = stand_ins.per_partition.get(&part.planned);
                        let readers = prepared.planned[part.planned].small_streams.len()
                            - standing.copied().unwrap_or(0);
                        let shared = &prepared.shared;
                        shared.open(
                            part.planned,
                            (opened, readers),
                            blocks,
                            table,
                            shared_reading,
                        )
                    })
                }
            };
            read.map_err(|e| undecodable(part.planned, file, e))?;
        }
        Ok(footers)
    }

    /// A partition file's bytes (all, or what a read of these row groups needs), fetched
    /// ahead or now; the next files of its view start coming meanwhile.
    async fn fetch(
        &self,
        prepared: &Prepared,
        (planned, groups): (usize, Option<&[usize]>),
        file: &StoredFile,
        concurrency: usize,
    ) -> Result<SparseFile> {
        let ahead = prepared.read_ahead.take(planned, file, groups);
        // A file read run by run is fetched ahead by its first run.
        let size =
            |next: usize| match (prepared.streams_in_runs.get()).and_then(|s| s.first_run(next)) {
                Some((_, bytes)) => *bytes,
                None => lock(&prepared.files)[next].size.max(0) as u64,
            };
        let start = |next: usize, groups: Option<Vec<usize>>| {
            lock(&prepared.stats).files_read += 1;
            let file = lock(&prepared.files)[next].clone();
            Started {
                key: file.key.clone(),
                size: file.size.max(0) as u64,
                groups: groups.clone(),
                fetch: tokio::spawn(fetch_checked(self.store.clone(), next, file, groups)),
            }
        };
        // The file read now is one of the `--jobs` fetches at once. A local file costs no
        // round trip: a few ahead cover the reads, more would only hold memory.
        let count = prepared.planned.len();
        let (files, bytes, large_alone_before) = match self.store.is_remote() {
            true => (concurrency, READ_AHEAD_BYTES, count),
            false => (
                LOCAL_READ_AHEAD_FILES + 1,
                LOCAL_READ_AHEAD_BYTES,
                view_end(&prepared.planned, planned),
            ),
        };
        let limit = Limit {
            files: files.min(concurrency).saturating_sub(1),
            bytes,
            large_alone_before,
        };
        (prepared.read_ahead).start_after((planned, count), limit, size, start);
        let data = match ahead {
            Some(fetch) => {
                (fetch.await).map_err(|e| crate::error::task_failed("a partition read", e))??
            }
            None => {
                lock(&prepared.stats).files_read += 1;
                let groups = groups.map(<[usize]>::to_vec);
                fetch_checked(self.store.clone(), planned, file.clone(), groups).await?
            }
        };
        lock(&prepared.stats).bytes_read += data.bytes_held();
        Ok(data)
    }

    /// Deletes partition files retired longer than `grace` ago with their rows, and files no
    /// row names (left by an interrupted build) older than `grace`; returns how many files.
    pub async fn collect_garbage(&self, grace: std::time::Duration) -> Result<usize> {
        let grace_us = i64::try_from(grace.as_micros()).unwrap_or(i64::MAX);
        let cutoff = catalog::now_us().saturating_sub(grace_us);
        let rows = self.catalog.retired_before(cutoff).await?;
        for row in &rows {
            self.store.delete(&row.file_key).await?;
            self.catalog.forget(&row.file_key).await?;
        }
        let known: std::collections::HashSet<String> = self
            .catalog
            .all_rows()
            .await?
            .into_iter()
            .map(|r| r.file_key)
            .collect();
        let mut orphans = Vec::new();
        let prefix = object_store::path::Path::from(FILE_PREFIX);
        let mut listing = self.store.inner().list(Some(&prefix));
        while let Some(meta) = listing.next().await {
            let meta = meta.with_context(|| {
                format!("cannot list {FILE_PREFIX} in {}", self.store.description())
            })?;
            let key = meta.location.to_string();
            if !known.contains(&key) && meta.last_modified.timestamp_micros() < cutoff {
                orphans.push(key);
            }
        }
        for key in &orphans {
            self.store.delete(key).await?;
        }
        Ok(rows.len() + orphans.len())
    }
}

/// A new file of a view's row format: the registry of row formats.
/// `row_group_rows`: for a stream's own partition or an async one, the rows of its row
/// groups, when its row format cuts them.
fn new_rows(view: View, row_group_rows: Option<usize>) -> Result<Box<dyn PartitionRows>> {
    Ok(match view.rows {
        Rows::Spans(scope) => Box::new(span_rows::SpanRows::new(scope, row_group_rows)?),
        Rows::Logs => log_rows::new_rows()?,
        Rows::Measures => measure_rows::new_rows()?,
    })
}

fn describe(p: &Planned) -> String {
    let begin = chrono::DateTime::from_timestamp_micros(p.begin_us)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    let shared = match p.small_streams.len() {
        0 => String::new(),
        1 => " (1 small stream)".into(),
        n => format!(" ({n} small streams)"),
    };
    format!(
        "partition {} {}{shared} [{begin}, +{}s)",
        p.view.name(),
        p.instance,
        (p.end_us - p.begin_us) / 1_000_000
    )
}

/// Marks a refusal to write the partition cache where it lives (read-only credentials or
/// storage): the export falls back to a per-user cache directory.
#[derive(Debug)]
pub struct CacheRefused;

impl std::fmt::Display for CacheRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the partition cache cannot be written there")
    }
}

/// Whether an error says "you may not write here" (permissions, read-only storage or
/// database), as opposed to a failure worth reporting.
pub fn refuses_writes(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            );
        }
        if let Some(store) = cause.downcast_ref::<object_store::Error>() {
            return matches!(
                store,
                object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. }
            );
        }
        if let Some(sqlx::Error::Database(db)) = cause.downcast_ref::<sqlx::Error>() {
            // PostgreSQL: insufficient_privilege, read_only_sql_transaction; SQLite: READONLY
            // (and its extended codes), CANTOPEN, PERM, AUTH.
            let code = db.code().unwrap_or_default();
            return matches!(code.as_ref(), "42501" | "25006" | "3" | "14" | "23")
                || code.parse::<i32>().is_ok_and(|c| c & 0xff == 8);
        }
        false
    })
}

/// `$XDG_CACHE_HOME/write-perfetto/<digest>` (else `~/.cache/...`), one per lake: the digest is
/// of the lake's location without credentials.
pub fn fallback_dir(location: &LakeLocation) -> Result<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::home_dir().map(|home| home.join(".cache")))
        .ok_or_else(|| {
            failure(
                FailureKind::Io,
                "the lake refuses writes and there is no per-user cache directory (neither XDG_CACHE_HOME nor HOME is set): pass --cache DIR",
            )
        })?;
    let identity = match location {
        LakeLocation::Embedded { dir } => std::path::absolute(dir)
            .unwrap_or_else(|_| dir.clone())
            .display()
            .to_string(),
        LakeLocation::Postgres { .. } => location.describe(),
    };
    let digest = format!(
        "{:016x}",
        twox_hash::XxHash3_64::oneshot(identity.as_bytes())
    );
    Ok(base.join("write-perfetto").join(digest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventPhase, EventScope};
    use crate::partitions::digest::{AsyncDigestBuilder, tests::Names};

    /// The digest of async events (span id, phase, ticks).
    fn digest_of(names: &mut Names, events: &[(u64, EventPhase, i64)]) -> digest::AsyncDigest {
        let mut builder = AsyncDigestBuilder::default();
        for &(id, phase, ticks) in events {
            let mut event = names.event(EventScope::Async, phase, "f", ticks);
            event.span_id = id;
            builder.push(event);
        }
        builder.finish(names).expect("events")
    }

    #[test]
    fn a_row_group_standing_in_that_pairs_an_id_seen_in_the_window_is_read_too() {
        use EventPhase::{Begin, End};
        let mut names = Names::default();
        // Three row groups of one partition; the window (40–60 ns) reaches the middle one,
        // which begins id 5 again: the first row group, which pairs 5, must be read too.
        let groups = [
            vec![(5, Begin, 1), (5, End, 2)],
            vec![(5, Begin, 50)],
            vec![(9, Begin, 100), (9, End, 101)],
        ];
        let all: Vec<_> = groups.iter().flatten().copied().collect();
        let mut partition = digest_of(&mut names, &all);
        let group_digests: Vec<_> = (groups.iter())
            .map(|g| Some(digest_of(&mut names, g)))
            .collect();
        // The catalog keeps the row groups' summaries, the file's footer their digests.
        let summaries: Vec<_> = (group_digests.iter())
            .map(|g| g.as_ref().map(digest::AsyncDigest::summary))
            .collect();
        partition.row_groups = summaries.into();
        let footer = serde_json::to_string(&group_digests).unwrap();
        let text: Arc<str> = serde_json::to_string(&partition).unwrap().into();
        let process = crate::lake::rows::ProcessRow::ticking_in_unix_nanos(Uuid::from_u128(9));
        let clock = Clock::for_process(&process, (None, None)).unwrap();
        let found = AsyncStandIns::of(&[Some(text)], &clock, (40, 60));
        assert_eq!(found.standing, [false], "a partition reached is read");
        assert_eq!(found.groups_read_first(0), Some(vec![1]));
        let in_full = HashMap::from([(0, found.full_group_digests(0, &footer).unwrap())]);
        let (mut standing, mut groups) = (found.standing.clone(), found.groups.clone());
        assert_eq!(groups, [Some(vec![true, false, true])]);
        let mut pairing =
            |seen: &[u64]| found.pairing_any(seen, (&mut standing, &mut groups), &in_full);
        assert!(pairing(&[7]).is_empty());
        assert_eq!(pairing(&[5, 7]), [(0, Some(vec![0]))]);
        assert_eq!(groups, [Some(vec![false, false, true])]);
        let other = serde_json::to_string(&group_digests[..2]).unwrap();
        assert!(
            found.full_group_digests(0, &other).is_err(),
            "a footer that differs from the catalog is damage"
        );
    }
}
