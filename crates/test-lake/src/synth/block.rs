//! Builds the payload of one thread block: the objects buffer event by event, and the
//! dependencies buffer as micromegas-tracing 0.33 extracts it when the block is flushed
//! (`ThreadEventQueue::extract`, see [`super::deps`]): for each event in order, the strings,
//! then the span description or location, then the interned property set it needs.

use anyhow::{Context, Result};

use super::catalog::{CODEC_UTF8, Catalog};
use super::deps::{DepTypes, Deps, FinishedBlock, Tag, put_u32, put_u64};
use super::metadata::{THREAD_DEPENDENCIES, THREAD_OBJECTS, TypeDesc, dep, obj};

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
    deps: DepTypes,
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
        Ok(Self {
            objects,
            deps: DepTypes::of(THREAD_DEPENDENCIES)?,
        })
    }
}

/// The block being filled for one thread stream.
pub struct BlockBuilder {
    objects: Vec<u8>,
    nb_objects: usize,
    deps: Deps,
}

impl BlockBuilder {
    pub fn new(layouts: &Layouts) -> Self {
        Self {
            objects: Vec::new(),
            nb_objects: 0,
            deps: Deps::new(layouts.deps),
        }
    }

    pub fn nb_objects(&self) -> usize {
        self.nb_objects
    }

    pub fn push(&mut self, catalog: &Catalog, layouts: &Layouts, event: &Event) {
        let (scope_index, name_arg) = self.record_dependencies(catalog, event);
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
    fn record_dependencies(&mut self, catalog: &Catalog, event: &Event) -> (u8, Refs) {
        let is_async = event.async_ids.is_some();
        let mut refs = Refs::default();
        let sets = &catalog.prop_sets;
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
                refs.set = Some(self.deps.record_tag(catalog, sets, tag));
                if is_async {
                    obj::TAGGED_END_ASYNC
                } else {
                    obj::TAGGED_END_THREAD
                }
            }
            (begin, None, Naming::Static { location, name }) => {
                self.record_location(catalog, location);
                let s = &catalog.strings[catalog.static_names[name as usize]];
                self.deps.record_static_string(s.addr, &s.text);
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
                refs.name = Some((self.deps.intern_dyn_string(&n.text, n.codec), 0));
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
                refs.name = Some((self.deps.intern_dyn_string(text, codec), 0));
                refs.set = Some(self.deps.record_tag(catalog, sets, tag));
                if is_async {
                    obj::TAGGED_END_ASYNC_NAMED
                } else {
                    obj::TAGGED_END_THREAD_NAMED
                }
            }
        };
        (type_index, refs)
    }

    fn record_desc(&mut self, catalog: &Catalog, d: u32) {
        let desc = &catalog.descs[d as usize];
        if !self.deps.first_sight(desc.addr) {
            return;
        }
        let name = self.deps.record_string_index(catalog, desc.name);
        let target = self.deps.record_string_index(catalog, desc.target);
        let module_path = self.deps.record_string_index(catalog, desc.module_path);
        let file = self.deps.record_string_index(catalog, desc.file);
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
        self.deps.push_record(dep::SPAN_RECORD, &record);
    }

    fn record_location(&mut self, catalog: &Catalog, l: u32) {
        let loc = &catalog.locations[l as usize];
        if !self.deps.first_sight(loc.addr) {
            return;
        }
        let target = self.deps.record_string_index(catalog, loc.target);
        let module_path = self.deps.record_string_index(catalog, loc.module_path);
        let file = self.deps.record_string_index(catalog, loc.file);
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
        self.deps.push_record(dep::SPAN_LOCATION_RECORD, &record);
    }

    /// The block's two buffers, dependencies as `extract` completes them; empties the builder
    /// for the next block.
    pub fn finish(&mut self, catalog: &Catalog) -> FinishedBlock {
        FinishedBlock {
            dependencies: self.deps.finish(catalog),
            objects: std::mem::take(&mut self.objects),
            nb_objects: std::mem::take(&mut self.nb_objects),
        }
    }
}

#[derive(Default)]
struct Refs {
    /// Name reference and, for a `StringId`, the name's length.
    name: Option<(u64, u32)>,
    set: Option<u64>,
}
