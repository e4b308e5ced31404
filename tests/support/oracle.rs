//! The independent reference: every block decoded directly (no partitions), paired and laid
//! out whole, written whole.

#![allow(dead_code)]

use std::collections::HashMap;

use write_perfetto::assembly::{self, AssemblyOptions, AsyncIds, Chain, Event, ThreadData};
use write_perfetto::clock::Clock;
use write_perfetto::decode::StreamDecoder;
use write_perfetto::lake::{Lake, MetadataReads};
use write_perfetto::symbols::Symbols;

/// The reference trace of a process, computed without the partition cache.
pub async fn reference_trace(lake: &Lake, process_id: uuid::Uuid) -> Vec<u8> {
    let process = lake.metadata.process(&process_id).await.unwrap().unwrap();
    let streams = lake.metadata.thread_streams(&process_id).await.unwrap();
    let blocks = lake.metadata.thread_blocks(&process_id).await.unwrap();
    let clock = Clock::for_process(
        &process,
        lake.metadata.block_end_bounds(&process_id).await.unwrap(),
    )
    .unwrap();
    let mut symbols = Symbols::new();
    let mut threads = Vec::new();
    for stream in &streams {
        let decoder =
            StreamDecoder::new(&stream.dependencies_metadata, &stream.objects_metadata).unwrap();
        let props: HashMap<&str, &str> = stream
            .properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let name = match (props.get("thread-name"), props.get("thread-id")) {
            (Some(n), Some(id)) => format!("{n} [{id}]"),
            (None, Some(id)) => format!("thread {id}"),
            (Some(n), None) => n.to_string(),
            (None, None) => format!("stream {}", stream.stream_id),
        };
        let mut data = ThreadData {
            display_name: symbols.intern(&name),
            events: Vec::new(),
            async_ids: Vec::new(),
            chains: Vec::new(),
        };
        let mut expected: Option<i64> = None;
        for block in blocks.iter().filter(|b| b.stream_id == stream.stream_id) {
            let payload = lake.block_payload(block).await.unwrap();
            let begin_ns = clock.relative_ns(block.begin_ticks);
            let end_ns = clock.relative_ns(block.end_ticks.max(block.begin_ticks));
            if expected != Some(block.object_offset) {
                data.chains.push(Chain {
                    begin_ns,
                    end_ns,
                    events: data.events.len()..data.events.len(),
                });
            }
            expected = Some(block.object_offset + block.nb_objects as i64);
            for e in decoder.decode_block(&payload).unwrap() {
                let properties = if e.properties.is_empty() {
                    0
                } else {
                    let pairs: Vec<(&str, &str)> =
                        e.properties.iter().map(|(k, v)| (&**k, &**v)).collect();
                    symbols.intern(&serde_json::to_string(&pairs).unwrap())
                };
                data.events.push(Event {
                    ns: clock.event_ns(e.ticks),
                    scope: e.scope,
                    phase: e.phase,
                    name: symbols.intern(&e.name),
                    target: symbols.intern(&e.target),
                    file: symbols.intern(&e.file),
                    line: e.line,
                    properties,
                });
                data.async_ids.push(AsyncIds {
                    span_id: e.span_id,
                    parent_span_id: e.parent_span_id,
                    depth: e.depth,
                });
            }
            let chain = data.chains.last_mut().unwrap();
            chain.end_ns = chain.end_ns.max(end_ns);
            chain.events.end = data.events.len();
        }
        threads.push(data);
    }
    let name = process.exe.rsplit('/').next().unwrap().to_string();
    let options = AssemblyOptions {
        thread_spans: true,
        async_spans: true,
        range: None,
    };
    let timeline = assembly::assemble(name, &threads, &options);
    let mut bytes = Vec::new();
    write_perfetto::trace::write_trace(&timeline, &symbols, &mut bytes).unwrap();
    bytes
}
