//! Writes `fixtures/unreal-lake/` (an embedded lake holding one Unreal Engine process, byte for
//! byte what the Micromegas Unreal plugin sends and the ingestion server stores) and
//! `fixtures/unreal-expected.json` (the spans, thread names and times an export must show).
//!
//!     cargo run -p make-unreal-fixture -- [LAKE_DIR [EXPECTED_JSON]]
//!
//! Everything is deterministic: ids, addresses, ticks and times are fixed, so a rerun writes the
//! same rows and payloads.

mod ingest;
mod plugin;
mod scenario;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use std::path::{Path, PathBuf};
use uuid::Uuid;
use write_perfetto_test_lake::writer::LakeWriter;

use ingest::{BlockRequest, ProcessRequest, Server};
use plugin::{Dependencies, Queue};
use scenario::{Addresses, FLUSH_PERIOD, SHUTDOWN, START_TICKS, TSC_FREQUENCY};

/// `CreateGuid` (`HttpEventSink.cpp`) made deterministic: random-looking version-4 UUIDs from
/// a fixed seed.
struct Uuids(u64);

impl Uuids {
    fn next_u64(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn next(&mut self) -> Uuid {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

enum Events {
    Thread(usize),
    Log,
    Metrics,
}

struct Stream {
    id: Uuid,
    tags: &'static [&'static str],
    properties: Vec<(String, String)>,
    events: Events,
    /// Relative ticks of the current block's begin.
    block_begin: u64,
    /// Events already flushed.
    flushed: usize,
    object_offset: i64,
    row_written: bool,
    blocks: usize,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a.starts_with('-')) || args.len() > 2 {
        bail!("usage: make-unreal-fixture [LAKE_DIR [EXPECTED_JSON]]");
    }
    let dir = PathBuf::from(args.first().map_or("fixtures/unreal-lake", String::as_str));
    let expected = PathBuf::from(
        args.get(1)
            .map_or("fixtures/unreal-expected.json", String::as_str),
    );
    if dir.exists() {
        let is_lake = dir.join("lake.db").exists();
        let is_empty = std::fs::read_dir(&dir)?.next().is_none();
        if !is_lake && !is_empty {
            bail!(
                "{} exists and is not a lake: not removing it",
                dir.display()
            );
        }
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(generate(&dir, &expected))
}

async fn generate(dir: &Path, expected_path: &Path) -> Result<()> {
    let mut uuids = Uuids(0x0e4a_1f1c_5eed);
    let process_id = uuids.next();
    let start_time: DateTime<Utc> =
        Utc.with_ymd_and_hms(2026, 11, 27, 14, 3, 21).unwrap() + Duration::milliseconds(250);
    // `DualTime::Now()`: both clocks read together; ticks are 100 ns.
    let system_time = |rel: u64| start_time + Duration::nanoseconds(rel as i64 * 100);
    // The server's clock when a request sent at `rel` arrives.
    let arrival = |rel: u64, n: usize| system_time(rel) + Duration::milliseconds(40 + n as i64);

    let mut addresses = Addresses::default();
    let process = scenario::run(&mut addresses);

    let server = Server {
        writer: LakeWriter::create_embedded(dir).await?,
    };
    let exe = "ArenaGame.exe";
    let properties: Vec<(String, String)> = [
        ("platform-name", "Windows"),
        ("build-version", "++UE5+Release-5.4-CL-33043543"),
        ("engine-version", "5.4.4-33043543+++UE5+Release-5.4"),
        ("build-config", "Development"),
        ("build-target", "Game"),
        ("branch-name", "++ue5+release-5.4"),
        ("exe_args", r#"["-log","-windowed"]"#),
        ("command-line", "-log -windowed"),
        ("commit", "0"),
        ("gpu", "NVIDIA GeForce RTX 3070"),
        ("cpu", "AMD Ryzen 9 5900X 12-Core Processor"),
        ("cpu-physical-cores", "12"),
        ("cpu-logical-cores", "24"),
        ("ram_mb", "65459"),
        // `InitHttpEventSink`'s AdditionalProcessProperties.
        ("fixture-generator", "make-unreal-fixture"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let process_request = ProcessRequest {
        process_id,
        exe: exe.into(),
        username: "builder".into(),
        computer: "ARENA-PC-07".into(),
        distro: "Windows 10.0.22631.1.256.64bit".into(),
        cpu_brand: "AMD Ryzen 9 5900X 12-Core Processor".into(),
        tsc_frequency: TSC_FREQUENCY,
        start_time,
        start_ticks: START_TICKS as i64,
        properties,
    };
    let mut requests = 0usize;
    server
        .insert_process(
            &ingest::insert_process_body(&process_request)?,
            arrival(0, requests),
        )
        .await?;
    requests += 1;

    // `Dispatch::Init`: log, metrics and image streams (the image stream never has a block,
    // so it never gets a row); then one thread stream per thread, as each starts.
    let mut streams = vec![
        Stream::new(uuids.next(), &["log"], vec![], Events::Log, 0),
        Stream::new(uuids.next(), &["metrics"], vec![], Events::Metrics, 0),
    ];
    let _image_stream = uuids.next();
    for (i, thread) in process.threads.iter().enumerate() {
        let properties = vec![
            ("thread-id".to_string(), thread.thread_id.to_string()),
            ("thread-name".to_string(), thread.thread_name().to_string()),
        ];
        streams.push(Stream::new(
            uuids.next(),
            &["cpu"],
            properties,
            Events::Thread(i),
            thread.created,
        ));
    }

    // The flush monitor: every FLUSH_PERIOD, each stream holding events sends its block
    // (`Dispatch::Flush*Stream*`: an empty block is kept, not sent); the last flush is at
    // shutdown.
    let mut flushes: Vec<u64> = (1..)
        .map(|k| k * FLUSH_PERIOD)
        .take_while(|f| *f < SHUTDOWN)
        .collect();
    flushes.push(SHUTDOWN);
    let mut payload_bytes = 0usize;
    for flush in flushes {
        for stream in &mut streams {
            let mut objects = Queue::default();
            let mut deps = Dependencies::default();
            let until = START_TICKS + flush;
            let mut n = 0;
            match stream.events {
                Events::Thread(i) => {
                    for event in process.threads[i].events[stream.flushed..]
                        .iter()
                        .take_while(|e| e.ticks() <= until)
                    {
                        plugin::push_thread_event(&mut objects, event);
                        deps.thread_event(event);
                        n += 1;
                    }
                }
                Events::Log => {
                    for event in process.logs[stream.flushed..]
                        .iter()
                        .take_while(|e| scenario::log_ticks(e) <= until)
                    {
                        plugin::push_log_event(&mut objects, event);
                        deps.log_event(event);
                        n += 1;
                    }
                }
                Events::Metrics => {
                    for event in process.metrics[stream.flushed..]
                        .iter()
                        .take_while(|e| scenario::metric_ticks(e) <= until)
                    {
                        plugin::push_metric_event(&mut objects, event);
                        deps.metric_event(event);
                        n += 1;
                    }
                }
            }
            if n == 0 {
                continue;
            }
            assert_eq!(objects.nb_events, n);
            if !stream.row_written {
                // `FlushPendingStreamMeta`: the stream's description goes first.
                let (dependencies, objects) = match stream.events {
                    Events::Thread(_) => (
                        plugin::thread_dependencies_metadata(),
                        plugin::thread_objects_metadata(),
                    ),
                    Events::Log => (
                        plugin::log_dependencies_metadata(),
                        plugin::log_objects_metadata(),
                    ),
                    Events::Metrics => (
                        plugin::metric_dependencies_metadata(),
                        plugin::metric_objects_metadata(),
                    ),
                };
                let body = ingest::insert_stream_body(
                    stream.id,
                    process_id,
                    &dependencies,
                    &objects,
                    stream.tags,
                    &stream.properties,
                )?;
                server
                    .insert_stream(&body, arrival(flush, requests))
                    .await?;
                requests += 1;
                stream.row_written = true;
            }
            let block = BlockRequest {
                block_id: uuids.next(),
                stream_id: stream.id,
                process_id,
                begin_time: system_time(stream.block_begin),
                begin_ticks: stream.block_begin as i64,
                end_time: system_time(flush),
                end_ticks: flush as i64,
                dependencies: deps.queue.bytes,
                objects: objects.bytes,
                nb_objects: n as i64,
                object_offset: stream.object_offset,
            };
            payload_bytes += server
                .insert_block(
                    &ingest::insert_block_body(&block)?,
                    arrival(flush, requests),
                )
                .await?;
            requests += 1;
            stream.flushed += n;
            stream.object_offset += n as i64;
            stream.block_begin = flush;
            stream.blocks += 1;
        }
    }
    server.writer.close().await;

    // What an export must show.
    let stored_start = ingest::iso8601(&start_time);
    let threads: Vec<serde_json::Value> = process
        .threads
        .iter()
        .zip(&streams[2..])
        .map(|(thread, stream)| {
            json!({
                "stream_id": stream.id.to_string(),
                "thread_name": thread.thread_name(),
                "thread_id": thread.thread_id.to_string(),
                "blocks": stream.blocks,
                "spans": scenario::spans_json(&thread.spans),
            })
        })
        .collect();
    let all_streams: Vec<serde_json::Value> = streams
        .iter()
        .map(|s| {
            json!({
                "stream_id": s.id.to_string(),
                "tags": s.tags,
                "blocks": s.blocks,
                "objects": s.object_offset,
            })
        })
        .collect();
    let expected = json!({
        "generator": "tools/make-unreal-fixture",
        "process_id": process_id.to_string(),
        "exe": exe,
        "tsc_frequency": TSC_FREQUENCY,
        "start_time": stored_start,
        "start_ticks": START_TICKS,
        "streams": all_streams,
        "threads": threads,
        "logs": scenario::logs_json(&process.logs),
        "metrics": scenario::metrics_json(&process.metrics),
    });
    std::fs::write(
        expected_path,
        serde_json::to_string_pretty(&expected)? + "\n",
    )
    .with_context(|| format!("writing {}", expected_path.display()))?;

    let blocks: usize = streams.iter().map(|s| s.blocks).sum();
    let spans: usize = process.threads.iter().map(|t| t.spans.len()).sum();
    println!(
        "process {process_id}: {} streams ({} cpu), {blocks} blocks, {payload_bytes} payload bytes, {spans} thread spans",
        streams.iter().filter(|s| s.row_written).count(),
        process.threads.len(),
    );
    println!("wrote {} and {}", dir.display(), expected_path.display());
    Ok(())
}

impl Stream {
    fn new(
        id: Uuid,
        tags: &'static [&'static str],
        properties: Vec<(String, String)>,
        events: Events,
        created: u64,
    ) -> Self {
        Stream {
            id,
            tags,
            properties,
            events,
            block_begin: created,
            flushed: 0,
            object_offset: 0,
            row_written: false,
            blocks: 0,
        }
    }
}
