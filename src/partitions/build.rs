//! Building partitions, one stream at a time: each needed block is fetched and decoded once
//! (in parallel, consumed in stream order as it arrives) and its events go straight into the
//! column builders of the partitions being built. A stream's own partitions are written when
//! the stream is done, while the next stream is decoded; the partitions several streams share
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
    // Which partition being built each block feeds, per view.
    let mut feeds = Feeds::new();
    let mut process_builders: BTreeMap<usize, Box<dyn PartitionRows>> = BTreeMap::new();
    for &(i, _) in to_build {
        let view = planned[i].view;
        if holds_many_streams(&planned[i]) {
            process_builders.insert(i, new_rows(view)?);
        }
        let feed = feeds.entry(view).or_default();
        for &b in &planned[i].blocks {
            feed.insert(b, i);
        }
    }
    // Blocks are fetched `concurrency` at a time (for remote stores), but decoded only as
    // many at once as there are workers: more would only add threads, each with its stack.
    let decoding =
        tokio::sync::Semaphore::new(tokio::runtime::Handle::current().metrics().num_workers());
    let store = |builders: BTreeMap<usize, Box<dyn PartitionRows>>| {
        store_all(cache, request, planned, builders, &reasons)
    };
    // Each stream's partitions to build and blocks, found once: thousands of streams would
    // each scan them all.
    let mut stream_partitions: HashMap<uuid::Uuid, Vec<usize>> = HashMap::new();
    for &(i, _) in to_build {
        if !holds_many_streams(&planned[i]) {
            stream_partitions
                .entry(planned[i].instance)
                .or_default()
                .push(i);
        }
    }
    let stream_blocks = blocks_by_stream(request.blocks);
    let needs_decoding = |blocks: &[usize]| {
        (blocks.iter().copied())
            .filter(|b| feeds.values().any(|feed| feed.contains_key(b)))
            .collect::<Vec<usize>>()
    };
    let to_decode: HashSet<Uuid> = (stream_blocks.iter())
        .filter(|(_, blocks)| !needs_decoding(blocks).is_empty())
        .map(|(&stream, _)| stream)
        .collect();
    let mut decoders = Decoders {
        types: (lake.metadata)
            .stream_types(&request.process_id, &|id| to_decode.contains(&id))
            .await?,
        built: HashMap::new(),
    };
    // A stream's partitions are stored while the next stream is decoded.
    let mut storing = None;
    for stream in request.streams {
        let partitions = stream_partitions
            .get(&stream.stream_id)
            .map_or(&[][..], Vec::as_slice);
        let mut builders = Builders {
            stream: (partitions.iter())
                .map(|&i| Ok((i, new_rows(planned[i].view)?)))
                .collect::<Result<_>>()?,
            process: process_builders,
        };
        let blocks = stream_blocks
            .get(&stream.stream_id)
            .map_or(&[][..], Vec::as_slice);
        let needed = needs_decoding(blocks);
        let decoder = match needed.is_empty() {
            true => None,
            false => Some(decoders.of(stream)?),
        };
        let decoded = decode_stream(
            lake,
            request,
            (stream, decoder),
            &needed,
            &feeds,
            &decoding,
            &mut builders,
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
        process_builders = builders.process;
        storing = Some(store(builders.stream));
    }
    if let Some(previous) = storing {
        record(previous.await?, keys, stats);
    }
    record(store(process_builders).await?, keys, stats);
    Ok(())
}

/// Whether a partition is built across streams (the process's, or small streams'), rather
/// than stream by stream.
fn holds_many_streams(p: &Planned) -> bool {
    p.view.per == Instance::Process || !p.small_streams.is_empty()
}

/// Per view: which partition being built (index in the plan) each block (by position) feeds.
type Feeds = BTreeMap<View, HashMap<usize, usize>>;

/// The partitions being built while a stream is decoded: its own, and the process's.
struct Builders {
    stream: BTreeMap<usize, Box<dyn PartitionRows>>,
    process: BTreeMap<usize, Box<dyn PartitionRows>>,
}

impl Builders {
    fn get_mut(&mut self, planned: usize) -> Option<&mut Box<dyn PartitionRows>> {
        match self.stream.get_mut(&planned) {
            Some(builder) => Some(builder),
            None => self.process.get_mut(&planned),
        }
    }
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

/// Decodes the `needed` blocks of one stream (their positions, in stream order) into the
/// builders of the partitions being built; returns how many blocks and payload bytes were read.
async fn decode_stream(
    lake: &Lake,
    request: &EventsRequest<'_>,
    (stream, decoder): (&StreamRow, Option<Arc<StreamDecoder>>),
    needed: &[usize],
    feeds: &Feeds,
    decoding: &tokio::sync::Semaphore,
    builders: &mut Builders,
) -> Result<(u64, u64)> {
    let Some(decoder) = decoder else {
        return Ok((0, 0));
    };
    let mut decoded = futures::stream::iter(needed.iter().copied())
        .map(|b| decode_block(lake, stream, &decoder, decoding, request, b))
        .buffered(request.concurrency.max(1));
    let (mut blocks, mut bytes) = (0, 0);
    while let Some(block) = decoded.next().await {
        let (b, events, size) = block?;
        blocks += 1;
        bytes += size;
        let block_id = request.blocks[b].block_id;
        for feed in feeds.values() {
            if let Some(builder) = feed.get(&b).and_then(|&p| builders.get_mut(p)) {
                builder.push_block(block_id, &events)?;
            }
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
    builders: BTreeMap<usize, Box<dyn PartitionRows>>,
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
    stream: &StreamRow,
    decoder: &Arc<StreamDecoder>,
    decoding: &tokio::sync::Semaphore,
    request: &EventsRequest<'_>,
    b: usize,
) -> Result<(usize, DecodedBlock, u64)> {
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
