//! Partition files: span event rows as Parquet, one file per partition.
//!
//! Strings (names, targets, files, properties) and block ids are stored once, in a table in
//! the file's key-value metadata; columns hold indexes into it. Writing needs no per-row string
//! hashing, and reading maps each distinct string to a symbol once per file.

use anyhow::{Context, Result, bail};
use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, UInt8Array, UInt32Array, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

use super::plan::View;
use crate::assembly::{AsyncIds, Event};
use crate::clock::Clock;
use crate::decode::{EventPhase, EventScope, SpanEvent};
use crate::symbols::{Sym, Symbols};

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

const STRINGS_KEY: &str = "write-perfetto.strings";
const BLOCKS_KEY: &str = "write-perfetto.blocks";
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

/// The file's string table; equal `Arc`s (the decoder shares them within a block) skip the
/// string hash, as long as they are alive: the pointer memo is only valid within one block.
#[derive(Default)]
struct StringTable {
    by_pointer: FastMap<(usize, usize), u32>,
    by_text: FastMap<String, u32>,
    values: Vec<String>,
    empty: Option<u32>,
}

impl StringTable {
    fn key_of_arc(&mut self, text: &Arc<str>) -> u32 {
        let pointer = (Arc::as_ptr(text) as *const u8 as usize, text.len());
        if let Some(&key) = self.by_pointer.get(&pointer) {
            return key;
        }
        let key = self.key_of(text);
        self.by_pointer.insert(pointer, key);
        key
    }

    /// The key of the empty string (most events have no properties).
    fn empty(&mut self) -> u32 {
        match self.empty {
            Some(key) => key,
            None => {
                let key = self.key_of("");
                self.empty = Some(key);
                key
            }
        }
    }

    fn key_of(&mut self, text: &str) -> u32 {
        if let Some(&key) = self.by_text.get(text) {
            return key;
        }
        let key = self.values.len() as u32;
        self.values.push(text.to_string());
        self.by_text.insert(text.to_string(), key);
        key
    }
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

/// Rows handed to the Parquet writer at a time: the builder holds at most this many
/// uncompressed (about 50 bytes a row), however large the partition.
const BATCH_ROWS: usize = 64 * 1024;

/// One partition file being written: rows are appended block by block as blocks are decoded,
/// and go to the (compressing) Parquet writer in batches; the string and block tables are
/// written with the footer.
pub struct PartitionBuilder {
    strings: StringTable,
    blocks: Vec<Uuid>,
    pending: Columns,
    rows: usize,
    /// `None` only while a batch is being handed over.
    encoder: Option<Encoder>,
}

type FileWriter = ArrowWriter<Vec<u8>>;

/// The Parquet writer, or the thread encoding a batch with it: encoding runs beside the
/// decoding of the next rows, one batch at a time.
enum Encoder {
    Idle(Box<FileWriter>),
    Busy(std::thread::JoinHandle<(Box<FileWriter>, parquet::errors::Result<()>)>),
}

impl Encoder {
    /// The writer, once the batch in progress is encoded.
    fn idle(self) -> Result<Box<FileWriter>> {
        match self {
            Encoder::Idle(writer) => Ok(writer),
            Encoder::Busy(thread) => {
                let (writer, encoded) = thread.join().map_err(|panic| {
                    crate::error::failure(
                        crate::error::FailureKind::Internal,
                        format!(
                            "internal error: the Parquet encoder panicked: {}",
                            crate::error::panic_text(panic.as_ref())
                        ),
                    )
                })?;
                encoded?;
                Ok(writer)
            }
        }
    }
}

impl PartitionBuilder {
    pub fn new() -> Result<Self> {
        let mut props = WriterProperties::builder().set_compression(Compression::LZ4_RAW);
        // Nearly every value differs: a dictionary would only be tried, filled and dropped.
        for column in UNIQUE_VALUED_COLUMNS {
            props = props.set_column_dictionary_enabled(ColumnPath::from(column), false);
        }
        let props = props.build();
        Ok(Self {
            strings: StringTable::default(),
            blocks: Vec::new(),
            pending: Columns::default(),
            rows: 0,
            encoder: Some(Encoder::Idle(Box::new(ArrowWriter::try_new(
                Vec::new(),
                schema(),
                Some(props),
            )?))),
        })
    }

