//! Fetching the partition files an export reads next while it decodes the current one. A
//! process's threads are read one after another, each from its own files: on a remote store
//! each fetch is a round trip, which read ahead overlap instead of adding up.

use anyhow::Result;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;

use super::ranges::SparseFile;
use super::{StoredFile, lock};

/// Fetches started ahead of their reader, by planned partition. Clones share their state.
#[derive(Default, Clone)]
pub struct ReadAhead {
    state: Arc<Mutex<State>>,
}

/// How far reading ahead goes: this many files at most, and no more bytes than this once
/// one file is ahead. A file larger than the budget is still fetched ahead, alone, if it is
/// planned before `large_alone_before`.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub files: usize,
    pub bytes: u64,
    pub large_alone_before: usize,
}

/// A fetch started ahead: its file's key and size, the row groups fetched (`None`: all),
/// and its bytes to come.
pub struct Started {
    pub key: String,
    pub size: u64,
    pub groups: Option<Vec<usize>>,
    pub fetch: JoinHandle<Result<SparseFile>>,
}

#[derive(Default)]
struct State {
    /// The fetches started ahead, by planned partition.
    started: HashMap<usize, Started>,
    /// Partitions fetched or asked for already: none is fetched ahead twice.
    seen: Vec<bool>,
    /// Partitions not fetched ahead until it is known whether they are read at all.
    held: HashSet<usize>,
    /// Partitions of which only these row groups are read.
    row_groups: HashMap<usize, Vec<usize>>,
}

impl ReadAhead {
    /// The fetch of these row groups of `file` (`None`: all) started ahead for partition
    /// `planned`, if any (a fetch of another file, replaced since, or of other row groups, is
    /// dropped).
    pub fn take(
        &self,
        planned: usize,
        file: &StoredFile,
        groups: Option<&[usize]>,
    ) -> Option<JoinHandle<Result<SparseFile>>> {
        let mut state = lock(&self.state);
        mark(&mut state.seen, planned);
        match state.started.remove(&planned) {
            Some(started) if started.key == file.key && started.groups.as_deref() == groups => {
                Some(started.fetch)
            }
            Some(stale) => {
                stale.fetch.abort();
                None
            }
            None => None,
        }
    }

    /// Marks a partition that is never read: it is not fetched ahead.
    pub fn never(&self, planned: usize) {
        mark(&mut lock(&self.state).seen, planned);
    }

    /// Holds a partition back from reading ahead until [`ReadAhead::release`] or
    /// [`ReadAhead::never`]: whether it is read at all is not known yet.
    pub fn hold(&self, planned: usize) {
        lock(&self.state).held.insert(planned);
    }

    /// Lets a held partition be fetched ahead (unless read already).
    pub fn release(&self, planned: usize) {
        lock(&self.state).held.remove(&planned);
    }

    /// Fetches only these row groups of a partition ahead (the first read of it reads those).
    pub fn only(&self, planned: usize, groups: Vec<usize>) {
        lock(&self.state).row_groups.insert(planned, groups);
    }

    /// Starts fetching the partitions after `planned` (in plan order, which is reading order:
    /// the thread streams, then the async spans, up to `count`) not fetched yet, within
    /// `limit` of fetches ahead of their readers. `size` is a partition's file size; `start`
    /// starts its fetch (of these row groups; `None`: all).
    pub fn start_after(
        &self,
        (planned, count): (usize, usize),
        limit: Limit,
        size: impl Fn(usize) -> u64,
        start: impl Fn(usize, Option<Vec<usize>>) -> Started,
    ) {
        let mut state = lock(&self.state);
        let mut bytes: u64 = state.started.values().map(|s| s.size).sum();
        for next in planned + 1..count {
            if state.started.len() >= limit.files {
                return;
            }
            if state.seen.get(next).copied().unwrap_or(false) || state.held.contains(&next) {
                continue;
            }
            bytes += size(next);
            let alone = state.started.is_empty() && next < limit.large_alone_before;
            if !alone && bytes > limit.bytes {
                return;
            }
            mark(&mut state.seen, next);
            let groups = state.row_groups.get(&next).cloned();
            state.started.insert(next, start(next, groups));
        }
    }
}

fn mark(seen: &mut Vec<bool>, planned: usize) {
    if seen.len() <= planned {
        seen.resize(planned + 1, false);
    }
    seen[planned] = true;
}

