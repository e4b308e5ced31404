//! The independent reference: every block decoded directly from the lake (no partitions, no
//! cache, no freshness check), then assembled and written by the export's own path
//! (`ProcessAssembler` and `pipeline::write_trace`). What it checks is everything between the
//! lake and the events: partitioning, caching, freshness, the partition files.

#![allow(dead_code)]

use uuid::Uuid;
use write_perfetto::assembly::{EventSource, ProcessAssembler, ProcessData, process_name};
use write_perfetto::clock::Clock;
use write_perfetto::decode::StreamDecoder;
use write_perfetto::events::{AsyncIds, Event, EventOrder, EventTable, LogRow, LogTable};
use write_perfetto::export::{Content, pipeline};
use write_perfetto::lake::rows::{BlockRow, LOG_STREAMS, StreamRow};
use write_perfetto::lake::{Lake, MetadataReads};
use write_perfetto::partitions::{Instance, View};
use write_perfetto::progress::Progress;
use write_perfetto::symbols::Symbols;

/// The reference trace of a process (thread and async spans), computed without partitions.
pub async fn reference_trace(lake: &Lake, process_id: Uuid) -> Vec<u8> {
    let process = lake.metadata.process(&process_id).await.unwrap().unwrap();
    let streams = lake.metadata.thread_streams(&process_id).await.unwrap();
    let blocks = lake.metadata.thread_blocks(&process_id).await.unwrap();
    let log_streams = lake
        .metadata
        .streams(&process_id, LOG_STREAMS)
        .await
        .unwrap();
    let log_blocks = lake
        .metadata
        .blocks(&process_id, LOG_STREAMS)
        .await
        .unwrap();
    let bounds = lake.metadata.block_end_bounds(&process_id).await.unwrap();
    let clock = Clock::for_process(&process, bounds).unwrap();
    let source = DirectSource {
        lake,
        streams: &streams,
        blocks: &blocks,
        log_streams: &log_streams,
        log_blocks: &log_blocks,
        clock,
    };
    let data = ProcessData {
        process_id,
        streams: &streams,
        blocks: &blocks,
        clock: &clock,
        range: None,
    };
    let mut assembler = ProcessAssembler::new(source, data, Symbols::new());
    let contents = [
        Content::ThreadSpans,
        Content::AsyncSpans,
        Content::Logs { max_level: 6 },
    ];
    let name = process_name(&process.exe);
    let written = pipeline::write_trace(
        &mut assembler,
        &contents,
        &name,
        Vec::new(),
        &Progress::new(true),
    )
    .await
    .unwrap();
    written.out
}

/// Events straight from the blocks' payloads.
struct DirectSource<'a> {
    lake: &'a Lake,
    streams: &'a [StreamRow],
    blocks: &'a [BlockRow],
    log_streams: &'a [StreamRow],
    log_blocks: &'a [BlockRow],
    clock: Clock,
}

impl EventSource<LogTable> for DirectSource<'_> {
    async fn read(
        &mut self,
        _view: View,
        _instance: Uuid,
        symbols: &mut Symbols,
        table: &mut LogTable,
    ) -> anyhow::Result<()> {
        table.clear();
        for stream in self.log_streams {
            let decoder =
                StreamDecoder::new(&stream.dependencies_metadata, &stream.objects_metadata)?;
            let blocks = self.log_blocks.iter().enumerate();
            for (position, block) in blocks.filter(|(_, b)| b.stream_id == stream.stream_id) {
                let payload = self.lake.block_payload(block).await?;
                for e in decoder.decode(&payload)?.logs {
                    let pairs: Vec<_> = (e.properties.iter())
                        .map(|(k, v)| (symbols.intern(k), symbols.intern(v)))
                        .collect();
                    table.entries.push(LogRow {
                        ns: self.clock.event_ns(e.ticks),
                        level: e.level,
                        target: symbols.intern(&e.target),
                        msg: symbols.intern(&e.msg),
                        file: symbols.intern(&e.file),
                        line: e.line,
                        properties: symbols.intern_properties(&pairs),
                    });
                    table.orders.push(EventOrder::new(position as u32, e.index));
                }
            }
        }
        Ok(())
    }
}

impl EventSource<EventTable> for DirectSource<'_> {
    async fn read(
        &mut self,
        view: View,
        instance: Uuid,
        symbols: &mut Symbols,
        table: &mut EventTable,
    ) -> anyhow::Result<()> {
        table.clear();
        for stream in self.streams {
            if view.per == Instance::Stream && stream.stream_id != instance {
                continue;
            }
            let decoder =
                StreamDecoder::new(&stream.dependencies_metadata, &stream.objects_metadata)?;
            let blocks = self.blocks.iter().enumerate();
            for (position, block) in blocks.filter(|(_, b)| b.stream_id == stream.stream_id) {
                let payload = self.lake.block_payload(block).await?;
                let events = decoder.decode_block(&payload)?;
                for (index, e) in events.iter().enumerate() {
                    if Some(e.scope) != view.span_scope() {
                        continue;
                    }
                    let pairs: Vec<_> = (e.properties.iter())
                        .map(|(k, v)| (symbols.intern(k), symbols.intern(v)))
                        .collect();
                    table.events.push(Event {
                        ns: self.clock.event_ns(e.ticks),
                        scope: e.scope,
                        phase: e.phase,
                        name: symbols.intern(&e.name),
                        target: symbols.intern(&e.target),
                        file: symbols.intern(&e.file),
                        line: e.line,
                        properties: symbols.intern_properties(&pairs),
                    });
                    table
                        .orders
                        .push(EventOrder::new(position as u32, index as u32));
                    if view.per == Instance::Process {
                        table.ids.push(AsyncIds {
                            span_id: e.span_id,
                            parent_span_id: e.parent_span_id,
                            depth: e.depth,
                        });
                    }
                }
            }
        }
        Ok(())
    }
}
