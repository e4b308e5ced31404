//! Building partitions, one stream at a time: each needed block is fetched and decoded once
//! (in parallel, consumed in stream order as it arrives) and its events go straight into the
//! column builders of the partitions being built. A stream's thread partitions are written as
//! soon as the stream is done, the process's async partitions at the end. Any block that
//! cannot be read or decoded fails the build, naming the block, before its partitions are
//! recorded.

use anyhow::{Context, Result};
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::files::PartitionBuilder;
use super::plan::{Planned, View};
use super::{EventsRequest, PartitionCache, PartitionStats, describe};
use crate::decode::{EventScope, SpanEvent, StreamDecoder};
use crate::error::{FailureKind, failure};
use crate::lake::Lake;
use crate::lake::rows::StreamRow;

pub async fn build(
    cache: &PartitionCache,
    lake: &Lake,
    request: &EventsRequest<'_>,
    planned: &[Planned],
    to_build: &[(usize, String)],
    stats: &mut PartitionStats,
    keys: &mut [Option<String>],
) -> Result<()> {
    let reasons: HashMap<usize, &str> = to_build.iter().map(|(i, r)| (*i, r.as_str())).collect();
    // Which partition being built each block feeds, per view.
    let (mut thread_of, mut async_of) = (HashMap::new(), HashMap::new());
    let mut async_builders: BTreeMap<usize, PartitionBuilder> = BTreeMap::new();
    for &(i, _) in to_build {
        let target = match planned[i].view {
            View::ThreadSpans => &mut thread_of,
            View::AsyncEvents => {
                async_builders.insert(i, PartitionBuilder::new()?);
                &mut async_of
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
    for stream in request.streams {
        let needed: Vec<usize> = (0..request.blocks.len())
            .filter(|&b| {
                request.blocks[b].stream_id == stream.stream_id
                    && (thread_of.contains_key(&b) || async_of.contains_key(&b))
            })
            .collect();
        if needed.is_empty() {
            continue;
        }
        let mut thread_builders: BTreeMap<usize, PartitionBuilder> = to_build
            .iter()
            .filter(|(i, _)| {
                planned[*i].view == View::ThreadSpans && planned[*i].instance == stream.stream_id
            })
            .map(|(i, _)| Ok((*i, PartitionBuilder::new()?)))
            .collect::<Result<_>>()?;
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
            .map(|b| decode_block(lake, stream, &decoder, &decoding, request, b))
            .buffered(request.concurrency.max(1));
        while let Some(block) = decoded.next().await {
            let (b, events, size) = block?;
            stats.blocks_read += 1;
            stats.payload_bytes += size;
            let block_id = request.blocks[b].block_id;
            let of_scope = |scope: EventScope| {
                events
                    .iter()
                    .enumerate()
                    .filter(move |(_, e)| e.scope == scope)
                    .map(|(i, e)| (i as u32, e))
            };
            if let Some(builder) = thread_of.get(&b).and_then(|p| thread_builders.get_mut(p)) {
                builder.push_block(block_id, of_scope(EventScope::Thread))?;
            }
            if let Some(builder) = async_of.get(&b).and_then(|p| async_builders.get_mut(p)) {
                builder.push_block(block_id, of_scope(EventScope::Async))?;
            }
        }
        for (p, builder) in thread_builders {
            keys[p] = Some(store(cache, request, &planned[p], builder, reasons[&p], stats).await?);
        }
    }
    for (p, builder) in async_builders {
        keys[p] = Some(store(cache, request, &planned[p], builder, reasons[&p], stats).await?);
    }
    Ok(())
}

async fn store(
    cache: &PartitionCache,
    request: &EventsRequest<'_>,
    p: &Planned,
    rows: PartitionBuilder,
    reason: &str,
    stats: &mut PartitionStats,
) -> Result<String> {
    let events = rows.len();
    let key = cache.store_partition(request.process_id, p, rows).await?;
    let verb = if reason == "no partition yet" {
        "built"
    } else {
        "rebuilt"
    };
    (request.explain)(format!(
        "{}: {verb} ({reason}; {} blocks, {events} events)",
        describe(p),
        p.blocks.len()
    ));
    stats.built += 1;
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
    .context("decoding task failed")??;
    Ok((b, events, size))
}
