//! The row format of the measures view: one row per measure, with its block and index (its
//! place in stream order), raw ticks, interned strings, value, whether it was an integer, and
//! its property set.

use anyhow::Result;
use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, UInt32Array};
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
use crate::events::{EventOrder, MeasureRow, MeasureTable};

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

/// A measure-view partition file to write.
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
        for measure in &block.measures {
            self.block.push(file.block_key(block_id));
            self.index.push(measure.index);
            self.ticks.push(measure.ticks);
            self.name.push(file.string_key(&measure.name));
            self.unit.push(file.string_key(&measure.unit));
            self.target.push(file.string_key(&measure.target));
            self.value.push(measure.value);
            self.integer.push(measure.integer);
            self.properties
                .push(file.property_set_key(&measure.properties));
        }
        block.measures.len()
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

impl RowTable for MeasureTable {
    fn read_rows(
        &mut self,
        batch: &RecordBatch,
        tables: &FileKeys,
        (_view, clock): (View, &Clock),
        rows: Range<usize>,
    ) -> Result<()> {
        let block = keys(batch, "block", &tables.blocks, &rows)?;
        let name = keys(batch, "name", &tables.strings, &rows)?;
        let unit = keys(batch, "unit", &tables.strings, &rows)?;
        let target = keys(batch, "target", &tables.strings, &rows)?;
        let properties = keys(batch, "properties", &tables.property_sets, &rows)?;
        let index = column::<UInt32Array>(batch, "index")?.values();
        let ticks = column::<Int64Array>(batch, "ticks")?.values();
        let value = column::<Float64Array>(batch, "value")?.values();
        let integer = column::<BooleanArray>(batch, "integer")?;
        for i in rows {
            let Some(position) = tables.blocks[block[i] as usize] else {
                continue;
            };
            self.orders.push(EventOrder::new(position, index[i]));
            self.rows.push(MeasureRow {
                ns: clock.event_ns(ticks[i]),
                name: tables.strings[name[i] as usize],
                unit: tables.strings[unit[i] as usize],
                target: tables.strings[target[i] as usize],
                value: value[i],
                integer: integer.value(i),
                properties: tables.property_sets[properties[i] as usize],
            });
        }
        Ok(())
    }
}
