//! Building partitions, one stream at a time: each needed block is fetched and decoded once
//! (in parallel, consumed in stream order as it arrives) and its events go straight into the
//! column builders of the partitions being built. A stream's thread partitions are written
//! when the stream is done, while the next stream is decoded; the process's async partitions
//! at the end. Any block that
//! cannot be read or decoded fails the build, naming the block, before its partitions are
//! recorded.

use anyhow::Result;
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::files::PartitionBuilder;
use super::plan::{Planned, View};
use super::{EventsRequest, PartitionCache, PartitionStats, Stale, StoredFile, describe};
use crate::decode::{EventScope, SpanEvent, StreamDecoder};
use crate::error::{FailureKind, failure};
use crate::lake::Lake;
use crate::lake::rows::StreamRow;

pub async fn build(
    cache: &PartitionCache,
    lake: &Lake,
    request: &EventsRequest<'_>,
    planned: &[Planned],
    to_build: &[(usize, Stale)],
    stats: &mut PartitionStats,
    keys: &mut [Option<StoredFile>],
) -> Result<()> {
    let reasons: HashMap<usize, &Stale> = to_build.iter().map(|(i, r)| (*i, r)).collect();
    // Which partition being built each block feeds, per view.
    let mut feeds = Feeds::default();
    let mut async_builders: BTreeMap<usize, PartitionBuilder> = BTreeMap::new();
    for &(i, _) in to_build {
        let target = match planned[i].view {
            View::ThreadSpans => &mut feeds.thread,
            View::AsyncEvents => {
                async_builders.insert(i, PartitionBuilder::new()?);
                &mut feeds.async_
            }
        };
        for &b in &planned[i].blocks {
            target.insert(b, i);
        }
    }
    // Blocks are fetched `concurrency` at a time (for remote stores), but decoded only as
    // many at once as there are workers: more would only add threads, each with its stack.
    let decoding =
        tokio::sync::Semaphore::new(tokio::runtime::Handle::current().metrics().num_workers());
    let store = |builders: BTreeMap<usize, PartitionBuilder>| {
        store_all(cache, request, planned, builders, &reasons)
    };
    // A stream's thread partitions are stored while the next stream is decoded.
    let mut storing = None;
    for stream in request.streams {
        let mut thread_builders: BTreeMap<usize, PartitionBuilder> = to_build
            .iter()
            .filter(|(i, _)| {
                planned[*i].view == View::ThreadSpans && planned[*i].instance == stream.stream_id
            })
            .map(|(i, _)| Ok((*i, PartitionBuilder::new()?)))
            .collect::<Result<_>>()?;
        let decoded = decode_stream(
            lake,
            request,
            stream,
            &feeds,
            &decoding,
            &mut thread_builders,
            &mut async_builders,
        );
        let (decoded, stored) = match storing.take() {
            Some(previous) => {
                let (decoded, stored) = futures::future::join(decoded, previous).await;
                (decoded, Some(stored))
            }
            None => (decoded.await, None),
        };
        if let Some(stored) = stored {
            record(stored?, keys, stats);
        }
        let (blocks, bytes) = decoded?;
        stats.blocks_read += blocks;
        stats.payload_bytes += bytes;
        storing = Some(store(thread_builders));
    }
    if let Some(previous) = storing {
        record(previous.await?, keys, stats);
    }
    record(store(async_builders).await?, keys, stats);
    Ok(())
}

/// Which partition being built each block (by position) feeds, per view.
#[derive(Default)]
struct Feeds {
    thread: HashMap<usize, usize>,
    async_: HashMap<usize, usize>,
}

fn record(
    stored: Vec<(usize, StoredFile)>,
    keys: &mut [Option<StoredFile>],
    stats: &mut PartitionStats,
) {
    for (p, key) in stored {
        keys[p] = Some(key);
        stats.built += 1;
    }
}

