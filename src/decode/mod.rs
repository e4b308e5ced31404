//! Block decoding: CBOR envelope → LZ4 buffers → transit records → span events.
//!
//! Public surface: [`StreamDecoder`] (built once per stream from its type metadata) and the
//! [`SpanEvent`] it yields. Decoding is strict: anything malformed is an error naming what is
//! wrong; the caller adds which block it was.

mod dependencies;
mod events;
mod layout;
mod payload;
mod records;

pub use events::{EventPhase, EventScope, SpanEvent};
pub use layout::StreamDecoder;
pub use payload::decode_payload;

use anyhow::Result;

/// Everything a block holds that write-perfetto shows, in stream order within each kind.
#[derive(Debug, Default)]
pub struct DecodedBlock {
    pub spans: Vec<SpanEvent>,
    pub logs: Vec<LogEntry>,
}

/// One log entry. `index`: its place among the block's objects (for stream order).
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub index: u32,
    pub ticks: i64,
    /// 1 fatal, 2 error, 3 warn, 4 info, 5 debug, 6 trace.
    pub level: u8,
    pub target: std::sync::Arc<str>,
    pub msg: std::sync::Arc<str>,
    /// `""` when unknown.
    pub file: std::sync::Arc<str>,
    /// 0 when unknown.
    pub line: u32,
    /// Sorted by key.
    pub properties: Vec<(std::sync::Arc<str>, std::sync::Arc<str>)>,
}

impl StreamDecoder {
    /// Decodes one block payload (as stored in the object store).
    pub fn decode(&self, payload: &[u8]) -> Result<DecodedBlock> {
        let buffers = decode_payload(payload)?;
        let deps = dependencies::read(&self.dependency_types, &buffers.dependencies)?;
        Ok(DecodedBlock {
            spans: events::read(self, &deps, &buffers.objects)?,
            logs: Vec::new(),
        })
    }

    /// Decodes one block payload into its span events, in stream order.
    pub fn decode_block(&self, payload: &[u8]) -> Result<Vec<SpanEvent>> {
        Ok(self.decode(payload)?.spans)
    }
}
