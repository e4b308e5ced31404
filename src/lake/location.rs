//! Where the lake lives: an embedded directory, or a PostgreSQL URL plus an object store URL.

use anyhow::{Context, Result};
use sqlx::{
    Connection, PgConnection, PgPool, SqlitePool, postgres::PgPoolOptions,
    sqlite::SqliteConnectOptions,
};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::blobs::BlobStore;
use super::metadata::MetadataDb;
use crate::error::{FailureKind, failure};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The lake as the user named it.
#[derive(Debug, Clone, PartialEq)]
pub enum LakeLocation {
    /// `DIR/lake.db` (SQLite) with payloads under `DIR/blobs/...`.
    Embedded { dir: PathBuf },
    /// Micromegas's PostgreSQL database, and the object store URL of its payloads.
    Postgres { url: String, blobs_url: String },
}

impl LakeLocation {
    /// `--lake` and `--blobs` as given (after their environment-variable defaults).
    pub fn parse(lake: &str, blobs: Option<&str>) -> Result<Self> {
        if lake.starts_with("postgres://") || lake.starts_with("postgresql://") {
            let blobs_url = blobs.ok_or_else(|| {
                failure(
                    FailureKind::Usage,
                    "a PostgreSQL lake needs its object store: pass --blobs URL or set MICROMEGAS_OBJECT_STORE_URI",
                )
            })?;
            return Ok(Self::Postgres {
                url: lake.to_string(),
                blobs_url: blobs_url.to_string(),
            });
        }
        if lake.contains("://") {
            return Err(failure(
                FailureKind::Usage,
                format!(
                    "unsupported lake {lake:?}: give a directory holding lake.db, or a postgres:// URL"
                ),
            ));
        }
        let dir = PathBuf::from(lake);
        if !dir.join("lake.db").is_file() {
            return Err(failure(
                FailureKind::Usage,
                format!(
                    "no embedded lake at {}: expected {} (or pass a postgres:// URL)",
                    dir.display(),
                    dir.join("lake.db").display()
                ),
            ));
        }
        Ok(Self::Embedded { dir })
    }

    /// A short description without credentials.
    pub fn describe(&self) -> String {
        match self {
            Self::Embedded { dir } => dir.display().to_string(),
            Self::Postgres { url, blobs_url } => {
                let safe = url::Url::parse(url)
                    .map(|mut u| {
                        let _ = u.set_password(None);
                        u.to_string()
                    })
                    .unwrap_or_else(|_| "postgres://…".into());
                format!("{safe} + {blobs_url}")
            }
        }
    }

    pub(super) async fn open(&self) -> Result<(MetadataDb, BlobStore)> {
        match self {
            Self::Embedded { dir } => {
                let options = SqliteConnectOptions::from_str("sqlite://")?
                    .filename(dir.join("lake.db"))
                    .read_only(true)
                    // Stream rows carry kilobytes of type metadata before the columns read:
                    // mapped, SQLite steps over them without a read call per page. Mapped pages
                    // count in the process's memory: a bounded part of the file is mapped.
                    .pragma("mmap_size", "33554432")
                    .busy_timeout(Duration::from_secs(30));
                let pool = SqlitePool::connect_with(options).await.with_context(|| {
                    format!(
                        "cannot open embedded lake {}",
                        dir.join("lake.db").display()
                    )
                })?;
                Ok((MetadataDb::Sqlite(pool), BlobStore::local(dir)?))
            }
            Self::Postgres { url, blobs_url } => {
                let pool = connect_postgres(url, &self.describe()).await?;
                Ok((MetadataDb::Postgres(pool), BlobStore::from_url(blobs_url)?))
            }
        }
    }
}

/// Two connections, opened now: one for queries, one for the partition build lock, so that a
/// busy server is met at start, where waiting is safe. A server at its connection limit
/// ("too many clients", SQLSTATE 53300) is retried for a while: many exporters start at once
/// in CI. Any other refusal is reported at once, with its cause.
///
/// On a remote database every connection costs round trips: the probe and the pool's two
/// connections are opened at once, and a pooled connection is not pinged before each use (the
/// export is short, and an error names its cause all the same).
async fn connect_postgres(url: &str, description: &str) -> Result<PgPool> {
    let cannot = || format!("cannot connect to the lake database {description}");
    let mut delay = Duration::from_millis(100);
    let deadline = std::time::Instant::now() + CONNECT_TIMEOUT * 2;
    loop {
        let error = match open_pool(url).await {
            Ok(pool) => return Ok(pool),
            Err(OpenFailure::NoAnswer) => anyhow::bail!(
                "{}: no answer within {} s",
                cannot(),
                CONNECT_TIMEOUT.as_secs()
            ),
            Err(OpenFailure::Refused(e)) => e,
        };
        let server_full = error
            .as_database_error()
            .and_then(|e| e.code())
            .is_some_and(|code| code == "53300");
        if !server_full || std::time::Instant::now() > deadline {
            return Err(anyhow::Error::new(error).context(cannot()));
        }
        log::debug!("lake database at its connection limit; retrying in {delay:?}");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

enum OpenFailure {
    NoAnswer,
    Refused(sqlx::Error),
}

/// A pool with its two connections open. One direct connection (the probe) is opened beside
/// them: a pool would retry a refused connection until its timeout and then report only that
/// it timed out, losing the cause; the probe's error is the one reported.
async fn open_pool(url: &str) -> Result<PgPool, OpenFailure> {
    let pool = PgPoolOptions::new()
        .min_connections(0)
        .max_connections(2)
        .test_before_acquire(false)
        .acquire_timeout(CONNECT_TIMEOUT * 4)
        .connect_lazy(url)
        .map_err(OpenFailure::Refused)?;
    let pooled = pool.clone();
    let both = async move {
        let (a, b) = tokio::join!(pooled.acquire(), pooled.acquire());
        a.and(b).map(|_| ())
    };
    let probe = async {
        match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect(url)).await {
            Err(_) => Err(OpenFailure::NoAnswer),
            Ok(Err(e)) => Err(OpenFailure::Refused(e)),
            Ok(Ok(connection)) => {
                drop(connection);
                Ok(())
            }
        }
    };
    tokio::pin!(both, probe);
    // A failed probe ends the wait at once; the pool's attempts are dropped with it.
    let opened = tokio::select! {
        probed = &mut probe => { probed?; both.await }
        opened = &mut both => { probe.await?; opened }
    };
    opened.map(|()| pool).map_err(OpenFailure::Refused)
}