impl Drop for State {
    /// Fetches nobody will read (an export that failed or stopped early) stop too, once the
    /// last clone of the [`ReadAhead`] is gone.
    fn drop(&mut self) {
        for (_, started) in self.started.drain() {
            started.fetch.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn file(key: &str) -> StoredFile {
        StoredFile {
            key: key.into(),
            size: 0,
            checksum: String::new(),
            digest: None,
            ranges: None,
        }
    }

    /// Starts a "fetch" of partition `next` whose bytes are its number.
    fn start(next: usize, groups: Option<Vec<usize>>) -> Started {
        let bytes = Bytes::from(next.to_string());
        Started {
            key: format!("file-{next}"),
            size: 10,
            groups,
            fetch: tokio::spawn(async move { Ok(SparseFile::whole(bytes)) }),
        }
    }

    async fn text(fetch: JoinHandle<Result<SparseFile>>) -> String {
        use parquet::file::reader::{ChunkReader, Length};
        let file = fetch.await.unwrap().unwrap();
        let bytes = file.get_bytes(0, file.len() as usize).unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn files(files: usize) -> Limit {
        bytes(files, u64::MAX, usize::MAX)
    }

    fn bytes(files: usize, bytes: u64, large_alone_before: usize) -> Limit {
        Limit {
            files,
            bytes,
            large_alone_before,
        }
    }

    fn started(ahead: &ReadAhead) -> Vec<usize> {
        let mut keys: Vec<usize> = lock(&ahead.state).started.keys().copied().collect();
        keys.sort();
        keys
    }

    #[tokio::test]
    async fn the_next_partitions_are_fetched_ahead_up_to_the_limit_and_once() {
        let ahead = ReadAhead::default();
        ahead.start_after((0, 12), files(3), |_| 10, start);
        // 1, 2 and 3 are coming; 4 waits for one of them to be read.
        for p in [1, 2, 3] {
            let fetch = ahead
                .take(p, &file(&format!("file-{p}")), None)
                .expect("fetched ahead");
            assert_eq!(text(fetch).await, p.to_string());
        }
        assert!(
            ahead.take(4, &file("file-4"), None).is_none(),
            "not started"
        );
        ahead.start_after((5, 12), files(3), |_| 10, start);
        assert!(ahead.take(5, &file("file-5"), None).is_none(), "being read");
        // Those read or started are not fetched again.
        ahead.start_after((0, 12), files(10), |_| 10, start);
        assert_eq!(started(&ahead), [6, 7, 8, 9, 10, 11]);
    }

    #[tokio::test]
    async fn reading_ahead_stops_at_the_byte_budget_but_always_takes_one_file() {
        let ahead = ReadAhead::default();
        let budget = bytes(10, 100, usize::MAX);
        let sizes = |p: usize| [0, 500, 40, 40, 40][p];
        ahead.start_after((0, 5), budget, sizes, start);
        assert_eq!(started(&ahead), [1], "one file over the budget, alone");
        drop(ahead.take(1, &file("file-1"), None));
        ahead.start_after((1, 5), budget, sizes, start);
        assert_eq!(
            started(&ahead),
            [2, 3],
            "80 bytes of 100; the next would pass it"
        );
    }

    #[tokio::test]
    async fn a_large_file_is_fetched_ahead_alone_only_before_the_limit() {
        let ahead = ReadAhead::default();
        let local = bytes(4, 100, 3);
        let sizes = |p: usize| [0, 40, 500, 500, 40][p];
        ahead.start_after((0, 5), local, sizes, start);
        assert_eq!(
            started(&ahead),
            [1],
            "the next, 500 bytes, would pass the budget"
        );
        drop(ahead.take(1, &file("file-1"), None));
        ahead.start_after((1, 5), local, sizes, start);
        assert_eq!(started(&ahead), [2], "alone");
        drop(ahead.take(2, &file("file-2"), None));
        ahead.start_after((2, 5), local, sizes, start);
        assert!(started(&ahead).is_empty(), "not even alone, past the limit");
    }

    #[tokio::test]
    async fn a_held_partition_is_fetched_ahead_only_once_released() {
        let ahead = ReadAhead::default();
        let shared = ahead.clone();
        shared.hold(2);
        shared.hold(3);
        ahead.start_after((0, 5), files(10), |_| 10, start);
        assert_eq!(started(&ahead), [1, 4]);
        shared.release(2);
        shared.never(3);
        ahead.start_after((0, 5), files(10), |_| 10, start);
        assert_eq!(started(&ahead), [1, 2, 4], "3 is never read");
    }

    #[tokio::test]
    async fn a_file_replaced_since_its_fetch_began_is_fetched_again_by_its_reader() {
        let ahead = ReadAhead::default();
        ahead.start_after((0, 2), files(1), |_| 10, start);
        assert!(ahead.take(1, &file("file-1-rebuilt"), None).is_none());
        assert!(ahead.take(1, &file("file-1"), None).is_none(), "dropped");
    }

    #[tokio::test]
    async fn a_partition_read_in_part_is_fetched_ahead_in_that_part_only() {
        let ahead = ReadAhead::default();
        ahead.only(1, vec![2, 5]);
        ahead.only(2, vec![0]);
        ahead.start_after((0, 3), files(2), |_| 10, start);
        let groups = |p: usize| lock(&ahead.state).started[&p].groups.clone();
        assert_eq!(groups(1), Some(vec![2, 5]));
        assert_eq!(groups(2), Some(vec![0]));
        assert!(ahead.take(1, &file("file-1"), Some(&[2, 5])).is_some());
        let other_part = ahead.take(2, &file("file-2"), Some(&[0, 1]));
        assert!(
            other_part.is_none(),
            "fetched for other row groups: dropped"
        );
    }
}
