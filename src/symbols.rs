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
    /// Texts, back to back: the strings interned together (a partition file's string table)
    /// share one block, not an allocation each. Blocks never change once added.
    blocks: Vec<Arc<String>>,
    /// Where each symbol's text is.
    strings: Vec<TextPlace>,
    sets: Vec<Pairs>,
}

/// A symbol's text: bytes `start..start + len` of block `block`, or the whole block when
/// `len` is [`WHOLE_BLOCK`] (a text of 4 GiB or more).
#[derive(Clone, Copy)]
struct TextPlace {
    block: u32,
    start: u32,
    len: u32,
}

const WHOLE_BLOCK: u32 = u32::MAX;

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

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

/// How much a [`SymbolTable`] holds: a copy made at this mark lacks what was interned since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    blocks: usize,
    strings: usize,
    sets: usize,
}

/// What was interned after a [`Mark`], to bring a copy up to date ([`SymbolTable::append`]).
#[derive(Default)]
pub struct Interned {
    blocks: Vec<Arc<String>>,
    strings: Vec<TextPlace>,
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
                blocks: vec![Arc::default()],
                strings: vec![TextPlace {
                    block: 0,
                    start: 0,
                    len: 0,
                }],
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

    pub fn intern(&mut self, text: &str) -> Sym {
        let hash = self.index.hash(text);
        match self.table.find(&self.index, hash, text) {
            Some(sym) => sym,
            None => self.intern_all(&[text])[0],
        }
    }

    /// The symbols of `texts`, in order; the new texts are stored together, in one block.
    pub fn intern_all<T: AsRef<str>>(&mut self, texts: &[T]) -> Vec<Sym> {
        let hashes: Vec<u64> = texts.iter().map(|t| self.index.hash(t.as_ref())).collect();
        let mut syms: Vec<Option<Sym>> = (texts.iter().zip(&hashes))
            .map(|(text, &hash)| self.table.find(&self.index, hash, text.as_ref()))
            .collect();
        let new: Vec<usize> = (0..texts.len()).filter(|&k| syms[k].is_none()).collect();
        // Room for all new texts at once, not a growth step after step.
        self.index.reserve(new.len());
        self.table.strings.reserve(new.len());
        let bytes: usize = new.iter().map(|&k| texts[k].as_ref().len()).sum();
        // A block's offsets are 32-bit: beyond 4 GiB of new text, one block per text.
        let blocks: Vec<&[usize]> = match bytes < WHOLE_BLOCK as usize {
            true => vec![&new[..]],
            false => new.chunks(1).collect(),
        };
        for block in blocks {
            self.add_block(texts, &hashes, &mut syms, block);
        }
        syms.into_iter().map(Option::unwrap_or_default).collect()
    }

    /// Adds texts `new` of `texts` in a new block, and gives them their symbols.
    fn add_block<T: AsRef<str>>(
        &mut self,
        texts: &[T],
        hashes: &[u64],
        syms: &mut [Option<Sym>],
        new: &[usize],
    ) {
        let mut block = String::with_capacity(new.iter().map(|&k| texts[k].as_ref().len()).sum());
        for &k in new {
            block.push_str(texts[k].as_ref());
        }
        let whole = new.len() == 1 && block.len() >= WHOLE_BLOCK as usize;
        let number = self.table.blocks.len() as u32;
        self.table.blocks.push(Arc::new(block));
        let mut start = 0;
        for &k in new {
            let text = texts[k].as_ref();
            let place = TextPlace {
                block: number,
                start,
                len: if whole {
                    WHOLE_BLOCK
                } else {
                    text.len() as u32
                },
            };
            start += place.len;
            // A text twice in one call gets the symbol of the first.
            if let Some(sym) = self.table.find(&self.index, hashes[k], text) {
                syms[k] = Some(sym);
                continue;
            }
            let sym = self.table.strings.len() as Sym;
            self.table.strings.push(place);
            self.index.insert(hashes[k], sym);
            syms[k] = Some(sym);
        }
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
    /// How many symbols there are: each is less.
    pub fn len(&self) -> usize {
        self.strings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }

    pub fn get(&self, sym: Sym) -> &str {
        let place = self.strings[sym as usize];
        let block = &self.blocks[place.block as usize];
        match place.len {
            WHOLE_BLOCK => block,
            len => &block[place.start as usize..(place.start + len) as usize],
        }
    }

    /// The symbol of `text` in `index` (the index of this table's texts).
    fn find(&self, index: &TextIndex, hash: u64, text: &str) -> Option<Sym> {
        index.find(hash, |sym| self.get(sym) == text)
    }

    /// The (key, value) pairs of a property set.
    pub fn properties(&self, set: PropertySet) -> &[(Sym, Sym)] {
        &self.sets[set.0 as usize]
    }

    pub fn mark(&self) -> Mark {
        Mark {
            blocks: self.blocks.len(),
            strings: self.strings.len(),
            sets: self.sets.len(),
        }
    }

    /// What was interned after `mark`, in order: what a copy made at `mark` lacks.
    pub fn interned_since(&self, mark: Mark) -> Interned {
        Interned {
            blocks: self.blocks[mark.blocks..].to_vec(),
            strings: self.strings[mark.strings..].to_vec(),
            sets: self.sets[mark.sets..].to_vec(),
        }
    }

    /// Brings a copy up to date with what [`SymbolTable::interned_since`] gave: the copy then
    /// maps every symbol and property set of the original to the same value.
    pub fn append(&mut self, interned: Interned) {
        self.blocks.extend(interned.blocks);
        self.strings.extend(interned.strings);
        self.sets.extend(interned.sets);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_interned_together_or_one_by_one_get_one_symbol_each_and_read_back() {
        let mut symbols = Symbols::new();
        let first = symbols.intern("b");
        let texts = ["a", "b", "a", "", "é…", "c"];
        let syms = symbols.intern_all(&texts);
        assert_eq!(syms[1], first);
        assert_eq!(syms[0], syms[2], "a text twice in one call has one symbol");
        assert_eq!(syms[3], Sym::default());
        for (sym, text) in syms.iter().zip(texts) {
            assert_eq!(symbols.get(*sym), text);
        }
        assert_eq!(symbols.intern("c"), syms[5]);
        assert_eq!(symbols.len(), 5, "the empty string, b, a, é…, c");
    }

    #[test]
    fn a_copy_brought_up_to_date_reads_every_symbol_as_the_original() {
        let mut symbols = Symbols::new();
        symbols.intern_all(&["one", "two"]);
        let mut copy = symbols.table().clone();
        let mark = symbols.mark();
        let later = symbols.intern_all(&["three", "two", "four"]);
        let single = symbols.intern("five");
        copy.append(symbols.interned_since(mark));
        for sym in later.into_iter().chain([single]) {
            assert_eq!(copy.get(sym), symbols.get(sym));
        }
        assert_eq!(copy.len(), symbols.len());
    }
}
