//! The export pipeline: resolve the process → read each thread stream's events → assemble
//! tracks → write the trace atomically → summarize.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::assembly::timeline::{AsyncTrack, ThreadTrack};
use crate::assembly::{self, AssemblyStats, AsyncEvents, Chain, ThreadData};
use crate::cleanup;
use crate::clock::Clock;
use crate::error::{FailureKind, failure};
use crate::lake::rows::{BlockRow, ProcessRow, StreamRow};
use crate::lake::{Lake, MetadataReads, resolve_process};
use crate::partitions::plan::View;
use crate::partitions::{
    CacheRefused, DamagedPartition, EventTable, EventsRequest, PartitionCache, Prepared,
};
use crate::progress::Progress;
use crate::symbols::{Sym, Symbols};
use crate::trace::TraceWriter;

/// Which spans go into the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpanKinds {
    Thread,
    Async,
    Both,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OutputTarget {
    File(PathBuf),
    Stdout,
}

#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub spans: SpanKinds,
    pub begin: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    /// `None`: `<process-id>.perfetto-trace` in the current directory.
    pub output: Option<OutputTarget>,
    /// Blocks fetched and decoded at once.
    pub concurrency: usize,
    /// Keep the partition cache here instead of with the lake.
    pub cache_dir: Option<PathBuf>,
    /// Insert-time width of a partition.
    pub bucket_seconds: i64,
    /// Say, per partition, whether it was reused or (re)built and why.
    pub explain: bool,
    /// Compute the SHA-256 of the trace for the summary.
    pub checksum: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SpanCounts {
    pub thread: u64,
    #[serde(rename = "async")]
    pub async_: u64,
}

/// The `--json` summary.
#[derive(Debug, Clone, Serialize)]
pub struct ExportSummary {
    pub process_id: String,
    pub exe: String,
    pub output: String,
    pub bytes: u64,
    /// Computed when asked for (`--json`).
    pub sha256: Option<String>,
    pub thread_tracks: usize,
    pub async_tracks: usize,
    pub spans: SpanCounts,
    pub clipped: u64,
    pub unfinished: u64,
    pub oddities: AssemblyStats,
    pub blocks_read: u64,
    pub payload_bytes: u64,
    pub partitions_reused: u64,
    pub partitions_built: u64,
    pub elapsed_ms: u64,
}

