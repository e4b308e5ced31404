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

impl StreamDecoder {
    /// Decodes one block payload (as stored in the object store) into its span events, in
    /// stream order.
    pub fn decode_block(&self, payload: &[u8]) -> Result<Vec<SpanEvent>> {
        let buffers = decode_payload(payload)?;
        let deps = dependencies::read(&self.dependency_types, &buffers.dependencies)?;
        events::read(self, &deps, &buffers.objects)
    }
}
