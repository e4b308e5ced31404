//! The export, orchestrated: read the lake's state → make the partitions current → assemble
//! and write the tracks of each kind of content → commit the output → summarize.
//!
//! Each step lives in its own module; this one only sequences them.

mod background;
mod output;
pub mod pipeline;
mod source;
mod state;
mod summary;
pub mod window;

use anyhow::Result;
use std::path::PathBuf;
use std::time::Instant;

use crate::assembly::{AssemblyStats, ProcessAssembler, ProcessData, process_heading};
use crate::lake::Lake;
use crate::partitions::{
    CacheRefused, EventsRequest, Layout, PartitionCache, PartitionStats, Prepared, View,
};
use crate::progress::Progress;
use crate::symbols::Symbols;
use crate::tracks::ProcessHeading;
use background::BackgroundWriter;
pub use output::OutputTarget;
use output::{Output, TraceOut};
pub use pipeline::Content;
use source::{Part, PartitionSource};
use state::{ProcessState, Shown, read_lake_state};
pub use summary::{ExportSummary, LogCounts, MetricCounts, ProcessEntry, SpanCounts};
pub use window::{TimePoint, Window};

#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// What the trace shows.
    pub contents: Vec<Content>,
    /// The time range shown (`--begin`, `--end`, `--last`).
    pub window: Window,
    /// `None`: `<process-id>.perfetto-trace` in the current directory.
    pub output: Option<OutputTarget>,
    /// Blocks fetched and decoded at once.
    pub concurrency: usize,
    /// Keep the partition cache here instead of with the lake.
    pub cache_dir: Option<PathBuf>,
    /// How partitions are cut.
    pub layout: Layout,
    /// Say, per partition, whether it was reused or (re)built and why.
    pub explain: bool,
    /// Compute the SHA-256 of the trace for the summary.
    pub checksum: bool,
    /// Add every descendant of the process, each as a process of its own.
    pub children: bool,
    /// Compress the trace with gzip.
    pub gzip: bool,
}