pub async fn export(
    lake: &Lake,
    process_arg: &str,
    options: &ExportOptions,
    progress: &Progress,
) -> Result<ExportSummary> {
    let started = Instant::now();
    if let Some(OutputTarget::File(path)) = &options.output {
        output_dir(path)?;
    }
    progress.stage("resolving process");
    let LakeState {
        process,
        streams,
        blocks,
        clock,
    } = read_lake_state(lake, process_arg).await?;
    let range = time_range(options)?;

    let warn = |line: &str| progress.warn(line);
    let mut cache = PartitionCache::open(
        lake,
        options.cache_dir.as_deref(),
        options.bucket_seconds,
        &warn,
    )
    .await?;
    let views: Vec<View> = match options.spans {
        SpanKinds::Thread => vec![View::ThreadSpans],
        SpanKinds::Async => vec![View::AsyncEvents],
        SpanKinds::Both => vec![View::ThreadSpans, View::AsyncEvents],
    };
    let payload_mb = blocks.iter().map(|b| b.payload_size.max(0)).sum::<i64>() / 1_000_000;
    progress.stage(&format!(
        "partitions: {} blocks, {payload_mb} MB",
        blocks.len()
    ));
    let explain = |line: String| {
        if options.explain {
            progress.note(&line);
        }
        progress.stage(&format!("partitions: {line}"));
    };
    let request = EventsRequest {
        process_id: process.process_id,
        streams: &streams,
        blocks: &blocks,
        views: &views,
        concurrency: options.concurrency,
        explain: &explain,
    };
    let prepared = match cache.prepare(lake, &request).await {
        // The lake's store refused the probe file: nothing was built or recorded.
        Err(e) if e.downcast_ref::<CacheRefused>().is_some() && options.cache_dir.is_none() => {
            let why = crate::error::one_line(&e);
            cache = PartitionCache::fallback(lake, options.bucket_seconds, &warn, &why).await?;
            cache.prepare(lake, &request).await?
        }
        prepared => prepared?,
    };
    if prepared.stats().built > 0 {
        crate::memory::give_back_freed();
    }

    progress.stage("writing spans");
    let source = Source {
        lake,
        request: &request,
        cache: &cache,
        prepared: &prepared,
        process_id: process.process_id,
        streams: &streams,
        blocks: &blocks,
        clock,
        options,
        range,
        progress,
    };
    let name = process_name(&process.exe);
    let target = options.output.clone().unwrap_or_else(|| {
        OutputTarget::File(PathBuf::from(format!(
            "{}.perfetto-trace",
            process.process_id
        )))
    });
    let written = match &target {
        OutputTarget::Stdout => write_tracks(&source, &name, std::io::stdout()).await?,
        OutputTarget::File(path) => write_file(&source, &name, path).await?,
    };
    let stats = written.stats;
    let partition_stats = prepared.stats();
    Ok(ExportSummary {
        process_id: process.process_id.to_string(),
        exe: process.exe.clone(),
        output: match &target {
            OutputTarget::Stdout => "-".into(),
            OutputTarget::File(p) => p.display().to_string(),
        },
        bytes: written.bytes,
        sha256: written.sha256,
        thread_tracks: written.thread_tracks,
        async_tracks: written.async_tracks,
        spans: SpanCounts {
            thread: stats.thread_spans,
            async_: stats.async_spans,
        },
        clipped: stats.clipped_begin
            + stats.clipped_end
            + stats.cut_at_gap
            + stats.closed_with_parent,
        unfinished: stats.unfinished_async,
        oddities: stats,
        blocks_read: partition_stats.blocks_read,
        payload_bytes: partition_stats.payload_bytes,
        partitions_reused: partition_stats.reused,
        partitions_built: partition_stats.built,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// What the export reads of the metadata, all as of one instant.
struct LakeState {
    process: ProcessRow,
    /// Thread streams, in stream id order.
    streams: Vec<StreamRow>,
    /// Their blocks, ordered by stream, object offset, block id.
    blocks: Vec<BlockRow>,
    clock: Clock,
}

/// Reads the process, its thread streams and blocks, and the clock's bounds in one snapshot:
/// a process still being ingested shows one consistent state, whatever arrives meanwhile.
async fn read_lake_state(lake: &Lake, process_arg: &str) -> Result<LakeState> {
    let snapshot = lake.metadata.snapshot().await?;
    let process = resolve_process(&snapshot, process_arg).await?;
    let streams = snapshot.thread_streams(&process.process_id).await?;
    let no_data = |what: &str| {
        failure(
            FailureKind::ProcessNotFound,
            format!("process {} {what}", process.process_id),
        )
    };
    if streams.is_empty() {
        return Err(no_data(
            "has no thread streams (tag `cpu`): it recorded no spans to export",
        ));
    }
    // One snapshot: every block listed has its stream listed too (the query joins them).
    let blocks = snapshot.thread_blocks(&process.process_id).await?;
    if blocks.is_empty() {
        return Err(no_data(
            "has no span data yet: its thread streams have no block (it may still be starting)",
        ));
    }
    let bounds = snapshot.block_end_bounds(&process.process_id).await?;
    snapshot.close().await?;
    let clock = Clock::for_process(&process, bounds)?;
    Ok(LakeState {
        process,
        streams,
        blocks,
        clock,
    })
}

/// Where the tracks' events come from.
struct Source<'a> {
    lake: &'a Lake,
    /// What was asked of the partitions (to rebuild one found damaged).
    request: &'a EventsRequest<'a>,
    cache: &'a PartitionCache,
    prepared: &'a Prepared,
    process_id: uuid::Uuid,
    streams: &'a [StreamRow],
    blocks: &'a [BlockRow],
    clock: Clock,
    options: &'a ExportOptions,
    range: Option<(i64, i64)>,
    progress: &'a Progress,
}

/// What writing the trace produced.
struct Written {
    bytes: u64,
    sha256: Option<String>,
    thread_tracks: usize,
    async_tracks: usize,
    stats: AssemblyStats,
}

/// Streams the trace: one thread at a time (read its partitions, pair, write, drop), then
/// the async spans of the process.
async fn write_tracks(
    source: &Source<'_>,
    process_name: &str,
    out: impl Write + Send + 'static,
) -> Result<Written> {
    // Hash what leaves the buffer: large chunks, not one call per packet.
    let hashing = HashingWriter {
        inner: out,
        hasher: source.options.checksum.then(Sha256::new),
    };
    // The trace writer gathers packets into large writes itself: no `BufWriter` (an extra copy).
    let mut writer = TraceWriter::new(hashing, 1, process_name).context(WriteFailed)?;
    let mut reader = Reader::new(source);
    let mut thread_tracks = 0;
    if source.options.spans != SpanKinds::Async {
        (writer, thread_tracks) = write_thread_tracks(&mut reader, writer).await?;
    }
    let async_tracks = if source.options.spans != SpanKinds::Thread {
        // What the thread stage freed goes back first: the async stage has the highest peak.
        crate::memory::give_back_freed();
        let tracks = reader.async_tracks().await?;
        writer
            .async_tracks(&reader.symbols, &tracks)
            .context(WriteFailed)?;
        tracks.len()
    } else {
        0
    };
    let (bytes, hashing) = writer.finish().context(WriteFailed)?;
    Ok(Written {
        bytes,
        sha256: hashing.hasher.map(|h| format!("{:x}", h.finalize())),
        thread_tracks,
        async_tracks,
        stats: reader.stats,
    })
}

/// A thread track, and the strings interned while reading it (for the encoder's copy of the
/// symbols).
struct ReadTrack {
    track: ThreadTrack,
    new_strings: Vec<Arc<str>>,
}

/// Writes the thread tracks on two cores: this task reads and pairs a thread while a blocking
/// thread encodes the one before. At most two tracks are alive at once: the reader starts the
/// next one only when the encoder has taken the last. Returns the writer and how many tracks
/// had spans.
async fn write_thread_tracks<W: Write + Send + 'static>(
    reader: &mut Reader<'_>,
    mut writer: TraceWriter<W>,
) -> Result<(TraceWriter<W>, usize)> {
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<ReadTrack>(1);
    let mut symbols = reader.symbols.clone();
    let encoder = tokio::task::spawn_blocking(move || {
        let mut tracks = 0;
        while let Some(read) = receiver.blocking_recv() {
            symbols.append(read.new_strings);
            if let Err(e) = writer.thread_track(&symbols, &read.track) {
                return (writer, Err(e.context(WriteFailed)));
            }
            crate::pause::at(crate::pause::Point::ThreadTrackWritten);
            tracks += 1;
        }
        (writer, Ok(tracks))
    });
    let read = read_thread_tracks(reader, sender).await;
    let (writer, encoded) = encoder
        .await
        .map_err(|e| crate::error::task_failed("the trace encoder", e))?;
    // A failed write stops the reading: its error comes first.
    let tracks = encoded?;
    read?;
    Ok((writer, tracks))
}

async fn read_thread_tracks(
    reader: &mut Reader<'_>,
    sender: tokio::sync::mpsc::Sender<ReadTrack>,
) -> Result<()> {
    let source = reader.source;
    let mut tid = assembly::FIRST_TID;
    // What the encoder's copy of the symbols holds (strings of threads without a track
    // included: they go with the next track).
    let mut sent = reader.symbols.count();
    for k in 0..source.streams.len() {
        let Ok(permit) = sender.reserve().await else {
            return Ok(()); // the encoder stopped; it says why
        };
        if let Some(track) = reader.thread_track(k, tid).await? {
            tid += 1;
            let new_strings = reader.symbols.interned_since(sent);
            sent = reader.symbols.count();
            permit.send(ReadTrack { track, new_strings });
        }
        let done = format!(
            "{} thread spans, thread {} of {}",
            reader.stats.thread_spans,
            k + 1,
            source.streams.len()
        );
        source.progress.stage(&format!("writing spans: {done}"));
    }
    Ok(())
}

/// Reads and assembles the tracks: symbols, per-block lookups, and the counts of assembly.
struct Reader<'a> {
    source: &'a Source<'a>,
    symbols: Symbols,
    stats: AssemblyStats,
    block_position: HashMap<uuid::Uuid, u32>,
    thread_names: HashMap<uuid::Uuid, Sym>,
    /// The thread (display name) of each block, by position: async events find theirs by it.
    block_threads: Vec<Sym>,
    /// One table for all reads: its buffers are reused instead of reallocated.
    table: EventTable,
}

