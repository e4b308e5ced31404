//! The row format of the log view: one row per log entry, with its block and index (its place
//! in stream order), raw ticks, level, interned strings and property set.

use anyhow::Result;
use arrow_array::{ArrayRef, Int64Array, RecordBatch, UInt8Array, UInt32Array};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

use super::View;
use super::files::{BATCH_ROWS, FileBuilder, FileTables, PartitionRows, RowTable, column, keys};
use crate::clock::Clock;
use crate::decode::DecodedBlock;
use crate::events::{EventOrder, LogRow, LogTable};
use crate::symbols::Symbols;

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

impl Columns {
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

/// One log-view partition file being written.
pub struct LogRows {
    file: FileBuilder,
    pending: Columns,
    rows: usize,
}

impl LogRows {
    pub fn new() -> Result<Self> {
        Ok(Self {
            file: FileBuilder::new(schema(), &UNIQUE_VALUED_COLUMNS)?,
            pending: Columns::default(),
            rows: 0,
        })
    }

    fn write_pending(&mut self) -> Result<()> {
        let batch = std::mem::take(&mut self.pending).into_batch()?;
        self.file.write_batch(batch)
    }
}

impl PartitionRows for LogRows {
    fn push_block(&mut self, block_id: Uuid, block: &DecodedBlock) -> Result<()> {
        self.file.start_block();
        let (file, rows) = (&mut self.file, &mut self.pending);
        for entry in &block.logs {
            rows.block.push(file.block_key(block_id));
            rows.index.push(entry.index);
            rows.ticks.push(entry.ticks);
            rows.level.push(entry.level);
            rows.target.push(file.string_key(&entry.target));
            rows.msg.push(file.string_key(&entry.msg));
            rows.file.push(file.string_key(&entry.file));
            rows.line.push(entry.line);
            rows.properties
                .push(file.property_set_key(&entry.properties));
            self.rows += 1;
        }
        if self.pending.block.len() >= BATCH_ROWS {
            self.write_pending()?;
        }
        Ok(())
    }

    fn len(&self) -> usize {
        self.rows
    }

    fn finish(mut self: Box<Self>) -> Result<Bytes> {
        self.write_pending()?;
        self.file.finish()
    }
}

impl RowTable for LogTable {
    fn clear(&mut self) {
        LogTable::clear(self)
    }

    fn read_file(
        &mut self,
        data: Bytes,
        _view: View,
        symbols: &mut Symbols,
        block_position: &HashMap<Uuid, u32>,
        clock: &Clock,
    ) -> Result<()> {
        let FileTables {
            builder,
            strings,
            property_sets,
            blocks,
            rows,
        } = FileTables::open(data, symbols, block_position)?;
        self.rows.reserve(rows);
        self.orders.reserve(rows);
        for batch in builder.build()? {
            let batch = batch?;
            let block = keys(&batch, "block", &blocks)?;
            let target = keys(&batch, "target", &strings)?;
            let msg = keys(&batch, "msg", &strings)?;
            let file = keys(&batch, "file", &strings)?;
            let properties = keys(&batch, "properties", &property_sets)?;
            let index = column::<UInt32Array>(&batch, "index")?.values();
            let ticks = column::<Int64Array>(&batch, "ticks")?.values();
            let level = column::<UInt8Array>(&batch, "level")?.values();
            let line = column::<UInt32Array>(&batch, "line")?.values();
            for i in 0..batch.num_rows() {
                let Some(position) = blocks[block[i] as usize] else {
                    continue;
                };
                self.orders.push(EventOrder::new(position, index[i]));
                self.rows.push(LogRow {
                    ns: clock.event_ns(ticks[i]),
                    level: level[i],
                    target: strings[target[i] as usize],
                    msg: strings[msg[i] as usize],
                    file: strings[file[i] as usize],
                    line: line[i],
                    properties: property_sets[properties[i] as usize],
                });
            }
        }
        Ok(())
    }

    fn sort(&mut self) {
        LogTable::sort(self)
    }
}
