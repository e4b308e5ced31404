//! Reads the lake's metadata tables (PostgreSQL or SQLite) into plain rows.
//!
//! Both backends return the same text-shaped columns (UUIDs and times as text, tags and
//! properties as JSON), so one conversion serves both and their results are identical.
//! Every query has an explicit total order.

use anyhow::{Context, Result};
use chrono::{DateTime, SubsecRound, Utc};
use sqlx::{FromRow, PgPool, SqlitePool, postgres::PgRow, sqlite::SqliteRow};
use std::collections::HashMap;
use uuid::Uuid;

use super::rows::{
    BlockRow, ProcessRow, StreamKind, StreamRow, StreamTypes, THREAD_STREAMS, TRANSIT_FORMAT,
    end_bounds, of_streams,
};
use crate::error::{FailureKind, failure};

/// A connection pool on the lake's metadata database.
#[derive(Clone)]
pub enum MetadataDb {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// A bound query parameter.
#[doc(hidden)]
#[derive(Clone)]
pub enum Arg {
    Text(String),
    Int(i64),
}

/// Which processes `write-perfetto processes` lists.
#[derive(Debug, Clone, Default)]
pub struct ProcessFilter {
    pub limit: i64,
    /// Only those whose executable path contains this, ignoring case.
    pub exe: Option<String>,
    /// Only those started at or after this time.
    pub since: Option<DateTime<Utc>>,
}

/// What `write-perfetto processes` shows of a process.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProcessSummary {
    pub process_id: String,
    pub exe: String,
    pub computer: String,
    pub start_time: String,
    /// The end of its last block; empty when it has none.
    pub end_time: String,
    /// From its start to the end of its last block.
    pub duration_seconds: Option<f64>,
    /// Empty when the process has no parent.
    pub parent_process_id: String,
    pub thread_streams: i64,
    pub blocks: i64,
}

// Per-backend SQL: PostgreSQL renders its native types as the text SQLite stores.
const PG_TIME: &str = r#"to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"#;

fn pg_time(column: &str) -> String {
    PG_TIME.replace("{}", column)
}

/// A process's row, by id (`$1`).
fn pg_process_sql() -> String {
    format!(
        "SELECT process_id::text, exe, username, realname, computer, distro, cpu_brand, tsc_frequency, \
         {}, start_ticks, {}, parent_process_id::text, array_to_json(properties)::text \
         FROM processes WHERE process_id = $1::uuid ORDER BY insert_time LIMIT 1",
        pg_time("start_time"),
        pg_time("insert_time")
    )
}

/// Every stream of a process (`$1`), in stream id order.
fn pg_process_streams_sql() -> String {
    format!(
        "SELECT stream_id::text, process_id::text, \
         array_to_json(tags)::text, array_to_json(properties)::text, {}, format \
         FROM streams WHERE process_id = $1::uuid ORDER BY stream_id::text",
        pg_time("insert_time")
    )
}

/// Every block of a process (`$1`), ordered by stream, object offset, block id.
fn pg_process_blocks_sql() -> String {
    format!(
        "SELECT block_id::text, stream_id::text, process_id::text, {}, {}, begin_ticks, end_ticks, \
         nb_objects::int8, object_offset, payload_size, {} \
         FROM blocks WHERE process_id = $1::uuid \
         ORDER BY stream_id::text, object_offset, block_id::text",
        pg_time("begin_time"),
        pg_time("end_time"),
        pg_time("insert_time")
    )
}

type ProcessTuple = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
);

type StreamTuple = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);
/// stream_id, dependencies_metadata, objects_metadata
type StreamTypesTuple = (Option<String>, Option<Vec<u8>>, Option<Vec<u8>>);

type BlockTuple = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

/// Runs `$sql` with `$args` bound on `$executor`: every value is a bound parameter, no lake
/// string is ever spliced into SQL.
/// Runs the query and maps each row as it arrives: only the mapped rows are held.
macro_rules! fetch_map {
    ($sql:expr, $args:expr, $executor:expr, $map:expr) => {{
        use futures::TryStreamExt;
        let mut query = sqlx::query_as::<_, T>($sql);
        for arg in $args {
            query = match arg {
                Arg::Text(text) => query.bind(text.clone()),
                Arg::Int(value) => query.bind(*value),
            };
        }
        let mut rows = query.fetch($executor);
        let mut mapped = Vec::new();
        while let Some(row) = rows.try_next().await.map_err(db_error)? {
            mapped.push(($map)(row)?);
        }
        Ok(mapped)
    }};
}

