//! The strings of one export (span names, targets, files, thread names, annotation texts),
//! each stored once and referred to by a small integer everywhere downstream of decoding.

use std::collections::HashMap as StdHashMap;

type HashMap<K, V> = StdHashMap<K, V, foldhash::fast::RandomState>;
use std::sync::Arc;

/// An interned string; `Sym::default()` is the empty string.
pub type Sym = u32;

#[derive(Clone)]
pub struct Symbols {
    strings: Vec<Arc<str>>,
    index: HashMap<Arc<str>, Sym>,
}

impl Default for Symbols {
    fn default() -> Self {
        Self::new()
    }
}

impl Symbols {
    pub fn new() -> Self {
        let empty: Arc<str> = Arc::from("");
        Self {
            strings: vec![empty.clone()],
            index: HashMap::from_iter([(empty, 0)]),
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

    /// How many strings are interned (the empty string included).
    pub fn count(&self) -> usize {
        self.strings.len()
    }

    /// The strings interned after the first `count`, in order: what a copy made when there
    /// were `count` lacks.
    pub fn interned_since(&self, count: usize) -> Vec<Arc<str>> {
        self.strings[count..].to_vec()
    }

    /// Brings a copy up to date with what [`Symbols::interned_since`] gave: the copy then
    /// maps every symbol of the original to the same string.
    pub fn append(&mut self, strings: Vec<Arc<str>>) {
        for text in strings {
            let sym = self.strings.len() as Sym;
            self.strings.push(text.clone());
            self.index.insert(text, sym);
        }
    }
}
