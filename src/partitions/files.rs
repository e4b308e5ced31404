//! Partition files: Parquet, one file per partition, whatever rows a view holds.
//!
//! Strings and block ids are stored once, in tables in the file's key-value metadata; columns
//! hold indexes into them. Writing needs no per-row string hashing, and reading maps each
//! distinct string to a symbol once per file. A view's row format ([`super::span_rows`]) owns
//! its columns; this module owns the tables, the batching and the encoding.

use anyhow::{Context, Result, bail};
use arrow_array::{Array, RecordBatch, UInt32Array};
use arrow_schema::Schema;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

use crate::symbols::{FastMap, Sym, Symbols};

const STRINGS_KEY: &str = "write-perfetto.strings";
const BLOCKS_KEY: &str = "write-perfetto.blocks";

/// Rows handed to the Parquet writer at a time: the builder holds at most this many
/// uncompressed (about 50 bytes a row), however large the partition.
pub const BATCH_ROWS: usize = 64 * 1024;

/// The file's string table; equal `Arc`s (the decoder shares them within a block) skip the
/// string hash, as long as they are alive: the pointer memo is only valid within one block.
#[derive(Default)]
struct StringTable {
    by_pointer: FastMap<(usize, usize), u32>,
    by_text: FastMap<String, u32>,
    values: Vec<String>,
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

/// One partition file being written: its string and block tables, and the encoder its row
/// format hands batches to.
pub struct FileBuilder {
    strings: StringTable,
    blocks: Vec<Uuid>,
    /// `None` only while a batch is being handed over.
    encoder: Option<Encoder>,
}

impl FileBuilder {
    /// `unique_valued`: columns where nearly every value differs (a dictionary would only be
    /// tried, filled and dropped).
    pub fn new(schema: Arc<Schema>, unique_valued: &[&str]) -> Result<Self> {
        let mut props = WriterProperties::builder().set_compression(Compression::LZ4_RAW);
        for &column in unique_valued {
            props = props.set_column_dictionary_enabled(ColumnPath::from(column), false);
        }
        let writer = ArrowWriter::try_new(Vec::new(), schema, Some(props.build()))?;
        Ok(Self {
            strings: StringTable::default(),
            blocks: Vec::new(),
            encoder: Some(Encoder::Idle(Box::new(writer))),
        })
    }

    /// Starts a block's rows: the decoder shares one `Arc` per string within a block; across
    /// blocks an address may be reused by another string once the previous block is dropped.
    pub fn start_block(&mut self) {
        self.strings.by_pointer.clear();
    }

    /// The key of a block in the block table (added on first use).
    pub fn block_key(&mut self, block_id: Uuid) -> u32 {
        if self.blocks.last() != Some(&block_id) {
            self.blocks.push(block_id);
        }
        self.blocks.len() as u32 - 1
    }

    /// The key of a string shared within the current block.
    pub fn string_key(&mut self, text: &Arc<str>) -> u32 {
        self.strings.key_of_arc(text)
    }

    /// Hands a batch to the encoder thread (after the previous batch is encoded).
    pub fn write_batch(&mut self, batch: RecordBatch) -> Result<()> {
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

    /// The complete file, tables and footer included; `tables`: a row format's own tables
    /// (key, JSON), stored beside the string and block tables.
    pub fn finish(mut self, tables: Vec<(&str, String)>) -> Result<Bytes> {
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
        for (key, value) in tables {
            writer.append_key_value_metadata(KeyValue::new(key.to_string(), value));
        }
        // Writes the footer.
        Ok(Bytes::from(writer.into_inner()?))
    }
}

/// A partition file opened for reading: its tables, resolved for this export.
pub struct FileTables {
    pub builder: ParquetRecordBatchReaderBuilder<Bytes>,
    /// The string table as symbols.
    pub strings: Vec<Sym>,
    /// Each block's place in the export's block list; `None`: not part of this export.
    pub blocks: Vec<Option<u32>>,
    pub rows: usize,
}

impl FileTables {
    pub fn open(
        data: Bytes,
        symbols: &mut Symbols,
        block_position: &HashMap<Uuid, u32>,
    ) -> Result<Self> {
        let builder = ParquetRecordBatchReaderBuilder::try_new(data)?.with_batch_size(BATCH_ROWS);
        let strings = (metadata_list::<Vec<String>>(&builder, STRINGS_KEY)?.iter())
            .map(|s| symbols.intern(s))
            .collect();
        let blocks = metadata_list::<Vec<String>>(&builder, BLOCKS_KEY)?
            .iter()
            .map(|s| {
                let id = Uuid::parse_str(s).context("partition file holds a bad block id")?;
                Ok(block_position.get(&id).copied())
            })
            .collect::<Result<_>>()?;
        let rows = usize::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
        Ok(Self {
            builder,
            strings,
            blocks,
            rows,
        })
    }
}

pub fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T> {
    let column = batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .with_context(|| format!("partition file lacks column {name} of the expected type"))?;
    Ok(column)
}

/// A column of indexes into `table`, checked once so rows can index without a check.
pub fn keys<'a, T>(batch: &'a RecordBatch, name: &str, table: &[T]) -> Result<&'a [u32]> {
    let array = column::<UInt32Array>(batch, name)?;
    if array.null_count() > 0 || array.values().iter().any(|&k| k as usize >= table.len()) {
        bail!("partition column {name} indexes past its table");
    }
    Ok(array.values())
}

impl FileTables {
    /// A row format's own table (see [`FileBuilder::finish`]).
    pub fn table<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<T> {
        metadata_list(&self.builder, key)
    }
}

fn metadata_list<T: serde::de::DeserializeOwned>(
    builder: &ParquetRecordBatchReaderBuilder<Bytes>,
    key: &str,
) -> Result<T> {
    let text = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|e| e.key == key))
        .and_then(|e| e.value.clone())
        .with_context(|| format!("partition file lacks its {key} table"))?;
    serde_json::from_str(&text).with_context(|| format!("partition file has a bad {key} table"))
}
