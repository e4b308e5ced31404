//! Builds the payload of one thread block: the objects buffer event by event, and the
//! dependencies buffer as micromegas-tracing 0.33 extracts it when the block is flushed.
//!
//! Dependencies follow `ThreadEventQueue::extract`: for each event in order, the static
//! records it needs (each address once per block): strings, then the span description or
//! location, then the interned property set; then the `'static` names and values of the
//! block's dynamic property sets; then the block's dynamic queue (runtime strings and sets,
//! with ids `1 << 63 | offset << 1`, `| 1` for sets, offset = byte offset in that queue).

use anyhow::{Context, Result};
use micromegas_telemetry::block_wire_format::BlockPayload;
use micromegas_telemetry::compression::compress;
use micromegas_telemetry::wire_format::encode_cbor;
use std::collections::{HashMap, HashSet};

use super::catalog::{CODEC_UTF8, CODEC_UTF16, Catalog};
use super::metadata::{THREAD_DEPENDENCIES, THREAD_OBJECTS, TypeDesc, dep, obj};

/// Bit that keeps block-scoped ids away from addresses.
pub const DYN_ID_TAG: u64 = 1 << 63;

/// How a span is described (kept from its begin to its end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Naming {
    /// `SpanMetadata` (index into `Catalog::descs`).
    Desc(u32),
    /// `SpanLocation` + `&'static str` name (indices into `locations` / `static_names`).
    Static { location: u32, name: u32 },
    /// `SpanLocation` + runtime name (indices into `locations` / `dyn_names`).
    Dyn { location: u32, name: u32 },
}

/// The async fields of an async span event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct AsyncIds {
    pub span_id: u64,
    pub parent_span_id: u64,
    pub depth: u32,
}

/// The property set of a tagged end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tag {
    /// An interned `PropertySet` (index into `Catalog::prop_sets`).
    Interned(u32),
    /// An interned set merged with one runtime property: `dyn_prop_names[name] = value`.
    Merged { set: u32, name: u32, value: u64 },
}

#[derive(Debug, Clone, Copy)]
pub struct Event {
    /// `None` for thread spans.
    pub async_ids: Option<AsyncIds>,
    pub begin: bool,
    pub naming: Naming,
    /// Only on ends.
    pub tag: Option<Tag>,
    pub time: i64,
}

/// Where the fields of an event type are, from the metadata tables.
struct ObjectLayout {
    size: usize,
    location: usize,
    /// Offset of the name and whether it is a `StringId` (ptr + len) rather than a `DynStringId`.
    name: Option<(usize, bool)>,
    properties: Option<usize>,
    span_id: Option<usize>,
    parent_span_id: Option<usize>,
    depth: Option<usize>,
    time: usize,
}

pub struct Layouts {
    objects: Vec<ObjectLayout>,
    property_size: usize,
}

fn offset(ty: &TypeDesc, member: &str) -> Option<usize> {
    ty.member(member).map(|m| m.offset)
}

