//! Partition files: Parquet, one file per partition, whatever rows a view holds.
//!
//! Strings and block ids are stored once, in tables in the file's key-value metadata; columns
//! hold indexes into them. Writing needs no per-row string hashing, and reading maps each
//! distinct string to a symbol once per file. Property sets are a table of string-key pairs. A view's row format ([`super::span_rows`]) owns
//! its columns; this module owns the tables, the batching and the encoding.

use anyhow::{Context, Result, bail};
use arrow_array::{Array, RecordBatch, UInt32Array};
use arrow_schema::Schema;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder,
};
use parquet::basic::Compression;
use parquet::file::metadata::{KeyValue, ParquetMetaData};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use uuid::Uuid;

use super::digest::ROW_GROUP_DIGESTS_KEY;
use super::ranges::SparseFile;
use crate::decode::DecodedBlock;
use crate::events::OrderedRows;
use crate::symbols::{FastMap, PropertySet, Sym, Symbols};

const STRINGS_KEY: &str = "write-perfetto.strings";
const BLOCKS_KEY: &str = "write-perfetto.blocks";
const PROPERTY_SETS_KEY: &str = "write-perfetto.property-sets";

/// A property set as a file stores it: (key, value) pairs of string keys.
type StoredSet = Vec<(u32, u32)>;

/// Rows handed to the Parquet writer at a time: the builder holds at most this many
/// uncompressed (about 50 bytes a row), however large the partition.
pub const BATCH_ROWS: usize = 64 * 1024;
/// Rows decoded at a time when reading a partition file: each column of a batch then stays
/// below the allocator's threshold for a mapping of its own, so batches reuse memory instead of
/// faulting fresh pages in (against 64 Ki rows: 2,000 threads warm 0.92–0.95×, peak −4 MB; the
/// 10 s window 0.94–1.01×; the whole 8-hour process 1.03×, within its noise).
const READ_BATCH_ROWS: usize = 8 * 1024;

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

impl super::digest::FileTables for FileBuilder {
    fn text(&self, key: u32) -> &str {
        self.strings
            .values
            .get(key as usize)
            .map_or("", String::as_str)
    }

    fn block(&self, key: u32) -> Uuid {
        self.blocks.get(key as usize).copied().unwrap_or_default()
    }

    fn property_set(&self, key: u32) -> Vec<(String, String)> {
        let set = self.sets.get(key as usize).map_or(&[][..], Vec::as_slice);
        (set.iter())
            .map(|&(k, v)| (self.text(k).to_string(), self.text(v).to_string()))
            .collect()
    }
}

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
    /// The property-set table: set 0 is the empty set.
    sets: Vec<StoredSet>,
    set_keys: FastMap<StoredSet, u32>,
    /// `None` only while a batch is being handed over.
    encoder: Option<Encoder>,
    /// What a new writer is made of ([`FileBuilder::restart`]).
    schema: Arc<Schema>,
    properties: WriterProperties,
    /// More of the footer's key-value metadata, after the tables.
    metadata: Vec<KeyValue>,
}

