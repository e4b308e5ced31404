//! An `EventSink` that does, in process, what Micromegas's ingestion server does with what the
//! HTTP sink would send it: a `processes` row at startup, a `streams` row per stream, and for
//! every thread block the exact CBOR body of `insert_block`, decoded as the server decodes it and
//! stored as the server stores it (payload re-encoded with `encode_cbor`, row from the envelope).
//!
//! Callbacks come from the instrumented threads (they are synchronous); they turn the data into
//! rows right away and queue them to a dedicated writer thread that owns the `LakeWriter`.

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use micromegas_telemetry::block_wire_format;
use micromegas_telemetry::stream_info::StreamInfo;
use micromegas_telemetry::wire_format::encode_cbor;
use micromegas_telemetry_sink::stream_block::StreamBlock;
use micromegas_telemetry_sink::stream_info::make_stream_info;
use micromegas_tracing::event::EventSink;
use micromegas_tracing::logs::{LogBlock, LogMetadata, LogStream};
use micromegas_tracing::metrics::{MetricsBlock, MetricsStream};
use micromegas_tracing::prelude::ProcessInfo;
use micromegas_tracing::property_set::DynProperty;
use micromegas_tracing::spans::{ThreadBlock, ThreadStream};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use uuid::Uuid;
use write_perfetto::lake::rows::{BlockRow, ProcessRow, StreamRow, StreamTypes, TRANSIT_FORMAT};
use write_perfetto_test_lake::writer::LakeWriter;

enum Msg {
    Process(ProcessRow),
    Stream(StreamRow, StreamTypes),
    Block(BlockRow, Bytes),
    Shutdown,
}

/// What was written for one stream, for the summary.
#[derive(Debug, Clone, Default)]
pub struct StreamStats {
    pub tags: Vec<String>,
    pub properties: Vec<(String, String)>,
    pub blocks: usize,
    pub objects: i64,
    pub payload_bytes: i64,
}

impl StreamStats {
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// What the writer thread wrote.
#[derive(Debug, Default)]
pub struct LakeStats {
    pub process: Option<ProcessRow>,
    /// In the order the stream rows were inserted.
    pub streams: Vec<(Uuid, StreamStats)>,
}

impl LakeStats {
    pub fn total_blocks(&self) -> usize {
        self.streams.iter().map(|(_, s)| s.blocks).sum()
    }
}

pub struct LakeSink {
    tx: UnboundedSender<Msg>,
    process_info: Mutex<Option<Arc<ProcessInfo>>>,
    /// Stream infos not sent yet: like the 0.33 HTTP sink, a stream's row goes out with its first
    /// block (a stream that never flushes a block never reaches the lake).
    pending_streams: Mutex<HashMap<Uuid, StreamInfo>>,
    errors: Mutex<Vec<String>>,
}

/// Sorted, so that rows do not depend on hash order.
fn sorted_properties(map: &HashMap<String, String>) -> Vec<(String, String)> {
    let sorted: BTreeMap<&String, &String> = map.iter().collect();
    sorted
        .into_iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn parse_time(text: &str) -> Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(text)
        .with_context(|| format!("parsing block time {text:?}"))?
        .with_timezone(&Utc))
}

