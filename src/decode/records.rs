//! The framing of a transit buffer: `u8 type index`, then the type's fixed size in bytes, or a
//! `u32` length and that many bytes for variable-size types.

use anyhow::{Result, bail};

/// What the framing needs to know of a type.
pub(super) trait RecordType {
    fn name(&self) -> &str;
    /// `None` for variable-size records.
    fn fixed_size(&self) -> Option<usize>;
}

/// Calls `each` with every record of `buffer` and its type, in order; `what` names the buffer
/// in errors.
pub(super) fn for_each_record<'a, T: RecordType>(
    buffer: &'a [u8],
    types: &'a [T],
    what: &str,
    mut each: impl FnMut(&'a T, &'a [u8]) -> Result<()>,
) -> Result<()> {
    let mut offset = 0usize;
    while offset < buffer.len() {
        let type_index = buffer[offset] as usize;
        offset += 1;
        let Some(ty) = types.get(type_index) else {
            bail!(
                "{what} type index {type_index} out of range (the stream declares {})",
                types.len()
            );
        };
        let size = match ty.fixed_size() {
            Some(size) => size,
            None => {
                let Some(bytes) = buffer.get(offset..offset + 4) else {
                    bail!("truncated {what} record at offset {offset}");
                };
                offset += 4;
                u32::from_le_bytes(bytes.try_into().expect("4 bytes")) as usize
            }
        };
        let Some(record) = offset
            .checked_add(size)
            .and_then(|end| buffer.get(offset..end))
        else {
            bail!(
                "truncated {} record at offset {offset}: needs {size} bytes",
                ty.name()
            );
        };
        offset += size;
        each(ty, record)?;
    }
    Ok(())
}

/// The little-endian u64 at `offset` of a record; offsets were checked against the record's
/// size when the plan was built.
pub(super) fn u64_at(record: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(
        record[offset..offset + 8]
            .try_into()
            .expect("checked offset"),
    )
}

pub(super) fn u32_at(record: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(
        record[offset..offset + 4]
            .try_into()
            .expect("checked offset"),
    )
}
