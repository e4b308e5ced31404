//! A private copy of the fixture lake, embedded (SQLite) or in a throwaway PostgreSQL cluster,
//! exported through the built binary, with direct access to its metadata (to make blocks arrive,
//! move or break) and to the partition catalog it keeps (to check what the exporter left).
//!
//! Either way the object store is the copy's directory: block payloads under `blobs/`, partition
//! files under `write-perfetto/partitions/`. The catalog is `DIR/write-perfetto/catalog.db` for
//! the embedded lake and a table of the lake's database for PostgreSQL.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use write_perfetto::lake::MetadataReads;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{PgPool, SqlitePool};
use write_perfetto::lake::rows::{BlockRow, LOG_STREAMS, METRIC_STREAMS, block_object_key};
use write_perfetto::lake::{Lake, LakeLocation};
use write_perfetto::partitions::catalog::{Catalog, PartitionRow};

use super::lake::{copy_to_postgres, fixture_copy, run, runtime, sha256_hex, write_perfetto};
use super::pg::PgCluster;

/// When the main process's first thread block was inserted (see `PartitionLake::new`).
pub const THREAD_BLOCKS_INSERTED: &str = "2026-11-27T12:49:09.100000Z";
/// The insert time of every log and metrics block of the main process.
pub const LOG_AND_METRIC_INSERT_TIME: &str = "2026-11-27T11:30:00.500000Z";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

struct PgLake {
    cluster: PgCluster,
    db: String,
    url: String,
    blobs_url: String,
}

/// A fixture copy on one backend, and a working directory for the traces it exports.
pub struct PartitionLake {
    pub backend: Backend,
    /// The lake copy: `lake.db`, `blobs/`, and (by default) the partition cache.
    pub dir: tempfile::TempDir,
    /// Current directory of the runs; traces are written here.
    pub work: tempfile::TempDir,
    pg: Option<PgLake>,
    /// The fixture's main process (the one with the most blocks).
    pub process_id: String,
    outputs: AtomicUsize,
    /// Arguments every export gets: the partition layout.
    layout_args: Vec<String>,
    /// Environment of its exports.
    pub env: Vec<(&'static str, String)>,
}

/// One successful export.
#[derive(Debug)]
pub struct Export {
    pub summary: serde_json::Value,
    pub stderr: String,
    pub trace: Vec<u8>,
}

impl Export {
    pub fn built(&self) -> u64 {
        self.summary["partitions_built"]
            .as_u64()
            .expect("partitions_built")
    }
    pub fn reused(&self) -> u64 {
        self.summary["partitions_reused"]
            .as_u64()
            .expect("partitions_reused")
    }
    pub fn blocks_read(&self) -> u64 {
        self.summary["blocks_read"].as_u64().expect("blocks_read")
    }
    pub fn sha256(&self) -> String {
        self.summary["sha256"].as_str().expect("sha256").to_string()
    }
    /// The `--explain` lines: (view, instance, decision), in the order printed.
    pub fn decisions(&self) -> Vec<Decision> {
        decisions(&self.stderr)
    }
}

/// One `--explain` line: `partition VIEW INSTANCE [(N small streams)] [BEGIN, +Ns): DECISION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub view: String,
    pub instance: String,
    pub begin: String,
    pub verdict: String,
}

pub fn decisions(stderr: &str) -> Vec<Decision> {
    stderr
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("partition ")?;
            let (head, verdict) = rest.split_once("): ")?;
            let mut words = head.split_whitespace();
            let view = words.next()?.to_string();
            let instance = words.next()?.to_string();
            // "(N small streams)" may come before the bucket.
            let begin = words.find(|w| w.starts_with('['))?;
            let begin = begin.trim_start_matches('[').trim_end_matches(',');
            Some(Decision {
                view,
                instance,
                begin: begin.to_string(),
                verdict: verdict.to_string(),
            })
        })
        .collect()
}