pub async fn export(
    lake: &Lake,
    process_arg: &str,
    options: &ExportOptions,
    progress: &Progress,
) -> Result<ExportSummary> {
    let started = Instant::now();
    if let Some(OutputTarget::File(path)) = &options.output {
        output::output_dir(path)?;
    }
    progress.stage("resolving process");
    let contents = &options.contents;
    let shown = Shown {
        spans: contents.iter().any(|c| c.is_spans()),
        logs: contents.iter().any(|c| matches!(c, Content::Logs { .. })),
        metrics: contents.contains(&Content::Metrics),
    };
    let (state, early) = tokio::join!(
        read_lake_state(lake, process_arg, shown, options.children),
        open_cache_early(lake, options, process_arg),
    );
    let state = state?;
    let root = &state.processes[0].process;
    let range = state.window_range(&options.window)?;
    let explain = |line: String| {
        if options.explain {
            progress.note(&line);
        }
        progress.stage(&format!("partitions: {line}"));
    };
    let views = Views::of(contents);
    let requests: Vec<Vec<EventsRequest>> = (state.processes.iter())
        .map(|process| views.requests(process, options.concurrency, &explain))
        .collect();
    let all_requests: Vec<&EventsRequest> = requests.iter().flatten().collect();
    let early = match early {
        Some((opened, warnings)) => {
            warnings.iter().for_each(|line| progress.warn(line));
            Some(opened?)
        }
        None => None,
    };
    let (cache, prepared) =
        prepare_partitions(lake, &all_requests, options, progress, early).await?;

    progress.stage("writing spans");
    let parts = Parts {
        lake,
        cache: &cache,
        requests: &requests,
        prepared: &prepared,
    };
    let mut assemblers = parts.assemblers(&state.processes, range);
    let target = options.output.clone().unwrap_or_else(|| {
        let gz = if options.gzip { ".gz" } else { "" };
        let name = format!("{}.perfetto-trace{gz}", root.process_id);
        OutputTarget::File(PathBuf::from(name))
    });
    let output = Output::open(&target)?;
    let out = TraceOut::new(output.writer()?, options.checksum, options.gzip);
    let out = BackgroundWriter::new(out);
    let written = pipeline::write_trace(&mut assemblers, &options.contents, out, progress)
        .await
        .map_err(|e| output.name_failure(e))?;
    let write_failed =
        |e| output.name_failure(anyhow::Error::new(e).context(pipeline::WriteFailed));
    let out = written.out.finish().map_err(write_failed)?;
    let (bytes, sha256) = out.finish().map_err(write_failed)?;
    output.commit()?;
    if written.bytes > large_trace_bytes() {
        progress.warn(&large_trace_hint(written.bytes));
    }

    let processes: Vec<ProcessEntry> = (state.processes.iter().zip(&assemblers).enumerate())
        .map(|(i, (p, (assembler, _)))| ProcessEntry::of(p, i, assembler.written_threads()))
        .collect();
    let mut stats = AssemblyStats::default();
    for (assembler, _) in &mut assemblers {
        stats.add(&assembler.stats);
        free_in_background(std::mem::take(&mut assembler.symbols));
    }
    let partition_stats = (prepared.iter()).fold(PartitionStats::default(), |mut all, p| {
        all.add(p.stats());
        all
    });
    Ok(ExportSummary {
        process_id: root.process_id.to_string(),
        exe: root.exe.clone(),
        processes,
        output: match &target {
            OutputTarget::Stdout => "-".into(),
            OutputTarget::File(p) => p.display().to_string(),
        },
        bytes,
        sha256,
        thread_tracks: written.thread_tracks,
        async_tracks: written.async_tracks,
        log_tracks: written.log_tracks,
        metric_tracks: written.metric_tracks,
        metrics: MetricCounts {
            series: stats.metric_series,
            samples: stats.metric_samples,
        },
        spans: SpanCounts::of(&stats),
        log_entries: LogCounts::of(&stats),
        clipped: summary::clipped(&stats),
        unfinished: stats.unfinished_async,
        oddities: stats,
        blocks_read: partition_stats.blocks_read,
        payload_bytes: partition_stats.payload_bytes,
        partitions_reused: partition_stats.reused,
        partitions_built: partition_stats.built,
        partition_files_read: partition_stats.files_read,
        partition_bytes_read: partition_stats.bytes_read,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// Above this many bytes (uncompressed), a trace takes the browser UI a minute or more to load:
/// measured with `ui-check` (Perfetto UI v52 in headless Chromium, 2 cores): 43 MB (1.1M
/// spans) and 129 MB (1M log entries) in about 33 s each on a busy machine, 422 MB (11M spans)
/// in about a minute. `WRITE_PERFETTO_LARGE_TRACE_BYTES` overrides it (tests).
const LARGE_TRACE_BYTES: u64 = 400_000_000;

fn large_trace_bytes() -> u64 {
    let set = std::env::var("WRITE_PERFETTO_LARGE_TRACE_BYTES").ok();
    set.and_then(|v| v.parse().ok())
        .unwrap_or(LARGE_TRACE_BYTES)
}

fn large_trace_hint(bytes: u64) -> String {
    format!(
        "the trace holds {} MB: the Perfetto UI in a browser takes a minute or more to load that \
         much and may run out of memory; narrow it (--begin/--end, --last 5m, --spans, --log-level) \
         or load it with trace_processor --httpd FILE and the UI's native acceleration",
        bytes / 1_000_000
    )
}

/// Frees the export's strings (millions of small allocations after a large export) on a thread
/// of their own: the summary and the exit need not wait for it.
fn free_in_background(symbols: Symbols) {
    let _ = std::thread::Builder::new()
        .name("free".into())
        .spawn(move || drop(symbols));
}

/// The prepared partitions of every process, to read them from.
struct Parts<'a> {
    lake: &'a Lake,
    cache: &'a PartitionCache,
    /// Per process, in trace order.
    requests: &'a [Vec<EventsRequest<'a>>],
    /// Per request, all processes' in a row.
    prepared: &'a [Prepared],
}

impl<'a> Parts<'a> {
    /// An assembler (and the process's heading) per process, reading its own partitions.
    fn assemblers(
        &self,
        processes: &'a [ProcessState],
        range: Option<(i64, i64)>,
    ) -> Vec<(ProcessAssembler<'a, PartitionSource<'a>>, ProcessHeading)> {
        let mut prepared = self.prepared.iter();
        let with_requests = processes.iter().zip(self.requests);
        let build = |(process, requests): (&'a ProcessState, &'a Vec<EventsRequest<'a>>)| {
            let source = PartitionSource {
                lake: self.lake,
                cache: self.cache,
                clock: &process.clock,
                parts: (requests.iter())
                    .zip(prepared.by_ref())
                    .map(|(r, p)| Part::new(r, p))
                    .collect(),
                range,
            };
            let data = process_data(process, range);
            let assembler = ProcessAssembler::new(source, data, Symbols::new());
            (assembler, process_heading(&process.process))
        };
        with_requests.map(build).collect()
    }
}

/// The partition views of each kind of stream the contents read.
struct Views {
    spans: Vec<View>,
    logs: Vec<View>,
    metrics: Vec<View>,
}

impl Views {
    fn of(contents: &[Content]) -> Self {
        let views_of = |kind: fn(&Content) -> bool| -> Vec<View> {
            contents
                .iter()
                .filter(|c| kind(c))
                .map(|c| c.view())
                .collect()
        };
        Self {
            spans: views_of(|c| c.is_spans()),
            logs: views_of(|c| matches!(c, Content::Logs { .. })),
            metrics: views_of(|c| *c == Content::Metrics),
        }
    }

    /// What the process's partitions must hold: one request per kind of stream read.
    fn requests<'a>(
        &'a self,
        process: &'a ProcessState,
        concurrency: usize,
        explain: &'a (dyn Fn(String) + Sync),
    ) -> Vec<EventsRequest<'a>> {
        [
            (&process.threads, &self.spans),
            (&process.logs, &self.logs),
            (&process.metrics, &self.metrics),
        ]
        .into_iter()
        .filter(|(_, views)| !views.is_empty())
        .map(|(streams, views)| EventsRequest {
            process_id: process.process.process_id,
            streams: &streams.streams,
            blocks: &streams.blocks,
            views,
            concurrency,
            explain,
        })
        .collect()
    }
}

