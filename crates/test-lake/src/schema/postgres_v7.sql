-- Micromegas data-lake schema, version 7, as the ingestion service leaves a fresh
-- PostgreSQL database after running its migrations (rust/ingestion: sql_telemetry_db.rs
-- creates v1, sql_migration.rs upgrades it to v7). Only what write-perfetto reads is
-- reproduced: the property type, the three metadata tables with their indexes, and the
-- `migration` version table. The v5-v7 API-key and audience-grant tables are left out.
--
-- Column order is the physical order the migrations produce (v2 appends
-- blocks.insert_time, v4 appends streams.format), so `SELECT *` / positional
-- `INSERT ... VALUES` behave as in production. No column is NOT NULL except
-- streams.format. Indexes are the ones present after v3 (which replaced the
-- non-unique id indexes by unique ones); note there is no index on blocks(process_id).
--
-- Run once, on an empty database.

CREATE TYPE micromegas_property AS (key TEXT, value TEXT);

CREATE TABLE processes(
    process_id UUID,
    exe VARCHAR(255),
    username VARCHAR(255),
    realname VARCHAR(255),
    computer VARCHAR(255),
    distro VARCHAR(255),
    cpu_brand VARCHAR(255),
    tsc_frequency BIGINT,
    start_time TIMESTAMPTZ,
    start_ticks BIGINT,
    insert_time TIMESTAMPTZ,
    parent_process_id UUID,
    properties micromegas_property[]
);
CREATE UNIQUE INDEX processes_process_id_unique ON processes(process_id);
CREATE INDEX parent_process_id ON processes(parent_process_id);
CREATE INDEX process_start_time ON processes(start_time);
CREATE INDEX process_insert_time ON processes(insert_time);

CREATE TABLE streams(
    stream_id UUID,
    process_id UUID,
    dependencies_metadata BYTEA,
    objects_metadata BYTEA,
    tags TEXT[],
    properties micromegas_property[],
    insert_time TIMESTAMPTZ,
    format TEXT NOT NULL DEFAULT 'micromegas-transit'
);
CREATE UNIQUE INDEX streams_stream_id_unique ON streams(stream_id);
CREATE INDEX stream_process_id ON streams(process_id);
CREATE INDEX stream_insert_time ON streams(insert_time);

-- begin_ticks and end_ticks are relative to processes.start_ticks.
CREATE TABLE blocks(
    block_id UUID,
    stream_id UUID,
    process_id UUID,
    begin_time TIMESTAMPTZ,
    begin_ticks BIGINT,
    end_time TIMESTAMPTZ,
    end_ticks BIGINT,
    nb_objects INT,
    object_offset BIGINT,
    payload_size BIGINT,
    insert_time TIMESTAMPTZ
);
CREATE UNIQUE INDEX blocks_block_id_unique ON blocks(block_id);
CREATE INDEX block_stream_id ON blocks(stream_id);
CREATE INDEX block_begin_time ON blocks(begin_time);
CREATE INDEX block_end_time ON blocks(end_time);
CREATE INDEX block_insert_time ON blocks(insert_time);

CREATE TABLE migration(version INTEGER);
INSERT INTO migration VALUES(7);
