//! Assembled tracks → trace bytes, on two cores: this task reads and assembles each piece of a
//! process (a batch of threads, the async spans, the log, the metrics) while a blocking thread
//! encodes the piece before.
//! The one path from a source of events to a trace, for exports and their tests alike.

use anyhow::{Context, Result};
use std::io::Write;

use crate::assembly::{EventSource, FIRST_TID, PieceSizes, ProcessAssembler, ThreadPart};
use crate::events::{EventTable, LogTable, MeasureTable};
use crate::progress::Progress;
use crate::symbols::{Interned, Mark, SymbolTable, Symbols};
use crate::trace::TraceWriter;
use crate::tracks::{GroupPart, ProcessHeading, Track, TrackGroup};

/// A kind of content a trace can show, in the order traces show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Content {
    /// One track per thread: its spans as a call stack.
    ThreadSpans,
    /// The async spans of the process, on lanes grouped under one track.
    AsyncSpans,
    /// Log entries at `max_level` or more severe (1 fatal … 6 trace), as instants on one lane
    /// per level, grouped under a "log" track.
    Logs { max_level: u8 },
    /// Measures, one counter track per series, grouped under a "metrics" track.
    Metrics,
}

impl Content {
    /// The partition view the content is read from.
    pub fn view(self) -> crate::partitions::View {
        match self {
            Content::ThreadSpans => crate::partitions::View::THREAD_SPANS,
            Content::AsyncSpans => crate::partitions::View::ASYNC_SPANS,
            Content::Logs { .. } => crate::partitions::View::LOGS,
            Content::Metrics => crate::partitions::View::MEASURES,
        }
    }

    /// Whether it shows spans (read from thread streams).
    pub fn is_spans(self) -> bool {
        matches!(self, Content::ThreadSpans | Content::AsyncSpans)
    }
}

/// What writing the trace produced.
pub struct Written<W> {
    pub bytes: u64,
    pub out: W,
    pub thread_tracks: usize,
    pub async_tracks: usize,
    pub log_tracks: usize,
    pub metric_tracks: usize,
}

/// Marks the failures of writing the trace itself, as opposed to reading what goes in it:
/// only those are "cannot write PATH".
#[derive(Debug)]
pub struct WriteFailed;

impl std::fmt::Display for WriteFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cannot write the trace")
    }
}