impl<'a> Reader<'a> {
    fn new(source: &'a Source<'a>) -> Self {
        let mut symbols = Symbols::new();
        let block_position = source
            .blocks
            .iter()
            .enumerate()
            .map(|(i, b)| (b.block_id, i as u32))
            .collect();
        let thread_names = source
            .streams
            .iter()
            .map(|s| (s.stream_id, symbols.intern(&thread_display_name(s))))
            .collect::<HashMap<_, _>>();
        let block_threads = source
            .blocks
            .iter()
            .map(|b| thread_names.get(&b.stream_id).copied().unwrap_or_default())
            .collect();
        Self {
            source,
            symbols,
            stats: AssemblyStats::default(),
            block_position,
            thread_names,
            block_threads,
            table: EventTable::default(),
        }
    }

    /// Reads a view instance's partitions into the table; a damaged partition file is
    /// rebuilt and the instance read again.
    async fn read(&mut self, view: View, instance: uuid::Uuid) -> Result<()> {
        let source = self.source;
        loop {
            let files = source.prepared.files(view, instance);
            let read = source
                .cache
                .read_events(
                    files,
                    &mut self.symbols,
                    &self.block_position,
                    &source.clock,
                    source.options.concurrency,
                    &mut self.table,
                )
                .await;
            let Err(e) = read else { return Ok(()) };
            let Some(damaged) = e.downcast_ref::<DamagedPartition>() else {
                return Err(e);
            };
            source
                .cache
                .heal(source.lake, source.request, source.prepared, damaged)
                .await?;
        }
    }

