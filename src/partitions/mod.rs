//! Partitions: the span events of a process, materialized as Parquet files and reused only
//! when provably current.
//!
//! Two views: thread span events per stream, async span events per process, cut by
//! insert-time bucket. A partition is reused when a live catalog row has its very insert range
//! (bounds compared for equality, so an equal range is a match, never a miss) with the same
//! fingerprint of the exact block set and the same format version; anything else is rebuilt
//! under a per-process build lock, then swapped in atomically. Spans are paired later, at
//! assembly, so a partition boundary never cuts a span.

mod build;
pub mod catalog;
mod files;
pub mod plan;

use anyhow::{Context, Result};
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use uuid::Uuid;

use crate::clock::Clock;
use crate::error::{FailureKind, failure};
use crate::lake::rows::{BlockRow, StreamRow};
use crate::lake::{BlobStore, Lake, LakeLocation, MetadataDb};
use crate::symbols::Symbols;
use catalog::{Catalog, PartitionRow};
pub use files::EventTable;
use files::PartitionBuilder;
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

/// The current partition files of an export, per view instance, in insert-time order.
pub struct Prepared {
    files: BTreeMap<(View, Uuid), Vec<String>>,
    pub stats: PartitionStats,
}

impl Prepared {
    /// Files of a view instance: a stream (thread view) or the process (async view).
    pub fn files(&self, view: View, instance: Uuid) -> ViewFiles<'_> {
        let keys = self
            .files
            .get(&(view, instance))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        ViewFiles { view, keys }
    }
}

/// The partition files of one view instance.
#[derive(Clone, Copy)]
pub struct ViewFiles<'a> {
    view: View,
    keys: &'a [String],
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
            (None, LakeLocation::Postgres { .. }, MetadataDb::Postgres(pool)) => (
                Catalog::open_postgres(pool.clone())
                    .await
                    .context("cannot create the partition catalog in the lake's database (use --cache DIR for a read-only lake)")?,
                lake.blobs.clone(),
            ),
            (None, LakeLocation::Postgres { .. }, MetadataDb::Sqlite(_)) => unreachable!("a PostgreSQL location opens a PostgreSQL pool"),
        };
        Ok(Self {
            catalog,
            store,
            bucket_us: bucket_seconds.max(1) * 1_000_000,
        })
    }

    /// Makes every partition the request needs current (reusing what is, building the rest
    /// under the process's build lock) and returns their files.
    pub async fn prepare(&self, lake: &Lake, request: &EventsRequest<'_>) -> Result<Prepared> {
        let planned = plan::plan(
            request.process_id,
            request.blocks,
            request.views,
            self.bucket_us,
        );
        let mut stats = PartitionStats::default();
        let mut keys: Vec<Option<String>> = vec![None; planned.len()];
        let live = self.catalog.live_rows(&request.process_id).await?;
        let mut stale = Vec::new();
        for (i, p) in planned.iter().enumerate() {
            match self.reusable(p, &live).await? {
                Ok(key) => {
                    (request.explain)(format!("{}: reused", describe(p)));
                    stats.reused += 1;
                    keys[i] = Some(key);
                }
                Err(reason) => stale.push((i, reason)),
            }
        }
        if !stale.is_empty() {
            let lock = self.catalog.lock(&request.process_id).await?;
            let built = self
                .build_stale(lake, request, &planned, stale, &mut stats, &mut keys)
                .await;
            lock.release().await?;
            built?;
        }
        let mut files: BTreeMap<(View, Uuid), Vec<String>> = BTreeMap::new();
        for (p, key) in planned.iter().zip(keys) {
            files
                .entry((p.view, p.instance))
                .or_default()
                .push(key.expect("every partition is reused or built"));
        }
        Ok(Prepared { files, stats })
    }

    /// The file of a live row proving the partition current; otherwise why there is none.
    async fn reusable(&self, p: &Planned, live: &[PartitionRow]) -> Result<Result<String, String>> {
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
        let Some(row) = same_instance
            .iter()
            .find(|r| r.begin_us == p.begin_us && r.end_us == p.end_us)
        else {
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
        match self
            .store
            .inner()
            .head(&object_store::path::Path::from(row.file_key.as_str()))
            .await
        {
            Ok(meta) if meta.size as i64 == row.file_size => Ok(Ok(row.file_key.clone())),
            Ok(_) => Ok(Err("partition file has the wrong size".into())),
            Err(object_store::Error::NotFound { .. }) => Ok(Err("partition file missing".into())),
            Err(e) => Err(failure(
                FailureKind::Io,
                format!("cannot read partition file {}: {e}", row.file_key),
            )),
        }
    }

    async fn build_stale(
        &self,
        lake: &Lake,
        request: &EventsRequest<'_>,
        planned: &[Planned],
        stale: Vec<(usize, String)>,
        stats: &mut PartitionStats,
        keys: &mut [Option<String>],
    ) -> Result<()> {
        // Another exporter may have built them while we waited for the lock.
        let live = self.catalog.live_rows(&request.process_id).await?;
        let mut to_build = Vec::new();
        for (i, first_reason) in stale {
            match self.reusable(&planned[i], &live).await? {
                Ok(key) => {
                    (request.explain)(format!(
                        "{}: reused (built meanwhile by another exporter)",
                        describe(&planned[i])
                    ));
                    stats.reused += 1;
                    keys[i] = Some(key);
                }
                Err(_) => to_build.push((i, first_reason)),
            }
        }
        if to_build.is_empty() {
            return Ok(());
        }
        build::build(self, lake, request, planned, &to_build, stats, keys).await
    }

    /// Writes a partition's file, then records it in the catalog (retiring what it replaces).
    async fn store_partition(
        &self,
        process_id: Uuid,
        p: &Planned,
        rows: PartitionBuilder,
    ) -> Result<String> {
        // Parquet encoding is CPU work: off the async workers.
        let data = tokio::task::spawn_blocking(move || rows.finish())
            .await
            .context("encoding task failed")??;
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
                file_key: file_key.clone(),
                file_size,
                created_us: catalog::now_us(),
                retired_us: None,
            })
            .await
            .context("cannot record the partition in the catalog")?;
        Ok(file_key)
    }

    /// Reads partition files (fetched concurrently, decoded in order) into `table`, in
    /// stream order.
    pub async fn read_events(
        &self,
        files: ViewFiles<'_>,
        symbols: &mut Symbols,
        block_position: &HashMap<Uuid, u32>,
        clock: &Clock,
        concurrency: usize,
        table: &mut EventTable,
    ) -> Result<()> {
        table.clear();
        let ViewFiles { view, keys: files } = files;
        let mut fetches = futures::stream::iter(files.iter().map(|key| async move {
            self.store.get(key).await.map_err(|e| {
                failure(
                    FailureKind::Io,
                    format!("cannot read partition file {key}: {e}"),
                )
            })
        }))
        .buffered(concurrency.max(1));
        let mut index = 0;
        while let Some(data) = fetches.next().await {
            let key = &files[index];
            index += 1;
            files::decode(data?, view, symbols, block_position, clock, table).map_err(|e| {
                failure(
                    FailureKind::LakeData,
                    format!("partition file {key} is unreadable ({e:#}); delete the partition cache to rebuild it"),
                )
            })?;
        }
        table.sort();
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
