//! The transit type metadata of micromegas-tracing 0.33 streams, written out by hand.
//!
//! These tables are what `make_stream_info` (micromegas-telemetry-sink 0.33) sends for a thread,
//! log and metrics stream: the types of the stream's queue in queue order (their index is the
//! type index of the wire format), then the secondary types of their members, flattened. The
//! sink flattens secondaries through a `HashMap`, so their order varies from run to run; here
//! they are sorted by name (readers look them up by name).
//!
//! Sizes and offsets are rustc's layout on x86_64 / aarch64 (64-bit pointers). They were printed
//! by a throwaway program kept out of the repository: a binary depending on
//! `micromegas-tracing = "0.33"` and `micromegas-transit = "0.33"` that calls
//! `<<ThreadBlock as TracingBlock>::Queue as ExtractDeps>::DepsQueue::reflect_contained()` and
//! `<ThreadBlock as TracingBlock>::Queue::reflect_contained()` (same for `LogBlock` and
//! `MetricsBlock`), flattens `secondary_udts` recursively into a `BTreeMap` by name, and prints
//! each type as a `ty(..)` line. The unit test `metadata_matches_micromegas_tracing` compares
//! these tables with the real `Reflect` output (micromegas-tracing is a dev-dependency only).

use anyhow::Result;
use micromegas_transit::{Member, UserDefinedType};
use std::sync::Arc;

/// One type description, as `micromegas_transit::UserDefinedType` without the secondaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeDesc {
    pub name: &'static str,
    /// 0 for variable-size records.
    pub size: usize,
    pub is_reference: bool,
    pub members: &'static [MemberDesc],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberDesc {
    pub name: &'static str,
    pub type_name: &'static str,
    pub offset: usize,
    pub size: usize,
    pub is_reference: bool,
}

const fn ty(
    name: &'static str,
    size: usize,
    is_reference: bool,
    members: &'static [MemberDesc],
) -> TypeDesc {
    TypeDesc {
        name,
        size,
        is_reference,
        members,
    }
}

const fn mb(
    name: &'static str,
    type_name: &'static str,
    offset: usize,
    size: usize,
    is_reference: bool,
) -> MemberDesc {
    MemberDesc {
        name,
        type_name,
        offset,
        size,
        is_reference,
    }
}

impl TypeDesc {
    pub fn member(&self, name: &str) -> Option<&'static MemberDesc> {
        self.members.iter().find(|m| m.name == name)
    }

    pub fn to_udt(&self) -> UserDefinedType {
        UserDefinedType {
            name: Arc::new(self.name.to_string()),
            size: self.size,
            members: self
                .members
                .iter()
                .map(|m| Member {
                    name: Arc::new(m.name.to_string()),
                    type_name: m.type_name.to_string(),
                    offset: m.offset,
                    size: m.size,
                    is_reference: m.is_reference,
                })
                .collect(),
            is_reference: self.is_reference,
            secondary_udts: vec![],
        }
    }
}

/// The CBOR the ingestion server stores in `streams.dependencies_metadata` /
/// `streams.objects_metadata`: `encode_cbor` of the list of type descriptions.
pub fn metadata_cbor(table: &[TypeDesc]) -> Result<Vec<u8>> {
    let udts: Vec<UserDefinedType> = table.iter().map(TypeDesc::to_udt).collect();
    micromegas_telemetry::wire_format::encode_cbor(&udts)
}

/// Type indices of the thread objects buffer (`ThreadEventQueue` order).
pub mod obj {
    pub const BEGIN_THREAD: u8 = 0;
    pub const END_THREAD: u8 = 1;
    pub const BEGIN_THREAD_NAMED: u8 = 2;
    pub const END_THREAD_NAMED: u8 = 3;
    pub const BEGIN_ASYNC: u8 = 4;
    pub const END_ASYNC: u8 = 5;
    pub const BEGIN_ASYNC_NAMED: u8 = 6;
    pub const END_ASYNC_NAMED: u8 = 7;
    pub const BEGIN_THREAD_DYN_NAMED: u8 = 8;
    pub const END_THREAD_DYN_NAMED: u8 = 9;
    pub const BEGIN_ASYNC_DYN_NAMED: u8 = 10;
    pub const END_ASYNC_DYN_NAMED: u8 = 11;
    pub const TAGGED_END_THREAD: u8 = 12;
    pub const TAGGED_END_THREAD_NAMED: u8 = 13;
    pub const TAGGED_END_ASYNC: u8 = 14;
    pub const TAGGED_END_ASYNC_NAMED: u8 = 15;
    /// Number of event types (the secondary types follow them).
    pub const COUNT: usize = 16;
}

