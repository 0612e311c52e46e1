//! Persistence: the [`Store`] the broker writes durable state to, and its implementations.
//!
//! The store knows records and redb only. It never sees routing, connections, the wire or the
//! queues' in-memory structures: the broker turns its own state changes into [`StoreOp`]s
//! and, at open, rebuilds itself from a [`RecoveredState`].
//!
//! - `error.rs`: [`StoreError`], the public error of this layer.
//! - `records.rs`: the serde records ([`ExchangeRecord`], [`QueueRecord`], [`BindingRecord`],
//!   [`MessageRecord`], ...) and the keys that name queues and entries.
//! - `op.rs`: [`StoreOp`], one write.
//! - `durable.rs`: [`Durable`], the ticket of a write, finished once it is on disk.
//! - `group.rs`: [`WriteGroup`], writes applied in one transaction (a definitions import).
//! - `recovery.rs`: [`RecoveredState`] and reading it from the database.
//! - `codec.rs` (feature `persistence`): records ⇄ bytes, with a format-version byte and a
//!   checksum.
//! - `tables.rs` (feature `persistence`): the redb tables and how each op changes them.
//! - `commit.rs` (feature `persistence`): the commit record (commit number, row counts).
//! - `witness.rs` (feature `persistence`): the witness file of the last durable commit.
//! - `open.rs` (feature `persistence`): creating and opening a database file, and the checks
//!   that refuse a damaged or rolled-back one.
//! - `migrate.rs` (feature `persistence`): format 1 → format 2 (formats 3 and 4 only add the
//!   policies and auth tables, created in `open.rs`).
//! - `writer.rs` (feature `persistence`): the group-commit writer thread.
//! - `redb_store.rs` (feature `persistence`): `RedbStore`, the store in a redb file.
//! - `salvage/` (feature `persistence`): [`salvage`], reading what is readable from a damaged
//!   database into a new one.
//!
//! [`NullStore`], for in-memory brokers, is defined here.
//!
//! # How the broker calls it
//!
//! ```text
//! // Broker::open(path):
//! let store: Arc<dyn Store> = Arc::new(RedbStore::open(path)?);
//! let state = store.load()?; // vhosts, exchanges, queues (+ messages in order), bindings
//! for q in &state.queues {
//!     // rebuild the queue; deliver `m.redelivered == true` messages as redelivered;
//!     // continue positions at `q.next_seq()`; drop expired ones (`expires_at_ms`) and
//!     // submit `StoreOp::Remove` for them.
//! }
//!
//! // Declaring a durable queue (likewise exchanges, bindings, vhosts):
//! store.submit(StoreOp::PutQueue(record)).wait()?; // declare-ok after the record is durable
//!
//! // Publishing a persistent message routed to durable queues q1 and q2:
//! let id = store.next_message_id();
//! let entries = vec![q1_key.entry(q1_seq), q2_key.entry(q2_seq)];
//! let ticket = store.submit(StoreOp::Enqueue { id, message: record, entries });
//! // without confirms: drop the ticket (never waits for the disk);
//! // with confirms: send basic.ack when the ticket finishes, basic.nack if it fails:
//! ticket.on_finished(move |result| confirm(delivery_tag, result.is_ok()));
//!
//! // Deliveries write nothing. At a clean shutdown, the entries of messages that were
//! // delivered and came back (requeued, or unacked when their channel closed):
//! let _ = store.submit(StoreOp::MarkAllDelivered(vec![q1_key.entry(seq)]));
//! // Ack, reject/nack without requeue, expiry, dead-lettering away, overflow drop:
//! let _ = store.submit(StoreOp::Remove(q1_key.entry(seq)));
//! // Requeue: nothing to write; the entry keeps its position and delivered flag.
//!
//! // Broker shutdown: everything submitted is written; the file is marked clean.
//! store.close()?;
//! ```

// Without the `persistence` feature only the null store is used; the records, tickets and
// recovery types stay compiled so that the broker's code is the same in both builds.
#![cfg_attr(not(feature = "persistence"), allow(dead_code))]

mod durable;
mod error;
mod group;
mod op;
mod records;
mod recovery;

