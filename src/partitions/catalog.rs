//! The catalog of partition files: a table of our own, in the lake's PostgreSQL database or in
//! a SQLite file of the cache directory, versioned and created by the tool.
//!
//! A row is live while `retired_us` is NULL. Replacing a partition retires the live rows of the
//! same view instance whose insert range overlaps the new one and inserts the new row, in one
//! transaction: readers see the old partition or the new one, never both, never neither.

use anyhow::{Context, Result, bail};
use sqlx::{PgPool, SqlitePool, sqlite::SqliteConnectOptions};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

/// Version of the catalog's own schema (not of the partition files). 2 added `checksum`, 3
/// added `digest`, 4 added `ranges`.
const CATALOG_SCHEMA_VERSION: i64 = 4;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS write_perfetto_catalog_version (version BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS write_perfetto_partitions (
    view TEXT NOT NULL,
    instance TEXT NOT NULL,
    process_id TEXT NOT NULL,
    begin_us BIGINT NOT NULL,
    end_us BIGINT NOT NULL,
    fingerprint TEXT NOT NULL,
    format_version BIGINT NOT NULL,
    nb_blocks BIGINT NOT NULL,
    nb_objects BIGINT NOT NULL,
    file_key TEXT NOT NULL,
    file_size BIGINT NOT NULL,
    created_us BIGINT NOT NULL,
    retired_us BIGINT,
    checksum TEXT,
    digest TEXT,
    ranges TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS write_perfetto_partitions_live
    ON write_perfetto_partitions (view, instance, begin_us) WHERE retired_us IS NULL;
CREATE INDEX IF NOT EXISTS write_perfetto_partitions_process ON write_perfetto_partitions (process_id);
";

/// A catalog row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PartitionRow {
    pub view: String,
    pub instance: String,
    pub process_id: String,
    pub begin_us: i64,
    pub end_us: i64,
    pub fingerprint: String,
    pub format_version: i64,
    pub nb_blocks: i64,
    pub nb_objects: i64,
    pub file_key: String,
    pub file_size: i64,
    pub created_us: i64,
    pub retired_us: Option<i64>,
    /// xxh3-64 of the file, in hex; `None` in rows written before schema version 2.
    pub checksum: Option<String>,
    /// A span partition's digest as JSON ([`super::digest`]): for a thread partition, what the
    /// events of each of its streams do to the call stack beyond themselves (streams whose
    /// events tangle are left out); for an async one, the events of the span ids it does not
    /// pair and the list of those it does. `None` for other views, and for span partitions
    /// recorded before schema version 3, which are rebuilt when next needed.
    pub digest: Option<String>,
    /// A span partition's footer and row groups by byte range and checksum, as JSON
    /// ([`super::ranges`]): a read of some row groups fetches only those. `None` for other
    /// views, and for partitions recorded before schema version 4 (read whole).
    pub ranges: Option<String>,
}

#[derive(Clone)]
pub enum Catalog {
    Postgres(PgPool),
    Sqlite {
        pool: SqlitePool,
        lock_path: PathBuf,
    },
}

/// Held while partitions of a process are being built: other exporters wait, then reuse.
pub enum BuildLock {
    Postgres(sqlx::pool::PoolConnection<sqlx::Postgres>, i64),
    File(std::fs::File),
}

const COLUMNS: &str = "view, instance, process_id, begin_us, end_us, fingerprint, format_version, nb_blocks, \
    nb_objects, file_key, file_size, created_us, retired_us, checksum, digest, ranges";

/// The live rows of the process `id` (a parameter, or a literal), in no order: see
/// [`in_total_order`].
fn live_rows_sql(id: &str) -> String {
    format!(
        "SELECT {COLUMNS} FROM write_perfetto_partitions WHERE process_id = {id} AND retired_us IS NULL"
    )
}

/// Puts live rows in a total order (by view, instance, bucket, file), the same on every backend.
/// Sorted by the database, the rows and their digests (megabytes for a long process) went
/// through a sorter, which SQLite spilled to a temporary file.
fn in_total_order(mut rows: Vec<PartitionRow>) -> Vec<PartitionRow> {
    fn key(r: &PartitionRow) -> (&str, &str, i64, &str) {
        (&r.view, &r.instance, r.begin_us, &r.file_key)
    }
    rows.sort_by(|a, b| key(a).cmp(&key(b)));
    rows
}

/// The schema version and the live rows of a process, in one round trip: the rows when the
/// catalog is current, `None` otherwise (or on any error: opening the catalog the usual way
/// then says what is wrong). A remote database makes every round trip count.
///
/// Two statements go as one simple query, which takes no bound parameters: the one value in
/// them is the process id, written from a parsed [`Uuid`] (hex digits and hyphens).
async fn current_live_rows(pool: &PgPool, process_id: &Uuid) -> Option<Vec<PartitionRow>> {
    use sqlx::{FromRow, Row};
    let statements = format!(
        "SELECT max(version) FROM write_perfetto_catalog_version;\n{}",
        live_rows_sql(&crate::lake::uuid_literal(process_id))
    );
    let answers = crate::lake::statements_at_once(pool, &statements)
        .await
        .ok()?;
    let version: Option<i64> = answers.first()?.first()?.try_get(0).ok()?;
    if version != Some(CATALOG_SCHEMA_VERSION) {
        return None;
    }
    let rows = answers.get(1)?.iter().map(PartitionRow::from_row);
    rows.collect::<Result<_, _>>().ok().map(in_total_order)
}

/// Binds a row's values as `$1`…`$15`, in [`COLUMNS`] order without `retired_us`.
fn bind_row<'q, DB: sqlx::Database>(
    query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    row: &'q PartitionRow,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    query
        .bind(row.view.clone())
        .bind(row.instance.clone())
        .bind(row.process_id.clone())
        .bind(row.begin_us)
        .bind(row.end_us)
        .bind(row.fingerprint.clone())
        .bind(row.format_version)
        .bind(row.nb_blocks)
        .bind(row.nb_objects)
        .bind(row.file_key.clone())
        .bind(row.file_size)
        .bind(row.created_us)
        .bind(row.checksum.clone())
        .bind(row.digest.clone())
        .bind(row.ranges.clone())
}

pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Runs `$body` (with `$conn`, a connection) in one transaction on either backend; SQLite's
/// is `IMMEDIATE`, so that concurrent writers queue for the lock instead of failing to
/// upgrade it. An error rolls back.
macro_rules! in_transaction {
    ($catalog:expr, $conn:ident => $body:block) => {
        match $catalog {
            Catalog::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let value = {
                    let $conn = &mut *tx;
                    $body
                };
                tx.commit().await?;
                value
            }
            Catalog::Sqlite { pool, .. } => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let result: Result<_> = async {
                    let $conn = &mut *tx;
                    Ok($body)
                }
                .await;
                match result {
                    Ok(_) => tx.commit().await?,
                    Err(_) => tx.rollback().await?,
                }
                result?
            }
        }
    };
}

impl Catalog {
    /// Opens (or creates) a SQLite catalog. One that is not a database any more (overwritten,
    /// corrupted) is derived data: it is moved aside, with a warning, and a new one started.
    pub async fn open_sqlite(path: &Path, warn: &dyn Fn(&str)) -> Result<Self> {
        match Self::open_sqlite_file(path).await {
            Err(e) if is_damaged_database(&e) => {
                // Under the lock, so that two exporters never move each other's new catalog.
                let lock = Self::lock_file(path.with_extension("lock")).await?;
                let reopened = match Self::open_sqlite_file(path).await {
                    Err(e) if is_damaged_database(&e) => {
                        let aside = set_aside(path)?;
                        warn(&format!(
                            "the partition catalog {} is damaged ({}); moved it to {} and started a new one",
                            path.display(),
                            crate::error::one_line(&e),
                            aside.display()
                        ));
                        Self::open_sqlite_file(path).await
                    }
                    other => other,
                };
                drop(lock);
                reopened
            }
            other => other,
        }
    }

