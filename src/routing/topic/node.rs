//! Trie nodes, one cache line each, and the arena that owns them and their overflow.
//!
//! A walk reads one node per step, so a node is laid out to be read in one cache line: its
//! [`Summary`] (checked before the walk steps in), its `*` and `#` children, up to four
//! literal children inline, and the index of its destination list. What does not fit (a fifth
//! literal child, the destinations) lives in side pools that the arena indexes; the walk
//! reads those only when it must (a busy node's child table, a node that matches).

use std::hash::BuildHasher;
use std::mem::size_of;

use super::dests::DestList;
use super::size::hash_table_bytes;
use super::summary::Summary;
use crate::routing::DestinationId;
use hashbrown::{DefaultHashBuilder, HashTable};

/// No node, table or list: an absent child, or a node without destinations.
pub(crate) const NONE: u32 = u32::MAX;
/// Literal children kept in the node itself.
const INLINE: usize = 4;

/// A destination as the table stores it: its dense id, to de-duplicate output with a stamp
/// array, beside the id to output, so that emitting it reads no other memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dest {
    /// The dense id from the table's destination interner.
    pub(crate) dense: u32,
    /// The destination itself.
    pub(crate) raw: DestinationId,
}

/// One pattern prefix of the trie: exactly one cache line.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub(crate) struct Node {
    /// What the patterns below this node can match.
    pub(crate) summary: Summary,
    /// The child reached by `*`, or `NONE`.
    pub(crate) star: u32,
    /// The child reached by `#`, or `NONE`.
    pub(crate) hash: u32,
    /// Index of this node's destination list in `Arena::dest_lists`, or `NONE`.
    dests: u32,
    /// The number of literal children.
    literals: u32,
    /// `(word, child)` while `literals <= INLINE`; otherwise `inline[0].0` is the index of
    /// the node's table in `Arena::tables`.
    inline: [(u32, u32); INLINE],
}

impl Node {
    /// A node with nothing below it.
    const EMPTY: Node = Node {
        summary: Summary::EMPTY,
        star: NONE,
        hash: NONE,
        dests: NONE,
        literals: 0,
        inline: [(NONE, NONE); INLINE],
    };

    /// Whether the node has no children.
    #[inline]
    pub(crate) fn is_leaf(&self) -> bool {
        self.star == NONE && self.hash == NONE && self.literals == 0
    }
}

/// The nodes and their overflow: child tables of busy nodes, destination lists.
#[derive(Debug)]
pub(crate) struct Arena {
    /// The nodes; index 0 is the root.
    nodes: Vec<Node>,
    /// Freed node slots.
    free_nodes: Vec<u32>,
    /// Child tables of nodes with more than `INLINE` literal children, `(word, child)`.
    tables: Vec<HashTable<(u32, u32)>>,
    /// Freed table slots.
    free_tables: Vec<u32>,
    /// Destination lists of the nodes that end a bound pattern.
    dest_lists: Vec<DestList>,
    /// Freed list slots.
    free_dests: Vec<u32>,
    /// Hashes words in the child tables.
    hasher: DefaultHashBuilder,
}

impl Default for Arena {
    fn default() -> Self {
        Arena {
            nodes: vec![Node::EMPTY],
            free_nodes: Vec::new(),
            tables: Vec::new(),
            free_tables: Vec::new(),
            dest_lists: Vec::new(),
            free_dests: Vec::new(),
            hasher: DefaultHashBuilder::default(),
        }
    }
}

/// Takes a slot from a free list, or the next one.
fn take_slot<T>(items: &mut Vec<T>, free: &mut Vec<u32>, item: T) -> u32 {
    match free.pop() {
        Some(at) => {
            items[at as usize] = item;
            at
        }
        None => {
            items.push(item);
            u32::try_from(items.len() - 1).expect("fewer than 2^32 trie items")
        }
    }
}

impl Arena {
    /// The node with index `id`.
    #[inline]
    pub(crate) fn node(&self, id: u32) -> &Node {
        &self.nodes[id as usize]
    }

    /// The node with index `id`, to change.
    pub(crate) fn node_mut(&mut self, id: u32) -> &mut Node {
        &mut self.nodes[id as usize]
    }

    /// The number of node slots: the size a per-node stamp array needs.
    pub(crate) fn node_bound(&self) -> usize {
        self.nodes.len()
    }

    /// Allocates an empty node.
    pub(crate) fn alloc(&mut self) -> u32 {
        take_slot(&mut self.nodes, &mut self.free_nodes, Node::EMPTY)
    }

    /// Frees a node that has no children and no destinations.
    pub(crate) fn free(&mut self, id: u32) {
        debug_assert!(self.node(id).is_leaf() && self.node(id).dests == NONE);
        self.nodes[id as usize] = Node::EMPTY;
        self.free_nodes.push(id);
    }

    /// The destinations bound with exactly the pattern of `node`.
    #[inline]
    pub(crate) fn dests(&self, node: &Node) -> &[Dest] {
        match node.dests {
            NONE => &[],
            list => self.dest_lists[list as usize].as_slice(),
        }
    }

    /// Adds a destination to `id`; returns `false` if it was there.
    pub(crate) fn add_dest(&mut self, id: u32, dest: Dest) -> bool {
        let list = match self.nodes[id as usize].dests {
            NONE => {
                let empty = DestList::default();
                let list = take_slot(&mut self.dest_lists, &mut self.free_dests, empty);
                self.nodes[id as usize].dests = list;
                list
            }
            list => list,
        };
        if !self.dest_lists[list as usize].insert(dest) {
            return false;
        }
        self.nodes[id as usize].summary.set_dests(true);
        true
    }