    /// The track of the `k`th thread stream, `None` when it has no span in the range.
    async fn thread_track(&mut self, k: usize, tid: i32) -> Result<Option<ThreadTrack>> {
        let source = self.source;
        let stream = &source.streams[k];
        self.read(View::ThreadSpans, stream.stream_id).await?;
        let chains = chains(source, stream, &self.table.orders)?;
        let thread = ThreadData {
            display_name: self
                .thread_names
                .get(&stream.stream_id)
                .copied()
                .unwrap_or_default(),
            events: std::mem::take(&mut self.table.events),
            async_ids: Vec::new(),
            chains,
        };
        let track = assembly::thread_track(&thread, tid, source.range, &mut self.stats);
        self.table.events = thread.events;
        Ok(track)
    }

    /// The async lanes of the process.
    async fn async_tracks(&mut self) -> Result<Vec<AsyncTrack>> {
        let source = self.source;
        source.progress.stage(&format!(
            "writing spans: {} thread spans, now the async spans",
            self.stats.thread_spans
        ));
        self.read(View::AsyncEvents, source.process_id).await?;
        let table = std::mem::take(&mut self.table);
        let block_threads = &self.block_threads;
        let thread_of = |order: u64| block_threads[(order >> 32) as usize];
        let events = AsyncEvents {
            events: table.events,
            ids: table.ids,
            orders: table.orders,
            thread_of: &thread_of,
        };
        let bounds = source.blocks.iter().map(|b| source.clock.block_bounds(b));
        let (data_begin, data_end) = bounds.fold((i64::MAX, i64::MIN), |(b, e), (bb, be)| {
            (b.min(bb), e.max(be))
        });
        Ok(assembly::async_tracks(
            events,
            (data_begin, data_end),
            source.range,
            &mut self.stats,
        ))
    }
}

/// Splits a stream's blocks into runs without a gap in `object_offset`, each with the range
/// of its events (`orders`: the stream's event places, in stream order).
fn chains(source: &Source<'_>, stream: &StreamRow, orders: &[u64]) -> Result<Vec<Chain>> {
    let mut chains: Vec<Chain> = Vec::new();
    let mut expected_offset: Option<i64> = None;
    let mut next = 0;
    for (position, block) in source
        .blocks
        .iter()
        .enumerate()
        .filter(|(_, b)| b.stream_id == stream.stream_id)
    {
        let (begin_ns, end_ns) = source.clock.block_bounds(block);
        let contiguous = expected_offset == Some(block.object_offset);
        expected_offset = Some(
            block
                .object_offset
                .checked_add(i64::from(block.nb_objects))
                .ok_or_else(|| {
                    failure(
                        FailureKind::LakeData,
                        format!(
                            "bad lake metadata: block {} of stream {} has object_offset {} and nb_objects {}, whose sum is out of range",
                            block.block_id, block.stream_id, block.object_offset, block.nb_objects
                        ),
                    )
                })?,
        );
        let chain = match chains.last_mut() {
            Some(chain) if contiguous => {
                chain.end_ns = chain.end_ns.max(end_ns);
                chain
            }
            _ => {
                chains.push(Chain {
                    begin_ns,
                    end_ns,
                    events: next..next,
                });
                chains.last_mut().expect("pushed on the line above")
            }
        };
        while orders
            .get(next)
            .is_some_and(|&order| (order >> 32) as usize == position)
        {
            next += 1;
        }
        chain.events.end = next;
    }
    Ok(chains)
}

fn time_range(options: &ExportOptions) -> Result<Option<(i64, i64)>> {
    if options.begin.is_none() && options.end.is_none() {
        return Ok(None);
    }
    let ns = |t: &DateTime<Utc>| {
        t.timestamp_nanos_opt()
            .ok_or_else(|| failure(FailureKind::Usage, format!("time {t} is out of range")))
    };
    let begin = options
        .begin
        .as_ref()
        .map(ns)
        .transpose()?
        .unwrap_or(i64::MIN);
    let end = options
        .end
        .as_ref()
        .map(ns)
        .transpose()?
        .unwrap_or(i64::MAX);
    if begin > end {
        return Err(failure(FailureKind::Usage, "--begin is after --end"));
    }
    Ok(Some((begin, end)))
}

