//! The object store that holds block payloads (and our partition files): one trait, any backend.

use anyhow::{Context, Result};
use bytes::Bytes;
use object_store::{
    ObjectStore, local::LocalFileSystem, path::Path as ObjectPath, prefix::PrefixStore,
};
use std::sync::Arc;
use url::Url;

use crate::error::{FailureKind, failure};

/// A handle on the store, rooted where `blobs/...` keys start.
#[derive(Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    description: String,
    /// Reached over a network: each request is a round trip.
    remote: bool,
}

impl BlobStore {
    pub fn local(dir: &std::path::Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create object store directory {}", dir.display()))?;
        let store = LocalFileSystem::new_with_prefix(dir)
            .with_context(|| format!("cannot open object store directory {}", dir.display()))?;
        Ok(Self {
            store: Arc::new(store),
            description: dir.display().to_string(),
            remote: false,
        })
    }

    /// `file://`, `s3://`, `gs://`, `az://` (and the other Azure forms object_store knows);
    /// cloud credentials come from the usual environment variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`).
    pub fn from_url(text: &str) -> Result<Self> {
        let url = Url::parse(text).map_err(|e| {
            failure(
                FailureKind::Usage,
                format!("invalid object store URL {text:?}: {e}"),
            )
        })?;
        let store: Arc<dyn ObjectStore> = match url.scheme() {
            "file" => {
                let path = url.to_file_path().map_err(|_| {
                    failure(FailureKind::Usage, format!("invalid file URL {text:?}"))
                })?;
                return Self::local(&path);
            }
            "s3" | "s3a" => Arc::new(
                object_store::aws::AmazonS3Builder::from_env()
                    .with_url(text)
                    .build()
                    .with_context(|| format!("cannot configure S3 store {text}"))?,
            ),
            "gs" => Arc::new(
                object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_url(text)
                    .build()
                    .with_context(|| format!("cannot configure GCS store {text}"))?,
            ),
            "az" | "azure" | "abfs" | "abfss" | "adl" => Arc::new(
                object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_url(text)
                    .build()
                    .with_context(|| format!("cannot configure Azure store {text}"))?,
            ),
            other => {
                return Err(failure(
                    FailureKind::Usage,
                    format!(
                        "unsupported object store scheme {other:?} in {text:?}; use file://, s3://, gs:// or az://"
                    ),
                ));
            }
        };
        let prefix = url.path().trim_matches('/');
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            store
        } else {
            Arc::new(PrefixStore::new(store, prefix))
        };
        Ok(Self {
            store,
            description: text.to_string(),
            remote: url.scheme() != "file",
        })
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    /// Whether the store is reached over a network (not a local directory).
    pub fn is_remote(&self) -> bool {
        self.remote
    }

    pub fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    pub async fn get(&self, key: &str) -> Result<Bytes, object_store::Error> {
        let result = self.store.get(&ObjectPath::from(key)).await?;
        result.bytes().await
    }

    /// These byte ranges of an object, in the order asked (a remote store fetches them at
    /// once, nearby ones as one request).
    pub async fn get_ranges(
        &self,
        key: &str,
        ranges: &[std::ops::Range<u64>],
    ) -> Result<Vec<Bytes>, object_store::Error> {
        self.store.get_ranges(&ObjectPath::from(key), ranges).await
    }

    /// An object's size in bytes.
    pub async fn size(&self, key: &str) -> Result<u64, object_store::Error> {
        Ok(self.store.head(&ObjectPath::from(key)).await?.size)
    }

    pub async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        self.store
            .put(&ObjectPath::from(key), data.into())
            .await
            .with_context(|| format!("cannot write {key} to {}", self.description))?;
        Ok(())
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.store.delete(&ObjectPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => {
                Err(e).with_context(|| format!("cannot delete {key} from {}", self.description))
            }
        }
    }
}
