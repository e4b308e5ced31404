//! The row format of the measures view: one row per measure, with its block and index (its
//! place in stream order), raw ticks, interned strings, value, whether it was an integer, and
//! its property set.

use anyhow::Result;
use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, UInt32Array};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

use super::View;
use super::files::{BATCH_ROWS, FileBuilder, FileTables, PartitionRows, RowTable, column, keys};
use crate::clock::Clock;
use crate::decode::DecodedBlock;
use crate::events::{EventOrder, MeasureRow, MeasureTable};
use crate::symbols::Symbols;

const UNIQUE_VALUED_COLUMNS: [&str; 3] = ["index", "ticks", "value"];

fn schema() -> Arc<Schema> {
    let u32_column = |name: &str| Field::new(name, DataType::UInt32, false);
    Arc::new(Schema::new(vec![
        u32_column("block"),
        u32_column("index"),
        Field::new("ticks", DataType::Int64, false),
        u32_column("name"),
        u32_column("unit"),
        u32_column("target"),
        Field::new("value", DataType::Float64, false),
        Field::new("integer", DataType::Boolean, false),
        u32_column("properties"),
    ]))
}

/// Rows not yet handed to the Parquet writer, column by column.
#[derive(Default)]
struct Columns {
    block: Vec<u32>,
    index: Vec<u32>,
    ticks: Vec<i64>,
    name: Vec<u32>,
    unit: Vec<u32>,
    target: Vec<u32>,
    value: Vec<f64>,
    integer: Vec<bool>,
    properties: Vec<u32>,
}

impl Columns {
    fn into_batch(self) -> Result<RecordBatch> {
        let u32s = |values: Vec<u32>| -> ArrayRef { Arc::new(UInt32Array::from(values)) };
        let columns: Vec<ArrayRef> = vec![
            u32s(self.block),
            u32s(self.index),
            Arc::new(Int64Array::from(self.ticks)),
            u32s(self.name),
            u32s(self.unit),
            u32s(self.target),
            Arc::new(Float64Array::from(self.value)),
            Arc::new(BooleanArray::from(self.integer)),
            u32s(self.properties),
        ];
        Ok(RecordBatch::try_new(schema(), columns)?)
    }
}

/// One measure-view partition file being written.
pub struct MeasureRows {
    file: FileBuilder,
    pending: Columns,
    rows: usize,
}

impl MeasureRows {
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

impl PartitionRows for MeasureRows {
    fn push_block(&mut self, block_id: Uuid, block: &DecodedBlock) -> Result<()> {
        self.file.start_block();
        let (file, rows) = (&mut self.file, &mut self.pending);
        for measure in &block.measures {
            rows.block.push(file.block_key(block_id));
            rows.index.push(measure.index);
            rows.ticks.push(measure.ticks);
            rows.name.push(file.string_key(&measure.name));
            rows.unit.push(file.string_key(&measure.unit));
            rows.target.push(file.string_key(&measure.target));
            rows.value.push(measure.value);
            rows.integer.push(measure.integer);
            rows.properties
                .push(file.property_set_key(&measure.properties));
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

impl RowTable for MeasureTable {
    fn clear(&mut self) {
        MeasureTable::clear(self)
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
            let name = keys(&batch, "name", &strings)?;
            let unit = keys(&batch, "unit", &strings)?;
            let target = keys(&batch, "target", &strings)?;
            let properties = keys(&batch, "properties", &property_sets)?;
            let index = column::<UInt32Array>(&batch, "index")?.values();
            let ticks = column::<Int64Array>(&batch, "ticks")?.values();
            let value = column::<Float64Array>(&batch, "value")?.values();
            let integer = column::<BooleanArray>(&batch, "integer")?;
            for i in 0..batch.num_rows() {
                let Some(position) = blocks[block[i] as usize] else {
                    continue;
                };
                self.orders.push(EventOrder::new(position, index[i]));
                self.rows.push(MeasureRow {
                    ns: clock.event_ns(ticks[i]),
                    name: strings[name[i] as usize],
                    unit: strings[unit[i] as usize],
                    target: strings[target[i] as usize],
                    value: value[i],
                    integer: integer.value(i),
                    properties: property_sets[properties[i] as usize],
                });
            }
        }
        Ok(())
    }

    fn sort(&mut self) {
        MeasureTable::sort(self)
    }
}