    /// Appends the events of one block (blocks are appended whole, in stream order).
    pub fn push_block<'a>(
        &mut self,
        block_id: Uuid,
        events: impl Iterator<Item = (u32, &'a SpanEvent)>,
    ) -> Result<()> {
        // The decoder shares one `Arc` per string within a block; across blocks an address may
        // be reused by another string once the previous block is dropped.
        self.strings.by_pointer.clear();
        let mut block_key = None;
        let rows = &mut self.pending;
        for (index, event) in events {
            let key = *block_key.get_or_insert_with(|| {
                self.blocks.push(block_id);
                self.blocks.len() as u32 - 1
            });
            rows.block.push(key);
            rows.index.push(index);
            rows.scope.push((event.scope == EventScope::Async) as u8);
            rows.phase.push((event.phase == EventPhase::End) as u8);
            rows.ticks.push(event.ticks);
            rows.name.push(self.strings.key_of_arc(&event.name));
            rows.target.push(self.strings.key_of_arc(&event.target));
            rows.file.push(self.strings.key_of_arc(&event.file));
            rows.line.push(event.line);
            rows.span_id.push(event.span_id);
            rows.parent_span_id.push(event.parent_span_id);
            rows.depth.push(event.depth);
            let properties = if event.properties.is_empty() {
                self.strings.empty()
            } else {
                self.strings.key_of(&properties_text(&event.properties))
            };
            rows.properties.push(properties);
            self.rows += 1;
        }
        if self.pending.block.len() >= BATCH_ROWS {
            self.write_pending()?;
        }
        Ok(())
    }

    fn write_pending(&mut self) -> Result<()> {
        let batch = std::mem::take(&mut self.pending).into_batch()?;
        let encoder = self
            .encoder
            .take()
            .context("a failed encoding left no writer")?;
        let mut writer = encoder.idle()?;
        let thread = std::thread::Builder::new()
            .name("parquet-encoder".into())
            .spawn(move || {
                let encoded = writer.write(&batch);
                (writer, encoded)
            })
            .context("cannot start a thread to encode a partition")?;
        self.encoder = Some(Encoder::Busy(thread));
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    /// The complete file.
    pub fn finish(mut self) -> Result<Bytes> {
        self.write_pending()?;
        let encoder = self
            .encoder
            .take()
            .context("a failed encoding left no writer")?;
        let mut writer = encoder.idle()?;
        let block_texts: Vec<String> = self.blocks.iter().map(Uuid::to_string).collect();
        writer.append_key_value_metadata(KeyValue::new(
            STRINGS_KEY.to_string(),
            serde_json::to_string(&self.strings.values)?,
        ));
        writer.append_key_value_metadata(KeyValue::new(
            BLOCKS_KEY.to_string(),
            serde_json::to_string(&block_texts)?,
        ));
        // Writes the footer.
        Ok(Bytes::from(writer.into_inner()?))
    }
}

/// `[["key","value"],...]` of a tagged end's properties.
fn properties_text(properties: &[(Arc<str>, Arc<str>)]) -> String {
    let pairs: Vec<(&str, &str)> = properties.iter().map(|(k, v)| (&**k, &**v)).collect();
    serde_json::to_string(&pairs).expect("strings serialize")
}

/// Decoded rows: events, and their places in stream order
/// (`(position of the block in the process's block list) << 32 | index in the block`).
#[derive(Debug, Default)]
pub struct EventTable {
    pub events: Vec<Event>,
    /// Index by index with `events` for the async view; empty for the thread view.
    pub ids: Vec<AsyncIds>,
    pub orders: Vec<u64>,
}

impl EventTable {
    pub fn clear(&mut self) {
        self.events.clear();
        self.ids.clear();
        self.orders.clear();
    }

    /// Puts rows in stream order (partitions of one instance may interleave blocks).
    pub fn sort(&mut self) {
        if self.orders.is_sorted() {
            return;
        }
        let mut permutation: Vec<u32> = (0..self.orders.len() as u32).collect();
        permutation.sort_by_key(|&i| self.orders[i as usize]);
        self.events = permutation
            .iter()
            .map(|&i| self.events[i as usize])
            .collect();
        if !self.ids.is_empty() {
            self.ids = permutation.iter().map(|&i| self.ids[i as usize]).collect();
        }
        self.orders = permutation
            .iter()
            .map(|&i| self.orders[i as usize])
            .collect();
    }
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T> {
    let column = batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .with_context(|| format!("partition file lacks column {name} of the expected type"))?;
    Ok(column)
}

/// A column of indexes into `table`, checked once so rows can index without a check.
fn keys<'a, T: Copy>(batch: &'a RecordBatch, name: &str, table: &[T]) -> Result<&'a [u32]> {
    let array = column::<UInt32Array>(batch, name)?;
    if array.null_count() > 0 || array.values().iter().any(|&k| k as usize >= table.len()) {
        bail!("partition column {name} indexes past its table");
    }
    Ok(array.values())
}

fn metadata_list(
    builder: &ParquetRecordBatchReaderBuilder<Bytes>,
    key: &str,
) -> Result<Vec<String>> {
    let text = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|e| e.key == key))
        .and_then(|e| e.value.clone())
        .with_context(|| format!("partition file lacks its {key} table"))?;
    serde_json::from_str(&text).with_context(|| format!("partition file has a bad {key} table"))
}

