//! Protobuf encoding of the hot packets by hand: one event per packet, millions of them, so
//! no message structs and no allocation per packet.

use prost::encoding::{WireType, encode_key, encode_varint};

/// `Trace.packet` framing: field 1, length-delimited.
pub fn frame(packet: &[u8], out: &mut Vec<u8>) {
    out.push(0x0a);
    encode_varint(packet.len() as u64, out);
    out.extend_from_slice(packet);
}

pub fn varint_field(tag: u32, value: u64, out: &mut Vec<u8>) {
    encode_key(tag, WireType::Varint, out);
    encode_varint(value, out);
}

pub fn fixed64_field(tag: u32, value: u64, out: &mut Vec<u8>) {
    encode_key(tag, WireType::SixtyFourBit, out);
    out.extend_from_slice(&value.to_le_bytes());
}

pub fn bytes_field(tag: u32, value: &[u8], out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(value.len() as u64, out);
    out.extend_from_slice(value);
}