/// The rows of one process in an embedded lake's table, by its id in lowercase (`$1`): as
/// stored in lowercase or in uppercase (a producer writes its ids one way), through the
/// table's index on `process_id`. `lower(process_id) = $1` scanned every row of the lake: with
/// 104,076 blocks of 200 processes, 13 ms per query, against 0.06 ms.
const SQLITE_OF_PROCESS: &str = "process_id IN ($1, upper($1))";

/// Rows per chunk of [`json_chunks`]. Its columns are read as stored: ids parse from either
/// case, so only a filter needs `lower` (a lake's block list is thousands of rows, each
/// column a cost).
const JSON_CHUNK_ROWS: usize = 1024;

/// A SQLite query returning `columns` of the rows of `table` that match `filter`,
/// [`JSON_CHUNK_ROWS`] or fewer rows to a result row (a JSON array of arrays), in no order:
/// the caller sorts them after parsing, which costs less than SQLite sorting every column.
/// SQLite's driver hands each result row over from a worker thread, a thread wake-up each
/// (about 30 µs: thousands of streams made exports slow).
fn json_chunks(columns: &str, table: &str, filter: &str) -> String {
    format!(
        "SELECT json_group_array(json_array({columns})) FROM {table} WHERE {filter} \
         GROUP BY rowid / {JSON_CHUNK_ROWS}"
    )
}

/// The metadata queries, on the pool (one query, one instant) or in a [`Snapshot`] (all
/// queries, one instant).
#[allow(async_fn_in_trait)] // used within the crate and its tests, never boxed
pub trait MetadataReads {
    /// Runs the query of the backend at hand, mapping each row as it arrives.
    #[doc(hidden)]
    async fn fetch_map<T, U>(
        &self,
        pg_sql: &str,
        sqlite_sql: &str,
        args: &[Arg],
        map: impl FnMut(T) -> Result<U> + Send,
    ) -> Result<Vec<U>>
    where
        T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin;

    /// Whether the lake's metadata is in SQLite.
    #[doc(hidden)]
    fn is_sqlite(&self) -> bool;

    /// Runs a query of many rows on the backend at hand, mapping each row as it arrives; on
    /// SQLite, `sqlite_chunks_sql` is a [`json_chunks`] query, whose rows are then put in
    /// `order` (that of `pg_sql`'s `ORDER BY`).
    #[doc(hidden)]
    async fn fetch_map_chunked<T, U>(
        &self,
        pg_sql: &str,
        sqlite_chunks_sql: &str,
        args: &[Arg],
        mut map: impl FnMut(T) -> Result<U> + Send,
        order: impl Fn(&U, &U) -> std::cmp::Ordering,
    ) -> Result<Vec<U>>
    where
        T: for<'r> FromRow<'r, PgRow>
            + for<'r> FromRow<'r, SqliteRow>
            + serde::de::DeserializeOwned
            + Send
            + Unpin,
    {
        if !self.is_sqlite() {
            return self.fetch_map(pg_sql, sqlite_chunks_sql, args, map).await;
        }
        let parse_chunk = |(chunk,): (Option<String>,)| {
            let rows: Vec<T> = serde_json::from_str(chunk.as_deref().unwrap_or("[]"))
                .context("metadata query returned malformed rows")?;
            rows.into_iter().map(&mut map).collect::<Result<Vec<U>>>()
        };
        let chunks = (self.fetch_map(pg_sql, sqlite_chunks_sql, args, parse_chunk)).await?;
        let mut rows: Vec<U> = chunks.into_iter().flatten().collect();
        rows.sort_by(order);
        Ok(rows)
    }

