//! The word-level trie that holds every binding key containing `*` or `#`.
//!
//! Each node is a pattern prefix. A node's `*` and `#` children are fields of the node. Its
//! literal children (by interned word) sit in a short list inside the node while there are
//! few, so the common lookup touches no other memory; a node with many moves them to a hash
//! table of its own, so that adding a child stays O(1) however many there are (see
//! [`Node`]). Beside each node, a 16-byte [`Summary`] tells the walk whether the node is worth
//! visiting at all.
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

use hashbrown::DefaultHashBuilder;
use smallvec::SmallVec;

use super::intern::Interner;
use super::node::{Dest, Node, NONE};
use super::reference::words;
use super::scratch::WalkState;
use super::summary::{Summary, UNBOUNDED, UNKNOWN_WORD};

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
    /// Node arena; index 0 is the root.
    nodes: Vec<Node>,
    /// Summaries of the nodes, by node index: read before a node is visited.
    summaries: Vec<Summary>,
    /// Parent links, by node index.
    links: Vec<Link>,
    /// Freed arena slots, reused before the arena grows.
    free: Vec<u32>,
    /// The literal words used by edges.
    words: Interner<Box<str>>,
    /// Hashes words in the nodes' child tables.
    hasher: DefaultHashBuilder,
}

impl Default for Trie {
    fn default() -> Self {
        Trie {
            nodes: vec![Node::new()],
            summaries: vec![Summary::EMPTY],
            links: vec![Link {
                parent: NONE,
                edge: NONE,
            }],
            free: Vec::new(),
            words: Interner::default(),
            hasher: DefaultHashBuilder::default(),
        }
    }
}

impl Trie {
    /// The number of node slots: the size a per-node stamp array needs.
    pub(crate) fn node_bound(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the trie holds no pattern.
    pub(crate) fn is_empty(&self) -> bool {
        let root = &self.nodes[ROOT as usize];
        root.is_leaf() && root.dests.is_empty()
    }

    /// Returns the child of `node` along one pattern word, if it exists.
    fn child(&self, node: u32, word: &str) -> Option<u32> {
        let n = &self.nodes[node as usize];
        let child = match word {
            "*" => n.star,
            "#" => n.hash,
            _ => return n.literal(self.words.get(word)?, &self.hasher),
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
            let dests = &self.nodes[node as usize].dests;
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
        let dests = &mut self.nodes[node as usize].dests;
        if dests.iter().any(|d| d.dense == dest.dense) {
            return false;
        }
        dests.push(dest);
        self.summaries[node as usize].set_dests(true);
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
            self.summaries[node as usize].widen(min16, max16);
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
        let link = Link { parent, edge };
        let child = match self.free.pop() {
            Some(id) => {
                self.nodes[id as usize] = Node::new();
                self.summaries[id as usize] = Summary::EMPTY;
                self.links[id as usize] = link;
                id
            }
            None => {
                let id = u32::try_from(self.nodes.len()).expect("fewer than 2^32 trie nodes");
                self.nodes.push(Node::new());
                self.summaries.push(Summary::EMPTY);
                self.links.push(link);
                id
            }
        };
        let (p, summary) = (
            &mut self.nodes[parent as usize],
            &mut self.summaries[parent as usize],
        );
        match edge {
            STAR_EDGE => {
                p.star = child;
                summary.set_star(true);
            }
            HASH_EDGE => {
                p.hash = child;
                summary.set_hash(true);
            }
            word => {
                p.add_literal(word, child, &self.hasher);
                summary.add_word(word);
            }
        }
        child
    }

    /// Unbinds the destination with dense id `dense` from `pattern`, pruning nodes left empty;
    /// returns `false` if it was not bound.
    pub(crate) fn remove(&mut self, pattern: &str, dense: u32) -> bool {
        let Some(mut node) = self.find(pattern) else {
            return false;
        };
        let dests = &mut self.nodes[node as usize].dests;
        let Some(at) = dests.iter().position(|d| d.dense == dense) else {
            return false;
        };
        dests.swap_remove(at);
        if dests.is_empty() {
            self.summaries[node as usize].set_dests(false);
        }
        while node != ROOT {
            let n = &self.nodes[node as usize];
            if !n.is_leaf() || !n.dests.is_empty() {
                break;
            }
            let Link { parent, edge } = self.links[node as usize];
            self.detach(parent, edge);
            self.nodes[node as usize] = Node::new();
            self.summaries[node as usize] = Summary::EMPTY;
            self.links[node as usize] = Link {
                parent: NONE,
                edge: NONE,
            };
            self.free.push(node);
            node = parent;
        }
        true
    }

    /// Removes the edge `edge` from `parent`.
    fn detach(&mut self, parent: u32, edge: u32) {
        let (p, summary) = (
            &mut self.nodes[parent as usize],
            &mut self.summaries[parent as usize],
        );
        match edge {
            STAR_EDGE => {
                p.star = NONE;
                summary.set_star(false);
            }
            HASH_EDGE => {
                p.hash = NONE;
                summary.set_hash(false);
            }
            word => {
                // The word filter keeps the word's bit: it may be shared, and is only a hint.
                p.remove_literal(word, &self.hasher);
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
        if self.summaries[ROOT as usize].promising(n, next(0)) {
            walk.stack.push((ROOT, 0));
        }
        while let Some((id, pos)) = walk.stack.pop() {
            let node = &self.nodes[id as usize];
            if pos == n {
                node.dests.iter().for_each(|&d| emit(d));
            }
            if node.hash != NONE {
                self.expand_hash(node.hash, pos, tokens, walk, &mut emit);
            }
            if pos < n {
                let (rest, after) = (n - pos - 1, next(pos + 1));
                let promising = |child: u32| self.summaries[child as usize].promising(rest, after);
                if node.star != NONE && promising(node.star) {
                    walk.stack.push((node.star, pos + 1));
                }
                let word = tokens[pos as usize];
                if self.summaries[id as usize].may_have_word(word) {
                    match node.literal(word, &self.hasher) {
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
        let node = &self.nodes[hash as usize];
        if node.is_leaf() {
            // A trailing `#` swallows the rest of the key: it always matches.
            node.dests.iter().for_each(|&d| emit(d));
            return;
        }
        let summary = &self.summaries[hash as usize];
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
        let heap: usize = self.nodes.iter().map(Node::heap_bytes).sum();
        self.nodes.capacity() * size_of::<Node>()
            + self.summaries.capacity() * size_of::<Summary>()
            + self.links.capacity() * size_of::<Link>()
            + heap
            + self.free.capacity() * size_of::<u32>()
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
        assert_eq!(trie.nodes.len(), 5, "freed nodes are reused");
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