/// Streams the trace of `contents` (in [`Content`] order) of each process (with its heading,
/// in trace order) to `out`.
pub async fn write_trace<S, W>(
    processes: &mut [(ProcessAssembler<'_, S>, ProcessHeading)],
    contents: &[Content],
    out: W,
    progress: &Progress,
) -> Result<Written<W>>
where
    S: EventSource<EventTable> + EventSource<LogTable> + EventSource<MeasureTable>,
    W: Write + Send + 'static,
{
    // The trace writer gathers packets into large writes itself: no `BufWriter` (an extra copy).
    let mut writer = TraceWriter::new(out);
    let mut counts = TrackCounts::default();
    // Thread ids start above every pid: Perfetto takes a thread whose tid equals a pid for that
    // process's main thread.
    let mut tid = FIRST_TID + processes.len().saturating_sub(1) as i32;
    for (assembler, heading) in processes.iter_mut() {
        writer.start_process(heading).context(WriteFailed)?;
        (writer, tid) =
            write_process(assembler, contents, writer, tid, &mut counts, progress).await?;
    }
    let (bytes, out) = writer.finish().context(WriteFailed)?;
    Ok(Written {
        bytes,
        out,
        thread_tracks: counts.thread,
        async_tracks: counts.async_,
        log_tracks: counts.log,
        metric_tracks: counts.metric,
    })
}

/// Tracks written, of each kind.
#[derive(Default)]
struct TrackCounts {
    thread: usize,
    async_: usize,
    log: usize,
    metric: usize,
}

/// Writes one process's tracks, its threads numbered from `tid`; returns the writer and the
/// next thread id. This task reads and assembles each kind of content while a blocking thread
/// encodes what was read before it: two cores.
async fn write_process<S, W>(
    assembler: &mut ProcessAssembler<'_, S>,
    contents: &[Content],
    writer: TraceWriter<W>,
    tid: i32,
    counts: &mut TrackCounts,
    progress: &Progress,
) -> Result<(TraceWriter<W>, i32)>
where
    S: EventSource<EventTable> + EventSource<LogTable> + EventSource<MeasureTable>,
    W: Write + Send + 'static,
{
    let mut encoder = Encoder::start(writer, &assembler.symbols);
    let read = read_process(assembler, contents, &mut encoder, tid, counts, progress).await;
    let (writer, threads) = encoder.finish().await?;
    // A failed write stops the reading: its error comes first.
    read?;
    counts.thread += threads;
    Ok((writer, tid + threads as i32))
}

/// Reads the contents of a process, in order, and hands them to the encoder; stops early
/// (`Ok`) when the encoder stopped.
async fn read_process<S, W>(
    assembler: &mut ProcessAssembler<'_, S>,
    contents: &[Content],
    encoder: &mut Encoder<W>,
    tid: i32,
    counts: &mut TrackCounts,
    progress: &Progress,
) -> Result<()>
where
    S: EventSource<EventTable> + EventSource<LogTable> + EventSource<MeasureTable>,
    W: Write + Send + 'static,
{
    let stopped = Ok(()); // the encoder stopped; it says why
    if contents.contains(&Content::ThreadSpans) {
        if !read_thread_tracks(assembler, encoder, tid, progress).await? {
            return stopped;
        }
        if !encoder.send(&assembler.symbols, Work::EndOfThreads).await {
            return stopped;
        }
        // The async stage has the highest peak: it does not start while a large thread track
        // is still held for encoding (a warm 10M-span export: peak 290 → 271 MB, medians, in
        // the same time). Small threads keep overlapping it, and so do the logs (in parts).
        let async_next = contents.contains(&Content::AsyncSpans);
        if async_next && !encoder.last_bounded && !encoder.taken().await {
            return stopped;
        }
    }
    if contents.contains(&Content::AsyncSpans) {
        // What the thread stage freed goes back first: the async stage has the highest peak.
        crate::memory::give_back_freed();
        progress.stage(&format!(
            "writing spans: {} thread spans, now the async spans",
            assembler.stats.thread_spans
        ));
        let group = assembler.async_tracks().await?;
        counts.async_ += group.lanes.len();
        if !encoder.send(&assembler.symbols, Work::Group(group)).await {
            return stopped;
        }
    }
    for content in contents {
        if let Content::Logs { max_level } = *content {
            progress.stage("writing log entries");
            if !send_log(assembler, encoder, max_level, counts).await? {
                return stopped;
            }
        }
    }
    if contents.contains(&Content::Metrics) {
        progress.stage("writing metrics");
        let group = assembler.metric_tracks().await?;
        counts.metric += group.lanes.len();
        if !encoder.send(&assembler.symbols, Work::Group(group)).await {
            return stopped;
        }
    }
    Ok(())
}

/// Hands the log lanes to the encoder: their heading, then their parts as they are made;
/// `false` once the encoder stopped.
async fn send_log<S: EventSource<LogTable>, W: Write + Send + 'static>(
    assembler: &mut ProcessAssembler<'_, S>,
    encoder: &mut Encoder<W>,
    max_level: u8,
    counts: &mut TrackCounts,
) -> Result<bool> {
    let mut parts = assembler.log_parts(max_level).await?;
    let head = parts.head();
    counts.log += head.lanes.len();
    if !encoder
        .send(&assembler.symbols, Work::GroupHead(head))
        .await
    {
        return Ok(false);
    }
    while let Some(part) = parts.next_part(&mut assembler.symbols) {
        if !encoder
            .send(&assembler.symbols, Work::GroupPart(part))
            .await
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// What the encoder is handed, in trace order.
enum Work {
    /// Thread tracks.
    Threads(Vec<Track>),
    /// A piece of a large thread's track ([`TraceWriter::thread_piece`]).
    ThreadPiece {
        track: Track,
        first: bool,
        last: bool,
    },
    /// The last thread track was handed over: threads that share sequences are written.
    EndOfThreads,
    /// Lanes under one track of the process (async spans, log levels, metric series).
    Group(TrackGroup),
    /// A group's lanes, named, without their items: the items follow in parts.
    GroupHead(TrackGroup),
    /// Items of the last group's lanes, all after those of its previous parts.
    GroupPart(GroupPart),
}

/// Tracks are handed to the encoder in batches of about this many spans: one hand-off (a
/// thread wake-up) per track made thousands of small threads slow.
const HANDOFF_SPANS: usize = 1 << 15;

/// How many parts of a group (the log's) may wait for the encoder: it then works through
/// them while this task reads what follows (the metrics), instead of both taking turns
/// (a warm export of 1M log entries and 1M measures: 1.62 → 1.45 s, peak +13 MB).
const QUEUED_PARTS: usize = 6;

/// How many pieces of a large thread may wait for the encoder: enough to keep it busy while
/// this task reads and decodes the next thread. The threads of a 10M-span process, against
/// writing them whole (wall time, peak RSS): 6 pieces 1.16×, 188 MB; 12 1.02×, 194 MB; 18
/// 1.00×, 215 MB; whole 245 MB.
const QUEUED_PIECES: usize = 12;

/// Whether a batch of thread tracks is of bounded size: small threads only. A batch is handed
/// over once it holds [`HANDOFF_SPANS`], so one of threads under a quarter of that holds less
/// than 1.25 × as many. Such batches may queue like a group's parts: encoding thousands of
/// small threads is the slower side, and the async stage, next, then overlaps it instead of
/// waiting for the last batch. A batch holding a large thread waits for the queue to empty, as
/// its size has no bound.
fn is_small_batch(tracks: &[Track]) -> bool {
    tracks.iter().all(|t| t.slices.len() < HANDOFF_SPANS / 4)
}

/// Places in the encoder's queue: pieces of work of bounded size take one each.
const QUEUE_PLACES: usize = QUEUED_PIECES;

/// The trace writer on a blocking thread, writing what it is handed in order. Besides the
/// piece being encoded, at most one piece of work waits, or [`QUEUED_PARTS`] pieces of bounded
/// size (parts of a group, batches of small threads), or [`QUEUED_PIECES`] pieces of large
/// threads.
struct Encoder<W: Write> {
    sender: Option<tokio::sync::mpsc::Sender<(Work, Interned)>>,
    thread: tokio::task::JoinHandle<(TraceWriter<W>, Result<usize>)>,
    /// What the encoder's copy of the symbols holds.
    sent: Mark,
    /// Whether the last piece handed over was of bounded size: the end of the threads then
    /// queues behind it. After a large thread it waits for the queue to empty, as before: the
    /// async stage, next, must not start while two large threads are held.
    last_bounded: bool,
}

impl<W: Write + Send + 'static> Encoder<W> {
    fn start(mut writer: TraceWriter<W>, symbols: &Symbols) -> Self {
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<(Work, Interned)>(QUEUE_PLACES);
        let mut copy = symbols.table().clone();
        let thread = tokio::task::spawn_blocking(move || {
            let mut threads = 0;
            while let Some((work, interned)) = receiver.blocking_recv() {
                copy.append(interned);
                if let Err(e) = encode(&mut writer, &copy, work, &mut threads) {
                    return (writer, Err(e.context(WriteFailed)));
                }
            }
            (writer, Ok(threads))
        });
        Self {
            sender: Some(sender),
            thread,
            sent: symbols.mark(),
            last_bounded: false,
        }
    }

    /// Hands `work` over, with the symbols interned since the last; `false` once the encoder
    /// stopped ([`Encoder::finish`] says why). A group's parts, batches of small threads, pieces
    /// of large ones and the end of the threads after them may wait in a queue (they are of
    /// bounded size); anything else waits until the queue is empty, as it may be large.
    async fn send(&mut self, symbols: &Symbols, work: Work) -> bool {
        let interned = symbols.interned_since(self.sent);
        self.sent = symbols.mark();
        let Some(sender) = &self.sender else {
            return false;
        };
        let piece = |track: &Track| track.slices.len() <= 2 * HANDOFF_SPANS;
        // How many pieces of work, this one included, may then wait.
        let queued = match &work {
            Work::ThreadPiece { track, .. } if piece(track) => QUEUED_PIECES,
            Work::GroupPart(_) => QUEUED_PARTS,
            Work::Threads(tracks) if is_small_batch(tracks) => QUEUED_PARTS,
            Work::EndOfThreads if self.last_bounded => QUEUED_PARTS,
            _ => 1,
        };
        self.last_bounded = queued > 1;
        // It goes in once this many of the queue's places are free.
        let slots = QUEUE_PLACES + 1 - queued;
        match sender.reserve_many(slots).await {
            Ok(mut permits) => {
                let permit = permits.next().expect("reserve_many(n > 0) gives n permits");
                permit.send((work, interned));
                true
            }
            Err(_) => false,
        }
    }

    /// Waits until the encoder has taken all it was handed: what it encodes now is the last
    /// piece handed over, and the ones before are written. `false` once it stopped.
    async fn taken(&mut self) -> bool {
        let Some(sender) = &self.sender else {
            return false;
        };
        sender.reserve_many(QUEUE_PLACES).await.is_ok()
    }

    /// Waits for all to be written; returns the writer and the number of thread tracks.
    async fn finish(mut self) -> Result<(TraceWriter<W>, usize)> {
        drop(self.sender.take());
        let (writer, encoded) =
            (self.thread.await).map_err(|e| crate::error::task_failed("the trace encoder", e))?;
        Ok((writer, encoded?))
    }
}

fn encode<W: Write>(
    writer: &mut TraceWriter<W>,
    symbols: &SymbolTable,
    work: Work,
    threads: &mut usize,
) -> Result<()> {
    match work {
        Work::Threads(tracks) => {
            for track in tracks {
                writer.track(symbols, track)?;
                crate::pause::at(crate::pause::Point::ThreadTrackWritten);
                *threads += 1;
            }
            Ok(())
        }
        Work::ThreadPiece { track, first, last } => {
            writer.thread_piece(symbols, &track, first, last)?;
            if last {
                crate::pause::at(crate::pause::Point::ThreadTrackWritten);
                *threads += 1;
            }
            Ok(())
        }
        Work::EndOfThreads => writer.flush_threads(),
        Work::Group(group) => writer.track_group(symbols, &group),
        Work::GroupHead(group) => writer.start_group(&group),
        Work::GroupPart(part) => writer.group_part(symbols, &part.lanes, Some(&part.order)),
    }
}

/// Reads the thread tracks, numbered from `tid`, and hands them to the encoder in batches, a
/// large thread in pieces; stops early (`Ok`) when the encoder stopped.
async fn read_thread_tracks<S: EventSource<EventTable>, W: Write + Send + 'static>(
    assembler: &mut ProcessAssembler<'_, S>,
    encoder: &mut Encoder<W>,
    mut tid: i32,
    progress: &Progress,
) -> Result<bool> {
    let threads = assembler.thread_count();
    let (mut batch, mut batch_spans) = (Vec::new(), 0);
    for k in 0..threads {
        match assembler.thread_part(k, tid, piece_sizes()).await? {
            Some(ThreadPart::Whole(track)) => {
                tid += 1;
                batch_spans += track.slices.len();
                batch.push(track);
            }
            Some(ThreadPart::FirstPiece(track)) => {
                tid += 1;
                // The tracks before it go first.
                if !batch.is_empty() {
                    let before = Work::Threads(std::mem::take(&mut batch));
                    batch_spans = 0;
                    if !encoder.send(&assembler.symbols, before).await {
                        return Ok(false);
                    }
                }
                if !send_pieces(assembler, encoder, track).await? {
                    return Ok(false);
                }
            }
            None => {}
        }
        let last = k + 1 == threads;
        if (batch_spans >= HANDOFF_SPANS || last) && !batch.is_empty() {
            let work = Work::Threads(std::mem::take(&mut batch));
            if !encoder.send(&assembler.symbols, work).await {
                return Ok(false);
            }
            batch_spans = 0;
        }
        let spans = assembler.stats.thread_spans;
        progress.stage(&format!(
            "writing spans: {spans} thread spans, thread {} of {threads}",
            k + 1
        ));
    }
    Ok(true)
}

/// Hands a large thread's pieces to the encoder as they are made, from its `first`; `false`
/// once the encoder stopped.
async fn send_pieces<S: EventSource<EventTable>, W: Write + Send + 'static>(
    assembler: &mut ProcessAssembler<'_, S>,
    encoder: &mut Encoder<W>,
    first: Track,
) -> Result<bool> {
    let (mut track, mut first, mut last) = (first, true, false);
    let mut pieces = 1;
    loop {
        if last {
            log::debug!("thread track {:?} written in pieces: {pieces}", track.name);
        }
        let work = Work::ThreadPiece { track, first, last };
        if !encoder.send(&assembler.symbols, work).await {
            return Ok(false);
        }
        if last {
            return Ok(true);
        }
        let Some(next) = assembler.next_thread_piece().await? else {
            return Ok(true);
        };
        (track, first, last) = (next.0, false, next.1);
        pieces += 1;
    }
}

/// The pieces a large thread is handed on in: about a batch's worth each. The first is large
/// enough to tell the writer that the track has a sequence of its own. Debug builds (the
/// tests) take `WRITE_PERFETTO_THREAD_PIECE_SPANS`, to cut small threads into many pieces.
fn piece_sizes() -> PieceSizes {
    let for_tests = crate::test_sizes::get("WRITE_PERFETTO_THREAD_PIECE_SPANS");
    let rest = for_tests.map_or(HANDOFF_SPANS, |n| n as usize);
    PieceSizes {
        first: rest.max(crate::trace::OWN_SEQUENCE_SLICES),
        rest,
    }
}
