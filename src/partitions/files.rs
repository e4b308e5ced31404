//! Partition files: span event rows as Parquet, one file per partition.

use anyhow::{Context, Result, bail};
use arrow_array::{
    Array, ArrayRef, Int64Array, RecordBatch, StringArray, UInt8Array, UInt32Array, UInt64Array,
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

use crate::decode::{EventPhase, EventScope, SpanEvent};

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

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("stream_id", DataType::Utf8, false),
        Field::new("block_id", DataType::Utf8, false),
        Field::new("index", DataType::UInt32, false),
        Field::new("scope", DataType::UInt8, false),
        Field::new("phase", DataType::UInt8, false),
        Field::new("ticks", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("target", DataType::Utf8, false),
        Field::new("file", DataType::Utf8, false),
        Field::new("line", DataType::UInt32, false),
        Field::new("span_id", DataType::UInt64, false),
        Field::new("parent_span_id", DataType::UInt64, false),
        Field::new("depth", DataType::UInt32, false),
        Field::new("properties", DataType::Utf8, false),
    ]))
}

pub fn encode(rows: &[EventRow]) -> Result<Bytes> {
    let strings = |f: &dyn Fn(&EventRow) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
    };
    let columns: Vec<ArrayRef> = vec![
        strings(&|r| r.stream_id.to_string()),
        strings(&|r| r.block_id.to_string()),
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
        strings(&|r| r.event.name.to_string()),
        strings(&|r| r.event.target.to_string()),
        strings(&|r| r.event.file.to_string()),
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
        strings(&|r| properties_text(&r.event.properties)),
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

fn properties_text(properties: &[(Arc<str>, Arc<str>)]) -> String {
    if properties.is_empty() {
        return String::new();
    }
    let pairs: Vec<(&str, &str)> = properties.iter().map(|(k, v)| (&**k, &**v)).collect();
    serde_json::to_string(&pairs).expect("strings serialize")
}

/// Shares equal strings between rows of one file.
#[derive(Default)]
struct Interner(HashMap<String, Arc<str>>);

impl Interner {
    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.0.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.0.insert(s.to_string(), a.clone());
        a
    }
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .with_context(|| format!("partition file lacks column {name}"))
}

pub fn decode(data: Bytes) -> Result<Vec<EventRow>> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(data)?
        .with_batch_size(64 * 1024)
        .build()?;
    let mut rows = Vec::new();
    let mut interner = Interner::default();
    let mut uuids: HashMap<String, Uuid> = HashMap::new();
    for batch in reader {
        let batch = batch?;
        let stream_id = column::<StringArray>(&batch, "stream_id")?;
        let block_id = column::<StringArray>(&batch, "block_id")?;
        let index = column::<UInt32Array>(&batch, "index")?;
        let scope = column::<UInt8Array>(&batch, "scope")?;
        let phase = column::<UInt8Array>(&batch, "phase")?;
        let ticks = column::<Int64Array>(&batch, "ticks")?;
        let name = column::<StringArray>(&batch, "name")?;
        let target = column::<StringArray>(&batch, "target")?;
        let file = column::<StringArray>(&batch, "file")?;
        let line = column::<UInt32Array>(&batch, "line")?;
        let span_id = column::<UInt64Array>(&batch, "span_id")?;
        let parent_span_id = column::<UInt64Array>(&batch, "parent_span_id")?;
        let depth = column::<UInt32Array>(&batch, "depth")?;
        let properties = column::<StringArray>(&batch, "properties")?;
        if stream_id.null_count() + block_id.null_count() + name.null_count() > 0 {
            bail!("partition file holds NULLs");
        }
        let mut uuid_of = |s: &str| -> Result<Uuid> {
            if let Some(u) = uuids.get(s) {
                return Ok(*u);
            }
            let u = Uuid::parse_str(s).context("partition file holds a bad UUID")?;
            uuids.insert(s.to_string(), u);
            Ok(u)
        };
        for i in 0..batch.num_rows() {
            let props_text = properties.value(i);
            let props = if props_text.is_empty() {
                Vec::new()
            } else {
                let pairs: Vec<(String, String)> = serde_json::from_str(props_text)
                    .context("partition file holds bad properties")?;
                pairs
                    .into_iter()
                    .map(|(k, v)| (interner.get(&k), interner.get(&v)))
                    .collect()
            };
            rows.push(EventRow {
                stream_id: uuid_of(stream_id.value(i))?,
                block_id: uuid_of(block_id.value(i))?,
                index: index.value(i),
                event: SpanEvent {
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
                    ticks: ticks.value(i),
                    name: interner.get(name.value(i)),
                    target: interner.get(target.value(i)),
                    file: interner.get(file.value(i)),
                    line: line.value(i),
                    span_id: span_id.value(i),
                    parent_span_id: parent_span_id.value(i),
                    depth: depth.value(i),
                    properties: props,
                },
            });
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_survive_a_round_trip_through_parquet() {
        let event = |scope, phase, name: &str, props: Vec<(Arc<str>, Arc<str>)>| SpanEvent {
            scope,
            phase,
            ticks: -5,
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
        assert_eq!(decode(encode(&rows).unwrap()).unwrap(), rows);
    }
}