impl LakeSink {
    /// Starts the writer thread on `dir` (created or opened) and returns the sink and the handle
    /// that yields the stats once the sink has shut down and every row is written.
    pub fn start(dir: PathBuf) -> (Arc<Self>, std::thread::JoinHandle<Result<LakeStats>>) {
        let (tx, rx) = unbounded_channel();
        // Not instrumented: this thread never calls init_thread_stream, so it has no stream.
        let handle = std::thread::Builder::new()
            .name("lake-writer".into())
            .spawn(move || writer_thread(dir, rx))
            .expect("spawning the lake writer thread");
        let sink = Arc::new(Self {
            tx,
            process_info: Mutex::new(None),
            pending_streams: Mutex::new(HashMap::new()),
            errors: Mutex::new(Vec::new()),
        });
        (sink, handle)
    }

    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().unwrap().clone()
    }

    fn record_error(&self, e: anyhow::Error) {
        eprintln!("make-fixture sink error: {e:#}");
        self.errors.lock().unwrap().push(format!("{e:#}"));
    }

    fn send(&self, msg: Msg) {
        if self.tx.send(msg).is_err() {
            self.record_error(anyhow!("lake writer thread is gone"));
        }
    }

    /// What the server does with an `insert_stream` body.
    fn stream_row(info_body: &[u8]) -> Result<(StreamRow, StreamTypes)> {
        let info: StreamInfo =
            ciborium::from_reader(info_body).with_context(|| "parsing StreamInfo")?;
        let row = StreamRow {
            stream_id: info.stream_id,
            process_id: info.process_id,
            tags: info.tags.clone(),
            properties: sorted_properties(&info.properties),
            insert_time: Utc::now(),
            format: TRANSIT_FORMAT.to_string(),
        };
        let types = StreamTypes {
            dependencies_metadata: encode_cbor(&info.dependencies_metadata)?.into(),
            objects_metadata: encode_cbor(&info.objects_metadata)?.into(),
        };
        Ok((row, types))
    }

    fn hold_stream(&self, stream_id: Uuid, info: StreamInfo) {
        self.pending_streams.lock().unwrap().insert(stream_id, info);
    }

    fn flush_pending_stream(&self, stream_id: Uuid) -> Result<()> {
        let pending = self.pending_streams.lock().unwrap().remove(&stream_id);
        if let Some(info) = pending {
            // The HTTP sink's insert_stream body, then the server's decoding of it.
            let body = encode_cbor(&info)?;
            let (row, types) = Self::stream_row(&body)?;
            self.send(Msg::Stream(row, types));
        }
        Ok(())
    }

    /// A thread, log or metrics block: the sink sends all three the same way.
    fn process_block(&self, stream_id: Uuid, block: &impl StreamBlock) -> Result<()> {
        let process_info = self
            .process_info
            .lock()
            .unwrap()
            .clone()
            .ok_or_else(|| anyhow!("block before process startup"))?;
        self.flush_pending_stream(stream_id)?;
        // Exactly the body the HTTP sink posts to /ingestion/insert_block ...
        let body = block.encode_bin(&process_info)?;
        // ... and exactly what the ingestion server does with it.
        let wire: block_wire_format::Block =
            ciborium::from_reader(&body[..]).with_context(|| "parsing block_wire_format::Block")?;
        let payload = encode_cbor(&wire.payload)?;
        let row = BlockRow {
            block_id: wire.block_id,
            stream_id: wire.stream_id,
            process_id: wire.process_id,
            begin_time: parse_time(&wire.begin_time)?,
            end_time: parse_time(&wire.end_time)?,
            begin_ticks: wire.begin_ticks,
            end_ticks: wire.end_ticks,
            nb_objects: wire.nb_objects,
            object_offset: wire.object_offset,
            payload_size: payload.len() as i64,
            insert_time: Utc::now(), // replaced by the writer thread's clock
        };
        self.send(Msg::Block(row, Bytes::from(payload)));
        Ok(())
    }
}

impl EventSink for LakeSink {
    fn on_startup(&self, process_info: Arc<ProcessInfo>) {
        let result = (|| -> Result<ProcessRow> {
            // The HTTP sink's insert_process body, decoded as the server decodes it.
            let body = encode_cbor(&*process_info)?;
            let p: ProcessInfo =
                ciborium::from_reader(&body[..]).with_context(|| "parsing ProcessInfo")?;
            Ok(ProcessRow {
                process_id: p.process_id,
                exe: p.exe,
                username: p.username,
                realname: p.realname,
                computer: p.computer,
                distro: p.distro,
                cpu_brand: p.cpu_brand,
                tsc_frequency: p.tsc_frequency,
                start_time: p.start_time,
                start_ticks: p.start_ticks,
                insert_time: Utc::now(),
                parent_process_id: p.parent_process_id,
                properties: sorted_properties(&p.properties),
            })
        })();
        *self.process_info.lock().unwrap() = Some(process_info);
        match result {
            Ok(row) => self.send(Msg::Process(row)),
            Err(e) => self.record_error(e),
        }
    }

    fn on_shutdown(&self) {
        self.send(Msg::Shutdown);
    }

    /// Every level of the workload's own entries is recorded; the telemetry sink's (one
    /// `encoding block_id=…` per block, as many as the scheduler made blocks) are not.
    fn on_log_enabled(&self, metadata: &LogMetadata) -> bool {
        !metadata.target.starts_with("micromegas_telemetry_sink")
    }

