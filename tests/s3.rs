//! A PostgreSQL lake whose payloads live in a real S3-compatible server (moto): the same
//! processes, the same bytes as the embedded lake, and the partitions kept in S3 are reused.

mod support;

use std::path::Path;
use std::process::Output;

use support::lake::{
    copy_to_postgres, fixture_copy, run, runtime, succeeded, summary, write_perfetto,
};
use support::pg::PgCluster;
use support::s3::S3Server;
use write_perfetto::lake::LakeLocation;
use write_perfetto::lake::{Lake, MetadataDb};
use write_perfetto::partitions::catalog::Catalog;

const BUCKET: &str = "micromegas-lake";

/// Runs the binary with the S3 server's `AWS_*` settings (on the child only).
fn run_s3(s3: &S3Server, args: &[&str], cwd: &Path) -> Output {
    let mut command = write_perfetto();
    s3.configure(&mut command);
    command
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run write-perfetto")
}

#[test]
fn a_postgresql_lake_with_payloads_in_s3_exports_the_same_bytes_cold_and_warm() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("s3_lake");
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET);
    let lake_dir = fixture_copy();
    let uploaded = runtime().block_on(async {
        copy_to_postgres(lake_dir.path(), &url).await;
        s3.upload_dir(BUCKET, "lake/blobs", &lake_dir.path().join("blobs"))
            .await
    });
    assert!(uploaded > 0);
    let blobs = format!("s3://{BUCKET}/lake");
    let work = tempfile::tempdir().unwrap();
    let dir = lake_dir.path().to_str().unwrap();

    // The same listing as the embedded lake.
    let embedded_list = succeeded(run(&["processes", "--json", "--lake", dir], work.path())).stdout;
    let s3_list = succeeded(run_s3(
        &s3,
        &["processes", "--json", "--lake", &url, "--blobs", &blobs],
        work.path(),
    ))
    .stdout;
    assert_eq!(embedded_list, s3_list);
    let processes: Vec<serde_json::Value> = serde_json::from_slice(&embedded_list).unwrap();
    assert!(processes.len() >= 2);

    let mut built_total = 0;
    for process in &processes {
        let id = process["process_id"].as_str().unwrap();
        let reference = work.path().join(format!("{id}.embedded.pftrace"));
        succeeded(run(
            &[id, "--lake", dir, "-o", reference.to_str().unwrap()],
            work.path(),
        ));
        let reference = std::fs::read(&reference).unwrap();
        assert!(!reference.is_empty());

        for (pass, cold) in [("cold", true), ("warm", false)] {
            let out = work.path().join(format!("{id}.s3.{pass}.pftrace"));
            let output = succeeded(run_s3(
                &s3,
                &[
                    id,
                    "--lake",
                    &url,
                    "--blobs",
                    &blobs,
                    "--json",
                    "-o",
                    out.to_str().unwrap(),
                ],
                work.path(),
            ));
            let s = summary(&output);
            let (reused, built) = (
                s["partitions_reused"].as_u64().unwrap(),
                s["partitions_built"].as_u64().unwrap(),
            );
            if cold {
                assert_eq!(reused, 0, "{id} {pass}: {s}");
                assert!(built > 0, "{id} {pass}: {s}");
                assert!(s["blocks_read"].as_u64().unwrap() > 0, "{s}");
                built_total += built;
            } else {
                assert!(reused > 0, "{id} {pass}: {s}");
                assert_eq!(built, 0, "{id} {pass}: {s}");
                assert_eq!(s["blocks_read"].as_u64().unwrap(), 0, "{s}");
            }
            let bytes = std::fs::read(&out).unwrap();
            assert!(
                bytes == reference,
                "{id} {pass}: the S3 export differs from the embedded one"
            );
            assert_eq!(s["bytes"].as_u64().unwrap(), reference.len() as u64);
        }
        // The trace on stdout is the same too.
        let piped = succeeded(run_s3(
            &s3,
            &[id, "--lake", &url, "--blobs", &blobs, "-o", "-"],
            work.path(),
        ));
        assert!(piped.stdout == reference, "{id}: -o - differs");
    }

    // The partitions are in S3 under the lake's prefix, one object per live catalog row, and
    // the catalog is a table of the lake's database.
    runtime().block_on(async {
        let stored = s3.list(BUCKET, "lake/write-perfetto/partitions").await;
        let lake = Lake::open(LakeLocation::Postgres {
            url: url.clone(),
            blobs_url: format!("file://{}", lake_dir.path().display()),
        })
        .await
        .unwrap();
        let MetadataDb::Postgres(pool) = &lake.metadata else {
            panic!("a PostgreSQL lake")
        };
        let catalog = Catalog::open_postgres(pool.clone()).await.unwrap();
        let live: Vec<String> = catalog
            .all_rows()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.retired_us.is_none())
            .map(|r| format!("lake/{}", r.file_key))
            .collect();
        assert_eq!(live.len() as u64, built_total);
        let mut live_sorted = live.clone();
        live_sorted.sort();
        assert_eq!(stored, live_sorted);
    });
    // Nothing but the traces in the working directory.
    for entry in std::fs::read_dir(work.path()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(name.ends_with(".pftrace"), "unexpected file {name}");
    }
}
