//! [`TopicRouter`]: the table behind a read-mostly lock, plus per-thread scratch and caches.

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::sync::{ShardedLock, ShardedLockReadGuard, ShardedLockWriteGuard};
use crossbeam_utils::CachePadded;
use thread_local::ThreadLocal;

use super::cache::{Probe, ResultCache};
use super::scratch::Scratch;
use super::table::Table;
use crate::routing::{Binding, DestinationId, InvalidBinding, Router, RoutingInput};

/// The default [`TopicRouter::with_cache_capacity`]: result-cache slots per publishing thread.
const DEFAULT_CACHE_SLOTS: usize = 16_384;

/// Routes by topic pattern: dot-separated words, `*` for exactly one word, `#` for zero or
/// more, with RabbitMQ's rules (see [`topic_matches`](crate::routing::topic_matches)).
///
/// # Performance
///
/// Binding keys without wildcards are found with one hash lookup of the whole routing key;
/// the others sit in a word trie whose words are interned at bind time, and a route walks it
/// without allocating, visiting each `(trie node, key position)` pair at most once. Bind and
/// unbind cost O(words of the key), whatever the number of bindings.
///
/// # Caching
///
/// Each publishing thread keeps a cache of recent results, keyed by routing key and made
/// stale by any bind or unbind. It starts at 256 slots and grows, up to its capacity, only
/// while it keeps evicting live entries; a slot takes about 120 bytes (keys up to 48 bytes are
/// stored inline), so the default capacity costs at most about 2 MiB per publishing thread.
/// It steps aside by itself when keys rarely repeat.
///
/// # Concurrency
///
/// Publishers take a read lock on one shard of a sharded lock, so they do not contend with
/// one another; bind and unbind take all shards. Every route sees the table either wholly
/// before or wholly after each bind or unbind.
///
/// ## Defaults
///
/// The result cache is on, with up to 16,384 slots per publishing thread.
///
/// # Examples
///
/// ```
/// use warrenmq::routing::{Binding, DestinationId, Router, RoutingInput, TopicRouter};
/// use warrenmq::FieldTable;
///
/// let router = TopicRouter::new();
/// let args = FieldTable::default();
/// let bind = |raw, key| Binding { destination: DestinationId::new(raw), key, arguments: &args };
/// assert!(router.bind(bind(1, "stock.*.nyse")).unwrap());
/// assert!(router.bind(bind(2, "stock.#")).unwrap());
/// assert!(!router.bind(bind(2, "stock.#")).unwrap(), "already bound");
///
/// let mut out = Vec::new();
/// router.route(RoutingInput { routing_key: "stock.usd.nyse", headers: None }, &mut out);
/// out.sort();
/// assert_eq!(out, [DestinationId::new(1), DestinationId::new(2)]);
/// ```
pub struct TopicRouter {
    /// The bindings. Lock order: this lock is the only one; thread-local state is not shared.
    table: ShardedLock<Table>,
    /// The table's generation, readable without the lock. Written only under the write lock.
    generation: AtomicU64,
    /// Result-cache slots per thread; 0 disables the cache.
    cache_slots: usize,
    /// Each publishing thread's scratch memory and result cache, padded so that threads
    /// writing their own state do not share a cache line.
    locals: ThreadLocal<CachePadded<RefCell<Local>>>,
}

/// One thread's private state for one router.
#[derive(Debug)]
struct Local {
    /// Working memory of a route.
    scratch: Scratch,
    /// Recent results, if caching is on.
    cache: Option<ResultCache>,
}

impl Default for TopicRouter {
    fn default() -> Self {
        Self::with_cache_capacity(DEFAULT_CACHE_SLOTS)
    }
}

impl TopicRouter {
    /// Creates an empty router with the result cache on.
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::routing::{Router, TopicRouter};
    ///
    /// assert!(TopicRouter::new().memory_bytes() > 0);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates an empty router with the result cache on (the default) or off.
    ///
    /// Turning it off gives the raw cost of matching, as the benchmark runner reports it.
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::routing::TopicRouter;
    ///
    /// let uncached = TopicRouter::with_cache(false);
    /// # drop(uncached);
    /// ```
    pub fn with_cache(enabled: bool) -> Self {
        Self::with_cache_capacity(if enabled { DEFAULT_CACHE_SLOTS } else { 0 })
    }

    /// Creates an empty router whose per-thread result cache holds at most `slots` results
    /// (rounded up to a power of two); 0 turns the cache off.
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::routing::TopicRouter;
    ///
    /// let small = TopicRouter::with_cache_capacity(512);
    /// # drop(small);
    /// ```
    pub fn with_cache_capacity(slots: usize) -> Self {
        TopicRouter {
            table: ShardedLock::new(Table::default()),
            generation: AtomicU64::new(0),
            cache_slots: slots,
            locals: ThreadLocal::new(),
        }
    }

    /// Locks the table for reading.
    fn read(&self) -> ShardedLockReadGuard<'_, Table> {
        // A panic while writing can only come from a broken invariant, caught in tests.
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Locks the table for writing.
    fn write(&self) -> ShardedLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies a change to the table and publishes its new generation.
    fn change(&self, f: impl FnOnce(&mut Table) -> bool) -> bool {
        let mut table = self.write();
        let changed = f(&mut table);
        // Stored under the write lock: a cache entry tagged with this generation was computed
        // from exactly this table.
        self.generation.store(table.generation(), Ordering::Release);
        changed
    }

    /// This thread's state.
    fn local(&self) -> &RefCell<Local> {
        self.locals.get_or(|| {
            CachePadded::new(RefCell::new(Local {
                scratch: Scratch::default(),
                cache: (self.cache_slots > 0).then(|| ResultCache::new(self.cache_slots)),
            }))
        })
    }
}

impl fmt::Debug for TopicRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopicRouter")
            .field("bindings", &self.read().len())
            .field("cache_slots", &self.cache_slots)
            .finish_non_exhaustive()
    }
}

impl Router for TopicRouter {
    fn bind(&self, binding: Binding<'_>) -> Result<bool, InvalidBinding> {
        Ok(self.change(|t| t.bind(binding.destination, binding.key)))
    }

    fn unbind(&self, binding: Binding<'_>) -> bool {
        self.change(|t| t.unbind(binding.destination, binding.key))
    }

    fn route(&self, input: RoutingInput<'_>, out: &mut Vec<DestinationId>) {
        let key = input.routing_key;
        // Route never re-enters itself, so this thread's cell is never borrowed twice.
        let mut local = self.local().borrow_mut();
        let Local { scratch, cache } = &mut *local;
        let Some(cache) = cache.as_mut() else {
            return self.read().route(key, scratch, out);
        };
        if !cache.should_probe() {
            return self.read().route(key, scratch, out);
        }
        let Probe::Miss(hash) = cache.lookup(key, self.generation.load(Ordering::Acquire), out)
        else {
            return;
        };
        let table = self.read();
        let start = out.len();
        table.route(key, scratch, out);
        cache.insert(hash, key, table.generation(), &out[start..]);
    }

    /// Counts the shared routing table: the trie, the exact-key map, the interned words and
    /// destinations. Each publishing thread's scratch memory and result cache come on top; the
    /// cache is bounded by [`TopicRouter::with_cache_capacity`].
    fn memory_bytes(&self) -> usize {
        self.read().memory_bytes()
    }
}
