//! The word-level trie that holds every binding key containing `*` or `#`.
//!
//! Each node is a pattern prefix, one cache line in an [`Arena`]: its `*` and `#` children,
//! up to four literal children (by interned word) inline, and a
//! [`Summary`](super::summary::Summary) that tells the
//! walk whether the node is worth visiting at all. A node with more literal children moves
//! them to a hash table of its own, so that adding a child stays O(1) however many there are.
//!
//! # Matching
//!
//! A walk visits `(node, words consumed)` pairs. A `#` node reached after `p` words may go on
//! after any of the positions `p..=n`; the walk remembers, per `#` node, the lowest position
//! it has been expanded from, so no `(node, position)` pair is ever visited twice. That keeps
//! `#.#.#.a` linear in the key length, where a backtracking matcher is cubic.
//!
//! Each summary knows how many more key words the patterns below its node can take: at least
//! their words other than `#`, at most as many (unbounded below a `#`). The walk pushes a
//! child only if its bounds admit the words left and it has a `*` or `#` child or, by its
//! word filter, may have a child for the next word; it expands a `#` only at the positions its
//! subtree can finish from. Binding widens the bounds along the pattern's path; unbinding
//! leaves them as they were, so they may be wider than needed but never too narrow.
//!
//! # Invariants
//!
//! Every node other than the root has at least one binding in its subtree: `remove` prunes
//! nodes that become empty. Each literal edge holds one reference to its interned word.

use std::mem::size_of;

use smallvec::SmallVec;

use super::intern::Interner;
use super::node::{Arena, Dest, NONE};
use super::reference::words;
use super::scratch::WalkState;
use super::summary::{UNBOUNDED, UNKNOWN_WORD};

/// The root node, present even in an empty trie.
const ROOT: u32 = 0;
/// `Link::edge` of a node reached by `*`.
const STAR_EDGE: u32 = u32::MAX;
/// `Link::edge` of a node reached by `#`.
const HASH_EDGE: u32 = u32::MAX - 1;

/// How a node hangs from its parent; only unbinding needs it, so it is kept apart from the
/// nodes the walk reads.
#[derive(Clone, Copy, Debug)]
struct Link {
    /// The parent node (`NONE` for the root and for free nodes).
    parent: u32,
    /// A word id, `STAR_EDGE` or `HASH_EDGE`.
    edge: u32,
}

/// The trie of wildcard patterns.
#[derive(Debug)]
pub(crate) struct Trie {
    /// The nodes; index 0 is the root.
    arena: Arena,
    /// Parent links, by node index.
    links: Vec<Link>,
    /// The literal words used by edges.
    words: Interner<Box<str>>,
}

impl Default for Trie {
    fn default() -> Self {
        Trie {
            arena: Arena::default(),
            links: vec![Link {
                parent: NONE,
                edge: NONE,
            }],
            words: Interner::default(),
        }
    }
}

impl Trie {
    /// The number of node slots: the size a per-node stamp array needs.
    pub(crate) fn node_bound(&self) -> usize {
        self.arena.node_bound()
    }

    /// Whether the trie holds no pattern.
    pub(crate) fn is_empty(&self) -> bool {
        let root = self.arena.node(ROOT);
        root.is_leaf() && self.arena.dests(root).is_empty()
    }

    /// Returns the child of `node` along one pattern word, if it exists.
    fn child(&self, node: u32, word: &str) -> Option<u32> {
        let n = self.arena.node(node);
        let child = match word {
            "*" => n.star,
            "#" => n.hash,
            _ => return self.arena.literal(n, self.words.get(word)?),
        };
        (child != NONE).then_some(child)
    }

    /// Returns the node of `pattern`, if it exists.
    fn find(&self, pattern: &str) -> Option<u32> {
        words(pattern).try_fold(ROOT, |node, word| self.child(node, word))
    }

    /// Whether the destination with dense id `dense` is bound with `pattern`.
    pub(crate) fn contains(&self, pattern: &str, dense: u32) -> bool {
        self.find(pattern).is_some_and(|node| {
            let dests = self.arena.dests(self.arena.node(node));
            dests.iter().any(|d| d.dense == dense)
        })
    }

    /// Binds `dest` with `pattern`; returns `false` if it already was.
    pub(crate) fn insert(&mut self, pattern: &str, dest: Dest) -> bool {
        let mut path: SmallVec<[u32; 16]> = SmallVec::new();
        let mut node = ROOT;
        path.push(node);
        for word in words(pattern) {
            node = match self.child(node, word) {
                Some(child) => child,
                None => self.add_child(node, word),
            };
            path.push(node);
        }
        if !self.arena.add_dest(node, dest) {
            return false;
        }
        self.widen_bounds(&path, pattern);
        true
    }

