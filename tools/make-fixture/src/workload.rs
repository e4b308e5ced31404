//! The instrumented workloads. Their shape (threads, span names, nesting, loop counts) is fixed:
//! tests assert on it, and README.md lists it. Keep both in sync.

use micromegas_tracing::dispatch::{
    flush_thread_buffer, init_thread_stream, unregister_thread_stream,
};
use micromegas_tracing::prelude::*;
use micromegas_tracing::runtime::TracingRuntimeExt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

// ---- shape constants (documented in README.md) ----
pub const DEEP_ITERATIONS: usize = 30;
pub const NAMED_ITERATIONS: usize = 10;
pub const NAMED_STAGES: [&str; 3] = ["stage_parse", "stage_plan", "stage_execute"];
pub const NAMED_ITEMS_PER_STAGE: usize = 2;
pub const UNNAMED_STEPS: usize = 12;
pub const ASYNC_TICKS: usize = 40;
pub const DYN_ASYNC_SPANS: usize = 3;
pub const WORKER_THREADS: usize = 2;
pub const SECONDARY_STEPS: usize = 3;
/// Regions of the tagged `fixture_rows` series: one series per region.
pub const ROW_REGIONS: [&str; 2] = ["eu", "us"];

/// Busy-waits, so that spans have a visible duration without yielding the thread.
fn spin(micros: u64) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_micros(micros) {
        std::hint::spin_loop();
    }
}

fn current_thread_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("(unnamed)")
        .to_string()
}

/// Runs `f` on the current (std) thread with a thread stream, flushing it at the end.
fn traced_thread<R>(f: impl FnOnce() -> R) -> R {
    init_thread_stream();
    let r = f();
    flush_thread_buffer();
    unregister_thread_stream();
    r
}

// ======================= thread "fixture-sync-deep": 7 levels =======================

fn deep_thread_main() {
    span_scope!("deep_outer"); // depth 0: one span across every block of the stream
    for iteration in 0..DEEP_ITERATIONS {
        deep_iteration(iteration);
    }
}

fn deep_iteration(iteration: usize) {
    span_scope!("deep_iteration"); // depth 1
    let start = now();
    // Inside the span, so that tests can check the entry's time against the slice's.
    debug!("deep iteration {iteration}");
    imetric!("fixture_deep_iteration", "count", iteration as u64);
    deep_level_2();
    // The span's own duration so far, in ticks: shown in seconds.
    imetric!("fixture_iteration_time", "ticks", (now() - start) as u64);
}

#[span_fn]
fn deep_level_2() {
    // depth 2, named "make_fixture::workload::deep_level_2" by #[span_fn]
    deep_level_3();
}

fn deep_level_3() {
    span_scope!("deep_level_3"); // depth 3
    deep_level_4();
}

fn deep_level_4() {
    span_scope!("deep_level_4"); // depth 4
    deep_level_5();
    deep_level_5();
}

fn deep_level_5() {
    span_scope!("deep_level_5"); // depth 5
    deep_leaf();
}

fn deep_leaf() {
    span_scope!("deep_leaf"); // depth 6
    spin(20);
}

// ======================= thread "fixture-named-spans" =======================

fn named_thread_main() {
    span_scope!("named_outer"); // depth 0: crosses blocks
    for i in 0..NAMED_ITERATIONS {
        for stage in NAMED_STAGES {
            named_stage(stage, i);
        }
    }
}

fn named_stage(stage: &'static str, iteration: usize) {
    span_scope_named!(stage); // depth 1, static name chosen at run time
    trace!("stage {stage} of iteration {iteration}");
    fmetric!(
        "fixture_load",
        "ratio",
        iteration as f64 / NAMED_ITERATIONS as f64
    );
    for item in 0..NAMED_ITEMS_PER_STAGE {
        named_item(stage, iteration, item);
    }
}

fn named_item(stage: &str, iteration: usize, item: usize) {
    span_scope_named_dyn!(format!("{stage} item {iteration}.{item}")); // depth 2, dynamic name
    spin(10);
}

// ======================= unnamed thread =======================

fn unnamed_thread_main() {
    span_scope!("unnamed_outer"); // depth 0
    for step in 0..UNNAMED_STEPS {
        unnamed_step(step);
    }
}

fn unnamed_step(step: usize) {
    span_scope!("unnamed_step"); // depth 1
    let region = ROW_REGIONS[step % ROW_REGIONS.len()];
    if region == "eu" {
        imetric!("fixture_rows", "count", region = "eu", step as u64);
    } else {
        imetric!("fixture_rows", "count", region = "us", step as u64);
    }
    spin(15);
}