/// Type indices of the thread dependencies buffer (`ThreadDepsQueue` order).
pub mod dep {
    pub const SPAN_RECORD: u8 = 0;
    pub const SPAN_LOCATION_RECORD: u8 = 1;
    /// `Utf8StaticStringDependency`, named `StaticString`: `u64 ptr` + UTF-8 bytes.
    pub const STATIC_STRING: u8 = 2;
    /// `u64 id, u8 codec, u32 len, bytes`.
    pub const STATIC_STRING_DEPENDENCY: u8 = 3;
    /// `u64 id, u32 count, count × Property`.
    pub const PROPERTY_SET_DEPENDENCY: u8 = 4;
    /// Number of record types (the secondary types follow them).
    pub const COUNT: usize = 5;
}

/// `dependencies_metadata` of a thread stream (tag `cpu`): `ThreadDepsQueue`, then secondaries.
pub const THREAD_DEPENDENCIES: &[TypeDesc] = &[
    ty(
        "SpanRecord",
        48,
        false,
        &[
            mb("id", "u64", 0, 8, false),
            mb("name", "* const u8", 8, 8, true),
            mb("target", "* const u8", 16, 8, true),
            mb("module_path", "* const u8", 24, 8, true),
            mb("file", "* const u8", 32, 8, true),
            mb("line", "u32", 40, 4, false),
            mb("lod", "u32", 44, 4, false),
        ],
    ),
    ty(
        "SpanLocationRecord",
        40,
        false,
        &[
            mb("id", "u64", 0, 8, false),
            mb("target", "* const u8", 8, 8, true),
            mb("module_path", "* const u8", 16, 8, true),
            mb("file", "* const u8", 24, 8, true),
            mb("line", "u32", 32, 4, false),
            mb("lod", "u32", 36, 4, false),
        ],
    ),
    ty("StaticString", 0, false, &[]),
    ty("StaticStringDependency", 0, false, &[]),
    ty("PropertySetDependency", 0, false, &[]),
    ty(
        "Property",
        32,
        false,
        &[
            mb("name", "StaticStringRef", 0, 16, false),
            mb("value", "StaticStringRef", 16, 16, false),
        ],
    ),
    ty(
        "StaticStringRef",
        16,
        true,
        &[mb("id", "usize", 0, 8, true)],
    ),
];

