//! gen-lake: writes a deterministic synthetic lake (see `write_perfetto_test_lake::synth`) and
//! prints what it wrote as JSON.
//!
//! gen-lake --out DIR --seed 1 --threads 16 --spans 1000000 --async-spans 100000
//! gen-lake --out DIR --seed 1 --spans 10000 --logs 1000000 --measures 1000000
//! gen-lake --postgres postgres://... --blobs file:///data --seed 1 ...

use anyhow::{Context, Result, bail};
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use write_perfetto::lake::BlobStore;
use write_perfetto_test_lake::synth::{SynthSpec, generate};
use write_perfetto_test_lake::writer::LakeWriter;

#[derive(Parser, Debug)]
#[command(
    name = "gen-lake",
    about = "Write a deterministic synthetic Micromegas lake"
)]
struct Args {
    /// Embedded lake directory to create (DIR/lake.db and DIR/blobs/...).
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "postgres",
        conflicts_with = "postgres"
    )]
    out: Option<PathBuf>,
    /// Empty PostgreSQL database to write Micromegas's schema and rows into.
    #[arg(long, value_name = "URL", requires = "blobs")]
    postgres: Option<String>,
    /// Object store for the payloads of a PostgreSQL lake (file://, s3://, gs://, az://).
    #[arg(long, value_name = "URL", requires = "postgres")]
    blobs: Option<String>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value_t = 1)]
    processes: usize,
    /// Thread streams per process.
    #[arg(long, default_value_t = 16)]
    threads: usize,
    /// Thread spans in total.
    #[arg(long, default_value_t = 1_000_000)]
    spans: u64,
    /// Async spans in total.
    #[arg(long, default_value_t = 100_000)]
    async_spans: u64,
    /// Log entries in total, in the processes' log streams, over the time range of their spans
    /// (mostly static messages, some formatted, some tagged; all six levels, mostly info and
    /// debug).
    #[arg(long, default_value_t = 0)]
    logs: u64,
    /// Measures in total, in the processes' metrics streams (integer and float metrics, some
    /// tagged by region; 14 series per process).
    #[arg(long, default_value_t = 0)]
    measures: u64,
    #[arg(long, default_value_t = 20)]
    max_depth: u32,
    #[arg(long, default_value_t = 4096)]
    events_per_block: usize,
    /// Ticks per second written to the processes table (0: readers infer it).
    #[arg(long, default_value_t = 0)]
    tsc_frequency: i64,
    /// Spread each thread's spans over about this long (`8h`, `30m`, `90s`), with idle time
    /// between top-level spans: many partition buckets, as a long-running process has.
    /// Default: back to back (a second or so).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    duration: Option<i64>,
    /// Async span ids start over after N (reused ids, as from a producer whose counter wraps
    /// or restarts); by default every async span has an id of its own.
    #[arg(long, value_name = "N", default_value_t = 0)]
    async_span_ids: u64,
}

/// A `--duration` in nanoseconds.
fn parse_duration(text: &str) -> std::result::Result<i64, String> {
    write_perfetto::export::window::parse_duration(text)
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen-lake: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let spec = SynthSpec {
        seed: args.seed,
        processes: args.processes,
        threads: args.threads,
        spans: args.spans,
        async_spans: args.async_spans,
        logs: args.logs,
        measures: args.measures,
        max_depth: args.max_depth,
        events_per_block: args.events_per_block,
        tsc_frequency: args.tsc_frequency,
        duration_ns: args.duration.unwrap_or(0),
        async_span_ids: args.async_span_ids,
    };
    let writer = match (&args.out, &args.postgres, &args.blobs) {
        (Some(dir), _, _) => {
            if dir.join("lake.db").exists() {
                bail!(
                    "{} already holds a lake; choose an empty directory",
                    dir.display()
                );
            }
            LakeWriter::create_embedded(dir).await?
        }
        (None, Some(url), Some(blobs)) => {
            LakeWriter::create_postgres(url, BlobStore::from_url(blobs)?)
                .await
                .context("cannot prepare the PostgreSQL lake")?
        }
        _ => bail!("give --out DIR, or --postgres URL with --blobs URL"),
    };
    let started = Instant::now();
    let report = generate(&writer, &spec).await?;
    writer.close().await;
    eprintln!(
        "gen-lake: {} blocks written in {:.2?}",
        report.blocks,
        started.elapsed()
    );
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
