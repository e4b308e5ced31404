//! Generates one process: its row, its streams, and the blocks of its thread, log and metrics
//! streams.
//!
//! All threads of the process are simulated together in time order (the thread whose next
//! event is earliest goes next), so that an async span can begin on one thread and end on
//! another at a later time. Only the current block of each thread and the async spans in
//! flight are held in memory: a block is encoded and written as soon as it is full.
//!
//! The log and metrics streams are filled afterwards, over the time range the spans took (so
//! that the three kinds of data share one timeline), from random generators of their own: a
//! process without log entries or measures is the same as before they existed.

use anyhow::{Context, Result};
use bytes::Bytes;
use chrono::{DateTime, Duration, TimeZone, Utc};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;
use uuid::Uuid;

use super::block::{AsyncIds, BlockBuilder, Event, Layouts, Naming};
use super::catalog::Catalog;
use super::deps::{DepTypes, FinishedBlock, Tag};
use super::metadata::{
    LOG_DEPENDENCIES, LOG_OBJECTS, METRICS_DEPENDENCIES, METRICS_OBJECTS, THREAD_DEPENDENCIES,
    THREAD_OBJECTS, metadata_cbor,
};
use super::record_block::RecordLayouts;
use super::records::{LogSource, MetricSource, RecordSource, RecordStream, spread};
use super::rng::Rng;
use super::{SynthReport, SynthSpec};
use crate::writer::LakeWriter;
use write_perfetto::lake::rows::{BlockRow, ProcessRow, StreamRow, StreamTypes, TRANSIT_FORMAT};

/// An async end waiting for its time on the thread that will poll the future last:
/// (time, span id, ids, naming, tag). The span id makes the order total.
type PendingEnd = Reverse<(i64, u64, AsyncIds, Naming, Option<Tag>)>;

/// Async spans recently begun, candidates for parents: (span id, depth, end tick).
#[derive(Clone, Copy)]
struct AsyncSpan {
    id: u64,
    depth: u32,
    end: i64,
}

const RECENT_ASYNC: usize = 64;
/// Blocks being encoded on the blocking pool while generation goes on.
const MAX_IN_FLIGHT: usize = 4;
/// Async trees are at most this deep (depths 0..=MAX_ASYNC_DEPTH).
const MAX_ASYNC_DEPTH: u32 = 4;

struct ThreadGen {
    stream_id: Uuid,
    builder: BlockBuilder,
    /// Absolute ticks where the current block began.
    block_begin: i64,
    block_target: usize,
    object_offset: i64,
    last_time: i64,
    stack: Vec<Naming>,
    remaining_spans: u64,
    remaining_async: u64,
    /// Spans and async spans the thread has in all (`--duration`'s schedule).
    work: u64,
    next_own: Option<i64>,
    pending: BinaryHeap<PendingEnd>,
}

impl ThreadGen {
    fn next_time(&self) -> Option<i64> {
        let pending = self.pending.peek().map(|Reverse(p)| p.0);
        match (pending, self.next_own) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Event times of a thread strictly increase.
    fn stamp(&mut self, time: i64) -> i64 {
        let time = time.max(self.last_time + 1);
        self.last_time = time;
        time
    }

    /// Where the thread's time should be, spread over `duration` ticks from `start`: as far
    /// into it as its spans are done.
    fn scheduled(&self, start: i64, duration: i64) -> i64 {
        let left = self.remaining_spans + self.remaining_async;
        let done = self.work.saturating_sub(left) as i128;
        start + (i128::from(duration) * done / i128::from(self.work.max(1))) as i64
    }

    fn has_own_work(&self) -> bool {
        self.remaining_spans > 0 || self.remaining_async > 0 || !self.stack.is_empty()
    }
}

/// Splits `total` into `weights.len()` parts proportional to the weights.
fn split(total: u64, weights: &[u64]) -> Vec<u64> {
    let sum: u64 = weights.iter().sum::<u64>().max(1);
    let mut cumulative = 0u64;
    let mut previous = 0u64;
    weights
        .iter()
        .map(|w| {
            cumulative += w;
            let upto = (u128::from(total) * u128::from(cumulative) / u128::from(sum)) as u64;
            let part = upto - previous;
            previous = upto;
            part
        })
        .collect()
}

/// A process's part of the spec's totals.
#[derive(Debug, Clone, Copy)]
pub(super) struct Share {
    pub spans: u64,
    pub async_spans: u64,
    pub logs: u64,
    pub measures: u64,
}

/// Where a process's ticks are in time.
#[derive(Debug, Clone, Copy)]
struct Timeline {
    start_time: DateTime<Utc>,
    start_ticks: i64,
    /// Ticks per second used to place blocks in time (also when 0 is written to the lake).
    frequency: i64,
}

impl Timeline {
    /// Ticks → a duration at the nominal frequency, in whole nanoseconds.
    fn ticks_duration(&self, ticks: i64) -> Duration {
        Duration::nanoseconds(
            (i128::from(ticks) * 1_000_000_000 / i128::from(self.frequency)) as i64,
        )
    }

