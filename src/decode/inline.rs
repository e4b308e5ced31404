//! The packed fields of variable-size records.
//!
//! A variable-size record's fields follow one another with no padding, in an order fixed by its
//! type name: its metadata declares no members, or (Unreal) the producer's in-memory offsets,
//! which do not apply to the packed bytes. Micromegas reads each such type with a hand-written
//! reader (micromegas-tracing's `parsing.rs`); [`Cursor`] reads the same fields the same way.

use anyhow::{Result, bail};
use std::sync::Arc;

/// Reads a record's fields front to back; `type_name` names the record in errors.
pub(super) struct Cursor<'a> {
    rest: &'a [u8],
    type_name: &'a str,
}

impl<'a> Cursor<'a> {
    pub fn new(record: &'a [u8], type_name: &'a str) -> Self {
        Self {
            rest: record,
            type_name,
        }
    }

    pub fn take(&mut self, len: usize, field: &str) -> Result<&'a [u8]> {
        if self.rest.len() < len {
            bail!(
                "{} record truncated: its {field} needs {len} bytes, {} left",
                self.type_name,
                self.rest.len()
            );
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(taken)
    }

    pub fn u8(&mut self, field: &str) -> Result<u8> {
        Ok(self.take(1, field)?[0])
    }

    pub fn u32(&mut self, field: &str) -> Result<u32> {
        let bytes = self.take(4, field)?;
        Ok(u32::from_le_bytes(bytes.try_into().expect("4 bytes")))
    }

    pub fn u64(&mut self, field: &str) -> Result<u64> {
        let bytes = self.take(8, field)?;
        Ok(u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    }

    pub fn i64(&mut self, field: &str) -> Result<i64> {
        Ok(self.u64(field)? as i64)
    }

    /// A `DynString`: `u8 codec, u32 len`, then `len` bytes.
    pub fn string(&mut self, field: &str) -> Result<Arc<str>> {
        let (text, consumed) = decode_string(self.rest)
            .map_err(|e| e.context(format!("{} {field}", self.type_name)))?;
        self.rest = &self.rest[consumed..];
        Ok(text)
    }

    /// The legacy message encoding: the rest of the record, UTF-8 (invalid UTF-8 is an error,
    /// as in Micromegas's readers of these records).
    pub fn utf8_rest(&mut self, field: &str) -> Result<Arc<str>> {
        let text = std::str::from_utf8(self.rest)
            .map_err(|e| anyhow::anyhow!("{} {field} is not UTF-8: {e}", self.type_name))?;
        self.rest = &[];
        Ok(Arc::from(text))
    }

    /// Every byte must have been read: what a producer writes is exactly its fields.
    pub fn finish(self) -> Result<()> {
        if !self.rest.is_empty() {
            bail!(
                "{} record has {} bytes after its last field",
                self.type_name,
                self.rest.len()
            );
        }
        Ok(())
    }
}

/// `u8 codec, u32 len, bytes` → the text and the number of bytes it took. Codecs: 0 = ANSI
/// (read as UTF-8, lossy), 1 = UTF-16LE, 2 = UTF-8 (lossy).
pub(super) fn decode_string(bytes: &[u8]) -> Result<(Arc<str>, usize)> {
    if bytes.len() < 5 {
        bail!("string header truncated");
    }
    let codec = bytes[0];
    let len = u32::from_le_bytes(bytes[1..5].try_into().expect("4 bytes")) as usize;
    let Some(body) = bytes.get(5..).and_then(|rest| rest.get(..len)) else {
        bail!("string of {len} bytes truncated to {}", bytes.len() - 5);
    };
    let text = match codec {
        0 | 2 => Arc::from(String::from_utf8_lossy(body).as_ref()),
        1 => {
            if !len.is_multiple_of(2) {
                bail!("UTF-16 string has an odd length ({len} bytes)");
            }
            let units = body
                .chunks_exact(2)
                .map(|p| u16::from_le_bytes([p[0], p[1]]));
            let text: String = char::decode_utf16(units)
                .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect();
            Arc::from(text)
        }
        other => bail!("unknown string codec {other}"),
    };
    Ok((text, 5 + len))
}
