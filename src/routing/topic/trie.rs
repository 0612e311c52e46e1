//! The word-level trie that holds every binding key containing `*` or `#`.
//!
//! Each node is a pattern prefix. A node's `*` and `#` children are fields of the node. Its
//! literal children (by interned word) sit in a short list inside the node while there are
//! few, so the common lookup touches no other memory; a node with many moves them to one
//! table keyed by `(node, word)`, as in RabbitMQ's trie exchange, so that adding a child
//! stays O(1) however many there are.
//!
//! # Matching
//!
//! A walk visits `(node, words consumed)` pairs. A `#` node reached after `p` words may go on
//! after any of the positions `p..=n`; the walk remembers, per `#` node, the lowest position
//! it has been expanded from, so no `(node, position)` pair is ever visited twice. That keeps
//! `#.#.#.a` linear in the key length, where a backtracking matcher is cubic.
//!
//! Each node also knows how many more key words the patterns below it can take: at least
//! `min_rest` (their words other than `#`), at most `max_rest` (unbounded below a `#`). The
//! walk skips a node whose bounds exclude the words left, and expands a `#` only at the
//! positions its subtree can finish from. Binding widens the bounds along the pattern's path;
//! unbinding leaves them as they were, so they may be wider than needed but never too narrow.
//!
//! # Invariants
//!
//! Every node other than the root has at least one binding in its subtree: `remove` prunes
//! nodes that become empty. Each literal edge holds one reference to its interned word.

use std::mem::size_of;

use hashbrown::HashMap;
use smallvec::SmallVec;

use super::intern::Interner;
use super::reference::words;
use super::scratch::WalkState;
use super::size::hash_map_bytes;

/// No node: an absent `*`/`#` child, or the root's parent.
const NONE: u32 = u32::MAX;
/// The root node, present even in an empty trie.
const ROOT: u32 = 0;
/// `Node::edge` of a node reached by `*`.
const STAR_EDGE: u32 = u32::MAX;
/// `Node::edge` of a node reached by `#`.
const HASH_EDGE: u32 = u32::MAX - 1;
/// The word id of a routing-key word that no binding uses: it matches only `*` and `#`.
const UNKNOWN_WORD: u32 = u32::MAX;
/// `Node::max_rest` below a `#`: any number of words.
const UNBOUNDED: u32 = u32::MAX;
/// A node keeps at most this many literal children in its own list.
const SMALL_CHILDREN: usize = 8;

/// One pattern prefix.
#[derive(Debug)]
struct Node {
    /// The child reached by `*`, or `NONE`.
    star: u32,
    /// The child reached by `#`, or `NONE`.
    hash: u32,
    /// The fewest key words, after this node, that a pattern below it can match.
    min_rest: u32,
    /// The most key words, after this node, that a pattern below it can match (or `UNBOUNDED`).
    max_rest: u32,
    /// How many literal children this node has.
    literals: u32,
    /// Whether the literal children are in `Trie::edges` rather than in `small`.
    big: bool,
    /// The literal children as `(word, child)`, while there are at most `SMALL_CHILDREN`.
    small: SmallVec<[(u32, u32); 2]>,
    /// The parent node (`NONE` for the root and for free nodes).
    parent: u32,
    /// How the parent reaches this node: a word id, `STAR_EDGE` or `HASH_EDGE`.
    edge: u32,
    /// Dense ids of the destinations bound with exactly this pattern.
    dests: SmallVec<[u32; 2]>,
}

impl Node {
    /// A fresh node below `parent`.
    fn new(parent: u32, edge: u32) -> Self {
        Node {
            star: NONE,
            hash: NONE,
            // Empty bounds (min > max) until a pattern passes through.
            min_rest: UNBOUNDED,
            max_rest: 0,
            literals: 0,
            big: false,
            small: SmallVec::new(),
            parent,
            edge,
            dests: SmallVec::new(),
        }
    }

    /// Whether a pattern below this node could match exactly `rest` more key words.
    #[inline]
    fn fits(&self, rest: u32) -> bool {
        self.min_rest <= rest && rest <= self.max_rest
    }

    /// Whether the node has no children.
    fn is_leaf(&self) -> bool {
        self.star == NONE && self.hash == NONE && self.literals == 0
    }
}

/// The trie of wildcard patterns; destinations are dense ids from the table's interner.
#[derive(Debug)]
pub(crate) struct Trie {
    /// Node arena; index 0 is the root.
    nodes: Vec<Node>,
    /// Freed arena slots, reused before the arena grows.
    free: Vec<u32>,
    /// Literal edges of the nodes with many children: `(parent << 32) | word` → child.
    edges: HashMap<u64, u32>,
    /// The literal words used by edges.
    words: Interner<Box<str>>,
}

/// The key of a literal edge.
#[inline]
fn edge_key(parent: u32, word: u32) -> u64 {
    (u64::from(parent) << 32) | u64::from(word)
}

