//! Temporary files to delete if the user interrupts the run (Ctrl-C), so none is left behind.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;

static PENDING: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// Unregisters its path when dropped (the file was renamed or deleted by then).
pub struct Registered(PathBuf);

impl Drop for Registered {
    fn drop(&mut self) {
        PENDING
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.0);
    }
}

pub fn register(path: PathBuf) -> Registered {
    PENDING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(path.clone());
    Registered(path)
}

/// Deletes every registered file; called from the interrupt handler before exiting.
pub fn remove_all() {
    let pending = std::mem::take(&mut *PENDING.lock().unwrap_or_else(|e| e.into_inner()));
    for path in pending {
        let _ = std::fs::remove_file(path);
    }
}