    /// Widens the bounds of each node on `path` (the nodes of `pattern`, root first) to
    /// admit the rest of the pattern after it.
    fn widen_bounds(&mut self, path: &[u32], pattern: &str) {
        // Words the rest of the pattern takes: at least `min`, at most `max` (None: unbounded).
        let (mut min, mut max) = (0_u32, Some(0_u32));
        let mut words = words(pattern).rev();
        for &node in path.iter().rev() {
            let min16 = u16::try_from(min).unwrap_or(UNBOUNDED);
            let max16 = max.and_then(|m| u16::try_from(m).ok()).unwrap_or(UNBOUNDED);
            self.arena.node_mut(node).summary.widen(min16, max16);
            match words.next() {
                Some("#") => max = None,
                Some(_) => {
                    min = min.saturating_add(1);
                    max = max.map(|m| m.saturating_add(1));
                }
                None => break,
            }
        }
    }

    /// Creates the child of `parent` along `word`.
    fn add_child(&mut self, parent: u32, word: &str) -> u32 {
        let edge = match word {
            "*" => STAR_EDGE,
            "#" => HASH_EDGE,
            _ => self.words.acquire(word, |w| Box::from(w)),
        };
        let child = self.arena.alloc();
        let link = Link { parent, edge };
        match self.links.get_mut(child as usize) {
            Some(slot) => *slot = link,
            None => self.links.push(link),
        }
        match edge {
            STAR_EDGE => {
                let p = self.arena.node_mut(parent);
                p.star = child;
                p.summary.set_star(true);
            }
            HASH_EDGE => {
                let p = self.arena.node_mut(parent);
                p.hash = child;
                p.summary.set_hash(true);
            }
            word => self.arena.add_literal(parent, word, child),
        }
        child
    }

    /// Unbinds the destination with dense id `dense` from `pattern`, pruning nodes left empty;
    /// returns `false` if it was not bound.
    pub(crate) fn remove(&mut self, pattern: &str, dense: u32) -> bool {
        let Some(mut node) = self.find(pattern) else {
            return false;
        };
        if !self.arena.remove_dest(node, dense) {
            return false;
        }
        while node != ROOT {
            let n = self.arena.node(node);
            if !n.is_leaf() || !self.arena.dests(n).is_empty() {
                break;
            }
            let Link { parent, edge } = self.links[node as usize];
            self.detach(parent, edge);
            self.arena.free(node);
            self.links[node as usize] = Link {
                parent: NONE,
                edge: NONE,
            };
            node = parent;
        }
        true
    }

    /// Removes the edge `edge` from `parent`.
    fn detach(&mut self, parent: u32, edge: u32) {
        match edge {
            STAR_EDGE => {
                let p = self.arena.node_mut(parent);
                p.star = NONE;
                p.summary.set_star(false);
            }
            HASH_EDGE => {
                let p = self.arena.node_mut(parent);
                p.hash = NONE;
                p.summary.set_hash(false);
            }
            word => {
                // The word filter keeps the word's bit: it may be shared, and is only a hint.
                self.arena.remove_literal(parent, word);
                self.words.release(word);
            }
        }
    }

    /// Writes the interned ids of the routing key's words to `tokens`.
    pub(crate) fn tokenize(&self, key: &str, tokens: &mut Vec<u32>) {
        // A plain loop: `extend` over the `words` adapter chain is measurably slower here.
        if key.is_empty() {
            return;
        }
        for word in key.split('.') {
            tokens.push(self.words.get(word).unwrap_or(UNKNOWN_WORD));
        }
    }

    /// Calls `emit` with the destinations of every pattern matching the key `tokens`.
    ///
    /// `walk` must have been started for this trie
    /// ([`Scratch::begin`](super::scratch::Scratch::begin)). A destination may be emitted
    /// more than once; the caller removes duplicates. A `(node, position)` pair is pushed only
    /// if the node's summary says it may lead to a match.
    pub(crate) fn walk(&self, tokens: &[u32], walk: &mut WalkState, mut emit: impl FnMut(Dest)) {
        let n = tokens.len() as u32;
        let next = |pos: u32| tokens.get(pos as usize).copied().unwrap_or(UNKNOWN_WORD);
        if self.arena.node(ROOT).summary.promising(n, next(0)) {
            walk.stack.push((ROOT, 0));
        }
        while let Some((id, pos)) = walk.stack.pop() {
            let node = self.arena.node(id);
            if pos == n {
                self.arena.dests(node).iter().for_each(|&d| emit(d));
            }
            if node.hash != NONE {
                self.expand_hash(node.hash, pos, tokens, walk, &mut emit);
            }
            if pos < n {
                let (rest, after) = (n - pos - 1, next(pos + 1));
                let promising = |child: u32| self.arena.node(child).summary.promising(rest, after);
                if node.star != NONE && promising(node.star) {
                    walk.stack.push((node.star, pos + 1));
                }
                let word = tokens[pos as usize];
                if node.summary.may_have_word(word) {
                    match self.arena.literal(node, word) {
                        Some(child) if promising(child) => walk.stack.push((child, pos + 1)),
                        _ => {}
                    }
                }
            }
        }
    }

