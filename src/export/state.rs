//! What an export reads of the lake's metadata, all as of one instant, and the time range
//! it was asked for.

use anyhow::Result;
use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::error::{FailureKind, failure};
use crate::lake::rows::{BlockRow, LOG_STREAMS, ProcessRow, StreamKind, StreamRow, THREAD_STREAMS};
use crate::lake::{Lake, MetadataReads, Snapshot, resolve_process};
use uuid::Uuid;

/// The process, its streams and blocks of each kind shown, and its clock, from one snapshot.
pub struct LakeState {
    pub process: ProcessRow,
    pub threads: Streams,
    /// Empty when logs are not shown.
    pub logs: Streams,
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
pub async fn read_lake_state(
    lake: &Lake,
    process_arg: &str,
    spans: bool,
    with_logs: bool,
) -> Result<LakeState> {
    let snapshot = lake.metadata.snapshot().await?;
    let process = resolve_process(&snapshot, process_arg).await?;
    let id = process.process_id;
    let threads = match spans {
        true => Streams::read(&snapshot, &id, THREAD_STREAMS).await?,
        false => Streams::default(),
    };
    let logs = match with_logs {
        true => Streams::read(&snapshot, &id, LOG_STREAMS).await?,
        false => Streams::default(),
    };
    if threads.blocks.is_empty() && logs.blocks.is_empty() {
        let why = nothing_to_show(&threads, &logs, with_logs);
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
        clock,
    })
}

/// Why a process with none of the data asked for has nothing to show.
fn nothing_to_show(threads: &Streams, logs: &Streams, with_logs: bool) -> &'static str {
    match (
        threads.streams.is_empty() && logs.streams.is_empty(),
        with_logs,
    ) {
        (true, false) => "has no thread streams (tag `cpu`): it recorded no spans to export",
        (true, true) => {
            "has no thread streams (tag `cpu`) and no log stream: it recorded nothing to export"
        }
        (false, false) => {
            "has no span data yet: its thread streams have no block (it may still be starting)"
        }
        (false, true) => {
            "has no span data yet, nor log entries: its streams have no block (it may still be starting)"
        }
    }
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
