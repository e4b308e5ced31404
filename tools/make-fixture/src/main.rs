//! make-fixture: records a real Micromegas-instrumented workload into an embedded lake.
//!
//! `make-fixture DIR` wipes DIR, then runs the `main` scenario in a child process, which writes
//! its telemetry into DIR and then starts the `secondary` scenario as its own child process
//! (so that process has a genuine parent_process_id). When the one non-deterministic fact of
//! the main scenario (a span that hops between tokio workers) does not hold, the run is redone.
//!
//! `make-fixture DIR --scenario main|secondary` runs one scenario, appending to DIR.

mod dump;
mod sink;
mod workload;

use anyhow::{Context, Result, anyhow, bail};
use micromegas_tracing::dispatch::{
    flush_thread_buffer, init_thread_stream, unregister_thread_stream,
};
use micromegas_tracing::guards::TracingSystemGuard;
use sink::{LakeSink, LakeStats};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const PARENT_PROCESS_ENV: &str = "MICROMEGAS_TELEMETRY_PARENT_PROCESS";
/// Exit code of a scenario whose non-deterministic facts did not hold: the driver retries.
const EXIT_RETRY: u8 = 3;
const MAX_ATTEMPTS: usize = 5;

/// Event buffer sizes of a scenario: a full buffer is flushed as a block.
struct BufferSizes {
    logs: usize,
    metrics: usize,
    threads: usize,
}

/// Small buffers, so that the thread, log and metrics streams of `main` flush several blocks.
const MAIN_BUFFERS: BufferSizes = BufferSizes {
    logs: 1024,
    metrics: 1024,
    threads: 1024,
};
/// One block per stream.
const SECONDARY_BUFFERS: BufferSizes = BufferSizes {
    logs: 64 * 1024,
    metrics: 64 * 1024,
    threads: 64 * 1024,
};

fn usage() -> anyhow::Error {
    anyhow!("usage: make-fixture LAKE_DIR [--scenario main|secondary]")
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("make-fixture: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode> {
    let mut dir: Option<PathBuf> = None;
    let mut scenario: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--scenario" => scenario = Some(args.next().ok_or_else(usage)?),
            "-h" | "--help" => {
                println!("{}", usage());
                return Ok(ExitCode::SUCCESS);
            }
            _ if dir.is_none() && !arg.starts_with('-') => dir = Some(PathBuf::from(arg)),
            _ => return Err(usage()),
        }
    }
    let dir = dir.ok_or_else(usage)?;
    match scenario.as_deref() {
        None => run_driver(&dir),
        Some("main") => run_main_scenario(&dir),
        Some("secondary") => run_secondary_scenario(&dir),
        Some(other) => bail!("unknown scenario {other:?} (expected main or secondary)"),
    }
}

// ---------------------------------------------------------------------------------------------

fn run_driver(dir: &Path) -> Result<ExitCode> {
    let exe = std::env::current_exe()?;
    for attempt in 1..=MAX_ATTEMPTS {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let status = Command::new(&exe)
            .arg(dir)
            .args(["--scenario", "main"])
            .env_remove(PARENT_PROCESS_ENV)
            .status()
            .context("running the main scenario")?;
        match status.code() {
            Some(0) => {
                print_lake_files(dir)?;
                return Ok(ExitCode::SUCCESS);
            }
            Some(code) if code == i32::from(EXIT_RETRY) => {
                eprintln!(
                    "make-fixture: attempt {attempt} did not have the expected shape, retrying"
                );
            }
            _ => bail!("the main scenario failed ({status})"),
        }
    }
    bail!("no attempt out of {MAX_ATTEMPTS} had the expected shape")
}

