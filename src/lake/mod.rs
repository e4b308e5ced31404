//! Lake access: where the lake is, its metadata rows, its block payloads, process resolution.
//!
//! Public surface: [`LakeLocation`] (what the user pointed at), [`Lake`] (open handles),
//! [`resolve_process`], and the row types. The tool never writes the lake (test data is written
//! by the `write-perfetto-test-lake` crate of this workspace, `crates/test-lake`).

mod blobs;
mod location;
mod metadata;
mod resolve;
pub mod rows;

pub use blobs::BlobStore;
pub use location::LakeLocation;
pub use metadata::{
    MetadataDb, MetadataReads, ProcessFilter, ProcessSummary, Snapshot, statements_at_once,
    uuid_literal,
};
pub use resolve::resolve_process;

use anyhow::Result;
use rows::{BlockRow, block_object_key};

/// An open lake: metadata database and object store.
#[derive(Clone)]
pub struct Lake {
    pub metadata: MetadataDb,
    pub blobs: BlobStore,
    pub location: LakeLocation,
}

impl Lake {
    pub async fn open(location: LakeLocation) -> Result<Self> {
        let (metadata, blobs) = location.open().await?;
        Ok(Self {
            metadata,
            blobs,
            location,
        })
    }

    /// The raw payload of a block (CBOR envelope of two LZ4 buffers).
    pub async fn block_payload(&self, block: &BlockRow) -> Result<bytes::Bytes> {
        let key = block_object_key(&block.process_id, &block.stream_id, &block.block_id);
        self.blobs.get(&key).await.map_err(|e| {
            let kind = match e {
                object_store::Error::NotFound { .. } => crate::error::FailureKind::LakeData,
                _ => crate::error::FailureKind::Io,
            };
            crate::error::failure(
                kind,
                format!(
                    "cannot read payload of block {} (stream {}): {e}",
                    block.block_id, block.stream_id
                ),
            )
        })
    }
}
