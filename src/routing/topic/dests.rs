//! The destinations bound with one binding key, as a list that stays O(1) to change.
//!
//! Most keys have one or two destinations, kept inline. A key that many destinations share
//! (think of every queue bound with `#`) also gets an index from dense id to position, so
//! that binding and unbinding one more destination never scans the list.

use std::mem::size_of;

use hashbrown::HashMap;
use smallvec::SmallVec;

use super::node::Dest;
use super::size::hash_map_bytes;

/// Above this many destinations a list keeps an index.
const INDEXED: usize = 16;

/// The destinations of one binding key, each once, in no particular order.
#[derive(Debug, Default)]
pub(crate) struct DestList {
    /// The destinations, for routing to read in one sweep.
    items: SmallVec<[Dest; 1]>,
    /// Dense id → position in `items`, once the list is long.
    index: Option<Box<HashMap<u32, u32>>>,
}

impl DestList {
    /// The destinations.
    #[inline]
    pub(crate) fn as_slice(&self) -> &[Dest] {
        &self.items
    }

    /// Whether the list is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The position of the destination with dense id `dense`.
    fn position(&self, dense: u32) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(&dense).map(|&at| at as usize),
            None => self.items.iter().position(|d| d.dense == dense),
        }
    }

    /// Whether the destination with dense id `dense` is in the list.
    pub(crate) fn contains(&self, dense: u32) -> bool {
        self.position(dense).is_some()
    }

    /// Adds `dest`; returns `false` if it was there.
    pub(crate) fn insert(&mut self, dest: Dest) -> bool {
        if self.contains(dest.dense) {
            return false;
        }
        let at = self.items.len() as u32;
        self.items.push(dest);
        match &mut self.index {
            Some(index) => {
                index.insert(dest.dense, at);
            }
            None if self.items.len() > INDEXED => {
                let index = self.items.iter().enumerate();
                let index = index.map(|(at, d)| (d.dense, at as u32)).collect();
                self.index = Some(Box::new(index));
            }
            None => {}
        }
        true
    }

    /// Removes the destination with dense id `dense`; returns `false` if it was not there.
    pub(crate) fn remove(&mut self, dense: u32) -> bool {
        let Some(at) = self.position(dense) else {
            return false;
        };
        self.items.swap_remove(at);
        if let Some(index) = &mut self.index {
            index.remove(&dense);
            if let Some(moved) = self.items.get(at) {
                index.insert(moved.dense, at as u32);
            }
        }
        true
    }

    /// Estimates the heap bytes the list owns.
    pub(crate) fn heap_bytes(&self) -> usize {
        let items = if self.items.spilled() {
            self.items.capacity() * size_of::<Dest>()
        } else {
            0
        };
        let index = self
            .index
            .as_ref()
            .map_or(0, |i| size_of::<HashMap<u32, u32>>() + hash_map_bytes(i));
        items + index
    }
}

#[cfg(test)]
mod tests {
    use super::{DestList, INDEXED};
    use crate::routing::topic::node::Dest;
    use crate::routing::DestinationId;

    fn d(dense: u32) -> Dest {
        Dest {
            dense,
            raw: DestinationId::new(dense.into()),
        }
    }

    #[test]
    fn short_and_long_lists_agree() {
        let mut list = DestList::default();
        let n = 4 * INDEXED as u32;
        for i in 0..n {
            assert!(list.insert(d(i)));
            assert!(!list.insert(d(i)));
        }
        assert!(list.index.is_some());
        for i in (0..n).step_by(3) {
            assert!(list.remove(i));
            assert!(!list.remove(i));
        }
        let mut left: Vec<u32> = list.as_slice().iter().map(|d| d.dense).collect();
        left.sort_unstable();
        let want: Vec<u32> = (0..n).filter(|i| i % 3 != 0).collect();
        assert_eq!(left, want);
        for i in want {
            assert!(list.contains(i), "{i}");
            assert!(list.remove(i));
        }
        assert!(list.is_empty());
        assert!(list.heap_bytes() > 0);
    }
}
