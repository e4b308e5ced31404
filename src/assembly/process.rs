//! The one path from a process's events to its tracks: read a view instance from a source,
//! cut it into chains at the stream's gaps, pair and lay out.

use anyhow::Result;
use uuid::Uuid;

use super::logs::LogParts;
use super::threads::{PieceSizes, PieceStep, ThreadPieces};
use super::{
    AssemblyStats, AsyncEvents, AsyncPairing, Chain, ThreadData, async_tracks, thread_track,
};
use crate::clock::Clock;
use crate::error::{FailureKind, failure};
use crate::events::{EventOrder, EventTable, LogTable, MeasureTable, OrderedRows};
use crate::lake::rows::{BlockRow, ProcessRow, StreamRow, blocks_by_stream};
use crate::partitions::{StreamRuns, View};
use crate::symbols::{FastMap, Sym, Symbols};
use crate::tracks::{ProcessHeading, Track, TrackGroup};
use std::collections::HashMap;

/// Where events come from: the partition cache in an export, direct decoding in the tests'
/// reference. Futures are awaited in place, never spawned: no `Send` bound is needed.
/// `T`: the table of one kind of rows (span events, log entries).
#[allow(async_fn_in_trait)]
pub trait EventSource<T> {
    /// Reads the rows of one view instance (a stream or the process) into `table`, in
    /// stream order, interning their strings in `symbols`.
    async fn read(
        &mut self,
        view: View,
        instance: Uuid,
        symbols: &mut Symbols,
        table: &mut T,
    ) -> Result<()>;

    /// Starts reading a thread stream's rows a run at a time, in stream order, where the
    /// source can and the rows can be paired as they come (no end among them closes a span
    /// begun before the first). `None`: it is read whole.
    async fn thread_runs(&mut self, _stream: Uuid) -> Result<Option<StreamRuns>> {
        Ok(None)
    }

    /// Starts reading a process's async events a run at a time: one read per partition file,
    /// each giving its events in time order, where the source can. `None`: they are read whole.
    async fn async_runs(&mut self, _process: Uuid) -> Result<Option<Vec<StreamRuns>>> {
        Ok(None)
    }

    /// Reads the next run of the rows into `table`, interning their strings in `symbols`;
    /// `false` once all are read.
    async fn next_run(
        &mut self,
        _runs: &mut StreamRuns,
        _symbols: &mut Symbols,
        _table: &mut T,
    ) -> Result<bool> {
        Ok(false)
    }
}

/// What assembly knows of the process: its streams and blocks as the export read them.
#[derive(Clone, Copy)]
pub struct ProcessData<'a> {
    pub process_id: Uuid,
    /// Thread streams, in stream id order.
    pub streams: &'a [StreamRow],
    /// Their blocks, ordered by stream, object offset, block id.
    pub blocks: &'a [BlockRow],
    pub clock: &'a Clock,
    /// Keep only spans overlapping `[begin, end]` (ns), clipped to it.
    pub range: Option<(i64, i64)>,
}

/// Reads and assembles a process's tracks, one thread at a time, then its async lanes.
pub struct ProcessAssembler<'a, S> {
    source: S,
    process: ProcessData<'a>,
    pub symbols: Symbols,
    pub stats: AssemblyStats,
    /// Display name of each stream, by position.
    thread_names: Vec<Sym>,
    /// The thread (display name) of each block, by position: async events find theirs by it.
    block_threads: Vec<Sym>,
    /// One table for all reads: its buffers are reused instead of reallocated.
    table: EventTable,
    /// The threads given a track: (tid, stream position), in the order written.
    written_threads: Vec<(i32, usize)>,
    /// The positions of each stream's blocks, in stream order.
    stream_blocks: HashMap<Uuid, Vec<usize>>,
    /// The large thread being made in pieces, if any.
    pieces: Option<ThreadPieces>,
    /// Where the read of its events run by run stands, if it is read so.
    runs: Option<StreamRuns>,
}

/// A thread's track as [`ProcessAssembler::thread_part`] gives it.
pub enum ThreadPart {
    Whole(Track),
    /// The first piece of a large thread's track; the others follow.
    FirstPiece(Track),
}

impl<'a, S> ProcessAssembler<'a, S> {
    /// `symbols`: where strings are interned (new, or holding what the source's events use).
    pub fn new(source: S, process: ProcessData<'a>, mut symbols: Symbols) -> Self {
        let thread_names: Vec<Sym> = (process.streams.iter())
            .map(|s| symbols.intern(&thread_display_name(s)))
            .collect();
        let by_stream: FastMap<Uuid, Sym> = (process.streams.iter())
            .zip(&thread_names)
            .map(|(s, &name)| (s.stream_id, name))
            .collect();
        let block_threads = (process.blocks.iter())
            .map(|b| by_stream.get(&b.stream_id).copied().unwrap_or_default())
            .collect();
        let stream_blocks = blocks_by_stream(process.blocks);
        Self {
            source,
            process,
            symbols,
            stats: AssemblyStats::default(),
            thread_names,
            block_threads,
            table: EventTable::default(),
            written_threads: Vec::new(),
            stream_blocks,
            pieces: None,
            runs: None,
        }
    }

