//! The parts of a partition file that a read of some of its row groups needs: its footer and
//! those row groups' bytes, each with its own checksum. A window export fetches and checks
//! these alone (a tenth of a reached file), and decodes them as if they were the whole file.

use anyhow::{Context, Result};
use bytes::{Buf, Bytes};
use parquet::errors::ParquetError;
use parquet::file::metadata::ParquetMetaDataReader;
use parquet::file::reader::{ChunkReader, Length};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// A file's footer (the Parquet metadata and its 8-byte tail) and row groups (each from its
/// first column chunk to the end of its last), by byte range and xxh3-64.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileRanges {
    footer: Checked,
    row_groups: Vec<Checked>,
}

/// `[start, length, xxh3-64]`: the catalog keeps one short JSON array per range.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Checked(u64, u64, u64);

impl Checked {
    fn of(data: &Bytes, range: Range<u64>) -> Self {
        let bytes = &data[range.start as usize..range.end as usize];
        Checked(range.start, range.end - range.start, xxh3(bytes))
    }

    fn range(&self) -> Range<u64> {
        self.0..self.0.saturating_add(self.1)
    }
}

/// The checksum of partition files and of their ranges.
pub fn xxh3(bytes: &[u8]) -> u64 {
    twox_hash::XxHash3_64::oneshot(bytes)
}

impl FileRanges {
    /// The ranges of a file just written.
    pub fn of(data: &Bytes) -> Result<Self> {
        let metadata = ParquetMetaDataReader::new()
            .parse_and_finish(data)
            .context("cannot read back the partition file just written")?;
        let len = data.len() as u64;
        let footer_len = u32::from_le_bytes(data[data.len() - 8..data.len() - 4].try_into()?);
        let footer = Checked::of(data, len - 8 - u64::from(footer_len)..len);
        let row_groups = (metadata.row_groups().iter())
            .map(|group| {
                let chunks = group.columns().iter().map(|c| c.byte_range());
                let start = chunks.clone().map(|(start, _)| start).min().unwrap_or(0);
                let end = chunks.map(|(start, len)| start + len).max().unwrap_or(0);
                Checked::of(data, start..end)
            })
            .collect();
        Ok(Self { footer, row_groups })
    }

    /// As the catalog keeps them.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// As the catalog keeps them; `None` if malformed (the file is then read whole).
    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }

    /// The file's row groups, in order, in runs of at least `bytes` (the last may hold fewer),
    /// each with its bytes.
    pub fn runs(&self, bytes: u64) -> Vec<(Vec<usize>, u64)> {
        let mut runs: Vec<(Vec<usize>, u64)> = Vec::new();
        for (g, group) in self.row_groups.iter().enumerate() {
            match runs.last_mut() {
                Some((groups, held)) if *held < bytes => {
                    groups.push(g);
                    *held += group.1;
                }
                _ => runs.push((vec![g], group.1)),
            }
        }
        runs
    }

    /// The ranges a read of these row groups needs (ascending, then the footer if `footer`:
    /// a reader given the file's metadata needs none); `None` if a row group is not the file's.
    fn needed(&self, (groups, footer): (&[usize], bool)) -> Option<Vec<Checked>> {
        let mut needed: Vec<Checked> = (groups.iter())
            .map(|&g| self.row_groups.get(g).copied())
            .collect::<Option<_>>()?;
        needed.sort_by_key(|c| c.0);
        needed.dedup();
        needed.extend(footer.then_some(self.footer));
        Some(needed)
    }

    /// The byte ranges to fetch for these row groups (and the footer, if `footer`), in the
    /// order [`FileRanges::assemble`] takes their bytes; `None` if a row group is not the
    /// file's.
    pub fn to_fetch(&self, wanted: (&[usize], bool)) -> Option<Vec<Range<u64>>> {
        Some(self.needed(wanted)?.iter().map(Checked::range).collect())
    }

    /// The file of `len` bytes as far as `fetched` (the ranges of [`FileRanges::to_fetch`])
    /// holds it, each range checked; `Err` names the first range whose bytes do not match.
    pub fn assemble(
        &self,
        wanted: (&[usize], bool),
        len: u64,
        fetched: Vec<Bytes>,
    ) -> Result<SparseFile, String> {
        let needed = self
            .needed(wanted)
            .ok_or("its row groups are not as recorded")?;
        if needed.len() != fetched.len() {
            return Err("a range was not fetched".into());
        }
        let mut pieces = Vec::with_capacity(needed.len());
        for (range, bytes) in needed.iter().zip(fetched) {
            if bytes.len() as u64 != range.1 || xxh3(&bytes) != range.2 {
                return Err(format!(
                    "its bytes {}..{} do not match the catalog's checksum",
                    range.0,
                    range.0 + range.1
                ));
            }
            pieces.push((range.0, bytes));
        }
        Ok(SparseFile { len, pieces })
    }
}