#[cfg(feature = "persistence")]
mod codec;
#[cfg(feature = "persistence")]
mod commit;
#[cfg(feature = "persistence")]
mod migrate;
#[cfg(feature = "persistence")]
mod open;
#[cfg(feature = "persistence")]
mod redb_store;
#[cfg(feature = "persistence")]
mod salvage;
#[cfg(feature = "persistence")]
mod tables;
#[cfg(feature = "persistence")]
mod witness;
#[cfg(feature = "persistence")]
mod writer;

use std::fmt::Debug;

#[cfg(test)]
pub(crate) use durable::Tracker;
pub(crate) use durable::{Durable, DurableSet};
pub use error::StoreError;
#[cfg_attr(
    not(feature = "definitions"),
    allow(unused_imports, reason = "definitions imports group their writes")
)]
pub(crate) use group::WriteGroup;
pub(crate) use op::StoreOp;
#[cfg(feature = "persistence")]
pub(crate) use open::StoreOptions;
pub(crate) use records::{AuthRecord, PermissionRecord, UserRecord, AUTH_PERMISSION, AUTH_USER};
pub(crate) use records::{
    BindingRecord, EntryKey, ExchangeRecord, MessageId, MessageRecord, PolicyRecord, QueueKey,
    QueueRecord, VhostRecord,
};
#[cfg(feature = "persistence")]
pub(crate) use recovery::RecoveredQueue;
pub(crate) use recovery::RecoveredState;
#[cfg(feature = "persistence")]
pub(crate) use recovery::{MessageSource, RecoveredMessage};
#[cfg(feature = "persistence")]
pub(crate) use redb_store::{RedbStore, DEFAULT_CACHE_BYTES};
#[cfg(feature = "persistence")]
pub use salvage::{salvage, SalvageCounts, SalvageReport, SalvagedQueue};

/// Where a broker keeps its durable state.
///
/// Writes are submitted as [`StoreOp`]s and applied in submission order. Submitting never
/// waits for the disk; the returned [`Durable`] ticket says when the write is on disk, for the
/// callers that must know (publisher confirms, declare-ok of a durable entity).
///
/// # Durability
///
/// A write whose ticket finished with `Ok` survives a crash. A write whose ticket has not
/// finished may or may not. Writes are applied in order, so when a ticket finishes, every
/// write submitted before it has finished too.
pub(crate) trait Store: Send + Sync + Debug {
    /// Queues a write and returns its ticket.
    fn submit(&self, op: StoreOp) -> Durable;

    /// Queues a write no one waits for (a removal), in order with the others, without
    /// making a ticket. An op that cannot be queued or encoded is dropped: the next open
    /// finds the entry still there and serves the message again, as after a crash.
    fn submit_untracked(&self, op: StoreOp) {
        drop(self.submit(op));
    }

    /// Returns a fresh id for a message about to be enqueued.
    fn next_message_id(&self) -> MessageId;

    /// Returns `true` if writes reach a disk; `false` for [`NullStore`], so the broker can
    /// skip building records.
    fn is_persistent(&self) -> bool;

    /// Reads the stored entities, for the broker to rebuild itself at open; the returned
    /// state's [`source`](RecoveredState::source) then streams each queue's messages from
    /// the same snapshot, so recovery never holds every message at once.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] if a record cannot be read or the records contradict each
    /// other; storage errors as they come.
    fn load(&self) -> Result<RecoveredState, StoreError>;

    /// [`load`](Self::load), with every queue's messages collected into
    /// [`RecoveredQueue::messages`] and the final checks made (for tests and salvage).
    ///
    /// # Errors
    ///
    /// As for `load` and [`MessageSource`].
    fn load_all(&self) -> Result<RecoveredState, StoreError> {
        let mut state = self.load()?;
        if let Some(mut source) = state.source.take() {
            for queue in &mut state.queues {
                let mut messages = Vec::new();
                source.stream(&queue.record, &mut |m| messages.push(m))?;
                queue.messages = messages;
            }
            source.finish()?;
        }
        Ok(state)
    }