fn process_data(state: &ProcessState, range: Option<(i64, i64)>) -> ProcessData<'_> {
    ProcessData {
        process_id: state.process.process_id,
        streams: &state.threads.streams,
        blocks: &state.threads.blocks,
        clock: &state.clock,
        range,
    }
}

/// Opens the partition cache and makes the requests' partitions current there; a lake whose
/// store refuses the cache's files sends it to the per-user cache.
/// The partition cache, opened while the lake's state is read, with the live rows of the
/// process asked for when the argument is a whole process id. A remote catalog's opening is a
/// few round trips, which then overlap; a local one that exists already is read on its own
/// thread while the lake's block list is (a 10 s window of an 8-hour process: 13 ms each). A
/// local cache is not created early: an export that fails on its argument leaves none. What
/// opening it warns of comes back with it, to be said only once the process is found (an
/// export that fails on its argument says just that).
async fn open_cache_early(
    lake: &Lake,
    options: &ExportOptions,
    process_arg: &str,
) -> Option<(Result<PartitionCache>, Vec<String>)> {
    let process_id = uuid::Uuid::parse_str(process_arg).ok();
    let cache_dir = options.cache_dir.as_deref();
    let early = match (&lake.location, cache_dir) {
        (crate::lake::LakeLocation::Postgres { .. }, None) => true,
        _ => {
            let catalog = PartitionCache::local_catalog(lake, cache_dir);
            process_id.is_some() && catalog.is_some_and(|path| path.is_file())
        }
    };
    if !early {
        return None;
    }
    let warnings = std::sync::Mutex::new(Vec::new());
    let warn = |line: &str| {
        let mut warnings = warnings.lock().unwrap_or_else(|p| p.into_inner());
        warnings.push(line.to_string());
    };
    let opened = PartitionCache::open(lake, cache_dir, options.layout, &warn, process_id).await;
    Some((
        opened,
        warnings.into_inner().unwrap_or_else(|p| p.into_inner()),
    ))
}

async fn prepare_partitions(
    lake: &Lake,
    requests: &[&EventsRequest<'_>],
    options: &ExportOptions,
    progress: &Progress,
    opened: Option<PartitionCache>,
) -> Result<(PartitionCache, Vec<Prepared>)> {
    let warn = |line: &str| progress.warn(line);
    let layout = options.layout;
    let cache_dir = options.cache_dir.as_deref();
    let mut cache = match opened {
        Some(cache) => cache,
        None => PartitionCache::open(lake, cache_dir, layout, &warn, None).await?,
    };
    let blocks = requests.iter().flat_map(|r| r.blocks.iter());
    let (count, bytes) = blocks.fold((0, 0), |(n, b), block| {
        (n + 1, b + block.payload_size.max(0))
    });
    progress.stage(&format!(
        "partitions: {count} blocks, {} MB",
        bytes / 1_000_000
    ));
    let prepared = match prepare_all(&cache, lake, requests).await {
        // The lake's store refused the probe file: nothing was built or recorded.
        Err(e) if e.downcast_ref::<CacheRefused>().is_some() && cache_dir.is_none() => {
            let why = crate::error::one_line(&e);
            cache = PartitionCache::fallback(lake, layout, &warn, &why).await?;
            prepare_all(&cache, lake, requests).await?
        }
        prepared => prepared?,
    };
    if prepared.iter().any(|p| p.stats().built > 0) {
        crate::memory::give_back_freed();
    }
    Ok((cache, prepared))
}

async fn prepare_all(
    cache: &PartitionCache,
    lake: &Lake,
    requests: &[&EventsRequest<'_>],
) -> Result<Vec<Prepared>> {
    let mut prepared = Vec::with_capacity(requests.len());
    for request in requests {
        prepared.push(cache.prepare(lake, request).await?);
    }
    Ok(prepared)
}