/// A partition file as fetched: whole, or only some of its byte ranges (a read of anything
/// else is an error, never a wrong answer).
#[derive(Debug, Clone)]
pub struct SparseFile {
    len: u64,
    /// Ascending and apart.
    pieces: Vec<(u64, Bytes)>,
}

impl SparseFile {
    pub fn whole(data: Bytes) -> Self {
        Self {
            len: data.len() as u64,
            pieces: vec![(0, data)],
        }
    }

    /// How many of its bytes were fetched.
    pub fn bytes_held(&self) -> u64 {
        self.pieces
            .iter()
            .map(|(_, bytes)| bytes.len() as u64)
            .sum()
    }

    /// The bytes held, from `start` to the end of the piece holding it.
    fn from(&self, start: u64) -> parquet::errors::Result<Bytes> {
        let k = self.pieces.partition_point(|(at, _)| *at <= start);
        let held = k.checked_sub(1).map(|k| &self.pieces[k]);
        match held {
            Some((at, bytes)) if start - at < bytes.len() as u64 => {
                Ok(bytes.slice((start - at) as usize..))
            }
            _ => Err(ParquetError::General(format!(
                "byte {start} of the file was not fetched"
            ))),
        }
    }
}

impl From<Bytes> for SparseFile {
    fn from(data: Bytes) -> Self {
        Self::whole(data)
    }
}

impl Length for SparseFile {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for SparseFile {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(self.from(start)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let from = self.from(start)?;
        if from.len() < length {
            return Err(ParquetError::General(format!(
                "bytes {start}..{} of the file were not fetched",
                start + length as u64
            )));
        }
        Ok(from.slice(..length))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sparse(len: u64, pieces: &[(u64, &'static [u8])]) -> SparseFile {
        let pieces = (pieces.iter()).map(|&(at, b)| (at, Bytes::from_static(b)));
        SparseFile {
            len,
            pieces: pieces.collect(),
        }
    }

    #[test]
    fn a_sparse_file_serves_what_it_holds_and_refuses_the_rest() {
        let file = sparse(100, &[(10, b"abcde"), (90, b"0123456789")]);
        assert_eq!(file.get_bytes(11, 3).unwrap(), "bcd");
        assert_eq!(file.get_bytes(95, 5).unwrap(), "56789");
        let mut read = String::new();
        std::io::Read::read_to_string(&mut file.get_read(12).unwrap(), &mut read).unwrap();
        assert_eq!(read, "cde", "a reader ends with its piece");
        for (start, len) in [(0, 1), (9, 2), (13, 3), (15, 1), (50, 1), (99, 2)] {
            assert!(file.get_bytes(start, len).is_err(), "{start}+{len}");
        }
    }

    #[test]
    fn row_groups_run_together_until_a_run_holds_enough_bytes() {
        let data = Bytes::from(vec![7u8; 100]);
        let ranges = FileRanges {
            footer: Checked::of(&data, 90..100),
            row_groups: [0..10, 10..40, 40..45, 45..50, 50..90]
                .into_iter()
                .map(|r| Checked::of(&data, r))
                .collect(),
        };
        let runs = ranges.runs(35);
        assert_eq!(
            runs,
            [(vec![0, 1], 40), (vec![2, 3, 4], 50)],
            "each run reaches 35 bytes before the next begins"
        );
        assert_eq!(ranges.runs(1000), [(vec![0, 1, 2, 3, 4], 90)]);
    }

    #[test]
    fn a_range_whose_bytes_differ_from_the_recorded_ones_is_refused() {
        let data = Bytes::from_static(b"0123456789abcdefghij");
        let ranges = FileRanges {
            footer: Checked::of(&data, 15..20),
            row_groups: vec![Checked::of(&data, 0..5), Checked::of(&data, 5..15)],
        };
        assert_eq!(ranges.to_fetch((&[1], true)).unwrap(), [5..15, 15..20]);
        let alone = ranges.to_fetch((&[1], false)).unwrap();
        assert_eq!(alone.len(), 1, "no footer");
        assert_eq!(alone[0], 5..15);
        let fetch = |groups: &[usize]| -> Vec<Bytes> {
            let ranges = ranges.to_fetch((groups, true)).unwrap().into_iter();
            ranges
                .map(|r| data.slice(r.start as usize..r.end as usize))
                .collect()
        };
        let file = ranges.assemble((&[1], true), 20, fetch(&[1])).unwrap();
        assert!(file.get_bytes(5, 15).is_err(), "across two pieces");
        assert_eq!(file.get_bytes(6, 3).unwrap(), "678");
        let mut altered = fetch(&[0]);
        altered[0] = Bytes::from_static(b"0123X");
        let refused = ranges.assemble((&[0], true), 20, altered).unwrap_err();
        assert!(refused.contains("0..5"), "{refused}");
        assert!(ranges.to_fetch((&[2], true)).is_none(), "no such row group");
    }
}
