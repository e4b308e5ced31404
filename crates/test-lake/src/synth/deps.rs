//! The dependencies buffer of a block, as micromegas-tracing 0.33 extracts it, for any stream:
//! thread (`ThreadDepsQueue`), log (`LogDepsQueue`) and metrics (`MetricsDepsQueue`) streams
//! share the record formats and the extraction rules, and differ only in type indices.
//!
//! `extract` walks the block's events in order and emits the static records each needs, each
//! address once per block (strings before the description or set that refers to them); then
//! the `'static` names and values of the block's dynamic property sets; then the block's
//! dynamic queue (runtime strings and sets, with ids `1 << 63 | offset << 1`, `| 1` for sets,
//! offset = byte offset in that queue).

use anyhow::Result;
use micromegas_telemetry::block_wire_format::BlockPayload;
use micromegas_telemetry::compression::compress;
use micromegas_telemetry::wire_format::encode_cbor;
use std::collections::{HashMap, HashSet};

use super::catalog::{CODEC_UTF8, CODEC_UTF16, Catalog, PropSet};
use super::metadata::TypeDesc;

/// Bit that keeps block-scoped ids away from addresses.
pub const DYN_ID_TAG: u64 = 1 << 63;

/// The property set of a tagged event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tag {
    /// An interned `PropertySet` (index into the set list the stream draws from).
    Interned(u32),
    /// An interned set merged with one runtime property: `dyn_prop_names[name] = value`.
    Merged { set: u32, name: u32, value: u64 },
}

/// The type indices of a stream's dependency records, and the size of its `Property`.
#[derive(Debug, Clone, Copy)]
pub struct DepTypes {
    /// `Utf8StaticStringDependency`, named `StaticString`: `u64 ptr` + UTF-8 bytes.
    pub static_string: u8,
    /// `StaticStringDependency`: `u64 id, u8 codec, u32 len, bytes`.
    pub string_dependency: u8,
    /// `PropertySetDependency`: `u64 id, u32 count, count × Property`.
    pub property_set: u8,
    pub property_size: usize,
}

impl DepTypes {
    /// The indices of the three record types in a stream's dependency metadata.
    pub fn of(table: &[TypeDesc]) -> Result<Self> {
        let index = |name: &str| -> Result<u8> {
            let at = table.iter().position(|t| t.name == name);
            Ok(u8::try_from(
                at.ok_or_else(|| anyhow::anyhow!("no {name} type"))?,
            )?)
        };
        let property = table.iter().find(|t| t.name == "Property");
        Ok(Self {
            static_string: index("StaticString")?,
            string_dependency: index("StaticStringDependency")?,
            property_set: index("PropertySetDependency")?,
            property_size: property.map(|p| p.size).unwrap_or(0),
        })
    }
}