    /// The positions of a stream's blocks, in stream order.
    fn blocks_of(&self, stream: &StreamRow) -> &[usize] {
        (self.stream_blocks.get(&stream.stream_id)).map_or(&[], Vec::as_slice)
    }

    pub fn thread_count(&self) -> usize {
        self.process.streams.len()
    }

    /// The threads given a track so far, in trace order: their tid, name and stream.
    pub fn written_threads(&self) -> impl Iterator<Item = (i32, &str, &StreamRow)> {
        (self.written_threads.iter()).map(|&(tid, k)| {
            let name = self.symbols.get(self.thread_names[k]);
            (tid, name, &self.process.streams[k])
        })
    }
}

impl<'a, S: EventSource<EventTable>> ProcessAssembler<'a, S> {
    /// The track of the `k`th thread stream, `None` when it has no span in the range.
    pub async fn thread_track(&mut self, k: usize, tid: i32) -> Result<Option<Track>> {
        let thread = self.read_thread(k).await?;
        Ok(self.whole_track(thread, k, tid))
    }

    /// The `k`th thread's track made whole; its events' buffer goes back to the table.
    fn whole_track(&mut self, thread: ThreadData, k: usize, tid: i32) -> Option<Track> {
        let track = thread_track(&thread, tid, self.process.range, &mut self.stats);
        self.table.events = thread.events;
        if track.is_some() {
            self.written_threads.push((tid, k));
        }
        track
    }

    /// The track of the `k`th thread stream, whole ([`ThreadPart::Whole`]), or its first
    /// piece when it is large: [`Self::next_thread_piece`] then gives the others. `None` when
    /// it has no span in the range.
    pub async fn thread_part(
        &mut self,
        k: usize,
        tid: i32,
        sizes: PieceSizes,
    ) -> Result<Option<ThreadPart>> {
        let pieces = match self.thread_in_runs(k, tid, sizes).await? {
            Some(pieces) => pieces,
            None => {
                let thread = self.read_thread(k).await?;
                match ThreadPieces::of(thread, tid, self.process.range, sizes) {
                    Ok(pieces) => pieces,
                    Err(thread) => {
                        return Ok(self.whole_track(thread, k, tid).map(ThreadPart::Whole));
                    }
                }
            }
        };
        self.pieces = Some(pieces);
        let part = match self.next_thread_piece().await? {
            Some((track, true)) => ThreadPart::Whole(track),
            Some((track, false)) => ThreadPart::FirstPiece(track),
            None => return Ok(None),
        };
        if matches!(&part, ThreadPart::Whole(track) if track.slices.is_empty()) {
            return Ok(None);
        }
        self.written_threads.push((tid, k));
        Ok(Some(part))
    }

    /// The pieces of the `k`th thread, its events to be read run by run, if the source reads
    /// it so and the whole of it is one chain.
    async fn thread_in_runs(
        &mut self,
        k: usize,
        tid: i32,
        sizes: PieceSizes,
    ) -> Result<Option<ThreadPieces>> {
        if self.process.range.is_some() {
            return Ok(None);
        }
        let stream = &self.process.streams[k];
        let [chain] = &chains(&self.process, self.blocks_of(stream), &[])?[..] else {
            return Ok(None);
        };
        let Some(runs) = self.source.thread_runs(stream.stream_id).await? else {
            return Ok(None);
        };
        self.runs = Some(runs);
        let name = self.symbols.get(self.thread_names[k]).to_string();
        Ok(Some(ThreadPieces::fed(name, chain, tid, sizes)))
    }

    /// The next piece of the thread [`Self::thread_part`] began in pieces, and whether it is
    /// the last; `None` after the last.
    pub async fn next_thread_piece(&mut self) -> Result<Option<(Track, bool)>> {
        loop {
            let Some(pieces) = self.pieces.as_mut() else {
                return Ok(None);
            };
            match pieces.next_piece(&mut self.stats) {
                Some(PieceStep::NeedsEvents) => {
                    // One buffer of events, read into and paired from in turn.
                    self.table.events = pieces.spent_events();
                    let more = match self.runs.as_mut() {
                        Some(runs) => {
                            let read =
                                self.source
                                    .next_run(runs, &mut self.symbols, &mut self.table);
                            read.await?
                        }
                        None => false,
                    };
                    if more {
                        pieces.feed(std::mem::take(&mut self.table.events));
                    } else {
                        pieces.no_more_events();
                        self.runs = None;
                    }
                }
                Some(PieceStep::Piece(track, last)) => {
                    if last {
                        self.end_pieces();
                    }
                    return Ok(Some((track, last)));
                }
                None => {
                    self.end_pieces();
                    return Ok(None);
                }
            }
        }
    }