    /// Runs the query of the backend at hand.
    #[doc(hidden)]
    async fn fetch<T>(&self, pg_sql: &str, sqlite_sql: &str, args: &[Arg]) -> Result<Vec<T>>
    where
        T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        self.fetch_map(pg_sql, sqlite_sql, args, Ok).await
    }

    /// Ids of the processes whose id starts with `hex_prefix` (lowercase hex digits, no hyphens),
    /// at most `limit`, in id order.
    async fn process_ids_with_prefix(&self, hex_prefix: &str, limit: i64) -> Result<Vec<Uuid>> {
        let pattern = format!("{}%", hyphenate_prefix(hex_prefix));
        let rows: Vec<(Option<String>,)> = self
            .fetch(
                "SELECT process_id::text FROM processes WHERE process_id::text LIKE $1 ORDER BY process_id::text LIMIT $2",
                "SELECT lower(process_id) FROM processes WHERE lower(process_id) LIKE $1 ORDER BY lower(process_id) LIMIT $2",
                &[Arg::Text(pattern), Arg::Int(limit)],
            )
            .await?;
        rows.into_iter()
            .filter_map(|(id,)| id)
            .map(|id| parse_uuid(&id, "processes.process_id"))
            .collect()
    }

    async fn process(&self, process_id: &Uuid) -> Result<Option<ProcessRow>> {
        let rows: Vec<ProcessTuple> = self
            .fetch(
                &pg_process_sql(),
                &format!(
                    "SELECT lower(process_id), exe, username, realname, computer, distro, cpu_brand, tsc_frequency, \
                     start_time, start_ticks, insert_time, lower(parent_process_id), properties \
                     FROM processes WHERE {SQLITE_OF_PROCESS} ORDER BY insert_time LIMIT 1"
                ),
                &[Arg::Text(process_id.to_string())],
            )
            .await?;
        rows.into_iter().next().map(process_from_tuple).transpose()
    }

    /// Ids of the processes whose parent is `process_id`, in id order.
    async fn children(&self, process_id: &Uuid) -> Result<Vec<Uuid>> {
        let rows: Vec<(Option<String>,)> = self
            .fetch(
                "SELECT DISTINCT process_id::text FROM processes WHERE parent_process_id = $1::uuid ORDER BY process_id::text",
                "SELECT DISTINCT lower(process_id) FROM processes WHERE lower(parent_process_id) = $1 ORDER BY lower(process_id)",
                &[Arg::Text(process_id.to_string())],
            )
            .await?;
        rows.into_iter()
            .filter_map(|(id,)| id)
            .map(|id| parse_uuid(&id, "processes.process_id"))
            .collect()
    }

    /// The process's thread streams (tagged `cpu`), in stream id order.
    async fn thread_streams(&self, process_id: &Uuid) -> Result<Vec<StreamRow>> {
        self.streams(process_id, THREAD_STREAMS).await
    }

    /// Blocks of the process's thread streams, ordered by stream, object offset, block id.
    async fn thread_blocks(&self, process_id: &Uuid) -> Result<Vec<BlockRow>> {
        self.blocks(process_id, THREAD_STREAMS).await
    }

    /// Every stream of the process, in stream id order.
    async fn process_streams(&self, process_id: &Uuid) -> Result<Vec<StreamRow>> {
        let pg_sql = pg_process_streams_sql();
        let sqlite_sql = json_chunks(
            "stream_id, process_id, tags, properties, insert_time, format",
            "streams",
            SQLITE_OF_PROCESS,
        );
        self.fetch_map_chunked(
            &pg_sql,
            &sqlite_sql,
            &[Arg::Text(process_id.to_string())],
            stream_from_tuple,
            // A uuid orders as its text: lowercase hex digits, hyphens at the same places.
            |a, b| a.stream_id.cmp(&b.stream_id),
        )
        .await
    }

    /// The process's streams of one kind, in stream id order.
    async fn streams(&self, process_id: &Uuid, kind: StreamKind) -> Result<Vec<StreamRow>> {
        let streams = self.process_streams(process_id).await?;
        Ok(streams.into_iter().filter(|s| kind.holds(s)).collect())
    }

    /// The type descriptions of the process's streams that `wanted` selects, by stream. Equal
    /// descriptions are held once: thousands of streams usually share a few.
    async fn stream_types(
        &self,
        process_id: &Uuid,
        wanted: &(dyn Fn(Uuid) -> bool + Sync),
    ) -> Result<HashMap<Uuid, StreamTypes>> {
        let mut shared = SharedMetadata::default();
        let mut types_of = |(id, dependencies, objects): StreamTypesTuple| {
            let id_text = required(id, "streams.stream_id", "stream")?;
            let id = parse_uuid(&id_text, "streams.stream_id")?;
            if !wanted(id) {
                return Ok(None);
            }
            let row = format!("stream {id_text}");
            let dependencies = required(dependencies, "streams.dependencies_metadata", &row)?;
            let objects = required(objects, "streams.objects_metadata", &row)?;
            Ok(Some((
                id,
                StreamTypes {
                    dependencies_metadata: shared.share(dependencies),
                    objects_metadata: shared.share(objects),
                },
            )))
        };
        let rows = self
            .fetch_map(
                "SELECT stream_id::text, dependencies_metadata, objects_metadata FROM streams \
                 WHERE process_id = $1::uuid ORDER BY stream_id::text",
                &format!(
                    "SELECT lower(stream_id), dependencies_metadata, objects_metadata FROM streams \
                     WHERE {SQLITE_OF_PROCESS} ORDER BY lower(stream_id)"
                ),
                &[Arg::Text(process_id.to_string())],
                &mut types_of,
            )
            .await?;
        // In id order, the first row of an id wins.
        let mut types = HashMap::new();
        for (id, stream_types) in rows.into_iter().flatten() {
            types.entry(id).or_insert(stream_types);
        }
        Ok(types)
    }

    /// The process's blocks, ordered by stream, object offset, block id, whether their
    /// stream row exists or not ([`of_streams`] keeps those of the streams read: a join
    /// would scan every stream row again).
    async fn process_blocks(&self, process_id: &Uuid) -> Result<Vec<BlockRow>> {
        let pg_sql = pg_process_blocks_sql();
        let sqlite_sql = json_chunks(
            "block_id, stream_id, process_id, begin_time, end_time, \
             begin_ticks, end_ticks, nb_objects, object_offset, payload_size, insert_time",
            "blocks",
            SQLITE_OF_PROCESS,
        );
        self.fetch_map_chunked(
            &pg_sql,
            &sqlite_sql,
            &[Arg::Text(process_id.to_string())],
            block_from_tuple,
            |a, b| {
                let key = |r: &BlockRow| (r.stream_id, r.object_offset, r.block_id);
                key(a).cmp(&key(b))
            },
        )
        .await
    }

    /// Blocks of the process's streams of one kind, ordered by stream, object offset, block id.
    async fn blocks(&self, process_id: &Uuid, kind: StreamKind) -> Result<Vec<BlockRow>> {
        let streams = self.streams(process_id, kind).await?;
        Ok(of_streams(
            &streams,
            &self.process_blocks(process_id).await?,
        ))
    }

    /// The largest `end_ticks` and `end_time` over all blocks of the process whose stream is
    /// known: the inputs of the inferred tick frequency.
    async fn block_end_bounds(
        &self,
        process_id: &Uuid,
    ) -> Result<(Option<i64>, Option<DateTime<Utc>>)> {
        let streams = self.process_streams(process_id).await?;
        let blocks = of_streams(&streams, &self.process_blocks(process_id).await?);
        Ok(end_bounds(&blocks))
    }
}

