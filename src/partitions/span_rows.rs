//! The row format of the span views: one row per span event (begin or end), with its block
//! and index (its place in stream order), raw ticks, interned strings and async ids.
//!
//! Thread-view files hold only thread events: their async columns (scope, ids, depth) are
//! always 0 and are not read back. A tagged end's properties are a key into the file's
//! property-set table.

use anyhow::Result;
use arrow_array::{ArrayRef, Int64Array, RecordBatch, UInt8Array, UInt32Array, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use std::ops::Range;
use std::sync::Arc;
use uuid::Uuid;

use super::digest::{
    AsyncDigest, AsyncDigestBuilder, Digest, DigestBuilder, FileTables, KeyedEvent,
    ROW_GROUP_DIGESTS_KEY, RowGroupDigest, StreamDigests,
};
use super::files::{
    BATCH_ROWS, FileBuilder, FileKeys, KeyColumns, PartitionRows, RowTable, column, keys,
};
use super::plan::View;
use crate::clock::Clock;
use crate::decode::{DecodedBlock, SpanEvent};
use crate::events::{AsyncIds, Event, EventOrder, EventPhase, EventScope, EventTable};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::BTreeMap;

const UNIQUE_VALUED_COLUMNS: [&str; 4] = ["index", "ticks", "span_id", "parent_span_id"];
/// Always 0 (scope: thread) in thread-view files.
const ASYNC_ONLY_COLUMNS: [&str; 4] = ["scope", "span_id", "parent_span_id", "depth"];

fn schema() -> Arc<Schema> {
    let u32_column = |name: &str| Field::new(name, DataType::UInt32, false);
    Arc::new(Schema::new(vec![
        u32_column("block"),
        u32_column("index"),
        Field::new("scope", DataType::UInt8, false),
        Field::new("phase", DataType::UInt8, false),
        Field::new("ticks", DataType::Int64, false),
        u32_column("name"),
        u32_column("target"),
        u32_column("file"),
        u32_column("line"),
        Field::new("span_id", DataType::UInt64, false),
        Field::new("parent_span_id", DataType::UInt64, false),
        u32_column("depth"),
        u32_column("properties"),
    ]))
}

/// Rows not yet handed to the Parquet writer, column by column.
#[derive(Default)]
struct Columns {
    block: Vec<u32>,
    index: Vec<u32>,
    scope: Vec<u8>,
    phase: Vec<u8>,
    ticks: Vec<i64>,
    name: Vec<u32>,
    target: Vec<u32>,
    file: Vec<u32>,
    line: Vec<u32>,
    span_id: Vec<u64>,
    parent_span_id: Vec<u64>,
    depth: Vec<u32>,
    properties: Vec<u32>,
}

impl Columns {
    fn push(&mut self, event: &KeyedEvent) {
        self.block.push(event.block);
        self.index.push(event.index);
        self.scope.push((event.scope == EventScope::Async) as u8);
        self.phase.push((event.phase == EventPhase::End) as u8);
        self.ticks.push(event.ticks);
        self.name.push(event.name);
        self.target.push(event.target);
        self.file.push(event.file);
        self.line.push(event.line);
        self.span_id.push(event.span_id);
        self.parent_span_id.push(event.parent_span_id);
        self.depth.push(event.depth);
        self.properties.push(event.properties);
    }

    fn into_batch(self) -> Result<RecordBatch> {
        let u32s = |values: Vec<u32>| -> ArrayRef { Arc::new(UInt32Array::from(values)) };
        let u64s = |values: Vec<u64>| -> ArrayRef { Arc::new(UInt64Array::from(values)) };
        let u8s = |values: Vec<u8>| -> ArrayRef { Arc::new(UInt8Array::from(values)) };
        let columns: Vec<ArrayRef> = vec![
            u32s(self.block),
            u32s(self.index),
            u8s(self.scope),
            u8s(self.phase),
            Arc::new(Int64Array::from(self.ticks)),
            u32s(self.name),
            u32s(self.target),
            u32s(self.file),
            u32s(self.line),
            u64s(self.span_id),
            u64s(self.parent_span_id),
            u32s(self.depth),
            u32s(self.properties),
        ];
        Ok(RecordBatch::try_new(schema(), columns)?)
    }
}

/// One span-view partition file being written: rows are appended block by block as blocks
/// are decoded, and go to the (compressing) Parquet writer in batches.
pub struct SpanRows {
    /// The events it keeps.
    scope: EventScope,
    file: FileBuilder,
    pending: Columns,
    rows: usize,
    /// Of each stream, for thread events.
    digests: Option<BTreeMap<Uuid, DigestBuilder>>,
    /// For the thread events of a stream's own partition.
    row_groups: Option<RowGroups>,
    /// For async events: their digest, and their rows in time order once sorted.
    async_rows: Option<AsyncRows>,
}

/// An async file's rows in time order: they are written as blocks come (stream after stream),
/// then read back, sorted and written again in row groups of a few thousand rows, each with a
/// digest, so that a window reads the few it reaches (async spans pair by id across all
/// threads: in stream order, every row group would span the partition's time). Sorting when
/// the partition is stored holds one partition's rows at a time, not those of every async
/// partition being built (a cold 10 s window of the 8-hour lake held 50 MB more).
struct AsyncRows {
    group_rows: usize,
    /// The partition's, fed as the blocks come.
    digest: AsyncDigestBuilder,
    /// Sorted, once the rows written are read back.
    events: Option<Vec<KeyedEvent>>,
}

impl AsyncRows {
    /// The rows of `written` (a file of [`schema`]) in time order (then stream order: a
    /// total order).
    fn sort(written: Bytes) -> Result<Vec<KeyedEvent>> {
        let reader = ParquetRecordBatchReaderBuilder::try_new(written)?.build()?;
        let mut events = Vec::new();
        for batch in reader {
            read_keyed(&batch?, &mut events)?;
        }
        events.sort_unstable_by_key(|e| (e.ticks, e.block, e.index));
        Ok(events)
    }

    /// The digests of the row groups of `events` (sorted).
    fn digests(&self, events: &[KeyedEvent], tables: &dyn FileTables) -> Vec<Option<AsyncDigest>> {
        (events.chunks(self.group_rows))
            .map(|group| {
                let mut digest = AsyncDigestBuilder::default();
                group.iter().for_each(|&e| digest.push(e));
                digest.finish(tables)
            })
            .collect()
    }

    /// Writes `events` (sorted), a row group at a time, and finishes the file.
    fn write(&self, events: &[KeyedEvent], mut file: FileBuilder) -> Result<Bytes> {
        let mut groups = events.chunks(self.group_rows).peekable();
        let batch = |group: &[KeyedEvent]| {
            let mut columns = Columns::default();
            group.iter().for_each(|e| columns.push(e));
            columns.into_batch()
        };
        while let Some(group) = groups.next() {
            match groups.peek() {
                Some(_) => file.write_row_group_end(batch(group)?)?,
                None => return file.finish(batch(group)?),
            }
        }
        file.finish(Columns::default().into_batch()?)
    }
}

/// Appends the rows of a batch of a file of [`schema`] as keyed events.
fn read_keyed(batch: &RecordBatch, events: &mut Vec<KeyedEvent>) -> Result<()> {
    let u32s = |name: &str| Ok::<_, anyhow::Error>(column::<UInt32Array>(batch, name)?.values());
    let u8s = |name: &str| Ok::<_, anyhow::Error>(column::<UInt8Array>(batch, name)?.values());
    let u64s = |name: &str| Ok::<_, anyhow::Error>(column::<UInt64Array>(batch, name)?.values());
    let (block, index, name, target) = (
        u32s("block")?,
        u32s("index")?,
        u32s("name")?,
        u32s("target")?,
    );
    let (file, line, depth, properties) = (
        u32s("file")?,
        u32s("line")?,
        u32s("depth")?,
        u32s("properties")?,
    );
    let (scope, phase) = (u8s("scope")?, u8s("phase")?);
    let (span_id, parent_span_id) = (u64s("span_id")?, u64s("parent_span_id")?);
    let ticks = column::<Int64Array>(batch, "ticks")?.values();
    events.reserve(batch.num_rows());
    for i in 0..batch.num_rows() {
        events.push(KeyedEvent {
            block: block[i],
            index: index[i],
            ticks: ticks[i],
            phase: match phase[i] {
                1 => EventPhase::End,
                _ => EventPhase::Begin,
            },
            scope: match scope[i] {
                1 => EventScope::Async,
                _ => EventScope::Thread,
            },
            name: name[i],
            target: target[i],
            file: file[i],
            line: line[i],
            properties: properties[i],
            span_id: span_id[i],
            parent_span_id: parent_span_id[i],
            depth: depth[i],
        });
    }
    Ok(())
}

/// A thread file's row groups: cut at the first block edge after `rows` rows, each with the
/// digest of its events.
struct RowGroups {
    rows: usize,
    done: Vec<RowGroupDigest>,
    /// The row group in progress: its digest, blocks and rows so far.
    digest: DigestBuilder,
    blocks: u32,
    group_rows: usize,
}

impl RowGroups {
    fn new(rows: usize) -> Self {
        Self {
            rows,
            done: Vec::new(),
            digest: DigestBuilder::default(),
            blocks: 0,
            group_rows: 0,
        }
    }

    /// Ends the row group in progress.
    fn cut(&mut self, tables: &dyn FileTables) {
        let digest = std::mem::take(&mut self.digest).finish(tables);
        let blocks = std::mem::take(&mut self.blocks);
        self.done.push(RowGroupDigest { blocks, digest });
        self.group_rows = 0;
    }

    /// The digests of all row groups. Blocks after the last row (no thread events) belong to
    /// the last row group: the file has no row group of its own for them.
    fn finish(mut self, tables: &dyn FileTables) -> Vec<RowGroupDigest> {
        match (self.group_rows, self.done.last_mut()) {
            (0, Some(last)) => last.blocks += self.blocks,
            (0, None) => {}
            _ => self.cut(tables),
        }
        self.done
    }
}

impl SpanRows {
    /// `row_group_rows`: for a stream's own thread partition, the rows of its row groups,
    /// each with a digest ([`RowGroups`]).
    pub fn new(scope: EventScope, row_group_rows: Option<usize>) -> Result<Self> {
        let thread = scope == EventScope::Thread;
        Ok(Self {
            scope,
            file: FileBuilder::new(schema(), &UNIQUE_VALUED_COLUMNS)?,
            pending: Columns::default(),
            rows: 0,
            digests: thread.then(BTreeMap::new),
            row_groups: row_group_rows.filter(|_| thread).map(RowGroups::new),
            async_rows: (scope == EventScope::Async).then(|| AsyncRows {
                // One batch per row group: the Parquet writer cuts none of its own.
                group_rows: row_group_rows.unwrap_or(BATCH_ROWS).clamp(1, BATCH_ROWS),
                digest: AsyncDigestBuilder::default(),
                events: None,
            }),
        })
    }

    /// Appends events of one block (blocks are appended whole, in stream order).
    fn push_events<'a>(
        &mut self,
        (block_id, stream_id): (Uuid, Uuid),
        events: impl Iterator<Item = (u32, &'a SpanEvent)>,
    ) -> Result<()> {
        self.file.start_block();
        let mut digest = (self.digests.as_mut()).map(|d| d.entry(stream_id).or_default());
        let file = &mut self.file;
        let rows = &mut self.pending;
        for (index, event) in events {
            let keyed = KeyedEvent {
                block: file.block_key(block_id),
                index,
                ticks: event.ticks,
                phase: event.phase,
                scope: event.scope,
                name: file.string_key(&event.name),
                target: file.string_key(&event.target),
                file: file.string_key(&event.file),
                line: event.line,
                properties: file.property_set_key(&event.properties),
                span_id: event.span_id,
                parent_span_id: event.parent_span_id,
                depth: event.depth,
            };
            if let Some(digest) = &mut digest {
                digest.push(keyed);
            }
            if let Some(held) = &mut self.async_rows {
                held.digest.push(keyed);
            }
            if let Some(groups) = &mut self.row_groups {
                groups.digest.push(keyed);
                groups.group_rows += 1;
            }
            rows.push(&keyed);
            self.rows += 1;
        }
        if let Some(groups) = &mut self.row_groups {
            groups.blocks += 1;
            if groups.group_rows >= groups.rows {
                groups.cut(&self.file);
                let batch = std::mem::take(&mut self.pending).into_batch()?;
                return self.file.write_row_group_end(batch);
            }
        }
        if self.pending.block.len() >= BATCH_ROWS {
            self.write_pending()?;
        }
        Ok(())
    }

    fn write_pending(&mut self) -> Result<()> {
        let batch = std::mem::take(&mut self.pending).into_batch()?;
        self.file.write_batch(batch)
    }

    /// Of an async file: its rows read back in time order (once).
    fn sort_async_rows(&mut self) -> Result<()> {
        if let Some(held) = self.async_rows.as_mut().filter(|h| h.events.is_none()) {
            let last = std::mem::take(&mut self.pending).into_batch()?;
            held.events = Some(AsyncRows::sort(self.file.restart(last)?)?);
        }
        Ok(())
    }
}

impl PartitionRows for SpanRows {
    fn push_block(&mut self, block_id: Uuid, stream_id: Uuid, block: &DecodedBlock) -> Result<()> {
        let scope = self.scope;
        let kept = (block.spans.iter().enumerate())
            .filter(|(_, e)| e.scope == scope)
            .map(|(i, e)| (i as u32, e));
        self.push_events((block_id, stream_id), kept)
    }

    fn len(&self) -> usize {
        self.rows
    }

    fn finish(mut self: Box<Self>) -> Result<Bytes> {
        self.sort_async_rows()?;
        if let Some(held) = self.async_rows.take() {
            let events = held.events.as_deref().unwrap_or_default();
            return held.write(events, self.file);
        }
        let last = self.pending.into_batch()?;
        self.file.finish(last)
    }

    /// The catalog's digest; the row groups' digests in full go to the file's footer
    /// ([`ROW_GROUP_DIGESTS_KEY`]), their summaries to the catalog.
    fn take_digest(&mut self) -> Result<Option<String>> {
        self.sort_async_rows()?;
        let tables = &self.file;
        if let Some(held) = &mut self.async_rows {
            let mut digest = std::mem::take(&mut held.digest).finish(tables);
            let mut in_full = None;
            if let Some(digest) = &mut digest {
                let events = held.events.as_deref().unwrap_or_default();
                let groups = held.digests(events, tables);
                let summary = |g: &Option<AsyncDigest>| g.as_ref().map(AsyncDigest::summary);
                digest.row_groups = groups.iter().map(summary).collect::<Vec<_>>().into();
                in_full = Some(serde_json::to_string(&groups)?);
            }
            if let Some(in_full) = in_full {
                self.file.add_metadata(ROW_GROUP_DIGESTS_KEY, in_full);
            }
            return Ok(Some(serde_json::to_string(&digest)?));
        }
        let Some(builders) = self.digests.take() else {
            return Ok(None);
        };
        let mut digests: StreamDigests = (builders.into_iter())
            .filter_map(|(stream, builder)| Some((stream, builder.finish(tables)?)))
            .collect();
        let row_groups = self.row_groups.take().map(|groups| groups.finish(tables));
        let only = (digests.len() == 1)
            .then(|| digests.values_mut().next())
            .flatten();
        if let (Some(row_groups), Some(digest)) = (row_groups, only) {
            let summary = |g: &RowGroupDigest| RowGroupDigest {
                blocks: g.blocks,
                digest: g.digest.as_ref().map(Digest::summary),
            };
            digest.row_groups = row_groups.iter().map(summary).collect::<Vec<_>>().into();
            let in_full = serde_json::to_string(&row_groups)?;
            self.file.add_metadata(ROW_GROUP_DIGESTS_KEY, in_full);
        }
        Ok(Some(serde_json::to_string(&digests)?))
    }
}

impl RowTable for EventTable {
    fn as_events(&mut self) -> Option<&mut EventTable> {
        Some(self)
    }

    fn key_columns() -> Option<KeyColumns> {
        Some((&["name", "target", "file"], "properties"))
    }

    fn skipped_columns(view: View) -> &'static [&'static str] {
        match view.span_scope() {
            Some(EventScope::Async) => &[],
            _ => &ASYNC_ONLY_COLUMNS,
        }
    }

    /// Events with times in ns; the async columns only from async-view files.
    fn read_rows(
        &mut self,
        batch: &RecordBatch,
        tables: &FileKeys,
        (view, clock): (View, &Clock),
        rows: Range<usize>,
    ) -> Result<()> {
        let (strings, sets) = (&tables.strings, &tables.property_sets);
        let block = keys(batch, "block", &tables.blocks, &rows)?;
        let name = keys(batch, "name", strings, &rows)?;
        let target = keys(batch, "target", strings, &rows)?;
        let file = keys(batch, "file", strings, &rows)?;
        let properties = keys(batch, "properties", sets, &rows)?;
        let index = column::<UInt32Array>(batch, "index")?.values();
        let phase = column::<UInt8Array>(batch, "phase")?.values();
        let ticks = column::<Int64Array>(batch, "ticks")?.values();
        let line = column::<UInt32Array>(batch, "line")?.values();
        // (scope, span_id, parent_span_id, depth)
        let async_values = match view.span_scope() {
            Some(EventScope::Async) => Some((
                column::<UInt8Array>(batch, "scope")?.values(),
                column::<UInt64Array>(batch, "span_id")?.values(),
                column::<UInt64Array>(batch, "parent_span_id")?.values(),
                column::<UInt32Array>(batch, "depth")?.values(),
            )),
            _ => None,
        };
        if async_values.is_some() {
            self.ids_room();
        }
        for i in rows {
            let Some(position) = tables.blocks[block[i] as usize] else {
                continue;
            };
            self.orders.push(EventOrder::new(position, index[i]));
            let mut scope = EventScope::Thread;
            if let Some((scopes, span_id, parent_span_id, depth)) = async_values {
                if scopes[i] == 1 {
                    scope = EventScope::Async;
                }
                self.ids.push(AsyncIds {
                    span_id: span_id[i],
                    parent_span_id: parent_span_id[i],
                    depth: depth[i],
                });
            }
            self.events.push(Event {
                ns: clock.event_ns(ticks[i]),
                scope,
                phase: if phase[i] == 1 {
                    EventPhase::End
                } else {
                    EventPhase::Begin
                },
                name: strings[name[i] as usize],
                target: strings[target[i] as usize],
                file: strings[file[i] as usize],
                line: line[i],
                properties: sets[properties[i] as usize],
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partitions::files::{OpenFile, read_file};
    use crate::partitions::shared::SharedFiles;
    use crate::symbols::Symbols;
    use std::collections::HashMap;

    /// The clock of a process whose ticks are nanoseconds since the Unix epoch.
    fn test_clock() -> Clock {
        let process = crate::lake::rows::ProcessRow::ticking_in_unix_nanos(Uuid::from_u128(9));
        Clock::for_process(&process, (None, None)).unwrap()
    }

    #[test]
    fn rows_survive_a_round_trip_through_parquet() {
        let event = |scope, phase, name: &str, props: Vec<(Arc<str>, Arc<str>)>| SpanEvent {
            scope,
            phase,
            ticks: 5,
            name: Arc::from(name),
            target: Arc::from("t"),
            file: Arc::from("f.rs"),
            line: 3,
            span_id: u64::MAX,
            parent_span_id: 7,
            depth: 2,
            properties: props,
        };
        let first = event(EventScope::Thread, EventPhase::Begin, "a", vec![]);
        let second = event(
            EventScope::Async,
            EventPhase::End,
            "b\"é",
            vec![(Arc::from("k"), Arc::from("v\n"))],
        );
        let mut builder = Box::new(SpanRows::new(EventScope::Async, None).unwrap());
        builder
            .push_events((Uuid::from_u128(2), Uuid::nil()), [(0, &first)].into_iter())
            .unwrap();
        builder
            .push_events(
                (Uuid::from_u128(3), Uuid::nil()),
                [(9, &second)].into_iter(),
            )
            .unwrap();
        assert_eq!(builder.len(), 2);
        let mut symbols = Symbols::new();
        let positions = HashMap::from([(Uuid::from_u128(2), 0u32), (Uuid::from_u128(3), 1u32)]);
        let clock = test_clock();
        let mut decoded = EventTable::default();
        read_file(
            &mut decoded,
            (builder.finish().unwrap(), None),
            View::ASYNC_SPANS,
            &mut symbols,
            &positions,
            &clock,
        )
        .unwrap();
        assert_eq!(decoded.events.len(), 2);
        assert_eq!(
            decoded.orders,
            vec![EventOrder::new(0, 0), EventOrder::new(1, 9)]
        );
        let e = decoded.events[1];
        assert_eq!(
            (e.scope, e.phase, e.ns, e.line, decoded.ids[1]),
            (
                EventScope::Async,
                EventPhase::End,
                5,
                3,
                AsyncIds {
                    span_id: u64::MAX,
                    parent_span_id: 7,
                    depth: 2
                }
            )
        );
        assert_eq!(symbols.get(e.name), "b\"é");
        let properties: Vec<(&str, &str)> = symbols
            .properties(e.properties)
            .iter()
            .map(|&(k, v)| (symbols.get(k), symbols.get(v)))
            .collect();
        assert_eq!(properties, vec![("k", "v\n")]);
        assert!(decoded.events[0].properties.is_none());
    }

    #[test]
    fn a_file_with_a_large_string_table_reads_back_every_row_while_another_thread_decodes() {
        // Over a megabyte of distinct names, over one batch of rows: the rows are decoded on
        // a thread of their own while the names are interned.
        let rows = crate::partitions::files::BATCH_ROWS + 5_000;
        let name = |k: usize| format!("span name number {k:>12}");
        let mut builder = Box::new(SpanRows::new(EventScope::Thread, None).unwrap());
        let events: Vec<SpanEvent> = (0..rows)
            .map(|k| thread_event(&name(k), k as i64, false))
            .collect();
        let block = Uuid::from_u128(2);
        let indexed = events.iter().enumerate().map(|(k, e)| (k as u32, e));
        builder.push_events((block, Uuid::nil()), indexed).unwrap();
        let mut symbols = Symbols::new();
        let mut decoded = EventTable::default();
        let file = builder.finish().unwrap();
        assert!(file.len() > 1 << 20);
        let positions = HashMap::from([(block, 0u32)]);
        read_file(
            &mut decoded,
            (file, None),
            View::THREAD_SPANS,
            &mut symbols,
            &positions,
            &test_clock(),
        )
        .unwrap();
        assert_eq!(decoded.events.len(), rows);
        for (k, (event, order)) in decoded.events.iter().zip(&decoded.orders).enumerate() {
            assert_eq!(*order, EventOrder::new(0, k as u32));
            assert_eq!(
                (symbols.get(event.name), event.ns),
                (name(k).as_str(), k as i64)
            );
        }
    }

    #[test]
    fn streams_sharing_a_file_read_their_own_rows_even_across_batches() {
        // Four small streams of one block each in a shared file: the second's rows straddle
        // the edge of the first batch, the third's block is not part of this export.
        let sizes = [10, BATCH_ROWS, 2_000, 3_000];
        let blocks: Vec<Uuid> = (0..4).map(|b| Uuid::from_u128(100 + b)).collect();
        let mut builder = Box::new(SpanRows::new(EventScope::Thread, None).unwrap());
        for (b, &size) in sizes.iter().enumerate() {
            let events: Vec<SpanEvent> = (0..size)
                .map(|k| thread_event("s", (1_000_000 * b + k) as i64, k % 2 == 1))
                .collect();
            let indexed = events.iter().enumerate().map(|(k, e)| (k as u32, e));
            let stream = Uuid::from_u128(200 + b as u128);
            builder.push_events((blocks[b], stream), indexed).unwrap();
        }
        let positions = HashMap::from([(blocks[0], 0u32), (blocks[1], 1), (blocks[3], 2)]);
        let (mut symbols, clock, view) = (Symbols::new(), test_clock(), View::THREAD_SPANS);
        let file =
            OpenFile::open::<EventTable>(builder.finish().unwrap(), view, &mut symbols, &positions)
                .unwrap();
        let shared = SharedFiles::default();
        // What a stream reads: the place and time of each row.
        let rows = |table: &EventTable| -> Vec<(EventOrder, i64)> {
            (table.orders.iter().copied())
                .zip(table.events.iter().map(|e| e.ns))
                .collect()
        };
        let expected = |position: u32, block: usize| -> Vec<(EventOrder, i64)> {
            (0..sizes[block])
                .map(|k| {
                    let order = EventOrder::new(position, k as u32);
                    (order, (1_000_000 * block + k) as i64)
                })
                .collect()
        };
        let mut table = EventTable::default();
        shared
            .open(0, (file, 3), 0..1, &mut table, (view, &clock))
            .unwrap();
        assert_eq!(rows(&table), expected(0, 0));
        for (position, block) in [(1u32, 1), (2, 3)] {
            let mut table = EventTable::default();
            let blocks = position..position + 1;
            assert!(shared.take(0, blocks, &mut table, (view, &clock)).unwrap());
            assert_eq!(rows(&table), expected(position, block), "block {block}");
        }
        // Read by its last stream, the file is let go: reading it again means opening it.
        let mut table = EventTable::default();
        assert!(!shared.take(0, 2..3, &mut table, (view, &clock)).unwrap());
    }

    /// A thread event: a begin (or end) of `name` at `ticks`.
    fn thread_event(name: &str, ticks: i64, end: bool) -> SpanEvent {
        SpanEvent {
            scope: EventScope::Thread,
            phase: if end {
                EventPhase::End
            } else {
                EventPhase::Begin
            },
            ticks,
            name: Arc::from(name),
            target: Arc::from("t"),
            file: Arc::from("f.rs"),
            line: 1,
            span_id: 0,
            parent_span_id: 0,
            depth: 0,
            properties: vec![],
        }
    }

    #[test]
    fn own_thread_files_are_cut_into_row_groups_at_block_edges_each_with_its_digest() {
        // Blocks of 4 events (an outer span open across all of them, an inner one closed in
        // each), then two blocks without thread events; row groups of at least 6 rows.
        let mut builder = Box::new(SpanRows::new(EventScope::Thread, Some(6)).unwrap());
        let stream = Uuid::from_u128(7);
        let blocks: Vec<Uuid> = (0..7).map(|b| Uuid::from_u128(100 + b)).collect();
        for (b, &block) in blocks.iter().enumerate() {
            let t = 10 * b as i64;
            let events = match b {
                0 => vec![
                    thread_event("outer", t, false),
                    thread_event("inner", t + 1, false),
                    thread_event("inner", t + 2, true),
                    thread_event("inner", t + 3, false),
                ],
                1..=4 => vec![
                    thread_event("inner", t, true),
                    thread_event("inner", t + 1, false),
                    thread_event("inner", t + 2, true),
                    thread_event("inner", t + 3, false),
                ],
                _ => vec![],
            };
            builder
                .push_events(
                    (block, stream),
                    events.iter().enumerate().map(|(k, e)| (k as u32, e)),
                )
                .unwrap();
        }
        let json = builder.take_digest().unwrap().unwrap();
        let digests: StreamDigests = serde_json::from_str(&json).unwrap();
        let groups = digests[&stream].row_groups.get();
        // 20 rows: groups of blocks 0–1 (8 rows), 2–3 (8), then 4 with the two empty blocks.
        let counts: Vec<u32> = groups.iter().map(|g| g.blocks).collect();
        assert_eq!(counts, [2, 2, 3]);
        let events_kept = |g: &RowGroupDigest| g.digest.as_ref().unwrap().events.len();
        assert!(
            groups.iter().all(|g| events_kept(g) == 0),
            "the catalog keeps the row groups' summaries"
        );

        let file = builder.finish().unwrap();
        let positions: HashMap<Uuid, u32> = blocks
            .iter()
            .enumerate()
            .map(|(b, &id)| (id, b as u32))
            .collect();
        let read = |groups: Option<&[usize]>| {
            let (mut symbols, mut decoded) = (Symbols::new(), EventTable::default());
            let data = (file.clone(), groups);
            read_file(
                &mut decoded,
                data,
                View::THREAD_SPANS,
                &mut symbols,
                &positions,
                &test_clock(),
            )
            .map(|footer| {
                (
                    decoded.events.iter().map(|e| e.ns).collect::<Vec<_>>(),
                    footer,
                )
            })
        };
        let (all, footer) = read(None).unwrap();
        assert_eq!((all.len(), footer), (20, None));
        let (some, footer) = read(Some(&[1])).unwrap();
        assert_eq!(some, [20, 21, 22, 23, 30, 31, 32, 33]);
        let error = read(Some(&[3])).unwrap_err().to_string();
        assert!(error.contains("row group 3"), "{error}");

        // The footer has them in full.
        let groups: Vec<RowGroupDigest> = serde_json::from_str(&footer.unwrap()).unwrap();
        let counts: Vec<u32> = groups.iter().map(|g| g.blocks).collect();
        assert_eq!(counts, [2, 2, 3]);
        let open_at_end = |g: usize| -> Vec<(bool, String)> {
            let digest = groups[g].digest.as_ref().unwrap();
            digest
                .events
                .iter()
                .map(|e| (e.end, e.name.to_string()))
                .collect()
        };
        assert_eq!(
            open_at_end(0),
            [(false, "outer".into()), (false, "inner".into())]
        );
        assert_eq!(
            open_at_end(1),
            [(true, "inner".into()), (false, "inner".into())]
        );
        assert_eq!(
            open_at_end(2),
            [(true, "inner".into()), (false, "inner".into())]
        );
    }
}
