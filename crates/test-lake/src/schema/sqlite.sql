-- The embedded lake: Micromegas's three metadata tables in SQLite.
-- UUIDs are canonical lowercase text; times are RFC 3339 UTC text with microseconds
-- (e.g. 2026-11-27T12:00:00.123456Z); tags are a JSON array of strings; properties are a
-- JSON array of {"key": ..., "value": ...} objects (the shape of PostgreSQL's array_to_json).
CREATE TABLE IF NOT EXISTS processes (
    process_id TEXT,
    exe TEXT,
    username TEXT,
    realname TEXT,
    computer TEXT,
    distro TEXT,
    cpu_brand TEXT,
    tsc_frequency INTEGER,
    start_time TEXT,
    start_ticks INTEGER,
    insert_time TEXT,
    parent_process_id TEXT,
    properties TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS processes_id ON processes(process_id);
CREATE TABLE IF NOT EXISTS streams (
    stream_id TEXT,
    process_id TEXT,
    dependencies_metadata BLOB,
    objects_metadata BLOB,
    tags TEXT,
    properties TEXT,
    insert_time TEXT,
    format TEXT NOT NULL DEFAULT 'micromegas-transit'
);
CREATE UNIQUE INDEX IF NOT EXISTS streams_id ON streams(stream_id);
CREATE INDEX IF NOT EXISTS streams_process ON streams(process_id);
CREATE TABLE IF NOT EXISTS blocks (
    block_id TEXT,
    stream_id TEXT,
    process_id TEXT,
    begin_time TEXT,
    end_time TEXT,
    begin_ticks INTEGER,
    end_ticks INTEGER,
    nb_objects INTEGER,
    object_offset INTEGER,
    payload_size INTEGER,
    insert_time TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS blocks_id ON blocks(block_id);
CREATE INDEX IF NOT EXISTS blocks_process ON blocks(process_id);
CREATE INDEX IF NOT EXISTS blocks_stream ON blocks(stream_id);