    /// Removes the destination with dense id `dense` from `id`; returns `false` if absent.
    pub(crate) fn remove_dest(&mut self, id: u32, dense: u32) -> bool {
        let list = self.nodes[id as usize].dests;
        if list == NONE {
            return false;
        }
        let dests = &mut self.dest_lists[list as usize];
        if !dests.remove(dense) {
            return false;
        }
        if dests.is_empty() {
            self.dest_lists[list as usize] = DestList::default();
            self.free_dests.push(list);
            let node = &mut self.nodes[id as usize];
            node.dests = NONE;
            node.summary.set_dests(false);
        }
        true
    }

    /// The child of `node` along interned word `word`, if any.
    #[inline]
    pub(crate) fn literal(&self, node: &Node, word: u32) -> Option<u32> {
        let count = node.literals as usize;
        if count <= INLINE {
            let inline = &node.inline[..count];
            return inline.iter().find(|(w, _)| *w == word).map(|(_, c)| *c);
        }
        let table = &self.tables[node.inline[0].0 as usize];
        let found = table.find(self.hasher.hash_one(word), |(w, _)| *w == word);
        found.map(|(_, c)| *c)
    }

    /// Adds a literal child to `id`; the word must not have one yet.
    pub(crate) fn add_literal(&mut self, id: u32, word: u32, child: u32) {
        let hasher = &self.hasher;
        let rehash = |(w, _): &(u32, u32)| hasher.hash_one(*w);
        let node = &mut self.nodes[id as usize];
        let count = node.literals as usize;
        node.summary.add_word(word);
        node.literals += 1;
        if count < INLINE {
            node.inline[count] = (word, child);
            return;
        }
        if count == INLINE {
            let mut table = HashTable::with_capacity(4 * INLINE);
            for entry in node.inline {
                table.insert_unique(hasher.hash_one(entry.0), entry, rehash);
            }
            node.inline = [(NONE, NONE); INLINE];
            node.inline[0].0 = take_slot(&mut self.tables, &mut self.free_tables, table);
        }
        let table = &mut self.tables[node.inline[0].0 as usize];
        table.insert_unique(hasher.hash_one(word), (word, child), rehash);
    }

    /// Removes the literal child of `id` along `word`.
    pub(crate) fn remove_literal(&mut self, id: u32, word: u32) {
        let node = &mut self.nodes[id as usize];
        let count = node.literals as usize;
        if count <= INLINE {
            let Some(at) = node.inline[..count].iter().position(|(w, _)| *w == word) else {
                return;
            };
            node.inline.copy_within(at + 1..count, at);
            node.inline[count - 1] = (NONE, NONE);
            node.literals -= 1;
            return;
        }
        let at = node.inline[0].0;
        let table = &mut self.tables[at as usize];
        let Ok(entry) = table.find_entry(self.hasher.hash_one(word), |(w, _)| *w == word) else {
            return;
        };
        entry.remove();
        node.literals -= 1;
        if node.literals as usize == INLINE {
            // Back inline: the table goes to the free list.
            let table = std::mem::take(&mut self.tables[at as usize]);
            for (slot, entry) in node.inline.iter_mut().zip(table) {
                *slot = entry;
            }
            self.free_tables.push(at);
        }
    }

    /// Estimates the bytes held.
    pub(crate) fn memory_bytes(&self) -> usize {
        let tables: usize = self
            .tables
            .iter()
            .map(|t| hash_table_bytes(t.capacity(), size_of::<(u32, u32)>()))
            .sum();
        let lists: usize = self.dest_lists.iter().map(DestList::heap_bytes).sum();
        self.nodes.capacity() * size_of::<Node>()
            + self.free_nodes.capacity() * 4
            + self.tables.capacity() * size_of::<HashTable<(u32, u32)>>()
            + tables
            + self.free_tables.capacity() * 4
            + self.dest_lists.capacity() * size_of::<DestList>()
            + lists
            + self.free_dests.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::{Arena, Dest, Node, INLINE};
    use crate::routing::DestinationId;

    #[test]
    fn a_node_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Node>(), 64);
    }

    #[test]
    fn literal_children_move_to_a_table_and_back() {
        let mut arena = Arena::default();
        let root = 0;
        let many = 3 * INLINE as u32;
        for word in 0..many {
            arena.add_literal(root, word, 100 + word);
        }
        assert!(arena.memory_bytes() > 64);
        let node = *arena.node(root);
        assert_eq!(
            arena.literal(&node, INLINE as u32 + 1),
            Some(101 + INLINE as u32)
        );
        for word in 1..many {
            arena.remove_literal(root, word);
            assert_eq!(arena.literal(arena.node(root), word), None, "{word}");
            for kept in 0..=0 {
                assert_eq!(arena.literal(arena.node(root), kept), Some(100 + kept));
            }
        }
        assert!(!arena.node(root).is_leaf());
        arena.remove_literal(root, 0);
        assert!(arena.node(root).is_leaf());
    }

    #[test]
    fn destination_lists_come_and_go() {
        let mut arena = Arena::default();
        let id = arena.alloc();
        let d = |dense| Dest {
            dense,
            raw: DestinationId::new(dense.into()),
        };
        assert!(arena.add_dest(id, d(1)) && arena.add_dest(id, d(2)));
        assert!(!arena.add_dest(id, d(1)));
        assert_eq!(arena.dests(arena.node(id)), [d(1), d(2)]);
        assert!(arena.remove_dest(id, 1) && !arena.remove_dest(id, 1));
        assert!(arena.remove_dest(id, 2));
        assert!(arena.dests(arena.node(id)).is_empty());
        arena.free(id);
        assert_eq!(arena.alloc(), id, "the slot is reused");
    }
}
