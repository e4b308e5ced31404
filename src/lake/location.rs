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
                // One direct attempt first: a pool would retry a refused connection until its
                // timeout and then report only that it timed out, losing the cause.
                let probe = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect(url)).await;
                let cannot = || format!("cannot connect to the lake database {}", self.describe());
                match probe {
                    Err(_) => anyhow::bail!(
                        "{}: no answer within {} s",
                        cannot(),
                        CONNECT_TIMEOUT.as_secs()
                    ),
                    Ok(Err(e)) => return Err(anyhow::Error::new(e).context(cannot())),
                    Ok(Ok(connection)) => drop(connection),
                }
                let pool: PgPool = PgPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect(url)
                    .await
                    .with_context(cannot)?;
                Ok((MetadataDb::Postgres(pool), BlobStore::from_url(blobs_url)?))
            }
        }
    }
}