impl PartitionLake {
    /// With every thread stream in partitions of its own (`--small-stream-objects 0`): for
    /// scenarios about one stream's partitions. The fixture's streams are all small.
    pub fn per_stream(backend: Backend) -> Self {
        let mut lake = Self::new(backend);
        lake.layout_args = vec!["--small-stream-objects".into(), "0".into()];
        lake
    }

    /// With the default layout: the fixture's small thread streams share one partition.
    pub fn new(backend: Backend) -> Self {
        let dir = fixture_copy();
        let work = tempfile::tempdir().expect("temp dir");
        let process_id = main_process(dir.path(), work.path());
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let cluster = PgCluster::start();
                let db = "lake".to_string();
                let url = cluster.create_database(&db);
                runtime().block_on(copy_to_postgres(dir.path(), &url));
                let blobs_url = format!("file://{}", dir.path().display());
                Some(PgLake {
                    cluster,
                    db,
                    url,
                    blobs_url,
                })
            }
        };
        let lake = Self {
            backend,
            dir,
            work,
            pg,
            process_id,
            outputs: AtomicUsize::new(0),
            layout_args: Vec::new(),
            env: Vec::new(),
        };
        lake.pin_insert_times();
        lake
    }

    /// Fixed insert times, whenever the fixture was generated: the thread blocks keep their
    /// order and gaps (all within one second) from [`THREAD_BLOCKS_INSERTED`]; log and metrics
    /// blocks all get [`LOG_AND_METRIC_INSERT_TIME`], an hour before, so that in every bucket
    /// size they make one partition each (logs, measures) apart from the thread blocks, whatever
    /// a scenario does with those.
    fn pin_insert_times(&self) {
        let blocks = self.blocks();
        let first = blocks.iter().map(|b| b.insert_time).min().unwrap();
        let base = chrono::DateTime::parse_from_rfc3339(THREAD_BLOCKS_INSERTED)
            .unwrap()
            .to_utc();
        let mut sql = String::new();
        for b in &blocks {
            let offset = b.insert_time - first;
            assert!(
                offset < chrono::Duration::milliseconds(800),
                "fixture shape changed"
            );
            let t = write_perfetto_test_lake::writer::time_text(&(base + offset));
            sql += &format!(
                "UPDATE blocks SET insert_time = '{t}' WHERE block_id = '{}';\n",
                b.block_id
            );
        }
        for b in self.log_and_metric_blocks() {
            sql += &format!(
                "UPDATE blocks SET insert_time = '{LOG_AND_METRIC_INSERT_TIME}' WHERE block_id = '{}';\n",
                b.block_id
            );
        }
        self.lake_sql(&sql);
    }

    /// The main process's log and metrics blocks.
    pub fn log_and_metric_blocks(&self) -> Vec<BlockRow> {
        let id = uuid::Uuid::parse_str(&self.process_id).unwrap();
        let location = self.location();
        runtime().block_on(async {
            let lake = Lake::open(location).await.unwrap();
            let mut blocks = lake.metadata.blocks(&id, LOG_STREAMS).await.unwrap();
            blocks.extend(lake.metadata.blocks(&id, METRIC_STREAMS).await.unwrap());
            blocks
        })
    }

    fn location(&self) -> LakeLocation {
        match &self.pg {
            None => LakeLocation::Embedded {
                dir: self.dir.path().to_path_buf(),
            },
            Some(pg) => LakeLocation::Postgres {
                url: pg.url.clone(),
                blobs_url: pg.blobs_url.clone(),
            },
        }
    }

    /// `--lake ...` (and `--blobs ...` for PostgreSQL).
    pub fn lake_args(&self) -> Vec<String> {
        match &self.pg {
            None => vec!["--lake".into(), self.dir.path().display().to_string()],
            Some(pg) => vec![
                "--lake".into(),
                pg.url.clone(),
                "--blobs".into(),
                pg.blobs_url.clone(),
            ],
        }
    }

    /// A fresh trace path in the working directory.
    pub fn output_path(&self) -> PathBuf {
        let n = self.outputs.fetch_add(1, Ordering::Relaxed);
        self.work.path().join(format!("trace-{n}.perfetto-trace"))
    }

    /// The arguments of an export of the main process to `output`, with `--json --explain`.
    pub fn export_args(&self, output: &Path, extra: &[&str]) -> Vec<String> {
        let mut args = vec![self.process_id.clone()];
        args.extend(self.lake_args());
        args.extend([
            "--json".to_string(),
            "--explain".to_string(),
            "-o".to_string(),
            output.display().to_string(),
        ]);
        args.extend(self.layout_args.iter().cloned());
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// Runs the binary with the lake arguments appended.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(self.lake_args());
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        run(&refs, self.work.path())
    }

    /// Exports the main process; the run may fail.
    pub fn try_export(&self, extra: &[&str]) -> (Output, PathBuf) {
        let output = self.output_path();
        let args = self.export_args(&output, extra);
        let command = write_perfetto()
            .args(&args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.work.path())
            .output();
        (command.expect("run write-perfetto"), output)
    }

    /// Exports the main process and checks the run succeeded and the summary matches the file.
    pub fn export(&self, extra: &[&str]) -> Export {
        let (output, path) = self.try_export(extra);
        assert!(
            output.status.success(),
            "export failed ({}): {}",
            output.status,
            super::lake::stderr(&output)
        );
        finish_export(&output, &path)
    }

    /// A cold export into a cache directory of its own: the reference bytes of the lake as it
    /// is now, whatever the lake's own cache holds.
    pub fn cold_export(&self) -> Export {
        let cache = tempfile::tempdir().expect("temp dir");
        let cache_arg = cache.path().display().to_string();
        let export = self.export(&["--cache", &cache_arg]);
        assert_eq!(export.reused(), 0, "a fresh cache reuses nothing");
        export
    }

    /// Spawns `n` exports of the main process at once, each to its own file; waits for all.
    pub fn concurrent_exports(&self, n: usize, extra: &[&str]) -> Vec<(Output, PathBuf)> {
        let children: Vec<_> = (0..n)
            .map(|_| {
                let path = self.output_path();
                let child = write_perfetto()
                    .args(self.export_args(&path, extra))
                    .current_dir(self.work.path())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("spawn write-perfetto");
                (child, path)
            })
            .collect();
        children
            .into_iter()
            .map(|(child, path)| (child.wait_with_output().expect("wait"), path))
            .collect()
    }

    /// The main process's thread blocks, as the exporter reads them (by stream, offset, id).
    pub fn blocks(&self) -> Vec<BlockRow> {
        let location = self.location();
        let id = uuid::Uuid::parse_str(&self.process_id).unwrap();
        runtime().block_on(async {
            let lake = Lake::open(location).await.unwrap();
            lake.metadata.thread_blocks(&id).await.unwrap()
        })
    }

    /// Runs SQL on the lake's metadata database (both backends accept the same plain SQL for
    /// the `blocks` table: ids and times written as text literals).
    pub fn lake_sql(&self, sql: &str) {
        self.run_sql(&self.dir.path().join("lake.db"), sql);
    }

    /// Runs `sql` on the SQLite database at `sqlite_path`, or on the lake's PostgreSQL database.
    fn run_sql(&self, sqlite_path: &Path, sql: &str) {
        runtime().block_on(async {
            match &self.pg {
                None => {
                    let options = SqliteConnectOptions::from_str("sqlite://")
                        .unwrap()
                        .filename(sqlite_path);
                    let pool = SqlitePool::connect_with(options).await.unwrap();
                    sqlx::raw_sql(sql).execute(&pool).await.unwrap();
                    pool.close().await;
                }
                Some(pg) => {
                    let pool = PgPool::connect(&pg.url).await.unwrap();
                    sqlx::raw_sql(sql).execute(&pool).await.unwrap();
                    pool.close().await;
                }
            }
        })
    }

    /// Sets a block's insert time (RFC 3339, UTC, microseconds).
    pub fn set_insert_time(&self, block_id: &uuid::Uuid, time: &str) {
        self.lake_sql(&format!(
            "UPDATE blocks SET insert_time = '{time}' WHERE block_id = '{block_id}'"
        ));
    }

    /// Spreads the blocks' insert times over 12:00–12:20 of the fixture's day, one every 41 s in
    /// the order they were recorded (begin ticks), so that minute and second buckets cut each
    /// stream into several partitions and mix streams in the async ones; an hour bucket still
    /// holds them all. Nothing of the trace depends on insert times.
    pub fn spread_insert_times(&self) {
        let mut blocks = self.blocks();
        blocks.sort_by_key(|b| (b.begin_ticks, b.block_id));
        let base = chrono::DateTime::parse_from_rfc3339("2026-11-27T12:00:00Z")
            .unwrap()
            .to_utc();
        let sql: String = blocks
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let t = base
                    + chrono::Duration::seconds(41 * i as i64)
                    + chrono::Duration::microseconds((i as i64 * 7919) % 1_000_000);
                format!(
                    "UPDATE blocks SET insert_time = '{}' WHERE block_id = '{}';\n",
                    write_perfetto_test_lake::writer::time_text(&t),
                    b.block_id
                )
            })
            .collect();
        self.lake_sql(&sql);
    }

    /// Takes a block row out of the lake, kept aside in a table of its own.
    pub fn set_block_aside(&self, block_id: &uuid::Uuid) {
        self.lake_sql(&format!(
            "CREATE TABLE kept_block AS SELECT * FROM blocks WHERE block_id = '{block_id}';\n\
             DELETE FROM blocks WHERE block_id = '{block_id}';"
        ));
    }

    /// Puts the block row taken out by [`set_block_aside`] back: it arrives late.
    pub fn bring_block_back(&self) {
        self.lake_sql("INSERT INTO blocks SELECT * FROM kept_block;\nDROP TABLE kept_block;");
    }

    /// Where a block's payload lives.
    pub fn payload_path(&self, block: &BlockRow) -> PathBuf {
        self.dir.path().join(block_object_key(
            &block.process_id,
            &block.stream_id,
            &block.block_id,
        ))
    }

    /// The object store root (partition files live under `write-perfetto/partitions/`).
    pub fn store_root(&self) -> &Path {
        self.dir.path()
    }

    /// Opens the lake's own partition catalog (it must exist already for SQLite).
    async fn open_catalog(&self) -> Catalog {
        match &self.pg {
            None => {
                let path = self.dir.path().join("write-perfetto").join("catalog.db");
                assert!(path.is_file(), "no catalog at {}", path.display());
                Catalog::open_sqlite(&path, &|_| {}).await.unwrap()
            }
            Some(pg) => Catalog::open_postgres(PgPool::connect(&pg.url).await.unwrap())
                .await
                .unwrap(),
        }
    }

    /// Every row of the lake's own catalog.
    pub fn catalog_rows(&self) -> Vec<PartitionRow> {
        runtime().block_on(async { self.open_catalog().await.all_rows().await.unwrap() })
    }

    /// The live rows of the lake's own catalog.
    pub fn live_rows(&self) -> Vec<PartitionRow> {
        self.catalog_rows()
            .into_iter()
            .filter(|r| r.retired_us.is_none())
            .collect()
    }

    /// Runs SQL on the lake's own catalog (its SQLite file, or the lake's PostgreSQL database).
    pub fn catalog_sql(&self, sql: &str) {
        let path = self.dir.path().join("write-perfetto").join("catalog.db");
        assert!(
            self.pg.is_some() || path.is_file(),
            "no catalog at {}",
            path.display()
        );
        self.run_sql(&path, sql);
    }

    /// The lake's URL for a new role that may only read Micromegas's three tables (as people
    /// who analyse a production lake usually are).
    pub fn select_only_url(&self) -> String {
        let pg = self.pg.as_ref().expect("a PostgreSQL lake");
        pg.cluster.psql(
            &pg.db,
            "CREATE ROLE lake_reader LOGIN; GRANT SELECT ON processes, streams, blocks TO lake_reader;",
        );
        let mut url = url::Url::parse(&pg.url).unwrap();
        url.set_username("lake_reader").unwrap();
        url.to_string()
    }

    /// The `--blobs` URL of a PostgreSQL lake.
    pub fn blobs_url(&self) -> String {
        self.pg
            .as_ref()
            .expect("a PostgreSQL lake")
            .blobs_url
            .clone()
    }

    /// Whether the PostgreSQL lake database holds a partition catalog table.
    pub fn postgres_has_catalog_table(&self) -> bool {
        let pg = self.pg.as_ref().expect("a PostgreSQL lake");
        pg.cluster
            .psql(
                &pg.db,
                "SELECT count(*) FROM pg_tables WHERE tablename = 'write_perfetto_partitions'",
            )
            .trim()
            != "0"
    }
}

