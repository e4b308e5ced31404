//! Every flag, documented where it is defined.

use clap::{Parser, Subcommand};

use crate::export::{Content, TimePoint};

const AFTER_HELP: &str = "\
Examples:
  write-perfetto processes --lake fixtures/lake --tree
  write-perfetto 9311096b --lake fixtures/lake -o trace.perfetto-trace
  write-perfetto 9311096b --lake fixtures/lake --children --spans none
  write-perfetto \"$PID\" --spans async --begin 2026-11-27T10:00:00Z --end 2026-11-27T10:05:00Z
  write-perfetto \"$PID\" --begin +90s --end +2m30s
  write-perfetto \"$PID\" --last 5m
  write-perfetto \"$PID\" --json -o trace.perfetto-trace | jq .sha256

CI determinism check:
  write-perfetto \"$PID\" -o a.pftrace &&
    write-perfetto \"$PID\" -o b.pftrace && cmp a.pftrace b.pftrace

Exit status:
  0 success, 2 usage error, 3 process not found or ambiguous, or no span data yet, 4 lake data
  error (corrupt or missing block, bad metadata), 5 I/O or connection error, 70 internal
  error (a bug: please report it), 130 interrupted.

Open the trace at https://ui.perfetto.dev (Open trace file).";

/// Turn the telemetry of one process in a Micromegas data lake into a Perfetto trace.
#[derive(Debug, Parser)]
#[command(name = "write-perfetto", version, after_help = AFTER_HELP, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The process to export: its UUID (any case, hyphens optional) or a unique prefix of at
    /// least 8 hex digits.
    #[arg(value_name = "PROCESS_ID")]
    pub process_id: Option<String>,

    /// The lake: a directory holding lake.db (embedded lake), or a postgres:// URL of
    /// Micromegas's metadata database.
    #[arg(
        long,
        global = true,
        env = "MICROMEGAS_SQL_CONNECTION_STRING",
        hide_env_values = true
    )]
    pub lake: Option<String>,

    /// Object store of a PostgreSQL lake's payloads: file://, s3://, gs:// or az:// URL;
    /// credentials come from the usual AWS_*, GOOGLE_*, AZURE_* variables.
    #[arg(
        long,
        global = true,
        env = "MICROMEGAS_OBJECT_STORE_URI",
        value_name = "URL"
    )]
    pub blobs: Option<String>,

    /// Which spans to export: thread (call stacks per thread), async (futures), both, or
    /// none (log entries only).
    #[arg(long, value_enum, default_value = "both")]
    pub spans: SpanKinds,

    /// Leave the process's log entries out (by default they are instants on a "log" track,
    /// one lane per level).
    #[arg(long)]
    pub no_logs: bool,

    /// Leave the process's measures out (by default each metric series is a counter track
    /// under a "metrics" track).
    #[arg(long)]
    pub no_metrics: bool,

    /// Add every descendant of the process (its children, theirs, …) to the trace, each as a
    /// process of its own with its threads, async spans, logs and metrics, on the same
    /// timeline; ordered by start time, then id.
    #[arg(long)]
    pub children: bool,

    /// Keep log entries at this level or more severe.
    #[arg(long, value_enum, value_name = "LEVEL", default_value = "trace")]
    pub log_level: LogLevel,

    /// Output file; `-` writes the trace to stdout. Default: <process-id>.perfetto-trace. A
    /// name ending in `.gz` is written gzip-compressed.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<String>,

    /// After writing the trace, serve it on 127.0.0.1:9001 and open the Perfetto UI on it (the
    /// link is printed; a browser is started when the session has one). Serves until the UI
    /// has fetched the trace, or Ctrl-C.
    #[arg(long)]
    pub open: bool,

    /// Compress the trace with gzip (the Perfetto UI opens it as is; 2 to 3.5 times smaller),
    /// to a file of any name or to stdout. Same trace, same bytes: no name or time in the
    /// header.
    #[arg(long)]
    pub gzip: bool,

    /// Keep only what ends at or after this time, clipped to it: an RFC 3339 time
    /// (2026-11-27T10:00:00Z) or an offset from the process start (+90s, +2m30s, +1.5h).
    #[arg(long, value_name = "TIME", value_parser = crate::export::window::parse_time_point)]
    pub begin: Option<TimePoint>,

    /// Keep only what begins at or before this time, clipped to it (same forms as --begin).
    #[arg(long, value_name = "TIME", value_parser = crate::export::window::parse_time_point)]
    pub end: Option<TimePoint>,

    /// Keep only the last DURATION of the process's data (5m, 30s, 1h30m), up to its last block.
    #[arg(long, value_name = "DURATION", value_parser = crate::export::window::parse_duration, conflicts_with_all = ["begin", "end"])]
    pub last: Option<i64>,

    /// Print a JSON summary of the export on stdout (ids, output, sha256, counts, timings).
    #[arg(long, global = true)]
    pub json: bool,

    /// Print nothing but errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Explain decisions on stderr (repeat for more); RUST_LOG overrides the filter.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Blocks, or partition files, fetched at once (remote stores gain from more); blocks are
    /// decoded one per worker thread, and partition files are fetched ahead of use (from a
    /// remote store up to N - 1 files and 64 MiB, from a local one 4).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024), value_name = "N")]
    pub jobs: u16,

    /// Keep the partition cache (a SQLite catalog and Parquet files) in this directory, for
    /// lakes you may only read. Default: with the lake (DIR/write-perfetto/ for an embedded
    /// lake; a table of the lake's database and its object store for PostgreSQL).
    #[arg(long, global = true, value_name = "DIR")]
    pub cache: Option<std::path::PathBuf>,

    /// Insert-time width of a partition, in seconds, from 1 to 31622400 (366 days). The output
    /// never depends on it.
    #[arg(long, global = true, default_value_t = crate::partitions::DEFAULT_BUCKET_SECONDS, value_name = "SECONDS", value_parser = clap::value_parser!(i64).range(1..=crate::partitions::MAX_BUCKET_SECONDS), hide_short_help = true)]
    pub partition_seconds: i64,

    /// A thread stream with fewer objects (span events and others) than this in a partition's
    /// time bucket shares one partition with the other small streams of its process: thousands
    /// of short-lived threads then cost a few files, not thousands. 0: every stream has
    /// partitions of its own. The output never depends on it.
    #[arg(long, global = true, default_value_t = crate::partitions::DEFAULT_SMALL_STREAM_OBJECTS, value_name = "N", value_parser = clap::value_parser!(i64).range(0..), hide_short_help = true)]
    pub small_stream_objects: i64,

    /// Rows per row group of a thread's own span partition (cut at block edges; an async
    /// partition's hold 4 times as many): a time window reads only the row groups it reaches.
    /// The output never depends on it.
    #[arg(long, global = true, default_value_t = crate::partitions::DEFAULT_ROW_GROUP_ROWS as u32, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), hide_short_help = true)]
    pub row_group_rows: u32,

    /// Print, per partition, whether it was reused, built or rebuilt, and why (also -v).
    #[arg(long, global = true)]
    pub explain: bool,

    /// Worker threads (default: the number of cores). The output never depends on it.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
}

