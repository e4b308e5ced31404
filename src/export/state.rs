//! What an export reads of the lake's metadata, all as of one instant, and the time range
//! it was asked for.

use anyhow::Result;
use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::error::{FailureKind, failure};
use crate::lake::rows::{BlockRow, ProcessRow, StreamRow};
use crate::lake::{Lake, MetadataReads, resolve_process};

/// The process, its thread streams and blocks, and its clock, from one snapshot.
pub struct LakeState {
    pub process: ProcessRow,
    /// Thread streams, in stream id order.
    pub streams: Vec<StreamRow>,
    /// Their blocks, ordered by stream, object offset, block id.
    pub blocks: Vec<BlockRow>,
    pub clock: Clock,
}

/// Reads the process, its thread streams and blocks, and the clock's bounds in one snapshot:
/// a process still being ingested shows one consistent state, whatever arrives meanwhile.
pub async fn read_lake_state(lake: &Lake, process_arg: &str) -> Result<LakeState> {
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
