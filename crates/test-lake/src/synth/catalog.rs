//! The static side of one synthetic process: its string literals, span descriptions, span
//! locations and interned property sets, each at a fake but plausible address, as the real
//! instrumentation refers to them by address.

use std::collections::HashSet;

use super::record_catalog::{LogCatalog, MetricCatalog};
use super::rng::Rng;

/// Codec bytes of `StaticStringDependency` records.
pub const CODEC_UTF16: u8 = 1;
pub const CODEC_UTF8: u8 = 2;

/// A `&'static str` of the program: its address is its id on the wire.
pub struct StaticStr {
    pub addr: u64,
    pub text: String,
}

/// A `SpanMetadata` (plain spans): a name and a location. Fields are indices into `strings`.
pub struct SpanDesc {
    pub addr: u64,
    pub name: usize,
    pub target: usize,
    pub module_path: usize,
    pub file: usize,
    pub line: u32,
    pub lod: u32,
}

/// A `SpanLocation` (named spans). Fields are indices into `strings`.
pub struct Location {
    pub addr: u64,
    pub target: usize,
    pub module_path: usize,
    pub file: usize,
    pub line: u32,
    pub lod: u32,
}

/// An interned `PropertySet`: (name, value) string indices, sorted by name.
pub struct PropSet {
    pub addr: u64,
    pub properties: Vec<(usize, usize)>,
}

/// A span name built at run time.
pub struct DynName {
    pub text: String,
    pub codec: u8,
}

pub struct Catalog {
    pub strings: Vec<StaticStr>,
    pub descs: Vec<SpanDesc>,
    pub locations: Vec<Location>,
    /// Static names of named spans (indices into `strings`).
    pub static_names: Vec<usize>,
    pub dyn_names: Vec<DynName>,
    pub prop_sets: Vec<PropSet>,
    /// Static names of properties whose values are built at run time (indices into `strings`).
    pub dyn_prop_names: Vec<usize>,
    /// Log call sites.
    pub logs: LogCatalog,
    /// Metrics and their series.
    pub metrics: MetricCatalog,
}

const MODULES: &[&str] = &[
    "net::http",
    "net::tls",
    "db::pool",
    "db::query",
    "render::frame",
    "render::mesh",
    "io::fs",
    "io::compress",
    "sched::worker",
    "sched::timer",
    "cache",
    "auth",
    "json",
    "metrics",
    "physics",
    "audio",
];
pub(super) const VERBS: &[&str] = &[
    "read", "write", "parse", "encode", "decode", "handle", "process", "update", "flush", "load",
    "store", "compute", "render", "resolve", "poll", "send", "recv", "lookup", "compress",
    "schedule",
];
pub(super) const NOUNS: &[&str] = &[
    "request", "header", "body", "frame", "mesh", "texture", "row", "batch", "chunk", "token",
    "session", "entry", "index", "packet", "buffer", "job", "tick", "query", "record", "event",
];
const PROPERTIES: &[(&str, &[&str])] = &[
    ("status", &["ok", "error", "timeout", "cancelled"]),
    ("cache", &["hit", "miss"]),
    ("db.table", &["users", "orders", "items", "sessions"]),
    ("http.method", &["GET", "POST", "PUT", "DELETE"]),
    ("region", &["eu-west-1", "us-east-2", "ap-south-1"]),
    ("retry", &["0", "1", "2"]),
];
const DYN_PROPERTY_NAMES: &[&str] = &["rows", "bytes", "user", "attempt"];

/// Lays strings out one after the other, as in a binary's `.rodata`.
pub(super) struct Rodata {
    strings: Vec<StaticStr>,
    next: u64,
}

impl Rodata {
    pub(super) fn add(&mut self, text: String) -> usize {
        let addr = self.next;
        // Literals are not NUL-terminated in Rust; a small gap keeps neighbours apart.
        self.next += text.len().max(1) as u64 + 1;
        self.strings.push(StaticStr { addr, text });
        self.strings.len() - 1
    }
}