/// Decodes the blocks of one stream that partitions being built need, in stream order, into
/// their builders; returns how many blocks and payload bytes were read.
async fn decode_stream(
    lake: &Lake,
    request: &EventsRequest<'_>,
    stream: &StreamRow,
    feeds: &Feeds,
    decoding: &tokio::sync::Semaphore,
    thread_builders: &mut BTreeMap<usize, PartitionBuilder>,
    async_builders: &mut BTreeMap<usize, PartitionBuilder>,
) -> Result<(u64, u64)> {
    let needed: Vec<usize> = (0..request.blocks.len())
        .filter(|&b| {
            request.blocks[b].stream_id == stream.stream_id
                && (feeds.thread.contains_key(&b) || feeds.async_.contains_key(&b))
        })
        .collect();
    if needed.is_empty() {
        return Ok((0, 0));
    }
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
    let mut decoded = futures::stream::iter(needed.iter().copied())
        .map(|b| decode_block(lake, stream, &decoder, decoding, request, b))
        .buffered(request.concurrency.max(1));
    let (mut blocks, mut bytes) = (0, 0);
    while let Some(block) = decoded.next().await {
        let (b, events, size) = block?;
        blocks += 1;
        bytes += size;
        let block_id = request.blocks[b].block_id;
        let of_scope = |scope: EventScope| {
            events
                .iter()
                .enumerate()
                .filter(move |(_, e)| e.scope == scope)
                .map(|(i, e)| (i as u32, e))
        };
        if let Some(builder) = feeds
            .thread
            .get(&b)
            .and_then(|p| thread_builders.get_mut(p))
        {
            builder.push_block(block_id, of_scope(EventScope::Thread))?;
        }
        if let Some(builder) = feeds.async_.get(&b).and_then(|p| async_builders.get_mut(p)) {
            builder.push_block(block_id, of_scope(EventScope::Async))?;
        }
    }
    Ok((blocks, bytes))
}

/// Stores built partitions one after the other (in partition order: the explanations come out
/// in a stable order); returns their file keys.
async fn store_all(
    cache: &PartitionCache,
    request: &EventsRequest<'_>,
    planned: &[Planned],
    builders: BTreeMap<usize, PartitionBuilder>,
    reasons: &HashMap<usize, &Stale>,
) -> Result<Vec<(usize, StoredFile)>> {
    let mut stored = Vec::with_capacity(builders.len());
    for (p, builder) in builders {
        stored.push((
            p,
            store(cache, request, &planned[p], builder, reasons[&p]).await?,
        ));
    }
    Ok(stored)
}

async fn store(
    cache: &PartitionCache,
    request: &EventsRequest<'_>,
    p: &Planned,
    rows: PartitionBuilder,
    reason: &Stale,
) -> Result<StoredFile> {
    let events = rows.len();
    let key = cache.store_partition(request.process_id, p, rows).await?;
    let verb = match reason {
        Stale::NoPartition => "built",
        Stale::Outdated(_) => "rebuilt",
    };
    (request.explain)(format!(
        "{}: {verb} ({reason}; {} blocks, {events} events)",
        describe(p),
        p.blocks.len()
    ));
    Ok(key)
}

/// Fetches and decodes one block (index `b` of the request's blocks) on a blocking thread.
async fn decode_block(
    lake: &Lake,
    stream: &StreamRow,
    decoder: &Arc<StreamDecoder>,
    decoding: &tokio::sync::Semaphore,
    request: &EventsRequest<'_>,
    b: usize,
) -> Result<(usize, Vec<SpanEvent>, u64)> {
    let block = request.blocks[b].clone();
    let decoder = decoder.clone();
    debug_assert_eq!(block.stream_id, stream.stream_id);
    let payload = lake.block_payload(&block).await?;
    let size = payload.len() as u64;
    let _permit = decoding
        .acquire()
        .await
        .expect("the semaphore is never closed");
    let events = tokio::task::spawn_blocking(move || {
        decoder.decode_block(&payload).map_err(|e| {
            failure(
                FailureKind::LakeData,
                format!(
                    "block {} of stream {} cannot be decoded: {e:#}",
                    block.block_id, block.stream_id
                ),
            )
        })
    })
    .await
    .map_err(|e| crate::error::task_failed("decoding a block", e))??;
    Ok((b, events, size))
}
