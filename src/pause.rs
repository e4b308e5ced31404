//! Named points where a test can stop the exporter, so that it interrupts or kills a run at an
//! exact state instead of after a guessed delay.
//!
//! `WRITE_PERFETTO_PAUSE_AT=POINT` (or `POINT:N`, the Nth time it is reached) makes the run
//! create the file `WRITE_PERFETTO_PAUSE_FILE` when it reaches the point, then wait there until
//! it is killed or interrupted. `WRITE_PERFETTO_PANIC_AT=POINT` makes the run panic there
//! instead (to test how a bug is reported). Unset (always, outside tests), a point costs one
//! comparison.
//!
//! Debug builds only: the integration tests run the debug binary. In a release build
//! (`debug_assertions` off) [`at`] is an empty inline function, the variables are never read,
//! and none of this is compiled in.

#[cfg(debug_assertions)]
use std::sync::OnceLock;
#[cfg(debug_assertions)]
use std::sync::atomic::{AtomicUsize, Ordering};

/// Where a run can be paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// The partition catalog is open (created if it was missing).
    CatalogOpened,
    /// A partition file is in the store, its catalog row not yet committed.
    PartitionFileStored,
    /// A partition's catalog row is committed.
    PartitionRecorded,
    /// A thread track is in the (temporary) output file.
    ThreadTrackWritten,
}

#[cfg(debug_assertions)]
impl Point {
    fn name(self) -> &'static str {
        match self {
            Point::CatalogOpened => "catalog-opened",
            Point::PartitionFileStored => "partition-file-stored",
            Point::PartitionRecorded => "partition-recorded",
            Point::ThreadTrackWritten => "thread-track-written",
        }
    }
}

#[cfg(debug_assertions)]
struct Pause {
    point: String,
    occurrence: usize,
    /// `None`: panic at the point instead of waiting.
    file: Option<std::path::PathBuf>,
    reached: AtomicUsize,
}

#[cfg(debug_assertions)]
fn configured() -> Option<&'static Pause> {
    static PAUSE: OnceLock<Option<Pause>> = OnceLock::new();
    PAUSE
        .get_or_init(|| {
            let (at, file) = match std::env::var("WRITE_PERFETTO_PANIC_AT") {
                Ok(at) => (at, None),
                Err(_) => (
                    std::env::var("WRITE_PERFETTO_PAUSE_AT").ok()?,
                    Some(std::env::var_os("WRITE_PERFETTO_PAUSE_FILE")?.into()),
                ),
            };
            let (point, occurrence) = match at.split_once(':') {
                Some((point, n)) => (point.to_string(), n.parse().ok()?),
                None => (at, 1),
            };
            Some(Pause {
                point,
                occurrence,
                file,
                reached: AtomicUsize::new(0),
            })
        })
        .as_ref()
}

/// Waits here forever if a test asked to pause at this point (see the module's comment).
#[cfg(debug_assertions)]
pub fn at(point: Point) {
    let Some(pause) = configured() else { return };
    if pause.point != point.name()
        || pause.reached.fetch_add(1, Ordering::SeqCst) + 1 != pause.occurrence
    {
        return;
    }
    let Some(file) = &pause.file else {
        panic!("test panic at {}", point.name());
    };
    if std::fs::write(file, point.name()).is_err() {
        return;
    }
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// Release builds: no test hooks.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn at(_point: Point) {}
