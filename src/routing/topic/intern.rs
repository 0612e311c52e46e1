//! Interning: binding words and destinations become small dense integers at bind time.
//!
//! Dense ids let the trie key its edges by `(node, word)` integers, and let a route mark the
//! destinations it has already emitted in a flat stamp array instead of a hash set.

use std::borrow::Borrow;
use std::hash::Hash;
use std::mem::size_of;

use hashbrown::HashMap;

use super::size::hash_map_bytes;

/// A reference-counted map from keys to dense `u32` ids, reusing freed ids.
#[derive(Debug)]
pub(crate) struct Interner<K> {
    /// Key → its id, for the keys with at least one reference.
    ids: HashMap<K, u32>,
    /// Id → its key and reference count; a count of 0 marks a free slot.
    slots: Vec<Slot<K>>,
    /// Free ids, reused before the slot vector grows.
    free: Vec<u32>,
}

/// One id's key and how many users hold it.
#[derive(Debug)]
struct Slot<K> {
    /// The key (stale while the slot is free).
    key: K,
    /// The number of holders; 0 when the slot is free.
    refs: u32,
}

impl<K> Default for Interner<K> {
    fn default() -> Self {
        Interner {
            ids: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<K: Hash + Eq + Clone> Interner<K> {
    /// Returns the id of `key`, if some holder has it.
    #[inline]
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.ids.get(key).copied()
    }

    /// Takes one reference to `key`, giving it an id if it has none; `own` makes the stored key.
    pub(crate) fn acquire<Q>(&mut self, key: &Q, own: impl FnOnce(&Q) -> K) -> u32
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(&id) = self.ids.get(key) {
            self.slots[id as usize].refs += 1;
            return id;
        }
        let key = own(key);
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = Slot {
                    key: key.clone(),
                    refs: 1,
                };
                id
            }
            None => {
                let id = u32::try_from(self.slots.len()).expect("fewer than 2^32 interned keys");
                self.slots.push(Slot {
                    key: key.clone(),
                    refs: 1,
                });
                id
            }
        };
        self.ids.insert(key, id);
        id
    }

    /// Drops one reference to a live id, freeing the id when it was the last.
    pub(crate) fn release(&mut self, id: u32) {
        let slot = &mut self.slots[id as usize];
        debug_assert!(slot.refs > 0, "released a free interner slot");
        slot.refs -= 1;
        if slot.refs == 0 {
            self.ids.remove(&slot.key);
            self.free.push(id);
        }
    }

    /// The number of id slots, live or free: the size a per-id stamp array needs.
    pub(crate) fn id_bound(&self) -> usize {
        self.slots.len()
    }

    /// Estimates the bytes held, given the heap bytes each key owns beyond its own size.
    pub(crate) fn memory_bytes(&self, key_heap: impl Fn(&K) -> usize) -> usize {
        // Keys are stored twice (map and slot); a boxed key's heap is counted for both copies.
        let heap: usize = self.slots.iter().map(|s| key_heap(&s.key)).sum();
        hash_map_bytes(&self.ids)
            + self.slots.capacity() * size_of::<Slot<K>>()
            + self.free.capacity() * size_of::<u32>()
            + 2 * heap
    }
}

#[cfg(test)]
mod tests {
    use super::Interner;

    #[test]
    fn ids_are_reference_counted_and_reused() {
        let mut words: Interner<Box<str>> = Interner::default();
        let a = words.acquire("a", |w| Box::from(w));
        let b = words.acquire("b", |w| Box::from(w));
        assert_ne!(a, b);
        assert_eq!(words.acquire("a", |w| Box::from(w)), a);
        words.release(a);
        assert_eq!(words.get("a"), Some(a));
        words.release(a);
        assert_eq!(words.get("a"), None);
        let c = words.acquire("c", |w| Box::from(w));
        assert_eq!(c, a, "the freed id is reused");
        assert_eq!(words.get("c"), Some(c));
        assert_eq!(words.id_bound(), 2);
    }
}