    /// Enters `#` node `hash` after `pos` words of `tokens`: it may swallow any number of them.
    fn expand_hash(
        &self,
        hash: u32,
        pos: u32,
        tokens: &[u32],
        walk: &mut WalkState,
        emit: &mut impl FnMut(Dest),
    ) {
        let n = tokens.len() as u32;
        let node = self.arena.node(hash);
        if node.is_leaf() {
            // A trailing `#` swallows the rest of the key: it always matches.
            self.arena.dests(node).iter().for_each(|&d| emit(d));
            return;
        }
        let summary = &node.summary;
        let stops = summary.stops(pos, n);
        // Memo: stopping after `p` onwards was already pushed by an earlier entry.
        let seen = &mut walk.hash_from[hash as usize];
        let end = if seen.0 == walk.epoch {
            stops.end.min(seen.1)
        } else {
            stops.end
        };
        if stops.start >= end {
            return;
        }
        *seen = (walk.epoch, stops.start);
        for q in stops.start..end {
            let next = tokens.get(q as usize).copied().unwrap_or(UNKNOWN_WORD);
            if summary.promising(n - q, next) {
                walk.stack.push((hash, q));
            }
        }
    }

    /// Estimates the bytes held.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.arena.memory_bytes()
            + self.links.capacity() * size_of::<Link>()
            + self.words.memory_bytes(|w| w.len())
    }
}

#[cfg(test)]
mod tests {
    use super::Trie;
    use crate::routing::topic::node::Dest;
    use crate::routing::topic::scratch::Scratch;
    use crate::routing::DestinationId;

    fn matching(trie: &Trie, key: &str) -> Vec<u32> {
        let mut scratch = Scratch::default();
        scratch.begin(trie.node_bound(), 0);
        trie.tokenize(key, &mut scratch.tokens);
        let mut out = Vec::new();
        trie.walk(&scratch.tokens, &mut scratch.walk, |d| out.push(d.dense));
        out.sort_unstable();
        out.dedup();
        out
    }

    /// A destination whose dense and raw ids are both `id`.
    fn d(id: u32) -> Dest {
        Dest {
            dense: id,
            raw: DestinationId::new(id.into()),
        }
    }

    #[test]
    fn insert_match_remove() {
        let mut trie = Trie::default();
        assert!(trie.is_empty());
        assert!(trie.insert("a.*.z", d(1)));
        assert!(!trie.insert("a.*.z", d(1)));
        assert!(trie.insert("a.#", d(2)));
        assert!(trie.insert("#.z", d(3)));
        assert_eq!(matching(&trie, "a.b.z"), [1, 2, 3]);
        assert_eq!(matching(&trie, "a"), [2]);
        assert_eq!(matching(&trie, "z"), [3]);
        assert_eq!(matching(&trie, "q.z"), [3]);
        assert!(trie.remove("a.*.z", 1));
        assert!(!trie.remove("a.*.z", 1));
        assert_eq!(matching(&trie, "a.b.z"), [2, 3]);
        assert!(trie.remove("a.#", 2) && trie.remove("#.z", 3));
        assert!(trie.is_empty());
        assert_eq!(trie.words.id_bound(), 2, "words a and z were interned");
        assert_eq!(trie.words.get("a"), None, "and released again");
    }

    #[test]
    fn pruning_keeps_shared_prefixes() {
        let mut trie = Trie::default();
        trie.insert("a.b.#", d(1));
        trie.insert("a.b.#.c", d(2));
        trie.remove("a.b.#", 1);
        assert_eq!(matching(&trie, "a.b.x.c"), [2]);
        assert!(trie.contains("a.b.#.c", 2));
        trie.remove("a.b.#.c", 2);
        assert!(trie.is_empty());
        trie.insert("*.#", d(4));
        assert_eq!(trie.node_bound(), 5, "freed nodes are reused");
    }

    #[test]
    fn runs_of_hash_stay_linear() {
        let mut trie = Trie::default();
        let pattern = vec!["#"; 40].join(".") + ".a";
        trie.insert(&pattern, d(9));
        let long_key = vec!["x"; 200].join(".");
        assert_eq!(matching(&trie, &long_key), Vec::<u32>::new());
        assert_eq!(matching(&trie, &(long_key + ".a")), [9]);
    }
}
