//! Assembled tracks → trace bytes, on two cores: this task reads and assembles a thread while
//! a blocking thread encodes the one before, then reads the async spans while the last threads
//! are encoded; then each further kind of content in turn.
//! The one path from a source of events to a trace, for exports and their tests alike.

use anyhow::{Context, Result};
use std::io::Write;

use crate::assembly::{EventSource, FIRST_TID, ProcessAssembler};
use crate::events::{EventTable, LogTable, MeasureTable};
use crate::progress::Progress;
use crate::symbols::Interned;
use crate::trace::TraceWriter;
use crate::tracks::{ProcessHeading, Track, TrackGroup};

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
/// next thread id.
async fn write_process<S, W>(
    assembler: &mut ProcessAssembler<'_, S>,
    contents: &[Content],
    mut writer: TraceWriter<W>,
    mut tid: i32,
    counts: &mut TrackCounts,
    progress: &Progress,
) -> Result<(TraceWriter<W>, i32)>
where
    S: EventSource<EventTable> + EventSource<LogTable> + EventSource<MeasureTable>,
    W: Write + Send + 'static,
{
    if contents.contains(&Content::ThreadSpans) {
        let first = tid;
        let encoding = start_thread_tracks(assembler, writer, tid, progress).await;
        // The async spans are read while the last thread tracks are encoded (unless reading
        // the threads failed: its error ends the export).
        let group = match contents.contains(&Content::AsyncSpans) && encoding.read.is_ok() {
            true => Some(async_group(assembler, progress).await),
            false => None,
        };
        (writer, tid) = encoding.finish().await?;
        counts.thread += (tid - first) as usize;
        if let Some(group) = group {
            write_async_group(&mut writer, assembler, &group?, counts)?;
        }
    } else if contents.contains(&Content::AsyncSpans) {
        let group = async_group(assembler, progress).await?;
        write_async_group(&mut writer, assembler, &group, counts)?;
    }
    for content in contents {
        let Content::Logs { max_level } = *content else {
            continue;
        };
        progress.stage("writing log entries");
        let group = assembler.log_tracks(max_level).await?;
        writer
            .track_group(&assembler.symbols, &group)
            .context(WriteFailed)?;
        counts.log += group.lanes.len();
    }
    if contents.contains(&Content::Metrics) {
        progress.stage("writing metrics");
        let group = assembler.metric_tracks().await?;
        writer
            .track_group(&assembler.symbols, &group)
            .context(WriteFailed)?;
        counts.metric += group.lanes.len();
    }
    Ok((writer, tid))
}

/// A thread track, and the symbols interned while reading it (for the encoder's copy).
struct ReadTrack {
    track: Track,
    interned: Interned,
}

/// Thread tracks are handed to the encoder in batches of about this many spans: one hand-off
/// (a thread wake-up) per track made thousands of small threads slow.
const HANDOFF_SPANS: usize = 1 << 15;

/// The async spans' lanes.
async fn async_group<S: EventSource<EventTable>>(
    assembler: &mut ProcessAssembler<'_, S>,
    progress: &Progress,
) -> Result<TrackGroup> {
    // What the thread stage freed goes back first: the async stage has the highest peak.
    crate::memory::give_back_freed();
    progress.stage(&format!(
        "writing spans: {} thread spans, now the async spans",
        assembler.stats.thread_spans
    ));
    assembler.async_tracks().await
}

fn write_async_group<S, W: Write>(
    writer: &mut TraceWriter<W>,
    assembler: &ProcessAssembler<'_, S>,
    group: &TrackGroup,
    counts: &mut TrackCounts,
) -> Result<()> {
    (writer.track_group(&assembler.symbols, group)).context(WriteFailed)?;
    counts.async_ += group.lanes.len();
    Ok(())
}

/// Thread tracks read, and being encoded on a blocking thread.
struct ThreadEncoding<W: Write> {
    encoder: tokio::task::JoinHandle<(TraceWriter<W>, Result<i32>)>,
    read: Result<()>,
    first_tid: i32,
}

impl<W: Write> ThreadEncoding<W> {
    /// Waits for the last track to be written; returns the writer and the next thread id (one
    /// per track with spans).
    async fn finish(self) -> Result<(TraceWriter<W>, i32)> {
        let (writer, encoded) =
            (self.encoder.await).map_err(|e| crate::error::task_failed("the trace encoder", e))?;
        // A failed write stops the reading: its error comes first.
        let tracks = encoded?;
        self.read?;
        Ok((writer, self.first_tid + tracks))
    }
}

/// Reads the thread tracks, numbered from `first_tid`, while a blocking thread encodes them:
/// two cores. At most two batches of tracks are alive at once: the reader starts the next one
/// only when the encoder has taken the last. Returns when all are read.
async fn start_thread_tracks<S: EventSource<EventTable>, W: Write + Send + 'static>(
    assembler: &mut ProcessAssembler<'_, S>,
    mut writer: TraceWriter<W>,
    first_tid: i32,
    progress: &Progress,
) -> ThreadEncoding<W> {
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Vec<ReadTrack>>(1);
    let mut symbols = assembler.symbols.table().clone();
    let encoder = tokio::task::spawn_blocking(move || {
        let mut tracks = 0;
        while let Some(batch) = receiver.blocking_recv() {
            for read in batch {
                symbols.append(read.interned);
                if let Err(e) = writer.track(&symbols, read.track) {
                    return (writer, Err(e.context(WriteFailed)));
                }
                crate::pause::at(crate::pause::Point::ThreadTrackWritten);
                tracks += 1;
            }
        }
        match writer.flush_threads(&symbols) {
            Ok(()) => (writer, Ok(tracks)),
            Err(e) => (writer, Err(e.context(WriteFailed))),
        }
    });
    let read = read_thread_tracks(assembler, sender, first_tid, progress).await;
    ThreadEncoding {
        encoder,
        read,
        first_tid,
    }
}

async fn read_thread_tracks<S: EventSource<EventTable>>(
    assembler: &mut ProcessAssembler<'_, S>,
    sender: tokio::sync::mpsc::Sender<Vec<ReadTrack>>,
    mut tid: i32,
    progress: &Progress,
) -> Result<()> {
    // What the encoder's copy of the symbols holds (strings of threads without a track
    // included: they go with the next track).
    let mut sent = assembler.symbols.mark();
    let threads = assembler.thread_count();
    let (mut batch, mut batch_spans) = (Vec::new(), 0);
    for k in 0..threads {
        if let Some(track) = assembler.thread_track(k, tid).await? {
            tid += 1;
            let interned = assembler.symbols.interned_since(sent);
            sent = assembler.symbols.mark();
            batch_spans += track.slices.len();
            batch.push(ReadTrack { track, interned });
        }
        let last = k + 1 == threads;
        if (batch_spans >= HANDOFF_SPANS || last) && !batch.is_empty() {
            if sender.send(std::mem::take(&mut batch)).await.is_err() {
                return Ok(()); // the encoder stopped; it says why
            }
            batch_spans = 0;
        }
        let spans = assembler.stats.thread_spans;
        progress.stage(&format!(
            "writing spans: {spans} thread spans, thread {} of {threads}",
            k + 1
        ));
    }
    Ok(())
}
