//! The command line: flags, subcommands, exit statuses, and what goes to stdout and stderr.

mod args;
mod open;
mod processes;

use anyhow::Result;
use clap::{CommandFactory, Parser};
use std::io::Write;

use crate::error::{self, FailureKind, failure};
use crate::export::{self, ExportOptions, OutputTarget};
use crate::lake::{Lake, LakeLocation};
use crate::partitions::PartitionCache;
use crate::progress::{Progress, stderr_line};
pub use args::{CacheAction, Cli, Command};

/// Runs the tool; returns the process exit status.
pub fn main() -> i32 {
    exit_on_panic();
    let cli = Cli::parse();
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads_or_default())
        .max_blocking_threads(4 * cli.threads_or_default())
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return report(anyhow::Error::new(e).context("cannot start the async runtime"));
        }
    };
    // Ctrl-C: delete the temporary files of the run and exit at once, even while a
    // synchronous stage (trace writing) is busy; the partition catalog only ever sees
    // committed transactions, so it stays consistent.
    runtime.spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            crate::cleanup::remove_all();
            stderr_line("write-perfetto: interrupted");
            std::process::exit(FailureKind::Interrupted.exit_code());
        }
    });
    let outcome = runtime.block_on(run(&cli));
    crate::cleanup::remove_all();
    match outcome {
        Ok(()) => 0,
        Err(e) => report(e),
    }
}

/// A panic anywhere (a bug of ours) ends the run at once with one line and status 70, after
/// deleting the run's temporary files; the partition catalog only holds committed rows.
fn exit_on_panic() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = error::panic_text(info.payload()).replace('\n', " ");
        stderr_line(&format!(
            "write-perfetto: internal error: {message}{location} (please report it)"
        ));
        crate::cleanup::remove_all();
        std::process::exit(FailureKind::Internal.exit_code());
    }));
}

fn init_logging(cli: &Cli) {
    // Only our own messages by default: a library's (sqlx's "slow statement" on a busy
    // machine) would break the one-line error and garble the output; RUST_LOG shows them.
    let default = if cli.quiet {
        "write_perfetto=error"
    } else if cli.verbose > 0 {
        "write_perfetto=debug"
    } else {
        "write_perfetto=warn"
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
        .format_timestamp(None)
        .target(env_logger::Target::Stderr)
        .init();
}

fn report(error: anyhow::Error) -> i32 {
    let kind = error::kind_of(&error);
    stderr_line(&format!(
        "write-perfetto: error: {}",
        error::one_line(&error)
    ));
    kind.exit_code()
}

async fn run(cli: &Cli) -> Result<()> {
    match &cli.command {
        Some(Command::Completions { shell }) => {
            let mut command = Cli::command();
            clap_complete::generate(
                *shell,
                &mut command,
                "write-perfetto",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Some(Command::Cache {
            action: CacheAction::Gc { grace_seconds },
        }) => {
            let lake = open_lake(cli).await?;
            let progress = Progress::new(cli.quiet);
            let warn = |line: &str| progress.warn(line);
            let cache =
                PartitionCache::open(&lake, cli.cache.as_deref(), cli.layout(), &warn, None)
                    .await?;
            let removed = cache
                .collect_garbage(std::time::Duration::from_secs(*grace_seconds))
                .await?;
            if cli.json {
                println!("{}", serde_json::json!({ "removed_partitions": removed }));
            } else if !cli.quiet {
                stderr_line(&format!("removed {removed} retired partition files"));
            }
            Ok(())
        }
        Some(Command::Processes {
            json,
            limit,
            tree,
            exe,
            since,
        }) => {
            let lake = open_lake(cli).await?;
            let filter = crate::lake::ProcessFilter {
                limit: *limit,
                exe: exe.clone(),
                since: *since,
            };
            let processes = lake.metadata.find_processes(&filter).await?;
            processes::print(&processes, *json || cli.json, *tree)
        }
        None => {
            let Some(process_id) = &cli.process_id else {
                return Err(failure(
                    FailureKind::Usage,
                    "no process id given; `write-perfetto processes` lists them, `--help` explains",
                ));
            };
            let lake = open_lake(cli).await?;
            let options = ExportOptions {
                contents: cli.contents(),
                window: crate::export::Window {
                    begin: cli.begin,
                    end: cli.end,
                    last: cli.last,
                },
                output: cli.output.as_deref().map(|o| {
                    if o == "-" {
                        OutputTarget::Stdout
                    } else {
                        OutputTarget::File(o.into())
                    }
                }),
                concurrency: usize::from(cli.jobs),
                cache_dir: cli.cache.clone(),
                layout: cli.layout(),
                explain: cli.verbose > 0 || cli.explain,
                checksum: cli.json,
                children: cli.children,
                gzip: cli.gzip || cli.output.as_deref().is_some_and(|o| o.ends_with(".gz")),
            };
            if options.output == Some(OutputTarget::Stdout) && cli.json {
                return Err(failure(
                    FailureKind::Usage,
                    "--json and -o - both want stdout; write the trace to a file",
                ));
            }
            if options.output == Some(OutputTarget::Stdout) && cli.open {
                return Err(failure(
                    FailureKind::Usage,
                    "--open serves a trace file: write it to a file, not to stdout (-o -)",
                ));
            }
            if options.contents.is_empty() {
                return Err(failure(
                    FailureKind::Usage,
                    "--spans none with --no-logs and --no-metrics leaves nothing to export",
                ));
            }
            let progress = Progress::new(cli.quiet);
            let result = export::export(&lake, process_id, &options, &progress).await;
            progress.clear();
            let summary = result?;
            if cli.json {
                writeln!(std::io::stdout(), "{}", serde_json::to_string(&summary)?)?;
            } else if !cli.quiet && summary.output != "-" {
                stderr_line(&format!(
                    "wrote {} ({} bytes, {} thread and {} async spans on {} thread and {} async tracks, {} log entries, {} metric series) in {} ms",
                    summary.output,
                    summary.bytes,
                    summary.spans.thread,
                    summary.spans.async_,
                    summary.thread_tracks,
                    summary.async_tracks,
                    summary.log_entries.total,
                    summary.metrics.series,
                    summary.elapsed_ms
                ));
            }
            if cli.open {
                let trace = std::path::PathBuf::from(&summary.output);
                let served = tokio::task::spawn_blocking(move || {
                    open::serve_to_ui(&trace, &|line| stderr_line(line))
                });
                served.await??;
            }
            Ok(())
        }
    }
}

async fn open_lake(cli: &Cli) -> Result<Lake> {
    let Some(lake) = cli.lake.as_deref() else {
        return Err(failure(
            FailureKind::Usage,
            "no lake given: pass --lake DIR (embedded) or --lake postgres://..., or set MICROMEGAS_SQL_CONNECTION_STRING",
        ));
    };
    let location = LakeLocation::parse(lake, cli.blobs.as_deref())?;
    Lake::open(location).await
}