impl Cli {
    /// How partitions are cut (`--partition-seconds`, `--small-stream-objects`,
    /// `--row-group-rows`).
    pub fn layout(&self) -> crate::partitions::Layout {
        let (seconds, small) = (self.partition_seconds, self.small_stream_objects);
        crate::partitions::Layout::new(seconds, small, self.row_group_rows as usize)
    }

    pub fn threads_or_default(&self) -> usize {
        self.threads.map(usize::from).unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the lake's processes, newest first.
    Processes {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Show at most N processes, from 1 to 1000000.
        #[arg(long, default_value_t = 50, value_name = "N", value_parser = clap::value_parser!(i64).range(1..=1_000_000))]
        limit: i64,
        /// Show each process's children under it, indented (oldest first, any depth); a process
        /// whose parent is not listed is a root. With --json: nested `children` arrays.
        #[arg(long)]
        tree: bool,
        /// Only processes whose executable path contains this text (ignoring case).
        #[arg(long, value_name = "TEXT")]
        exe: Option<String>,
        /// Only processes started at or after this time: RFC 3339 (2026-11-27T10:00:00Z) or a
        /// duration ago (2h, 30m, 1d is 24h).
        #[arg(long, value_name = "TIME", value_parser = parse_since)]
        since: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Manage the partition cache.
    Cache {
        #[command(subcommand)]
        action: CacheAction,
    },
    /// Print a shell completion script to stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Longer would wrap the retirement cutoff below 1970.
const MAX_GRACE_SECONDS: u64 = 100 * 365 * 86_400;

#[derive(Debug, Subcommand)]
pub enum CacheAction {
    /// Delete partition files retired longer ago than the grace period (readers that started
    /// before then may still be reading them).
    Gc {
        /// Grace period in seconds, from 0 to 3153600000 (100 years).
        #[arg(long = "grace", default_value_t = 3600, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(0..=MAX_GRACE_SECONDS))]
        grace_seconds: u64,
    },
}

/// Which spans go into the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SpanKinds {
    Thread,
    Async,
    Both,
    None,
}

/// Log levels, most severe first (Micromegas's numbering: fatal is 1, trace 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    Fatal = 1,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Cli {
    /// What the trace shows, in the order it shows it.
    pub fn contents(&self) -> Vec<Content> {
        let mut contents = match self.spans {
            SpanKinds::Thread => vec![Content::ThreadSpans],
            SpanKinds::Async => vec![Content::AsyncSpans],
            SpanKinds::Both => vec![Content::ThreadSpans, Content::AsyncSpans],
            SpanKinds::None => vec![],
        };
        if !self.no_logs {
            contents.push(Content::Logs {
                max_level: self.log_level as u8,
            });
        }
        if !self.no_metrics {
            contents.push(Content::Metrics);
        }
        contents
    }
}

/// `--since`: an RFC 3339 time, or a duration before now (`2h`, `30m`, `1d`).
fn parse_since(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text.trim()) {
        return Ok(t.to_utc());
    }
    let hours = text
        .trim()
        .strip_suffix('d')
        .and_then(|d| d.parse::<f64>().ok());
    let ago = match hours {
        Some(days) => crate::export::window::parse_duration(&format!("{}h", days * 24.0)),
        None => crate::export::window::parse_duration(text),
    };
    let ago = ago.map_err(|_| {
        "expected an RFC 3339 time (2026-11-27T10:00:00Z) or a duration ago (2h, 30m, 1d)"
            .to_string()
    })?;
    Ok(chrono::Utc::now() - chrono::Duration::nanoseconds(ago))
}