impl MetadataReads for MetadataDb {
    async fn fetch_map<T, U>(
        &self,
        pg_sql: &str,
        sqlite_sql: &str,
        args: &[Arg],
        mut map: impl FnMut(T) -> Result<U> + Send,
    ) -> Result<Vec<U>>
    where
        T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        match self {
            MetadataDb::Postgres(pool) => fetch_map!(pg_sql, args, pool, map),
            MetadataDb::Sqlite(pool) => fetch_map!(sqlite_sql, args, pool, map),
        }
    }

    fn is_sqlite(&self) -> bool {
        matches!(self, MetadataDb::Sqlite(_))
    }
}

/// The lake as of one instant: one read-only transaction (PostgreSQL `REPEATABLE READ`; a
/// SQLite read transaction) for every query of an export, so that a process still being
/// ingested shows a consistent state — never a block without its stream.
pub struct Snapshot {
    transaction: tokio::sync::Mutex<SnapshotTransaction>,
    sqlite: bool,
    /// Answers read ahead ([`Snapshot::read_process_ahead`]).
    ahead: std::sync::Mutex<Vec<AnswerAhead>>,
}

/// A statement and its argument, and its rows until a query takes them.
type AnswerAhead = ((String, String), Option<Vec<PgRow>>);

enum SnapshotTransaction {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

impl MetadataDb {
    /// Starts a snapshot; it ends when dropped or [`Snapshot::close`]d.
    pub async fn snapshot(&self) -> Result<Snapshot> {
        let transaction = match self {
            MetadataDb::Postgres(pool) => SnapshotTransaction::Postgres(
                pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await
                    .map_err(db_error)?,
            ),
            MetadataDb::Sqlite(pool) => {
                SnapshotTransaction::Sqlite(pool.begin().await.map_err(db_error)?)
            }
        };
        Ok(Snapshot {
            sqlite: matches!(transaction, SnapshotTransaction::Sqlite(_)),
            transaction: tokio::sync::Mutex::new(transaction),
            ahead: std::sync::Mutex::new(Vec::new()),
        })
    }
}

impl Snapshot {
    /// On PostgreSQL, reads a process's row, streams and blocks in one round trip (each query
    /// on its own would be two: a remote database makes every one count); the queries that
    /// follow take their answers from it. Nothing happens on SQLite, which is local.
    ///
    /// The three statements go as one simple query, which takes no bound parameters: the one
    /// value in them is the process id, written from a parsed [`Uuid`] (hex digits and
    /// hyphens), never text from the lake or the command line.
    pub async fn read_process_ahead(&self, process_id: &Uuid) -> Result<()> {
        let mut transaction = self.transaction.lock().await;
        let SnapshotTransaction::Postgres(tx) = &mut *transaction else {
            return Ok(());
        };
        if self.has_read_ahead(process_id) {
            return Ok(());
        }
        let statements = [
            pg_process_sql(),
            pg_process_streams_sql(),
            pg_process_blocks_sql(),
        ];
        let literal = uuid_literal(process_id);
        let batch: Vec<String> = (statements.iter())
            .map(|sql| sql.replace("$1", &literal))
            .collect();
        let batch = batch.join(";\n");
        let answers = statements_at_once(&mut **tx, &batch)
            .await
            .map_err(db_error)?;
        let argument = process_id.to_string();
        let mut ahead = self.ahead.lock().unwrap_or_else(|p| p.into_inner());
        for (sql, rows) in statements.into_iter().zip(answers) {
            ahead.push(((sql, argument.clone()), Some(rows)));
        }
        Ok(())
    }

