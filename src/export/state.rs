//! What an export reads of the lake's metadata, all as of one instant, and the time range
//! it was asked for.

use anyhow::Result;
use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::error::{FailureKind, failure};
use crate::lake::rows::{
    BlockRow, LOG_STREAMS, METRIC_STREAMS, ProcessRow, StreamKind, StreamRow, THREAD_STREAMS,
};
use crate::lake::{Lake, MetadataReads, Snapshot, resolve_process};
use uuid::Uuid;

/// The process, its streams and blocks of each kind shown, and its clock, from one snapshot.
pub struct LakeState {
    pub process: ProcessRow,
    pub threads: Streams,
    /// Empty when logs are not shown.
    pub logs: Streams,
    /// Empty when metrics are not shown.
    pub metrics: Streams,
    pub clock: Clock,
}

/// Streams of one kind, in stream id order, and their blocks, ordered by stream, object
/// offset, block id.
#[derive(Default)]
pub struct Streams {
    pub streams: Vec<StreamRow>,
    pub blocks: Vec<BlockRow>,
}

impl Streams {
    async fn read(snapshot: &Snapshot, process_id: &Uuid, kind: StreamKind) -> Result<Self> {
        Ok(Self {
            streams: snapshot.streams(process_id, kind).await?,
            // One snapshot: every block listed has its stream listed too (the query joins them).
            blocks: snapshot.blocks(process_id, kind).await?,
        })
    }
}

/// Reads the process, its thread streams (when spans are shown) and log streams (when logs
/// are) with their blocks, and the clock's bounds in one snapshot: a process still being
/// ingested shows one consistent state, whatever arrives meanwhile.
pub async fn read_lake_state(lake: &Lake, process_arg: &str, shown: Shown) -> Result<LakeState> {
    let snapshot = lake.metadata.snapshot().await?;
    let process = resolve_process(&snapshot, process_arg).await?;
    let id = process.process_id;
    let read = async |wanted: bool, kind| match wanted {
        true => Streams::read(&snapshot, &id, kind).await,
        false => Ok(Streams::default()),
    };
    let threads = read(shown.spans, THREAD_STREAMS).await?;
    let logs = read(shown.logs, LOG_STREAMS).await?;
    let metrics = read(shown.metrics, METRIC_STREAMS).await?;
    if threads.blocks.is_empty() && logs.blocks.is_empty() && metrics.blocks.is_empty() {
        let why = nothing_to_show(&threads, &logs, shown.logs || shown.metrics);
        return Err(failure(
            FailureKind::ProcessNotFound,
            format!("process {id} {why}"),
        ));
    }
    let bounds = snapshot.block_end_bounds(&id).await?;
    snapshot.close().await?;
    let clock = Clock::for_process(&process, bounds)?;
    Ok(LakeState {
        process,
        threads,
        logs,
        metrics,
        clock,
    })
}

/// Which kinds of streams the trace shows.
#[derive(Debug, Clone, Copy)]
pub struct Shown {
    pub spans: bool,
    pub logs: bool,
    pub metrics: bool,
}

/// Why a process with none of the data asked for has nothing to show.
fn nothing_to_show(threads: &Streams, logs: &Streams, with_logs: bool) -> String {
    if !with_logs {
        return match threads.streams.is_empty() {
            true => "has no thread streams (tag `cpu`): it recorded no spans to export",
            false => {
                "has no span data yet: its thread streams have no block (it may still be starting)"
            }
        }
        .into();
    }
    let spans = match threads.streams.is_empty() {
        true => "no thread streams (tag `cpu`)",
        false => "no span data yet (its thread streams have no block)",
    };
    let log_entries = match logs.streams.is_empty() {
        true => "no log stream",
        false => "no log entries yet (its log streams have no block)",
    };
    let starting = match threads.streams.is_empty() && logs.streams.is_empty() {
        true => "",
        false => " (it may still be starting)",
    };
    format!("has {spans} and {log_entries}: nothing to export{starting}")
}

/// `[begin, end]` in Unix nanoseconds, `None` when neither bound is given.
pub fn time_range(
    begin: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
) -> Result<Option<(i64, i64)>> {
    if begin.is_none() && end.is_none() {
        return Ok(None);
    }
    let ns = |t: DateTime<Utc>| {
        t.timestamp_nanos_opt()
            .ok_or_else(|| failure(FailureKind::Usage, format!("time {t} is out of range")))
    };
    let begin = begin.map(ns).transpose()?.unwrap_or(i64::MIN);
    let end = end.map(ns).transpose()?.unwrap_or(i64::MAX);
    if begin > end {
        return Err(failure(FailureKind::Usage, "--begin is after --end"));
    }
    Ok(Some((begin, end)))
}
