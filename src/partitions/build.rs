//! Building partitions: fetch and decode each needed block once, in parallel, in stream order.

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

use super::files::EventRow;
use super::plan::View;
use crate::decode::{EventScope, StreamDecoder};
use crate::error::{FailureKind, failure};
use crate::lake::Lake;
use crate::lake::rows::{BlockRow, StreamRow};

pub fn scope_of(view: View) -> EventScope {
    match view {
        View::ThreadSpans => EventScope::Thread,
        View::AsyncEvents => EventScope::Async,
    }
}

/// Decodes the blocks at `needed` (indexes into `blocks`); any block that cannot be read or
/// decoded fails the whole build, naming the block.
pub async fn decode_blocks(
    lake: &Lake,
    streams: &[StreamRow],
    blocks: &[BlockRow],
    needed: &[usize],
    concurrency: usize,
) -> Result<(HashMap<usize, Vec<EventRow>>, (u64, u64))> {
    let mut decoders: HashMap<Uuid, Arc<StreamDecoder>> = HashMap::new();
    for stream in streams {
        let decoder = StreamDecoder::new(&stream.dependencies_metadata, &stream.objects_metadata)
            .map_err(|e| {
            failure(
                FailureKind::LakeData,
                format!(
                    "stream {} has unusable type metadata: {e:#}",
                    stream.stream_id
                ),
            )
        })?;
        decoders.insert(stream.stream_id, Arc::new(decoder));
    }
    let decoded: Vec<(usize, Vec<EventRow>, u64)> = futures::stream::iter(needed.iter().copied())
        .map(|index| {
            let block = blocks[index].clone();
            let decoder = decoders.get(&block.stream_id).cloned();
            async move {
                let decoder = decoder.context("block of an unknown stream")?;
                let payload = lake.block_payload(&block).await?;
                let size = payload.len() as u64;
                let rows = tokio::task::spawn_blocking(move || -> Result<Vec<EventRow>> {
                    let events = decoder.decode_block(&payload).map_err(|e| {
                        failure(
                            FailureKind::LakeData,
                            format!(
                                "block {} of stream {} cannot be decoded: {e:#}",
                                block.block_id, block.stream_id
                            ),
                        )
                    })?;
                    Ok(events
                        .into_iter()
                        .enumerate()
                        .map(|(i, event)| EventRow {
                            stream_id: block.stream_id,
                            block_id: block.block_id,
                            index: i as u32,
                            event,
                        })
                        .collect())
                })
                .await
                .context("decoding task failed")??;
                Ok::<_, anyhow::Error>((index, rows, size))
            }
        })
        .buffered(concurrency.max(1))
        .try_collect()
        .await?;
    let (mut count, mut bytes) = (0, 0);
    let map = decoded
        .into_iter()
        .map(|(index, rows, size)| {
            count += 1;
            bytes += size;
            (index, rows)
        })
        .collect();
    Ok((map, (count, bytes)))
}
