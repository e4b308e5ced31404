//! Partition files: span event rows as Parquet, one file per partition. Strings are
//! dictionary-encoded, so reading maps each distinct string once per batch, not once per row.

use anyhow::{Context, Result, bail};
use arrow_array::types::Int32Type;
use arrow_array::{
    Array, ArrayRef, DictionaryArray, Int32Array, Int64Array, RecordBatch, StringArray, UInt8Array,
    UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

use crate::assembly::Event;
use crate::clock::Clock;
use crate::decode::{EventPhase, EventScope, SpanEvent};
use crate::symbols::{Sym, Symbols};

/// One stored event: where it comes from, and the event with its raw ticks (times are converted
/// at export, since the tick frequency may depend on all of the process's blocks).
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub stream_id: Uuid,
    pub block_id: Uuid,
    /// Position of the event within its block.
    pub index: u32,
    pub event: SpanEvent,
}

fn dictionary() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("stream_id", dictionary(), false),
        Field::new("block_id", dictionary(), false),
        Field::new("index", DataType::UInt32, false),
        Field::new("scope", DataType::UInt8, false),
        Field::new("phase", DataType::UInt8, false),
        Field::new("ticks", DataType::Int64, false),
        Field::new("name", dictionary(), false),
        Field::new("target", dictionary(), false),
        Field::new("file", dictionary(), false),
        Field::new("line", DataType::UInt32, false),
        Field::new("span_id", DataType::UInt64, false),
        Field::new("parent_span_id", DataType::UInt64, false),
        Field::new("depth", DataType::UInt32, false),
        Field::new("properties", dictionary(), false),
    ]))
}

/// Builds a dictionary column; equal `Arc`s (the decoder shares them) skip the string hash.
#[derive(Default)]
struct DictionaryColumn {
    by_pointer: HashMap<(usize, usize), i32>,
    by_text: HashMap<String, i32>,
    values: Vec<String>,
    keys: Vec<i32>,
}

impl DictionaryColumn {
    fn push_arc(&mut self, text: &Arc<str>) {
        let pointer = (Arc::as_ptr(text) as *const u8 as usize, text.len());
        let key = match self.by_pointer.get(&pointer) {
            Some(&key) => key,
            None => {
                let key = self.key_of(text);
                self.by_pointer.insert(pointer, key);
                key
            }
        };
        self.keys.push(key);
    }

    fn push_text(&mut self, text: &str) {
        let key = self.key_of(text);
        self.keys.push(key);
    }

    fn key_of(&mut self, text: &str) -> i32 {
        if let Some(&key) = self.by_text.get(text) {
            return key;
        }
        let key = self.values.len() as i32;
        self.values.push(text.to_string());
        self.by_text.insert(text.to_string(), key);
        key
    }

    fn finish(self) -> ArrayRef {
        let keys = Int32Array::from(self.keys);
        let values = Arc::new(StringArray::from(self.values));
        Arc::new(
            DictionaryArray::<Int32Type>::try_new(keys, values).expect("keys index the values"),
        )
    }
}

pub fn encode(rows: &[EventRow]) -> Result<Bytes> {
    let mut streams = DictionaryColumn::default();
    let mut blocks = DictionaryColumn::default();
    let (mut names, mut targets, mut files, mut properties) = (
        DictionaryColumn::default(),
        DictionaryColumn::default(),
        DictionaryColumn::default(),
        DictionaryColumn::default(),
    );
    let mut uuids: HashMap<Uuid, String> = HashMap::new();
    for row in rows {
        let mut text = |u: Uuid| uuids.entry(u).or_insert_with(|| u.to_string()).clone();
        streams.push_text(&text(row.stream_id));
        blocks.push_text(&text(row.block_id));
        names.push_arc(&row.event.name);
        targets.push_arc(&row.event.target);
        files.push_arc(&row.event.file);
        properties.push_text(&properties_text(&row.event.properties));
    }
    let columns: Vec<ArrayRef> = vec![
        streams.finish(),
        blocks.finish(),
        Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.index))),
        Arc::new(UInt8Array::from_iter_values(
            rows.iter()
                .map(|r| (r.event.scope == EventScope::Async) as u8),
        )),
        Arc::new(UInt8Array::from_iter_values(
            rows.iter()
                .map(|r| (r.event.phase == EventPhase::End) as u8),
        )),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.event.ticks),
        )),
        names.finish(),
        targets.finish(),
        files.finish(),
        Arc::new(UInt32Array::from_iter_values(
            rows.iter().map(|r| r.event.line),
        )),
        Arc::new(UInt64Array::from_iter_values(
            rows.iter().map(|r| r.event.span_id),
        )),
        Arc::new(UInt64Array::from_iter_values(
            rows.iter().map(|r| r.event.parent_span_id),
        )),
        Arc::new(UInt32Array::from_iter_values(
            rows.iter().map(|r| r.event.depth),
        )),
        properties.finish(),
    ];
    let batch = RecordBatch::try_new(schema(), columns)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::LZ4_RAW)
        .build();
    let mut buffer = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buffer, schema(), Some(props))?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(Bytes::from(buffer))
}

/// `[["key","value"],...]`, or the empty string without properties.
fn properties_text(properties: &[(Arc<str>, Arc<str>)]) -> String {
    if properties.is_empty() {
        return String::new();
    }
    let pairs: Vec<(&str, &str)> = properties.iter().map(|(k, v)| (&**k, &**v)).collect();
    serde_json::to_string(&pairs).expect("strings serialize")
}

