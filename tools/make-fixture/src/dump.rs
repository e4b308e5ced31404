//! `MAKE_FIXTURE_DUMP=FILE`: a text listing of every span event written to the lake, decoded
//! from the stored bytes (stream metadata columns and block payload) with Micromegas's own
//! transit parser. A reference to check a reader against, and the source of README's facts.

use anyhow::{Context, Result};
use micromegas_telemetry::block_wire_format::BlockPayload;
use micromegas_telemetry::compression::decompress;
use micromegas_transit::value::{Object, Value};
use micromegas_transit::{
    CustomReaderMap, UserDefinedType, parse_object_buffer, read_dependencies,
};
use std::io::Write;

fn text(value: &Value<'_>) -> String {
    match value {
        Value::String(s) => (*s).to_string(),
        Value::Object(o) => match o.get_ref("name") {
            Ok(name) => text(name),
            Err(_) => o.type_name.to_string(),
        },
        Value::U8(v) => v.to_string(),
        Value::U32(v) => v.to_string(),
        Value::U64(v) => v.to_string(),
        Value::I64(v) => v.to_string(),
        Value::F64(v) => v.to_string(),
        Value::Bytes(b) => format!("{} bytes", b.len()),
        Value::None => "none".to_string(),
    }
}

fn event_line(o: &Object<'_>) -> String {
    let mut line = o.type_name.to_string();
    for (key, value) in o.members {
        let key = match *key {
            "thread_span_desc" | "span_desc" | "thread_span_location" | "span_location" => {
                if matches!(*key, "thread_span_desc" | "span_desc") {
                    "name"
                } else {
                    continue;
                }
            }
            k => k,
        };
        line.push_str(&format!(" {key}={}", text(value)));
    }
    line
}

pub fn dump_block(
    out: &mut std::fs::File,
    header: &str,
    dependencies_metadata: &[u8],
    objects_metadata: &[u8],
    payload: &[u8],
) -> Result<()> {
    let deps_udts: Vec<UserDefinedType> =
        ciborium::from_reader(dependencies_metadata).context("parsing dependencies_metadata")?;
    let obj_udts: Vec<UserDefinedType> =
        ciborium::from_reader(objects_metadata).context("parsing objects_metadata")?;
    let payload: BlockPayload = ciborium::from_reader(payload).context("parsing the payload")?;
    let deps_buffer = decompress(&payload.dependencies)?;
    let objs_buffer = decompress(&payload.objects)?;
    let bump = bumpalo::Bump::new();
    let readers = CustomReaderMap::new();
    let deps = read_dependencies(&bump, &readers, &deps_udts, &deps_buffer)?;
    let mut lines = vec![];
    parse_object_buffer(&bump, &readers, &deps, &obj_udts, &objs_buffer, |value| {
        match value {
            Value::Object(o) => lines.push(event_line(o)),
            other => lines.push(format!("{other:?}")),
        }
        Ok(true)
    })?;
    for line in lines {
        writeln!(out, "{header} {line}")?;
    }
    Ok(())
}