pub fn put_u64(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

pub fn put_u32(buf: &mut [u8], at: usize, v: u32) {
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
fn push_codec_string(buf: &mut Vec<u8>, type_index: u8, id: u64, codec: u8, bytes: &[u8]) {
    buf.push(type_index);
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

fn push_property_set(buf: &mut Vec<u8>, types: &DepTypes, id: u64, properties: &[WireProperty]) {
    let size = types.property_size;
    buf.push(types.property_set);
    buf.extend_from_slice(&((8 + 4 + properties.len() * size) as u32).to_le_bytes());
    buf.extend_from_slice(&id.to_le_bytes());
    buf.extend_from_slice(&(properties.len() as u32).to_le_bytes());
    for p in properties {
        let mut bytes = vec![0u8; size];
        put_string_ref(&mut bytes, 0, p.name.0, p.name.1, CODEC_UTF8);
        put_string_ref(&mut bytes, size / 2, p.value.0, p.value.1, CODEC_UTF8);
        buf.extend_from_slice(&bytes);
    }
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

/// The dependencies of the block being filled.
pub struct Deps {
    types: DepTypes,
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

impl Deps {
    pub fn new(types: DepTypes) -> Self {
        Self {
            types,
            deps: Vec::new(),
            recorded: HashSet::new(),
            dyn_queue: Vec::new(),
            dyn_strings: HashMap::new(),
            dyn_sets: HashMap::new(),
            static_refs: Vec::new(),
        }
    }

    /// True the first time `addr` is seen in the block: its record is then to be written.
    pub fn first_sight(&mut self, addr: u64) -> bool {
        self.recorded.insert(addr)
    }

    /// Appends a fixed-size record (a description) of type `type_index`.
    pub fn push_record(&mut self, type_index: u8, record: &[u8]) {
        self.deps.push(type_index);
        self.deps.extend_from_slice(record);
    }

    /// A `Utf8StaticStringDependency` record (`StaticString`): `u64 ptr` + UTF-8 bytes.
    pub fn record_static_string(&mut self, addr: u64, text: &str) {
        if self.recorded.insert(addr) {
            self.deps.push(self.types.static_string);
            self.deps
                .extend_from_slice(&((8 + text.len()) as u32).to_le_bytes());
            self.deps.extend_from_slice(&addr.to_le_bytes());
            self.deps.extend_from_slice(text.as_bytes());
        }
    }

    /// Records `catalog.strings[index]`; returns its address.
    pub fn record_string_index(&mut self, catalog: &Catalog, index: usize) -> u64 {
        let s = &catalog.strings[index];
        self.record_static_string(s.addr, &s.text);
        s.addr
    }

    /// The id of the tag's set (from `sets`); records it (interned) or adds it to the dynamic
    /// queue (merged).
    pub fn record_tag(&mut self, catalog: &Catalog, sets: &[PropSet], tag: Tag) -> u64 {
        match tag {
            Tag::Interned(s) => self.record_interned_set(catalog, &sets[s as usize]),
            Tag::Merged { set, name, value } => {
                self.record_merged_set(catalog, &sets[set as usize], name, value)
            }
        }
    }

    fn record_interned_set(&mut self, catalog: &Catalog, set: &PropSet) -> u64 {
        if self.recorded.insert(set.addr) {
            let mut wire = Vec::new();
            for &(name, value) in &set.properties {
                let (n, v) = (&catalog.strings[name], &catalog.strings[value]);
                for s in [n, v] {
                    if self.recorded.insert(s.addr) {
                        let ty = self.types.string_dependency;
                        push_codec_string(
                            &mut self.deps,
                            ty,
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
            push_property_set(&mut self.deps, &self.types, set.addr, &wire);
        }
        set.addr
    }

    fn record_merged_set(
        &mut self,
        catalog: &Catalog,
        base: &PropSet,
        name: u32,
        value: u64,
    ) -> u64 {
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
        push_property_set(&mut self.dyn_queue, &self.types, id, &wire);
        self.dyn_sets.insert(refs, id);
        id
    }

    pub fn intern_dyn_string(&mut self, text: &str, codec: u8) -> u64 {
        if let Some(&id) = self.dyn_strings.get(&(codec, text.to_string())) {
            return id;
        }
        let id = DYN_ID_TAG | (self.dyn_queue.len() as u64) << 1;
        let ty = self.types.string_dependency;
        push_codec_string(
            &mut self.dyn_queue,
            ty,
            id,
            codec,
            &encode_text(text, codec),
        );
        self.dyn_strings.insert((codec, text.to_string()), id);
        id
    }

    /// The dependencies buffer as `extract` completes it; empties `self` for the next block.
    pub fn finish(&mut self, catalog: &Catalog) -> Vec<u8> {
        let mut dependencies = std::mem::take(&mut self.deps);
        for index in std::mem::take(&mut self.static_refs) {
            let s = &catalog.strings[index];
            if self.recorded.insert(s.addr) {
                let ty = self.types.string_dependency;
                push_codec_string(&mut dependencies, ty, s.addr, CODEC_UTF8, s.text.as_bytes());
            }
        }
        dependencies.extend_from_slice(&self.dyn_queue);
        *self = Self::new(self.types);
        dependencies
    }
}
