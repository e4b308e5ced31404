//! The stored object of a block: a CBOR map of two LZ4-framed buffers.

use anyhow::{Context, Result, bail};
use micromegas_telemetry::block_wire_format::BlockPayload;
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
    // The envelope's deserializer (from micromegas-telemetry) accepts both the byte-string and
    // the integer-array encodings of the buffers.
    let envelope: BlockPayload = ciborium::de::from_reader(payload)
        .map_err(|e| anyhow::anyhow!("payload is not a CBOR block envelope: {e}"))?;
    Ok(Buffers {
        dependencies: decompress(&envelope.dependencies).context("dependencies buffer")?,
        objects: decompress(&envelope.objects).context("objects buffer")?,
    })
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