/// `objects_metadata` of a thread stream: `ThreadEventQueue`, then secondaries.
pub const THREAD_OBJECTS: &[TypeDesc] = &[
    ty(
        "BeginThreadSpanEvent",
        16,
        false,
        &[
            mb("thread_span_desc", "& 'static SpanMetadata", 0, 8, true),
            mb("time", "i64", 8, 8, false),
        ],
    ),
    ty(
        "EndThreadSpanEvent",
        16,
        false,
        &[
            mb("thread_span_desc", "& 'static SpanMetadata", 0, 8, true),
            mb("time", "i64", 8, 8, false),
        ],
    ),
    ty(
        "BeginThreadNamedSpanEvent",
        32,
        false,
        &[
            mb("thread_span_location", "& 'static SpanLocation", 0, 8, true),
            mb("name", "StringId", 8, 16, false),
            mb("time", "i64", 24, 8, false),
        ],
    ),
    ty(
        "EndThreadNamedSpanEvent",
        32,
        false,
        &[
            mb("thread_span_location", "& 'static SpanLocation", 0, 8, true),
            mb("name", "StringId", 8, 16, false),
            mb("time", "i64", 24, 8, false),
        ],
    ),
    ty(
        "BeginAsyncSpanEvent",
        40,
        false,
        &[
            mb("span_desc", "& 'static SpanMetadata", 0, 8, true),
            mb("span_id", "u64", 8, 8, false),
            mb("parent_span_id", "u64", 16, 8, false),
            mb("depth", "u32", 32, 4, false),
            mb("time", "i64", 24, 8, false),
        ],
    ),
    ty(
        "EndAsyncSpanEvent",
        40,
        false,
        &[
            mb("span_desc", "& 'static SpanMetadata", 0, 8, true),
            mb("span_id", "u64", 8, 8, false),
            mb("parent_span_id", "u64", 16, 8, false),
            mb("depth", "u32", 32, 4, false),
            mb("time", "i64", 24, 8, false),
        ],
    ),
    ty(
        "BeginAsyncNamedSpanEvent",
        56,
        false,
        &[
            mb("span_location", "& 'static SpanLocation", 0, 8, true),
            mb("name", "StringId", 8, 16, false),
            mb("span_id", "u64", 24, 8, false),
            mb("parent_span_id", "u64", 32, 8, false),
            mb("depth", "u32", 48, 4, false),
            mb("time", "i64", 40, 8, false),
        ],
    ),
    ty(
        "EndAsyncNamedSpanEvent",
        56,
        false,
        &[
            mb("span_location", "& 'static SpanLocation", 0, 8, true),
            mb("name", "StringId", 8, 16, false),
            mb("span_id", "u64", 24, 8, false),
            mb("parent_span_id", "u64", 32, 8, false),
            mb("depth", "u32", 48, 4, false),
            mb("time", "i64", 40, 8, false),
        ],
    ),
    ty(
        "BeginThreadDynNamedSpanEvent",
        24,
        false,
        &[
            mb("thread_span_location", "& 'static SpanLocation", 0, 8, true),
            mb("name", "DynStringId", 8, 8, false),
            mb("time", "i64", 16, 8, false),
        ],
    ),
    ty(
        "EndThreadDynNamedSpanEvent",
        24,
        false,
        &[
            mb("thread_span_location", "& 'static SpanLocation", 0, 8, true),
            mb("name", "DynStringId", 8, 8, false),
            mb("time", "i64", 16, 8, false),
        ],
    ),
    ty(
        "BeginAsyncDynNamedSpanEvent",
        48,
        false,
        &[
            mb("span_location", "& 'static SpanLocation", 0, 8, true),
            mb("name", "DynStringId", 8, 8, false),
            mb("span_id", "u64", 16, 8, false),
            mb("parent_span_id", "u64", 24, 8, false),
            mb("depth", "u32", 40, 4, false),
            mb("time", "i64", 32, 8, false),
        ],
    ),
    ty(
        "EndAsyncDynNamedSpanEvent",
        48,
        false,
        &[
            mb("span_location", "& 'static SpanLocation", 0, 8, true),
            mb("name", "DynStringId", 8, 8, false),
            mb("span_id", "u64", 16, 8, false),
            mb("parent_span_id", "u64", 24, 8, false),
            mb("depth", "u32", 40, 4, false),
            mb("time", "i64", 32, 8, false),
        ],
    ),
    ty(
        "TaggedEndThreadSpanEvent",
        24,
        false,
        &[
            mb("thread_span_desc", "& 'static SpanMetadata", 0, 8, true),
            mb("properties", "PropertySetId", 8, 8, true),
            mb("time", "i64", 16, 8, false),
        ],
    ),
    ty(
        "TaggedEndThreadNamedSpanEvent",
        32,
        false,
        &[
            mb("thread_span_location", "& 'static SpanLocation", 0, 8, true),
            mb("name", "DynStringId", 8, 8, false),
            mb("properties", "PropertySetId", 16, 8, true),
            mb("time", "i64", 24, 8, false),
        ],
    ),
    ty(
        "TaggedEndAsyncSpanEvent",
        48,
        false,
        &[
            mb("span_desc", "& 'static SpanMetadata", 0, 8, true),
            mb("properties", "PropertySetId", 8, 8, true),
            mb("span_id", "u64", 16, 8, false),
            mb("parent_span_id", "u64", 24, 8, false),
            mb("depth", "u32", 40, 4, false),
            mb("time", "i64", 32, 8, false),
        ],
    ),
    ty(
        "TaggedEndAsyncNamedSpanEvent",
        56,
        false,
        &[
            mb("span_location", "& 'static SpanLocation", 0, 8, true),
            mb("name", "DynStringId", 8, 8, false),
            mb("properties", "PropertySetId", 16, 8, true),
            mb("span_id", "u64", 24, 8, false),
            mb("parent_span_id", "u64", 32, 8, false),
            mb("depth", "u32", 48, 4, false),
            mb("time", "i64", 40, 8, false),
        ],
    ),
    ty("DynStringId", 8, true, &[mb("id", "u64", 0, 8, true)]),
    ty("StringId", 16, true, &[mb("id", "usize", 0, 8, true)]),
];

/// `dependencies_metadata` of the log stream (tag `log`): `LogDepsQueue`, then secondaries.
pub const LOG_DEPENDENCIES: &[TypeDesc] = &[
    ty("StaticString", 0, false, &[]),
    ty("StaticStringDependency", 0, false, &[]),
    ty(
        "LogMetadataRecord",
        48,
        false,
        &[
            mb("id", "u64", 0, 8, false),
            mb("fmt_str", "* const u8", 8, 8, true),
            mb("target", "* const u8", 16, 8, true),
            mb("module_path", "* const u8", 24, 8, true),
            mb("file", "* const u8", 32, 8, true),
            mb("line", "u32", 40, 4, false),
            mb("level", "u32", 44, 4, false),
        ],
    ),
    ty("PropertySetDependency", 0, false, &[]),
    ty(
        "Property",
        32,
        false,
        &[
            mb("name", "StaticStringRef", 0, 16, false),
            mb("value", "StaticStringRef", 16, 16, false),
        ],
    ),
    ty(
        "StaticStringRef",
        16,
        true,
        &[mb("id", "usize", 0, 8, true)],
    ),
];

