//! The three requests the plugin sends (`InsertProcessRequest.cpp`, `InsertStreamRequest.cpp`,
//! `InsertBlockRequest.h`) and what Micromegas's ingestion server stores for each
//! (`rust/ingestion/src/web_ingestion_service.rs`: `insert_process`, `insert_stream`,
//! `insert_block`), written into an embedded lake with write-perfetto's `LakeWriter`.

use anyhow::{Context, Result};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use ciborium::Value;
use micromegas_telemetry::block_wire_format;
use micromegas_telemetry::stream_info::StreamInfo;
use micromegas_telemetry::wire_format::encode_cbor;
use micromegas_tracing::prelude::ProcessInfo;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::io::Write;
use uuid::Uuid;
use write_perfetto::lake::rows::{BlockRow, ProcessRow, StreamRow, StreamTypes, TRANSIT_FORMAT};
use write_perfetto_test_lake::writer::LakeWriter;

use crate::plugin::Udt;

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (text(k), v)).collect())
}

fn string_map(pairs: &[(String, String)]) -> Value {
    Value::Map(pairs.iter().map(|(k, v)| (text(k), text(v))).collect())
}

fn cbor(value: &Value) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(value, &mut out)?;
    Ok(out)
}

/// `FDateTime::ToIso8601()` (`FormatTime.cpp`): UTC, milliseconds.
pub fn iso8601(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// `FormatContainerMetadata` (`InsertStreamRequest.cpp`): name, size, is_reference, members.
fn udts_value(udts: &[Udt]) -> Value {
    Value::Array(
        udts.iter()
            .map(|udt| {
                map(vec![
                    ("name", text(udt.name)),
                    ("size", Value::Integer(udt.size.into())),
                    ("is_reference", Value::Bool(udt.is_reference)),
                    (
                        "members",
                        Value::Array(
                            udt.members
                                .iter()
                                .map(|m| {
                                    map(vec![
                                        ("name", text(m.name)),
                                        ("type_name", text(m.type_name)),
                                        ("offset", Value::Integer(m.offset.into())),
                                        ("size", Value::Integer(m.size.into())),
                                        ("is_reference", Value::Bool(m.is_reference)),
                                    ])
                                })
                                .collect(),
                        ),
                    ),
                ])
            })
            .collect(),
    )
}

/// `CompressBuffer` (`InsertBlockRequest.cpp`): one LZ4 frame.
pub fn compress(data: &[u8]) -> Result<Vec<u8>> {
    let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
    encoder.write_all(data)?;
    Ok(encoder.finish()?)
}

pub struct ProcessRequest {
    pub process_id: Uuid,
    pub exe: String,
    pub username: String,
    pub computer: String,
    pub distro: String,
    pub cpu_brand: String,
    pub tsc_frequency: i64,
    pub start_time: DateTime<Utc>,
    pub start_ticks: i64,
    pub properties: Vec<(String, String)>,
}

/// `FormatInsertProcessRequest`: `realname` repeats the user name; `parent_process_id` is an
/// empty string outside editor builds.
pub fn insert_process_body(p: &ProcessRequest) -> Result<Vec<u8>> {
    cbor(&map(vec![
        ("process_id", text(&p.process_id.to_string())),
        ("parent_process_id", text("")),
        ("exe", text(&p.exe)),
        ("username", text(&p.username)),
        ("realname", text(&p.username)),
        ("computer", text(&p.computer)),
        ("distro", text(&p.distro)),
        ("cpu_brand", text(&p.cpu_brand)),
        ("tsc_frequency", Value::Integer(p.tsc_frequency.into())),
        ("start_time", text(&iso8601(&p.start_time))),
        ("start_ticks", Value::Integer(p.start_ticks.into())),
        ("properties", string_map(&p.properties)),
    ]))
}

/// `FormatInsertStreamRequest`.
pub fn insert_stream_body(
    stream_id: Uuid,
    process_id: Uuid,
    dependencies: &[Udt],
    objects: &[Udt],
    tags: &[&str],
    properties: &[(String, String)],
) -> Result<Vec<u8>> {
    cbor(&map(vec![
        ("stream_id", text(&stream_id.to_string())),
        ("process_id", text(&process_id.to_string())),
        ("dependencies_metadata", udts_value(dependencies)),
        ("objects_metadata", udts_value(objects)),
        ("tags", Value::Array(tags.iter().map(|t| text(t)).collect())),
        ("properties", string_map(properties)),
    ]))
}

pub struct BlockRequest {
    pub block_id: Uuid,
    pub stream_id: Uuid,
    pub process_id: Uuid,
    pub begin_time: DateTime<Utc>,
    pub begin_ticks: i64,
    pub end_time: DateTime<Utc>,
    pub end_ticks: i64,
    pub dependencies: Vec<u8>,
    pub objects: Vec<u8>,
    pub nb_objects: i64,
    pub object_offset: i64,
}

/// `FormatBlockRequest`: the block id is `FGuid::NewGuid().ToString(DigitsWithHyphens)`,
/// upper case; ticks are relative to the process start.
pub fn insert_block_body(b: &BlockRequest) -> Result<Vec<u8>> {
    cbor(&map(vec![
        ("block_id", text(&b.block_id.to_string().to_uppercase())),
        ("stream_id", text(&b.stream_id.to_string())),
        ("process_id", text(&b.process_id.to_string())),
        ("begin_time", text(&iso8601(&b.begin_time))),
        ("begin_ticks", Value::Integer(b.begin_ticks.into())),
        ("end_time", text(&iso8601(&b.end_time))),
        ("end_ticks", Value::Integer(b.end_ticks.into())),
        (
            "payload",
            map(vec![
                ("dependencies", Value::Bytes(compress(&b.dependencies)?)),
                ("objects", Value::Bytes(compress(&b.objects)?)),
            ]),
        ),
        ("nb_objects", Value::Integer(b.nb_objects.into())),
        ("object_offset", Value::Integer(b.object_offset.into())),
    ]))
}

fn sorted(map: &HashMap<String, String>) -> Vec<(String, String)> {
    map.iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .collect()
}

/// The ingestion server's side: decodes each body with the server's own types and stores the
/// rows and the payload as it does. `insert_time` is the server clock, given by the caller so
/// that the fixture is the same on every run.
pub struct Server {
    pub writer: LakeWriter,
}

impl Server {
    pub async fn insert_process(&self, body: &[u8], insert_time: DateTime<Utc>) -> Result<()> {
        let p: ProcessInfo = ciborium::from_reader(body).context("parsing ProcessInfo")?;
        self.writer
            .insert_process(&ProcessRow {
                process_id: p.process_id,
                exe: p.exe,
                username: p.username,
                realname: p.realname,
                computer: p.computer,
                distro: p.distro,
                cpu_brand: p.cpu_brand,
                tsc_frequency: p.tsc_frequency,
                start_time: p.start_time,
                start_ticks: p.start_ticks,
                insert_time,
                parent_process_id: p.parent_process_id,
                properties: sorted(&p.properties),
            })
            .await
    }

    pub async fn insert_stream(&self, body: &[u8], insert_time: DateTime<Utc>) -> Result<()> {
        let info: StreamInfo = ciborium::from_reader(body).context("parsing StreamInfo")?;
        self.writer
            .insert_stream(
                &StreamRow {
                    stream_id: info.stream_id,
                    process_id: info.process_id,
                    tags: info.tags.clone(),
                    properties: sorted(&info.properties),
                    insert_time,
                    format: TRANSIT_FORMAT.to_string(),
                },
                &StreamTypes {
                    dependencies_metadata: encode_cbor(&info.dependencies_metadata)?.into(),
                    objects_metadata: encode_cbor(&info.objects_metadata)?.into(),
                },
            )
            .await
    }

    /// Returns the stored payload's size.
    pub async fn insert_block(&self, body: &[u8], insert_time: DateTime<Utc>) -> Result<usize> {
        let block: block_wire_format::Block =
            ciborium::from_reader(body).context("parsing block")?;
        let payload = encode_cbor(&block.payload)?;
        let parse = |t: &str| -> Result<DateTime<Utc>> {
            Ok(DateTime::parse_from_rfc3339(t)
                .with_context(|| format!("parsing {t:?}"))?
                .with_timezone(&Utc))
        };
        let row = BlockRow {
            block_id: block.block_id,
            stream_id: block.stream_id,
            process_id: block.process_id,
            begin_time: parse(&block.begin_time)?,
            end_time: parse(&block.end_time)?,
            begin_ticks: block.begin_ticks,
            end_ticks: block.end_ticks,
            nb_objects: block.nb_objects,
            object_offset: block.object_offset,
            payload_size: payload.len() as i64,
            insert_time,
        };
        let size = payload.len();
        self.writer.insert_block(&row, Bytes::from(payload)).await?;
        Ok(size)
    }
}
