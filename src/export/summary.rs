//! The `--json` summary of an export.

use serde::Serialize;

use crate::assembly::AssemblyStats;
use crate::lake::rows::StreamRow;

#[derive(Debug, Clone, Serialize)]
pub struct SpanCounts {
    pub thread: u64,
    #[serde(rename = "async")]
    pub async_: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExportSummary {
    pub process_id: String,
    pub exe: String,
    /// The processes in the trace, in its order: the one asked for, then with `--children`
    /// its descendants (a descendant without data to show is left out).
    pub processes: Vec<ProcessEntry>,
    pub output: String,
    pub bytes: u64,
    /// Computed when asked for (`--json`).
    pub sha256: Option<String>,
    pub thread_tracks: usize,
    pub async_tracks: usize,
    /// Log lanes (one per level shown).
    pub log_tracks: usize,
    /// Counter tracks (one per metric series).
    pub metric_tracks: usize,
    pub spans: SpanCounts,
    pub log_entries: LogCounts,
    pub metrics: MetricCounts,
    pub clipped: u64,
    pub unfinished: u64,
    pub oddities: AssemblyStats,
    pub blocks_read: u64,
    pub payload_bytes: u64,
    pub partitions_reused: u64,
    pub partitions_built: u64,
    /// Partition files fetched and read: a time window reads only those it reaches.
    pub partition_files_read: u64,
    /// Their bytes fetched: a window reads only its row groups of a file, and the footer.
    pub partition_bytes_read: u64,
    pub elapsed_ms: u64,
}

/// A process of the trace.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessEntry {
    pub process_id: String,
    /// `null` for a process without a parent.
    pub parent_process_id: Option<String>,
    pub exe: String,
    /// Its pid in the trace: 1, 2, … in trace order.
    pub pid: i32,
    /// Its threads with a track, in trace order.
    pub threads: Vec<ThreadEntry>,
}

/// A thread track: the tid the UI shows after the thread's name, and what the thread is in
/// the lake.
#[derive(Debug, Clone, Serialize)]
pub struct ThreadEntry {
    pub tid: i32,
    pub name: String,
    /// The thread id the program recorded (`null` when none).
    pub thread_id: Option<String>,
    pub stream_id: String,
}

impl ProcessEntry {
    pub(super) fn of<'a>(
        state: &super::state::ProcessState,
        index: usize,
        threads: impl Iterator<Item = (i32, &'a str, &'a StreamRow)>,
    ) -> Self {
        Self {
            process_id: state.process.process_id.to_string(),
            parent_process_id: state.process.parent_process_id.map(|p| p.to_string()),
            exe: state.process.exe.clone(),
            pid: crate::trace::pid_of(index),
            threads: threads
                .map(|(tid, name, stream)| ThreadEntry {
                    tid,
                    name: name.to_string(),
                    thread_id: stream.property("thread-id").map(str::to_string),
                    stream_id: stream.stream_id.to_string(),
                })
                .collect(),
        }
    }
}

/// Metric series (counter tracks) and their values shown.
#[derive(Debug, Clone, Serialize)]
pub struct MetricCounts {
    pub series: u64,
    pub samples: u64,
}

/// Log entries shown, in all and per level.
#[derive(Debug, Clone, Serialize)]
pub struct LogCounts {
    pub total: u64,
    /// By level name (`fatal` … `trace`), levels without an entry left out.
    pub levels: std::collections::BTreeMap<String, u64>,
}

impl LogCounts {
    pub fn of(stats: &AssemblyStats) -> Self {
        let levels = (stats.log_levels.iter().enumerate())
            .filter(|(_, n)| **n > 0)
            .map(|(level, n)| (crate::assembly::logs::level_name(level as u8), *n))
            .collect();
        Self {
            total: stats.log_levels.iter().sum(),
            levels,
        }
    }
}

impl SpanCounts {
    pub fn of(stats: &AssemblyStats) -> Self {
        Self {
            thread: stats.thread_spans,
            async_: stats.async_spans,
        }
    }
}

/// Spans drawn with a bound that is not their own.
pub fn clipped(stats: &AssemblyStats) -> u64 {
    stats.clipped_begin + stats.clipped_end + stats.cut_at_gap + stats.closed_with_parent
}
