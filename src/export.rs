//! The export pipeline: resolve the process → read each thread stream's events → assemble
//! tracks → write the trace atomically → summarize.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::assembly::{self, AssemblyOptions, AssemblyStats, Chain, ThreadData, TimedEvent};
use crate::clock::Clock;
use crate::error::{FailureKind, failure};
use crate::lake::rows::{BlockRow, StreamRow};
use crate::lake::{Lake, resolve_process};
use crate::partitions::plan::View;
use crate::partitions::{EventsRequest, PartitionCache, PartitionStats};
use crate::progress::Progress;
use crate::{cleanup, trace};
use std::collections::HashMap;

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
    pub sha256: String,
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
    let process = resolve_process(&lake.metadata, process_arg).await?;
    let streams = lake.metadata.thread_streams(&process.process_id).await?;
    if streams.is_empty() {
        return Err(failure(
            FailureKind::ProcessNotFound,
            format!(
                "process {} has no thread streams (tag `cpu`): it recorded no spans to export",
                process.process_id
            ),
        ));
    }
    let blocks = lake.metadata.thread_blocks(&process.process_id).await?;
    let clock = Clock::for_process(
        &process,
        lake.metadata.block_end_bounds(&process.process_id).await?,
    )?;
    let range = time_range(options)?;

    let (threads, partition_stats) = read_threads(
        lake,
        process.process_id,
        &streams,
        &blocks,
        &clock,
        options,
        progress,
    )
    .await?;
    progress.stage("assembling spans");
    let assembly_options = AssemblyOptions {
        thread_spans: options.spans != SpanKinds::Async,
        async_spans: options.spans != SpanKinds::Thread,
        range,
    };
    let timeline = assembly::assemble(process_name(&process.exe), &threads, &assembly_options);

    progress.stage("writing trace");
    let target = options.output.clone().unwrap_or_else(|| {
        OutputTarget::File(PathBuf::from(format!(
            "{}.perfetto-trace",
            process.process_id
        )))
    });
    let (bytes, sha256) = match &target {
        OutputTarget::Stdout => write_to(&timeline, std::io::stdout().lock())?,
        OutputTarget::File(path) => write_file_atomically(&timeline, path)?,
    };
    let stats = timeline.stats.clone();
    Ok(ExportSummary {
        process_id: process.process_id.to_string(),
        exe: process.exe.clone(),
        output: match &target {
            OutputTarget::Stdout => "-".into(),
            OutputTarget::File(p) => p.display().to_string(),
        },
        bytes,
        sha256,
        thread_tracks: timeline.threads.len(),
        async_tracks: timeline.async_tracks.len(),
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
fn thread_display_name(stream: &StreamRow) -> Arc<str> {
    let property = |key: &str| {
        stream
            .properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let id = property("thread-id");
    let name = match (property("thread-name").filter(|n| !n.is_empty()), id) {
        (Some(name), Some(id)) => format!("{name} [{id}]"),
        (Some(name), None) => name.to_string(),
        (None, Some(id)) => format!("thread {id}"),
        (None, None) => format!("stream {}", stream.stream_id),
    };
    Arc::from(name)
}

/// The events of every thread stream, through the partition cache, grouped back into each
/// stream's chains of contiguous blocks.
async fn read_threads(
    lake: &Lake,
    process_id: uuid::Uuid,
    streams: &[StreamRow],
    blocks: &[BlockRow],
    clock: &Clock,
    options: &ExportOptions,
    progress: &Progress,
) -> Result<(Vec<ThreadData>, PartitionStats)> {
    let cache =
        PartitionCache::open(lake, options.cache_dir.as_deref(), options.bucket_seconds).await?;
    let views: Vec<View> = match options.spans {
        SpanKinds::Thread => vec![View::ThreadSpans],
        SpanKinds::Async => vec![View::AsyncEvents],
        SpanKinds::Both => vec![View::ThreadSpans, View::AsyncEvents],
    };
    progress.stage(&format!(
        "partitions: {} blocks, {} MB",
        blocks.len(),
        blocks.iter().map(|b| b.payload_size.max(0)).sum::<i64>() / 1_000_000
    ));
    let explain = |line: String| {
        if options.explain {
            eprintln!("{line}");
        }
    };
    let request = EventsRequest {
        process_id,
        streams,
        blocks,
        views: &views,
        concurrency: options.concurrency,
        explain: &explain,
    };
    let events = cache.process_events(lake, &request).await?;
    let mut by_block: HashMap<uuid::Uuid, Vec<TimedEvent>> = HashMap::new();
    for row in events.rows {
        by_block.entry(row.block_id).or_default().push(TimedEvent {
            ns: clock.event_ns(row.event.ticks),
            event: row.event,
        });
    }
    let threads = streams
        .iter()
        .map(|stream| {
            let decoded = blocks
                .iter()
                .filter(|b| b.stream_id == stream.stream_id)
                .map(|b| DecodedBlock {
                    begin_ns: clock.relative_ns(b.begin_ticks),
                    end_ns: clock.relative_ns(b.end_ticks.max(b.begin_ticks)),
                    events: by_block.remove(&b.block_id).unwrap_or_default(),
                    block: b.clone(),
                })
                .collect();
            ThreadData {
                display_name: thread_display_name(stream),
                chains: chains(decoded),
            }
        })
        .collect();
    Ok((threads, events.stats))
}

/// A block's events with times in ns, and its bounds.
struct DecodedBlock {
    block: BlockRow,
    begin_ns: i64,
    end_ns: i64,
    events: Vec<TimedEvent>,
}

/// Splits a stream's blocks into runs without a gap in `object_offset`.
fn chains(blocks: Vec<DecodedBlock>) -> Vec<Chain> {
    let mut chains: Vec<Chain> = Vec::new();
    let mut expected_offset: Option<i64> = None;
    for block in blocks {
        let contiguous = expected_offset == Some(block.block.object_offset);
        expected_offset = Some(block.block.object_offset + block.block.nb_objects as i64);
        match chains.last_mut() {
            Some(chain) if contiguous => {
                chain.end_ns = chain.end_ns.max(block.end_ns);
                chain.events.extend(block.events);
            }
            _ => chains.push(Chain {
                begin_ns: block.begin_ns,
                end_ns: block.end_ns,
                events: block.events,
            }),
        }
    }
    chains
}

/// Hashes what passes through.
struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn write_to(timeline: &assembly::Timeline, out: impl Write) -> Result<(u64, String)> {
    let mut writer = HashingWriter {
        inner: std::io::BufWriter::with_capacity(1 << 20, out),
        hasher: Sha256::new(),
    };
    let bytes = trace::write_trace(timeline, &mut writer).context("cannot write the trace")?;
    writer.flush().context("cannot write the trace")?;
    Ok((bytes, hex(&writer.hasher.finalize())))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

/// Writes next to the destination under a temporary name, then renames: the destination only
/// ever holds a complete trace, and a failed or interrupted run leaves nothing behind.
fn write_file_atomically(timeline: &assembly::Timeline, path: &Path) -> Result<(u64, String)> {
    let dir = output_dir(path)?;
    let temp = cleanup::TempFile::create_in(&dir).map_err(|e| {
        failure(
            FailureKind::Io,
            format!("cannot create a file in {}: {e}", dir.display()),
        )
    })?;
    let (bytes, sha) = write_to(timeline, temp.file())
        .and_then(|written| {
            temp.file()
                .sync_all()
                .context("cannot flush the trace to disk")?;
            Ok(written)
        })
        .map_err(|e| {
            failure(
                FailureKind::Io,
                format!(
                    "cannot write {}: {}",
                    path.display(),
                    crate::error::one_line(&e)
                ),
            )
        })?;
    temp.persist(path).map_err(|e| {
        failure(
            FailureKind::Io,
            format!("cannot move the trace to {}: {e}", path.display()),
        )
    })?;
    Ok((bytes, sha))
}