    /// The rows read ahead for this statement and argument, taken by the first query that
    /// asks (each is asked once per process; a second query is run, in the same snapshot).
    fn take_ahead(&self, pg_sql: &str, args: &[Arg]) -> Option<Vec<PgRow>> {
        let [Arg::Text(argument)] = args else {
            return None;
        };
        let mut ahead = self.ahead.lock().unwrap_or_else(|p| p.into_inner());
        let found = (ahead.iter_mut()).find(|((sql, arg), _)| sql == pg_sql && arg == argument);
        found.and_then(|(_, rows)| rows.take())
    }

    fn has_read_ahead(&self, process_id: &Uuid) -> bool {
        let argument = process_id.to_string();
        let ahead = self.ahead.lock().unwrap_or_else(|p| p.into_inner());
        ahead.iter().any(|((_, arg), _)| *arg == argument)
    }

    /// Ends the read transaction (it wrote nothing).
    pub async fn close(self) -> Result<()> {
        match self.transaction.into_inner() {
            // Read-only: ending it by a rollback is the same, and the driver sends that with
            // the connection's next statement instead of waiting a round trip for it now.
            SnapshotTransaction::Postgres(tx) => {
                drop(tx);
                Ok(())
            }
            SnapshotTransaction::Sqlite(tx) => tx.commit().await.map_err(db_error),
        }
    }
}

impl MetadataReads for Snapshot {
    async fn fetch_map<T, U>(
        &self,
        pg_sql: &str,
        sqlite_sql: &str,
        args: &[Arg],
        mut map: impl FnMut(T) -> Result<U> + Send,
    ) -> Result<Vec<U>>
    where
        T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        if let Some(rows) = self.take_ahead(pg_sql, args) {
            return (rows.iter())
                .map(|row| T::from_row(row).map_err(db_error).and_then(&mut map))
                .collect();
        }
        let mut transaction = self.transaction.lock().await;
        match &mut *transaction {
            SnapshotTransaction::Postgres(tx) => fetch_map!(pg_sql, args, &mut **tx, map),
            SnapshotTransaction::Sqlite(tx) => fetch_map!(sqlite_sql, args, &mut **tx, map),
        }
    }

    fn is_sqlite(&self) -> bool {
        self.sqlite
    }
}

impl MetadataDb {
    /// The newest processes first (ties broken by id), with their thread-stream and block counts.
    pub async fn process_summaries(&self, limit: i64) -> Result<Vec<ProcessSummary>> {
        let filter = ProcessFilter {
            limit,
            ..Default::default()
        };
        self.find_processes(&filter).await
    }

