//! The independent reference: every block decoded directly from the lake (no partitions, no
//! cache, no freshness check), then assembled and written by the export's own path
//! (`ProcessAssembler` and `pipeline::write_trace`). What it checks is everything between the
//! lake and the events: partitioning, caching, freshness, the partition files.

#![allow(dead_code)]

use std::collections::HashMap;
use uuid::Uuid;
use write_perfetto::assembly::{EventSource, ProcessAssembler, ProcessData, process_heading};
use write_perfetto::clock::Clock;
use write_perfetto::decode::{DecodedBlock, StreamDecoder};
use write_perfetto::events::{
    AsyncIds, Event, EventOrder, EventTable, LogRow, LogTable, MeasureRow, MeasureTable,
    OrderedRows,
};
use write_perfetto::export::{Content, pipeline};
use write_perfetto::lake::rows::{
    BlockRow, LOG_STREAMS, METRIC_STREAMS, ProcessRow, StreamRow, StreamTypes, THREAD_STREAMS,
};
use write_perfetto::lake::{Lake, MetadataReads};
use write_perfetto::partitions::{Instance, View};
use write_perfetto::progress::Progress;
use write_perfetto::symbols::Symbols;

/// The reference trace of a process (spans, logs, metrics), computed without partitions.
pub async fn reference_trace(lake: &Lake, process_id: Uuid) -> Vec<u8> {
    reference_trace_of(lake, &[process_id]).await
}

/// What the reference reads of one process.
struct ProcessStreams {
    process: ProcessRow,
    threads: (Vec<StreamRow>, Vec<BlockRow>),
    logs: (Vec<StreamRow>, Vec<BlockRow>),
    metrics: (Vec<StreamRow>, Vec<BlockRow>),
    types: HashMap<Uuid, StreamTypes>,
    clock: Clock,
}

async fn read_process(lake: &Lake, process_id: Uuid) -> ProcessStreams {
    let process = lake.metadata.process(&process_id).await.unwrap().unwrap();
    let of_kind = async |kind| {
        let streams = lake.metadata.streams(&process_id, kind).await.unwrap();
        let blocks = lake.metadata.blocks(&process_id, kind).await.unwrap();
        (streams, blocks)
    };
    let bounds = lake.metadata.block_end_bounds(&process_id).await.unwrap();
    let clock = Clock::for_process(&process, bounds).unwrap();
    ProcessStreams {
        process,
        threads: of_kind(THREAD_STREAMS).await,
        logs: of_kind(LOG_STREAMS).await,
        metrics: of_kind(METRIC_STREAMS).await,
        types: lake
            .metadata
            .stream_types(&process_id, &|_| true)
            .await
            .unwrap(),
        clock,
    }
}

/// The reference trace of these processes, in this order, in one trace.
pub async fn reference_trace_of(lake: &Lake, process_ids: &[Uuid]) -> Vec<u8> {
    reference_trace_in(lake, process_ids, None).await
}

/// The reference trace of these processes showing only `range` (Unix ns) when given.
pub async fn reference_trace_in(
    lake: &Lake,
    process_ids: &[Uuid],
    range: Option<(i64, i64)>,
) -> Vec<u8> {
    let mut read = Vec::new();
    for id in process_ids {
        read.push(read_process(lake, *id).await);
    }
    let mut processes: Vec<_> = (read.iter())
        .map(|p| {
            let source = DirectSource {
                lake,
                streams: &p.threads.0,
                blocks: &p.threads.1,
                logs: (&p.logs.0, &p.logs.1),
                metrics: (&p.metrics.0, &p.metrics.1),
                types: &p.types,
                clock: p.clock,
            };
            let data = ProcessData {
                process_id: p.process.process_id,
                streams: &p.threads.0,
                blocks: &p.threads.1,
                clock: &p.clock,
                range,
            };
            let assembler = ProcessAssembler::new(source, data, Symbols::new());
            (assembler, process_heading(&p.process))
        })
        .collect();
    let contents = [
        Content::ThreadSpans,
        Content::AsyncSpans,
        Content::Logs { max_level: 6 },
        Content::Metrics,
    ];
    let written =
        pipeline::write_trace(&mut processes, &contents, Vec::new(), &Progress::new(true))
            .await
            .unwrap();
    written.out
}

/// Events straight from the blocks' payloads.
struct DirectSource<'a> {
    lake: &'a Lake,
    streams: &'a [StreamRow],
    blocks: &'a [BlockRow],
    logs: (&'a [StreamRow], &'a [BlockRow]),
    metrics: (&'a [StreamRow], &'a [BlockRow]),
    types: &'a HashMap<Uuid, StreamTypes>,
    clock: Clock,
}

impl DirectSource<'_> {
    /// Every block of these streams decoded, with its position in `blocks`.
    async fn decoded(
        &self,
        (streams, blocks): (&[StreamRow], &[BlockRow]),
    ) -> anyhow::Result<Vec<(u32, DecodedBlock)>> {
        let mut decoded = Vec::new();
        for stream in streams {
            let types = &self.types[&stream.stream_id];
            let decoder =
                StreamDecoder::new(&types.dependencies_metadata, &types.objects_metadata)?;
            let of_stream = blocks.iter().enumerate();
            for (position, block) in of_stream.filter(|(_, b)| b.stream_id == stream.stream_id) {
                let payload = self.lake.block_payload(block).await?;
                decoded.push((position as u32, decoder.decode(&payload)?));
            }
        }
        Ok(decoded)
    }
}

impl EventSource<MeasureTable> for DirectSource<'_> {
    async fn read(
        &mut self,
        _view: View,
        _instance: Uuid,
        symbols: &mut Symbols,
        table: &mut MeasureTable,
    ) -> anyhow::Result<()> {
        table.clear();
        for (position, block) in self.decoded(self.metrics).await? {
            for m in block.measures {
                let pairs: Vec<_> = (m.properties.iter())
                    .map(|(k, v)| (symbols.intern(k), symbols.intern(v)))
                    .collect();
                table.rows.push(MeasureRow {
                    ns: self.clock.event_ns(m.ticks),
                    name: symbols.intern(&m.name),
                    unit: symbols.intern(&m.unit),
                    target: symbols.intern(&m.target),
                    value: m.value,
                    integer: m.integer,
                    properties: symbols.intern_properties(&pairs),
                });
                table.orders.push(EventOrder::new(position, m.index));
            }
        }
        Ok(())
    }
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
        for (position, block) in self.decoded(self.logs).await? {
            for e in block.logs {
                let pairs: Vec<_> = (e.properties.iter())
                    .map(|(k, v)| (symbols.intern(k), symbols.intern(v)))
                    .collect();
                table.rows.push(LogRow {
                    ns: self.clock.event_ns(e.ticks),
                    level: e.level,
                    target: symbols.intern(&e.target),
                    msg: symbols.intern(&e.msg),
                    file: symbols.intern(&e.file),
                    line: e.line,
                    properties: symbols.intern_properties(&pairs),
                });
                table.orders.push(EventOrder::new(position, e.index));
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
            let types = &self.types[&stream.stream_id];
            let decoder =
                StreamDecoder::new(&types.dependencies_metadata, &types.objects_metadata)?;
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
