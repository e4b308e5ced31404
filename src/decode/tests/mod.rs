//! Tests of the decoder on log and metrics streams: genuine blocks of the Rust crate
//! (`rust_producer`), hand-built records of the Unreal plugin (`unreal`) and of older Rust
//! producers (`legacy`), malformed and mutated input (`malformed`). Every decoded block is also
//! read by Micromegas's own parser and its rules (`reference`), and the two must agree.

mod legacy;
mod malformed;
mod reference;
mod rust_producer;
mod unreal;

use micromegas_transit::{Member, UserDefinedType};
use std::sync::Arc;

use super::{DecodedBlock, StreamDecoder};

/// A block as the lake holds it: its stream's two metadata columns and its payload.
#[derive(Clone)]
pub struct TestBlock {
    pub dependencies_metadata: Vec<u8>,
    pub objects_metadata: Vec<u8>,
    pub payload: Vec<u8>,
}

impl TestBlock {
    pub fn decoder(&self) -> StreamDecoder {
        StreamDecoder::new(&self.dependencies_metadata, &self.objects_metadata)
            .expect("the stream's metadata compiles")
    }

    pub fn decode(&self) -> anyhow::Result<DecodedBlock> {
        self.decoder().decode(&self.payload)
    }
}

/// The stored payload of a block: both buffers LZ4-framed, in the CBOR envelope, as the
/// telemetry sink and the ingestion service write it.
pub fn envelope(dependencies: &[u8], objects: &[u8]) -> Vec<u8> {
    use micromegas_telemetry::compression::compress;
    let payload = micromegas_telemetry::block_wire_format::BlockPayload {
        dependencies: compress(dependencies).unwrap(),
        objects: compress(objects).unwrap(),
    };
    micromegas_telemetry::wire_format::encode_cbor(&payload).unwrap()
}

/// A metadata column: the type list as CBOR.
pub fn metadata_column(udts: &[UserDefinedType]) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(udts, &mut out).unwrap();
    out
}

/// The tick frequency the tests convert tick counts with.
pub const FREQUENCY: i64 = 3_000_000_000;

/// Decodes the block and checks it against the reference: the same log entries and the same
/// measures (tick counts converted as Micromegas does), field by field, in the same order.
pub fn decode_and_compare(block: &TestBlock) -> DecodedBlock {
    let decoded = block.decode().expect("the block decodes");
    let reference = reference::read(block).expect("Micromegas's parser reads the block");
    assert_eq!(decoded.logs, reference.logs, "log entries");
    let converted: Vec<_> = decoded
        .measures
        .iter()
        .cloned()
        .map(|m| m.ticks_in_seconds(FREQUENCY))
        .collect();
    assert_eq!(converted, reference.measures, "measures");
    decoded
}

pub fn member(
    name: &str,
    type_name: &str,
    offset: usize,
    size: usize,
    is_reference: bool,
) -> Member {
    Member {
        name: Arc::new(name.into()),
        type_name: type_name.into(),
        offset,
        size,
        is_reference,
    }
}

pub fn udt(name: &str, size: usize, is_reference: bool, members: Vec<Member>) -> UserDefinedType {
    UserDefinedType {
        name: Arc::new(name.into()),
        size,
        members,
        is_reference,
        secondary_udts: vec![],
    }
}

/// The fields of a hand-built record, concatenated.
pub fn le(fields: &[&[u8]]) -> Vec<u8> {
    fields.concat()
}

/// A hand-built transit buffer: records of `u8 type index`, then the fixed-size bytes, or
/// `u32 len` and the bytes of a variable-size record.
#[derive(Default)]
pub struct Buffer(pub Vec<u8>);

impl Buffer {
    pub fn fixed(&mut self, type_index: u8, bytes: Vec<u8>) {
        self.0.push(type_index);
        self.0.extend(bytes);
    }

    pub fn variable(&mut self, type_index: u8, bytes: Vec<u8>) {
        self.0.push(type_index);
        self.0.extend((bytes.len() as u32).to_le_bytes());
        self.0.extend(bytes);
    }
}