    /// The processes `filter` keeps, newest first (ties broken by id), with their thread-stream
    /// and block counts and the end of their last block.
    pub async fn find_processes(&self, filter: &ProcessFilter) -> Result<Vec<ProcessSummary>> {
        let threads = THREAD_STREAMS;
        let pg_sql = format!(
            "SELECT p.process_id::text, p.exe, p.computer, {}, p.parent_process_id::text, \
             (SELECT count(*) FROM streams s WHERE s.process_id = p.process_id AND $3 = ANY(s.tags) AND s.format = $2), \
             (SELECT count(*) FROM streams s JOIN blocks b ON b.stream_id = s.stream_id \
              WHERE s.process_id = p.process_id AND b.process_id = p.process_id), \
             (SELECT {} FROM blocks b WHERE b.process_id = p.process_id) \
             FROM processes p WHERE p.process_id IS NOT NULL \
             AND ($4 = '' OR strpos(lower(p.exe), lower($4)) > 0) \
             AND COALESCE(p.start_time, '0001-01-01T00:00:00Z'::timestamptz) >= $5::timestamptz \
             ORDER BY p.start_time DESC NULLS LAST, p.process_id::text LIMIT $1",
            pg_time("p.start_time"),
            pg_time("max(b.end_time)")
        );
        // Before any start time: no filter (a process without one is kept too).
        let since = filter
            .since
            .map_or("0001-01-01T00:00:00.000000Z".into(), |t| {
                t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            });
        let rows: Vec<SummaryTuple> = self
            .fetch(
                &pg_sql,
                "SELECT lower(p.process_id), p.exe, p.computer, p.start_time, lower(p.parent_process_id), \
                 (SELECT count(*) FROM streams s WHERE lower(s.process_id) = lower(p.process_id) AND s.format = $2 \
                  AND EXISTS (SELECT 1 FROM json_each(s.tags) WHERE value = $3)), \
                 (SELECT count(*) FROM streams s JOIN blocks b ON lower(b.stream_id) = lower(s.stream_id) \
                  WHERE lower(s.process_id) = lower(p.process_id) AND lower(b.process_id) = lower(p.process_id)), \
                 (SELECT max(b.end_time) FROM blocks b WHERE lower(b.process_id) = lower(p.process_id)) \
                 FROM processes p WHERE p.process_id IS NOT NULL \
                 AND ($4 = '' OR instr(lower(p.exe), lower($4)) > 0) \
                 AND COALESCE(p.start_time, '0001-01-01T00:00:00.000000Z') >= $5 \
                 ORDER BY p.start_time IS NULL, p.start_time DESC, lower(p.process_id) LIMIT $1",
                &[
                    Arg::Int(filter.limit),
                    Arg::Text(threads.format.into()),
                    Arg::Text(threads.tag.into()),
                    Arg::Text(filter.exe.clone().unwrap_or_default()),
                    Arg::Text(since),
                ],
            )
            .await?;
        Ok(rows.into_iter().map(summary_from_tuple).collect())
    }
}

type SummaryTuple = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

fn summary_from_tuple(t: SummaryTuple) -> ProcessSummary {
    let (id, exe, computer, start, parent, threads, blocks, end) = t;
    let (start_time, end_time) = (start.unwrap_or_default(), end.unwrap_or_default());
    let parsed = |text: &str| DateTime::parse_from_rfc3339(text).ok();
    let duration_seconds = match (parsed(&start_time), parsed(&end_time)) {
        (Some(start), Some(end)) => Some((end - start).as_seconds_f64().max(0.0)),
        _ => None,
    };
    ProcessSummary {
        process_id: id.unwrap_or_default(),
        exe: exe.unwrap_or_default(),
        computer: computer.unwrap_or_default(),
        start_time,
        end_time,
        duration_seconds,
        parent_process_id: parent.unwrap_or_default(),
        thread_streams: threads.unwrap_or(0),
        blocks: blocks.unwrap_or(0),
    }
}

/// Runs `statements` (separated by `;`) as one simple query — one round trip, however many —
/// and returns the rows of each. A simple query takes no bound parameters: the statements may
/// hold only values the caller wrote itself from parsed types ([`uuid_literal`]), never text
/// from the lake or the command line.
pub async fn statements_at_once<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    statements: &'e str,
) -> std::result::Result<Vec<Vec<PgRow>>, sqlx::Error> {
    use futures::TryStreamExt;
    let mut results = sqlx::raw_sql(statements).fetch_many(executor);
    let mut answers: Vec<Vec<PgRow>> = vec![Vec::new()];
    while let Some(result) = results.try_next().await? {
        match result {
            sqlx::Either::Left(_) => answers.push(Vec::new()),
            sqlx::Either::Right(row) => answers.last_mut().expect("never empty").push(row),
        }
    }
    Ok(answers)
}

/// A process id as a SQL literal: hex digits and hyphens, quoted.
pub fn uuid_literal(id: &Uuid) -> String {
    format!("'{}'", id.hyphenated())
}

fn db_error(error: sqlx::Error) -> anyhow::Error {
    anyhow::Error::new(error).context("metadata query failed")
}

/// `0123456789ab` → `01234567-89ab`: a hex prefix as the prefix of a hyphenated UUID.
fn hyphenate_prefix(hex: &str) -> String {
    let mut out = String::with_capacity(hex.len() + 4);
    for (i, c) in hex.chars().enumerate() {
        if matches!(i, 8 | 12 | 16 | 20) {
            out.push('-');
        }
        out.push(c);
    }
    out
}