impl FileBuilder {
    /// `unique_valued`: columns where nearly every value differs (a dictionary would only be
    /// tried, filled and dropped).
    pub fn new(schema: Arc<Schema>, unique_valued: &[&str]) -> Result<Self> {
        // No statistics nor page index: nothing reads them (row groups are chosen by their
        // digests), and a thread file has a row group per block.
        let mut props = WriterProperties::builder()
            .set_compression(Compression::LZ4_RAW)
            .set_statistics_enabled(EnabledStatistics::None)
            .set_offset_index_disabled(true);
        for &column in unique_valued {
            props = props.set_column_dictionary_enabled(ColumnPath::from(column), false);
        }
        let properties = props.build();
        let writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(properties.clone()))?;
        Ok(Self {
            strings: StringTable::default(),
            blocks: Vec::new(),
            sets: vec![Vec::new()],
            set_keys: FastMap::default(),
            encoder: Some(Encoder::Idle(Box::new(writer))),
            schema,
            properties,
            metadata: Vec::new(),
        })
    }

    /// Adds an entry to the footer's key-value metadata.
    pub fn add_metadata(&mut self, key: &str, value: String) {
        self.metadata.push(KeyValue::new(key.to_string(), value));
    }

    /// The rows written so far with `last`, as a file of their own (without the tables), and
    /// a new writer for rows that replace them; the tables are kept.
    pub fn restart(&mut self, last: RecordBatch) -> Result<Bytes> {
        let writer = self.writer_with(&last)?;
        let written = Bytes::from(writer.into_inner()?);
        let properties = Some(self.properties.clone());
        let writer = ArrowWriter::try_new(Vec::new(), self.schema.clone(), properties)?;
        self.encoder = Some(Encoder::Idle(Box::new(writer)));
        Ok(written)
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

    /// The key of a property set (sorted pairs shared within the current block; 0: none).
    pub fn property_set_key(&mut self, properties: &[(Arc<str>, Arc<str>)]) -> u32 {
        if properties.is_empty() {
            return 0;
        }
        let set: StoredSet = (properties.iter())
            .map(|(k, v)| (self.string_key(k), self.string_key(v)))
            .collect();
        let next = self.sets.len() as u32;
        *self.set_keys.entry(set).or_insert_with_key(|set| {
            self.sets.push(set.clone());
            next
        })
    }

    /// Hands a batch to the encoder thread (after the previous batch is encoded).
    pub fn write_batch(&mut self, batch: RecordBatch) -> Result<()> {
        self.encode(batch, false)
    }

    /// Hands a batch to the encoder thread, which then ends the row group in progress.
    pub fn write_row_group_end(&mut self, batch: RecordBatch) -> Result<()> {
        self.encode(batch, true)
    }

    fn encode(&mut self, batch: RecordBatch, end_row_group: bool) -> Result<()> {
        let encoder = self
            .encoder
            .take()
            .context("a failed encoding left no writer")?;
        let mut writer = encoder.idle()?;
        let thread = std::thread::Builder::new()
            .name("parquet-encoder".into())
            .spawn(move || {
                let mut encoded = writer.write(&batch);
                if end_row_group && encoded.is_ok() {
                    encoded = writer.flush();
                }
                (writer, encoded)
            })
            .context("cannot start a thread to encode a partition")?;
        self.encoder = Some(Encoder::Busy(thread));
        Ok(())
    }

    /// The writer, once the batch in progress is encoded, with `last` written.
    fn writer_with(&mut self, last: &RecordBatch) -> Result<Box<FileWriter>> {
        let encoder = self
            .encoder
            .take()
            .context("a failed encoding left no writer")?;
        let mut writer = encoder.idle()?;
        writer.write(last)?;
        Ok(writer)
    }

    /// The complete file with its `last` batch, tables and footer. The last batch is encoded
    /// here: a thread for it would only be joined at once (one per small partition).
    pub fn finish(mut self, last: RecordBatch) -> Result<Bytes> {
        let mut writer = self.writer_with(&last)?;
        let block_texts: Vec<String> = self.blocks.iter().map(Uuid::to_string).collect();
        writer.append_key_value_metadata(KeyValue::new(
            STRINGS_KEY.to_string(),
            serde_json::to_string(&self.strings.values)?,
        ));
        writer.append_key_value_metadata(KeyValue::new(
            BLOCKS_KEY.to_string(),
            serde_json::to_string(&block_texts)?,
        ));
        writer.append_key_value_metadata(KeyValue::new(
            PROPERTY_SETS_KEY.to_string(),
            serde_json::to_string(&self.sets)?,
        ));
        for entry in std::mem::take(&mut self.metadata) {
            writer.append_key_value_metadata(entry);
        }
        // Writes the footer.
        Ok(Bytes::from(writer.into_inner()?))
    }
}

/// A partition file's tables, resolved for this export: what its rows' keys stand for.
pub struct FileKeys {
    /// The string table as symbols.
    pub strings: Vec<Sym>,
    /// The property-set table as this export's sets.
    pub property_sets: Vec<PropertySet>,
    /// Each block's place in the export's block list; `None`: not part of this export.
    pub blocks: Vec<Option<u32>>,
}

/// A partition file opened for reading: its tables, and its rows, read batch by batch.
pub struct OpenFile {
    pub keys: FileKeys,
    batches: ParquetRecordBatchReader,
}

