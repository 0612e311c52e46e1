//! The consumers of one queue: their inboxes, prefetch credit and round-robin order.
//!
//! Two queue and consumer arguments change who gets the next message:
//! - `x-single-active-consumer` (queue): only the earliest subscribed consumer still present
//!   receives; when it goes, the next in subscription order takes over.
//! - `x-priority` (consumer): a message goes to a consumer of the highest priority that has
//!   prefetch credit, round-robin among equals; lower priorities get messages only while
//!   every higher one is out of credit.

use std::sync::Arc;

use crate::envelope::QueuedMessage;
use crate::ids::ConsumerKey;
use crate::inbox::Inbox;

/// Whose prefetch credit a delivery holds: the consumer's key, and whether that consumer
/// has a prefetch limit (only then does settling need the queue lock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Credit {
    /// The consumer.
    pub(crate) consumer: ConsumerKey,
    /// The consumer has a prefetch limit.
    pub(crate) limited: bool,
}

/// One consumer as its queue sees it.
#[derive(Debug)]
pub(crate) struct ConsumerSlot {
    /// Broker-wide unique consumer key.
    pub(crate) key: ConsumerKey,
    /// The consumer's inbox.
    pub(crate) inbox: Arc<Inbox<QueuedMessage>>,
    /// Maximum messages delivered and not yet settled; 0 is unlimited.
    pub(crate) prefetch: u32,
    /// Messages delivered and not yet settled (tracked only when `prefetch > 0`).
    pub(crate) in_flight: u32,
    /// Asked to be the queue's only consumer.
    pub(crate) exclusive: bool,
    /// Consumer priority (`x-priority`).
    pub(crate) priority: i32,
}

impl ConsumerSlot {
    fn has_credit(&self) -> bool {
        self.prefetch == 0 || self.in_flight < self.prefetch
    }

    /// Closes the inbox and takes back every message waiting in it.
    pub(crate) fn close(&self) -> Vec<QueuedMessage> {
        self.inbox.close_and_drain()
    }
}

/// The consumers of a queue in round-robin order.
#[derive(Debug, Default)]
pub(crate) struct ConsumerSet {
    /// Consumers in the order they subscribed.
    slots: Vec<ConsumerSlot>,
    /// Index of the consumer to try first for the next message.
    cursor: usize,
    /// The queue has `x-single-active-consumer`: only the first slot receives.
    pub(crate) single_active: bool,
    /// Some consumer has a non-zero priority.
    prioritized: bool,
    /// Messages handed to consumers so far (counted here, under the queue lock).
    pub(crate) delivered: u64,
    /// Of those, messages that were delivered before.
    pub(crate) redelivered: u64,
}

impl ConsumerSet {
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Returns `true` if a consumer holds the queue exclusively.
    pub(crate) fn has_exclusive(&self) -> bool {
        self.slots.iter().any(|s| s.exclusive)
    }

    pub(crate) fn add(&mut self, slot: ConsumerSlot) {
        self.prioritized |= slot.priority != 0;
        self.slots.push(slot);
    }

    pub(crate) fn remove(&mut self, key: ConsumerKey) -> Option<ConsumerSlot> {
        let at = self.slots.iter().position(|s| s.key == key)?;
        let slot = self.slots.remove(at);
        if at < self.cursor {
            self.cursor -= 1;
        }
        if self.cursor >= self.slots.len() {
            self.cursor = 0;
        }
        Some(slot)
    }

    pub(crate) fn take_all(&mut self) -> Vec<ConsumerSlot> {
        self.cursor = 0;
        std::mem::take(&mut self.slots)
    }

    /// Returns credit to a consumer whose deliveries were settled.
    pub(crate) fn credit(&mut self, key: ConsumerKey, count: u32) {
        if let Some(slot) = self.slots.iter_mut().find(|s| s.key == key) {
            if slot.prefetch > 0 {
                slot.in_flight = slot.in_flight.saturating_sub(count);
            }
        }
    }

    /// Hands `msg` to the next consumer in round-robin order that has credit, or gives it
    /// back if none has.
    #[inline]
    #[allow(
        clippy::result_large_err,
        reason = "the message comes back by value when no consumer takes it; boxing it would cost an allocation per publish"
    )]
    pub(crate) fn deliver(&mut self, msg: QueuedMessage) -> Result<(), QueuedMessage> {
        let redelivered = msg.redelivered;
        let result = if self.single_active || self.prioritized {
            self.deliver_selected(msg)
        } else {
            self.deliver_round_robin(msg)
        };
        if result.is_ok() {
            self.delivered += 1;
            self.redelivered += u64::from(redelivered);
        }
        result
    }

    /// Delivers to the next consumer with credit, in turn.
    #[allow(
        clippy::result_large_err,
        reason = "the message comes back by value when no consumer takes it; boxing it would cost an allocation per publish"
    )]
    fn deliver_round_robin(&mut self, msg: QueuedMessage) -> Result<(), QueuedMessage> {
        let n = self.slots.len();
        for step in 0..n {
            let i = (self.cursor + step) % n;
            let slot = &mut self.slots[i];
            if slot.has_credit() {
                if slot.prefetch > 0 {
                    slot.in_flight += 1;
                }
                self.cursor = (i + 1) % n;
                // A slot's inbox closes only when the slot is removed.
                return slot.inbox.push(msg);
            }
        }
        Err(msg)
    }

    /// Returns the number of messages waiting unreceived in the consumers' inboxes.
    pub(crate) fn waiting(&self) -> usize {
        self.slots.iter().map(|s| s.inbox.len()).sum()
    }

    /// Returns `true` if some consumer could take a message now.
    pub(crate) fn any_credit(&self) -> bool {
        if self.single_active {
            return self.slots.first().is_some_and(ConsumerSlot::has_credit);
        }
        self.slots.iter().any(ConsumerSlot::has_credit)
    }

    /// Delivers under single-active-consumer or consumer priorities.
    #[allow(
        clippy::result_large_err,
        reason = "the message comes back by value when no consumer takes it; boxing it would cost an allocation per publish"
    )]
    fn deliver_selected(&mut self, msg: QueuedMessage) -> Result<(), QueuedMessage> {
        let n = self.slots.len();
        let chosen = if self.single_active {
            self.slots
                .first()
                .is_some_and(ConsumerSlot::has_credit)
                .then_some(0)
        } else {
            let mut best: Option<usize> = None;
            for step in 0..n {
                let i = (self.cursor + step) % n;
                let slot = &self.slots[i];
                if slot.has_credit() && best.is_none_or(|b| slot.priority > self.slots[b].priority)
                {
                    best = Some(i);
                }
            }
            best
        };
        let Some(i) = chosen else {
            return Err(msg);
        };
        let slot = &mut self.slots[i];
        if slot.prefetch > 0 {
            slot.in_flight += 1;
        }
        self.cursor = (i + 1) % n;
        slot.inbox.push(msg)
    }
}
