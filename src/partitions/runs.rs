//! A large thread stream read a run of row groups at a time, in stream order: assembly pairs
//! its events as they come and hands its track on in pieces, so an export holds a few
//! megabytes of a thread's file and events, however large the thread. A process's async
//! partitions are read so too, each file in time order (as it is written): assembly merges
//! them and pairs the spans as they end.
//!
//! A stream is read so only where that gives the rows of a whole read, in the same order, and
//! they can be paired as they come: its rows are all in partitions of its own (a shared one
//! holds other streams' rows), their blocks in stream order from one partition to the next,
//! each block once in the export; the catalog has each file's ranges (to fetch a run alone,
//! checked); and the partitions' digests say that no end of the stream closes a span begun
//! before its first event (that span's slice would come first in its track).

use anyhow::Result;
use std::collections::{HashMap, HashSet};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::digest::{self, StreamDigests};
use super::files::{RowGroupFile, RowTable};
use super::ranges::{FileRanges, SparseFile};
use super::{InstanceRows, PartitionCache, Prepared, View, fetch_ranges, lock, undecodable};
use crate::clock::Clock;
use crate::lake::rows::BlockRow;
use crate::symbols::Symbols;

/// A run of row groups holds this many bytes of its file, at least: a run's events take about
/// three times that once read (the largest thread of a 10M-span process: 22 MB of file, 70 MB
/// of events, read whole). Debug builds (the tests) take `WRITE_PERFETTO_RUN_BYTES`, to read
/// small threads in many runs.
fn run_bytes() -> u64 {
    crate::test_sizes::get("WRITE_PERFETTO_RUN_BYTES").unwrap_or(2 << 20)
}

/// A stream whose files hold fewer bytes than this is read whole: run by run, it would take as
/// many fetches for little memory saved.
fn runs_from_bytes() -> u64 {
    2 * run_bytes()
}

/// The streams an export reads run by run, found on first use.
#[derive(Default)]
pub(super) struct StreamsInRuns {
    /// By stream: its partitions (in the plan), in stream order.
    streams: HashMap<Uuid, Vec<usize>>,
    /// By process: its async partitions (in the plan).
    async_files: HashMap<Uuid, Vec<usize>>,
    /// By partition: its first run of row groups and their bytes, what is fetched ahead of it.
    first_runs: HashMap<usize, (Vec<usize>, u64)>,
}

impl StreamsInRuns {
    /// The thread streams of `prepared` to read run by run (`blocks`: the request's).
    pub(super) fn of(prepared: &Prepared, blocks: &[BlockRow]) -> Self {
        let mut found = Self::default();
        if has_repeated_blocks(blocks) {
            return found;
        }
        let files = lock(&prepared.files);
        for ((view, instance), parts) in &prepared.instances {
            if *view == View::ASYNC_SPANS {
                found.add_async(*instance, parts, &files);
            }
        }
        for ((view, stream), parts) in &prepared.instances {
            if *view != View::THREAD_SPANS {
                continue;
            }
            let Some(ranges) = own_files_in_order(prepared, parts, &files) else {
                continue;
            };
            let bytes: u64 = (parts.iter())
                .map(|p| files[p.planned].size.max(0) as u64)
                .sum();
            if bytes < runs_from_bytes() || !pairs_as_it_comes(parts, &files, stream) {
                continue;
            }
            for (part, ranges) in parts.iter().zip(ranges) {
                let first = ranges.runs(run_bytes()).into_iter().next();
                found
                    .first_runs
                    .extend(first.map(|run| (part.planned, run)));
            }
            let planned = parts.iter().map(|p| p.planned).collect();
            found.streams.insert(*stream, planned);
        }
        found
    }

    /// A process's async partitions, if the catalog has the ranges of each file.
    fn add_async(&mut self, process: Uuid, parts: &[InstanceRows], files: &[super::StoredFile]) {
        let ranges: Option<Vec<FileRanges>> = (parts.iter())
            .map(|p| FileRanges::parse(files[p.planned].ranges.as_deref()?))
            .collect();
        let Some(ranges) = ranges else { return };
        for (part, ranges) in parts.iter().zip(ranges) {
            let first = ranges.runs(run_bytes()).into_iter().next();
            self.first_runs.extend(first.map(|run| (part.planned, run)));
        }
        let planned = parts.iter().map(|p| p.planned).collect();
        self.async_files.insert(process, planned);
    }

    /// The first run of a partition read run by run, and its bytes.
    pub(super) fn first_run(&self, planned: usize) -> Option<&(Vec<usize>, u64)> {
        self.first_runs.get(&planned)
    }

    pub(super) fn first_runs(&self) -> impl Iterator<Item = (usize, &Vec<usize>)> {
        self.first_runs.iter().map(|(&p, (run, _))| (p, run))
    }
}

/// A block listed twice in a request puts its rows twice in its partition, in a place a whole
/// read sorts them into and a read run by run would not.
fn has_repeated_blocks(blocks: &[BlockRow]) -> bool {
    let mut seen = HashSet::with_capacity(blocks.len());
    !blocks.iter().all(|b| seen.insert(b.block_id))
}

