//! The bytes the Micromegas Unreal plugin writes, field by field, as its C++ declares them on a
//! 64-bit target (pointers 8 bytes, `uint64` aligned to 8). README.md names the C++ file and the
//! declaration every layout here comes from.

use std::collections::HashSet;
use std::sync::Arc;

/// `StringCodec::Type` (`strings.h`).
pub const CODEC_ANSI: u8 = 0;
pub const CODEC_WIDE: u8 = 1;
pub const CODEC_UNREAL_NAME: u8 = 3;

/// A `StaticStringRef` (`strings.h`): `{const void* Ptr; uint32 SizeBytes; StringCodec Codec}`,
/// 16 bytes with 3 bytes of padding; plus what its `StaticStringDependency` serializes.
#[derive(Debug, Clone)]
pub struct Str {
    /// `Ptr`: the string's address (for an `FName`, its `FNameEntry`'s), the dependency id.
    pub id: u64,
    /// `SizeBytes` in the reference (0 for an `FName`).
    pub size_bytes: u32,
    /// `Codec` in the reference (`UnrealName` for an `FName`).
    pub codec: u8,
    /// Codec and bytes the dependency record carries (an `FName` entry is written as ANSI when
    /// it is not wide, else as UTF-16).
    pub dep_codec: u8,
    pub bytes: Vec<u8>,
    /// The text a reader decodes from those bytes.
    pub text: String,
}

impl Str {
    /// A `const char*` (`ANSICHAR`): bytes as compiled (MSVC: the code page, CP-1252).
    pub fn ansi(id: u64, bytes: &[u8]) -> Self {
        Str {
            id,
            size_bytes: bytes.len() as u32,
            codec: CODEC_ANSI,
            dep_codec: CODEC_ANSI,
            bytes: bytes.to_vec(),
            // Micromegas reads ANSI as UTF-8, replacing invalid bytes.
            text: String::from_utf8_lossy(bytes).into_owned(),
        }
    }

    /// A `TEXT("...")` literal (`WIDECHAR`, UTF-16LE on Windows).
    pub fn wide(id: u64, text: &str) -> Self {
        let bytes = utf16le(text);
        Str {
            id,
            size_bytes: bytes.len() as u32,
            codec: CODEC_WIDE,
            dep_codec: CODEC_WIDE,
            bytes,
            text: text.to_string(),
        }
    }

    /// An `FName` (`StaticStringRef(FName)` → its display `FNameEntry`): UE stores pure-ASCII
    /// names as ANSI entries, the others as wide ones.
    pub fn fname(entry: u64, text: &str) -> Self {
        let (dep_codec, bytes) = if text.is_ascii() {
            (CODEC_ANSI, text.as_bytes().to_vec())
        } else {
            (CODEC_WIDE, utf16le(text))
        };
        Str {
            id: entry,
            size_bytes: 0,
            codec: CODEC_UNREAL_NAME,
            dep_codec,
            bytes,
            text: text.to_string(),
        }
    }

    /// The 16-byte POD copy of the reference (`WritePOD`); padding written as zeros.
    pub fn pod(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[0..8].copy_from_slice(&self.id.to_le_bytes());
        out[8..12].copy_from_slice(&self.size_bytes.to_le_bytes());
        out[12] = self.codec;
        out
    }
}

