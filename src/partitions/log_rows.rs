//! The row format of the log view: one row per log entry, with its block and index (its place
//! in stream order), raw ticks, level, interned strings and property set.

use anyhow::Result;
use arrow_array::{ArrayRef, Int64Array, RecordBatch, UInt8Array, UInt32Array};
use arrow_schema::{DataType, Field, Schema};
use std::ops::Range;
use std::sync::Arc;
use uuid::Uuid;

use super::View;
use super::files::{
    BatchedRows, FileBuilder, FileKeys, PartitionRows, RowColumns, RowTable, column, keys,
};
use crate::clock::Clock;
use crate::decode::DecodedBlock;
use crate::events::{EventOrder, LogRow, LogTable};

const UNIQUE_VALUED_COLUMNS: [&str; 2] = ["index", "ticks"];

fn schema() -> Arc<Schema> {
    let u32_column = |name: &str| Field::new(name, DataType::UInt32, false);
    Arc::new(Schema::new(vec![
        u32_column("block"),
        u32_column("index"),
        Field::new("ticks", DataType::Int64, false),
        Field::new("level", DataType::UInt8, false),
        u32_column("target"),
        u32_column("msg"),
        u32_column("file"),
        u32_column("line"),
        u32_column("properties"),
    ]))
}

/// Rows not yet handed to the Parquet writer, column by column.
#[derive(Default)]
struct Columns {
    block: Vec<u32>,
    index: Vec<u32>,
    ticks: Vec<i64>,
    level: Vec<u8>,
    target: Vec<u32>,
    msg: Vec<u32>,
    file: Vec<u32>,
    line: Vec<u32>,
    properties: Vec<u32>,
}

/// A log-view partition file to write.
pub fn new_rows() -> Result<Box<dyn PartitionRows>> {
    BatchedRows::<Columns>::boxed(schema(), &UNIQUE_VALUED_COLUMNS)
}

impl RowColumns for Columns {
    fn push_block(
        &mut self,
        file: &mut FileBuilder,
        block_id: Uuid,
        block: &DecodedBlock,
    ) -> usize {
        for entry in &block.logs {
            self.block.push(file.block_key(block_id));
            self.index.push(entry.index);
            self.ticks.push(entry.ticks);
            self.level.push(entry.level);
            self.target.push(file.string_key(&entry.target));
            self.msg.push(file.string_key(&entry.msg));
            self.file.push(file.string_key(&entry.file));
            self.line.push(entry.line);
            self.properties
                .push(file.property_set_key(&entry.properties));
        }
        block.logs.len()
    }

    fn len(&self) -> usize {
        self.block.len()
    }

    fn into_batch(self) -> Result<RecordBatch> {
        let u32s = |values: Vec<u32>| -> ArrayRef { Arc::new(UInt32Array::from(values)) };
        let columns: Vec<ArrayRef> = vec![
            u32s(self.block),
            u32s(self.index),
            Arc::new(Int64Array::from(self.ticks)),
            Arc::new(UInt8Array::from(self.level)),
            u32s(self.target),
            u32s(self.msg),
            u32s(self.file),
            u32s(self.line),
            u32s(self.properties),
        ];
        Ok(RecordBatch::try_new(schema(), columns)?)
    }
}

impl RowTable for LogTable {
    fn read_rows(
        &mut self,
        batch: &RecordBatch,
        tables: &FileKeys,
        (_view, clock): (View, &Clock),
        rows: Range<usize>,
    ) -> Result<()> {
        let block = keys(batch, "block", &tables.blocks, &rows)?;
        let target = keys(batch, "target", &tables.strings, &rows)?;
        let msg = keys(batch, "msg", &tables.strings, &rows)?;
        let file = keys(batch, "file", &tables.strings, &rows)?;
        let properties = keys(batch, "properties", &tables.property_sets, &rows)?;
        let index = column::<UInt32Array>(batch, "index")?.values();
        let ticks = column::<Int64Array>(batch, "ticks")?.values();
        let level = column::<UInt8Array>(batch, "level")?.values();
        let line = column::<UInt32Array>(batch, "line")?.values();
        for i in rows {
            let Some(position) = tables.blocks[block[i] as usize] else {
                continue;
            };
            self.orders.push(EventOrder::new(position, index[i]));
            self.rows.push(LogRow {
                ns: clock.event_ns(ticks[i]),
                level: level[i],
                target: tables.strings[target[i] as usize],
                msg: tables.strings[msg[i] as usize],
                file: tables.strings[file[i] as usize],
                line: line[i],
                properties: tables.property_sets[properties[i] as usize],
            });
        }
        Ok(())
    }
}