    /// The row of a block from `begin` to `end` (absolute ticks); its payload size is set
    /// once encoded. Draws the block id from `ids`, the insert delay from `rng`.
    fn block_row(
        &self,
        (ids, rng): (&mut Rng, &mut Rng),
        (stream_id, process_id): (Uuid, Uuid),
        (begin, end): (i64, i64),
        (nb_objects, object_offset): (usize, i64),
    ) -> BlockRow {
        let (begin_ticks, end_ticks) = (begin - self.start_ticks, end - self.start_ticks);
        let end_time = self.start_time + self.ticks_duration(end_ticks);
        BlockRow {
            block_id: ids.uuid(),
            stream_id,
            process_id,
            begin_time: self.start_time + self.ticks_duration(begin_ticks),
            end_time,
            begin_ticks,
            end_ticks,
            nb_objects: nb_objects as i32,
            object_offset,
            payload_size: 0, // known once encoded
            insert_time: end_time + Duration::microseconds(rng.range(20_000, 500_000) as i64),
        }
    }
}

pub(super) struct ProcessGen<'a> {
    spec: &'a SynthSpec,
    layouts: &'a Layouts,
    record_layouts: &'a RecordLayouts,
    /// Shared with the log and metrics sources while they draw.
    catalog: Arc<Catalog>,
    rng: Rng,
    ids: Rng,
    process_id: Uuid,
    start_time: DateTime<Utc>,
    start_ticks: i64,
    /// Ticks per second used to place blocks in time (also when 0 is written to the lake).
    frequency: i64,
    threads: Vec<ThreadGen>,
    recent_async: VecDeque<AsyncSpan>,
    next_span_id: u64,
    parent_process_id: Option<Uuid>,
    share: Share,
    /// Random draws of the log and metrics streams, apart from the spans' ones.
    record_rng: Rng,
    record_ids: Rng,
    /// The first event of the earliest thread, if the process has spans.
    span_start: Option<i64>,
    /// The log and metrics streams (known once written).
    record_streams: (Uuid, Uuid),
    /// Closed blocks, oldest first: their rows (payload size still 0) and encodings.
    in_flight: VecDeque<(BlockRow, tokio::task::JoinHandle<Result<Vec<u8>>>)>,
    /// Threads other than the one stepped whose next time a step changed (an async end
    /// given to them).
    touched: Vec<usize>,
}

