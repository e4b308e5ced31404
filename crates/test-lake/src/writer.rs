//! Writes lakes: the embedded SQLite layout or Micromegas's PostgreSQL schema, plus payloads.
//!
//! write-perfetto itself never writes the lake; this serves the fixture program, the synthetic
//! generator and the tests, so that they all produce exactly what the reader expects.

use anyhow::{Context, Result};
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::{PgPool, SqlitePool, sqlite::SqliteConnectOptions};
use std::path::Path;
use std::str::FromStr;

use write_perfetto::lake::BlobStore;
use write_perfetto::lake::rows::{BlockRow, ProcessRow, StreamRow, StreamTypes, block_object_key};

pub const SQLITE_SCHEMA: &str = include_str!("schema/sqlite.sql");
pub const POSTGRES_SCHEMA_V7: &str = include_str!("schema/postgres_v7.sql");

const STREAM_SQL_PG: &str = "INSERT INTO streams (stream_id, process_id, dependencies_metadata, objects_metadata, tags, \
     properties, insert_time, format) VALUES ($1::uuid, $2::uuid, $3, $4, \
     ARRAY(SELECT json_array_elements_text($5::json)), \
     ARRAY(SELECT ROW(e->>'key', e->>'value')::micromegas_property FROM json_array_elements($6::json) e), \
     $7::timestamptz, $8)";
const STREAM_SQL_SQLITE: &str = "INSERT INTO streams (stream_id, process_id, dependencies_metadata, objects_metadata, tags, \
     properties, insert_time, format) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
const BLOCK_SQL_PG: &str = "INSERT INTO blocks (block_id, stream_id, process_id, begin_time, end_time, begin_ticks, \
     end_ticks, nb_objects, object_offset, payload_size, insert_time) VALUES ($1::uuid, $2::uuid, $3::uuid, \
     $4::timestamptz, $5::timestamptz, $6, $7, $8, $9, $10, $11::timestamptz)";
const BLOCK_SQL_SQLITE: &str = "INSERT INTO blocks (block_id, stream_id, process_id, begin_time, end_time, begin_ticks, \
     end_ticks, nb_objects, object_offset, payload_size, insert_time) VALUES ($1, $2, $3, $4, $5, $6, $7, \
     $8, $9, $10, $11)";

/// Inserts stream row `$s` (of types `$types`) with `$sql` on `$executor` (a pool or a transaction).
macro_rules! insert_stream {
    ($sql:expr, $s:expr, $types:expr, $executor:expr) => {{
        let s: &StreamRow = $s;
        let types: &StreamTypes = $types;
        sqlx::query($sql)
            .bind(s.stream_id.to_string())
            .bind(s.process_id.to_string())
            .bind(&types.dependencies_metadata[..])
            .bind(&types.objects_metadata[..])
            .bind(serde_json::to_string(&s.tags)?)
            .bind(properties_json(&s.properties))
            .bind(time_text(&s.insert_time))
            .bind(&s.format)
            .execute($executor)
            .await
            .map(|_| ())?
    }};
}

/// Inserts block row `$b` with `$sql` on `$executor` (a pool or a transaction).
macro_rules! insert_block {
    ($sql:expr, $b:expr, $executor:expr) => {{
        let b: &BlockRow = $b;
        sqlx::query($sql)
            .bind(b.block_id.to_string())
            .bind(b.stream_id.to_string())
            .bind(b.process_id.to_string())
            .bind(time_text(&b.begin_time))
            .bind(time_text(&b.end_time))
            .bind(b.begin_ticks)
            .bind(b.end_ticks)
            .bind(b.nb_objects)
            .bind(b.object_offset)
            .bind(b.payload_size)
            .bind(time_text(&b.insert_time))
            .execute($executor)
            .await
            .map(|_| ())?
    }};
}

