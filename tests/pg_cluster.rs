//! The throwaway PostgreSQL cluster of `tests/support/pg.rs`, and the Micromegas schema
//! files of `crates/test-lake/src/schema/` applied to it.

mod support;

use std::path::PathBuf;
use std::time::Instant;

use support::pg::PgCluster;

fn schema_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("crates/test-lake/src/schema")
        .join(name)
}

/// The (column, type) pairs of a table, in column order, as `information_schema` tells them.
fn columns(pg: &PgCluster, db: &str, table: &str) -> Vec<(String, String)> {
    pg.psql(
        db,
        &format!(
            "SELECT column_name, CASE WHEN data_type IN ('ARRAY', 'USER-DEFINED') THEN udt_name \
             WHEN character_maximum_length IS NOT NULL \
             THEN data_type || '(' || character_maximum_length || ')' ELSE data_type END \
             FROM information_schema.columns WHERE table_name = '{table}' ORDER BY ordinal_position"
        ),
    )
    .lines()
    .map(|line| {
        let (name, ty) = line.split_once('|').expect("name|type");
        (name.to_string(), ty.to_string())
    })
    .collect()
}

#[test]
fn v7_schema_and_properties_as_json() {
    let t0 = Instant::now();
    let pg = PgCluster::start();
    eprintln!(
        "cluster started on port {} in {:?}",
        pg.port(),
        t0.elapsed()
    );

    let url = pg.create_database("lake_v7");
    assert_eq!(
        url,
        format!("postgres://postgres@127.0.0.1:{}/lake_v7", pg.port())
    );
    pg.psql_file("lake_v7", &schema_file("postgres_v7.sql"));

    assert_eq!(pg.psql("lake_v7", "SELECT version FROM migration"), "7\n");
    let processes = columns(&pg, "lake_v7", "processes");
    assert_eq!(processes.len(), 13);
    assert_eq!(processes[0], ("process_id".into(), "uuid".into()));
    assert_eq!(
        processes[1],
        ("exe".into(), "character varying(255)".into())
    );
    assert_eq!(processes[7], ("tsc_frequency".into(), "bigint".into()));
    assert_eq!(
        processes[8],
        ("start_time".into(), "timestamp with time zone".into())
    );
    assert_eq!(
        processes[12],
        ("properties".into(), "_micromegas_property".into())
    );
    let streams = columns(&pg, "lake_v7", "streams");
    assert_eq!(
        streams.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        [
            "stream_id",
            "process_id",
            "dependencies_metadata",
            "objects_metadata",
            "tags",
            "properties",
            "insert_time",
            "format"
        ]
    );
    assert_eq!(streams[4].1, "_text");
    let blocks = columns(&pg, "lake_v7", "blocks");
    assert_eq!(blocks.len(), 11);
    assert_eq!(blocks[7], ("nb_objects".into(), "integer".into()));
    assert_eq!(
        blocks[10],
        ("insert_time".into(), "timestamp with time zone".into())
    );
    assert!(
        !columns(&pg, "lake_v7", "processes")
            .iter()
            .any(|(n, _)| n == "audience")
    );

    // A process with properties, one of them with an empty value, one NULL, and characters
    // JSON must escape.
    pg.psql(
        "lake_v7",
        "INSERT INTO processes (process_id, exe, tsc_frequency, start_time, start_ticks, properties) \
         VALUES ('8f6a1b52-3c3e-4f0b-9a55-0d6f5a1c2b3e', '/usr/bin/app', 0, \
                 '2024-05-01 12:00:00.123456+00', 1000, \
                 ARRAY[ROW('version', '1.2.3')::micromegas_property, \
                       ROW('empty', '')::micromegas_property, \
                       ROW('null', NULL)::micromegas_property, \
                       ROW('quote\"back\\slash', 'tab\there é')::micromegas_property])",
    );
    let json = pg.psql(
        "lake_v7",
        "SELECT array_to_json(properties)::text FROM processes \
         WHERE process_id = '8f6a1b52-3c3e-4f0b-9a55-0d6f5a1c2b3e'",
    );
    assert_eq!(
        json.trim_end_matches('\n'),
        r#"[{"key":"version","value":"1.2.3"},{"key":"empty","value":""},{"key":"null","value":null},{"key":"quote\"back\\slash","value":"tab\there é"}]"#
    );

    // A stream defaults to the transit format; an empty property array is `[]`, a NULL one NULL.
    pg.psql(
        "lake_v7",
        "INSERT INTO streams (stream_id, process_id, tags, properties) VALUES \
           ('00000000-0000-0000-0000-000000000001', '8f6a1b52-3c3e-4f0b-9a55-0d6f5a1c2b3e', \
            ARRAY['cpu'], ARRAY[]::micromegas_property[]), \
           ('00000000-0000-0000-0000-000000000002', '8f6a1b52-3c3e-4f0b-9a55-0d6f5a1c2b3e', \
            ARRAY['log'], NULL)",
    );
    assert_eq!(
        pg.psql(
            "lake_v7",
            "SELECT format, coalesce(array_to_json(properties)::text, 'NULL') FROM streams ORDER BY stream_id"
        ),
        "micromegas-transit|[]\nmicromegas-transit|NULL\n"
    );
}

#[test]
fn v8_schema_adds_audience_columns() {
    let pg = PgCluster::start();
    pg.create_database("lake_v8");
    pg.psql_file("lake_v8", &schema_file("postgres_v8.sql"));
    assert_eq!(pg.psql("lake_v8", "SELECT version FROM migration"), "8\n");

    let v8 = pg.psql(
        "lake_v8",
        "SELECT table_name, data_type, is_nullable FROM information_schema.columns \
         WHERE column_name = 'audience' ORDER BY table_name",
    );
    assert_eq!(
        v8,
        "blocks|text|YES\nprocesses|text|YES\nstreams|text|YES\n"
    );

    // Otherwise the same tables as v7, with `audience` last.
    pg.create_database("lake_v7");
    pg.psql_file("lake_v7", &schema_file("postgres_v7.sql"));
    for table in ["processes", "streams", "blocks"] {
        let mut v7 = columns(&pg, "lake_v7", table);
        v7.push(("audience".into(), "text".into()));
        assert_eq!(columns(&pg, "lake_v8", table), v7, "table {table}");
    }
}

#[test]
fn clusters_are_independent_and_cleaned_up() {
    let mut a = PgCluster::start();
    let b = PgCluster::start();
    assert_ne!(a.port(), b.port());
    a.create_database("only_in_a");
    let in_b = b.psql(
        "postgres",
        "SELECT count(*) FROM pg_database WHERE datname = 'only_in_a'",
    );
    assert_eq!(in_b, "0\n");

    let dir = a.dir().to_path_buf();
    a.stop();
    a.stop(); // idempotent
    assert!(std::net::TcpStream::connect(("127.0.0.1", a.port())).is_err());
    drop(a);
    assert!(!dir.exists(), "{} left behind", dir.display());
}