impl OpenFile {
    /// Opens a file of `view` for a table of `T`, reading only the columns `T` reads.
    pub fn open<T: RowTable>(
        data: impl Into<SparseFile>,
        view: super::View,
        symbols: &mut Symbols,
        block_position: &HashMap<Uuid, u32>,
    ) -> Result<Self> {
        let (metadata, batches) = decoder::<T>(data.into(), view, None)?;
        Ok(Self {
            keys: file_keys(&metadata, symbols, block_position, None)?,
            batches,
        })
    }

    /// The next batch of rows; `None` once all are read.
    pub fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        Ok(self.batches.next().transpose()?)
    }
}

/// The file's metadata, and a decoder of its batches of rows (only the columns `T` reads; all
/// row groups, or these).
fn decoder<T: RowTable>(
    data: SparseFile,
    view: super::View,
    row_groups: Option<&[usize]>,
) -> Result<(Arc<ParquetMetaData>, ParquetRecordBatchReader)> {
    // Columns are typed by the Parquet schema alone: the Arrow schema would copy the whole
    // key-value metadata (a large string table) into its own.
    let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(data, reader_options())?
        .with_batch_size(READ_BATCH_ROWS);
    let mask = projection::<T>(builder.metadata(), builder.schema(), view);
    let metadata = builder.metadata().clone();
    let mut builder = builder.with_projection(mask);
    if let Some(row_groups) = row_groups {
        let count = metadata.num_row_groups();
        if let Some(missing) = row_groups.iter().find(|&&g| g >= count) {
            bail!("its digest names row group {missing}, and it has {count}");
        }
        builder = builder.with_row_groups(row_groups.to_vec());
    }
    Ok((metadata, builder.build()?))
}

fn reader_options() -> ArrowReaderOptions {
    ArrowReaderOptions::new().with_skip_arrow_metadata(true)
}

/// The columns of a file of `view` that a table of `T` reads.
fn projection<T: RowTable>(
    metadata: &ParquetMetaData,
    schema: &Schema,
    view: super::View,
) -> ProjectionMask {
    let skipped = T::skipped_columns(view);
    let wanted: Vec<usize> = (schema.fields().iter().enumerate())
        .filter(|(_, f)| !skipped.contains(&f.name().as_str()))
        .map(|(i, _)| i)
        .collect();
    ProjectionMask::roots(metadata.file_metadata().schema_descr(), wanted)
}

/// A partition file opened from its footer, to be read a few row groups at a time: its tables
/// are resolved once (all its strings interned, as a read of the whole file does), whatever
/// the row groups each read fetches.
pub struct RowGroupFile {
    metadata: ArrowReaderMetadata,
    mask: ProjectionMask,
    pub keys: FileKeys,
}

impl RowGroupFile {
    /// `data`: the file as far as fetched, its footer included.
    pub fn open<T: RowTable>(
        data: &SparseFile,
        view: super::View,
        symbols: &mut Symbols,
        block_position: &HashMap<Uuid, u32>,
    ) -> Result<Self> {
        let metadata = ArrowReaderMetadata::load(data, reader_options())?;
        let mask = projection::<T>(metadata.metadata(), metadata.schema(), view);
        let keys = file_keys(metadata.metadata(), symbols, block_position, None)?;
        Ok(Self {
            metadata,
            mask,
            keys,
        })
    }

    /// The rows in each of the file's row groups.
    pub fn group_rows(&self) -> Vec<usize> {
        (self.metadata.metadata().row_groups().iter())
            .map(|g| usize::try_from(g.num_rows()).unwrap_or(0))
            .collect()
    }

