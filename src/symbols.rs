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
    index: TextIndex,
    set_index: FastMap<Pairs, PropertySet>,
}

/// Finds strings by text: each entry keeps its text's hash, so that growing the index never
/// hashes a string again (a large log's index holds hundreds of thousands of long messages).
#[derive(Clone, Default)]
pub struct TextIndex {
    hasher: foldhash::fast::RandomState,
    entries: hashbrown::HashTable<(u64, u32)>,
}

impl TextIndex {
    /// The hash of `text`, to look it up or add it.
    pub fn hash(&self, text: &str) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(text)
    }

    /// The value of the entry of `hash` whose text is the one looked up (`is_text(value)`).
    pub fn find(&self, hash: u64, is_text: impl Fn(u32) -> bool) -> Option<u32> {
        (self
            .entries
            .find(hash, |&(h, value)| h == hash && is_text(value)))
        .map(|&(_, v)| v)
    }

    /// Adds an entry for a text not in the index.
    pub fn insert(&mut self, hash: u64, value: u32) {
        self.entries.insert_unique(hash, (hash, value), |&(h, _)| h);
    }

    pub fn reserve(&mut self, additional: usize) {
        self.entries.reserve(additional, |&(h, _)| h);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
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
        let no_pairs: Pairs = Arc::from([]);
        Self {
            table: SymbolTable {
                strings: vec![Arc::from("")],
                sets: vec![no_pairs.clone()],
            },
            index: {
                let mut index = TextIndex::default();
                index.insert(index.hash(""), 0);
                index
            },
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
        let hash = self.index.hash(text);
        let strings = &self.table.strings;
        if let Some(sym) = self.index.find(hash, |s| *strings[s as usize] == *text) {
            return sym;
        }
        let sym = self.table.strings.len() as Sym;
        self.table.strings.push(Arc::from(text));
        self.index.insert(hash, sym);
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
