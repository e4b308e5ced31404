//! Partitions: the span events of a process, materialized as Parquet files and reused only
//! when provably current.
//!
//! Two views: thread span events per stream, async span events per process, cut by
//! insert-time bucket. A partition is reused when a live catalog row has its very insert range
//! (bounds compared for equality, so an equal range is a match, never a miss) with the same
//! fingerprint of the exact block set and the same format version; anything else is rebuilt
//! under a per-process build lock, then swapped in atomically. Spans are paired later, at assembly, so a partition boundary
//! never cuts a span.

mod build;
pub mod catalog;
mod files;
pub mod plan;

use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::Path;
use uuid::Uuid;

use crate::error::{FailureKind, failure};
use crate::lake::rows::{BlockRow, StreamRow};
use crate::lake::{BlobStore, Lake, LakeLocation, MetadataDb};
use catalog::{Catalog, PartitionRow};
pub use files::EventRow;
use plan::{FORMAT_VERSION, Planned, View};

/// One hour of insert time per partition, as Micromegas cuts its own.
pub const DEFAULT_BUCKET_SECONDS: i64 = 3600;

/// Where partitions live and how they are cut.
pub struct PartitionCache {
    catalog: Catalog,
    store: BlobStore,
    bucket_us: i64,
}

/// What an export needs from the partitions.
#[derive(Clone, Copy)]
pub struct EventsRequest<'a> {
    pub process_id: Uuid,
    /// The process's thread streams.
    pub streams: &'a [StreamRow],
    /// Their blocks, ordered by stream, object offset, block id.
    pub blocks: &'a [BlockRow],
    pub views: &'a [View],
    /// Blocks fetched and decoded at once.
    pub concurrency: usize,
    /// Receives one line per partition decision.
    pub explain: &'a (dyn Fn(String) + Sync),
}

/// What happened to the partitions of one export.
#[derive(Debug, Default, Clone, Copy)]
pub struct PartitionStats {
    pub reused: u64,
    pub built: u64,
    pub blocks_read: u64,
    pub payload_bytes: u64,
}

/// The rows of all partitions of an export, in stream, block and event order.
pub struct ProcessEvents {
    pub rows: Vec<EventRow>,
    pub stats: PartitionStats,
}

const FILE_PREFIX: &str = "write-perfetto/partitions";