    /// Appends the rows of these row groups (`data` holds their bytes), but their first `skip`.
    pub fn read<T: RowTable>(
        &self,
        (data, groups, skip): (SparseFile, &[usize], usize),
        table: &mut T,
        reading: (super::View, &crate::clock::Clock),
    ) -> Result<()> {
        let count = self.metadata.metadata().num_row_groups();
        if let Some(missing) = groups.iter().find(|&&g| g >= count) {
            bail!("it has no row group {missing}, it has {count}");
        }
        let metadata = self.metadata.metadata();
        let rows = (groups.iter()).map(|&g| usize::try_from(metadata.row_group(g).num_rows()));
        table.reserve(
            rows.map(|rows| rows.unwrap_or(0))
                .sum::<usize>()
                .saturating_sub(skip),
        );
        let batches =
            ParquetRecordBatchReaderBuilder::new_with_metadata(data, self.metadata.clone())
                .with_batch_size(READ_BATCH_ROWS)
                .with_projection(self.mask.clone())
                .with_row_groups(groups.to_vec())
                .build()?;
        let mut skip = skip;
        for batch in batches {
            let batch = batch?;
            let rows = batch.num_rows();
            if skip < rows {
                table.read_rows(&batch, &self.keys, reading, skip..rows)?;
            }
            skip = skip.saturating_sub(rows);
        }
        Ok(())
    }
}

fn row_count(metadata: &ParquetMetaData) -> usize {
    usize::try_from(metadata.file_metadata().num_rows()).unwrap_or(0)
}

/// The file's tables, resolved for this export (its strings interned). With `read`, the
/// batches to be read and the columns of keys they read ([`RowTable::key_columns`]): only the
/// strings and sets they name are interned (the others stand as the empty string,
/// `Sym::default()`, and set, which no row read names).
fn file_keys(
    metadata: &ParquetMetaData,
    symbols: &mut Symbols,
    block_position: &HashMap<Uuid, u32>,
    read: Option<(&[RecordBatch], KeyColumns)>,
) -> Result<FileKeys> {
    let texts = metadata_list::<Vec<StoredText>>(metadata, STRINGS_KEY)?;
    let sets = metadata_text(metadata, PROPERTY_SETS_KEY)
        .with_context(|| format!("partition file lacks its {PROPERTY_SETS_KEY} table"))?;
    let sets = read_property_sets(sets, texts.len())
        .with_context(|| format!("partition file has a bad {PROPERTY_SETS_KEY} table"))?;
    let used = read
        .map(|read| UsedKeys::of(read, &sets, texts.len()))
        .transpose()?;
    let strings = match &used {
        None => symbols.intern_all(&texts),
        Some(used) => {
            let picked: Vec<&StoredText> = (texts.iter().zip(&used.strings))
                .filter_map(|(text, &used)| used.then_some(text))
                .collect();
            let mut picked = symbols.intern_all(&picked).into_iter();
            (used.strings.iter())
                .map(|&used| used.then(|| picked.next()).flatten().unwrap_or_default())
                .collect()
        }
    };
    let wanted = |k: usize| used.as_ref().is_none_or(|used| used.sets[k]);
    let property_sets = sets.intern(&strings, symbols, wanted);
    let blocks = metadata_list::<Vec<String>>(metadata, BLOCKS_KEY)?
        .iter()
        .map(|s| {
            let id = Uuid::parse_str(s).context("partition file holds a bad block id")?;
            Ok(block_position.get(&id).copied())
        })
        .collect::<Result<_>>()?;
    Ok(FileKeys {
        strings,
        property_sets,
        blocks,
    })
}

/// The columns of a file's rows that index its string table, and the one that indexes its
/// property-set table.
pub type KeyColumns = (&'static [&'static str], &'static str);

/// Which entries of a file's string and property-set tables some batches name.
struct UsedKeys {
    strings: Vec<bool>,
    sets: Vec<bool>,
}

impl UsedKeys {
    /// Keys past their table are left out: reading the rows says they are.
    fn of(
        (batches, (string_columns, set_column)): (&[RecordBatch], KeyColumns),
        sets: &StoredSets,
        strings: usize,
    ) -> Result<Self> {
        let mut used = Self {
            strings: vec![false; strings],
            sets: vec![false; sets.len()],
        };
        let mark = |marks: &mut Vec<bool>, key: u32| {
            if let Some(mark) = marks.get_mut(key as usize) {
                *mark = true;
            }
        };
        for batch in batches {
            for &name in string_columns {
                let keys = column::<UInt32Array>(batch, name)?.values();
                keys.iter().for_each(|&k| mark(&mut used.strings, k));
            }
            let keys = column::<UInt32Array>(batch, set_column)?.values();
            keys.iter().for_each(|&k| mark(&mut used.sets, k));
        }
        for k in (0..sets.len()).filter(|&k| used.sets[k]) {
            for &(key, value) in sets.set(k) {
                mark(&mut used.strings, key);
                mark(&mut used.strings, value);
            }
        }
        Ok(used)
    }
}

