//! The Unreal plugin's log and metrics records: the blocks of the Unreal fixture lake (written by
//! `tools/make-unreal-fixture` from the plugin's layouts), and blocks built here from the
//! plugin's C++ serialization (`LogEvents.h`, `LogMetadata.h`, `MetricEvents.h`,
//! `MetricMetadata.h`, `PropertySetDependency.h`, `StaticStringDependency.h`, `strings.h`) for
//! what the fixture does not hold: wide messages, overriding properties, tick counts.

use micromegas_transit::UserDefinedType;
use sqlx::Row;
use std::path::Path;
use std::sync::Arc;

use super::{
    Buffer, FREQUENCY, TestBlock, decode_and_compare, envelope, le, member, metadata_column, udt,
};
use crate::decode::DecodedBlock;

/// The log and metrics blocks of the Unreal fixture lake, by stream tag, in stream order.
fn fixture_blocks(tag: &str) -> Vec<TestBlock> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/unreal-lake");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rows = runtime.block_on(async {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.join("lake.db"))
            .read_only(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        let rows = sqlx::query(
            "SELECT b.process_id, b.stream_id, b.block_id, s.dependencies_metadata, \
             s.objects_metadata FROM blocks b JOIN streams s ON s.stream_id = b.stream_id \
             WHERE s.tags = ? ORDER BY b.object_offset",
        )
        .bind(format!("[\"{tag}\"]"))
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        rows
    });
    rows.iter()
        .map(|row| {
            let path: [String; 3] = [row.get(0), row.get(1), row.get(2)];
            TestBlock {
                dependencies_metadata: row.get(3),
                objects_metadata: row.get(4),
                payload: std::fs::read(dir.join("blobs").join(path.join("/"))).unwrap(),
            }
        })
        .collect()
}

fn decode_all(blocks: &[TestBlock]) -> Vec<DecodedBlock> {
    assert!(!blocks.is_empty());
    blocks.iter().map(decode_and_compare).collect()
}

#[test]
fn fixture_log_blocks_decode_as_micromegas_reads_them() {
    let logs: Vec<_> = decode_all(&fixture_blocks("log"))
        .into_iter()
        .flat_map(|b| b.logs)
        .collect();
    let summary: Vec<_> = logs
        .iter()
        .map(|l| (l.level, &*l.target, &*l.msg, l.line, l.properties.len()))
        .collect();
    assert_eq!(
        summary[..3],
        [
            (4, "LogInit", "Build: ++UE5+Release-5.4-CL-33043543", 0, 0),
            (
                3,
                "LogStreaming",
                "Fichier manquant : /Game/Maps/L_Arena_Décor",
                0,
                0
            ),
            (4, "LogArena", "Frame 0 done", 212, 1),
        ]
    );
    assert_eq!(logs.len(), 5);
    assert_eq!(
        logs[2].properties,
        [(Arc::from("map"), Arc::from("L_Arena"))]
    );
}

#[test]
fn fixture_metrics_blocks_decode_as_micromegas_reads_them() {
    let measures: Vec<_> = decode_all(&fixture_blocks("metrics"))
        .into_iter()
        .flat_map(|b| b.measures)
        .collect();
    let summary: Vec<_> = measures
        .iter()
        .map(|m| (&*m.name, &*m.unit, &*m.target, m.value, m.integer))
        .collect();
    assert_eq!(summary.len(), 5);
    assert_eq!(
        summary[0],
        ("QueueSize", "count", "MicromegasTelemetrySink", 3.0, true)
    );
    assert_eq!(summary[1], ("FrameTime", "ms", "Engine", 16.25, false));
    // The frames' measures and the last queue size, in time order, whichever comes first.
    assert!(summary.contains(&("QueueSize", "count", "MicromegasTelemetrySink", 7.0, true)));
    let frames = summary.iter().filter(|m| m.0 == "FrameTime").count();
    assert_eq!(frames, 3);
}

// --- Blocks built from the plugin's serialization.

/// `StaticStringRef`: `{Ptr, SizeBytes u32, Codec u8}`, 16 bytes, a reference by its pointer.
fn static_string_ref_type() -> UserDefinedType {
    udt(
        "StaticStringRef",
        16,
        true,
        vec![member("id", "uint64", 0, 8, true)],
    )
}