    async fn open_sqlite_file(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create cache directory {}", dir.display()))?;
        }
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(60));
        // Exporters opening the catalog at once (each connection turns it to WAL): SQLite
        // could answer one "database is locked" at once, without waiting, so busy_timeout did
        // not help (`tests/live.rs`: 2 runs in 8 failed so, none in 16 since). Opening is
        // serialized by a lock of its own: the build lock is held for long.
        let opening = Self::lock_file(path.with_extension("open.lock")).await?;
        let pool = SqlitePool::connect_with(options)
            .await
            .with_context(|| format!("cannot open partition catalog {}", path.display()))?;
        let catalog = Catalog::Sqlite {
            pool,
            lock_path: path.with_extension("lock"),
        };
        catalog.migrate().await?;
        drop(opening);
        Ok(catalog)
    }

    pub async fn open_postgres(pool: PgPool) -> Result<Self> {
        Ok(Self::open_postgres_for(pool, None).await?.0)
    }

    /// With `process_id`, also the live rows of that process when the catalog is current,
    /// read in the same round trip as the schema version.
    pub async fn open_postgres_for(
        pool: PgPool,
        process_id: Option<Uuid>,
    ) -> Result<(Self, Option<Vec<PartitionRow>>)> {
        let catalog = Catalog::Postgres(pool.clone());
        if let Some(id) = process_id
            && let Some(rows) = current_live_rows(&pool, &id).await
        {
            return Ok((catalog, Some(rows)));
        }
        catalog.migrate().await?;
        Ok((catalog, None))
    }

    /// The schema version, read without a lock or a transaction; `None` when the tables are
    /// not there yet (or cannot be read: [`Self::migrate`] then says why).
    async fn version_at_a_glance(&self) -> Option<i64> {
        const SQL: &str = "SELECT max(version) FROM write_perfetto_catalog_version";
        let version: Result<Option<i64>, sqlx::Error> = match self {
            Catalog::Postgres(pool) => sqlx::query_scalar(SQL).fetch_one(pool).await,
            Catalog::Sqlite { pool, .. } => sqlx::query_scalar(SQL).fetch_one(pool).await,
        };
        version.ok().flatten()
    }

    /// Creates the tables on first use; refuses a catalog from a newer version of the tool.
    /// A catalog already current is only read: on a remote database, the lock, the schema and
    /// the transaction were seven round trips per export.
    async fn migrate(&self) -> Result<()> {
        if self.version_at_a_glance().await == Some(CATALOG_SCHEMA_VERSION) {
            return Ok(());
        }
        let on_postgres = matches!(self, Catalog::Postgres(_));
        let version: Option<i64> = in_transaction!(self, conn => {
            if on_postgres {
                // Serializes concurrent first runs: CREATE IF NOT EXISTS alone can race.
                sqlx::query("SELECT pg_advisory_xact_lock(7307480417322)").execute(&mut *conn).await?;
            }
            sqlx::raw_sql(SCHEMA).execute(&mut *conn).await?;
            let v: Option<i64> =
                sqlx::query_scalar("SELECT max(version) FROM write_perfetto_catalog_version").fetch_one(&mut *conn).await?;
            if v.is_none() {
                sqlx::query("INSERT INTO write_perfetto_catalog_version (version) VALUES ($1)")
                    .bind(CATALOG_SCHEMA_VERSION)
                    .execute(&mut *conn)
                    .await?;
            }
            if let Some(old) = v.filter(|&v| v < CATALOG_SCHEMA_VERSION) {
                // Rows of version 1 have no checksum: they are rebuilt when next needed. Rows
                // of versions 1 and 2 have no digest: their partitions are always read. Rows
                // of versions 1 to 3 have no ranges: their files are read whole.
                let added = [(1, "checksum"), (2, "digest"), (3, "ranges")];
                for (_, column) in added.iter().filter(|(since, _)| old <= *since) {
                    let sql = format!("ALTER TABLE write_perfetto_partitions ADD COLUMN {column} TEXT");
                    sqlx::query(&sql).execute(&mut *conn).await?;
                }
                sqlx::query("UPDATE write_perfetto_catalog_version SET version = $1")
                    .bind(CATALOG_SCHEMA_VERSION)
                    .execute(&mut *conn)
                    .await?;
            }
            v
        });
        if let Some(v) = version
            && v > CATALOG_SCHEMA_VERSION
        {
            bail!(
                "the partition catalog has schema version {v}, newer than this write-perfetto ({CATALOG_SCHEMA_VERSION}): upgrade write-perfetto or use another --cache"
            );
        }
        Ok(())
    }

    /// Live rows of a process, in a total order.
    pub async fn live_rows(&self, process_id: &Uuid) -> Result<Vec<PartitionRow>> {
        let sql = live_rows_sql("$1");
        let rows = match self {
            Catalog::Postgres(pool) => {
                sqlx::query_as(&sql)
                    .bind(process_id.to_string())
                    .fetch_all(pool)
                    .await?
            }
            Catalog::Sqlite { pool, .. } => {
                sqlx::query_as(&sql)
                    .bind(process_id.to_string())
                    .fetch_all(pool)
                    .await?
            }
        };
        Ok(in_total_order(rows))
    }

    /// Every row (tests check the catalog's consistency with it).
    pub async fn all_rows(&self) -> Result<Vec<PartitionRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM write_perfetto_partitions ORDER BY view, instance, begin_us, created_us, file_key"
        );
        let rows = match self {
            Catalog::Postgres(pool) => sqlx::query_as(&sql).fetch_all(pool).await?,
            Catalog::Sqlite { pool, .. } => sqlx::query_as(&sql).fetch_all(pool).await?,
        };
        Ok(rows)
    }

    /// Retires the live rows the new one supersedes and inserts it, atomically: on PostgreSQL
    /// in one statement (a transaction of four was four round trips per partition built, most
    /// of a cold build on a remote lake), on SQLite in one transaction.
    pub async fn replace(&self, row: &PartitionRow) -> Result<()> {
        let insert = |from: &str| {
            format!(
                "INSERT INTO write_perfetto_partitions ({COLUMNS}) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL, $13, $14, $15{from}"
            )
        };
        match self {
            Catalog::Postgres(pool) => {
                // The insert reads the count of the rows retired, so it runs once they are: the
                // row it replaces is no longer live when its own is checked as unique.
                let sql = format!(
                    "WITH retired AS (UPDATE write_perfetto_partitions SET retired_us = $12 \
                     WHERE view = $1 AND instance = $2 AND retired_us IS NULL AND begin_us < $5 \
                     AND end_us > $4 RETURNING 1) {}",
                    insert(" FROM (SELECT count(*) FROM retired) AS done")
                );
                bind_row(sqlx::query(&sql), row).execute(pool).await?;
            }
            Catalog::Sqlite { .. } => {
                let retire = "UPDATE write_perfetto_partitions SET retired_us = $1 WHERE view = $2 \
                              AND instance = $3 AND retired_us IS NULL AND begin_us < $5 AND end_us > $4";
                let insert = insert("");
                in_transaction!(self, conn => {
                    sqlx::query(retire)
                        .bind(row.created_us)
                        .bind(&row.view)
                        .bind(&row.instance)
                        .bind(row.begin_us)
                        .bind(row.end_us)
                        .execute(&mut *conn)
                        .await?;
                    bind_row(sqlx::query(&insert), row).execute(&mut *conn).await?;
                });
            }
        }
        Ok(())
    }

    /// Retires the live row naming `file_key` (a damaged file): the next check rebuilds it.
    pub async fn retire(&self, file_key: &str) -> Result<()> {
        let sql = "UPDATE write_perfetto_partitions SET retired_us = $1 WHERE file_key = $2 AND retired_us IS NULL";
        in_transaction!(self, conn => {
            sqlx::query(sql).bind(now_us()).bind(file_key).execute(&mut *conn).await?;
        });
        Ok(())
    }

    /// Waits for the right to build partitions of this process.
    pub async fn lock(&self, process_id: &Uuid) -> Result<BuildLock> {
        match self {
            Catalog::Postgres(pool) => {
                let key =
                    i64::from_le_bytes(process_id.as_bytes()[..8].try_into().expect("8 bytes"))
                        ^ 0x5752_4954_4550_4552;
                let mut conn = pool.acquire().await?;
                sqlx::query("SELECT pg_advisory_lock($1)")
                    .bind(key)
                    .execute(&mut *conn)
                    .await?;
                Ok(BuildLock::Postgres(conn, key))
            }
            Catalog::Sqlite { lock_path, .. } => {
                Ok(BuildLock::File(Self::lock_file(lock_path.clone()).await?))
            }
        }
    }

    /// Waits for an exclusive lock on the file at `path` (created if needed).
    async fn lock_file(path: PathBuf) -> Result<std::fs::File> {
        tokio::task::spawn_blocking(move || -> Result<std::fs::File> {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .with_context(|| format!("cannot open lock file {}", path.display()))?;
            file.lock()
                .with_context(|| format!("cannot lock {}", path.display()))?;
            Ok(file)
        })
        .await
        .map_err(|e| crate::error::task_failed("locking the catalog", e))?
    }

    /// Rows retired before `cutoff_us`: no reader that started after the cutoff needs them.
    pub async fn retired_before(&self, cutoff_us: i64) -> Result<Vec<PartitionRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM write_perfetto_partitions WHERE retired_us IS NOT NULL AND retired_us < $1 ORDER BY file_key"
        );
        let rows = match self {
            Catalog::Postgres(pool) => sqlx::query_as(&sql).bind(cutoff_us).fetch_all(pool).await?,
            Catalog::Sqlite { pool, .. } => {
                sqlx::query_as(&sql).bind(cutoff_us).fetch_all(pool).await?
            }
        };
        Ok(rows)
    }

    pub async fn forget(&self, file_key: &str) -> Result<()> {
        let sql =
            "DELETE FROM write_perfetto_partitions WHERE file_key = $1 AND retired_us IS NOT NULL";
        match self {
            Catalog::Postgres(pool) => sqlx::query(sql)
                .bind(file_key)
                .execute(pool)
                .await
                .map(|_| ())?,
            Catalog::Sqlite { pool, .. } => sqlx::query(sql)
                .bind(file_key)
                .execute(pool)
                .await
                .map(|_| ())?,
        }
        Ok(())
    }
}

impl BuildLock {
    pub async fn release(self) -> Result<()> {
        match self {
            BuildLock::Postgres(mut conn, key) => {
                sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(key)
                    .execute(&mut *conn)
                    .await?;
            }
            BuildLock::File(file) => drop(file),
        }
        Ok(())
    }
}

/// SQLite's "file is not a database" (26) or "database disk image is malformed" (11).
fn is_damaged_database(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| match cause.downcast_ref::<sqlx::Error>() {
            Some(sqlx::Error::Database(db)) => db
                .code()
                .and_then(|code| code.parse::<i32>().ok())
                .is_some_and(|code| matches!(code & 0xff, 11 | 26)),
            _ => false,
        })
}

/// Moves a damaged catalog (and its WAL files) to `<name>.damaged-<µs>`; returns where.
fn set_aside(path: &Path) -> Result<PathBuf> {
    let aside = path.with_extension(format!("db.damaged-{}", now_us()));
    std::fs::rename(path, &aside)
        .with_context(|| format!("cannot move the damaged catalog {} aside", path.display()))?;
    for suffix in ["-wal", "-shm"] {
        let mut companion = path.as_os_str().to_owned();
        companion.push(suffix);
        let _ = std::fs::remove_file(companion);
    }
    Ok(aside)
}
