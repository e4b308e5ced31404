//! Building partitions: each needed block is fetched and decoded once (in parallel, across
//! streams, consumed in stream order as it arrives) and its events go straight into the column
//! builders of the partitions being built. A stream's own partitions are written when its last
//! block is consumed, while the next streams are decoded; the partitions several streams share
//! (the process's, small streams') at the end. Any block that cannot be read or decoded fails
//! the build, naming the block, before its partitions are recorded.

use anyhow::Result;
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::files::PartitionRows;
use super::plan::{Instance, Planned, View};
use super::{EventsRequest, PartitionCache, PartitionStats, Stale, StoredFile, describe, new_rows};
use crate::decode::{DecodedBlock, StreamDecoder};
use crate::error::{FailureKind, failure};
use crate::events::EventScope;
use crate::lake::Lake;
use crate::lake::MetadataReads;
use crate::lake::rows::{StreamRow, StreamTypes, blocks_by_stream};
use uuid::Uuid;

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
    // Which partition being built each block feeds, per view; the builders of the partitions
    // several streams share.
    let mut feeds = Feeds::new();
    let mut shared: Partitions = BTreeMap::new();
    for &(i, _) in to_build {
        let view = planned[i].view;
        if holds_many_streams(&planned[i]) {
            // Async files are cut into row groups of time, whatever streams they hold.
            let async_groups = view.span_scope() == Some(EventScope::Async);
            let row_group_rows = async_groups.then_some(cache.layout.async_row_group_rows());
            shared.insert(i, new_rows(view, row_group_rows)?);
        }
        let feed = feeds.entry(view).or_default();
        for &b in &planned[i].blocks {
            feed.insert(b, i);
        }
    }
    // Each stream's own partitions to build, found once: thousands of streams would each scan
    // them all.
    let mut own_partitions: HashMap<Uuid, Vec<usize>> = HashMap::new();
    for &(i, _) in to_build {
        if !holds_many_streams(&planned[i]) {
            let of_stream = own_partitions.entry(planned[i].instance).or_default();
            of_stream.push(i);
        }
    }
    let row_group_rows = cache.layout.row_group_rows;
    let own_builders = |k: usize| -> Result<Partitions> {
        let stream = request.streams[k].stream_id;
        let partitions = own_partitions.get(&stream).map_or(&[][..], Vec::as_slice);
        (partitions.iter())
            .map(|&i| Ok((i, new_rows(planned[i].view, Some(row_group_rows))?)))
            .collect()
    };
    let store = |builders: Partitions| store_all(cache, request, planned, builders, &reasons);
    // Blocks are fetched `concurrency` at a time (for remote stores), across streams, but
    // decoded only as many at once as there are workers: more would only add threads.
    let decoding =
        tokio::sync::Semaphore::new(tokio::runtime::Handle::current().metrics().num_workers());
    let work = blocks_to_decode(lake, request, &feeds).await?;
    let mut decoded = futures::stream::iter(work)
        .map(|(k, b, decoder)| {
            let decoding = &decoding;
            async move {
                Ok::<_, anyhow::Error>((
                    k,
                    decode_block(lake, &decoder, decoding, request, b).await?,
                ))
            }
        })
        .buffered(request.concurrency.max(1));
    // A stream's own partitions are stored while the next streams are decoded.
    let mut storing = futures::stream::FuturesOrdered::new();
    let mut current: Option<(usize, Partitions)> = None;
    loop {
        tokio::select! {
            biased;
            Some(stored) = storing.next() => record(stored?, keys, stats),
            next = decoded.next() => {
                let Some(next) = next else { break };
                let (k, (b, events, size)) = next?;
                if current.as_ref().is_none_or(|(stream, _)| *stream != k) {
                    if let Some((_, own)) = current.take() {
                        // One stream's partitions stored at a time: in order, as explained.
                        if let Some(stored) = storing.next().await {
                            record(stored?, keys, stats);
                        }
                        storing.push_back(store(own));
                    }
                    current = Some((k, own_builders(k)?));
                }
                stats.blocks_read += 1;
                stats.payload_bytes += size;
                let own = &mut current.as_mut().expect("set above").1;
                let (block_id, stream_id) = (request.blocks[b].block_id, request.blocks[b].stream_id);
                for feed in feeds.values() {
                    let Some(p) = feed.get(&b) else { continue };
                    if let Some(builder) = own.get_mut(p).or_else(|| shared.get_mut(p)) {
                        builder.push_block(block_id, stream_id, &events)?;
                    }
                }
            }
        }
    }
    if let Some((_, own)) = current.take() {
        if let Some(stored) = storing.next().await {
            record(stored?, keys, stats);
        }
        storing.push_back(store(own));
    }
    while let Some(stored) = storing.next().await {
        record(stored?, keys, stats);
    }
    record(store(shared).await?, keys, stats);
    Ok(())
}