/// The dependency types every Unreal log and metrics stream declares around its description
/// type, in the order of `LogDependencies.h` / `MetricDependencies.h`.
fn dependency_types(description: UserDefinedType) -> Vec<UserDefinedType> {
    vec![
        udt("StaticStringDependency", 0, false, vec![]),
        description,
        udt("PropertySetDependency", 0, false, vec![]),
        udt(
            "Property",
            32,
            false,
            vec![
                member("name", "StaticStringRef", 0, 16, true),
                member("value", "StaticStringRef", 16, 16, true),
            ],
        ),
    ]
}

/// The plugin's dependency records (type indexes of `dependency_types`).
impl Buffer {
    /// `StaticStringDependency`: id, then a `DynamicString` (codec, length, bytes).
    fn string(&mut self, id: u64, text: &str, wide: bool) {
        let mut bytes = id.to_le_bytes().to_vec();
        bytes.extend(dynamic_string(text, wide));
        self.variable(0, bytes);
    }

    /// `PropertySetDependency`: the set's address, the count, then `Property {Name, Value}`
    /// PODs of two `StaticStringRef`s.
    fn property_set(&mut self, id: u64, properties: &[(u64, u64)]) {
        let mut bytes = id.to_le_bytes().to_vec();
        bytes.extend((properties.len() as u32).to_le_bytes());
        for &(name, value) in properties {
            bytes.extend(string_ref(name));
            bytes.extend(string_ref(value));
        }
        self.variable(2, bytes);
    }
}

/// `Serializer<DynamicString>`: codec (0 ANSI, 1 wide), size in bytes, the characters.
fn dynamic_string(text: &str, wide: bool) -> Vec<u8> {
    let body: Vec<u8> = if wide {
        text.encode_utf16().flat_map(u16::to_le_bytes).collect()
    } else {
        text.bytes().collect()
    };
    let mut bytes = vec![u8::from(wide)];
    bytes.extend((body.len() as u32).to_le_bytes());
    bytes.extend(body);
    bytes
}

/// A `StaticStringRef` POD: pointer, size in bytes, codec, padding (whatever the stack held).
fn string_ref(id: u64) -> [u8; 16] {
    let mut bytes = [0xcd; 16];
    bytes[..8].copy_from_slice(&id.to_le_bytes());
    bytes[8..12].copy_from_slice(&7u32.to_le_bytes());
    bytes[12] = 1;
    bytes
}

// Addresses of the strings and objects, as the plugin's pointers.
const LOG_ARENA: u64 = 0x7ff6_0000_1000;
const EMPTY: u64 = 0x7ff6_0000_1100;
const GAME_MODE_CPP: u64 = 0x7ff6_0000_1200;
const LOG_NET: u64 = 0x2a3_0000_0100;
const TARGET_KEY: u64 = 0x2a3_0000_0200;
const NET_OVERRIDE: u64 = 0x2a3_0000_0300;
const LEVEL_KEY: u64 = 0x2a3_0000_0400;
const ERROR_VALUE: u64 = 0x2a3_0000_0500;
const PEER_KEY: u64 = 0x2a3_0000_0600;
const PEER_VALUE: u64 = 0x2a3_0000_0700;
const DESC: u64 = 0x7ff6_0010_0000;
const PEER_SET: u64 = 0x1f0_0000_0040;
const OVERRIDE_SET: u64 = 0x1f0_0000_0080;

