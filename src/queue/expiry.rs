//! Time and death in a queue: message TTL enforced at the head, queue expiry
//! (`x-expires`), and the hand-off of dead messages to the vhost for dead-lettering.
//!
//! # Message TTL
//!
//! A message's expiry time (from `x-message-ttl` and its `expiration`, whichever is
//! sooner) is fixed when it enters the queue, as an absolute time in milliseconds since the
//! epoch. Expired messages are removed only at the head, as RabbitMQ does: when the head is
//! looked at (publish, get, dispatch) and by the vhost's timer sweep. No timer is kept per
//! message. A message whose per-message expiration passed behind a longer-lived head stays
//! (and counts) until it reaches the head.
//!
//! # Dead letters
//!
//! Dropped messages (expired, over a limit, rejected) are collected in the queue state
//! while its lock is held and dead-lettered after it is released, so that a dead-letter
//! exchange routing back to the same queue cannot deadlock.

use std::sync::atomic::Ordering;

use super::{Queue, QueueState};
use crate::envelope::QueuedMessage;
use crate::ledger::Credit;
use crate::sync::MutexGuard;

/// Why a message died (the `reason` of its `x-death` entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    /// Rejected or nacked without requeue.
    Rejected,
    /// Its TTL passed.
    Expired,
    /// Dropped or refused by a length limit.
    MaxLen,
}

impl Reason {
    /// Returns RabbitMQ's word for the reason.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::Rejected => "rejected",
            Reason::Expired => "expired",
            Reason::MaxLen => "maxlen",
        }
    }
}

/// A message leaving its queue to be dead-lettered (or dropped, without a DLX).
#[derive(Debug)]
pub(crate) struct DeadLetter {
    /// The message as it was queued.
    pub(crate) msg: QueuedMessage,
    /// Why it died.
    pub(crate) reason: Reason,
}

impl Queue {
    /// Moves expired messages at the head into the dead-letter outbox.
    pub(super) fn expire_heads(&self, st: &mut QueueState) {
        if !self.may_expire.load(Ordering::Relaxed) {
            return;
        }
        let now = self.clock.now_millis();
        while let Some(msg) = st.ready.pop_expired(now) {
            st.dead.push(DeadLetter {
                msg,
                reason: Reason::Expired,
            });
        }
    }

    /// Releases the state lock, then dead-letters what the outbox holds.
    pub(super) fn finish(&self, mut st: MutexGuard<'_, QueueState>) {
        if st.dead.is_empty() {
            return;
        }
        let dead = std::mem::take(&mut st.dead);
        drop(st);
        self.dead_letter(dead);
    }

    /// Publishes dead messages to the dead-letter exchange, or drops them without one.
    fn dead_letter(&self, dead: Vec<DeadLetter>) {
        self.forget(dead.iter().map(|d| &d.msg));
        for letter in &dead {
            let counter = match letter.reason {
                Reason::Expired => &self.losses.expired,
                Reason::MaxLen => &self.losses.overflowed,
                Reason::Rejected => &self.losses.rejected,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let Some(config) = self.config.as_deref() else {
            return;
        };
        let Some(exchange) = config.dead_letter_exchange.as_deref() else {
            return;
        };
        if let Some(vhost) = self.vhost_ref.upgrade() {
            let routing_key = config.dead_letter_routing_key.as_deref();
            vhost.dead_letter(&self.name, exchange, routing_key, dead);
        }
    }

    /// Settles a delivery rejected without requeue and dead-letters it (reason `rejected`).
    pub(crate) fn reject(&self, credit: Option<Credit>, msg: QueuedMessage) {
        self.release(credit, 1);
        self.dead_letter(vec![DeadLetter {
            msg,
            reason: Reason::Rejected,
        }]);
    }

    /// Records a use of the queue for `x-expires` (declare, `basic_get`, consumers).
    pub(crate) fn touch(&self) {
        if self.config.as_deref().is_some_and(|c| c.expires.is_some()) {
            self.last_used
                .store(self.clock.now_millis(), Ordering::Relaxed);
        }
    }

    /// Runs the queue's timers: expires messages at the head, and returns `true` if the
    /// queue itself has been unused for its `x-expires` and should be deleted.
    pub(crate) fn run_timers(&self) -> bool {
        let mut st = self.state.lock();
        if st.deleted {
            return false;
        }
        self.expire_heads(&mut st);
        let idle = st.consumers.is_empty();
        self.finish(st);
        let Some(expires) = self.config.as_deref().and_then(|c| c.expires) else {
            return false;
        };
        let last_used = self.last_used.load(Ordering::Relaxed);
        idle && self.clock.now_millis() >= last_used.saturating_add(expires)
    }

    /// Returns `true` if the queue has timers to run (TTL, `x-expires`).
    pub(crate) fn is_timed(&self) -> bool {
        self.may_expire.load(Ordering::Relaxed)
            || self.config.as_deref().is_some_and(|c| c.expires.is_some())
    }
}
