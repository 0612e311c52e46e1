//! The routing table: every binding of one topic exchange, split by whether it has wildcards.
//!
//! A binding key without `*` or `#` words can only match the routing key equal to it, so those
//! keys (most of them, in practice) live in one hash map and cost one lookup per message,
//! whatever their number. Only the keys with wildcards go into the [`Trie`].

use std::mem::size_of;

use hashbrown::HashMap;

use super::dests::DestList;
use super::intern::Interner;
use super::node::Dest;
use super::reference::words;
use super::scratch::Scratch;
use super::size::hash_map_bytes;
use super::trie::Trie;
use crate::routing::DestinationId;

/// All bindings of one topic router. Bind and unbind cost O(words of the key).
#[derive(Debug, Default)]
pub(crate) struct Table {
    /// Binding keys without wildcards → the destinations bound with them.
    exact: HashMap<Box<str>, DestList>,
    /// Binding keys with wildcards.
    trie: Trie,
    /// Destination → dense id, counted once per binding that uses it.
    dests: Interner<DestinationId>,
    /// The number of bindings.
    bindings: usize,
    /// Bumped by every change, so cached results from before it are recognised as stale.
    generation: u64,
}

/// Whether a binding key has a `*` or `#` word.
fn has_wildcard(pattern: &str) -> bool {
    words(pattern).any(|w| w == "*" || w == "#")
}

impl Table {
    /// The generation: it changes whenever a binding is added or removed.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// The number of bindings.
    pub(crate) fn len(&self) -> usize {
        self.bindings
    }

    /// Whether `dest` is bound with `pattern`.
    fn contains(&self, dest: DestinationId, pattern: &str) -> bool {
        let Some(id) = self.dests.get(&dest) else {
            return false;
        };
        if has_wildcard(pattern) {
            self.trie.contains(pattern, id)
        } else {
            self.exact
                .get(pattern)
                .is_some_and(|dests| dests.contains(id))
        }
    }

    /// Adds a binding; returns `false` if it was already there.
    pub(crate) fn bind(&mut self, dest: DestinationId, pattern: &str) -> bool {
        if self.contains(dest, pattern) {
            return false;
        }
        let dense = self.dests.acquire(&dest, |d| *d);
        let dest = Dest { dense, raw: dest };
        if has_wildcard(pattern) {
            self.trie.insert(pattern, dest);
        } else {
            self.exact.entry_ref(pattern).or_default().insert(dest);
        }
        self.bindings += 1;
        self.generation += 1;
        true
    }

    /// Removes a binding; returns `false` if it was not there.
    pub(crate) fn unbind(&mut self, dest: DestinationId, pattern: &str) -> bool {
        let Some(id) = self.dests.get(&dest) else {
            return false;
        };
        let removed = if has_wildcard(pattern) {
            self.trie.remove(pattern, id)
        } else {
            self.remove_exact(pattern, id)
        };
        if removed {
            self.dests.release(id);
            self.bindings -= 1;
            self.generation += 1;
        }
        removed
    }

    /// Removes destination `id` from the exact key `pattern`.
    fn remove_exact(&mut self, pattern: &str, id: u32) -> bool {
        let Some(dests) = self.exact.get_mut(pattern) else {
            return false;
        };
        if !dests.remove(id) {
            return false;
        }
        if dests.is_empty() {
            self.exact.remove(pattern);
        }
        true
    }

    /// Appends each destination matching `key` to `out`, once.
    pub(crate) fn route(&self, key: &str, scratch: &mut Scratch, out: &mut Vec<DestinationId>) {
        scratch.begin(self.trie.node_bound(), self.dests.id_bound());
        let Scratch {
            tokens,
            walk,
            emitted,
        } = scratch;
        if let Some(dests) = self.exact.get(key) {
            dests.as_slice().iter().for_each(|&d| emitted.emit(d, out));
        }
        if self.trie.is_empty() {
            return;
        }
        self.trie.tokenize(key, tokens);
        self.trie.walk(tokens, walk, |d| emitted.emit(d, out));
    }

    /// Estimates the bytes held.
    pub(crate) fn memory_bytes(&self) -> usize {
        let exact_heap: usize = self
            .exact
            .iter()
            .map(|(key, dests)| key.len() + dests.heap_bytes())
            .sum();
        size_of::<Self>()
            + hash_map_bytes(&self.exact)
            + exact_heap
            + self.trie.memory_bytes()
            + self.dests.memory_bytes(|_| 0)
    }
}

#[cfg(test)]
mod tests {
    use super::Table;
    use crate::routing::topic::scratch::Scratch;
    use crate::routing::DestinationId;

    fn d(raw: u64) -> DestinationId {
        DestinationId::new(raw)
    }

    fn route(table: &Table, key: &str) -> Vec<u64> {
        let mut out = Vec::new();
        table.route(key, &mut Scratch::default(), &mut out);
        let mut raw: Vec<u64> = out.iter().map(|d| d.get()).collect();
        raw.sort_unstable();
        raw
    }

    #[test]
    fn exact_and_wildcard_bindings_together() {
        let mut table = Table::default();
        assert!(table.bind(d(1), "a.b"));
        assert!(table.bind(d(1), "a.*"));
        assert!(table.bind(d(2), "#"));
        assert!(table.bind(d(3), ""));
        assert!(!table.bind(d(1), "a.b"));
        assert_eq!(table.len(), 4);
        assert_eq!(
            route(&table, "a.b"),
            [1, 2],
            "d1 matched twice, output once"
        );
        assert_eq!(route(&table, ""), [2, 3]);
        assert!(table.unbind(d(1), "a.b"));
        assert!(!table.unbind(d(1), "a.b"));
        assert!(!table.unbind(d(9), "a.*"));
        assert_eq!(route(&table, "a.b"), [1, 2]);
        assert!(table.unbind(d(1), "a.*"));
        assert_eq!(route(&table, "a.b"), [2]);
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn generation_moves_only_on_change() {
        let mut table = Table::default();
        let g0 = table.generation();
        table.bind(d(1), "x.#");
        let g1 = table.generation();
        assert!(g1 > g0);
        table.bind(d(1), "x.#");
        table.unbind(d(2), "x.#");
        assert_eq!(table.generation(), g1);
    }

    #[test]
    fn memory_grows_with_bindings() {
        let mut table = Table::default();
        let empty = table.memory_bytes();
        for i in 0..1000 {
            table.bind(d(i), &format!("k{i}.*"));
            table.bind(d(i), &format!("k{i}.x"));
        }
        assert!(table.memory_bytes() > empty + 2000 * 16);
    }
}