impl<'a> ProcessGen<'a> {
    pub(super) fn new(
        spec: &'a SynthSpec,
        (layouts, record_layouts): (&'a Layouts, &'a RecordLayouts),
        mut rng: Rng,
        share: Share,
        parent_process_id: Option<Uuid>,
    ) -> Self {
        let mut ids = rng.fork(1);
        let catalog = Arc::new(Catalog::new(&mut rng.fork(2)));
        let process_id = ids.uuid();
        let epoch = Utc
            .with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
            .single()
            .expect("valid date");
        let start_time = epoch + Duration::microseconds(rng.below(365 * 86_400 * 1_000_000) as i64);
        let start_ticks = 1_000_000 + rng.below(1_000_000) as i64;
        let frequency = if spec.tsc_frequency > 0 {
            spec.tsc_frequency
        } else {
            1_000_000_000 + rng.below(3000) as i64 * 1_000_000
        };
        let span_weights: Vec<u64> = (0..spec.threads).map(|_| rng.range(1, 4)).collect();
        let async_weights: Vec<u64> = (0..spec.threads).map(|_| rng.range(1, 4)).collect();
        let span_shares = split(share.spans, &span_weights);
        let async_shares = split(share.async_spans, &async_weights);
        let threads = (0..spec.threads)
            .map(|k| {
                // The main thread starts at once, workers within the first 50 ms.
                let start = if k == 0 {
                    start_ticks + rng.range(1000, (frequency / 1000).max(1001) as u64) as i64
                } else {
                    start_ticks
                        + rng.range(
                            (frequency / 1000) as u64,
                            (frequency / 20).max(frequency / 1000 + 1) as u64,
                        ) as i64
                };
                let mut t = ThreadGen {
                    stream_id: ids.uuid(),
                    builder: BlockBuilder::new(layouts),
                    block_begin: start,
                    block_target: 0,
                    object_offset: 0,
                    last_time: start,
                    stack: Vec::new(),
                    remaining_spans: span_shares[k],
                    remaining_async: async_shares[k],
                    work: span_shares[k] + async_shares[k],
                    next_own: None,
                    pending: BinaryHeap::new(),
                };
                if t.has_own_work() {
                    t.next_own = Some(start + rng.range(100, 10_000) as i64);
                }
                t
            })
            .collect::<Vec<ThreadGen>>();
        let span_start = threads.iter().filter_map(|t| t.next_own).min();
        let (record_rng, record_ids) = (rng.fork(3), ids.fork(3));
        let mut generator = Self {
            spec,
            layouts,
            record_layouts,
            catalog,
            rng,
            ids,
            process_id,
            start_time,
            start_ticks,
            frequency,
            threads,
            recent_async: VecDeque::new(),
            next_span_id: 1,
            parent_process_id,
            share,
            record_rng,
            record_ids,
            span_start,
            record_streams: (Uuid::nil(), Uuid::nil()),
            in_flight: VecDeque::new(),
            touched: Vec::new(),
        };
        for k in 0..generator.threads.len() {
            generator.threads[k].block_target = generator.block_target();
        }
        generator
    }

    pub(super) fn process_id(&self) -> Uuid {
        self.process_id
    }

    fn block_target(&mut self) -> usize {
        let n = self.spec.events_per_block.max(1);
        n - self.rng.below(n as u64 / 8 + 1) as usize
    }

    fn timeline(&self) -> Timeline {
        Timeline {
            start_time: self.start_time,
            start_ticks: self.start_ticks,
            frequency: self.frequency,
        }
    }

    /// Ticks → a duration at the nominal frequency, in whole nanoseconds.
    fn ticks_duration(&self, ticks: i64) -> Duration {
        self.timeline().ticks_duration(ticks)
    }

    /// Where thread `k`'s time should be to spread its spans over `--duration` (never later
    /// than the natural time when no duration is asked).
    fn scheduled(&self, k: usize) -> i64 {
        let duration =
            i128::from(self.spec.duration_ns) * i128::from(self.frequency) / 1_000_000_000;
        match duration {
            0 => i64::MIN,
            ticks => {
                (self.threads[k]).scheduled(self.start_ticks, ticks.min(i64::MAX as i128) as i64)
            }
        }
    }

    fn ticks_per_micro(&self) -> u64 {
        (self.frequency / 1_000_000).max(1) as u64
    }

