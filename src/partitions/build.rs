//! Building partitions, one stream at a time: each needed block is fetched and decoded once
//! (in parallel, kept in stream order); a stream's thread partitions are written as soon as
//! the stream is done, the process's async partitions at the end. Any block that cannot be
//! read or decoded fails the build, naming the block, before its partitions are recorded.

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::files::EventRow;
use super::plan::{Planned, View};
use super::{EventsRequest, PartitionCache, PartitionStats, describe};
use crate::decode::{EventScope, StreamDecoder};
use crate::error::{FailureKind, failure};
use crate::lake::Lake;
use crate::lake::rows::{BlockRow, StreamRow};

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
    let mut async_rows: BTreeMap<usize, Vec<EventRow>> = BTreeMap::new();
    for &(i, _) in to_build {
        let target = match planned[i].view {
            View::ThreadSpans => &mut thread_of,
            View::AsyncEvents => {
                async_rows.insert(i, Vec::new());
                &mut async_of
            }
        };
        for &b in &planned[i].blocks {
            target.insert(b, i);
        }
    }
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
        let decoded =
            decode_blocks(lake, stream, request.blocks, &needed, request.concurrency).await?;
        let mut thread_rows: BTreeMap<usize, Vec<EventRow>> = to_build
            .iter()
            .filter(|(i, _)| {
                planned[*i].view == View::ThreadSpans && planned[*i].instance == stream.stream_id
            })
            .map(|(i, _)| (*i, Vec::new()))
            .collect();
        for (b, rows, size) in decoded {
            stats.blocks_read += 1;
            stats.payload_bytes += size;
            for row in rows {
                let (partition, target) = match row.event.scope {
                    EventScope::Thread => (thread_of.get(&b), &mut thread_rows),
                    EventScope::Async => (async_of.get(&b), &mut async_rows),
                };
                if let Some(rows) = partition.and_then(|p| target.get_mut(p)) {
                    rows.push(row);
                }
            }
        }
        for (p, rows) in thread_rows {
            keys[p] = Some(store(cache, request, &planned[p], &rows, reasons[&p], stats).await?);
        }
    }
    for (p, rows) in async_rows {
        keys[p] = Some(store(cache, request, &planned[p], &rows, reasons[&p], stats).await?);
    }
    Ok(())
}

async fn store(
    cache: &PartitionCache,
    request: &EventsRequest<'_>,
    p: &Planned,
    rows: &[EventRow],
    reason: &str,
    stats: &mut PartitionStats,
) -> Result<String> {
    let key = cache.store_partition(request.process_id, p, rows).await?;
    let verb = if reason == "no partition yet" {
        "built"
    } else {
        "rebuilt"
    };
    (request.explain)(format!(
        "{}: {verb} ({reason}; {} blocks, {} events)",
        describe(p),
        p.blocks.len(),
        rows.len()
    ));
    stats.built += 1;
    Ok(key)
}

/// Decodes the blocks at `needed` (indexes into `blocks`, all of `stream`), in that order,
/// with their payload sizes.
async fn decode_blocks(
    lake: &Lake,
    stream: &StreamRow,
    blocks: &[BlockRow],
    needed: &[usize],
    concurrency: usize,
) -> Result<Vec<(usize, Vec<EventRow>, u64)>> {
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
    futures::stream::iter(needed.iter().copied())
        .map(|index| {
            let block = blocks[index].clone();
            let decoder = decoder.clone();
            async move {
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
        .await
}