    fn on_log(
        &self,
        _desc: &LogMetadata,
        _properties: &[DynProperty<'_>],
        _time: i64,
        _args: fmt::Arguments<'_>,
    ) {
    }

    fn on_init_log_stream(&self, log_stream: &LogStream) {
        self.hold_stream(log_stream.stream_id(), make_stream_info(log_stream));
    }

    fn on_process_log_block(&self, log_block: Arc<LogBlock>) {
        if let Err(e) = self.process_block(log_block.stream_id, &*log_block) {
            self.record_error(e);
        }
    }

    fn on_init_metrics_stream(&self, metrics_stream: &MetricsStream) {
        self.hold_stream(metrics_stream.stream_id(), make_stream_info(metrics_stream));
    }

    fn on_process_metrics_block(&self, metrics_block: Arc<MetricsBlock>) {
        if let Err(e) = self.process_block(metrics_block.stream_id, &*metrics_block) {
            self.record_error(e);
        }
    }

    fn on_init_thread_stream(&self, thread_stream: &ThreadStream) {
        self.hold_stream(thread_stream.stream_id(), make_stream_info(thread_stream));
    }

    fn on_process_thread_block(&self, thread_block: Arc<ThreadBlock>) {
        if let Err(e) = self.process_block(thread_block.stream_id, &*thread_block) {
            self.record_error(e);
        }
    }

    fn is_busy(&self) -> bool {
        false
    }
}

fn writer_thread(dir: PathBuf, mut rx: UnboundedReceiver<Msg>) -> Result<LakeStats> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let writer = LakeWriter::create_embedded(&dir)
            .await
            .with_context(|| format!("opening the lake in {}", dir.display()))?;
        let mut stats = LakeStats::default();
        let mut index: HashMap<Uuid, usize> = HashMap::new();
        let mut first_error: Option<anyhow::Error> = None;
        let mut metadata: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        // MAKE_FIXTURE_DUMP=FILE: append every event written, decoded with Micromegas's parser.
        let mut dump = match std::env::var_os("MAKE_FIXTURE_DUMP") {
            Some(path) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .with_context(|| format!("opening {}", PathBuf::from(&path).display()))?,
            ),
            None => None,
        };
        while let Some(msg) = rx.recv().await {
            let result = match msg {
                Msg::Shutdown => break,
                Msg::Process(mut row) => {
                    row.insert_time = Utc::now();
                    let r = writer.insert_process(&row).await;
                    stats.process = Some(row);
                    r
                }
                Msg::Stream(mut row, types) => {
                    row.insert_time = Utc::now();
                    let r = writer.insert_stream(&row, &types).await;
                    index.insert(row.stream_id, stats.streams.len());
                    metadata.push((
                        types.dependencies_metadata.to_vec(),
                        types.objects_metadata.to_vec(),
                    ));
                    stats.streams.push((
                        row.stream_id,
                        StreamStats {
                            tags: row.tags.clone(),
                            properties: row.properties.clone(),
                            ..Default::default()
                        },
                    ));
                    r
                }
                Msg::Block(mut row, payload) => {
                    row.insert_time = Utc::now();
                    // Thread blocks only: the property sets of log and metrics blocks need a
                    // custom reader that micromegas-transit does not have.
                    if let Some(dump) = dump.as_mut()
                        && let Some(&i) = index.get(&row.stream_id)
                        && stats.streams[i].1.tags.iter().any(|t| t == "cpu")
                    {
                        let (stream, s) = &stats.streams[i];
                        let thread = s.property("thread-name").unwrap_or("(unnamed)");
                        let header = format!(
                            "process={} thread={thread} stream={stream} block={}",
                            row.process_id, s.blocks
                        );
                        let (deps_meta, objs_meta) = &metadata[i];
                        if let Err(e) =
                            crate::dump::dump_block(dump, &header, deps_meta, objs_meta, &payload)
                        {
                            first_error.get_or_insert(e.context("dumping a block"));
                        }
                    }
                    let r = writer.insert_block(&row, payload).await;
                    if let Some(&i) = index.get(&row.stream_id) {
                        let s = &mut stats.streams[i].1;
                        s.blocks += 1;
                        s.objects += i64::from(row.nb_objects);
                        s.payload_bytes += row.payload_size;
                    }
                    r
                }
            };
            if let Err(e) = result {
                eprintln!("make-fixture: lake write failed: {e:#}");
                first_error.get_or_insert(e);
            }
        }
        writer.close().await;
        match first_error {
            Some(e) => Err(e),
            None => Ok(stats),
        }
    })
}