    pub(super) async fn run(mut self, writer: &LakeWriter, report: &mut SynthReport) -> Result<()> {
        self.write_metadata(writer, report).await?;
        // The thread with the earliest next event (the lowest index among equals), from a heap
        // of (time, thread, version): an entry is current while its thread's version is.
        // Scanning every thread at each step made 20,000 threads take hours.
        let mut versions = vec![0u64; self.threads.len()];
        let mut next: BinaryHeap<Reverse<(i64, usize, u64)>> = (self.threads.iter().enumerate())
            .filter_map(|(k, t)| Some(Reverse((t.next_time()?, k, 0))))
            .collect();
        while let Some(Reverse((_, k, version))) = next.pop() {
            if version != versions[k] {
                continue;
            }
            self.touched.clear();
            self.step(k, report);
            self.touched.push(k);
            let mut touched = std::mem::take(&mut self.touched);
            touched.sort_unstable();
            touched.dedup();
            for &t in &touched {
                versions[t] += 1;
                if let Some(time) = self.threads[t].next_time() {
                    next.push(Reverse((time, t, versions[t])));
                }
            }
            self.touched = touched;
            if self.threads[k].builder.nb_objects() >= self.threads[k].block_target {
                self.flush(k, writer, report).await?;
            }
        }
        for k in 0..self.threads.len() {
            if self.threads[k].builder.nb_objects() > 0 {
                self.flush(k, writer, report).await?;
            }
        }
        self.write_records(writer, report).await?;
        while !self.in_flight.is_empty() {
            self.write_oldest(writer, report).await?;
        }
        Ok(())
    }

    async fn write_metadata(
        &mut self,
        writer: &LakeWriter,
        report: &mut SynthReport,
    ) -> Result<()> {
        let ms = |n: u64| Duration::milliseconds(n as i64);
        let index = report.process_ids.len();
        writer
            .insert_process(&ProcessRow {
                process_id: self.process_id,
                exe: format!("/opt/synth/bin/synth-app-{index}"),
                username: "synth".into(),
                realname: "Synthetic User".into(),
                computer: format!("synth-host-{:02}", self.rng.below(100)),
                distro: "Ubuntu 24.04.1 LTS".into(),
                cpu_brand: "Synthetic CPU @ 3.00GHz".into(),
                tsc_frequency: self.spec.tsc_frequency,
                start_time: self.start_time,
                start_ticks: self.start_ticks,
                insert_time: self.start_time + ms(self.rng.range(5, 50)),
                parent_process_id: self.parent_process_id,
                properties: vec![("synth-seed".into(), self.spec.seed.to_string())],
            })
            .await?;
        report.process_ids.push(self.process_id);

        let thread_deps = metadata_cbor(THREAD_DEPENDENCIES)?;
        let thread_objs = metadata_cbor(THREAD_OBJECTS)?;
        // pthread_self() values: addresses of thread control blocks near the top of the heap.
        let thread_base: u64 = 0x7f00_0000_0000 + self.rng.below(0x00ff_ffff) * 0x1000;
        let nb_threads = self.threads.len();
        for k in 0..nb_threads {
            let mut thread_id = thread_base + k as u64 * 0x80_1000;
            if nb_threads >= 3 && k == nb_threads - 2 {
                // Same low 32 bits as thread 0: tools that truncate thread ids merge the two.
                thread_id = thread_base + 0x1_0000_0000;
            }
            let mut properties = vec![("thread-id".to_string(), thread_id.to_string())];
            if nb_threads < 2 || k != nb_threads - 1 {
                properties.push(("thread-name".into(), format!("worker-{k}")));
            }
            let started = self.threads[k].block_begin - self.start_ticks;
            writer
                .insert_stream(
                    &StreamRow {
                        stream_id: self.threads[k].stream_id,
                        process_id: self.process_id,
                        tags: vec!["cpu".into()],
                        properties,
                        insert_time: self.start_time
                            + self.ticks_duration(started)
                            + ms(self.rng.range(1, 20)),
                        format: TRANSIT_FORMAT.into(),
                    },
                    &StreamTypes {
                        dependencies_metadata: thread_deps.clone().into(),
                        objects_metadata: thread_objs.clone().into(),
                    },
                )
                .await?;
            report.streams += 1;
            report.thread_streams += 1;
        }
        // A log and a metrics stream: their blocks come after the threads' (`write_records`).
        let mut record_streams = Vec::new();
        for (tag, deps, objs) in [
            ("log", LOG_DEPENDENCIES, LOG_OBJECTS),
            ("metrics", METRICS_DEPENDENCIES, METRICS_OBJECTS),
        ] {
            let stream_id = self.ids.uuid();
            record_streams.push(stream_id);
            writer
                .insert_stream(
                    &StreamRow {
                        stream_id,
                        process_id: self.process_id,
                        tags: vec![tag.into()],
                        properties: vec![],
                        insert_time: self.start_time + ms(self.rng.range(1, 20)),
                        format: TRANSIT_FORMAT.into(),
                    },
                    &StreamTypes {
                        dependencies_metadata: metadata_cbor(deps)?.into(),
                        objects_metadata: metadata_cbor(objs)?.into(),
                    },
                )
                .await?;
            report.streams += 1;
        }
        self.record_streams = (record_streams[0], record_streams[1]);
        Ok(())
    }

