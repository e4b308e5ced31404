//! The stored object of a block: a CBOR map of two LZ4-framed buffers.

use anyhow::{Context, Result, bail};
use serde::de::{Deserializer, SeqAccess, Visitor};
use std::io::Read;

/// The two decompressed buffers of a block.
pub struct Buffers {
    pub dependencies: Vec<u8>,
    pub objects: Vec<u8>,
}

/// Buffers larger than this are refused rather than decompressed: a block is a few MB at most.
const MAX_BUFFER_BYTES: u64 = 1 << 30;

pub fn decode_payload(payload: &[u8]) -> Result<Buffers> {
    if payload.is_empty() {
        bail!("empty payload");
    }
    // The envelope's deserializer accepts both the byte-string and the integer-array encodings
    // of the buffers, as micromegas-telemetry's does.
    let envelope: BlockPayload = ciborium::de::from_reader(payload)
        .map_err(|e| anyhow::anyhow!("payload is not a CBOR block envelope: {e}"))?;
    Ok(Buffers {
        dependencies: decompress(&envelope.dependencies).context("dependencies buffer")?,
        objects: decompress(&envelope.objects).context("objects buffer")?,
    })
}

/// The block envelope, declared as micromegas-telemetry's `BlockPayload` is (same name, fields
/// and buffer deserializer, so the same errors), rather than taken from that crate: it would
/// bring its LZ4 compressor, a C library, into the tool for one struct. `tests/fuzz_decoder.rs`
/// and `tests/support/damage.rs` encode envelopes with the crate's own type.
#[derive(serde::Deserialize)]
struct BlockPayload {
    #[serde(deserialize_with = "byte_buf")]
    dependencies: Vec<u8>,
    #[serde(deserialize_with = "byte_buf")]
    objects: Vec<u8>,
}

/// A CBOR byte string, or the legacy array of integers still present in object storage.
fn byte_buf<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    struct ByteBuf;
    impl<'de> Visitor<'de> for ByteBuf {
        type Value = Vec<u8>;

        fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.write_str("a byte string or an array of integers")
        }

        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
            Ok(v)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut buf = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(byte) = seq.next_element::<u8>()? {
                buf.push(byte);
            }
            Ok(buf)
        }
    }
    d.deserialize_byte_buf(ByteBuf)
}

fn decompress(frame: &[u8]) -> Result<Vec<u8>> {
    const LZ4_FRAME_MAGIC: [u8; 4] = [0x04, 0x22, 0x4d, 0x18];
    if frame.len() < 4 || frame[..4] != LZ4_FRAME_MAGIC {
        bail!("not an LZ4 frame");
    }
    let mut out = Vec::new();
    lz4_flex::frame::FrameDecoder::new(frame)
        .take(MAX_BUFFER_BYTES)
        .read_to_end(&mut out)
        .map_err(|e| anyhow::anyhow!("bad LZ4 frame: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(data: &[u8]) -> Vec<u8> {
        micromegas_telemetry::compression::compress(data).unwrap()
    }

    #[test]
    fn reads_the_envelope_micromegas_telemetry_writes() {
        let payload = micromegas_telemetry::block_wire_format::BlockPayload {
            dependencies: frame(b"dependencies"),
            objects: frame(b"objects"),
        };
        let bytes = micromegas_telemetry::wire_format::encode_cbor(&payload).unwrap();
        let buffers = decode_payload(&bytes).unwrap();
        assert_eq!(buffers.dependencies, b"dependencies");
        assert_eq!(buffers.objects, b"objects");
    }

    #[test]
    fn reads_the_legacy_arrays_of_integers() {
        let array =
            |data: &[u8]| ciborium::Value::Array(frame(data).into_iter().map(Into::into).collect());
        let envelope = ciborium::Value::Map(vec![
            ("dependencies".into(), array(b"dependencies")),
            ("objects".into(), array(b"objects")),
        ]);
        let mut bytes = Vec::new();
        ciborium::ser::into_writer(&envelope, &mut bytes).unwrap();
        let buffers = decode_payload(&bytes).unwrap();
        assert_eq!(buffers.dependencies, b"dependencies");
        assert_eq!(buffers.objects, b"objects");
    }

    #[test]
    fn a_buffer_of_another_type_is_refused_as_micromegas_telemetry_refuses_it() {
        let envelope = ciborium::Value::Map(vec![
            ("dependencies".into(), "text".into()),
            ("objects".into(), ciborium::Value::Bytes(frame(b"objects"))),
        ]);
        let mut bytes = Vec::new();
        ciborium::ser::into_writer(&envelope, &mut bytes).unwrap();
        let ours = decode_payload(&bytes).err().unwrap().to_string();
        let theirs = ciborium::de::from_reader::<
            micromegas_telemetry::block_wire_format::BlockPayload,
            _,
        >(&bytes[..])
        .err()
        .unwrap()
        .to_string();
        assert_eq!(
            ours,
            format!("payload is not a CBOR block envelope: {theirs}")
        );
    }
}