impl Default for Trie {
    fn default() -> Self {
        Trie {
            nodes: vec![Node::new(NONE, NONE)],
            free: Vec::new(),
            edges: HashMap::new(),
            words: Interner::default(),
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
        self.nodes[ROOT as usize].is_leaf() && self.nodes[ROOT as usize].dests.is_empty()
    }

    /// Returns the child of `node` along one pattern word, if it exists.
    fn child(&self, node: u32, word: &str) -> Option<u32> {
        let n = &self.nodes[node as usize];
        let child = match word {
            "*" => n.star,
            "#" => n.hash,
            _ => return self.literal(node, self.words.get(word)?),
        };
        (child != NONE).then_some(child)
    }

    /// Returns the child of `node` along the interned word `word`, if it exists.
    #[inline]
    fn literal(&self, node: u32, word: u32) -> Option<u32> {
        let n = &self.nodes[node as usize];
        if n.big {
            self.edges.get(&edge_key(node, word)).copied()
        } else {
            n.small.iter().find(|(w, _)| *w == word).map(|(_, c)| *c)
        }
    }

    /// Returns the node of `pattern`, if it exists.
    fn find(&self, pattern: &str) -> Option<u32> {
        words(pattern).try_fold(ROOT, |node, word| self.child(node, word))
    }

    /// Whether destination `dest` is bound with `pattern`.
    pub(crate) fn contains(&self, pattern: &str, dest: u32) -> bool {
        self.find(pattern)
            .is_some_and(|node| self.nodes[node as usize].dests.contains(&dest))
    }

    /// Binds `dest` with `pattern`; returns `false` if it already was.
    pub(crate) fn insert(&mut self, pattern: &str, dest: u32) -> bool {
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
        if dests.contains(&dest) {
            return false;
        }
        dests.push(dest);
        self.widen_bounds(&path, pattern);
        true
    }

    /// Widens the bounds of each node on `path` (the nodes of `pattern`, root first) to
    /// admit the rest of the pattern after it.
    fn widen_bounds(&mut self, path: &[u32], pattern: &str) {
        let (mut min_rest, mut max_rest) = (0_u32, 0_u32);
        let mut nodes = path.iter().rev();
        let mut words = words(pattern).rev();
        loop {
            let Some(&node) = nodes.next() else { break };
            let n = &mut self.nodes[node as usize];
            n.min_rest = n.min_rest.min(min_rest);
            n.max_rest = n.max_rest.max(max_rest);
            match words.next() {
                Some("#") => max_rest = UNBOUNDED,
                Some(_) => {
                    min_rest = min_rest.saturating_add(1);
                    max_rest = max_rest.saturating_add(1).min(UNBOUNDED);
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
        let child = match self.free.pop() {
            Some(id) => {
                self.nodes[id as usize] = Node::new(parent, edge);
                id
            }
            None => {
                let id = u32::try_from(self.nodes.len()).expect("fewer than 2^32 trie nodes");
                self.nodes.push(Node::new(parent, edge));
                id
            }
        };
        let p = &mut self.nodes[parent as usize];
        match edge {
            STAR_EDGE => p.star = child,
            HASH_EDGE => p.hash = child,
            word => {
                p.literals += 1;
                if !p.big && p.small.len() < SMALL_CHILDREN {
                    p.small.push((word, child));
                } else {
                    if !p.big {
                        p.big = true;
                        let small = std::mem::take(&mut p.small);
                        let moved = small.into_iter().map(|(w, c)| (edge_key(parent, w), c));
                        self.edges.extend(moved);
                    }
                    self.edges.insert(edge_key(parent, word), child);
                }
            }
        }
        child
    }

    /// Unbinds `dest` from `pattern`, pruning nodes left empty; returns `false` if it was not
    /// bound.
    pub(crate) fn remove(&mut self, pattern: &str, dest: u32) -> bool {
        let Some(mut node) = self.find(pattern) else {
            return false;
        };
        let dests = &mut self.nodes[node as usize].dests;
        let Some(at) = dests.iter().position(|&d| d == dest) else {
            return false;
        };
        dests.swap_remove(at);
        while node != ROOT {
            let n = &self.nodes[node as usize];
            if !n.is_leaf() || !n.dests.is_empty() {
                break;
            }
            let (parent, edge) = (n.parent, n.edge);
            self.detach(parent, edge);
            self.nodes[node as usize] = Node::new(NONE, NONE);
            self.free.push(node);
            node = parent;
        }
        true
    }

    /// Removes the edge `edge` from `parent`.
    fn detach(&mut self, parent: u32, edge: u32) {
        let p = &mut self.nodes[parent as usize];
        match edge {
            STAR_EDGE => p.star = NONE,
            HASH_EDGE => p.hash = NONE,
            word => {
                p.literals -= 1;
                if p.big {
                    self.edges.remove(&edge_key(parent, word));
                    p.big = p.literals > 0;
                } else {
                    p.small.retain(|(w, _)| *w != word);
                }
                self.words.release(word);
            }
        }
    }

    /// Writes the interned ids of the routing key's words to `tokens`.
    pub(crate) fn tokenize(&self, key: &str, tokens: &mut Vec<u32>) {
        tokens.extend(words(key).map(|w| self.words.get(w).unwrap_or(UNKNOWN_WORD)));
    }

    /// Calls `emit` with the destinations of every pattern matching the key `tokens`.
    ///
    /// `walk` must have been started for this trie ([`Scratch::begin`](super::scratch::Scratch::begin)).
    /// A destination may be emitted more than once; the caller removes duplicates.
    pub(crate) fn walk(&self, tokens: &[u32], walk: &mut WalkState, mut emit: impl FnMut(u32)) {
        let n = tokens.len() as u32;
        walk.stack.push((ROOT, 0));
        while let Some((id, pos)) = walk.stack.pop() {
            let node = &self.nodes[id as usize];
            if !node.fits(n - pos) {
                continue;
            }
            if pos == n {
                node.dests.iter().for_each(|&d| emit(d));
                // Only a `#` child can still match, with zero words.
            }
            if node.hash != NONE {
                self.expand_hash(node.hash, pos, n, walk, &mut emit);
            }
            if pos < n {
                if node.star != NONE {
                    walk.stack.push((node.star, pos + 1));
                }
                let word = tokens[pos as usize];
                if node.literals > 0 && word != UNKNOWN_WORD {
                    if let Some(child) = self.literal(id, word) {
                        walk.stack.push((child, pos + 1));
                    }
                }
            }
        }
    }

    /// Enters `#` node `hash` after `pos` of `n` words: it may swallow any number of them.
    fn expand_hash(
        &self,
        hash: u32,
        pos: u32,
        n: u32,
        walk: &mut WalkState,
        emit: &mut impl FnMut(u32),
    ) {
        let node = &self.nodes[hash as usize];
        if node.is_leaf() {
            // A trailing `#` swallows the rest of the key: it always matches.
            node.dests.iter().for_each(|&d| emit(d));
            return;
        }
        // The `#` may stop after any position whose remaining words its subtree can take.
        let first = pos.max(n.saturating_sub(node.max_rest));
        let Some(last) = n.checked_sub(node.min_rest) else {
            return;
        };
        let seen = &mut walk.hash_from[hash as usize];
        let end = if seen.0 == walk.epoch { seen.1 } else { last + 1 };
        if first >= end {
            return;
        }
        *seen = (walk.epoch, first);
        walk.stack.extend((first..end).map(|p| (hash, p)));
    }

    /// Estimates the bytes held.
    pub(crate) fn memory_bytes(&self) -> usize {
        let spilled: usize = self
            .nodes
            .iter()
            .map(|n| {
                let dests = if n.dests.spilled() { n.dests.capacity() * 4 } else { 0 };
                let small = if n.small.spilled() { n.small.capacity() * 8 } else { 0 };
                dests + small
            })
            .sum();
        self.nodes.capacity() * size_of::<Node>()
            + spilled
            + self.free.capacity() * size_of::<u32>()
            + hash_map_bytes(&self.edges)
            + self.words.memory_bytes(|w| w.len())
    }
}

#[cfg(test)]
mod tests {
    use super::Trie;
    use crate::routing::topic::scratch::Scratch;

    fn matching(trie: &Trie, key: &str) -> Vec<u32> {
        let mut scratch = Scratch::default();
        scratch.begin(trie.node_bound(), 0);
        trie.tokenize(key, &mut scratch.tokens);
        let mut out = Vec::new();
        trie.walk(&scratch.tokens, &mut scratch.walk, |d| out.push(d));
        out.sort_unstable();
        out
    }

    #[test]
    fn insert_match_remove() {
        let mut trie = Trie::default();
        assert!(trie.is_empty());
        assert!(trie.insert("a.*.z", 1));
        assert!(!trie.insert("a.*.z", 1));
        assert!(trie.insert("a.#", 2));
        assert!(trie.insert("#.z", 3));
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
        trie.insert("a.b.#", 1);
        trie.insert("a.b.#.c", 2);
        trie.remove("a.b.#", 1);
        assert_eq!(matching(&trie, "a.b.x.c"), [2]);
        assert!(trie.contains("a.b.#.c", 2));
        trie.remove("a.b.#.c", 2);
        assert!(trie.is_empty());
        trie.insert("*.#", 4);
        assert_eq!(trie.nodes.len(), 5, "freed nodes are reused");
    }

    #[test]
    fn runs_of_hash_stay_linear() {
        let mut trie = Trie::default();
        let pattern = vec!["#"; 40].join(".") + ".a";
        trie.insert(&pattern, 9);
        let long_key = vec!["x"; 200].join(".");
        assert_eq!(matching(&trie, &long_key), Vec::<u32>::new());
        assert_eq!(matching(&trie, &(long_key + ".a")), [9]);
    }
}