/// `objects_metadata` of the log stream: `LogMsgQueue`, then secondaries.
pub const LOG_OBJECTS: &[TypeDesc] = &[
    ty(
        "LogStaticStrEvent",
        16,
        false,
        &[
            mb("desc", "& 'static LogMetadata < 'static >", 0, 8, true),
            mb("time", "i64", 8, 8, false),
        ],
    ),
    ty("LogStringEventV2", 0, false, &[]),
    ty(
        "LogStaticStrInteropEvent",
        48,
        false,
        &[
            mb("time", "i64", 32, 8, false),
            mb("level", "u32", 40, 4, false),
            mb("target", "StringId", 0, 16, false),
            mb("msg", "StringId", 16, 16, false),
        ],
    ),
    ty(
        "LogStaticStrInteropEventV2",
        40,
        false,
        &[
            mb("time", "i64", 16, 8, false),
            mb("level", "u32", 32, 4, false),
            mb("target", "DynStringId", 24, 8, false),
            mb("msg", "StringId", 0, 16, false),
        ],
    ),
    ty("LogStringInteropEventV3", 0, false, &[]),
    ty("TaggedLogString", 0, false, &[]),
    ty(
        "TaggedLogStaticStrEvent",
        24,
        false,
        &[
            mb("desc", "& 'static LogMetadata < 'static >", 0, 8, true),
            mb("properties", "PropertySetId", 8, 8, true),
            mb("time", "i64", 16, 8, false),
        ],
    ),
    ty("TaggedLogInteropEvent", 0, false, &[]),
    ty(
        "TaggedLogTemplateEvent",
        24,
        false,
        &[
            mb("desc", "& 'static LogMetadata < 'static >", 0, 8, true),
            mb("properties", "PropertySetId", 8, 8, true),
            mb("time", "i64", 16, 8, false),
        ],
    ),
    ty("DynStringId", 8, true, &[mb("id", "u64", 0, 8, true)]),
    ty(
        "StaticStringRef",
        16,
        true,
        &[mb("id", "usize", 0, 8, true)],
    ),
    ty("StringId", 16, true, &[mb("id", "usize", 0, 8, true)]),
];

/// `dependencies_metadata` of the metrics stream (tag `metrics`): `MetricsDepsQueue`, then secondaries.
pub const METRICS_DEPENDENCIES: &[TypeDesc] = &[
    ty("StaticString", 0, false, &[]),
    ty("StaticStringDependency", 0, false, &[]),
    ty(
        "MetricMetadataDependency",
        48,
        false,
        &[
            mb("id", "u64", 0, 8, false),
            mb("name", "* const u8", 8, 8, true),
            mb("unit", "* const u8", 16, 8, true),
            mb("target", "* const u8", 24, 8, true),
            mb("file", "* const u8", 32, 8, true),
            mb("line", "u32", 40, 4, false),
            mb("lod", "u32", 44, 4, false),
        ],
    ),
    ty("PropertySetDependency", 0, false, &[]),
    ty(
        "Property",
        32,
        false,
        &[
            mb("name", "StaticStringRef", 0, 16, false),
            mb("value", "StaticStringRef", 16, 16, false),
        ],
    ),
    ty(
        "StaticStringRef",
        16,
        true,
        &[mb("id", "usize", 0, 8, true)],
    ),
];

/// `objects_metadata` of the metrics stream: `MetricsMsgQueue`, then secondaries.
pub const METRICS_OBJECTS: &[TypeDesc] = &[
    ty(
        "IntegerMetricEvent",
        24,
        false,
        &[
            mb("desc", "& 'static StaticMetricMetadata", 0, 8, true),
            mb("value", "u64", 8, 8, false),
            mb("time", "i64", 16, 8, false),
        ],
    ),
    ty(
        "FloatMetricEvent",
        24,
        false,
        &[
            mb("desc", "& 'static StaticMetricMetadata", 0, 8, true),
            mb("value", "f64", 8, 8, false),
            mb("time", "i64", 16, 8, false),
        ],
    ),
    ty(
        "TaggedFloatMetricEvent",
        32,
        false,
        &[
            mb("desc", "& 'static StaticMetricMetadata", 0, 8, true),
            mb("properties", "PropertySetId", 8, 8, true),
            mb("value", "f64", 16, 8, false),
            mb("time", "i64", 24, 8, false),
        ],
    ),
    ty(
        "TaggedIntegerMetricEvent",
        32,
        false,
        &[
            mb("desc", "& 'static StaticMetricMetadata", 0, 8, true),
            mb("properties", "PropertySetId", 8, 8, true),
            mb("value", "u64", 16, 8, false),
            mb("time", "i64", 24, 8, false),
        ],
    ),
];