// ======================= async workload on the tokio workers =======================

/// Which worker threads polled the first and last time the `hop_across_workers` future.
#[derive(Debug, Clone)]
pub struct AsyncReport {
    pub hop_begin_thread: String,
    pub hop_end_thread: String,
    pub abandoned_timed_out: bool,
    pub select_winner_won: bool,
}

fn sync_in_async() {
    span_scope!("sync_in_async"); // a thread span on a worker thread, inside async_child_a
    spin(50);
}

#[span_fn]
async fn fetch_resource(id: u64) -> u64 {
    // unnamed async span "make_fixture::workload::fetch_resource", with a named child
    instrument_named!(
        tokio::time::sleep(Duration::from_millis(2 * id)),
        "fetch_io"
    )
    .await;
    id
}

/// Begins on one worker and ends on the other: the blocker, spawned from here, lands in this
/// worker's LIFO slot and keeps it busy (blocking sleep) while the other worker, parked on the
/// timer driver, wakes and resumes this future.
async fn hop_across_workers<B>(blocker: B) -> (String, String, tokio::task::JoinHandle<()>)
where
    B: Future<Output = ()> + Send + 'static,
{
    span_async_named!("hop_across_workers", async move {
        let begin = current_thread_name();
        let handle = tokio::spawn(blocker);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let end = current_thread_name();
        (begin, end, handle)
    })
    .await
}

pub fn async_root_task() -> impl Future<Output = AsyncReport> + Send + 'static {
    span_async_named!("async_root", async {
        // A. nesting through parent ids: root > parent > child_a > grandchild, parent > child_b
        span_async_named!("async_parent", async {
            span_async_named!("async_child_a", async {
                sync_in_async();
                span_async_named!(
                    "async_grandchild",
                    tokio::time::sleep(Duration::from_millis(1))
                )
                .await;
            })
            .await;
            span_async_named!(
                "async_child_b",
                tokio::time::sleep(Duration::from_millis(2))
            )
            .await;
        })
        .await;

        // B. two siblings that overlap without nesting:
        //    left begins, right begins, left ends (~4 ms), right ends (~8 ms)
        tokio::join!(
            span_async_named!("overlap_left", async {
                tokio::time::sleep(Duration::from_millis(2)).await;
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }),
            span_async_named!(
                "overlap_right",
                tokio::time::sleep(Duration::from_millis(8))
            ),
        );

        // C. #[span_fn] async fns (unnamed async spans), concurrently, each with a named child
        let (a, b) = tokio::join!(fetch_resource(1), fetch_resource(2));
        assert_eq!(a + b, 3);

        // D. async spans with names built at run time
        for i in 0..DYN_ASYNC_SPANS {
            span_async_named_dyn!(
                format!("dyn_async_{i}"),
                tokio::time::sleep(Duration::from_millis(1))
            )
            .await;
        }

        // E. a spawned task (its own tokio task) whose span is a child of the root, with a child
        let spawned = spawn_with_context(span_async_named!("spawned_task", async {
            span_async_named!(
                "spawned_child",
                tokio::time::sleep(Duration::from_millis(2))
            )
            .await;
        }));
        spawned.await.expect("spawned task");

        // F. many short async spans: ticker > async_tick x ASYNC_TICKS
        span_async_named!("ticker", async {
            for _ in 0..ASYNC_TICKS {
                span_async_named!("async_tick", tokio::task::yield_now()).await;
            }
        })
        .await;

        // G. a span that begins on one worker thread and ends on the other
        let blocker = span_async_named!("worker_blocker", async {
            std::thread::sleep(Duration::from_millis(30));
        });
        let (hop_begin_thread, hop_end_thread, blocker_handle) = hop_across_workers(blocker).await;
        blocker_handle.await.expect("blocker task");

        // H. a future dropped before completion by a timeout: begin, no end
        let abandoned_timed_out = tokio::time::timeout(
            Duration::from_millis(3),
            span_async_named!(
                "abandoned_by_timeout",
                tokio::time::sleep(Duration::from_secs(10))
            ),
        )
        .await
        .is_err();

        // I. a future dropped by select!: the loser has a begin and no end
        let select_winner_won = tokio::select! {
            biased;
            _ = span_async_named!("select_winner", tokio::time::sleep(Duration::from_millis(2))) => true,
            _ = span_async_named!("select_loser", tokio::time::sleep(Duration::from_secs(10))) => false,
        };

        AsyncReport {
            hop_begin_thread,
            hop_end_thread,
            abandoned_timed_out,
            select_winner_won,
        }
    })
}