impl PartitionCache {
    /// `cache_dir` puts catalog and files in a local directory; otherwise they live with the
    /// lake (embedded: `DIR/write-perfetto/`; PostgreSQL: a table in the lake's database and
    /// files in its object store).
    pub async fn open(lake: &Lake, cache_dir: Option<&Path>, bucket_seconds: i64) -> Result<Self> {
        let (catalog, store) = match (cache_dir, &lake.location, &lake.metadata) {
            (Some(dir), _, _) => (Catalog::open_sqlite(&dir.join("catalog.db")).await?, BlobStore::local(dir)?),
            (None, LakeLocation::Embedded { dir }, _) => {
                (Catalog::open_sqlite(&dir.join("write-perfetto").join("catalog.db")).await?, BlobStore::local(dir)?)
            }
            (None, LakeLocation::Postgres { .. }, MetadataDb::Postgres(pool)) => {
                (Catalog::open_postgres(pool.clone()).await.context("cannot create the partition catalog in the lake's database (use --cache DIR for a read-only lake)")?, lake.blobs.clone())
            }
            (None, LakeLocation::Postgres { .. }, MetadataDb::Sqlite(_)) => unreachable!("a PostgreSQL location opens a PostgreSQL pool"),
        };
        Ok(Self {
            catalog,
            store,
            bucket_us: bucket_seconds.max(1) * 1_000_000,
        })
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn store(&self) -> &BlobStore {
        &self.store
    }

    /// The rows of the requested views for the request's blocks.
    pub async fn process_events(
        &self,
        lake: &Lake,
        request: &EventsRequest<'_>,
    ) -> Result<ProcessEvents> {
        let EventsRequest {
            process_id,
            streams,
            blocks,
            views,
            concurrency,
            explain,
        } = *request;
        let planned = plan::plan(process_id, blocks, views, self.bucket_us);
        let mut stats = PartitionStats::default();
        let mut results: Vec<Option<Vec<EventRow>>> = vec![None; planned.len()];
        let live = self.catalog.live_rows(&process_id).await?;
        let mut stale = Vec::new();
        for (i, p) in planned.iter().enumerate() {
            match self.try_reuse(p, &live).await? {
                Ok(rows) => {
                    explain(format!("{}: reused", describe(p)));
                    stats.reused += 1;
                    results[i] = Some(rows);
                }
                Err(reason) => stale.push((i, reason)),
            }
        }
        if !stale.is_empty() {
            let lock = self.catalog.lock(&process_id).await?;
            let built = self
                .build_stale(
                    lake,
                    process_id,
                    streams,
                    blocks,
                    &planned,
                    stale,
                    concurrency,
                    explain,
                    &mut stats,
                    &mut results,
                )
                .await;
            lock.release().await?;
            built?;
        }
        let mut rows: Vec<EventRow> = results.into_iter().flatten().flatten().collect();
        let position: HashMap<Uuid, usize> = blocks
            .iter()
            .enumerate()
            .map(|(i, b)| (b.block_id, i))
            .collect();
        rows.sort_by_key(|r| {
            (
                position.get(&r.block_id).copied().unwrap_or(usize::MAX),
                r.index,
                r.event.scope,
            )
        });
        Ok(ProcessEvents { rows, stats })
    }

    /// The partition's rows when a live row proves it current; otherwise why not.
    async fn try_reuse(
        &self,
        p: &Planned,
        live: &[PartitionRow],
    ) -> Result<Result<Vec<EventRow>, String>> {
        let instance = p.instance.to_string();
        let same_instance: Vec<&PartitionRow> = live
            .iter()
            .filter(|r| {
                r.view == p.view.name()
                    && r.instance == instance
                    && r.begin_us < p.end_us
                    && r.end_us > p.begin_us
            })
            .collect();
        // Only a row with the very same bounds: a wider row may be retired by a sibling's
        // rebuild in this very run, which would leave the partition served from it unrecorded.
        let covering = same_instance
            .iter()
            .find(|r| r.begin_us == p.begin_us && r.end_us == p.end_us);
        let Some(row) = covering else {
            return Ok(Err(if same_instance.is_empty() {
                "no partition yet".into()
            } else {
                "partition bounds changed".into()
            }));
        };
        if row.format_version != FORMAT_VERSION {
            return Ok(Err(format!(
                "format version changed ({} → {FORMAT_VERSION})",
                row.format_version
            )));
        }
        if row.fingerprint != p.fingerprint {
            let now = p.blocks.len() as i64;
            return Ok(Err(match now - row.nb_blocks {
                n if n > 0 => format!("{n} new block{}", if n == 1 { "" } else { "s" }),
                n if n < 0 => format!("{} block{} gone", -n, if n == -1 { "" } else { "s" }),
                _ => "blocks replaced or changed".into(),
            }));
        }
        match self.store.get(&row.file_key).await {
            Ok(data) => {
                let rows = tokio::task::spawn_blocking(move || files::decode(data)).await?;
                Ok(rows.map_err(|e| format!("partition file unreadable: {e:#}")))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(Err("partition file missing".into())),
            Err(e) => Err(failure(
                FailureKind::Io,
                format!("cannot read partition file {}: {e}", row.file_key),
            )),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn build_stale(
        &self,
        lake: &Lake,
        process_id: Uuid,
        streams: &[StreamRow],
        blocks: &[BlockRow],
        planned: &[Planned],
        stale: Vec<(usize, String)>,
        concurrency: usize,
        explain: &(dyn Fn(String) + Sync),
        stats: &mut PartitionStats,
        results: &mut [Option<Vec<EventRow>>],
    ) -> Result<()> {
        // Another exporter may have built them while we waited for the lock.
        let live = self.catalog.live_rows(&process_id).await?;
        let mut to_build = Vec::new();
        for (i, first_reason) in stale {
            match self.try_reuse(&planned[i], &live).await? {
                Ok(rows) => {
                    explain(format!(
                        "{}: reused (built meanwhile by another exporter)",
                        describe(&planned[i])
                    ));
                    stats.reused += 1;
                    results[i] = Some(rows);
                }
                Err(_) => to_build.push((i, first_reason)),
            }
        }
        if to_build.is_empty() {
            return Ok(());
        }
        let mut needed: Vec<usize> = to_build
            .iter()
            .flat_map(|(i, _)| planned[*i].blocks.iter().copied())
            .collect();
        needed.sort_unstable();
        needed.dedup();
        let (decoded, read) =
            build::decode_blocks(lake, streams, blocks, &needed, concurrency).await?;
        stats.blocks_read += read.0;
        stats.payload_bytes += read.1;
        for (i, reason) in to_build {
            let p = &planned[i];
            let rows: Vec<EventRow> = p
                .blocks
                .iter()
                .flat_map(|b| decoded.get(b).into_iter().flatten())
                .filter(|r| r.event.scope == build::scope_of(p.view))
                .cloned()
                .collect();
            let data = files::encode(&rows)?;
            let file_key = format!(
                "{FILE_PREFIX}/{}/{}/{}-{}-{}.parquet",
                p.view.name(),
                p.instance,
                p.begin_us,
                p.end_us,
                Uuid::new_v4()
            );
            let file_size = data.len() as i64;
            self.store.put(&file_key, data).await?;
            self.catalog
                .replace(&PartitionRow {
                    view: p.view.name().into(),
                    instance: p.instance.to_string(),
                    process_id: process_id.to_string(),
                    begin_us: p.begin_us,
                    end_us: p.end_us,
                    fingerprint: p.fingerprint.clone(),
                    format_version: FORMAT_VERSION,
                    nb_blocks: p.blocks.len() as i64,
                    nb_objects: p.nb_objects,
                    file_key,
                    file_size,
                    created_us: catalog::now_us(),
                    retired_us: None,
                })
                .await
                .context("cannot record the partition in the catalog")?;
            let verb = if reason == "no partition yet" {
                "built"
            } else {
                "rebuilt"
            };
            explain(format!(
                "{}: {verb} ({reason}; {} blocks, {} events)",
                describe(p),
                p.blocks.len(),
                rows.len()
            ));
            stats.built += 1;
            results[i] = Some(rows);
        }
        Ok(())
    }

    /// Deletes partition files retired longer than `grace` ago with their rows, and files no
    /// row names (left by an interrupted build) older than `grace`; returns how many files.
    pub async fn collect_garbage(&self, grace: std::time::Duration) -> Result<usize> {
        let cutoff = catalog::now_us() - grace.as_micros() as i64;
        let rows = self.catalog.retired_before(cutoff).await?;
        for row in &rows {
            self.store.delete(&row.file_key).await?;
            self.catalog.forget(&row.file_key).await?;
        }
        let known: std::collections::HashSet<String> = self
            .catalog
            .all_rows()
            .await?
            .into_iter()
            .map(|r| r.file_key)
            .collect();
        let mut orphans = Vec::new();
        let prefix = object_store::path::Path::from(FILE_PREFIX);
        let mut listing = self.store.inner().list(Some(&prefix));
        use futures::StreamExt;
        while let Some(meta) = listing.next().await {
            let meta = meta.with_context(|| {
                format!("cannot list {FILE_PREFIX} in {}", self.store.description())
            })?;
            let key = meta.location.to_string();
            if !known.contains(&key) && meta.last_modified.timestamp_micros() < cutoff {
                orphans.push(key);
            }
        }
        for key in &orphans {
            self.store.delete(key).await?;
        }
        Ok(rows.len() + orphans.len())
    }
}

fn describe(p: &Planned) -> String {
    let begin = chrono::DateTime::from_timestamp_micros(p.begin_us)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    format!(
        "partition {} {} [{begin}, +{}s)",
        p.view.name(),
        p.instance,
        (p.end_us - p.begin_us) / 1_000_000
    )
}
