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
//! while its lock is held. Once it is released their store entries are removed and they
//! are counted; if the queue has a dead-letter exchange they leave in the operation's
//! [`Fallout`], which the caller hands to the vhost for routing. The queue never calls up
//! into its vhost, and a dead-letter exchange routing back to the same queue cannot
//! deadlock.

use std::sync::atomic::Ordering;

use super::{Credit, Queue, QueueState};
use crate::envelope::QueuedMessage;
use crate::quiet::Transit;
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
    /// Returned to a quorum queue more often than its `x-delivery-limit`.
    DeliveryLimit,
}

impl Reason {
    /// Returns RabbitMQ's word for the reason.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::Rejected => "rejected",
            Reason::Expired => "expired",
            Reason::MaxLen => "maxlen",
            Reason::DeliveryLimit => "delivery_limit",
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

/// What a queue operation leaves for its vhost to do once the queue lock is released:
/// dead letters to route through the queue's dead-letter exchange, and timers to start.
#[derive(Debug, Default)]
#[must_use = "dead letters are lost and timers never start unless the vhost takes the fallout"]
pub(crate) struct Fallout {
    /// Messages to dead-letter (only when the queue has a dead-letter exchange).
    pub(crate) dead: Vec<DeadLetter>,
    /// A message that expires entered a queue without timers: the vhost must run them.
    pub(crate) start_timers: bool,
    /// The queue's head is on disk and consumers wait: the vhost must have it read back
    /// ([`Queue::page_in`]) off this thread.
    pub(crate) page_in: bool,
    /// Held while dead letters are on their way out of the queue, from before the queue
    /// lock is released until they are routed, so that
    /// [`Broker::wait_idle`](crate::Broker::wait_idle) sees them in neither queue as busy.
    pub(crate) transit: Option<Transit>,
}

impl Fallout {
    /// Returns `true` if there is nothing to do.
    pub(crate) fn is_empty(&self) -> bool {
        self.dead.is_empty() && !self.start_timers && !self.page_in
    }

    /// Adds the fallout of another operation of the same queue.
    pub(crate) fn merge(&mut self, other: Fallout) {
        self.dead.extend(other.dead);
        self.start_timers |= other.start_timers;
        self.page_in |= other.page_in;
        if self.transit.is_none() {
            self.transit = other.transit;
        }
    }
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

    /// Releases the state lock, then buries what the outbox holds. Tells
    /// [`Broker::wait_idle`](crate::Broker::wait_idle), since an operation that ends here
    /// may have ended the queue's busy state.
    pub(super) fn finish(&self, mut st: MutexGuard<'_, QueueState>) -> Fallout {
        let page_in = self.page_in_fallout(&st);
        if st.dead.is_empty() {
            drop(st);
            self.quiet.notify();
            return page_in;
        }
        let dead = std::mem::take(&mut st.dead);
        let dead_letter = Self::has_dead_letter_exchange(&st);
        let transit = self.quiet.transit();
        drop(st);
        let mut fallout = self.bury(dead, dead_letter, transit);
        fallout.merge(page_in);
        fallout
    }

    /// Removes dead messages from the store and counts them; returns them for the vhost to
    /// dead-letter if the queue has a dead-letter exchange (they are dropped otherwise).
    fn bury(&self, dead: Vec<DeadLetter>, dead_letter: bool, transit: Transit) -> Fallout {
        self.forget(dead.iter().map(|d| &d.msg));
        for letter in &dead {
            let counter = match letter.reason {
                Reason::Expired => &self.losses.expired,
                Reason::MaxLen => &self.losses.overflowed,
                Reason::Rejected | Reason::DeliveryLimit => &self.losses.rejected,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        if !dead_letter {
            return Fallout::default();
        }
        Fallout {
            dead,
            transit: Some(transit),
            ..Fallout::default()
        }
    }

    /// Returns the queue's dead-letter exchange and routing key, if it has one (from its
    /// arguments or its policy, as they are now).
    pub(crate) fn dead_letter_target(&self) -> Option<(String, Option<String>)> {
        let st = self.state.lock();
        let config = st.config.as_deref()?;
        let exchange = config.dead_letter_exchange.clone()?;
        Some((exchange, config.dead_letter_routing_key.clone()))
    }

    /// Returns `true` if the queue has a dead-letter exchange now.
    fn has_dead_letter_exchange(st: &QueueState) -> bool {
        st.config
            .as_deref()
            .is_some_and(|c| c.dead_letter_exchange.is_some())
    }

    /// Settles a delivery rejected without requeue and dead-letters it (reason `rejected`).
    pub(crate) fn reject(&self, credit: Option<Credit>, msg: QueuedMessage) -> Fallout {
        let transit = self.quiet.transit();
        self.held_dropped();
        let mut fallout = self.release(credit, 1);
        let dead_letter = Self::has_dead_letter_exchange(&self.state.lock());
        fallout.merge(self.bury(
            vec![DeadLetter {
                msg,
                reason: Reason::Rejected,
            }],
            dead_letter,
            transit,
        ));
        fallout
    }

    /// Records a use of the queue for `x-expires` (declare, `basic_get`, consumers).
    pub(crate) fn touch(&self) {
        if self.expires.load(Ordering::Relaxed) != 0 {
            self.last_used
                .store(self.clock.now_millis(), Ordering::Relaxed);
        }
    }

    /// Runs the queue's timers: expires messages at the head, and says `true` if the queue
    /// itself has been unused for its `x-expires` and should be deleted.
    pub(crate) fn run_timers(&self) -> (bool, Fallout) {
        let mut st = self.state.lock();
        if st.deleted {
            return (false, Fallout::default());
        }
        self.expire_heads(&mut st);
        let idle = st.consumers.is_empty();
        let fallout = self.finish(st);
        let expires = self.expires.load(Ordering::Relaxed);
        if expires == 0 {
            return (false, fallout);
        }
        let last_used = self.last_used.load(Ordering::Relaxed);
        let expired = idle && self.clock.now_millis() >= last_used.saturating_add(expires);
        (expired, fallout)
    }

    /// Returns `true` if the queue has timers to run (TTL, `x-expires`).
    pub(crate) fn is_timed(&self) -> bool {
        self.may_expire.load(Ordering::Relaxed) || self.expires.load(Ordering::Relaxed) != 0
    }
}