fn print_lake_files(dir: &Path) -> Result<()> {
    fn walk(path: &Path, files: &mut Vec<(PathBuf, u64)>) -> Result<()> {
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            let p = entry.path();
            if entry.file_type()?.is_dir() {
                walk(&p, files)?;
            } else {
                files.push((p, entry.metadata()?.len()));
            }
        }
        Ok(())
    }
    let mut files = vec![];
    walk(dir, &mut files)?;
    let blobs: Vec<_> = files
        .iter()
        .filter(|(p, _)| p.strip_prefix(dir).is_ok_and(|r| r.starts_with("blobs")))
        .collect();
    let total: u64 = files.iter().map(|(_, n)| n).sum();
    let blob_bytes: u64 = blobs.iter().map(|(_, n)| n).sum();
    println!(
        "lake {}: {} files, {} bytes in all; {} blob files ({} bytes)",
        dir.display(),
        files.len(),
        total,
        blobs.len(),
        blob_bytes
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------

/// Installs the sink, runs `workload` on this thread (with a thread stream), shuts telemetry
/// down, and waits until every row is written.
fn record<R>(
    dir: &Path,
    scenario: &str,
    buffers: &BufferSizes,
    workload: impl FnOnce() -> R,
) -> Result<(R, LakeStats)> {
    let (sink, writer) = LakeSink::start(dir.to_path_buf());
    let mut properties = HashMap::new();
    properties.insert("fixture-scenario".to_string(), scenario.to_string());
    properties.insert("fixture-generator".to_string(), "make-fixture".to_string());
    let guard = TracingSystemGuard::new(
        buffers.logs,
        buffers.metrics,
        buffers.threads,
        sink.clone(),
        properties,
        true, // cpu tracing: thread streams
    )
    .map_err(|e| anyhow!("initializing micromegas tracing: {e}"))?;
    // The level filter starts at Off; an application's logger setup would raise it.
    micromegas_tracing::levels::set_max_level(micromegas_tracing::levels::LevelFilter::Trace);
    init_thread_stream();
    let result = workload();
    flush_thread_buffer();
    unregister_thread_stream();
    drop(guard); // flush, then on_shutdown: the writer drains its queue and stops
    let stats = writer
        .join()
        .map_err(|_| anyhow!("the lake writer thread panicked"))??;
    let errors = sink.errors();
    if !errors.is_empty() {
        bail!("{} sink error(s), first: {}", errors.len(), errors[0]);
    }
    Ok((result, stats))
}

fn print_summary(scenario: &str, stats: &LakeStats) {
    let Some(p) = &stats.process else {
        println!("scenario {scenario}: no process row!");
        return;
    };
    println!(
        "scenario {scenario}: process {} (parent {}), exe {}, tsc_frequency {}, start {}",
        p.process_id,
        p.parent_process_id
            .map_or("none".to_string(), |u| u.to_string()),
        p.exe,
        p.tsc_frequency,
        p.start_time.to_rfc3339(),
    );
    for (stream_id, s) in &stats.streams {
        println!(
            "  stream {stream_id} tags {:?} thread-name {:<22} thread-id {:<16} blocks {:>3} events {:>5} payload {:>6} B",
            s.tags,
            s.property("thread-name").unwrap_or("(none)"),
            s.property("thread-id").unwrap_or("?"),
            s.blocks,
            s.objects,
            s.payload_bytes,
        );
    }
    println!(
        "  {} streams, {} blocks",
        stats.streams.len(),
        stats.total_blocks()
    );
}

fn run_main_scenario(dir: &Path) -> Result<ExitCode> {
    let (report, stats) = record(dir, "main", &MAIN_BUFFERS, workload::main_scenario)?;
    print_summary("main", &stats);
    println!(
        "  hop_across_workers: began on {}, ended on {}; abandoned_by_timeout timed out: {}; select_winner won: {}",
        report.hop_begin_thread,
        report.hop_end_thread,
        report.abandoned_timed_out,
        report.select_winner_won
    );

    // Facts that tests rely on. The hop depends on the scheduler: retry when it did not happen.
    let mut problems = vec![];
    if report.hop_begin_thread == report.hop_end_thread {
        problems.push("hop_across_workers began and ended on the same thread".to_string());
    }
    if !report.abandoned_timed_out || !report.select_winner_won {
        problems.push("a dropped future was not dropped".to_string());
    }
    let cpu: Vec<_> = stats
        .streams
        .iter()
        .filter(|(_, s)| s.tags.iter().any(|t| t == "cpu"))
        .collect();
    let names: Vec<Option<&str>> = cpu.iter().map(|(_, s)| s.property("thread-name")).collect();
    let mut expected = vec![
        Some("main"),
        Some("fixture-sync-deep"),
        Some("fixture-named-spans"),
        None,
    ];
    let workers: Vec<String> = (0..workload::WORKER_THREADS)
        .map(|i| format!("fixture-worker-{i}"))
        .collect();
    expected.extend(workers.iter().map(|w| Some(w.as_str())));
    for name in &expected {
        if !names.contains(name) {
            problems.push(format!("no cpu stream with thread-name {name:?}"));
        }
    }
    if cpu.len() != expected.len() {
        problems.push(format!(
            "{} cpu streams, expected {}",
            cpu.len(),
            expected.len()
        ));
    }
    for (_, s) in &cpu {
        let name = s.property("thread-name");
        if matches!(
            name,
            Some("fixture-sync-deep") | Some("fixture-named-spans")
        ) && s.blocks < 2
        {
            problems.push(format!(
                "{name:?} has {} block(s), expected several",
                s.blocks
            ));
        }
    }
    if stats.total_blocks() < 20 {
        problems.push(format!(
            "{} blocks, expected at least 20",
            stats.total_blocks()
        ));
    }
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("make-fixture: unexpected shape: {p}");
        }
        return Ok(ExitCode::from(EXIT_RETRY));
    }

    // The secondary process, started by this one: the dispatch set PARENT_PROCESS_ENV to our
    // process id, so the child records it as its parent, as any child of a Micromegas process.
    let status = Command::new(std::env::current_exe()?)
        .arg(dir)
        .args(["--scenario", "secondary"])
        .status()
        .context("running the secondary scenario")?;
    if !status.success() {
        bail!("the secondary scenario failed ({status})");
    }
    Ok(ExitCode::SUCCESS)
}

fn run_secondary_scenario(dir: &Path) -> Result<ExitCode> {
    let ((), stats) = record(
        dir,
        "secondary",
        &SECONDARY_BUFFERS,
        workload::secondary_scenario,
    )?;
    print_summary("secondary", &stats);
    Ok(ExitCode::SUCCESS)
}
