//! The one place where lock and channel types are chosen, so that swapping them (or adding
//! loom) is a one-file change.

#[cfg(feature = "wire")]
pub(crate) use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
pub(crate) use parking_lot::{Condvar, Mutex, MutexGuard};

/// The hasher of the broker's hash maps: fast on short keys (names, ids), and randomly
/// seeded so that names chosen by clients cannot force collisions.
pub(crate) type FastHash = ahash::RandomState;

/// A concurrent map with [`FastHash`].
pub(crate) type ConcurrentMap<K, V> = dashmap::DashMap<K, V, FastHash>;
