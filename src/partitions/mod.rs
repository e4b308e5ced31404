//! Per-stream span events, read from the lake's blocks.
//!
//! This stage owns "the events of a thread stream": today it decodes the blocks directly
//! (fetching payloads concurrently, decoding on worker threads, keeping stream order); the
//! Parquet partition cache with its freshness check slots in here without changing callers.

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use std::sync::Arc;

use crate::assembly::TimedEvent;
use crate::clock::Clock;
use crate::decode::StreamDecoder;
use crate::error::{FailureKind, failure};
use crate::lake::Lake;
use crate::lake::rows::{BlockRow, StreamRow};

/// A block's events with times in ns, and its bounds.
pub struct DecodedBlock {
    pub block: BlockRow,
    pub begin_ns: i64,
    pub end_ns: i64,
    pub events: Vec<TimedEvent>,
}

/// What was done to get the events, for `--json` and `-v`.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReadStats {
    pub blocks_read: u64,
    pub payload_bytes: u64,
}

/// Decodes all the given blocks of one stream (already in stream order) into events.
pub async fn stream_events(
    lake: &Lake,
    stream: &StreamRow,
    blocks: &[BlockRow],
    clock: &Clock,
    concurrency: usize,
    on_block: &(dyn Fn(u64) + Sync),
) -> Result<(Vec<DecodedBlock>, ReadStats)> {
    let decoder = Arc::new(
        StreamDecoder::new(&stream.dependencies_metadata, &stream.objects_metadata).map_err(
            |e| {
                failure(
                    FailureKind::LakeData,
                    format!(
                        "stream {} has unusable type metadata: {e:#}",
                        stream.stream_id
                    ),
                )
            },
        )?,
    );
    let clock = *clock;
    let decoded: Vec<(DecodedBlock, u64)> = futures::stream::iter(blocks.iter().cloned())
        .map(|block| {
            let decoder = decoder.clone();
            async move {
                let payload = lake.block_payload(&block).await?;
                let size = payload.len() as u64;
                let decoded = tokio::task::spawn_blocking(move || {
                    decode_block(&decoder, block, &payload, &clock)
                })
                .await
                .context("decoding task failed")??;
                on_block(size);
                Ok::<_, anyhow::Error>((decoded, size))
            }
        })
        .buffered(concurrency.max(1))
        .try_collect()
        .await?;
    let mut stats = ReadStats::default();
    let blocks = decoded
        .into_iter()
        .map(|(block, size)| {
            stats.blocks_read += 1;
            stats.payload_bytes += size;
            block
        })
        .collect();
    Ok((blocks, stats))
}

fn decode_block(
    decoder: &StreamDecoder,
    block: BlockRow,
    payload: &[u8],
    clock: &Clock,
) -> Result<DecodedBlock> {
    let events = decoder.decode_block(payload).map_err(|e| {
        failure(
            FailureKind::LakeData,
            format!(
                "block {} of stream {} cannot be decoded: {e:#}",
                block.block_id, block.stream_id
            ),
        )
    })?;
    let events = events
        .into_iter()
        .map(|event| TimedEvent {
            ns: clock.event_ns(event.ticks),
            event,
        })
        .collect();
    Ok(DecodedBlock {
        begin_ns: clock.relative_ns(block.begin_ticks),
        end_ns: clock.relative_ns(block.end_ticks.max(block.begin_ticks)),
        block,
        events,
    })
}