/// A log block as the plugin writes it: `LogEventQueue<TaggedLogInteropEvent, TaggedLogString,
/// StaticStringRef>`, whose variable-size types declare the C++ in-memory offsets of their
/// members (which the packed records do not follow).
pub(super) fn plugin_log_block() -> TestBlock {
    let log_metadata_dependency = udt(
        "LogMetadataDependency",
        64,
        false,
        vec![
            member("id", "uint64", 0, 8, false),
            member("target", "StaticStringRef", 8, 16, true),
            member("fmt_str", "StaticStringRef", 24, 16, true),
            member("file", "StaticStringRef", 40, 16, true),
            member("line", "uint32", 56, 4, false),
            member("level", "uint8", 60, 1, false),
        ],
    );
    let objects = vec![
        udt(
            "TaggedLogInteropEvent",
            0,
            false,
            vec![
                member("time", "uint64", 0, 8, false),
                member("level", "Level", 8, 1, false),
                member("target", "StaticStringRef", 16, 16, true),
                member("properties", "PropertySet*", 32, 8, true),
                member("msg", "DynamicString", 40, 16, false),
            ],
        ),
        udt(
            "TaggedLogString",
            0,
            false,
            vec![
                member("desc", "LogMetadata*", 0, 8, true),
                member("properties", "PropertySet*", 8, 8, true),
                member("time", "uint64", 16, 8, false),
                member("msg", "DynamicString", 24, 16, false),
            ],
        ),
        static_string_ref_type(),
    ];
    let mut deps = Buffer::default();
    for (id, text, wide) in [
        (LOG_ARENA, "LogArena", true),
        (EMPTY, "", true),
        (GAME_MODE_CPP, "Source/Arena/ArenaGameMode.cpp", false),
        (LOG_NET, "LogNet", false),
        (TARGET_KEY, "target", false),
        (NET_OVERRIDE, "LogNetTraffic", false),
        (LEVEL_KEY, "level", false),
        (ERROR_VALUE, "error", false),
        (PEER_KEY, "peer", true),
        (PEER_VALUE, "10.0.0.7:7777", true),
    ] {
        deps.string(id, text, wide);
    }
    // LogMetadataDependency {Id, Target, Msg, File, Line, Level} and its padding.
    deps.fixed(
        1,
        le(&[
            &DESC.to_le_bytes(),
            &string_ref(LOG_ARENA),
            &string_ref(EMPTY),
            &string_ref(GAME_MODE_CPP),
            &212u32.to_le_bytes(),
            &[5, 0xcd, 0xcd, 0xcd],
        ]),
    );
    deps.property_set(PEER_SET, &[(PEER_KEY, PEER_VALUE)]);
    deps.property_set(
        OVERRIDE_SET,
        &[(TARGET_KEY, NET_OVERRIDE), (LEVEL_KEY, ERROR_VALUE)],
    );
    let mut objects_buffer = Buffer::default();
    // TaggedLogInteropEvent: Timestamp, Level, Target, Properties, Msg.
    objects_buffer.variable(
        0,
        le(&[
            &1_000u64.to_le_bytes(),
            &[3],
            &string_ref(LOG_NET),
            &PEER_SET.to_le_bytes(),
            &dynamic_string("Connexion perdue ✗", true),
        ]),
    );
    // TaggedLogString: Desc, Properties, Timestamp, Msg; then one whose properties override.
    for (set, time, msg) in [
        (PEER_SET, 2_000u64, "Frame 7 done"),
        (OVERRIDE_SET, 3_000, "Packet dropped"),
    ] {
        objects_buffer.variable(
            1,
            le(&[
                &DESC.to_le_bytes(),
                &set.to_le_bytes(),
                &time.to_le_bytes(),
                &dynamic_string(msg, false),
            ]),
        );
    }
    TestBlock {
        dependencies_metadata: metadata_column(&dependency_types(log_metadata_dependency)),
        objects_metadata: metadata_column(&objects),
        payload: envelope(&deps.0, &objects_buffer.0),
    }
}

#[test]
fn plugin_log_records_decode_as_micromegas_reads_them() {
    let logs = decode_and_compare(&plugin_log_block()).logs;
    let summary: Vec<_> = logs
        .iter()
        .map(|l| {
            (
                l.index, l.ticks, l.level, &*l.target, &*l.msg, &*l.file, l.line,
            )
        })
        .collect();
    let file = "Source/Arena/ArenaGameMode.cpp";
    assert_eq!(
        summary,
        [
            (0, 1_000, 3, "LogNet", "Connexion perdue ✗", "", 0),
            (1, 2_000, 5, "LogArena", "Frame 7 done", file, 212),
            // The set's `target` and `level` override the description's.
            (2, 3_000, 2, "LogNetTraffic", "Packet dropped", file, 212),
        ]
    );
    assert_eq!(logs[0].properties, logs[1].properties);
    assert_eq!(
        logs[0].properties,
        [(Arc::from("peer"), Arc::from("10.0.0.7:7777"))]
    );
    assert_eq!(logs[2].properties.len(), 2, "overriding properties stay");
}

const FRAME_TIME: u64 = 0x7ff6_0000_2000;
const TICKS: u64 = 0x7ff6_0000_2100;
const ENGINE: u64 = 0x7ff6_0000_2200;
const LAUNCH_CPP: u64 = 0x7ff6_0000_2300;
const UNIT_KEY: u64 = 0x2a3_0000_0800;
const MS: u64 = 0x2a3_0000_0900;
const NAME_KEY: u64 = 0x2a3_0000_0a00;
const GAME_THREAD_TIME: u64 = 0x2a3_0000_0b00;
const METRIC_DESC: u64 = 0x7ff6_0020_0000;
const EMPTY_SET: u64 = 0x1f0_0000_0100;
const RENAME_SET: u64 = 0x1f0_0000_0140;

