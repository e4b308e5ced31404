//! Temporary files that never outlive the run: deleted when dropped, and by the interrupt
//! handler (Ctrl-C) before it exits, so that no partial file is ever left behind.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

static PENDING: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

fn pending() -> std::sync::MutexGuard<'static, BTreeSet<PathBuf>> {
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// A file under a temporary name next to its destination, renamed into place by `persist`.
pub struct TempFile {
    path: PathBuf,
    file: Option<File>,
}

impl TempFile {
    /// Registers the name before the file exists, so an interrupt at any moment finds it.
    pub fn create_in(dir: &Path) -> std::io::Result<Self> {
        for attempt in 0..16u32 {
            let name = format!(
                ".write-perfetto-{}-{}.tmp",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            );
            let path = dir.join(name);
            pending().insert(path.clone());
            match File::options().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    return Ok(Self {
                        path,
                        file: Some(file),
                    });
                }
                Err(e) => {
                    pending().remove(&path);
                    if e.kind() != std::io::ErrorKind::AlreadyExists || attempt == 15 {
                        return Err(e);
                    }
                }
            }
        }
        unreachable!("the loop returns")
    }

    pub fn file(&self) -> &File {
        self.file.as_ref().expect("open until persisted")
    }

    /// Renames the file to `destination`; on failure the temporary file is deleted.
    pub fn persist(mut self, destination: &Path) -> std::io::Result<()> {
        self.file.take();
        std::fs::rename(&self.path, destination)?;
        pending().remove(&self.path);
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if pending().remove(&self.path) {
            self.file.take();
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Deletes every pending temporary file; called from the interrupt handler before exiting.
pub fn remove_all() {
    let files = std::mem::take(&mut *pending());
    for path in files {
        let _ = std::fs::remove_file(path);
    }
}