enum Target {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

pub struct LakeWriter {
    target: Target,
    blobs: BlobStore,
}

/// RFC 3339 UTC with microseconds: the precision PostgreSQL keeps.
pub fn time_text(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn properties_json(properties: &[(String, String)]) -> String {
    let items: Vec<serde_json::Value> = properties
        .iter()
        .map(|(k, v)| serde_json::json!({"key": k, "value": v}))
        .collect();
    serde_json::Value::Array(items).to_string()
}

impl LakeWriter {
    /// Creates (or opens) the embedded lake in `dir`: `dir/lake.db` and `dir/blobs/...`.
    pub async fn create_embedded(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(dir.join("lake.db"))
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Delete);
        let pool = SqlitePool::connect_with(options).await?;
        sqlx::raw_sql(SQLITE_SCHEMA).execute(&pool).await?;
        Ok(Self {
            target: Target::Sqlite(pool),
            blobs: BlobStore::local(dir)?,
        })
    }

    /// Connects to an empty PostgreSQL database and creates Micromegas's schema (v7) in it.
    pub async fn create_postgres(url: &str, blobs: BlobStore) -> Result<Self> {
        let pool = PgPool::connect(url).await?;
        sqlx::raw_sql(POSTGRES_SCHEMA_V7).execute(&pool).await?;
        Ok(Self {
            target: Target::Postgres(pool),
            blobs,
        })
    }

    pub async fn insert_process(&self, p: &ProcessRow) -> Result<()> {
        let parent = p.parent_process_id.map(|u| u.to_string());
        let props = properties_json(&p.properties);
        let columns = "INSERT INTO processes (process_id, exe, username, realname, computer, distro, cpu_brand, \
             tsc_frequency, start_time, start_ticks, insert_time, parent_process_id, properties)";
        let sql_pg = format!(
            "{columns} VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8, $9::timestamptz, $10, $11::timestamptz, $12::uuid, \
             ARRAY(SELECT ROW(e->>'key', e->>'value')::micromegas_property FROM json_array_elements($13::json) e))"
        );
        let sql_lite =
            format!("{columns} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)");
        macro_rules! run {
            ($sql:expr, $pool:expr) => {
                sqlx::query($sql)
                    .bind(p.process_id.to_string())
                    .bind(&p.exe)
                    .bind(&p.username)
                    .bind(&p.realname)
                    .bind(&p.computer)
                    .bind(&p.distro)
                    .bind(&p.cpu_brand)
                    .bind(p.tsc_frequency)
                    .bind(time_text(&p.start_time))
                    .bind(p.start_ticks)
                    .bind(time_text(&p.insert_time))
                    .bind(&parent)
                    .bind(&props)
                    .execute($pool)
                    .await
                    .map(|_| ())?
            };
        }
        match &self.target {
            Target::Postgres(pool) => run!(&sql_pg, pool),
            Target::Sqlite(pool) => run!(&sql_lite, pool),
        };
        Ok(())
    }

    pub async fn insert_stream(&self, s: &StreamRow, types: &StreamTypes) -> Result<()> {
        match &self.target {
            Target::Postgres(pool) => insert_stream!(STREAM_SQL_PG, s, types, pool),
            Target::Sqlite(pool) => insert_stream!(STREAM_SQL_SQLITE, s, types, pool),
        };
        Ok(())
    }

    /// A new stream and its first block made visible together, in one transaction (the
    /// payload stored first), as a live process's ingestion does.
    pub async fn insert_stream_with_block(
        &self,
        (s, types): (&StreamRow, &StreamTypes),
        b: &BlockRow,
        payload: Bytes,
    ) -> Result<()> {
        let key = block_object_key(&b.process_id, &b.stream_id, &b.block_id);
        self.blobs.put(&key, payload).await?;
        match &self.target {
            Target::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                insert_stream!(STREAM_SQL_PG, s, types, &mut *tx);
                insert_block!(BLOCK_SQL_PG, b, &mut *tx);
                tx.commit().await?;
            }
            Target::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                insert_stream!(STREAM_SQL_SQLITE, s, types, &mut *tx);
                insert_block!(BLOCK_SQL_SQLITE, b, &mut *tx);
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Stores the payload first, then the row: a reader never sees a row without its payload.
    pub async fn insert_block(&self, b: &BlockRow, payload: Bytes) -> Result<()> {
        let key = block_object_key(&b.process_id, &b.stream_id, &b.block_id);
        self.blobs.put(&key, payload).await?;
        self.insert_block_row(b).await
    }

    /// Inserts only the metadata row (tests use it to simulate missing payloads).
    pub async fn insert_block_row(&self, b: &BlockRow) -> Result<()> {
        match &self.target {
            Target::Postgres(pool) => insert_block!(BLOCK_SQL_PG, b, pool),
            Target::Sqlite(pool) => insert_block!(BLOCK_SQL_SQLITE, b, pool),
        };
        Ok(())
    }

    /// Runs arbitrary SQL on the metadata database (tests use it to damage a lake on purpose).
    pub async fn execute_sql(&self, sql: &str) -> Result<()> {
        match &self.target {
            Target::Postgres(pool) => sqlx::raw_sql(sql).execute(pool).await.map(|_| ())?,
            Target::Sqlite(pool) => sqlx::raw_sql(sql).execute(pool).await.map(|_| ())?,
        };
        Ok(())
    }

    pub async fn close(self) {
        match self.target {
            Target::Postgres(pool) => pool.close().await,
            Target::Sqlite(pool) => pool.close().await,
        }
    }
}
