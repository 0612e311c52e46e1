//! Backlogs larger than memory: a plain durable queue that keeps its tail on disk only.
//!
//! A plain durable queue (classic, no arguments that change its behaviour) of a persistent
//! broker can page ([`Queue::with_paging`]). While the broker's [`MemoryBudget`] of
//! resident persistent bodies is used up, each persistent message published to it is kept
//! on disk only: the ready list holds its position, its stored id and its redelivered flag
//! (24 bytes), not its body. After a restart such a queue keeps its first [`PAGE`] messages
//! in memory and the rest on disk only. Once a queue has messages on disk, every later one
//! queues behind them (in memory if there is room), so the order never changes.
//!
//! As consumers drain the queue and fewer than half a page is left in memory, the queue
//! asks its vhost (through [`Fallout::page_in`]) to run [`Queue::page_in`] on the broker's
//! background thread: it notes which messages to read under the queue lock, waits (with no
//! lock held) until every write submitted so far is durable — a message published a moment
//! ago may still be on its way to disk — reads them from the store, and puts them in place
//! under the lock again. `basic_get` on a queue whose head is on disk reads it back on the
//! caller's thread.

use std::num::NonZeroU64;
use std::sync::Arc;

use super::{Enqueued, Fallout, Queue, QueueState};
use crate::envelope::{Envelope, QueuedMessage};
use crate::message::SharedProperties;
use crate::settings::MemoryBudget;
use crate::store::{MessageId, StoreOp};

#[cfg(doc)]
use super::PAGE;

impl Queue {
    /// Lets a plain durable queue of a persistent broker keep messages on disk only,
    /// accounting its resident persistent bodies in `budget`.
    pub(crate) fn with_paging(mut self, budget: &Arc<MemoryBudget>) -> Self {
        if self.persistence.is_some() && self.declared.is_plain() {
            self.state.get_mut().ready.enable_paging(Arc::clone(budget));
        }
        self
    }

    #[cfg(feature = "persistence")]
    /// Returns `true` if the queue may keep messages on disk only.
    pub(crate) fn is_pageable(&self) -> bool {
        self.state.lock().ready.is_pageable()
    }

    /// The fallout that asks for a page-in: the head is on disk (and none is under way) and
    /// a consumer could take messages.
    pub(super) fn page_in_fallout(&self, st: &QueueState) -> Fallout {
        Fallout {
            page_in: st.ready.wants_page_in() && st.consumers.any_credit(),
            ..Fallout::default()
        }
    }

    /// Enqueues a persistent message that the store holds as `id` (its `seq` from
    /// [`next_seq`](Self::next_seq)). A pageable queue keeps it on disk only while the
    /// broker is over its memory budget, unless a consumer takes it at once.
    pub(crate) fn publish_stored(&self, msg: QueuedMessage, id: MessageId) -> (Enqueued, Fallout) {
        let mut st = self.state.lock();
        if st.deleted {
            return (Enqueued::Gone, Fallout::default());
        }
        if st.config.is_some() || msg.envelope.message.properties().expiration.is_some() {
            // A policy gave the queue limits or a TTL: the featured path, in memory.
            return self.publish_featured(st, msg);
        }
        let msg = if st.ready.is_empty() {
            match st.consumers.deliver(msg) {
                Ok(()) => return (Enqueued::Accepted, Fallout::default()),
                Err(msg) => msg,
            }
        } else {
            msg
        };
        if st.ready.should_page() {
            st.ready.push_stored(msg.seq, id, false);
        } else {
            st.ready.push_back(msg);
        }
        (Enqueued::Accepted, self.page_in_fallout(&st))
    }

    #[cfg(feature = "persistence")]
    /// Puts back one recovered message at open, in order. Expired ones are left for the
    /// first sweep or access: by then the bindings of their dead-letter exchange are back.
    pub(crate) fn recover(&self, msg: QueuedMessage) {
        if msg.expires_at.is_some() {
            self.may_expire
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        self.state.lock().ready.push_back(msg);
    }

    #[cfg(feature = "persistence")]
    /// Puts back one recovered message at open, on disk only.
    pub(crate) fn recover_stored(&self, seq: u64, id: MessageId, redelivered: bool) {
        self.state.lock().ready.push_stored(seq, id, redelivered);
    }

    #[cfg(feature = "persistence")]
    /// Ends the recovery of the queue: new messages continue at `next_seq`.
    pub(crate) fn recovered(&self, next_seq: u64) {
        self.state.lock().first_seq = next_seq;
        self.next_seq
            .store(next_seq, std::sync::atomic::Ordering::Relaxed);
    }

    /// Reads the next page of messages on disk back into memory and hands them to the
    /// consumers; see the module docs. Blocks on the store with no lock held.
    pub(crate) fn page_in(&self) -> Fallout {
        let mut fallout = Fallout::default();
        self.page_in_now(&mut fallout);
        fallout
    }

    /// [`page_in`](Self::page_in), adding its fallout to `fallout`; returns `false` if there
    /// was nothing to read (or another page-in is under way).
    pub(super) fn page_in_now(&self, fallout: &mut Fallout) -> bool {
        let Some(p) = &self.persistence else {
            return false;
        };
        let wanted = {
            let mut st = self.state.lock();
            if st.deleted {
                return false;
            }
            st.ready.start_page_in()
        };
        if wanted.is_empty() {
            return false;
        }
        // A message published a moment ago may still be on its way to disk.
        let durable = p.store.barrier().wait();
        let ids: Vec<MessageId> = wanted.iter().map(|w| w.1).collect();
        let read = durable.and_then(|()| p.store.read_messages(&ids));
        let records = match read {
            Ok(records) => records,
            Err(e) => {
                tracing::error!(
                    queue = %self.name, vhost = %self.vhost, error = %e,
                    "reading messages back from the store failed; they stay on disk"
                );
                self.state.lock().ready.finish_page_in(Vec::new());
                return false;
            }
        };
        let mut properties = SharedProperties::default();
        let loaded = wanted
            .iter()
            .zip(records)
            .map(|(&(seq, _, redelivered), record)| {
                let msg = record.map(|r| {
                    // Read back a page at a time, within the memory budget: not charged to
                    // the memory alarm.
                    let envelope = Envelope::from_record(&r, &mut properties, None);
                    let mut msg = QueuedMessage::new(seq, envelope, true);
                    msg.redelivered = redelivered;
                    msg.expires_at = r.expires_at_ms.and_then(NonZeroU64::new);
                    msg
                });
                (seq, msg)
            })
            .collect();
        let mut st = self.state.lock();
        let lost = st.ready.finish_page_in(loaded);
        if !lost.is_empty() {
            tracing::error!(
                queue = %self.name, vhost = %self.vhost, count = lost.len(),
                "messages kept on disk only were missing from the store and are dropped"
            );
            self.forget_positions(&lost);
        }
        self.dispatch(&mut st);
        fallout.merge(self.finish(st));
        true
    }

    /// Removes the store entries at these positions (messages that were on disk only).
    pub(crate) fn forget_positions(&self, seqs: &[u64]) {
        let Some(p) = &self.persistence else { return };
        if !seqs.is_empty() {
            let entries = seqs.iter().map(|&seq| p.key.entry(seq)).collect();
            p.store.submit_untracked(StoreOp::RemoveAll(entries));
        }
    }
}
