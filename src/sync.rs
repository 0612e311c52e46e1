//! The one place where lock and channel types are chosen, so that swapping them (or adding
//! loom) is a one-file change.

#[cfg(feature = "wire")]
pub(crate) use crossbeam_channel::{bounded, RecvTimeoutError};
pub(crate) use crossbeam_channel::{unbounded, Receiver, Select, Sender};
pub(crate) use parking_lot::{Mutex, MutexGuard};

/// The hasher of the broker's hash maps: fast on short keys (names, ids), and randomly
/// seeded so that names chosen by clients cannot force collisions.
pub(crate) type FastHash = ahash::RandomState;

/// A concurrent map with [`FastHash`].
pub(crate) type ConcurrentMap<K, V> = dashmap::DashMap<K, V, FastHash>;

/// Maps the channel library's try-receive error onto the crate's.
pub(crate) fn try_recv_error(e: crossbeam_channel::TryRecvError) -> crate::TryRecvError {
    if e.is_empty() {
        crate::TryRecvError::Empty
    } else {
        crate::TryRecvError::Disconnected
    }
}

/// Maps the channel library's timed-receive error onto the crate's.
pub(crate) fn recv_timeout_error(
    e: crossbeam_channel::RecvTimeoutError,
) -> crate::RecvTimeoutError {
    if e.is_timeout() {
        crate::RecvTimeoutError::Timeout
    } else {
        crate::RecvTimeoutError::Disconnected
    }
}
