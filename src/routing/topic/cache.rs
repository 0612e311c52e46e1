//! A small per-thread cache of routing results, keyed by routing key.
//!
//! # Policy
//!
//! The cache is four-way set associative: a key may sit in any of the four slots of its set,
//! and a miss replaces a stale entry or else the least recently used of the four. It starts at
//! [`INITIAL_SLOTS`] slots and doubles (keeping its entries), up to its capacity, while more
//! than one lookup in 64 evicts a live entry. Every entry is tagged with the table's generation, which every bind and unbind
//! bumps, so an entry from before a change is simply a miss.
//!
//! When fewer than one lookup in eight hits (keys that rarely repeat), probing and filling the
//! cache costs more than it saves, so the cache steps aside: only one lookup in
//! [`SAMPLE_EVERY`] still uses it, which is enough to notice when the keys start to repeat.

use std::hash::BuildHasher;

use hashbrown::DefaultHashBuilder;
use smallvec::SmallVec;

use crate::routing::DestinationId;

/// The number of slots a cache starts with.
pub(crate) const INITIAL_SLOTS: usize = 256;
/// Lookups per policy decision.
const WINDOW: u32 = 1024;
/// While bypassed, one lookup in this many still uses the cache.
const SAMPLE_EVERY: u32 = 16;
/// Slots per set: a key may sit in any of the `WAYS` slots of its set.
const WAYS: usize = 4;

/// One cached result.
#[derive(Debug)]
struct Slot {
    /// The table generation the result was computed at; `u64::MAX` when empty.
    generation: u64,
    /// The lookup count when the slot was last used, to evict the least recent.
    used: u32,
    /// The routing key's bytes: inline up to 48 bytes, so that a hit reads one place.
    key: SmallVec<[u8; 48]>,
    /// The destinations, in the order the table emitted them.
    dests: SmallVec<[DestinationId; 4]>,
}

impl Slot {
    /// An empty slot.
    fn empty() -> Self {
        Slot {
            generation: u64::MAX,
            used: 0,
            key: SmallVec::new(),
            dests: SmallVec::new(),
        }
    }
}

/// The outcome of [`ResultCache::lookup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    /// The result was appended to the output.
    Hit,
    /// Not cached; the key's hash, to hand back to [`ResultCache::insert`].
    Miss(u64),
}

/// A bounded routing-result cache for one thread and one router.
#[derive(Debug)]
pub(crate) struct ResultCache {
    /// The entries, `WAYS` per set; the length is a power of two.
    slots: Vec<Slot>,
    /// Per slot: the hash of its key with the low bit set, or 0 when empty. Kept apart from
    /// the slots so that a lookup scans its whole set in one cache line.
    tags: Vec<u64>,
    /// The most slots this cache may grow to.
    capacity: usize,
    /// Hashes routing keys.
    hasher: DefaultHashBuilder,
    /// Counts every lookup; the clock of `used`.
    clock: u32,
    /// Lookups, hits and evictions of live entries in the current window.
    lookups: u32,
    /// See `lookups`.
    hits: u32,
    /// See `lookups`.
    evictions: u32,
    /// Whether the cache is stepping aside for low hit rate.
    bypass: bool,
    /// Counts lookups while bypassed, to sample one in `SAMPLE_EVERY`.
    tick: u32,
}