    fn pick_naming(&mut self) -> Naming {
        let c = &self.catalog;
        let roll = self.rng.below(1000);
        if roll < 700 {
            Naming::Desc(self.rng.skewed(c.descs.len()) as u32)
        } else if roll < 900 {
            Naming::Static {
                location: self.rng.index(c.locations.len()) as u32,
                name: self.rng.skewed(c.static_names.len()) as u32,
            }
        } else {
            Naming::Dyn {
                location: self.rng.index(c.locations.len()) as u32,
                name: self.rng.skewed(c.dyn_names.len()) as u32,
            }
        }
    }

    /// About 3% of ends carry properties.
    fn pick_tag(&mut self) -> Option<Tag> {
        if !self.rng.per_mille(30) {
            return None;
        }
        let set = self.rng.index(self.catalog.prop_sets.len()) as u32;
        Some(if self.rng.per_mille(500) {
            Tag::Interned(set)
        } else {
            Tag::Merged {
                set,
                name: self.rng.index(self.catalog.dyn_prop_names.len()) as u32,
                value: self.rng.below(1000),
            }
        })
    }

    fn push(&mut self, k: usize, event: Event, report: &mut SynthReport) {
        self.threads[k]
            .builder
            .push(&self.catalog, self.layouts, &event);
        report.events += 1;
    }

    /// One event on thread `k`: a due async end, or the thread's own next event.
    fn step(&mut self, k: usize, report: &mut SynthReport) {
        let t = &self.threads[k];
        let pending_first = match (t.pending.peek(), t.next_own) {
            (Some(Reverse(p)), Some(own)) => p.0 <= own,
            (Some(_), None) => true,
            _ => false,
        };
        if pending_first {
            let t = &mut self.threads[k];
            let Some(Reverse((time, _, ids, naming, tag))) = t.pending.pop() else {
                return;
            };
            let time = t.stamp(time);
            self.push(
                k,
                Event {
                    async_ids: Some(ids),
                    begin: false,
                    naming,
                    tag,
                    time,
                },
                report,
            );
            return;
        }
        let Some(own) = t.next_own else { return };
        let now = self.threads[k].stamp(own);
        let (remaining_spans, remaining_async, depth) = {
            let t = &self.threads[k];
            (t.remaining_spans, t.remaining_async, t.stack.len() as u64)
        };
        if self.rng.ratio(remaining_async, 2 * remaining_spans + depth) {
            self.threads[k].remaining_async -= 1;
            self.begin_async(k, now, report);
        } else if remaining_spans > 0
            && (depth == 0
                || (depth < u64::from(self.spec.max_depth.max(1)) && self.rng.per_mille(480)))
        {
            let naming = self.pick_naming();
            let t = &mut self.threads[k];
            t.remaining_spans -= 1;
            t.stack.push(naming);
            report.thread_spans += 1;
            self.push(
                k,
                Event {
                    async_ids: None,
                    begin: true,
                    naming,
                    tag: None,
                    time: now,
                },
                report,
            );
        } else if let Some(naming) = self.threads[k].stack.pop() {
            let tag = self.pick_tag();
            self.push(
                k,
                Event {
                    async_ids: None,
                    begin: false,
                    naming,
                    tag,
                    time: now,
                },
                report,
            );
        }
        let us = self.ticks_per_micro();
        let t = &self.threads[k];
        let next = if !t.has_own_work() {
            None
        } else if t.stack.is_empty() {
            // Idle between top-level spans: 10 µs to 10 ms, or until the thread is back on the
            // schedule that spreads its spans over `--duration`.
            let idle = now + self.rng.log_uniform(10 * us, 10_000 * us) as i64;
            Some(idle.max(self.scheduled(k)))
        } else {
            // Work between two events of a call stack: 0.1 µs to 100 µs.
            Some(now + self.rng.log_uniform((us / 10).max(1), 100 * us) as i64)
        };
        self.threads[k].next_own = next;
    }