/// A string table of at least this many bytes is interned while another thread decodes the
/// file's rows (a large log's is tens of megabytes); a smaller one is not worth a thread.
const PARALLEL_STRINGS_BYTES: usize = 1 << 20;

/// Reads a partition file into `table`: all of it, or these row groups (rows of blocks not in
/// `block_position` are skipped: they are not part of this export). Of a file read by row
/// groups, returns the text of its row groups' digests ([`ROW_GROUP_DIGESTS_KEY`]), if any.
pub fn read_file<T: RowTable>(
    table: &mut T,
    (data, row_groups): (impl Into<SparseFile>, Option<&[usize]>),
    view: super::View,
    symbols: &mut Symbols,
    block_position: &HashMap<Uuid, u32>,
    clock: &crate::clock::Clock,
) -> Result<Option<String>> {
    let (metadata, batches) = decoder::<T>(data.into(), view, row_groups)?;
    table.reserve(match row_groups {
        // Checked by the decoder: each is a row group of the file.
        Some(groups) => (groups.iter())
            .map(|&g| usize::try_from(metadata.row_group(g).num_rows()).unwrap_or(0))
            .sum(),
        None => row_count(&metadata),
    });
    if let (Some(_), Some(columns)) = (row_groups, T::key_columns()) {
        // A few row groups (a window's): their rows first, then only what they name.
        let batches: Vec<RecordBatch> = batches.collect::<Result<_, _>>()?;
        let keys = file_keys(
            &metadata,
            symbols,
            block_position,
            Some((&batches, columns)),
        )?;
        for batch in &batches {
            table.read_batch(batch, &keys, view, clock)?;
        }
        return Ok(metadata_text(&metadata, ROW_GROUP_DIGESTS_KEY).map(str::to_string));
    }
    let strings_bytes = metadata_text(&metadata, STRINGS_KEY).map_or(0, str::len);
    if strings_bytes < PARALLEL_STRINGS_BYTES {
        let keys = file_keys(&metadata, symbols, block_position, None)?;
        for batch in batches {
            table.read_batch(&batch?, &keys, view, clock)?;
        }
        return Ok(None);
    }
    std::thread::scope(|scope| {
        let (sender, decoded) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("parquet-decoder".into())
            .spawn_scoped(scope, move || {
                for batch in batches {
                    if sender.send(batch).is_err() {
                        return; // reading stopped
                    }
                }
            })
            .context("cannot start a thread to decode a partition")?;
        let keys = file_keys(&metadata, symbols, block_position, None)?;
        for batch in decoded {
            table.read_batch(&batch?, &keys, view, clock)?;
        }
        Ok(None)
    })
}

/// A file's property-set table (`[[[key, value], ...], ...]`, indexes into its string table
/// of `strings` texts, checked), parsed into one list of pairs: a vector per set was a third
/// of opening a thread file for a window export.
fn read_property_sets(text: &str, strings: usize) -> serde_json::Result<StoredSets> {
    let mut sets = StoredSets {
        strings,
        pairs: Vec::new(),
        ends: Vec::new(),
    };
    let mut json = serde_json::Deserializer::from_str(text);
    serde::de::DeserializeSeed::deserialize(&mut sets, &mut json)?;
    json.end()?;
    Ok(sets)
}

/// A file's property sets: their pairs of string-table indexes, one set after another.
struct StoredSets {
    /// Entries in the string table.
    strings: usize,
    pairs: Vec<(u32, u32)>,
    /// Where each set ends in `pairs`.
    ends: Vec<usize>,
}

impl StoredSets {
    fn len(&self) -> usize {
        self.ends.len()
    }

    fn set(&self, k: usize) -> &[(u32, u32)] {
        let start = k.checked_sub(1).map_or(0, |before| self.ends[before]);
        &self.pairs[start..self.ends[k]]
    }

