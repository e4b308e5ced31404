-- Micromegas data-lake schema, version 8: version 7 (postgres_v7.sql, repeated here so
-- this file stands alone) plus a per-row `audience` column on processes, streams and
-- blocks (Micromegas PR #1531, "AbAC Stage 5b": each row is stamped with its writer's
-- audience). Rows written before the upgrade, or by older producers, hold NULL there.
-- Column order: `audience` is appended last on each table, after the v7 columns.
-- TEXT is assumed: the v8 migration's exact declared type was not available to check.
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

ALTER TABLE processes ADD COLUMN audience TEXT;
ALTER TABLE streams ADD COLUMN audience TEXT;
ALTER TABLE blocks ADD COLUMN audience TEXT;

CREATE TABLE migration(version INTEGER);
INSERT INTO migration VALUES(8);