// ======================= main thread of the main scenario =======================

fn run_sync_threads() {
    span_scope!("run_sync_threads"); // depth 1 on "main"
    let deep = std::thread::Builder::new()
        .name("fixture-sync-deep".into())
        .spawn(|| traced_thread(deep_thread_main))
        .expect("spawn fixture-sync-deep");
    let named = std::thread::Builder::new()
        .name("fixture-named-spans".into())
        .spawn(|| traced_thread(named_thread_main))
        .expect("spawn fixture-named-spans");
    // No name builder: this thread's stream has no thread-name property.
    let unnamed = std::thread::spawn(|| traced_thread(unnamed_thread_main));
    deep.join().expect("join fixture-sync-deep");
    named.join().expect("join fixture-named-spans");
    unnamed.join().expect("join unnamed thread");
}

fn run_async_runtime() -> AsyncReport {
    span_scope!("run_async_runtime"); // depth 1 on "main"
    let counter = Arc::new(AtomicUsize::new(0));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .enable_all()
        .thread_name_fn(move || {
            format!("fixture-worker-{}", counter.fetch_add(1, Ordering::Relaxed))
        })
        .with_tracing_callbacks()
        .build()
        .expect("building the tokio runtime");
    // Built on this thread, outside any async span: the root's parent is 0, its depth 0.
    let root = async_root_task();
    let handle = runtime.spawn(root);
    let report = runtime.block_on(handle).expect("async root task");
    // Stopping the workers flushes their streams (on_thread_stop).
    drop(runtime);
    report
}

/// The main thread's part: everything else runs on the threads it starts.
pub fn main_scenario() -> AsyncReport {
    span_scope!("main_scenario"); // depth 0 on "main"
    log_every_kind();
    run_sync_threads();
    run_async_runtime()
}

/// One entry at each level and of each form the 0.33 macros write and Micromegas reads, on the
/// main thread before the other threads start (README lists them in this order).
fn log_every_kind() {
    span_scope!("log_every_kind"); // depth 1 on "main"
    info!("fixture main scenario starting"); // LogStaticStrEvent
    warn!(
        "{} workers, {} deep iterations",
        WORKER_THREADS, DEEP_ITERATIONS
    ); // LogStringEventV2
    error!(target: "fixture::custom_target", "an error with code {}", 42);
    fatal!("a fatal entry {}; the program goes on", 1);
    info!(user = "alice", "tagged info {}", 7); // TaggedLogString, interned property set
    let attempt = 3;
    warn!(attempt = %attempt, "tagged warning after {} attempts", attempt); // set made in the block
    debug!("{}", LONG_MESSAGE);
    trace!("trace detail {}", "é");
    fmetric!("fixture_latency", "ms", host = "fixture-host", 1.5); // TaggedFloatMetricEvent
    fmetric!("fixture_latency", "ms", host = "fixture-host", 2.25);
}

/// Longer than the 120 characters a log instant's name keeps.
pub const LONG_MESSAGE: &str = "a long debug message that goes on and on, well past the length \
    that a log instant's name keeps in the trace, so that the name is shortened with an \
    ellipsis while the whole message stays in the entry's arguments";

// ======================= the secondary process =======================

fn secondary_leaf() {
    span_scope!("secondary_leaf"); // depth 3 on "secondary-worker"
    spin(100);
}

fn secondary_step(step: usize) {
    span_scope!("secondary_step"); // depth 2
    info!("secondary step {step}");
    imetric!("secondary_steps_done", "count", step as u64 + 1);
    secondary_leaf();
}

fn secondary_work() {
    span_scope!("secondary_work"); // depth 1
    for step in 0..SECONDARY_STEPS {
        secondary_step(step);
    }
    error!("secondary process done, {} steps", SECONDARY_STEPS);
}

fn secondary_worker_main() {
    span_scope!("secondary_worker_main"); // depth 0 on "secondary-worker"
    secondary_work();
}

pub fn secondary_scenario() {
    span_scope!("secondary_main"); // depth 0 on "main"
    let worker = std::thread::Builder::new()
        .name("secondary-worker".into())
        .spawn(|| traced_thread(secondary_worker_main))
        .expect("spawn secondary-worker");
    secondary_wait(worker);
}

fn secondary_wait(worker: std::thread::JoinHandle<()>) {
    span_scope!("secondary_wait"); // depth 1 on "main"
    worker.join().expect("join secondary-worker");
}
