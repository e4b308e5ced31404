//! Records of older Rust producers, no longer written by micromegas-tracing 0.33 but still read
//! by Micromegas (a lake keeps them): `LogStringEvent` and `LogStringInteropEventV2`, whose
//! message is the rest of the record, in UTF-8. Built here after their readers in
//! micromegas-tracing's `parsing.rs`, with the 0.33 crate's dependency types.

use micromegas_tracing::event::{ExtractDeps, TracingBlock};
use micromegas_tracing::logs::LogBlock;
use micromegas_transit::HeterogeneousQueue;

use super::rust_producer::stream_metadata;
use super::{Buffer, TestBlock, decode_and_compare, envelope, le, member, udt};

type LogDeps = <<LogBlock as TracingBlock>::Queue as ExtractDeps>::DepsQueue;

const FMT: u64 = 0x5000;
const TARGET: u64 = 0x5100;
const MODULE: u64 = 0x5200;
const FILE: u64 = 0x5300;
const NET: u64 = 0x5400;
const DESC: u64 = 0x6000;

/// The 0.33 crate's log dependencies: `StaticString` (0), `StaticStringDependency` (1),
/// `LogMetadataRecord` (2: id, fmt_str, target, module_path, file, line u32, level u32).
fn dependencies(level: u32) -> Vec<u8> {
    let mut deps = Buffer::default();
    for (id, text) in [
        (FMT, "{}"),
        (TARGET, "old::target"),
        (MODULE, "old"),
        (FILE, "src/old.rs"),
        (NET, "net"),
    ] {
        deps.variable(0, le(&[&id.to_le_bytes(), text.as_bytes()]));
    }
    deps.fixed(
        2,
        le(&[
            &DESC.to_le_bytes(),
            &FMT.to_le_bytes(),
            &TARGET.to_le_bytes(),
            &MODULE.to_le_bytes(),
            &FILE.to_le_bytes(),
            &31u32.to_le_bytes(),
            &level.to_le_bytes(),
        ]),
    );
    deps.0
}

/// A block of the two legacy records; `level` is the description's.
pub(super) fn legacy_block(level: u32, message: &[u8]) -> TestBlock {
    let objects = [
        udt("LogStringEvent", 0, false, vec![]),
        udt("LogStringInteropEventV2", 0, false, vec![]),
        udt(
            "StringId",
            16,
            true,
            vec![member("id", "usize", 0, 8, true)],
        ),
    ];
    let mut objects_buffer = Buffer::default();
    // LogStringEvent: desc, time, message.
    objects_buffer.variable(0, le(&[&DESC.to_le_bytes(), &10i64.to_le_bytes(), message]));
    // LogStringInteropEventV2: time, level u32, StringId {ptr, len}, message.
    let string_id = le(&[&NET.to_le_bytes(), &3u32.to_le_bytes(), &[0; 4]]);
    objects_buffer.variable(
        1,
        le(&[
            &20i64.to_le_bytes(),
            &2u32.to_le_bytes(),
            &string_id,
            b"interop message",
        ]),
    );
    TestBlock {
        dependencies_metadata: stream_metadata(LogDeps::reflect_contained()),
        objects_metadata: super::metadata_column(&objects),
        payload: envelope(&dependencies(level), &objects_buffer.0),
    }
}

#[test]
fn legacy_log_records_decode_as_micromegas_reads_them() {
    let logs = decode_and_compare(&legacy_block(5, "message hérité".as_bytes())).logs;
    let summary: Vec<_> = logs
        .iter()
        .map(|l| {
            (
                l.index, l.ticks, l.level, &*l.target, &*l.msg, &*l.file, l.line,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (0, 10, 5, "old::target", "message hérité", "src/old.rs", 31),
            (1, 20, 2, "net", "interop message", "", 0),
        ]
    );
}