fn bad_data(what: &str, detail: impl std::fmt::Display) -> anyhow::Error {
    failure(
        FailureKind::LakeData,
        format!("bad lake metadata: {what} {detail}"),
    )
}

fn required<T>(value: Option<T>, column: &str, row: &str) -> Result<T> {
    value.ok_or_else(|| bad_data(column, format_args!("is NULL ({row})")))
}

pub(crate) fn parse_uuid(text: &str, column: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|_| bad_data(column, format_args!("is not a UUID: {text:?}")))
}

/// Times are read at the microsecond precision PostgreSQL stores, whatever the backend.
pub(crate) fn parse_time(text: &str, column: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z"))
        .map(|t| t.with_timezone(&Utc).trunc_subsecs(6))
        .map_err(|_| bad_data(column, format_args!("is not an RFC 3339 time: {text:?}")))
}

/// Properties as PostgreSQL's `array_to_json` renders them (`[{"key":..,"value":..}]`), or a
/// plain JSON object; returned sorted by key so that their order never depends on storage.
pub(crate) fn parse_properties(text: Option<&str>, column: &str) -> Result<Vec<(String, String)>> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| bad_data(column, format_args!("is not JSON: {e}")))?;
    let mut out = Vec::new();
    match value {
        serde_json::Value::Null => {}
        serde_json::Value::Array(items) => {
            for item in items {
                let key = item.get("key").and_then(|v| v.as_str());
                let val = item.get("value").and_then(|v| v.as_str());
                match (key, val) {
                    (Some(k), Some(v)) => out.push((k.to_string(), v.to_string())),
                    (Some(k), None) => out.push((k.to_string(), String::new())),
                    _ => return Err(bad_data(column, "holds a property without a key")),
                }
            }
        }
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let v = v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string());
                out.push((k, v));
            }
        }
        _ => return Err(bad_data(column, "is neither a JSON array nor an object")),
    }
    out.sort();
    Ok(out)
}

fn parse_tags(text: Option<&str>) -> Result<Vec<String>> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    let tags: Option<Vec<Option<String>>> = serde_json::from_str(text).map_err(|e| {
        bad_data(
            "streams.tags",
            format_args!("is not a JSON array of strings: {e}"),
        )
    })?;
    Ok(tags.unwrap_or_default().into_iter().flatten().collect())
}

fn process_from_tuple(t: ProcessTuple) -> Result<ProcessRow> {
    let id_text = required(t.0, "processes.process_id", "process")?;
    let row = format!("process {id_text}");
    Ok(ProcessRow {
        process_id: parse_uuid(&id_text, "processes.process_id")?,
        exe: t.1.unwrap_or_default(),
        username: t.2.unwrap_or_default(),
        realname: t.3.unwrap_or_default(),
        computer: t.4.unwrap_or_default(),
        distro: t.5.unwrap_or_default(),
        cpu_brand: t.6.unwrap_or_default(),
        tsc_frequency: required(t.7, "processes.tsc_frequency", &row)?,
        start_time: parse_time(
            &required(t.8, "processes.start_time", &row)?,
            "processes.start_time",
        )?,
        start_ticks: required(t.9, "processes.start_ticks", &row)?,
        insert_time: t
            .10
            .as_deref()
            .map(|s| parse_time(s, "processes.insert_time"))
            .transpose()?
            .unwrap_or_default(),
        parent_process_id: t
            .11
            .as_deref()
            .map(|s| parse_uuid(s, "processes.parent_process_id"))
            .transpose()?,
        properties: parse_properties(t.12.as_deref(), "processes.properties")?,
    })
}

/// The distinct type metadata of a process's streams, each held once.
#[derive(Default)]
struct SharedMetadata(std::collections::HashSet<bytes::Bytes>);

impl SharedMetadata {
    fn share(&mut self, data: Vec<u8>) -> bytes::Bytes {
        let data = bytes::Bytes::from(data);
        if let Some(shared) = self.0.get(&data) {
            return shared.clone();
        }
        self.0.insert(data.clone());
        data
    }
}

