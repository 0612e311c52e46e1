//! The `topic` kind: dot-separated words with `*` (exactly one word) and `#` (zero or more).
//!
//! Words are split on `.`; empty words are words (`a..z` has three), but the empty routing
//! key has no words at all, as in RabbitMQ.
//!
//! - `reference`: [`topic_matches`], the plain matcher everything else is checked against.
//! - `intern`: words and destinations as dense integer ids.
//! - `node`: trie nodes (one cache line each) and the arena that owns them.
//! - `dests`: the destinations of one binding key, O(1) to change however many.
//! - `summary`: what a walk checks before visiting a node: bounds, child flags, word filter.
//! - `trie`: the word trie of binding keys with wildcards, and its memoised walk.
//! - `table`: exact keys in a hash map, the rest in the trie.
//! - `scratch`: per-thread, reusable working memory of a route.
//! - `cache`: the per-thread result cache.
//! - `router`: [`TopicRouter`], the [`Router`](super::Router) that ties them together.
//! - `size`: memory estimates.

mod cache;
mod dests;
mod intern;
mod node;
mod reference;
mod router;
mod scratch;
mod size;
mod summary;
mod table;
#[cfg(test)]
mod tests;
mod trie;

pub use reference::topic_matches;
pub use router::TopicRouter;