fn utf16le(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

/// `SpanMetadata {Name, Target, File, Line}` (`SpanEvents.h`), a static object.
#[derive(Debug)]
pub struct SpanMetadata {
    pub id: u64,
    pub name: Str,
    pub target: Str,
    pub file: Str,
    pub line: u32,
}

/// `SpanLocation {Target, File, Line}` (`SpanEvents.h`), a static object.
#[derive(Debug)]
pub struct SpanLocation {
    pub id: u64,
    pub target: Str,
    pub file: Str,
    pub line: u32,
}

#[derive(Debug, Clone)]
pub enum ThreadEvent {
    Begin(Arc<SpanMetadata>, u64),
    End(Arc<SpanMetadata>, u64),
    BeginNamed(Arc<SpanLocation>, u64, Str),
    EndNamed(Arc<SpanLocation>, u64, Str),
}

impl ThreadEvent {
    pub fn ticks(&self) -> u64 {
        match self {
            ThreadEvent::Begin(_, t)
            | ThreadEvent::End(_, t)
            | ThreadEvent::BeginNamed(_, t, _)
            | ThreadEvent::EndNamed(_, t, _) => *t,
        }
    }
}

/// `PropertySet` (`PropertySet.h`): an eternal set of `FName` pairs, at a heap address.
#[derive(Debug)]
pub struct PropertySet {
    pub id: u64,
    pub properties: Vec<(Str, Str)>,
}

/// `LogMetadata {Target (TCHAR*), Msg (TCHAR*), File (char*), Line, Level}` (`LogEvents.h`).
#[derive(Debug)]
pub struct LogMetadata {
    pub id: u64,
    pub target: Str,
    pub msg: Str,
    pub file: Str,
    pub line: u32,
    pub level: u8,
}

/// `MetricMetadata {Lod, Name (TCHAR*), Unit (TCHAR*), Target (char*), File (char*), Line}`
/// (`MetricEvents.h`).
#[derive(Debug)]
pub struct MetricMetadata {
    pub id: u64,
    pub lod: u8,
    pub name: Str,
    pub unit: Str,
    pub target: Str,
    pub file: Str,
    pub line: u32,
}

#[derive(Debug, Clone)]
pub enum LogEvent {
    /// `TaggedLogInteropEvent {Timestamp, Level, Target, Properties, Msg}`.
    Interop {
        time: u64,
        level: u8,
        target: Str,
        properties: Arc<PropertySet>,
        msg: String,
    },
    /// `TaggedLogString {Desc, Properties, Timestamp, Msg}`.
    Tagged {
        desc: Arc<LogMetadata>,
        properties: Arc<PropertySet>,
        time: u64,
        msg: String,
    },
}

#[derive(Debug, Clone)]
pub enum MetricEvent {
    Integer {
        desc: Arc<MetricMetadata>,
        properties: Arc<PropertySet>,
        value: u64,
        time: u64,
    },
    Float {
        desc: Arc<MetricMetadata>,
        properties: Arc<PropertySet>,
        value: f64,
        time: u64,
    },
}

/// `HeterogeneousQueue::Push`: `u8` type index, then a `u32` size for types whose serializer
/// is not static, then the value's bytes.
#[derive(Default)]
pub struct Queue {
    pub bytes: Vec<u8>,
    pub nb_events: usize,
}

impl Queue {
    fn push_static(&mut self, type_index: u8, value: &[u8]) {
        self.nb_events += 1;
        self.bytes.push(type_index);
        self.bytes.extend_from_slice(value);
    }

    fn push_dynamic(&mut self, type_index: u8, value: &[u8]) {
        self.nb_events += 1;
        self.bytes.push(type_index);
        self.bytes
            .extend_from_slice(&(value.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(value);
    }
}

/// `Serializer<DynamicString>::Write` of a `FString` (wide): codec, size in bytes, bytes.
fn dynamic_string(text: &str) -> Vec<u8> {
    let bytes = utf16le(text);
    let mut out = vec![CODEC_WIDE];
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&bytes);
    out
}

/// Pushes one thread event (`ThreadEventQueue` of `Fwd.h`: indexes 0–3), POD as declared in
/// `SpanEvents.h`: `{Desc, Timestamp}` (16 bytes) or `{Desc, Timestamp, Name}` (32 bytes).
pub fn push_thread_event(queue: &mut Queue, event: &ThreadEvent) {
    let mut pod = Vec::with_capacity(32);
    let index = match event {
        ThreadEvent::Begin(desc, time) | ThreadEvent::End(desc, time) => {
            pod.extend_from_slice(&desc.id.to_le_bytes());
            pod.extend_from_slice(&time.to_le_bytes());
            if matches!(event, ThreadEvent::Begin(..)) {
                0
            } else {
                1
            }
        }
        ThreadEvent::BeginNamed(loc, time, name) | ThreadEvent::EndNamed(loc, time, name) => {
            pod.extend_from_slice(&loc.id.to_le_bytes());
            pod.extend_from_slice(&time.to_le_bytes());
            pod.extend_from_slice(&name.pod());
            if matches!(event, ThreadEvent::BeginNamed(..)) {
                2
            } else {
                3
            }
        }
    };
    queue.push_static(index, &pod);
}

/// `TaggedLogInteropEvent` / `TaggedLogString` with their custom serializers (`LogEvents.h`).
pub fn push_log_event(queue: &mut Queue, event: &LogEvent) {
    let mut body = Vec::new();
    match event {
        LogEvent::Interop {
            time,
            level,
            target,
            properties,
            msg,
        } => {
            body.extend_from_slice(&time.to_le_bytes());
            body.push(*level);
            body.extend_from_slice(&target.pod());
            body.extend_from_slice(&properties.id.to_le_bytes());
            body.extend_from_slice(&dynamic_string(msg));
            queue.push_dynamic(0, &body);
        }
        LogEvent::Tagged {
            desc,
            properties,
            time,
            msg,
        } => {
            body.extend_from_slice(&desc.id.to_le_bytes());
            body.extend_from_slice(&properties.id.to_le_bytes());
            body.extend_from_slice(&time.to_le_bytes());
            body.extend_from_slice(&dynamic_string(msg));
            queue.push_dynamic(1, &body);
        }
    }
}

/// `TaggedIntegerMetricEvent` / `TaggedFloatMetricEvent`: `{Desc, Properties, Value,
/// Timestamp}`, 32-byte PODs (`MetricEvents.h`).
pub fn push_metric_event(queue: &mut Queue, event: &MetricEvent) {
    let mut pod = Vec::with_capacity(32);
    let (index, desc, properties, value, time) = match event {
        MetricEvent::Integer {
            desc,
            properties,
            value,
            time,
        } => (0, desc, properties, value.to_le_bytes(), time),
        MetricEvent::Float {
            desc,
            properties,
            value,
            time,
        } => (1, desc, properties, value.to_le_bytes(), time),
    };
    pod.extend_from_slice(&desc.id.to_le_bytes());
    pod.extend_from_slice(&properties.id.to_le_bytes());
    pod.extend_from_slice(&value);
    pod.extend_from_slice(&time.to_le_bytes());
    queue.push_static(index, &pod);
}

/// The dependency extractors of `ThreadDependencies.h`, `LogDependencies.h` and
/// `MetricDependencies.h`: one per block, walking its events in order; an id already in the
/// block's set is not written again, so every block carries all it refers to.
#[derive(Default)]
pub struct Dependencies {
    ids: HashSet<u64>,
    pub queue: Queue,
}

/// Type indexes in the three dependency queues: `StaticStringDependency` is 0 in each; the
/// description type is 1; `PropertySetDependency` is 2 (log and metrics).
const STRING_DEPENDENCY: u8 = 0;
const DESCRIPTION_DEPENDENCY: u8 = 1;
const LOCATION_DEPENDENCY: u8 = 2;
const PROPERTY_SET_DEPENDENCY: u8 = 2;

impl Dependencies {
    fn first_time(&mut self, id: u64) -> bool {
        self.ids.insert(id)
    }

    /// `Serializer<StaticStringDependency>::Write`: id, then a `DynamicString` (codec, size,
    /// bytes).
    pub fn string(&mut self, s: &Str) {
        if !self.first_time(s.id) {
            return;
        }
        let mut body = Vec::with_capacity(13 + s.bytes.len());
        body.extend_from_slice(&s.id.to_le_bytes());
        body.push(s.dep_codec);
        body.extend_from_slice(&(s.bytes.len() as u32).to_le_bytes());
        body.extend_from_slice(&s.bytes);
        self.queue.push_dynamic(STRING_DEPENDENCY, &body);
    }

    /// `SpanMetadataDependency {Id, Name, Target, File, Line}`: 40 bytes.
    fn span_metadata(&mut self, desc: &SpanMetadata) {
        if !self.first_time(desc.id) {
            return;
        }
        self.string(&desc.name);
        self.string(&desc.target);
        self.string(&desc.file);
        let mut pod = Vec::with_capacity(40);
        for id in [desc.id, desc.name.id, desc.target.id, desc.file.id] {
            pod.extend_from_slice(&id.to_le_bytes());
        }
        pod.extend_from_slice(&desc.line.to_le_bytes());
        pod.extend_from_slice(&[0; 4]);
        self.queue.push_static(DESCRIPTION_DEPENDENCY, &pod);
    }

    /// `SpanLocationDependency {Id, Target, File, Line}`: 32 bytes.
    fn span_location(&mut self, loc: &SpanLocation) {
        if !self.first_time(loc.id) {
            return;
        }
        self.string(&loc.target);
        self.string(&loc.file);
        let mut pod = Vec::with_capacity(32);
        for id in [loc.id, loc.target.id, loc.file.id] {
            pod.extend_from_slice(&id.to_le_bytes());
        }
        pod.extend_from_slice(&loc.line.to_le_bytes());
        pod.extend_from_slice(&[0; 4]);
        self.queue.push_static(LOCATION_DEPENDENCY, &pod);
    }

    pub fn thread_event(&mut self, event: &ThreadEvent) {
        match event {
            ThreadEvent::Begin(desc, _) | ThreadEvent::End(desc, _) => self.span_metadata(desc),
            ThreadEvent::BeginNamed(loc, _, name) | ThreadEvent::EndNamed(loc, _, name) => {
                self.span_location(loc);
                self.string(name);
            }
        }
    }

    /// `PropertySetDependency`: set address, `uint32` count, then one 32-byte `Property
    /// {Name, Value}` (two `StaticStringRef` PODs) per pair.
    fn property_set(&mut self, set: &PropertySet) {
        if !self.first_time(set.id) {
            return;
        }
        for (key, value) in &set.properties {
            self.string(key);
            self.string(value);
        }
        let mut body = Vec::new();
        body.extend_from_slice(&set.id.to_le_bytes());
        body.extend_from_slice(&(set.properties.len() as u32).to_le_bytes());
        for (key, value) in &set.properties {
            body.extend_from_slice(&key.pod());
            body.extend_from_slice(&value.pod());
        }
        self.queue.push_dynamic(PROPERTY_SET_DEPENDENCY, &body);
    }

    /// `LogMetadataDependency {Id, Target, Msg, File (StaticStringRef PODs), Line, Level}`:
    /// 64 bytes.
    fn log_metadata(&mut self, desc: &LogMetadata) {
        if !self.first_time(desc.id) {
            return;
        }
        self.string(&desc.target);
        self.string(&desc.msg);
        self.string(&desc.file);
        let mut pod = Vec::with_capacity(64);
        pod.extend_from_slice(&desc.id.to_le_bytes());
        pod.extend_from_slice(&desc.target.pod());
        pod.extend_from_slice(&desc.msg.pod());
        pod.extend_from_slice(&desc.file.pod());
        pod.extend_from_slice(&desc.line.to_le_bytes());
        pod.push(desc.level);
        pod.extend_from_slice(&[0; 3]);
        self.queue.push_static(DESCRIPTION_DEPENDENCY, &pod);
    }

    pub fn log_event(&mut self, event: &LogEvent) {
        match event {
            LogEvent::Interop {
                target, properties, ..
            } => {
                self.string(target);
                self.property_set(properties);
            }
            LogEvent::Tagged {
                desc, properties, ..
            } => {
                self.log_metadata(desc);
                self.property_set(properties);
            }
        }
    }

    /// `MetricMetadataDependency {Id, Lod, Name, Unit, Target, File, Line}`: 56 bytes.
    fn metric_metadata(&mut self, desc: &MetricMetadata) {
        if !self.first_time(desc.id) {
            return;
        }
        self.string(&desc.name);
        self.string(&desc.unit);
        self.string(&desc.target);
        self.string(&desc.file);
        let mut pod = Vec::with_capacity(56);
        pod.extend_from_slice(&desc.id.to_le_bytes());
        pod.push(desc.lod);
        pod.extend_from_slice(&[0; 7]);
        for id in [desc.name.id, desc.unit.id, desc.target.id, desc.file.id] {
            pod.extend_from_slice(&id.to_le_bytes());
        }
        pod.extend_from_slice(&desc.line.to_le_bytes());
        pod.extend_from_slice(&[0; 4]);
        self.queue.push_static(DESCRIPTION_DEPENDENCY, &pod);
    }

    pub fn metric_event(&mut self, event: &MetricEvent) {
        let (MetricEvent::Integer {
            desc, properties, ..
        }
        | MetricEvent::Float {
            desc, properties, ..
        }) = event;
        self.metric_metadata(desc);
        self.property_set(properties);
    }
}

/// `UDTMember` (`QueueMetadata.h`); `type_name` is the stringized C++ type of
/// `MAKE_UDT_MEMBER_METADATA`.
pub struct Member {
    pub name: &'static str,
    pub type_name: &'static str,
    pub offset: u64,
    pub size: u64,
    pub is_reference: bool,
}

/// `UserDefinedType` (`QueueMetadata.h`).
pub struct Udt {
    pub name: &'static str,
    pub size: u64,
    pub is_reference: bool,
    pub members: Vec<Member>,
}

const fn m(
    name: &'static str,
    type_name: &'static str,
    offset: u64,
    size: u64,
    is_reference: bool,
) -> Member {
    Member {
        name,
        type_name,
        offset,
        size,
        is_reference,
    }
}

fn udt(name: &'static str, size: u64, is_reference: bool, members: Vec<Member>) -> Udt {
    Udt {
        name,
        size,
        is_reference,
        members,
    }
}

fn static_string_dependency() -> Udt {
    udt("StaticStringDependency", 0, false, vec![])
}

fn property_set_dependency() -> Udt {
    udt("PropertySetDependency", 0, false, vec![])
}

fn property() -> Udt {
    udt(
        "Property",
        32,
        false,
        vec![
            m("name", "StaticStringRef", 0, 16, true),
            m("value", "StaticStringRef", 16, 16, true),
        ],
    )
}

/// `MakeQueueMetadata<ThreadDependenciesQueue>` (`ThreadDependencies.h`, `ThreadMetadata.h`).
pub fn thread_dependencies_metadata() -> Vec<Udt> {
    vec![
        static_string_dependency(),
        udt(
            "SpanMetadataDependency",
            40,
            false,
            vec![
                m("id", "uint64", 0, 8, false),
                m("name", "StaticStringRef", 8, 8, true),
                m("target", "StaticStringRef", 16, 8, true),
                m("file", "StaticStringRef", 24, 8, true),
                m("line", "uint32", 32, 4, false),
            ],
        ),
        udt(
            "SpanLocationDependency",
            32,
            false,
            vec![
                m("id", "uint64", 0, 8, false),
                m("target", "StaticStringRef", 8, 8, true),
                m("file", "StaticStringRef", 16, 8, true),
                m("line", "uint32", 24, 4, false),
            ],
        ),
    ]
}

/// `MakeQueueMetadata<ThreadEventQueue>` (`Fwd.h`, `ThreadMetadata.h`).
pub fn thread_objects_metadata() -> Vec<Udt> {
    let plain = |name| {
        udt(
            name,
            16,
            false,
            vec![
                m("thread_span_desc", "SpanMetadata*", 0, 8, true),
                m("time", "uint64", 8, 8, false),
            ],
        )
    };
    let named = |name| {
        udt(
            name,
            32,
            false,
            vec![
                m("thread_span_location", "NamedSpanLocation*", 0, 8, true),
                m("name", "StaticStringRef", 16, 16, true),
                m("time", "uint64", 8, 8, false),
            ],
        )
    };
    vec![
        plain("BeginThreadSpanEvent"),
        plain("EndThreadSpanEvent"),
        named("BeginThreadNamedSpanEvent"),
        named("EndThreadNamedSpanEvent"),
    ]
}

/// `MakeQueueMetadata<LogDependenciesQueue>` (`LogDependencies.h`, `LogMetadata.h`,
/// `PropertySetDependency.h`).
pub fn log_dependencies_metadata() -> Vec<Udt> {
    vec![
        static_string_dependency(),
        udt(
            "LogMetadataDependency",
            64,
            false,
            vec![
                m("id", "uint64", 0, 8, false),
                m("target", "StaticStringRef", 8, 16, true),
                m("fmt_str", "StaticStringRef", 24, 16, true),
                m("file", "StaticStringRef", 40, 16, true),
                m("line", "uint32", 56, 4, false),
                m("level", "uint8", 60, 1, false),
            ],
        ),
        property_set_dependency(),
        property(),
    ]
}

/// `MakeQueueMetadata<LogEventQueue>` (`Fwd.h`, `LogMetadata.h`, `StringsMetadata.h`).
pub fn log_objects_metadata() -> Vec<Udt> {
    vec![
        udt(
            "TaggedLogInteropEvent",
            0,
            false,
            vec![
                m("time", "uint64", 0, 8, false),
                m("level", "Level", 8, 1, false),
                m("target", "StaticStringRef", 16, 16, true),
                m("properties", "PropertySet*", 32, 8, true),
                m("msg", "DynamicString", 40, 16, false),
            ],
        ),
        udt(
            "TaggedLogString",
            0,
            false,
            vec![
                m("desc", "LogMetadata*", 0, 8, true),
                m("properties", "PropertySet*", 8, 8, true),
                m("time", "uint64", 16, 8, false),
                m("msg", "DynamicString", 24, 16, false),
            ],
        ),
        udt(
            "StaticStringRef",
            16,
            true,
            vec![m("id", "uint64", 0, 8, true)],
        ),
    ]
}

/// `MakeQueueMetadata<MetricDependenciesQueue>` (`MetricDependencies.h`, `MetricMetadata.h`).
pub fn metric_dependencies_metadata() -> Vec<Udt> {
    vec![
        static_string_dependency(),
        udt(
            "MetricMetadataDependency",
            56,
            false,
            vec![
                m("id", "uint64", 0, 8, false),
                m("lod", "uint8", 8, 1, false),
                m("name", "StaticStringRef", 16, 8, true),
                m("unit", "StaticStringRef", 24, 8, true),
                m("target", "StaticStringRef", 32, 8, true),
                m("file", "StaticStringRef", 40, 8, true),
                m("line", "uint32", 48, 4, false),
            ],
        ),
        property_set_dependency(),
        property(),
    ]
}

/// `MakeQueueMetadata<MetricEventQueue>` (`Fwd.h`, `MetricMetadata.h`).
pub fn metric_objects_metadata() -> Vec<Udt> {
    let event = |name, value_type| {
        udt(
            name,
            32,
            false,
            vec![
                m("desc", "MetricMetadata*", 0, 8, true),
                m("properties", "PropertySet*", 8, 8, true),
                m("value", value_type, 16, 8, false),
                m("time", "uint64", 24, 8, false),
            ],
        )
    };
    vec![
        event("TaggedIntegerMetricEvent", "uint64"),
        event("TaggedFloatMetricEvent", "f64"),
    ]
}