/// Decoded rows: events, and their places in stream order
/// (`(position of the block in the process's block list) << 32 | index in the block`).
#[derive(Debug, Default)]
pub struct EventTable {
    pub events: Vec<Event>,
    pub orders: Vec<u64>,
}

impl EventTable {
    pub fn clear(&mut self) {
        self.events.clear();
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
        self.orders = permutation
            .iter()
            .map(|&i| self.orders[i as usize])
            .collect();
    }
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .with_context(|| format!("partition file lacks column {name} of the expected type"))
}

/// A dictionary column's keys, and its values mapped through `map` once each.
fn dictionary_column<'a, T>(
    batch: &'a RecordBatch,
    name: &str,
    mut map: impl FnMut(&str) -> Result<T>,
) -> Result<(&'a Int32Array, Vec<T>)> {
    let dictionary = column::<DictionaryArray<Int32Type>>(batch, name)?;
    let values = dictionary
        .values()
        .as_any()
        .downcast_ref::<StringArray>()
        .with_context(|| format!("partition column {name} is not text"))?;
    let mapped = (0..values.len())
        .map(|i| map(values.value(i)))
        .collect::<Result<Vec<T>>>()?;
    if dictionary.keys().null_count() > 0
        || dictionary
            .keys()
            .values()
            .iter()
            .any(|&k| k < 0 || k as usize >= mapped.len())
    {
        bail!("partition column {name} has bad keys");
    }
    Ok((dictionary.keys(), mapped))
}

/// Reads a partition file into events with times in ns and strings interned in `symbols`.
/// `block_position` gives each block's place in stream order (blocks it lacks are skipped:
/// they are not part of this export).
pub fn decode(
    data: Bytes,
    symbols: &mut Symbols,
    block_position: &HashMap<Uuid, u32>,
    clock: &Clock,
    out: &mut EventTable,
) -> Result<()> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(data)?.with_batch_size(64 * 1024);
    let rows = usize::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
    out.events.reserve(rows);
    out.orders.reserve(rows);
    let reader = builder.build()?;
    for batch in reader {
        let batch = batch?;
        let parse_uuid = |s: &str| Uuid::parse_str(s).context("partition file holds a bad UUID");
        let (block_keys, blocks) = dictionary_column(&batch, "block_id", |s| {
            Ok(block_position.get(&parse_uuid(s)?).copied())
        })?;
        let mut intern = |s: &str| -> Result<Sym> { Ok(symbols.intern(s)) };
        let (name_keys, names) = dictionary_column(&batch, "name", &mut intern)?;
        let (target_keys, targets) = dictionary_column(&batch, "target", &mut intern)?;
        let (file_keys, files) = dictionary_column(&batch, "file", &mut intern)?;
        let (property_keys, properties) = dictionary_column(&batch, "properties", &mut intern)?;
        let index = column::<UInt32Array>(&batch, "index")?;
        let scope = column::<UInt8Array>(&batch, "scope")?;
        let phase = column::<UInt8Array>(&batch, "phase")?;
        let ticks = column::<Int64Array>(&batch, "ticks")?;
        let line = column::<UInt32Array>(&batch, "line")?;
        let span_id = column::<UInt64Array>(&batch, "span_id")?;
        let parent_span_id = column::<UInt64Array>(&batch, "parent_span_id")?;
        let depth = column::<UInt32Array>(&batch, "depth")?;
        for i in 0..batch.num_rows() {
            let Some(block) = blocks[block_keys.value(i) as usize] else {
                continue;
            };
            out.orders
                .push((block as u64) << 32 | index.value(i) as u64);
            out.events.push(Event {
                ns: clock.event_ns(ticks.value(i)),
                scope: if scope.value(i) == 1 {
                    EventScope::Async
                } else {
                    EventScope::Thread
                },
                phase: if phase.value(i) == 1 {
                    EventPhase::End
                } else {
                    EventPhase::Begin
                },
                name: names[name_keys.value(i) as usize],
                target: targets[target_keys.value(i) as usize],
                file: files[file_keys.value(i) as usize],
                line: line.value(i),
                span_id: span_id.value(i),
                parent_span_id: parent_span_id.value(i),
                depth: depth.value(i),
                properties: properties[property_keys.value(i) as usize],
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
        let rows = vec![
            EventRow {
                stream_id: Uuid::from_u128(1),
                block_id: Uuid::from_u128(2),
                index: 0,
                event: event(EventScope::Thread, EventPhase::Begin, "a", vec![]),
            },
            EventRow {
                stream_id: Uuid::from_u128(1),
                block_id: Uuid::from_u128(3),
                index: 9,
                event: event(
                    EventScope::Async,
                    EventPhase::End,
                    "b\"é",
                    vec![(Arc::from("k"), Arc::from("v\n"))],
                ),
            },
        ];
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
            encode(&rows).unwrap(),
            &mut symbols,
            &positions,
            &clock,
            &mut decoded,
        )
        .unwrap();
        assert_eq!(decoded.events.len(), 2);
        assert_eq!(decoded.orders[1], 1 << 32 | 9);
        let e = decoded.events[1];
        assert_eq!(
            (
                e.scope,
                e.phase,
                e.ns,
                e.line,
                e.span_id,
                e.parent_span_id,
                e.depth
            ),
            (EventScope::Async, EventPhase::End, 5, 3, u64::MAX, 7, 2)
        );
        assert_eq!(symbols.get(e.name), "b\"é");
        assert_eq!(symbols.get(e.properties), r#"[["k","v\n"]]"#);
        assert_eq!(symbols.get(decoded.events[0].properties), "");
    }
}
