//! The same lake in a throwaway PostgreSQL cluster (Micromegas's own schema) and in SQLite
//! reads the same and exports to the same bytes.

mod support;

use support::lake::{copy_to_postgres, fixture_copy, open_embedded, process_ids, run, runtime};
use support::pg::PgCluster;
use write_perfetto::lake::MetadataReads;
use write_perfetto::lake::rows::{LOG_STREAMS, METRIC_STREAMS, THREAD_STREAMS};
use write_perfetto::lake::{Lake, LakeLocation};

#[test]
fn a_postgresql_copy_of_the_fixture_lake_reads_and_exports_identically() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("fixture_copy");
    let lake_dir = fixture_copy();
    let blobs = format!("file://{}", lake_dir.path().display());
    runtime().block_on(async {
        copy_to_postgres(lake_dir.path(), &url).await;
        let sqlite = open_embedded(lake_dir.path()).await;
        let pg = Lake::open(LakeLocation::Postgres {
            url: url.clone(),
            blobs_url: blobs.clone(),
        })
        .await
        .unwrap();
        assert_eq!(
            sqlite.metadata.process_summaries(100).await.unwrap(),
            pg.metadata.process_summaries(100).await.unwrap()
        );
        for id in process_ids(&sqlite).await {
            let id = uuid::Uuid::parse_str(&id).unwrap();
            assert_eq!(
                sqlite.metadata.process(&id).await.unwrap(),
                pg.metadata.process(&id).await.unwrap()
            );
            for kind in [THREAD_STREAMS, LOG_STREAMS, METRIC_STREAMS] {
                let streams = sqlite.metadata.streams(&id, kind).await.unwrap();
                assert!(!streams.is_empty(), "{id} has {} streams", kind.tag);
                assert_eq!(streams, pg.metadata.streams(&id, kind).await.unwrap());
                assert_eq!(
                    sqlite.metadata.blocks(&id, kind).await.unwrap(),
                    pg.metadata.blocks(&id, kind).await.unwrap()
                );
            }
            assert_eq!(
                sqlite.metadata.children(&id).await.unwrap(),
                pg.metadata.children(&id).await.unwrap()
            );
        }
    });
    let out = tempfile::tempdir().unwrap();
    let dir = lake_dir.path().to_str().unwrap();
    let listed = |args: &[&str]| {
        let o = run(args, out.path());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        o.stdout
    };
    let since = ["--since", "2026-11-30T13:00:27Z"];
    for extra in [&[][..], &["--tree"], &["--exe", "Make-Fixture"], &since] {
        let sqlite_args = ["processes", "--json", "--lake", dir];
        let pg_args = ["processes", "--json", "--lake", &url, "--blobs", &blobs];
        assert_eq!(
            listed(&[&sqlite_args[..], extra].concat()),
            listed(&[&pg_args[..], extra].concat())
        );
    }
    let ids: Vec<serde_json::Value> =
        serde_json::from_slice(&listed(&["processes", "--json", "--lake", dir])).unwrap();
    for p in ids {
        let id = p["process_id"].as_str().unwrap();
        for extra in [&[][..], &["--children"]] {
            let from_sqlite = listed(&[&[id, "--lake", dir, "-o", "-"][..], extra].concat());
            let pg_args = [id, "--lake", &url, "--blobs", &blobs, "-o", "-"];
            let from_pg = listed(&[&pg_args[..], extra].concat());
            assert!(!from_sqlite.is_empty());
            assert!(
                from_sqlite == from_pg,
                "process {id} {extra:?}: PostgreSQL and SQLite traces differ"
            );
        }
    }
    // The environment variables Micromegas users already have are the defaults.
    let from_env = support::lake::write_perfetto()
        .args(["processes", "--json"])
        .env("MICROMEGAS_SQL_CONNECTION_STRING", &url)
        .env("MICROMEGAS_OBJECT_STORE_URI", &blobs)
        .output()
        .unwrap();
    assert_eq!(
        from_env.stdout,
        listed(&["processes", "--json", "--lake", dir])
    );
}

#[test]
fn the_v8_schema_with_audience_columns_is_read_the_same() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("v8_copy");
    let lake_dir = fixture_copy();
    let blobs = format!("file://{}", lake_dir.path().display());
    runtime().block_on(copy_to_postgres(lake_dir.path(), &url));
    cluster.psql("v8_copy", "ALTER TABLE processes ADD COLUMN audience TEXT; ALTER TABLE streams ADD COLUMN audience TEXT; ALTER TABLE blocks ADD COLUMN audience TEXT;");
    let out = tempfile::tempdir().unwrap();
    let v8 = run(
        &["processes", "--json", "--lake", &url, "--blobs", &blobs],
        out.path(),
    );
    let sqlite = run(
        &[
            "processes",
            "--json",
            "--lake",
            lake_dir.path().to_str().unwrap(),
        ],
        out.path(),
    );
    assert!(
        v8.status.success(),
        "{}",
        String::from_utf8_lossy(&v8.stderr)
    );
    assert_eq!(v8.stdout, sqlite.stdout);
}