/// The ranges of a stream's partitions, when all are its own, their blocks follow one another
/// and the catalog has each file's ranges.
fn own_files_in_order(
    prepared: &Prepared,
    parts: &[InstanceRows],
    files: &[super::StoredFile],
) -> Option<Vec<FileRanges>> {
    let mut last_block: Option<usize> = None;
    let mut ranges = Vec::with_capacity(parts.len());
    for part in parts {
        if part.blocks.is_some() {
            return None;
        }
        let blocks = &prepared.planned[part.planned].blocks;
        let in_order = blocks.windows(2).all(|pair| pair[0] < pair[1]);
        let first = *blocks.first()?;
        if !in_order || last_block.is_some_and(|last| last >= first) {
            return None;
        }
        last_block = blocks.last().copied();
        ranges.push(FileRanges::parse(files[part.planned].ranges.as_deref()?)?);
    }
    Some(ranges)
}

/// Whether the stream's partitions all have digests, and these say that no end closes a span
/// begun before the stream's first event.
fn pairs_as_it_comes(parts: &[InstanceRows], files: &[super::StoredFile], stream: &Uuid) -> bool {
    let parsed: Option<Vec<StreamDigests>> = (parts.iter())
        .map(|part| serde_json::from_str(files[part.planned].digest.as_deref()?).ok())
        .collect();
    let Some(parsed) = parsed else { return false };
    let digests: Option<Vec<&digest::Digest>> = parsed.iter().map(|d| d.get(stream)).collect();
    digests.is_some_and(|digests| !digest::ends_reach_before(&digests))
}

/// Where a read of a stream (or of an async partition) run by run stands.
pub struct StreamRuns {
    view: View,
    /// Of an async partition, the smallest tick count of its events, if its digest says.
    min_ticks: Option<i64>,
    /// The stream's partitions, in stream order.
    parts: Vec<usize>,
    /// The one being read (index in `parts`).
    part: usize,
    /// Its rows handed on already: a read after its file was rebuilt goes on from there.
    rows_done: usize,
    open: Option<OpenRuns>,
}

/// A partition file being read run by run.
struct OpenRuns {
    key: String,
    file: RowGroupFile,
    /// Its runs of row groups, and the row each begins at.
    runs: Vec<(Vec<usize>, usize)>,
    next: usize,
    /// The next run's bytes: the first came with the footer, the others are fetched ahead.
    data: Option<SparseFile>,
    ahead: Option<JoinHandle<Result<SparseFile>>>,
}

impl OpenRuns {
    /// The bytes of the next run (row groups alone: the file's metadata is at hand), and the
    /// fetch of the one after started.
    async fn take_run(
        &mut self,
        store: &crate::lake::BlobStore,
        planned: usize,
        file: &super::StoredFile,
    ) -> Result<SparseFile> {
        let fetch = |groups: &Vec<usize>| {
            fetch_ranges(
                store.clone(),
                planned,
                file.clone(),
                Some((groups.clone(), false)),
            )
        };
        let data = match (self.data.take(), self.ahead.take()) {
            (Some(data), _) => data,
            (None, Some(ahead)) => {
                (ahead.await).map_err(|e| crate::error::task_failed("a partition read", e))??
            }
            (None, None) => fetch(&self.runs[self.next].0).await?,
        };
        self.next += 1;
        self.ahead = (self.runs.get(self.next)).map(|(next, _)| tokio::spawn(fetch(next)));
        Ok(data)
    }
}

impl Drop for OpenRuns {
    fn drop(&mut self) {
        if let Some(ahead) = self.ahead.take() {
            ahead.abort();
        }
    }
}

impl Prepared {
    /// What the export reads run by run, found on first use (`blocks`: the request's).
    fn streams_in_runs(&self, blocks: &[BlockRow]) -> &StreamsInRuns {
        self.streams_in_runs.get_or_init(|| {
            let found = StreamsInRuns::of(self, blocks);
            for (planned, run) in found.first_runs() {
                self.read_ahead.only(planned, run.clone());
            }
            found
        })
    }

    /// A read of a thread stream run by run, if it is one the export reads so.
    pub fn runs_of(&self, stream: Uuid, blocks: &[BlockRow]) -> Option<StreamRuns> {
        let parts = self.streams_in_runs(blocks).streams.get(&stream)?.clone();
        log::debug!("thread stream {stream} read in runs");
        Some(StreamRuns::of(View::THREAD_SPANS, parts))
    }

    /// Reads of a process's async partitions run by run, one per file, each in time order;
    /// `None` if they are not read so.
    pub fn async_runs(&self, process: Uuid, blocks: &[BlockRow]) -> Option<Vec<StreamRuns>> {
        let files = self.streams_in_runs(blocks).async_files.get(&process)?;
        log::debug!(
            "async events of process {process}: {} files merged run by run",
            files.len()
        );
        let texts = lock(&self.files);
        let runs = files.iter().map(|&p| {
            let mut runs = StreamRuns::of(View::ASYNC_SPANS, vec![p]);
            runs.min_ticks = texts[p].digest.as_deref().and_then(min_ticks);
            runs
        });
        Some(runs.collect())
    }
}