/// Reads a partition file into `out`: events with times in ns, strings interned in `symbols`.
/// `block_position` gives each block's place in stream order (rows of blocks it lacks are
/// skipped: they are not part of this export). Thread-view files hold only thread events:
/// their async columns (ids, depth, scope) are not read.
pub fn decode(
    data: Bytes,
    view: View,
    symbols: &mut Symbols,
    block_position: &HashMap<Uuid, u32>,
    clock: &Clock,
    out: &mut EventTable,
) -> Result<()> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(data)?.with_batch_size(64 * 1024);
    let strings: Vec<Sym> = metadata_list(&builder, STRINGS_KEY)?
        .iter()
        .map(|s| symbols.intern(s))
        .collect();
    let blocks: Vec<Option<u32>> = metadata_list(&builder, BLOCKS_KEY)?
        .iter()
        .map(|s| {
            Ok(block_position
                .get(&Uuid::parse_str(s).context("partition file holds a bad block id")?)
                .copied())
        })
        .collect::<Result<_>>()?;
    let rows = usize::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
    let async_columns = view == View::AsyncEvents;
    out.events.reserve(rows);
    out.orders.reserve(rows);
    if async_columns {
        out.ids.reserve(rows);
    }
    let wanted: Vec<usize> = (builder.schema().fields().iter().enumerate())
        .filter(|(_, f)| async_columns || !ASYNC_ONLY_COLUMNS.contains(&f.name().as_str()))
        .map(|(i, _)| i)
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), wanted);
    for batch in builder.with_projection(mask).build()? {
        let batch = batch?;
        let block = keys(&batch, "block", &blocks)?;
        let name = keys(&batch, "name", &strings)?;
        let target = keys(&batch, "target", &strings)?;
        let file = keys(&batch, "file", &strings)?;
        let properties = keys(&batch, "properties", &strings)?;
        let index = column::<UInt32Array>(&batch, "index")?.values();
        let phase = column::<UInt8Array>(&batch, "phase")?.values();
        let ticks = column::<Int64Array>(&batch, "ticks")?.values();
        let line = column::<UInt32Array>(&batch, "line")?.values();
        // Read only from async-view files: (scope, span_id, parent_span_id, depth).
        let async_values = if async_columns {
            Some((
                column::<UInt8Array>(&batch, "scope")?.values(),
                column::<UInt64Array>(&batch, "span_id")?.values(),
                column::<UInt64Array>(&batch, "parent_span_id")?.values(),
                column::<UInt32Array>(&batch, "depth")?.values(),
            ))
        } else {
            None
        };
        for i in 0..batch.num_rows() {
            let Some(position) = blocks[block[i] as usize] else {
                continue;
            };
            out.orders.push((position as u64) << 32 | index[i] as u64);
            let mut scope = EventScope::Thread;
            if let Some((scopes, span_id, parent_span_id, depth)) = async_values {
                if scopes[i] == 1 {
                    scope = EventScope::Async;
                }
                out.ids.push(AsyncIds {
                    span_id: span_id[i],
                    parent_span_id: parent_span_id[i],
                    depth: depth[i],
                });
            }
            out.events.push(Event {
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
                properties: strings[properties[i] as usize],
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut builder = PartitionBuilder::new().unwrap();
        builder
            .push_block(Uuid::from_u128(2), [(0, &first)].into_iter())
            .unwrap();
        builder
            .push_block(Uuid::from_u128(3), [(9, &second)].into_iter())
            .unwrap();
        assert_eq!(builder.len(), 2);
        let mut symbols = Symbols::new();
        let positions = HashMap::from([(Uuid::from_u128(2), 0u32), (Uuid::from_u128(3), 1u32)]);
        let process = crate::lake::rows::ProcessRow {
            process_id: Uuid::from_u128(9),
            exe: String::new(),
            username: String::new(),
            realname: String::new(),
            computer: String::new(),
            distro: String::new(),
            cpu_brand: String::new(),
            tsc_frequency: 1_000_000_000,
            start_time: chrono::DateTime::from_timestamp(0, 0).unwrap(),
            start_ticks: 0,
            insert_time: chrono::DateTime::from_timestamp(0, 0).unwrap(),
            parent_process_id: None,
            properties: vec![],
        };
        let clock = Clock::for_process(&process, (None, None)).unwrap();
        let mut decoded = EventTable::default();
        decode(
            builder.finish().unwrap(),
            View::AsyncEvents,
            &mut symbols,
            &positions,
            &clock,
            &mut decoded,
        )
        .unwrap();
        assert_eq!(decoded.events.len(), 2);
        assert_eq!(decoded.orders, vec![0, 1 << 32 | 9]);
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
        assert_eq!(symbols.get(e.properties), r#"[["k","v\n"]]"#);
        assert_eq!(symbols.get(decoded.events[0].properties), "");
    }
}
