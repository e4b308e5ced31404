//! The strings of one export (span names, targets, files, thread names, annotation texts) and
//! the property sets of tagged span ends, each stored once and referred to by a small integer
//! everywhere downstream of decoding.

use std::sync::Arc;

/// The one hash map type of the hot paths: fast seeded hashing (foldhash) instead of SipHash,
/// for keys that are not attacker-chosen in a way that matters here (a lake's own strings).
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// An interned string; `Sym::default()` is the empty string.
pub type Sym = u32;

/// The interned properties of a tagged span end: (key, value) pairs, sorted by key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PropertySet(u32);

impl PropertySet {
    /// No property (most events).
    pub const NONE: PropertySet = PropertySet(0);

    pub fn is_none(self) -> bool {
        self == Self::NONE
    }
}

type Pairs = Arc<[(Sym, Sym)]>;

/// What symbols and property sets stand for: all a reader needs (the trace encoder keeps a
/// copy of this part only, brought up to date with [`SymbolTable::append`]).
#[derive(Clone)]
pub struct SymbolTable {
    strings: Vec<Arc<str>>,
    sets: Vec<Pairs>,
}

/// Interns strings and property sets: the table, and the indexes that find what it holds.
#[derive(Clone)]
pub struct Symbols {
    table: SymbolTable,
    index: FastMap<Arc<str>, Sym>,
    set_index: FastMap<Pairs, PropertySet>,
}

/// How much a [`SymbolTable`] holds: a copy made at this mark lacks what was interned since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    strings: usize,
    sets: usize,
}

/// What was interned after a [`Mark`], to bring a copy up to date ([`SymbolTable::append`]).
#[derive(Debug, Default)]
pub struct Interned {
    strings: Vec<Arc<str>>,
    sets: Vec<Pairs>,
}

impl Default for Symbols {
    fn default() -> Self {
        Self::new()
    }
}

impl std::ops::Deref for Symbols {
    type Target = SymbolTable;

    fn deref(&self) -> &SymbolTable {
        &self.table
    }
}

impl Symbols {
    pub fn new() -> Self {
        let empty: Arc<str> = Arc::from("");
        let no_pairs: Pairs = Arc::from([]);
        Self {
            table: SymbolTable {
                strings: vec![empty.clone()],
                sets: vec![no_pairs.clone()],
            },
            index: FastMap::from_iter([(empty, 0)]),
            set_index: FastMap::from_iter([(no_pairs, PropertySet::NONE)]),
        }
    }

    /// Makes room for `additional` more strings at once: a partition's string table is interned
    /// in one go, and a growing index would rehash every string it holds at each step.
    pub fn reserve(&mut self, additional: usize) {
        self.index.reserve(additional);
        self.table.strings.reserve(additional);
    }

    pub fn intern(&mut self, text: &str) -> Sym {
        if let Some(&sym) = self.index.get(text) {
            return sym;
        }
        let sym = self.table.strings.len() as Sym;
        let text: Arc<str> = Arc::from(text);
        self.table.strings.push(text.clone());
        self.index.insert(text, sym);
        sym
    }

    /// The set of these pairs (keys and values already interned); no pair is `NONE`.
    pub fn intern_properties(&mut self, pairs: &[(Sym, Sym)]) -> PropertySet {
        if let Some(&set) = self.set_index.get(pairs) {
            return set;
        }
        let set = PropertySet(self.table.sets.len() as u32);
        let pairs: Pairs = Arc::from(pairs);
        self.table.sets.push(pairs.clone());
        self.set_index.insert(pairs, set);
        set
    }

    /// The table alone, for a reader.
    pub fn table(&self) -> &SymbolTable {
        &self.table
    }
}

impl SymbolTable {
    pub fn get(&self, sym: Sym) -> &str {
        &self.strings[sym as usize]
    }

    /// The (key, value) pairs of a property set.
    pub fn properties(&self, set: PropertySet) -> &[(Sym, Sym)] {
        &self.sets[set.0 as usize]
    }

    pub fn mark(&self) -> Mark {
        Mark {
            strings: self.strings.len(),
            sets: self.sets.len(),
        }
    }

    /// What was interned after `mark`, in order: what a copy made at `mark` lacks.
    pub fn interned_since(&self, mark: Mark) -> Interned {
        Interned {
            strings: self.strings[mark.strings..].to_vec(),
            sets: self.sets[mark.sets..].to_vec(),
        }
    }

    /// Brings a copy up to date with what [`SymbolTable::interned_since`] gave: the copy then
    /// maps every symbol and property set of the original to the same value.
    pub fn append(&mut self, interned: Interned) {
        self.strings.extend(interned.strings);
        self.sets.extend(interned.sets);
    }
}