/// A metrics block as the plugin writes it: `MetricEventQueue<TaggedIntegerMetricEvent,
/// TaggedFloatMetricEvent>` and `MetricMetadataDependency` with its one-byte `Lod`.
pub(super) fn plugin_metrics_block() -> TestBlock {
    let metric_metadata_dependency = udt(
        "MetricMetadataDependency",
        56,
        false,
        vec![
            member("id", "uint64", 0, 8, false),
            member("lod", "uint8", 8, 1, false),
            member("name", "StaticStringRef", 16, 8, true),
            member("unit", "StaticStringRef", 24, 8, true),
            member("target", "StaticStringRef", 32, 8, true),
            member("file", "StaticStringRef", 40, 8, true),
            member("line", "uint32", 48, 4, false),
        ],
    );
    let event = |name: &str, value_type: &str| {
        udt(
            name,
            32,
            false,
            vec![
                member("desc", "MetricMetadata*", 0, 8, true),
                member("properties", "PropertySet*", 8, 8, true),
                member("value", value_type, 16, 8, false),
                member("time", "uint64", 24, 8, false),
            ],
        )
    };
    let objects = vec![
        event("TaggedIntegerMetricEvent", "uint64"),
        event("TaggedFloatMetricEvent", "f64"),
    ];
    let mut deps = Buffer::default();
    for (id, text, wide) in [
        (FRAME_TIME, "FrameTime", true),
        (TICKS, "ticks", true),
        (ENGINE, "Engine", false),
        (
            LAUNCH_CPP,
            "Runtime/Launch/Private/LaunchEngineLoop.cpp",
            false,
        ),
        (UNIT_KEY, "unit", false),
        (MS, "ms", false),
        (NAME_KEY, "name", false),
        (GAME_THREAD_TIME, "GameThreadTime", true),
    ] {
        deps.string(id, text, wide);
    }
    // MetricMetadataDependency {Id, Lod, Name, Unit, Target, File, Line} and its padding.
    deps.fixed(
        1,
        le(&[
            &METRIC_DESC.to_le_bytes(),
            &[2, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd],
            &FRAME_TIME.to_le_bytes(),
            &TICKS.to_le_bytes(),
            &ENGINE.to_le_bytes(),
            &LAUNCH_CPP.to_le_bytes(),
            &5702u32.to_le_bytes(),
            &[0xcd; 4],
        ]),
    );
    deps.property_set(EMPTY_SET, &[]);
    deps.property_set(RENAME_SET, &[(NAME_KEY, GAME_THREAD_TIME), (UNIT_KEY, MS)]);
    let mut objects_buffer = Buffer::default();
    let mut push = |type_index: u8, set: u64, value: [u8; 8], time: u64| {
        objects_buffer.fixed(
            type_index,
            le(&[
                &METRIC_DESC.to_le_bytes(),
                &set.to_le_bytes(),
                &value,
                &time.to_le_bytes(),
            ]),
        )
    };
    push(0, EMPTY_SET, 30_000_000u64.to_le_bytes(), 100);
    push(1, EMPTY_SET, 12.5f64.to_le_bytes(), 200);
    push(0, RENAME_SET, 16u64.to_le_bytes(), 300);
    TestBlock {
        dependencies_metadata: metadata_column(&dependency_types(metric_metadata_dependency)),
        objects_metadata: metadata_column(&objects),
        payload: envelope(&deps.0, &objects_buffer.0),
    }
}

#[test]
fn plugin_metric_records_decode_as_micromegas_reads_them() {
    let measures = decode_and_compare(&plugin_metrics_block()).measures;
    let summary: Vec<_> = measures
        .iter()
        .map(|m| {
            (
                m.index, m.ticks, &*m.name, &*m.unit, &*m.target, m.value, m.integer,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (0, 100, "FrameTime", "ticks", "Engine", 30e6, true),
            (1, 200, "FrameTime", "ticks", "Engine", 12.5, false),
            // The set's `name` and `unit` override the description's.
            (2, 300, "GameThreadTime", "ms", "Engine", 16.0, true),
        ]
    );
    assert!(measures[0].is_tick_count() && !measures[1].is_tick_count());
    let seconds = measures[0].clone().ticks_in_seconds(FREQUENCY);
    assert_eq!((&*seconds.unit, seconds.value), ("seconds", 0.01));
}