impl Catalog {
    pub fn new(rng: &mut Rng) -> Self {
        // Position-independent executables are mapped around 0x55xx_xxxx_x000 on x86_64 Linux.
        let image_base = 0x5500_0000_0000 + rng.below(0x0fff_ffff) * 0x1000;
        let mut rodata = Rodata {
            strings: Vec::new(),
            next: image_base + 0x0004_0000,
        };
        let mut modules = Vec::new();
        for module in MODULES {
            let path = format!("synth_app::{module}");
            let target = rodata.add(path.clone());
            // `target` defaults to the module path, but is a distinct literal at another address.
            let module_path = rodata.add(path);
            let file = rodata.add(format!("src/{}.rs", module.replace("::", "/")));
            modules.push((target, module_path, file));
        }

        let data_base = image_base + 0x0080_0000;
        let mut seen = HashSet::new();
        let mut descs = Vec::new();
        while descs.len() < 256 {
            let m = rng.index(MODULES.len());
            let name = format!(
                "synth_app::{}::{}_{}",
                MODULES[m],
                VERBS[rng.index(VERBS.len())],
                NOUNS[rng.index(NOUNS.len())]
            );
            if !seen.insert(name.clone()) {
                continue;
            }
            let (target, module_path, file) = modules[m];
            descs.push(SpanDesc {
                addr: data_base + descs.len() as u64 * 0x50,
                name: rodata.add(name),
                target,
                module_path,
                file,
                line: rng.range(10, 2000) as u32,
                lod: rng.range(1, 4) as u32,
            });
        }

        let locations = (0..48)
            .map(|k| {
                let (target, module_path, file) = modules[rng.index(MODULES.len())];
                Location {
                    addr: data_base + 0x0001_0000 + k * 0x40,
                    target,
                    module_path,
                    file,
                    line: rng.range(10, 2000) as u32,
                    lod: rng.range(1, 4) as u32,
                }
            })
            .collect();

        let mut static_names = Vec::new();
        seen.clear();
        while static_names.len() < 128 {
            let name = match rng.below(4) {
                0 => format!(
                    "{} /api/v{}/{}",
                    ["GET", "POST", "PUT", "DELETE"][rng.index(4)],
                    rng.range(1, 4),
                    NOUNS[rng.index(NOUNS.len())]
                ),
                1 => format!(
                    "load {}_{:02}.png",
                    NOUNS[rng.index(NOUNS.len())],
                    rng.below(100)
                ),
                2 => format!(
                    "query {}_by_{}",
                    NOUNS[rng.index(NOUNS.len())],
                    NOUNS[rng.index(NOUNS.len())]
                ),
                _ => format!("system::{}", VERBS[rng.index(VERBS.len())]),
            };
            if seen.insert(name.clone()) {
                static_names.push(rodata.add(name));
            }
        }

        let dyn_names = (0..1024)
            .map(|k| {
                let n = rng.below(100_000);
                match rng.below(10) {
                    0 | 1 => DynName {
                        // Unreal sends wide strings.
                        text: ["Ünreal::Tick", "задача", "描画パス", "Büro-Job"][rng.index(4)]
                            .to_string()
                            + &format!(" {n}"),
                        codec: CODEC_UTF16,
                    },
                    2 => DynName {
                        text: format!("café order {n} ✓"),
                        codec: CODEC_UTF8,
                    },
                    3..=5 => DynName {
                        text: format!("frame {k}"),
                        codec: CODEC_UTF8,
                    },
                    _ => DynName {
                        text: format!("{} {n:05x}", NOUNS[rng.index(NOUNS.len())]),
                        codec: CODEC_UTF8,
                    },
                }
            })
            .collect();

        let mut property_strings = Vec::new();
        for (name, values) in PROPERTIES {
            let name = rodata.add((*name).to_string());
            let values: Vec<usize> = values
                .iter()
                .map(|v| rodata.add((*v).to_string()))
                .collect();
            property_strings.push((name, values));
        }
        let heap_base = image_base + 0x0100_0000 + rng.below(0x1000) * 0x1000;
        let prop_sets = (0..12)
            .map(|k| {
                let mut chosen: Vec<usize> = Vec::new();
                let count = rng.range(1, 4) as usize;
                while chosen.len() < count {
                    let p = rng.index(PROPERTIES.len());
                    if !chosen.contains(&p) {
                        chosen.push(p);
                    }
                }
                chosen.sort_by_key(|&p| PROPERTIES[p].0);
                PropSet {
                    addr: heap_base + k * 0x40,
                    properties: chosen
                        .into_iter()
                        .map(|p| {
                            let (name, values) = &property_strings[p];
                            (*name, values[rng.index(values.len())])
                        })
                        .collect(),
                }
            })
            .collect();
        let dyn_prop_names = DYN_PROPERTY_NAMES
            .iter()
            .map(|n| rodata.add((*n).to_string()))
            .collect();
        // Drawn last, so that the span side of a process is the same with or without them.
        let logs = LogCatalog::new(rng, &mut rodata, &modules, data_base + 0x0002_0000);
        let metrics = MetricCatalog::new(
            rng,
            &mut rodata,
            &modules,
            data_base + 0x0003_0000,
            heap_base + 0x2000,
        );

        Self {
            strings: rodata.strings,
            descs,
            locations,
            static_names,
            dyn_names,
            prop_sets,
            dyn_prop_names,
            logs,
            metrics,
        }
    }
}
