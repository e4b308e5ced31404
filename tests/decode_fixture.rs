//! Our decoder against the format's own reference parser (micromegas-transit), block by block,
//! on the genuine fixture lake written by a real micromegas-tracing 0.33 program.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use micromegas_transit::value::{Object, Value};
use micromegas_transit::{
    CustomReaderMap, UserDefinedType, parse_object_buffer, read_dependencies,
};
use support::lake::{fixture_dir, open_embedded, runtime, thread_blocks_with_payloads};
use write_perfetto::decode::{EventPhase, EventScope, SpanEvent, StreamDecoder, decode_payload};

/// (type name, ticks, name, target, span id, parent span id, depth) as the reference reads it.
type Reference = (String, i64, String, String, u64, u64, u32);

fn reference_events(deps_meta: &[u8], objs_meta: &[u8], payload: &[u8]) -> Vec<Reference> {
    let dep_udts: Vec<UserDefinedType> = ciborium::de::from_reader(deps_meta).unwrap();
    let obj_udts: Vec<UserDefinedType> = ciborium::de::from_reader(objs_meta).unwrap();
    let buffers = decode_payload(payload).unwrap();
    let bump = bumpalo::Bump::new();
    let mut readers = CustomReaderMap::new();
    // Property sets need a custom reader in transit; only their id matters here.
    readers.insert(
        "PropertySetDependency".into(),
        Arc::new(
            |bump: &bumpalo::Bump,
             _: &UserDefinedType,
             _: &[UserDefinedType],
             _: &HashMap<u64, Value>,
             window: &[u8]| {
                let id = u64::from_le_bytes(window[..8].try_into().unwrap());
                let members =
                    bump.alloc_slice_copy(&[("id", Value::U64(id)), ("value", Value::U64(id))]);
                Ok(Value::Object(bump.alloc(Object {
                    type_name: "PropertySet",
                    members,
                })))
            },
        ),
    );
    let deps = read_dependencies(&bump, &readers, &dep_udts, &buffers.dependencies).unwrap();
    let mut out = Vec::new();
    parse_object_buffer(
        &bump,
        &readers,
        &deps,
        &obj_udts,
        &buffers.objects,
        |value| {
            let Value::Object(object) = value else {
                return Ok(true);
            };
            let desc = [
                "thread_span_desc",
                "span_desc",
                "thread_span_location",
                "span_location",
            ]
            .iter()
            .find_map(|m| object.get::<&Object>(m).ok())
            .expect("span events have a description");
            let name = object
                .get::<&str>("name")
                .or_else(|_| desc.get::<&str>("name"))
                .unwrap();
            out.push((
                object.type_name.to_string(),
                object.get::<i64>("time").unwrap(),
                name.to_string(),
                desc.get::<&str>("target").unwrap().to_string(),
                object.get::<u64>("span_id").unwrap_or(0),
                object.get::<u64>("parent_span_id").unwrap_or(0),
                object.get::<u32>("depth").unwrap_or(0),
            ));
            Ok(true)
        },
    )
    .unwrap();
    out
}

fn kind_of_type(type_name: &str) -> (EventScope, EventPhase) {
    let scope = if type_name.contains("Thread") {
        EventScope::Thread
    } else {
        EventScope::Async
    };
    let phase = if type_name.starts_with("Begin") {
        EventPhase::Begin
    } else {
        EventPhase::End
    };
    (scope, phase)
}

fn ours(event: &SpanEvent) -> (i64, String, String, u64, u64, u32) {
    (
        event.ticks,
        event.name.to_string(),
        event.target.to_string(),
        event.span_id,
        event.parent_span_id,
        event.depth,
    )
}

#[test]
fn every_fixture_block_decodes_exactly_as_the_reference_parser_reads_it() {
    runtime().block_on(async {
        let lake = open_embedded(&fixture_dir()).await;
        let mut per_type: BTreeMap<String, usize> = BTreeMap::new();
        let mut blocks_checked = 0;
        for (stream, block, payload) in thread_blocks_with_payloads(&lake).await {
            let decoder =
                StreamDecoder::new(&stream.dependencies_metadata, &stream.objects_metadata)
                    .unwrap();
            let decoded = decoder.decode_block(&payload).unwrap();
            let reference = reference_events(
                &stream.dependencies_metadata,
                &stream.objects_metadata,
                &payload,
            );
            assert_eq!(decoded.len(), reference.len(), "block {}", block.block_id);
            assert_eq!(
                decoded.len(),
                block.nb_objects as usize,
                "block {} nb_objects",
                block.block_id
            );
            for (mine, theirs) in decoded.iter().zip(&reference) {
                assert_eq!(
                    (mine.scope, mine.phase),
                    kind_of_type(&theirs.0),
                    "block {}",
                    block.block_id
                );
                assert_eq!(
                    ours(mine),
                    (
                        theirs.1,
                        theirs.2.clone(),
                        theirs.3.clone(),
                        theirs.4,
                        theirs.5,
                        theirs.6
                    )
                );
                *per_type.entry(theirs.0.clone()).or_default() += 1;
            }
            blocks_checked += 1;
        }
        assert!(
            blocks_checked >= 20,
            "fixture has ≥ 20 blocks, checked {blocks_checked}"
        );
        for must in [
            "BeginThreadSpanEvent",
            "EndThreadSpanEvent",
            "BeginAsyncSpanEvent",
            "EndAsyncSpanEvent",
        ] {
            assert!(
                per_type.get(must).copied().unwrap_or(0) > 0,
                "fixture has {must}: {per_type:?}"
            );
        }
        assert!(
            per_type.keys().any(|k| k.contains("Named")),
            "fixture has named spans: {per_type:?}"
        );
    });
}