    /// The sets as this export's (`strings`: the string table as symbols); those not
    /// `wanted` stand as the empty set.
    fn intern(
        &self,
        strings: &[Sym],
        symbols: &mut Symbols,
        wanted: impl Fn(usize) -> bool,
    ) -> Vec<PropertySet> {
        let mut pairs = Vec::new();
        (0..self.len())
            .map(|k| {
                if !wanted(k) {
                    return PropertySet::NONE;
                }
                pairs.clear();
                let as_symbols =
                    |&(key, value): &(u32, u32)| (strings[key as usize], strings[value as usize]);
                pairs.extend(self.set(k).iter().map(as_symbols));
                symbols.intern_properties(&pairs)
            })
            .collect()
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for &mut StoredSets {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, from: D) -> Result<(), D::Error> {
        from.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for &mut StoredSets {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of property sets")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut sets: A) -> Result<(), A::Error> {
        loop {
            let set = SetReader {
                strings: self.strings,
                pairs: &mut self.pairs,
            };
            if sets.next_element_seed(set)?.is_none() {
                return Ok(());
            }
            self.ends.push(self.pairs.len());
        }
    }
}

/// Reads one property set onto the end of `pairs`.
struct SetReader<'a> {
    strings: usize,
    pairs: &'a mut Vec<(u32, u32)>,
}

impl<'de> serde::de::DeserializeSeed<'de> for SetReader<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, from: D) -> Result<(), D::Error> {
        from.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for SetReader<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a property set: [key, value] pairs")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut pairs: A) -> Result<(), A::Error> {
        while let Some((k, v)) = pairs.next_element::<(u32, u32)>()? {
            if k as usize >= self.strings || v as usize >= self.strings {
                let why = "a property set indexes past the string table";
                return Err(serde::de::Error::custom(why));
            }
            self.pairs.push((k, v));
        }
        Ok(())
    }
}

pub fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T> {
    let column = batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .with_context(|| format!("partition file lacks column {name} of the expected type"))?;
    Ok(column)
}

/// A column of indexes into `table`, checked at `rows` once so those rows can index without a
/// check.
pub fn keys<'a, T>(
    batch: &'a RecordBatch,
    name: &str,
    table: &[T],
    rows: &Range<usize>,
) -> Result<&'a [u32]> {
    let array = column::<UInt32Array>(batch, name)?;
    let checked = array.values().get(rows.clone());
    let within = |keys: &[u32]| keys.iter().all(|&k| (k as usize) < table.len());
    if array.null_count() > 0 || !checked.is_some_and(within) {
        bail!("partition column {name} indexes past its table");
    }
    Ok(array.values())
}

/// A string of a file's string table, borrowed from the file's metadata unless it has escapes:
/// a large table is read without an allocation per string.
#[derive(serde::Deserialize)]
struct StoredText<'a>(#[serde(borrow)] std::borrow::Cow<'a, str>);

impl AsRef<str> for StoredText<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

fn metadata_list<'a, T: serde::Deserialize<'a>>(
    metadata: &'a ParquetMetaData,
    key: &str,
) -> Result<T> {
    let text = metadata_text(metadata, key)
        .with_context(|| format!("partition file lacks its {key} table"))?;
    serde_json::from_str(text).with_context(|| format!("partition file has a bad {key} table"))
}

fn metadata_text<'a>(metadata: &'a ParquetMetaData, key: &str) -> Option<&'a str> {
    (metadata.file_metadata().key_value_metadata())
        .and_then(|kv| kv.iter().find(|e| e.key == key))
        .and_then(|e| e.value.as_deref())
}

/// A partition file being written by a view's row format: rows appended block by block, as
/// blocks are decoded, in stream order.
pub trait PartitionRows: Send {
    /// Appends the items of a decoded block that the view keeps.
    fn push_block(&mut self, block_id: Uuid, stream_id: Uuid, block: &DecodedBlock) -> Result<()>;
    /// Rows appended so far.
    fn len(&self) -> usize;
    /// The complete file.
    fn finish(self: Box<Self>) -> Result<Bytes>;
    /// The partition's digest as JSON ([`super::digest`]), for a view that keeps one.
    fn take_digest(&mut self) -> Result<Option<String>> {
        Ok(None)
    }
}

