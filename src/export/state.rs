//! What an export reads of the lake's metadata, all as of one instant, and the time range
//! it was asked for.

use anyhow::Result;

use super::window::Window;
use crate::clock::Clock;
use crate::error::{FailureKind, failure};
use crate::lake::rows::{
    BlockRow, LOG_STREAMS, METRIC_STREAMS, ProcessRow, StreamKind, StreamRow, THREAD_STREAMS,
    end_bounds, of_streams,
};
use crate::lake::{Lake, MetadataReads, Snapshot, resolve_process};

/// The processes of the export (the one asked for, then with `--children` its descendants by
/// start time, then id), as of one snapshot.
pub struct LakeState {
    /// Those with data to show, in trace order; never empty.
    pub processes: Vec<ProcessState>,
}

impl LakeState {
    /// The window in Unix nanoseconds: offsets count from the start of the process asked for,
    /// `--last` from the end of the last block of any process.
    pub fn window_range(&self, window: &Window) -> Result<Option<(i64, i64)>> {
        let root = &self.processes[0].process;
        let start_ns = root.start_time.timestamp_nanos_opt().unwrap_or(0);
        let data_end_ns = self.processes.iter().map(|p| p.data_end_ns).max();
        window.resolve(start_ns, data_end_ns.unwrap_or(i64::MAX))
    }
}

/// A process, its streams and blocks of each kind shown, and its clock.
pub struct ProcessState {
    pub process: ProcessRow,
    pub threads: Streams,
    /// Empty when logs are not shown.
    pub logs: Streams,
    /// Empty when metrics are not shown.
    pub metrics: Streams,
    pub clock: Clock,
    /// The end of its last block, in Unix nanoseconds.
    pub data_end_ns: i64,
}

/// Streams of one kind, in stream id order, and their blocks, ordered by stream, object
/// offset, block id.
#[derive(Default)]
pub struct Streams {
    pub streams: Vec<StreamRow>,
    pub blocks: Vec<BlockRow>,
}

impl Streams {
    /// The streams of one kind among all of a process's, with their blocks.
    fn of_kind(streams: &[StreamRow], blocks: &[BlockRow], kind: StreamKind) -> Self {
        let streams: Vec<StreamRow> = (streams.iter())
            .filter(|s| kind.holds(s))
            .cloned()
            .collect();
        let blocks = of_streams(&streams, blocks);
        Self { streams, blocks }
    }
}

/// Reads the process (and with `children` its descendants), the streams of each kind shown
/// with their blocks, and the clocks' bounds in one snapshot: a process still being ingested
/// shows one consistent state, whatever arrives meanwhile. A descendant without data to show
/// is left out; the process asked for without any is an error unless a descendant has some.
pub async fn read_lake_state(
    lake: &Lake,
    process_arg: &str,
    shown: Shown,
    children: bool,
) -> Result<LakeState> {
    let snapshot = lake.metadata.snapshot().await?;
    if let Ok(process_id) = uuid::Uuid::parse_str(process_arg) {
        snapshot.read_process_ahead(&process_id).await?;
    }
    let root = resolve_process(&snapshot, process_arg).await?;
    let mut family = vec![root];
    if children {
        family.extend(descendants(&snapshot, &family[0]).await?);
    }
    let mut processes = Vec::with_capacity(family.len());
    let mut root_problem = None;
    for process in family {
        match read_process(&snapshot, process, shown).await? {
            Ok(state) => processes.push(state),
            Err(why) => {
                root_problem.get_or_insert(why);
            }
        }
    }
    snapshot.close().await?;
    if processes.is_empty() {
        let why = root_problem.unwrap_or_default();
        return Err(failure(FailureKind::ProcessNotFound, why));
    }
    Ok(LakeState { processes })
}

/// Every descendant of `root` (by `parent_process_id`, any depth), by start time, then id.
/// Bad metadata whose parents form a cycle cannot loop: each process is read once.
async fn descendants(snapshot: &Snapshot, root: &ProcessRow) -> Result<Vec<ProcessRow>> {
    let mut seen = std::collections::HashSet::from([root.process_id]);
    let mut parents = vec![root.process_id];
    let mut found = Vec::new();
    while let Some(parent) = parents.pop() {
        for child in snapshot.children(&parent).await? {
            if !seen.insert(child) {
                continue;
            }
            if let Some(process) = snapshot.process(&child).await? {
                found.push(process);
            }
            parents.push(child);
        }
    }
    found.sort_by_key(|p| (p.start_time, p.process_id));
    Ok(found)
}

/// A process's streams and clock; `Ok(Err(why))` when it has no data of the kinds shown.
async fn read_process(
    snapshot: &Snapshot,
    process: ProcessRow,
    shown: Shown,
) -> Result<std::result::Result<ProcessState, String>> {
    let id = process.process_id;
    snapshot.read_process_ahead(&id).await?;
    // All kinds in one query each: a process has thousands of thread streams, or few streams.
    // One snapshot: every stream of a block listed is listed too, unless the lake lacks it
    // (its blocks are then left out, as Micromegas ignores them).
    let streams = snapshot.process_streams(&id).await?;
    let blocks = of_streams(&streams, &snapshot.process_blocks(&id).await?);
    let read = |wanted: bool, kind| match wanted {
        true => Streams::of_kind(&streams, &blocks, kind),
        false => Streams::default(),
    };
    let threads = read(shown.spans, THREAD_STREAMS);
    let logs = read(shown.logs, LOG_STREAMS);
    let metrics = read(shown.metrics, METRIC_STREAMS);
    if threads.blocks.is_empty() && logs.blocks.is_empty() && metrics.blocks.is_empty() {
        let why = nothing_to_show(&threads, &logs, &metrics, shown);
        return Ok(Err(format!("process {id} {why}")));
    }
    let bounds = end_bounds(&blocks);
    let clock = Clock::for_process(&process, bounds)?;
    let data_end_ns = bounds.1.and_then(|t| t.timestamp_nanos_opt());
    Ok(Ok(ProcessState {
        data_end_ns: data_end_ns.unwrap_or(i64::MAX),
        process,
        threads,
        logs,
        metrics,
        clock,
    }))
}

/// Which kinds of streams the trace shows.
#[derive(Debug, Clone, Copy)]
pub struct Shown {
    pub spans: bool,
    pub logs: bool,
    pub metrics: bool,
}

/// Why a process with none of the data asked for has nothing to show.
fn nothing_to_show(threads: &Streams, logs: &Streams, metrics: &Streams, shown: Shown) -> String {
    let spans_only = shown.spans && !shown.logs && !shown.metrics;
    if spans_only {
        return match threads.streams.is_empty() {
            true => "has no thread streams (tag `cpu`): it recorded no spans to export",
            false => {
                "has no span data yet: its thread streams have no block (it may still be starting)"
            }
        }
        .into();
    }
    let kinds = [
        (
            shown.spans,
            threads,
            "span data",
            "thread streams (tag `cpu`)",
        ),
        (shown.logs, logs, "log entries", "log stream"),
        (shown.metrics, metrics, "measures", "metrics stream"),
    ];
    let missing: Vec<String> = (kinds.iter())
        .filter(|(wanted, ..)| *wanted)
        .map(
            |(_, streams, data, stream)| match streams.streams.is_empty() {
                true => format!("no {stream}"),
                false => format!("no {data} yet"),
            },
        )
        .collect();
    let starting = match kinds
        .iter()
        .any(|(_, streams, ..)| !streams.streams.is_empty())
    {
        true => " (it may still be starting)",
        false => "",
    };
    format!("has {}: nothing to export{starting}", missing.join(", "))
}