    /// Reads stored messages by id, for a queue that kept them on disk only; `None` for an
    /// id that is not stored.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] for a damaged message; storage errors as they come.
    fn read_messages(&self, ids: &[MessageId]) -> Result<Vec<Option<MessageRecord>>, StoreError>;

    /// Returns a ticket that finishes once every write submitted so far has.
    fn barrier(&self) -> Durable;

    /// Writes everything already submitted, marks a clean shutdown and releases the file;
    /// later writes and loads fail with [`StoreError::Closed`]. Closing twice is fine.
    ///
    /// # Errors
    ///
    /// The storage error that stopped the final write.
    fn close(&self) -> Result<(), StoreError>;

    /// Releases the file as a crash would leave it (for
    /// [`Broker::crash_and_reopen`](crate::Broker::crash_and_reopen)): everything submitted
    /// is written, but the session is not marked cleanly shut down, so the next open treats
    /// every recovered message as possibly delivered. The store accepts no more writes.
    fn crash(&self) -> Result<(), StoreError> {
        self.close()
    }

    /// Hands the store the function it calls with the entries of the messages that a
    /// failed commit did not store (its `Enqueue`s), on the writer thread, before the
    /// tickets of that commit finish: the broker withdraws those messages from their queues,
    /// so that a message nacked to its publisher is not delivered as if accepted. A store
    /// whose writes cannot fail ignores it.
    fn on_lost(&self, listener: LostListener) {
        drop(listener);
    }

    /// While `fail` is set, makes every commit fail as a write error of the disk would (a
    /// fault to inject in tests, [`Broker::fail_store_writes`](crate::Broker::fail_store_writes));
    /// returns `false` if this store has no disk to fail.
    fn fail_writes(&self, fail: bool) -> bool {
        let _ = fail;
        false
    }

    /// Opens a write group for this thread (see [`WriteGroup`]); `false` if the store has
    /// nothing to group (it writes nothing) or is closed.
    #[cfg_attr(
        not(feature = "definitions"),
        allow(dead_code, reason = "definitions imports group their writes")
    )]
    fn begin_group(&self) -> bool {
        false
    }

    /// Ends this thread's write group; returns the ticket of its transaction.
    #[cfg_attr(
        not(feature = "definitions"),
        allow(dead_code, reason = "definitions imports group their writes")
    )]
    fn end_group(&self) -> Durable {
        Durable::done()
    }
}

/// What [`Store::on_lost`] is given: called with the entries a failed commit did not store.
pub(crate) type LostListener = Box<dyn Fn(&[EntryKey]) + Send + Sync>;

/// The store of an in-memory broker: keeps nothing, and every write is "durable" at once.
#[derive(Debug, Default)]
pub(crate) struct NullStore {
    /// Source of message ids (unique ids keep the broker's code the same for both stores).
    next_message_id: std::sync::atomic::AtomicU64,
}

impl Store for NullStore {
    fn submit(&self, _op: StoreOp) -> Durable {
        Durable::done()
    }

    fn next_message_id(&self) -> MessageId {
        MessageId(
            self.next_message_id
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        )
    }

    fn is_persistent(&self) -> bool {
        false
    }

    fn load(&self) -> Result<RecoveredState, StoreError> {
        Ok(RecoveredState {
            clean_shutdown: true,
            ..RecoveredState::default()
        })
    }

    fn read_messages(&self, ids: &[MessageId]) -> Result<Vec<Option<MessageRecord>>, StoreError> {
        Ok(vec![None; ids.len()])
    }

    fn barrier(&self) -> Durable {
        Durable::done()
    }

    fn close(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn null_store_is_durable_at_once_and_empty() {
        let store: Arc<dyn Store> = Arc::new(NullStore::default());
        assert!(!store.is_persistent());
        let op = StoreOp::DeleteVhost { vhost: "/".into() };
        assert!(store.submit(op).try_result().is_some_and(|r| r.is_ok()));
        assert_ne!(store.next_message_id(), store.next_message_id());
        let state = store.load_all().unwrap();
        assert!(state.clean_shutdown && state.queues.is_empty());
        store.close().unwrap();
    }
}
