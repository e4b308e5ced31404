//! The Unreal fixture lake (`fixtures/unreal-lake`, written by `tools/make-unreal-fixture`)
//! and the spans it must export (`fixtures/unreal-expected.json`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use sqlx::Row;

pub fn unreal_fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/unreal-lake")
}

pub fn unreal_expected() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/unreal-expected.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// A private copy of the Unreal lake (only `lake.db` and `blobs/`).
pub fn unreal_fixture_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        unreal_fixture_dir().join("lake.db"),
        dir.path().join("lake.db"),
    )
    .unwrap();
    super::lake::copy_dir(
        &unreal_fixture_dir().join("blobs"),
        &dir.path().join("blobs"),
    );
    dir
}

/// One stored block of any stream (cpu, log or metrics), read straight from the tables.
pub struct StoredBlock {
    pub process_id: String,
    pub stream_id: String,
    pub block_id: String,
    pub tags: Vec<String>,
    pub dependencies_metadata: Vec<u8>,
    pub objects_metadata: Vec<u8>,
    pub nb_objects: i64,
    pub payload: Vec<u8>,
}

/// Every block of the lake in `dir`, in stream then object order.
pub fn all_blocks(dir: &Path) -> Vec<StoredBlock> {
    super::lake::runtime().block_on(async {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.join("lake.db"))
            .read_only(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        let rows = sqlx::query(
            "SELECT b.process_id, b.stream_id, b.block_id, s.tags, s.dependencies_metadata, \
             s.objects_metadata, b.nb_objects FROM blocks b JOIN streams s \
             ON s.stream_id = b.stream_id ORDER BY b.stream_id, b.object_offset",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        rows.into_iter()
            .map(|row| {
                let process_id: String = row.get(0);
                let stream_id: String = row.get(1);
                let block_id: String = row.get(2);
                let tags: String = row.get(3);
                let payload = std::fs::read(
                    dir.join("blobs")
                        .join(&process_id)
                        .join(&stream_id)
                        .join(&block_id),
                )
                .unwrap();
                StoredBlock {
                    process_id,
                    stream_id,
                    block_id,
                    tags: serde_json::from_str(&tags).unwrap(),
                    dependencies_metadata: row.get(4),
                    objects_metadata: row.get(5),
                    nb_objects: row.get(6),
                    payload,
                }
            })
            .collect()
    })
}
