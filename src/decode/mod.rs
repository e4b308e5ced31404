//! Block decoding: CBOR envelope → LZ4 buffers → transit records → span events, log entries
//! and measures.
//!
//! Public surface: [`StreamDecoder`] (built once per stream from its type metadata) and what it
//! yields: [`SpanEvent`]s of thread streams, [`LogEntry`]s of log streams, [`Measure`]s of
//! metrics streams. Decoding is strict: anything malformed is an error naming what is wrong;
//! the caller adds which block it was.

mod dependencies;
mod events;
mod inline;
mod layout;
mod logs;
mod measures;
mod payload;
mod records;

#[cfg(test)]
mod tests;

pub use events::{EventPhase, EventScope, SpanEvent};
pub use layout::StreamDecoder;
pub use logs::LogEntry;
pub use measures::{Measure, SECONDS_UNIT, ticks_to_seconds};
pub use payload::decode_payload;

use anyhow::{Context, Result};

use layout::ObjectPlan;
use records::for_each_record;

/// Everything a block holds that write-perfetto shows, in stream order within each kind.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DecodedBlock {
    pub spans: Vec<SpanEvent>,
    pub logs: Vec<LogEntry>,
    pub measures: Vec<Measure>,
}

impl StreamDecoder {
    /// Decodes one block payload (as stored in the object store).
    pub fn decode(&self, payload: &[u8]) -> Result<DecodedBlock> {
        let buffers = decode_payload(payload)?;
        let deps = dependencies::read(&self.dependency_types, &buffers.dependencies)?;
        self.read_objects(&deps, &buffers.objects)
    }

    /// Decodes one block payload into its span events, in stream order.
    pub fn decode_block(&self, payload: &[u8]) -> Result<Vec<SpanEvent>> {
        Ok(self.decode(payload)?.spans)
    }

    fn read_objects(
        &self,
        deps: &dependencies::Dependencies,
        objects: &[u8],
    ) -> Result<DecodedBlock> {
        let mut block = DecodedBlock::default();
        // Every record counts, skipped ones too, so that an index is a place in the stream.
        let mut index: u32 = 0;
        for_each_record(objects, &self.object_types, "object", |ty, record| {
            match &ty.plan {
                Some(ObjectPlan::Span(plan)) => {
                    block.spans.push(events::decode_event(plan, deps, record)?)
                }
                Some(ObjectPlan::Log(plan)) => block.logs.push(
                    logs::decode(plan, &ty.name, deps, record, index)
                        .with_context(|| format!("{} (object {index})", ty.name))?,
                ),
                Some(ObjectPlan::Measure(plan)) => block.measures.push(
                    measures::decode(plan, deps, record, index)
                        .with_context(|| format!("{} (object {index})", ty.name))?,
                ),
                None => {}
            }
            index += 1;
            Ok(())
        })?;
        Ok(block)
    }
}