    fn begin_async(&mut self, k: usize, now: i64, report: &mut SynthReport) {
        let us = self.ticks_per_micro() as i64;
        let span_id = match self.spec.async_span_ids {
            0 => self.next_span_id,
            reused => (self.next_span_id - 1) % reused + 1,
        };
        self.next_span_id += 1;
        let mut parent: Option<AsyncSpan> = None;
        if !self.recent_async.is_empty() && self.rng.per_mille(600) {
            let candidate = self.recent_async[self.rng.index(self.recent_async.len())];
            if candidate.depth < MAX_ASYNC_DEPTH && candidate.end > now + 20 * us {
                parent = Some(candidate);
            }
        }
        let ids = AsyncIds {
            span_id,
            parent_span_id: parent.map_or(0, |p| p.id),
            depth: parent.map_or(0, |p| p.depth + 1),
        };
        let naming = self.pick_naming();
        self.push(
            k,
            Event {
                async_ids: Some(ids),
                begin: true,
                naming,
                tag: None,
                time: now,
            },
            report,
        );
        report.async_spans += 1;

        // 10 µs to 100 ms; most children finish before their parent, some outlive it.
        let mut end = now + self.rng.log_uniform(10 * us as u64, 100_000 * us as u64) as i64;
        if let Some(p) = parent
            && p.end != i64::MAX
            && self.rng.per_mille(900)
        {
            end = end.min(p.end - 1).max(now + 1);
        }
        let unended = self.rng.per_mille(10);
        self.recent_async.push_back(AsyncSpan {
            id: span_id,
            depth: ids.depth,
            end: if unended { i64::MAX } else { end },
        });
        if self.recent_async.len() > RECENT_ASYNC {
            self.recent_async.pop_front();
        }
        if unended {
            // A future dropped before completion: a begin and no end.
            report.async_unended += 1;
            return;
        }
        let target = if self.rng.per_mille(500) {
            k
        } else {
            self.rng.index(self.threads.len())
        };
        let tag = self.pick_tag();
        self.threads[target]
            .pending
            .push(Reverse((end, span_id, ids, naming, tag)));
        self.touched.push(target);
    }

    /// Closes thread `k`'s block and queues it for encoding; writes the oldest queued blocks.
    async fn flush(
        &mut self,
        k: usize,
        writer: &LakeWriter,
        report: &mut SynthReport,
    ) -> Result<()> {
        let block = self.threads[k].builder.finish(&self.catalog);
        let nb_objects = block.nb_objects;
        // The block is closed shortly after its last event; the next one begins there.
        let flush_delay = self.rng.range(1, 1000) as i64;
        let target = self.block_target();
        let t = &mut self.threads[k];
        let end = t.stamp(t.last_time + flush_delay);
        let begin = std::mem::replace(&mut t.block_begin, end);
        let object_offset = t.object_offset;
        t.object_offset += nb_objects as i64;
        t.block_target = target;
        let stream_id = t.stream_id;
        let row = self.timeline().block_row(
            (&mut self.ids, &mut self.rng),
            (stream_id, self.process_id),
            (begin, end),
            (nb_objects, object_offset),
        );
        self.queue(row, block, writer, report).await
    }

    /// Queues a closed block for encoding; writes the oldest queued blocks.
    async fn queue(
        &mut self,
        row: BlockRow,
        block: FinishedBlock,
        writer: &LakeWriter,
        report: &mut SynthReport,
    ) -> Result<()> {
        let encoding = tokio::task::spawn_blocking(move || block.encode());
        self.in_flight.push_back((row, encoding));
        while self.in_flight.len() > MAX_IN_FLIGHT {
            self.write_oldest(writer, report).await?;
        }
        Ok(())
    }

