//! Fetching the partition files an export reads next while it decodes the current one. A
//! process's threads are read one after another, each from its own files: on a remote store
//! each fetch is a round trip, which read ahead overlap instead of adding up.

use anyhow::Result;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::task::JoinHandle;

use super::{StoredFile, lock};

/// Fetches started ahead of their reader, by planned partition.
#[derive(Default)]
pub struct ReadAhead {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The file being fetched (its key) and its bytes to come, by planned partition.
    started: HashMap<usize, (String, JoinHandle<Result<Bytes>>)>,
    /// Partitions fetched or asked for already: none is fetched ahead twice.
    seen: Vec<bool>,
}

impl ReadAhead {
    /// The fetch of `file` started ahead for partition `planned`, if any (a fetch of another
    /// file, replaced since, is dropped).
    pub fn take(&self, planned: usize, file: &StoredFile) -> Option<JoinHandle<Result<Bytes>>> {
        let mut state = lock(&self.state);
        mark(&mut state.seen, planned);
        match state.started.remove(&planned) {
            Some((key, fetch)) if key == file.key => Some(fetch),
            Some((_, stale)) => {
                stale.abort();
                None
            }
            None => None,
        }
    }

    /// Starts fetching the partitions after `planned` (in plan order, up to `count`) that
    /// `wanted` and not fetched yet, until `limit` fetches are ahead of their readers. `start`
    /// starts one: the key of its file and its bytes to come.
    pub fn start_after(
        &self,
        (planned, count): (usize, usize),
        limit: usize,
        wanted: impl Fn(usize) -> bool,
        start: impl Fn(usize) -> (String, JoinHandle<Result<Bytes>>),
    ) {
        let mut state = lock(&self.state);
        for next in planned + 1..count {
            if state.started.len() >= limit {
                return;
            }
            if state.seen.get(next).copied().unwrap_or(false) || !wanted(next) {
                continue;
            }
            mark(&mut state.seen, next);
            let fetch = start(next);
            state.started.insert(next, fetch);
        }
    }
}

fn mark(seen: &mut Vec<bool>, planned: usize) {
    if seen.len() <= planned {
        seen.resize(planned + 1, false);
    }
    seen[planned] = true;
}

impl Drop for ReadAhead {
    /// Fetches nobody will read (an export that failed or stopped early) stop too.
    fn drop(&mut self) {
        for (_, (_, fetch)) in lock(&self.state).started.drain() {
            fetch.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(key: &str) -> StoredFile {
        StoredFile {
            key: key.into(),
            size: 0,
            checksum: String::new(),
        }
    }

    /// Starts a "fetch" of partition `next` whose bytes are its number.
    fn start(next: usize) -> (String, JoinHandle<Result<Bytes>>) {
        let bytes = Bytes::from(next.to_string());
        (
            format!("file-{next}"),
            tokio::spawn(async move { Ok(bytes) }),
        )
    }

    #[tokio::test]
    async fn the_next_partitions_of_the_view_are_fetched_ahead_up_to_the_limit_and_once() {
        let ahead = ReadAhead::default();
        let thread_view = |p: usize| p.is_multiple_of(2); // odd partitions: another view
        ahead.start_after((0, 20), 3, thread_view, start);
        // 2, 4 and 6 are coming; 8 waits for one of them to be read.
        for p in [2, 4, 6] {
            let fetch = ahead
                .take(p, &file(&format!("file-{p}")))
                .expect("fetched ahead");
            assert_eq!(fetch.await.unwrap().unwrap(), p.to_string());
        }
        assert!(ahead.take(8, &file("file-8")).is_none(), "not started");
        ahead.start_after((8, 20), 3, thread_view, start);
        assert!(ahead.take(3, &file("file-3")).is_none(), "another view");
        // Those read or started are not fetched again.
        ahead.start_after((0, 20), 10, thread_view, start);
        let started: Vec<usize> = {
            let mut keys: Vec<usize> = lock(&ahead.state).started.keys().copied().collect();
            keys.sort();
            keys
        };
        assert_eq!(started, [10, 12, 14, 16, 18]);
    }

    #[tokio::test]
    async fn a_file_replaced_since_its_fetch_began_is_fetched_again_by_its_reader() {
        let ahead = ReadAhead::default();
        ahead.start_after((0, 2), 1, |_| true, start);
        assert!(ahead.take(1, &file("file-1-rebuilt")).is_none());
        assert!(ahead.take(1, &file("file-1")).is_none(), "dropped");
    }
}
