//! Per-thread working memory of a route, reused from one message to the next.
//!
//! A route needs a token buffer, a walk stack and two "seen" sets (the `#` nodes it has
//! expanded, the destinations it has emitted). Each set is a stamp array: an entry counts as
//! set only when it holds the current route's epoch, so starting a route clears every set in
//! O(1). The arrays grow with the table and are never shrunk, so once warm a route allocates
//! nothing.

use super::node::Dest;
use crate::routing::DestinationId;

/// Working memory for one thread's routes through one router.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    /// The routing key as interned word ids.
    pub(crate) tokens: Vec<u32>,
    /// State of the trie walk.
    pub(crate) walk: WalkState,
    /// The destinations emitted so far.
    pub(crate) emitted: Emitted,
}

/// The trie walk's stack and its memo of expanded `#` nodes.
#[derive(Debug, Default)]
pub(crate) struct WalkState {
    /// Pending `(node, words consumed)` pairs.
    pub(crate) stack: Vec<(u32, u32)>,
    /// Per node: `(epoch, lowest position)` at which this `#` node was expanded this route.
    /// Expanding at position `p` covers every position from `p` on, so a later entry at a
    /// position at or past the stored one has nothing left to do.
    pub(crate) hash_from: Vec<(u32, u32)>,
    /// The current route's epoch.
    pub(crate) epoch: u32,
}

/// The set of destinations already emitted by the current route.
#[derive(Debug, Default)]
pub(crate) struct Emitted {
    /// Per dense destination id: the epoch of the route that last emitted it.
    stamps: Vec<u32>,
    /// The current route's epoch.
    epoch: u32,
}

impl Scratch {
    /// Starts a route over a table with `nodes` trie nodes and `dests` destination ids.
    pub(crate) fn begin(&mut self, nodes: usize, dests: usize) {
        let epoch = self.walk.epoch.wrapping_add(1);
        if epoch == 0 {
            // After 2^32 routes old stamps could collide with new epochs: forget them all.
            self.walk.hash_from.iter_mut().for_each(|e| *e = (0, 0));
            self.emitted.stamps.iter_mut().for_each(|e| *e = 0);
            self.walk.epoch = 1;
        } else {
            self.walk.epoch = epoch;
        }
        self.emitted.epoch = self.walk.epoch;
        if self.walk.hash_from.len() < nodes {
            self.walk.hash_from.resize(nodes, (0, 0));
        }
        if self.emitted.stamps.len() < dests {
            self.emitted.stamps.resize(dests, 0);
        }
        self.walk.stack.clear();
        self.tokens.clear();
    }
}

impl Emitted {
    /// Appends `dest` to `out` unless this route already did.
    #[inline]
    pub(crate) fn emit(&mut self, dest: Dest, out: &mut Vec<DestinationId>) {
        let stamp = &mut self.stamps[dest.dense as usize];
        if *stamp != self.epoch {
            *stamp = self.epoch;
            out.push(dest.raw);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Scratch;
    use crate::routing::topic::node::Dest;
    use crate::routing::DestinationId;

    #[test]
    fn emits_each_destination_once_per_route() {
        let a = Dest {
            dense: 1,
            raw: DestinationId::new(7),
        };
        let mut scratch = Scratch::default();
        let mut out = Vec::new();
        for _ in 0..3 {
            scratch.begin(0, 2);
            scratch.emitted.emit(a, &mut out);
            scratch.emitted.emit(a, &mut out);
        }
        assert_eq!(out, [DestinationId::new(7); 3]);
    }

    #[test]
    fn epoch_wrap_forgets_old_stamps() {
        let mut scratch = Scratch::default();
        scratch.begin(1, 1);
        scratch.walk.hash_from[0] = (scratch.walk.epoch, 3);
        scratch.walk.epoch = u32::MAX;
        scratch.begin(1, 1);
        assert_eq!(scratch.walk.epoch, 1);
        assert_eq!(scratch.walk.hash_from[0], (0, 0));
    }
}