/// The executable's file name, the way people name their process.
fn process_name(exe: &str) -> String {
    let name = exe.rsplit(['/', '\\']).next().unwrap_or(exe);
    if name.is_empty() {
        "process".into()
    } else {
        name.to_string()
    }
}

/// `thread-name`, else `thread <thread-id>`; the 64-bit thread id always stays visible.
fn thread_display_name(stream: &StreamRow) -> String {
    let property = |key: &str| {
        stream
            .properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let id = property("thread-id");
    match (property("thread-name").filter(|n| !n.is_empty()), id) {
        (Some(name), Some(id)) => format!("{name} [{id}]"),
        (Some(name), None) => name.to_string(),
        (None, Some(id)) => format!("thread {id}"),
        (None, None) => format!("stream {}", stream.stream_id),
    }
}

/// Hashes what passes through.
struct HashingWriter<W: Write> {
    inner: W,
    /// `None` when nobody asked for the checksum: hashing is 5% of an export.
    hasher: Option<Sha256>,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The directory the trace goes to, checked before any work is done.
fn output_dir(path: &Path) -> Result<PathBuf> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if dir.exists() && !dir.is_dir() {
        return Err(failure(
            FailureKind::Io,
            format!(
                "cannot write {}: {} is not a directory",
                path.display(),
                dir.display()
            ),
        ));
    }
    if !dir.is_dir() {
        return Err(failure(
            FailureKind::Io,
            format!(
                "cannot write {}: output directory {} does not exist",
                path.display(),
                dir.display()
            ),
        ));
    }
    if path.is_dir() {
        return Err(failure(
            FailureKind::Io,
            format!("cannot write {}: it is a directory", path.display()),
        ));
    }
    Ok(dir)
}

/// Writes the trace to a file path: a regular file (new or replaced) atomically, through a
/// symbolic link to where it points, and into a device or pipe (`/dev/null`, a FIFO) in
/// place: renaming over those would replace them with a regular file.
async fn write_file(source: &Source<'_>, process_name: &str, path: &Path) -> Result<Written> {
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() && !meta.is_dir() => {
            write_in_place(source, process_name, path).await
        }
        // A dangling link is replaced like a missing file.
        _ => {
            let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
            write_file_atomically(source, process_name, &target).await
        }
    }
}

async fn write_in_place(source: &Source<'_>, process_name: &str, path: &Path) -> Result<Written> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| cannot_write(path, e))?;
    write_tracks_to(source, process_name, file, path).await
}

/// Writes the trace into `file`; an I/O failure names `path`, where the user expects it.
async fn write_tracks_to(
    source: &Source<'_>,
    process_name: &str,
    file: std::fs::File,
    path: &Path,
) -> Result<Written> {
    write_tracks(source, process_name, file).await.map_err(|e| {
        match e.downcast_ref::<WriteFailed>() {
            Some(_) => cannot_write(path, e.root_cause()),
            None => e,
        }
    })
}

/// Marks the failures of writing the trace itself, as opposed to reading what goes in it:
/// only those are "cannot write PATH".
#[derive(Debug)]
struct WriteFailed;

impl std::fmt::Display for WriteFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cannot write the trace")
    }
}

fn cannot_write(path: &Path, e: impl std::fmt::Display) -> anyhow::Error {
    failure(
        FailureKind::Io,
        format!("cannot write {}: {e}", path.display()),
    )
}

/// Writes next to the destination under a temporary name, then renames: the destination only
/// ever holds a complete trace, and a failed or interrupted run leaves nothing behind.
async fn write_file_atomically(
    source: &Source<'_>,
    process_name: &str,
    path: &Path,
) -> Result<Written> {
    let dir = output_dir(path)?;
    let temp = cleanup::TempFile::create_in(&dir).map_err(|e| {
        failure(
            FailureKind::Io,
            format!("cannot create a file in {}: {e}", dir.display()),
        )
    })?;
    let output = temp.file().try_clone().map_err(|e| cannot_write(path, e))?;
    let written = write_tracks_to(source, process_name, output, path).await?;
    temp.file().sync_all().map_err(|e| cannot_write(path, e))?;
    temp.persist(path).map_err(|e| {
        failure(
            FailureKind::Io,
            format!("cannot move the trace to {}: {e}", path.display()),
        )
    })?;
    Ok(written)
}