    /// Done with the large thread's pieces: its events' buffer goes back to the table.
    fn end_pieces(&mut self) {
        if let Some(done) = self.pieces.take() {
            self.table.events = done.into_events();
        }
        self.runs = None;
    }

    async fn read_thread(&mut self, k: usize) -> Result<ThreadData> {
        let stream = &self.process.streams[k];
        (self.source)
            .read(
                View::THREAD_SPANS,
                stream.stream_id,
                &mut self.symbols,
                &mut self.table,
            )
            .await?;
        Ok(ThreadData {
            name: self.symbols.get(self.thread_names[k]).to_string(),
            events: std::mem::take(&mut self.table.events),
            chains: chains(&self.process, self.blocks_of(stream), &self.table.orders)?,
        })
    }

    /// The async lanes of the process.
    pub async fn async_tracks(&mut self) -> Result<TrackGroup> {
        let process = self.process;
        if process.range.is_none()
            && let Some(files) = self.source.async_runs(process.process_id).await?
        {
            return self.async_tracks_in_runs(files).await;
        }
        (self.source)
            .read(
                View::ASYNC_SPANS,
                process.process_id,
                &mut self.symbols,
                &mut self.table,
            )
            .await?;
        let table = std::mem::take(&mut self.table);
        let block_threads = &self.block_threads;
        let thread_of = |order: EventOrder| block_threads[order.block_position()];
        let events = AsyncEvents {
            events: table.events,
            ids: table.ids,
            orders: table.orders,
            thread_of: &thread_of,
        };
        Ok(async_tracks(
            events,
            (data_bounds(&process), process.range),
            &self.symbols,
            &mut self.stats,
        ))
    }
}

impl<'a, S: EventSource<EventTable>> ProcessAssembler<'a, S> {
    /// The async lanes of the process, its events read run by run from each of `files` and
    /// merged in time order, paired as they come. A file is opened when the merge reaches the
    /// time of its first event (partitions of insert-time buckets mostly follow one another):
    /// each file open holds a run.
    async fn async_tracks_in_runs(&mut self, files: Vec<StreamRuns>) -> Result<TrackGroup> {
        let block_threads = &self.block_threads;
        let thread_of = |order: EventOrder| block_threads[order.block_position()];
        let mut pairing = AsyncPairing::new(data_bounds(&self.process), &thread_of);
        let clock = self.process.clock;
        // Files not opened yet, the latest first; those opened, each with its current run and
        // the next of its events to pair. The first is read into the threads' buffers.
        let mut waiting: Vec<(i64, StreamRuns)> = (files.into_iter())
            .map(|runs| {
                (
                    runs.min_ticks().map_or(i64::MIN, |t| clock.event_ns(t)),
                    runs,
                )
            })
            .collect();
        waiting.sort_by_key(|(from_ns, _)| std::cmp::Reverse(*from_ns));
        let mut open: Vec<(StreamRuns, EventTable, usize)> = Vec::new();
        let mut spare = std::mem::take(&mut self.table);
        loop {
            // Each file open holds an event to pair, or is done.
            let mut k = 0;
            while k < open.len() {
                let (runs, table, next) = &mut open[k];
                if *next < table.events.len() {
                    k += 1;
                } else if self.source.next_run(runs, &mut self.symbols, table).await? {
                    *next = 0;
                } else {
                    let (_, table, _) = open.swap_remove(k);
                    spare = table;
                }
            }
            let head = |(_, table, next): &(StreamRuns, EventTable, usize)| table.events[*next].ns;
            let earliest = (open.iter().enumerate()).min_by_key(|(_, file)| head(file));
            let earliest_ns = earliest.map(|(_, file)| head(file));
            // A file whose events may come before the earliest open, or the next when none is
            // open, opens.
            if let Some(&(from_ns, _)) = waiting.last()
                && earliest_ns.is_none_or(|ns| from_ns <= ns)
            {
                let (_, runs) = waiting.pop().expect("checked above");
                let mut table = std::mem::take(&mut spare);
                table.clear();
                open.push((runs, table, 0));
                continue;
            }
            let Some((k, _)) = earliest else { break };
            // The earliest file's events up to the first another file may hold go at once.
            let others = (open.iter().enumerate()).filter(|&(j, _)| j != k);
            let waiting_from = waiting.last().map(|&(from_ns, _)| from_ns);
            let until = (others.map(|(_, file)| head(file)).chain(waiting_from)).min();
            let (_, table, next) = &mut open[k];
            while let Some(&event) = table.events.get(*next)
                && until.is_none_or(|until| event.ns <= until)
            {
                let at = *next;
                pairing.push((event, table.ids[at], table.orders[at]), &mut self.stats)?;
                *next += 1;
            }
        }
        // The runs' buffers are given back before the layout, the stage's peak.
        drop((open, spare));
        Ok(pairing.finish(&self.symbols, &mut self.stats))
    }
}