fn stream_from_tuple(t: StreamTuple) -> Result<StreamRow> {
    let id_text = required(t.0, "streams.stream_id", "stream")?;
    let row = format!("stream {id_text}");
    Ok(StreamRow {
        stream_id: parse_uuid(&id_text, "streams.stream_id")?,
        process_id: parse_uuid(
            &required(t.1, "streams.process_id", &row)?,
            "streams.process_id",
        )?,
        tags: parse_tags(t.2.as_deref())?,
        properties: parse_properties(t.3.as_deref(), "streams.properties")?,
        insert_time: t
            .4
            .as_deref()
            .map(|s| parse_time(s, "streams.insert_time"))
            .transpose()?
            .unwrap_or_default(),
        format: t.5.unwrap_or_else(|| TRANSIT_FORMAT.to_string()),
    })
}

fn block_from_tuple(t: BlockTuple) -> Result<BlockRow> {
    let id_text = required(t.0, "blocks.block_id", "block")?;
    let row = format!("block {id_text}");
    let nb_objects = required(t.7, "blocks.nb_objects", &row)?;
    Ok(BlockRow {
        block_id: parse_uuid(&id_text, "blocks.block_id")?,
        stream_id: parse_uuid(
            &required(t.1, "blocks.stream_id", &row)?,
            "blocks.stream_id",
        )?,
        process_id: parse_uuid(
            &required(t.2, "blocks.process_id", &row)?,
            "blocks.process_id",
        )?,
        begin_time: parse_time(
            &required(t.3, "blocks.begin_time", &row)?,
            "blocks.begin_time",
        )?,
        end_time: parse_time(&required(t.4, "blocks.end_time", &row)?, "blocks.end_time")?,
        begin_ticks: required(t.5, "blocks.begin_ticks", &row)?,
        end_ticks: required(t.6, "blocks.end_ticks", &row)?,
        nb_objects: i32::try_from(nb_objects)
            .map_err(|_| bad_data("blocks.nb_objects", format_args!("out of range ({row})")))?,
        object_offset: required(t.8, "blocks.object_offset", &row)?,
        payload_size: required(t.9, "blocks.payload_size", &row)?,
        insert_time: parse_time(
            &required(t.10, "blocks.insert_time", &row)?,
            "blocks.insert_time",
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite's plan for each query of one process's rows of the fixture lake (its schema
    /// as Micromegas's and `gen-lake`'s).
    async fn plans_of_process_queries() -> Vec<(String, String)> {
        use sqlx::sqlite::SqliteConnectOptions;
        let lake = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/lake/lake.db");
        let options = SqliteConnectOptions::new().filename(lake).read_only(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        let queries = [
            (
                "blocks",
                json_chunks("block_id", "blocks", SQLITE_OF_PROCESS),
            ),
            (
                "streams",
                json_chunks("stream_id", "streams", SQLITE_OF_PROCESS),
            ),
        ];
        let mut plans = Vec::new();
        for (table, sql) in queries {
            let plan: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
                    .bind(Uuid::nil().to_string())
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            let steps = plan.into_iter().map(|(.., step)| step);
            plans.push((table.to_string(), steps.collect::<Vec<_>>().join("; ")));
        }
        pool.close().await;
        plans
    }

    #[tokio::test]
    async fn the_rows_of_one_process_are_found_through_the_index_not_by_reading_the_lake() {
        // Reading every row of a table made an export of one process of a lake of many cost
        // as much as the whole lake.
        for (table, plan) in plans_of_process_queries().await {
            assert!(
                plan.contains(&format!("{table}_process"))
                    && !plan.contains(&format!("SCAN {table}")),
                "{table}: {plan}"
            );
        }
    }

    #[test]
    fn hex_prefix_becomes_hyphenated_uuid_prefix() {
        assert_eq!(hyphenate_prefix("01234567"), "01234567");
        assert_eq!(hyphenate_prefix("0123456789ab"), "01234567-89ab");
        assert_eq!(
            hyphenate_prefix("0123456789abcdef0123456789abcdef"),
            "01234567-89ab-cdef-0123-456789abcdef"
        );
    }

    #[test]
    fn properties_of_both_shapes_parse_sorted_by_key() {
        let pg = r#"[{"key":"thread-name","value":"main"},{"key":"thread-id","value":"42"}]"#;
        let obj = r#"{"thread-name":"main","thread-id":"42"}"#;
        let expected = vec![
            ("thread-id".to_string(), "42".to_string()),
            ("thread-name".to_string(), "main".to_string()),
        ];
        assert_eq!(parse_properties(Some(pg), "p").unwrap(), expected);
        assert_eq!(parse_properties(Some(obj), "p").unwrap(), expected);
    }

    #[test]
    fn times_are_truncated_to_microseconds() {
        let t = parse_time("2026-11-27T12:00:00.123456789Z", "t").unwrap();
        assert_eq!(t.timestamp_subsec_nanos(), 123_456_000);
    }
}
