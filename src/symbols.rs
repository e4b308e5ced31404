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

#[derive(Clone)]
pub struct Symbols {
    strings: Vec<Arc<str>>,
    index: FastMap<Arc<str>, Sym>,
    sets: Vec<Pairs>,
    set_index: FastMap<Pairs, PropertySet>,
}

/// How much a [`Symbols`] holds: a copy made at this mark lacks what was interned since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    strings: usize,
    sets: usize,
}

/// What was interned after a [`Mark`], to bring a copy up to date ([`Symbols::append`]).
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

impl Symbols {
    pub fn new() -> Self {
        let empty: Arc<str> = Arc::from("");
        let no_pairs: Pairs = Arc::from([]);
        Self {
            strings: vec![empty.clone()],
            index: FastMap::from_iter([(empty, 0)]),
            sets: vec![no_pairs.clone()],
            set_index: FastMap::from_iter([(no_pairs, PropertySet::NONE)]),
        }
    }

    pub fn intern(&mut self, text: &str) -> Sym {
        if let Some(&sym) = self.index.get(text) {
            return sym;
        }
        let sym = self.strings.len() as Sym;
        let text: Arc<str> = Arc::from(text);
        self.strings.push(text.clone());
        self.index.insert(text, sym);
        sym
    }

    pub fn get(&self, sym: Sym) -> &str {
        &self.strings[sym as usize]
    }

    /// The set of these pairs (keys and values already interned); no pair is `NONE`.
    pub fn intern_properties(&mut self, pairs: &[(Sym, Sym)]) -> PropertySet {
        if let Some(&set) = self.set_index.get(pairs) {
            return set;
        }
        let set = PropertySet(self.sets.len() as u32);
        let pairs: Pairs = Arc::from(pairs);
        self.sets.push(pairs.clone());
        self.set_index.insert(pairs, set);
        set
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

    /// Brings a copy up to date with what [`Symbols::interned_since`] gave: the copy then
    /// maps every symbol and property set of the original to the same value.
    pub fn append(&mut self, interned: Interned) {
        for text in interned.strings {
            let sym = self.strings.len() as Sym;
            self.strings.push(text.clone());
            self.index.insert(text, sym);
        }
        for pairs in interned.sets {
            let set = PropertySet(self.sets.len() as u32);
            self.sets.push(pairs.clone());
            self.set_index.insert(pairs, set);
        }
    }
}