/// A row format's pending rows, column by column: filled from decoded blocks, handed to the
/// Parquet writer in batches.
pub trait RowColumns: Default + Send + 'static {
    /// Appends the rows of a decoded block the view keeps; returns how many.
    fn push_block(&mut self, file: &mut FileBuilder, block_id: Uuid, block: &DecodedBlock)
    -> usize;
    /// Rows pending.
    fn len(&self) -> usize;
    fn into_batch(self) -> Result<RecordBatch>;
}

/// A partition file of a one-row-per-item format, written in batches of [`BATCH_ROWS`].
pub struct BatchedRows<C: RowColumns> {
    file: FileBuilder,
    pending: C,
    rows: usize,
}

impl<C: RowColumns> BatchedRows<C> {
    /// A partition file of `schema` to write (`unique_valued_columns`: see [`FileBuilder::new`]).
    pub fn boxed(
        schema: Arc<Schema>,
        unique_valued_columns: &[&str],
    ) -> Result<Box<dyn PartitionRows>> {
        Ok(Box::new(Self {
            file: FileBuilder::new(schema, unique_valued_columns)?,
            pending: C::default(),
            rows: 0,
        }))
    }

    fn write_pending(&mut self) -> Result<()> {
        let batch = std::mem::take(&mut self.pending).into_batch()?;
        self.file.write_batch(batch)
    }
}

impl<C: RowColumns> PartitionRows for BatchedRows<C> {
    fn push_block(&mut self, block_id: Uuid, _: Uuid, block: &DecodedBlock) -> Result<()> {
        self.file.start_block();
        self.rows += self.pending.push_block(&mut self.file, block_id, block);
        if self.pending.len() >= BATCH_ROWS {
            self.write_pending()?;
        }
        Ok(())
    }

    fn len(&self) -> usize {
        self.rows
    }

    fn finish(self: Box<Self>) -> Result<Bytes> {
        let last = self.pending.into_batch()?;
        self.file.finish(last)
    }
}

/// What a view's files are read back into: a table of one kind of rows, with their places in
/// stream order.
pub trait RowTable: OrderedRows + Default + Send + 'static {
    /// Columns a file of `view` holds that this table never reads.
    fn skipped_columns(_view: super::View) -> &'static [&'static str] {
        &[]
    }
    /// Appends rows `rows` of one batch of a file whose tables are `keys` (rows of blocks not
    /// in this export are skipped).
    fn read_rows(
        &mut self,
        batch: &RecordBatch,
        keys: &FileKeys,
        reading: (super::View, &crate::clock::Clock),
        rows: Range<usize>,
    ) -> Result<()>;
    /// Appends the rows of one batch.
    fn read_batch(
        &mut self,
        batch: &RecordBatch,
        keys: &FileKeys,
        view: super::View,
        clock: &crate::clock::Clock,
    ) -> Result<()> {
        self.read_rows(batch, keys, (view, clock), 0..batch.num_rows())
    }
    /// The table as span events, which partition digests can stand in for.
    fn as_events(&mut self) -> Option<&mut crate::events::EventTable> {
        None
    }
    /// The columns of keys its rows read, if known: a read of a few row groups then interns
    /// only the strings and sets they name.
    fn key_columns() -> Option<KeyColumns> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_sets_are_read_as_this_exports_and_a_bad_index_is_an_error() {
        let mut symbols = Symbols::new();
        let strings = symbols.intern_all(&["k", "v", "w"]);
        let stored = read_property_sets("[[],[[0,1]],[[0,2],[0,1]],[[0,1]]]", 3).unwrap();
        let sets = stored.intern(&strings, &mut symbols, |_| true);
        assert_eq!(sets.len(), 4);
        assert!(sets[0].is_none());
        assert_eq!(sets[1], sets[3], "equal sets are one set");
        let pairs = |set| -> Vec<(&str, &str)> {
            (symbols.properties(set).iter())
                .map(|&(k, v)| (symbols.get(k), symbols.get(v)))
                .collect()
        };
        assert_eq!(pairs(sets[2]), [("k", "w"), ("k", "v")]);
        for bad in ["[[[0,3]]]", "[[[0]]]", "[[0,1]]", "[[]] x", "{}"] {
            assert!(read_property_sets(bad, 3).is_err(), "{bad}");
        }
    }
}