impl<'a, S: EventSource<LogTable>> ProcessAssembler<'a, S> {
    /// The log lanes of the process, in parts: entries at `max_level` or more severe.
    pub async fn log_parts(&mut self, max_level: u8) -> Result<LogParts> {
        let mut table = LogTable::default();
        let process = self.process;
        (self.source)
            .read(
                View::LOGS,
                process.process_id,
                &mut self.symbols,
                &mut table,
            )
            .await?;
        Ok(LogParts::new(
            table,
            max_level,
            process.range,
            &mut self.symbols,
            &mut self.stats,
        ))
    }
}

impl<'a, S: EventSource<MeasureTable>> ProcessAssembler<'a, S> {
    /// The counter tracks of the process's measures.
    pub async fn metric_tracks(&mut self) -> Result<TrackGroup> {
        let mut table = MeasureTable::default();
        let process = self.process;
        (self.source)
            .read(
                View::MEASURES,
                process.process_id,
                &mut self.symbols,
                &mut table,
            )
            .await?;
        Ok(super::metrics::metric_tracks(
            &table,
            process.clock.frequency,
            process.range,
            &mut self.symbols,
            &mut self.stats,
        ))
    }
}

/// The `[begin, end]` of all the process's blocks: where spans that never ended are drawn to.
fn data_bounds(process: &ProcessData<'_>) -> (i64, i64) {
    let bounds = process.blocks.iter().map(|b| process.clock.block_bounds(b));
    bounds.fold((i64::MAX, i64::MIN), |(b, e), (bb, be)| {
        (b.min(bb), e.max(be))
    })
}

/// Splits a stream's blocks into runs without a gap in `object_offset`, each with the range
/// of its events (`orders`: the stream's event places, in stream order).
fn chains(
    process: &ProcessData<'_>,
    stream_blocks: &[usize],
    orders: &[EventOrder],
) -> Result<Vec<Chain>> {
    let mut chains: Vec<Chain> = Vec::new();
    let mut expected_offset: Option<i64> = None;
    let mut next = 0;
    for &position in stream_blocks {
        let block = &process.blocks[position];
        let (begin_ns, end_ns) = process.clock.block_bounds(block);
        let contiguous = expected_offset == Some(block.object_offset);
        expected_offset = Some(next_offset(block)?);
        let chain = match chains.last_mut() {
            Some(chain) if contiguous => {
                chain.end_ns = chain.end_ns.max(end_ns);
                chain
            }
            _ => {
                chains.push(Chain {
                    begin_ns,
                    end_ns,
                    events: next..next,
                });
                chains.last_mut().expect("pushed on the line above")
            }
        };
        while orders
            .get(next)
            .is_some_and(|order| order.block_position() == position)
        {
            next += 1;
        }
        chain.events.end = next;
    }
    Ok(chains)
}

/// The object offset the block after this one has when none is missing.
fn next_offset(block: &BlockRow) -> Result<i64> {
    block
        .object_offset
        .checked_add(i64::from(block.nb_objects))
        .ok_or_else(|| {
            failure(
                FailureKind::LakeData,
                format!(
                    "bad lake metadata: block {} of stream {} has object_offset {} and nb_objects {}, whose sum is out of range",
                    block.block_id, block.stream_id, block.object_offset, block.nb_objects
                ),
            )
        })
}

/// The heading of a process: named after its executable's file name, the way people name
/// their process, and labelled with its Micromegas id, to find it again in the lake.
pub fn process_heading(process: &ProcessRow) -> ProcessHeading {
    let exe = &process.exe;
    let name = exe.rsplit(['/', '\\']).next().unwrap_or(exe);
    ProcessHeading {
        name: if name.is_empty() { "process" } else { name }.to_string(),
        labels: vec![format!("process {}", process.process_id)],
    }
}

/// `thread-name`, else `thread <thread-id>`, else `stream <stream-id>`. The UI shows it with
/// the trace's tid, which keeps threads of the same name apart; the thread id of a named
/// thread is in the `--json` summary, by tid.
fn thread_display_name(stream: &StreamRow) -> String {
    match (
        stream.property("thread-name").filter(|n| !n.is_empty()),
        stream.property("thread-id"),
    ) {
        (Some(name), _) => name.to_string(),
        (None, Some(id)) => format!("thread {id}"),
        (None, None) => format!("stream {}", stream.stream_id),
    }
}