/// The smallest tick count of an async partition's events, from its digest (its other fields,
/// a million span ids in a large one, skipped unparsed).
fn min_ticks(digest: &str) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct Ticks {
        min_ticks: i64,
    }
    serde_json::from_str::<Ticks>(digest)
        .ok()
        .map(|t| t.min_ticks)
}

impl StreamRuns {
    /// The view whose rows it reads.
    pub fn view(&self) -> View {
        self.view
    }

    /// Of an async partition, the smallest tick count of its events, if known: its file need
    /// not be opened before the events of the others reach it.
    pub fn min_ticks(&self) -> Option<i64> {
        self.min_ticks
    }

    fn of(view: View, parts: Vec<usize>) -> Self {
        Self {
            view,
            min_ticks: None,
            parts,
            part: 0,
            rows_done: 0,
            open: None,
        }
    }
}

/// What a read of a run needs besides the cursor.
pub struct RunReading<'a> {
    pub block_position: &'a HashMap<Uuid, u32>,
    pub clock: &'a Clock,
    pub concurrency: usize,
}

impl PartitionCache {
    /// Reads the next run of a stream's rows into `table` (cleared first), in stream order;
    /// `false` once all are read. A damaged file fails the read ([`super::DamagedPartition`]):
    /// once healed, the read goes on where it stopped.
    pub async fn read_run<T: RowTable>(
        &self,
        prepared: &Prepared,
        runs: &mut StreamRuns,
        reading: &RunReading<'_>,
        symbols: &mut Symbols,
        table: &mut T,
    ) -> Result<bool> {
        table.clear();
        loop {
            let Some(&planned) = runs.parts.get(runs.part) else {
                return Ok(false);
            };
            let file = lock(&prepared.files)[planned].clone();
            let current = (runs.open.as_ref()).is_some_and(|open| open.key == file.key);
            if !current {
                runs.open = None;
                let open =
                    self.open_runs::<T>(prepared, (planned, runs.view), &file, reading, symbols);
                runs.open = Some(open.await?);
            }
            let open = runs.open.as_mut().expect("opened above");
            let Some((groups, first_row)) = open.runs.get(open.next).cloned() else {
                (runs.open, runs.part, runs.rows_done) = (None, runs.part + 1, 0);
                continue;
            };
            let run_end = (open.runs.get(open.next + 1)).map_or(usize::MAX, |&(_, row)| row);
            if run_end <= runs.rows_done {
                // Handed on before the file was rebuilt.
                (open.next, open.data) = (open.next + 1, None);
                continue;
            }
            let data = open.take_run(&self.store, planned, &file).await?;
            lock(&prepared.stats).bytes_read += data.bytes_held();
            let skip = runs.rows_done.saturating_sub(first_row);
            let read = open
                .file
                .read((data, &groups, skip), table, (runs.view, reading.clock));
            read.map_err(|e| undecodable(planned, &file, e))?;
            runs.rows_done = run_end;
            if !table.is_empty() {
                return Ok(true);
            }
        }
    }

    /// Opens a partition file to read it run by run, from its first run (which brings its
    /// footer); a read going on after a rebuild skips the runs handed on already.
    async fn open_runs<T: RowTable>(
        &self,
        prepared: &Prepared,
        (planned, view): (usize, View),
        file: &super::StoredFile,
        reading: &RunReading<'_>,
        symbols: &mut Symbols,
    ) -> Result<OpenRuns> {
        let ranges = file.ranges.as_deref().and_then(FileRanges::parse);
        let runs: Vec<Vec<usize>> = match &ranges {
            Some(ranges) => ranges
                .runs(run_bytes())
                .into_iter()
                .map(|(run, _)| run)
                .collect(),
            None => Vec::new(),
        };
        // A rebuilt file without ranges (none is written so) is read as one run.
        let first = runs.first().map(Vec::as_slice);
        let data = (self.fetch(prepared, (planned, first), file, reading.concurrency)).await?;
        let opened = RowGroupFile::open::<T>(&data, view, symbols, reading.block_position)
            .map_err(|e| undecodable(planned, file, e))?;
        let group_rows = opened.group_rows();
        let runs = match runs.is_empty() {
            true => vec![(0..group_rows.len()).collect()],
            false => runs,
        };
        let mut row = 0;
        let runs: Vec<(Vec<usize>, usize)> = (runs.into_iter())
            .map(|run| {
                let first_row = row;
                row += run
                    .iter()
                    .map(|&g| group_rows.get(g).copied().unwrap_or(0))
                    .sum::<usize>();
                (run, first_row)
            })
            .collect();
        Ok(OpenRuns {
            key: file.key.clone(),
            file: opened,
            runs,
            next: 0,
            data: Some(data),
            ahead: None,
        })
    }
}
