//! Write groups: several writes of one thread applied in one transaction, all or nothing.
//!
//! A thread opens a group ([`WriteGroup::begin`]); every write submitted from then on (by any
//! thread) until the group's end is applied in the same transaction, after the writes
//! submitted before it were committed on their own. While its group is open, the thread's
//! waits on writes of that group return at once: they are written (or fail) with the group,
//! whose end ticket tells which. So a definitions import declares its entities one by one
//! (each answered at once) and they reach the disk in one commit, or not at all.

use std::cell::Cell;
use std::sync::Arc;

use super::durable::{Durable, Tracker};
use super::Store;

thread_local! {
    /// The group this thread has open: its store's tracker and the number of its first
    /// write (its begin marker).
    static OPEN: Cell<Option<(usize, u64)>> = const { Cell::new(None) };
}

#[cfg_attr(
    not(feature = "persistence"),
    allow(dead_code, reason = "no store opens groups")
)]
/// Records that this thread opened a group at write `first` of the store of `tracker`.
pub(super) fn enter(tracker: &Arc<Tracker>, first: u64) {
    OPEN.set(Some((Arc::as_ptr(tracker) as usize, first)));
}

#[cfg_attr(
    not(feature = "persistence"),
    allow(dead_code, reason = "no store opens groups")
)]
/// Records that this thread's group is ended.
pub(super) fn leave() {
    OPEN.set(None);
}

/// Returns `true` if write `seq` of the store of `tracker` belongs to the group this thread
/// has open: a wait for it must not wait for the group's end.
pub(super) fn within_open(tracker: &Arc<Tracker>, seq: u64) -> bool {
    OPEN.get()
        .is_some_and(|(t, first)| t == Arc::as_ptr(tracker) as usize && seq > first)
}

/// An open write group of a store; ended (and its ticket returned) by [`end`](Self::end), or
/// ended unwaited when dropped.
#[must_use = "a group is written only once it ends"]
#[cfg_attr(
    not(feature = "definitions"),
    allow(dead_code, reason = "definitions imports group their writes")
)]
pub(crate) struct WriteGroup<'a> {
    /// The store, until the group ends.
    store: Option<&'a dyn Store>,
}

#[cfg_attr(
    not(feature = "definitions"),
    allow(dead_code, reason = "definitions imports group their writes")
)]
impl<'a> WriteGroup<'a> {
    /// Opens a group on `store` for this thread; `None` if the store writes nothing (an
    /// in-memory broker) or is closed. Groups do not nest on one thread.
    pub(crate) fn begin(store: &'a dyn Store) -> Option<Self> {
        store
            .begin_group()
            .then_some(WriteGroup { store: Some(store) })
    }

    /// Ends the group; returns the ticket of its transaction, which finishes once everything
    /// written in the group is on disk, or has failed with it.
    pub(crate) fn end(mut self) -> Durable {
        self.store
            .take()
            .map_or_else(Durable::done, |store| store.end_group())
    }
}

impl Drop for WriteGroup<'_> {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            drop(store.end_group());
        }
    }
}