impl ResultCache {
    /// Creates an empty cache that may grow to `capacity` slots (rounded up to a power of two).
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(WAYS).next_power_of_two();
        let mut cache = ResultCache {
            slots: Vec::new(),
            tags: Vec::new(),
            capacity,
            hasher: DefaultHashBuilder::default(),
            clock: 0,
            lookups: 0,
            hits: 0,
            evictions: 0,
            bypass: false,
            tick: 0,
        };
        cache.resize(INITIAL_SLOTS.min(capacity));
        cache
    }

    /// Whether this lookup should use the cache at all.
    #[inline]
    pub(crate) fn should_probe(&mut self) -> bool {
        if !self.bypass {
            return true;
        }
        self.tick = self.tick.wrapping_add(1);
        self.tick.is_multiple_of(SAMPLE_EVERY)
    }

    /// Appends the cached result for `key` at table generation `generation` to `out`, if any.
    #[inline]
    pub(crate) fn lookup(
        &mut self,
        key: &str,
        generation: u64,
        out: &mut Vec<DestinationId>,
    ) -> Probe {
        let hash = self.hasher.hash_one(key) | 1;
        let first = self.set_of(hash);
        self.clock = self.clock.wrapping_add(1);
        for at in first..first + WAYS {
            if self.tags[at] != hash {
                continue;
            }
            let slot = &mut self.slots[at];
            if slot.generation == generation && slot.key[..] == *key.as_bytes() {
                out.extend_from_slice(&slot.dests);
                slot.used = self.clock;
                self.hits += 1;
                self.count_lookup();
                return Probe::Hit;
            }
        }
        Probe::Miss(hash)
    }

    /// Caches `dests` as the result for `key` (whose hash `lookup` returned) at `generation`.
    pub(crate) fn insert(
        &mut self,
        hash: u64,
        key: &str,
        generation: u64,
        dests: &[DestinationId],
    ) {
        let first = self.set_of(hash);
        // Replace an empty or stale entry if the set has one, else the least recently used.
        let stale = (first..first + WAYS)
            .find(|&at| self.tags[at] == 0 || self.slots[at].generation != generation);
        let at = stale.unwrap_or_else(|| {
            self.evictions += 1;
            let age = |at: &usize| self.clock.wrapping_sub(self.slots[*at].used);
            (first..first + WAYS).max_by_key(age).unwrap_or(first)
        });
        let slot = &mut self.slots[at];
        slot.generation = generation;
        slot.used = self.clock;
        slot.key.clear();
        slot.key.extend_from_slice(key.as_bytes());
        slot.dests.clear();
        slot.dests.extend_from_slice(dests);
        self.tags[at] = hash;
        self.count_lookup();
    }

    /// The first slot of the set a hash falls in.
    #[inline]
    fn set_of(&self, hash: u64) -> usize {
        // High bits: hashbrown uses the low ones, and the tag's low bit is forced to 1.
        let sets = self.slots.len() / WAYS;
        ((hash >> 32) as usize & (sets - 1)) * WAYS
    }

    /// Counts one lookup and, at the end of a window, decides whether to grow or step aside.
    fn count_lookup(&mut self) {
        self.lookups += 1;
        if self.lookups < WINDOW {
            return;
        }
        // Every eviction of a live entry is a hit lost later: grow while they are not rare.
        let thrashing = self.evictions * 64 > self.lookups;
        if thrashing && self.slots.len() < self.capacity {
            self.resize(self.slots.len() * 2);
            self.bypass = false;
        } else {
            self.bypass = self.hits * 8 < self.lookups;
        }
        self.lookups = 0;
        self.hits = 0;
        self.evictions = 0;
    }

    /// Gives the cache `slots` slots, keeping the entries that still fit.
    fn resize(&mut self, slots: usize) {
        let old_slots =
            std::mem::replace(&mut self.slots, (0..slots).map(|_| Slot::empty()).collect());
        let old_tags = std::mem::replace(&mut self.tags, vec![0; slots]);
        for (slot, tag) in old_slots.into_iter().zip(old_tags) {
            let first = self.set_of(tag);
            if tag == 0 {
                continue;
            }
            if let Some(at) = (first..first + WAYS).find(|&at| self.tags[at] == 0) {
                self.slots[at] = slot;
                self.tags[at] = tag;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Probe, ResultCache, INITIAL_SLOTS, WINDOW};
    use crate::routing::DestinationId;

    fn d(raw: u64) -> DestinationId {
        DestinationId::new(raw)
    }

    #[test]
    fn slots_stay_small() {
        // The router's docs promise about 120 bytes per slot.
        let size = std::mem::size_of::<super::Slot>();
        assert!((100..=128).contains(&size), "{size}");
    }

    #[test]
    fn hit_only_at_the_same_generation() {
        let mut cache = ResultCache::new(1024);
        let mut out = Vec::new();
        let Probe::Miss(hash) = cache.lookup("a.b", 1, &mut out) else {
            panic!("an empty cache hit");
        };
        cache.insert(hash, "a.b", 1, &[d(1), d(2)]);
        assert_eq!(cache.lookup("a.b", 1, &mut out), Probe::Hit);
        assert_eq!(out, [d(1), d(2)]);
        assert!(matches!(cache.lookup("a.b", 2, &mut out), Probe::Miss(_)));
        assert!(matches!(cache.lookup("a.c", 1, &mut out), Probe::Miss(_)));
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn grows_when_thrashing_then_steps_aside_for_unique_keys() {
        let mut cache = ResultCache::new(1024);
        let mut out = Vec::new();
        for i in 0..(4 * WINDOW) {
            let key = format!("k{i}");
            if let Probe::Miss(hash) = cache.lookup(&key, 1, &mut out) {
                cache.insert(hash, &key, 1, &[]);
            }
        }
        assert!(cache.slots.len() > INITIAL_SLOTS);
        for i in 0..(8 * WINDOW) {
            let key = format!("u{i}");
            if cache.should_probe() {
                if let Probe::Miss(hash) = cache.lookup(&key, 1, &mut out) {
                    cache.insert(hash, &key, 1, &[]);
                }
            }
        }
        assert!(cache.bypass, "unique keys never hit");
    }

    #[test]
    fn repeated_keys_keep_it_on() {
        let mut cache = ResultCache::new(1024);
        let mut out = Vec::new();
        for i in 0..(4 * WINDOW) {
            let key = format!("k{}", i % 20);
            assert!(cache.should_probe());
            if let Probe::Miss(hash) = cache.lookup(&key, 1, &mut out) {
                cache.insert(hash, &key, 1, &[d(i.into())]);
            }
        }
        assert!(!cache.bypass);
        assert!(
            cache.slots.len() <= 2 * INITIAL_SLOTS,
            "a small key set stays small"
        );
    }
}