impl Layouts {
    pub fn new() -> Result<Self> {
        let objects = THREAD_OBJECTS[..obj::COUNT]
            .iter()
            .map(|ty| {
                let location = [
                    "thread_span_desc",
                    "span_desc",
                    "thread_span_location",
                    "span_location",
                ]
                .iter()
                .find_map(|m| offset(ty, m))
                .with_context(|| format!("{} has no description member", ty.name))?;
                Ok(ObjectLayout {
                    size: ty.size,
                    location,
                    name: ty
                        .member("name")
                        .map(|m| (m.offset, m.type_name == "StringId")),
                    properties: offset(ty, "properties"),
                    span_id: offset(ty, "span_id"),
                    parent_span_id: offset(ty, "parent_span_id"),
                    depth: offset(ty, "depth"),
                    time: offset(ty, "time").with_context(|| format!("{} has no time", ty.name))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let property = THREAD_DEPENDENCIES
            .iter()
            .find(|t| t.name == "Property")
            .context("no Property type")?;
        Ok(Self {
            objects,
            property_size: property.size,
        })
    }
}

fn put_u64(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// A `StaticStringRef`: `u64 ptr, u32 len, u8 codec` and 3 bytes of padding (zero here).
fn put_string_ref(buf: &mut [u8], at: usize, id: u64, len: u32, codec: u8) {
    put_u64(buf, at, id);
    put_u32(buf, at + 8, len);
    buf[at + 12] = codec;
}

fn encode_text(text: &str, codec: u8) -> Vec<u8> {
    if codec == CODEC_UTF16 {
        text.encode_utf16().flat_map(u16::to_le_bytes).collect()
    } else {
        text.as_bytes().to_vec()
    }
}

/// A `StaticStringDependency` record: `u64 id, u8 codec, u32 len, bytes`.
fn push_codec_string(buf: &mut Vec<u8>, id: u64, codec: u8, bytes: &[u8]) {
    buf.push(dep::STATIC_STRING_DEPENDENCY);
    buf.extend_from_slice(&((8 + 1 + 4 + bytes.len()) as u32).to_le_bytes());
    buf.extend_from_slice(&id.to_le_bytes());
    buf.push(codec);
    buf.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    buf.extend_from_slice(bytes);
}

/// A property of a set as it goes on the wire: a reference and its length, for name and value.
struct WireProperty {
    name: (u64, u32),
    value: (u64, u32),
}

fn push_property_set(
    buf: &mut Vec<u8>,
    id: u64,
    properties: &[WireProperty],
    property_size: usize,
) {
    buf.push(dep::PROPERTY_SET_DEPENDENCY);
    buf.extend_from_slice(&((8 + 4 + properties.len() * property_size) as u32).to_le_bytes());
    buf.extend_from_slice(&id.to_le_bytes());
    buf.extend_from_slice(&(properties.len() as u32).to_le_bytes());
    for p in properties {
        let mut bytes = vec![0u8; property_size];
        put_string_ref(&mut bytes, 0, p.name.0, p.name.1, CODEC_UTF8);
        put_string_ref(
            &mut bytes,
            property_size / 2,
            p.value.0,
            p.value.1,
            CODEC_UTF8,
        );
        buf.extend_from_slice(&bytes);
    }
}

/// The block being filled for one thread stream.
#[derive(Default)]
pub struct BlockBuilder {
    objects: Vec<u8>,
    nb_objects: usize,
    /// Static dependency records, in extraction order.
    deps: Vec<u8>,
    recorded: HashSet<u64>,
    /// The block's dynamic queue.
    dyn_queue: Vec<u8>,
    dyn_strings: HashMap<(u8, String), u64>,
    dyn_sets: HashMap<Vec<(u64, u64)>, u64>,
    /// `'static` names and values used by dynamic sets (indices into `Catalog::strings`).
    static_refs: Vec<usize>,
}

/// A block ready to be stored.
pub struct FinishedBlock {
    pub dependencies: Vec<u8>,
    pub objects: Vec<u8>,
    pub nb_objects: usize,
}

impl FinishedBlock {
    /// Encodes the block as the sink does: each buffer LZ4-framed (`compress`, level 10, as
    /// micromegas-telemetry-sink), then the CBOR envelope. This is most of the generator's CPU
    /// time, so it runs off the generating task.
    pub fn encode(&self) -> Result<Vec<u8>> {
        encode_cbor(&BlockPayload {
            dependencies: compress(&self.dependencies)?,
            objects: compress(&self.objects)?,
        })
    }
}

impl BlockBuilder {
    pub fn nb_objects(&self) -> usize {
        self.nb_objects
    }

    pub fn push(&mut self, catalog: &Catalog, layouts: &Layouts, event: &Event) {
        let (scope_index, name_arg) = self.record_dependencies(catalog, layouts, event);
        let layout = &layouts.objects[scope_index as usize];
        let mut record = vec![0u8; layout.size];
        let location = match event.naming {
            Naming::Desc(d) => catalog.descs[d as usize].addr,
            Naming::Static { location, .. } | Naming::Dyn { location, .. } => {
                catalog.locations[location as usize].addr
            }
        };
        put_u64(&mut record, layout.location, location);
        if let (Some((at, is_string_id)), Some((id, len))) = (layout.name, name_arg.name) {
            put_u64(&mut record, at, id);
            if is_string_id {
                put_u32(&mut record, at + 8, len);
            }
        }
        if let (Some(at), Some(set)) = (layout.properties, name_arg.set) {
            put_u64(&mut record, at, set);
        }
        if let Some(ids) = event.async_ids {
            put_u64(
                &mut record,
                layout.span_id.expect("async layout"),
                ids.span_id,
            );
            put_u64(
                &mut record,
                layout.parent_span_id.expect("async layout"),
                ids.parent_span_id,
            );
            put_u32(&mut record, layout.depth.expect("async layout"), ids.depth);
        }
        put_u64(&mut record, layout.time, event.time as u64);
        self.objects.push(scope_index);
        self.objects.extend_from_slice(&record);
        self.nb_objects += 1;
    }

    /// Records what the event refers to; returns its type index and the ids to write in it.
    fn record_dependencies(
        &mut self,
        catalog: &Catalog,
        layouts: &Layouts,
        event: &Event,
    ) -> (u8, Refs) {
        let is_async = event.async_ids.is_some();
        let mut refs = Refs::default();
        let type_index = match (event.begin, event.tag, event.naming) {
            (true, _, Naming::Desc(d)) => {
                self.record_desc(catalog, d);
                if is_async {
                    obj::BEGIN_ASYNC
                } else {
                    obj::BEGIN_THREAD
                }
            }
            (false, None, Naming::Desc(d)) => {
                self.record_desc(catalog, d);
                if is_async {
                    obj::END_ASYNC
                } else {
                    obj::END_THREAD
                }
            }
            (false, Some(tag), Naming::Desc(d)) => {
                self.record_desc(catalog, d);
                refs.set = Some(self.record_tag(catalog, layouts.property_size, tag));
                if is_async {
                    obj::TAGGED_END_ASYNC
                } else {
                    obj::TAGGED_END_THREAD
                }
            }
            (begin, None, Naming::Static { location, name }) => {
                self.record_location(catalog, location);
                let s = &catalog.strings[catalog.static_names[name as usize]];
                self.record_static_string(s.addr, &s.text);
                refs.name = Some((s.addr, s.text.len() as u32));
                match (begin, is_async) {
                    (true, false) => obj::BEGIN_THREAD_NAMED,
                    (false, false) => obj::END_THREAD_NAMED,
                    (true, true) => obj::BEGIN_ASYNC_NAMED,
                    (false, true) => obj::END_ASYNC_NAMED,
                }
            }
            (begin, None, Naming::Dyn { location, name }) => {
                self.record_location(catalog, location);
                let n = &catalog.dyn_names[name as usize];
                refs.name = Some((self.intern_dyn_string(&n.text, n.codec), 0));
                match (begin, is_async) {
                    (true, false) => obj::BEGIN_THREAD_DYN_NAMED,
                    (false, false) => obj::END_THREAD_DYN_NAMED,
                    (true, true) => obj::BEGIN_ASYNC_DYN_NAMED,
                    (false, true) => obj::END_ASYNC_DYN_NAMED,
                }
            }
            (_, Some(tag), Naming::Static { location, name } | Naming::Dyn { location, name }) => {
                // A tagged end always carries its name as a block-scoped string.
                self.record_location(catalog, location);
                let (text, codec) = match event.naming {
                    Naming::Static { .. } => (
                        &catalog.strings[catalog.static_names[name as usize]].text,
                        CODEC_UTF8,
                    ),
                    _ => {
                        let n = &catalog.dyn_names[name as usize];
                        (&n.text, n.codec)
                    }
                };
                refs.name = Some((self.intern_dyn_string(text, codec), 0));
                refs.set = Some(self.record_tag(catalog, layouts.property_size, tag));
                if is_async {
                    obj::TAGGED_END_ASYNC_NAMED
                } else {
                    obj::TAGGED_END_THREAD_NAMED
                }
            }
        };
        (type_index, refs)
    }

    /// A `Utf8StaticStringDependency` record (`StaticString`): `u64 ptr` + UTF-8 bytes.
    fn record_static_string(&mut self, addr: u64, text: &str) {
        if self.recorded.insert(addr) {
            self.deps.push(dep::STATIC_STRING);
            self.deps
                .extend_from_slice(&((8 + text.len()) as u32).to_le_bytes());
            self.deps.extend_from_slice(&addr.to_le_bytes());
            self.deps.extend_from_slice(text.as_bytes());
        }
    }

    fn record_string_index(&mut self, catalog: &Catalog, index: usize) -> u64 {
        let s = &catalog.strings[index];
        self.record_static_string(s.addr, &s.text);
        s.addr
    }

    fn record_desc(&mut self, catalog: &Catalog, d: u32) {
        let desc = &catalog.descs[d as usize];
        if !self.recorded.insert(desc.addr) {
            return;
        }
        let name = self.record_string_index(catalog, desc.name);
        let target = self.record_string_index(catalog, desc.target);
        let module_path = self.record_string_index(catalog, desc.module_path);
        let file = self.record_string_index(catalog, desc.file);
        let ty = &THREAD_DEPENDENCIES[dep::SPAN_RECORD as usize];
        let mut record = vec![0u8; ty.size];
        for (member, value) in [
            ("id", desc.addr),
            ("name", name),
            ("target", target),
            ("module_path", module_path),
            ("file", file),
        ] {
            put_u64(
                &mut record,
                offset(ty, member).expect("SpanRecord member"),
                value,
            );
        }
        put_u32(&mut record, offset(ty, "line").expect("line"), desc.line);
        put_u32(&mut record, offset(ty, "lod").expect("lod"), desc.lod);
        self.deps.push(dep::SPAN_RECORD);
        self.deps.extend_from_slice(&record);
    }

    fn record_location(&mut self, catalog: &Catalog, l: u32) {
        let loc = &catalog.locations[l as usize];
        if !self.recorded.insert(loc.addr) {
            return;
        }
        let target = self.record_string_index(catalog, loc.target);
        let module_path = self.record_string_index(catalog, loc.module_path);
        let file = self.record_string_index(catalog, loc.file);
        let ty = &THREAD_DEPENDENCIES[dep::SPAN_LOCATION_RECORD as usize];
        let mut record = vec![0u8; ty.size];
        for (member, value) in [
            ("id", loc.addr),
            ("target", target),
            ("module_path", module_path),
            ("file", file),
        ] {
            put_u64(
                &mut record,
                offset(ty, member).expect("SpanLocationRecord member"),
                value,
            );
        }
        put_u32(&mut record, offset(ty, "line").expect("line"), loc.line);
        put_u32(&mut record, offset(ty, "lod").expect("lod"), loc.lod);
        self.deps.push(dep::SPAN_LOCATION_RECORD);
        self.deps.extend_from_slice(&record);
    }

    /// The id of the tag's set; records it (interned) or adds it to the dynamic queue (merged).
    fn record_tag(&mut self, catalog: &Catalog, property_size: usize, tag: Tag) -> u64 {
        match tag {
            Tag::Interned(s) => {
                let set = &catalog.prop_sets[s as usize];
                if self.recorded.insert(set.addr) {
                    let mut wire = Vec::new();
                    for &(name, value) in &set.properties {
                        let (n, v) = (&catalog.strings[name], &catalog.strings[value]);
                        for s in [n, v] {
                            if self.recorded.insert(s.addr) {
                                push_codec_string(
                                    &mut self.deps,
                                    s.addr,
                                    CODEC_UTF8,
                                    s.text.as_bytes(),
                                );
                            }
                        }
                        wire.push(WireProperty {
                            name: (n.addr, n.text.len() as u32),
                            value: (v.addr, v.text.len() as u32),
                        });
                    }
                    push_property_set(&mut self.deps, set.addr, &wire, property_size);
                }
                set.addr
            }
            Tag::Merged { set, name, value } => {
                let base = &catalog.prop_sets[set as usize];
                let dyn_name = catalog.dyn_prop_names[name as usize];
                let value_text = value.to_string();
                // Static properties and the dynamic one, sorted by name.
                let mut props: Vec<(usize, Option<usize>)> =
                    base.properties.iter().map(|&(n, v)| (n, Some(v))).collect();
                props.push((dyn_name, None));
                props.sort_by(|a, b| catalog.strings[a.0].text.cmp(&catalog.strings[b.0].text));
                let mut wire = Vec::new();
                let mut refs = Vec::new();
                for &(n, v) in &props {
                    let n = &catalog.strings[n];
                    let value = match v {
                        Some(v) => (
                            catalog.strings[v].addr,
                            catalog.strings[v].text.len() as u32,
                        ),
                        None => (
                            self.intern_dyn_string(&value_text, CODEC_UTF8),
                            value_text.len() as u32,
                        ),
                    };
                    wire.push(WireProperty {
                        name: (n.addr, n.text.len() as u32),
                        value,
                    });
                    refs.push((n.addr, value.0));
                }
                if let Some(&id) = self.dyn_sets.get(&refs) {
                    return id;
                }
                for &(n, v) in &props {
                    self.static_refs.push(n);
                    if let Some(v) = v {
                        self.static_refs.push(v);
                    }
                }
                let id = DYN_ID_TAG | (self.dyn_queue.len() as u64) << 1 | 1;
                push_property_set(&mut self.dyn_queue, id, &wire, property_size);
                self.dyn_sets.insert(refs, id);
                id
            }
        }
    }

    fn intern_dyn_string(&mut self, text: &str, codec: u8) -> u64 {
        if let Some(&id) = self.dyn_strings.get(&(codec, text.to_string())) {
            return id;
        }
        let id = DYN_ID_TAG | (self.dyn_queue.len() as u64) << 1;
        push_codec_string(&mut self.dyn_queue, id, codec, &encode_text(text, codec));
        self.dyn_strings.insert((codec, text.to_string()), id);
        id
    }

    /// The block's two buffers, dependencies as `extract` completes them; empties the builder
    /// for the next block.
    pub fn finish(&mut self, catalog: &Catalog) -> FinishedBlock {
        let mut dependencies = std::mem::take(&mut self.deps);
        for index in std::mem::take(&mut self.static_refs) {
            let s = &catalog.strings[index];
            if self.recorded.insert(s.addr) {
                push_codec_string(&mut dependencies, s.addr, CODEC_UTF8, s.text.as_bytes());
            }
        }
        dependencies.extend_from_slice(&self.dyn_queue);
        let finished = FinishedBlock {
            dependencies,
            objects: std::mem::take(&mut self.objects),
            nb_objects: self.nb_objects,
        };
        *self = Self::default();
        finished
    }
}

#[derive(Default)]
struct Refs {
    /// Name reference and, for a `StringId`, the name's length.
    name: Option<(u64, u32)>,
    set: Option<u64>,
}
