//! One trie node: its children and its destinations.

use std::hash::BuildHasher;
use std::mem::size_of;

use hashbrown::HashTable;
use smallvec::SmallVec;

use super::size::hash_table_bytes;
use crate::routing::DestinationId;

/// No node: an absent `*` or `#` child.
pub(crate) const NONE: u32 = u32::MAX;
/// A node keeps at most this many literal children in its inline list.
const FEW: usize = 8;

/// A destination as the table stores it: its dense id, to de-duplicate output with a stamp
/// array, beside the id to output, so that emitting it reads no other memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dest {
    /// The dense id from the table's destination interner.
    pub(crate) dense: u32,
    /// The destination itself.
    pub(crate) raw: DestinationId,
}

/// One pattern prefix of the trie.
#[derive(Debug)]
pub(crate) struct Node {
    /// The child reached by `*`, or `NONE`.
    pub(crate) star: u32,
    /// The child reached by `#`, or `NONE`.
    pub(crate) hash: u32,
    /// The children reached by a literal word.
    literals: Literals,
    /// The destinations bound with exactly this pattern.
    pub(crate) dests: SmallVec<[Dest; 1]>,
}

/// Literal children: `(word, child)` pairs inline while few, a hash map once many.
///
/// The inline list makes the common lookup (a node with a handful of children) touch no
/// memory beyond the node; the per-node table keeps a busy node's lookups O(1) and small
/// enough to stay in cache when the node is hot (the root and its wildcard children). The
/// table stores no hasher: the trie passes its one hasher in.
#[derive(Debug)]
enum Literals {
    /// At most `FEW` children, unsorted.
    Few(SmallVec<[(u32, u32); 3]>),
    /// More than `FEW / 2` children: `(word, child)` hashed by word.
    Many(HashTable<(u32, u32)>),
}

impl Node {
    /// A fresh node with no children and no destinations.
    pub(crate) fn new() -> Self {
        Node {
            star: NONE,
            hash: NONE,
            literals: Literals::Few(SmallVec::new()),
            dests: SmallVec::new(),
        }
    }

    /// Whether the node has no children.
    pub(crate) fn is_leaf(&self) -> bool {
        self.star == NONE && self.hash == NONE && !self.has_literals()
    }

    /// Whether the node has a literal child.
    #[inline]
    pub(crate) fn has_literals(&self) -> bool {
        match &self.literals {
            Literals::Few(few) => !few.is_empty(),
            Literals::Many(many) => !many.is_empty(),
        }
    }

    /// The child along interned word `word`, if any.
    #[inline]
    pub(crate) fn literal(&self, word: u32, hasher: &impl BuildHasher) -> Option<u32> {
        match &self.literals {
            Literals::Few(few) => few.iter().find(|(w, _)| *w == word).map(|(_, c)| *c),
            Literals::Many(many) => {
                let found = many.find(hasher.hash_one(word), |(w, _)| *w == word);
                found.map(|(_, c)| *c)
            }
        }
    }

    /// Adds a literal child; the word must not have one yet.
    pub(crate) fn add_literal(&mut self, word: u32, child: u32, hasher: &impl BuildHasher) {
        let rehash = |(w, _): &(u32, u32)| hasher.hash_one(*w);
        match &mut self.literals {
            Literals::Few(few) if few.len() < FEW => few.push((word, child)),
            Literals::Few(few) => {
                let mut many = HashTable::with_capacity(2 * FEW);
                for entry in few.drain(..).chain([(word, child)]) {
                    many.insert_unique(hasher.hash_one(entry.0), entry, rehash);
                }
                self.literals = Literals::Many(many);
            }
            Literals::Many(many) => {
                many.insert_unique(hasher.hash_one(word), (word, child), rehash);
            }
        }
    }

    /// Removes the literal child along `word`.
    pub(crate) fn remove_literal(&mut self, word: u32, hasher: &impl BuildHasher) {
        match &mut self.literals {
            Literals::Few(few) => few.retain(|(w, _)| *w != word),
            Literals::Many(many) => {
                if let Ok(entry) = many.find_entry(hasher.hash_one(word), |(w, _)| *w == word) {
                    entry.remove();
                }
                if many.len() <= FEW / 2 {
                    self.literals = Literals::Few(many.drain().collect());
                }
            }
        }
    }

    /// Estimates the heap bytes the node owns (its own size is counted by the arena).
    pub(crate) fn heap_bytes(&self) -> usize {
        let literals = match &self.literals {
            Literals::Few(few) if few.spilled() => few.capacity() * size_of::<(u32, u32)>(),
            Literals::Few(_) => 0,
            Literals::Many(many) => hash_table_bytes(many.capacity(), size_of::<(u32, u32)>()),
        };
        let dests = if self.dests.spilled() {
            self.dests.capacity() * size_of::<Dest>()
        } else {
            0
        };
        literals + dests
    }
}

#[cfg(test)]
mod tests {
    use hashbrown::DefaultHashBuilder;

    use super::{Node, FEW};

    #[test]
    fn literal_children_move_to_a_map_and_back() {
        let h = DefaultHashBuilder::default();
        let mut node = Node::new();
        assert!(node.is_leaf());
        let many = 3 * FEW as u32;
        for word in 0..many {
            node.add_literal(word, 100 + word, &h);
        }
        assert!(node.heap_bytes() > 0);
        assert_eq!(node.literal(FEW as u32 + 1, &h), Some(101 + FEW as u32));
        for word in 1..many {
            node.remove_literal(word, &h);
            assert_eq!(node.literal(word, &h), None);
        }
        assert_eq!(node.literal(0, &h), Some(100));
        assert!(node.has_literals() && !node.is_leaf());
        node.remove_literal(0, &h);
        assert!(node.is_leaf());
    }
}