/// Partitions being built: (index in the plan, its rows).
type Partitions = BTreeMap<usize, Box<dyn PartitionRows>>;

/// The blocks partitions being built need, stream after stream (in stream order): (stream
/// index, block position, the stream's decoder).
async fn blocks_to_decode(
    lake: &Lake,
    request: &EventsRequest<'_>,
    feeds: &Feeds,
) -> Result<Vec<(usize, usize, Arc<StreamDecoder>)>> {
    let stream_blocks = blocks_by_stream(request.blocks);
    let needed: Vec<(usize, Vec<usize>)> = (request.streams.iter().enumerate())
        .map(|(k, stream)| {
            let blocks = (stream_blocks.get(&stream.stream_id)).map_or(&[][..], Vec::as_slice);
            let fed = (blocks.iter().copied())
                .filter(|b| feeds.values().any(|feed| feed.contains_key(b)))
                .collect();
            (k, fed)
        })
        .filter(|(_, blocks): &(usize, Vec<usize>)| !blocks.is_empty())
        .collect();
    let to_decode: HashSet<Uuid> = (needed.iter())
        .map(|&(k, _)| request.streams[k].stream_id)
        .collect();
    let mut decoders = Decoders {
        types: (lake.metadata)
            .stream_types(&request.process_id, &|id| to_decode.contains(&id))
            .await?,
        built: HashMap::new(),
    };
    let mut work = Vec::new();
    for (k, blocks) in needed {
        let decoder = decoders.of(&request.streams[k])?;
        work.extend(blocks.into_iter().map(|b| (k, b, decoder.clone())));
    }
    Ok(work)
}

/// Whether a partition is built across streams (the process's, or small streams'), rather
/// than stream by stream.
fn holds_many_streams(p: &Planned) -> bool {
    p.view.per == Instance::Process || !p.small_streams.is_empty()
}

/// Per view: which partition being built (index in the plan) each block (by position) feeds.
type Feeds = BTreeMap<View, HashMap<usize, usize>>;

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

/// A decoder per distinct type description: thousands of streams usually share a few.
struct Decoders {
    types: HashMap<Uuid, StreamTypes>,
    /// By the addresses of the shared descriptions.
    built: HashMap<(usize, usize), Arc<StreamDecoder>>,
}

impl Decoders {
    fn of(&mut self, stream: &StreamRow) -> Result<Arc<StreamDecoder>> {
        let id = stream.stream_id;
        let types = self.types.get(&id).ok_or_else(|| {
            failure(
                FailureKind::LakeData,
                format!("stream {id} has no type metadata in the lake"),
            )
        })?;
        let dependencies = &types.dependencies_metadata;
        let objects = &types.objects_metadata;
        let key = (dependencies.as_ptr() as usize, objects.as_ptr() as usize);
        if let Some(decoder) = self.built.get(&key) {
            return Ok(decoder.clone());
        }
        let decoder = StreamDecoder::new(dependencies, objects).map_err(|e| {
            failure(
                FailureKind::LakeData,
                format!("stream {id} has unusable type metadata: {e:#}"),
            )
        })?;
        let decoder = Arc::new(decoder);
        self.built.insert(key, decoder.clone());
        Ok(decoder)
    }
}

/// Stores built partitions one after the other (in partition order: the explanations come out
/// in a stable order); returns their file keys.
async fn store_all(
    cache: &PartitionCache,
    request: &EventsRequest<'_>,
    planned: &[Planned],
    builders: Partitions,
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
    rows: Box<dyn PartitionRows>,
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
    decoder: &Arc<StreamDecoder>,
    decoding: &tokio::sync::Semaphore,
    request: &EventsRequest<'_>,
    b: usize,
) -> Result<(usize, DecodedBlock, u64)> {
    let block = request.blocks[b].clone();
    let decoder = decoder.clone();
    let payload = lake.block_payload(&block).await?;
    let size = payload.len() as u64;
    let _permit = decoding
        .acquire()
        .await
        .expect("the semaphore is never closed");
    let events = tokio::task::spawn_blocking(move || {
        decoder.decode(&payload).map_err(|e| {
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