    /// The blocks of the log and metrics streams.
    async fn write_records(&mut self, writer: &LakeWriter, report: &mut SynthReport) -> Result<()> {
        let range = self.record_range();
        let (catalog, layouts) = (Arc::clone(&self.catalog), self.record_layouts);
        let (logs, metrics) = self.record_streams;
        self.write_record_stream(
            (logs, layouts.log_deps),
            LogSource::new(&catalog, layouts),
            (range, self.share.logs),
            writer,
            report,
        )
        .await?;
        self.write_record_stream(
            (metrics, layouts.metric_deps),
            MetricSource::new(&catalog, layouts, self.frequency),
            (range, self.share.measures),
            writer,
            report,
        )
        .await
    }

    /// Where log entries and measures go: the time range of the spans, or, in a process
    /// without spans, from 1 ms after its start, 100 µs per record (at least a second).
    fn record_range(&self) -> (i64, i64) {
        let span_end = (self.threads.iter())
            .filter(|t| t.object_offset > 0)
            .map(|t| t.last_time)
            .max();
        if let (Some(from), Some(to)) = (self.span_start, span_end) {
            return (from, to);
        }
        let from = self.start_ticks + self.frequency / 1000;
        let records = self.share.logs.saturating_add(self.share.measures);
        let length = i128::from(records) * i128::from(self.frequency) / 10_000;
        (
            from,
            from + length.clamp(i128::from(self.frequency), 1 << 60) as i64,
        )
    }

    /// `count` records from `source`, spread over `range`, in blocks of the stream.
    async fn write_record_stream(
        &mut self,
        (stream_id, deps): (Uuid, DepTypes),
        mut source: impl RecordSource,
        (range, count): ((i64, i64), u64),
        writer: &LakeWriter,
        report: &mut SynthReport,
    ) -> Result<()> {
        let mut stream = RecordStream::new(stream_id, deps, range.0);
        stream.block_target = self.record_block_target();
        for i in 0..count {
            let time = stream.stamp(spread(&mut self.record_rng, range, i, count));
            source.push_next(&mut self.record_rng, time, &mut stream.block);
            if stream.block.nb_objects() >= stream.block_target {
                self.close_record_block(&mut stream, writer, report).await?;
            }
        }
        if stream.block.nb_objects() > 0 {
            self.close_record_block(&mut stream, writer, report).await?;
        }
        source.report(report);
        Ok(())
    }

    fn record_block_target(&mut self) -> usize {
        let n = self.spec.events_per_block.max(1);
        n - self.record_rng.below(n as u64 / 8 + 1) as usize
    }

    /// Closes the stream's block, shortly after its last record, as `flush` does a thread's.
    async fn close_record_block(
        &mut self,
        stream: &mut RecordStream,
        writer: &LakeWriter,
        report: &mut SynthReport,
    ) -> Result<()> {
        let block = stream.block.finish(&self.catalog);
        let flush_delay = self.record_rng.range(1, 1000) as i64;
        let end = stream.stamp(stream.last_time + flush_delay);
        let begin = std::mem::replace(&mut stream.block_begin, end);
        let object_offset = stream.object_offset;
        stream.object_offset += block.nb_objects as i64;
        stream.block_target = self.record_block_target();
        let row = self.timeline().block_row(
            (&mut self.record_ids, &mut self.record_rng),
            (stream.stream_id, self.process_id),
            (begin, end),
            (block.nb_objects, object_offset),
        );
        self.queue(row, block, writer, report).await
    }

    /// Writes blocks in the order they were closed, whatever order their encodings finish in.
    async fn write_oldest(&mut self, writer: &LakeWriter, report: &mut SynthReport) -> Result<()> {
        let Some((mut row, encoding)) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let payload = encoding.await.context("block encoding task")??;
        row.payload_size = payload.len() as i64;
        report.blocks += 1;
        report.payload_bytes += payload.len() as u64;
        writer.insert_block(&row, Bytes::from(payload)).await
    }
}