/// Parses the `--json` summary and checks it against the written trace.
pub fn finish_export(output: &Output, path: &Path) -> Export {
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "bad summary ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    let trace = std::fs::read(path).expect("trace written");
    assert_eq!(summary["sha256"].as_str().unwrap(), sha256_hex(&trace));
    Export {
        summary,
        stderr: super::lake::stderr(output),
        trace,
    }
}

/// The process with the most blocks, as `processes --json` lists it.
pub fn main_process(lake_dir: &Path, cwd: &Path) -> String {
    let output = run(
        &["processes", "--json", "--lake", lake_dir.to_str().unwrap()],
        cwd,
    );
    assert!(output.status.success(), "{}", super::lake::stderr(&output));
    let list: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    list.iter()
        .max_by_key(|p| p["blocks"].as_i64().unwrap())
        .map(|p| p["process_id"].as_str().unwrap().to_string())
        .expect("the fixture has processes")
}

/// Every file under `dir`, relative, with the hash of its content.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                walk(root, &path, out);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.insert(
                    path.strip_prefix(root).unwrap().to_path_buf(),
                    sha256_hex(&bytes),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The partition files present in a store, as catalog file keys.
pub fn partition_files(store_root: &Path) -> Vec<String> {
    let root = store_root.join("write-perfetto").join("partitions");
    if !root.is_dir() {
        return Vec::new();
    }
    let mut keys: Vec<String> = snapshot(&root)
        .into_keys()
        .map(|p| format!("write-perfetto/partitions/{}", p.display()))
        .collect();
    keys.sort();
    keys
}

/// The catalog's invariants: for each (view, instance), live rows' `[begin_us, end_us)` ranges
/// are disjoint, and every live row's file exists in the store.
pub fn assert_live_rows_consistent(rows: &[PartitionRow], store_root: &Path) {
    let mut live: Vec<&PartitionRow> = rows.iter().filter(|r| r.retired_us.is_none()).collect();
    live.sort_by(|a, b| {
        (&a.view, &a.instance, a.begin_us).cmp(&(&b.view, &b.instance, b.begin_us))
    });
    for pair in live.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if a.view == b.view && a.instance == b.instance {
            assert!(a.end_us <= b.begin_us, "live rows overlap: {a:?} and {b:?}");
        }
    }
    for r in &live {
        assert!(r.begin_us < r.end_us, "empty range: {r:?}");
        assert!(
            store_root.join(&r.file_key).is_file(),
            "live row without its file: {r:?}"
        );
    }
}
