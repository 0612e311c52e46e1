//! Queues: ready messages, consumers and the accounting of unacknowledged deliveries.
//!
//! - `ready`: the ready messages in queue order ([`ReadyList`]).
//! - `consumers`: consumer inboxes, prefetch credit, round-robin ([`ConsumerSet`]).
//! - `config`: the queue arguments Warren acts on, validated at declare ([`QueueConfig`]).
//! - `priority`: the lanes of a priority queue.
//! - `limits`: the publish path of queues with arguments: TTL, length limits, overflow.
//! - `expiry`: message TTL at the head, queue expiry (`x-expires`), dead-letter hand-off.
//!
//! A message published to a queue is handed straight to a consumer with credit, or waits in
//! the ready list. A delivered message is *unacked* until it is settled (acked, or received
//! by a `no_ack` consumer) or requeued; the queue counts such messages but their bodies
//! live in the consumer inboxes and the channels' ledgers.

mod config;
mod consumers;
mod expiry;
mod limits;
mod priority;
mod ready;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use consumers::{ConsumerSet, ConsumerSlot};
use ready::ReadyList;

pub(crate) use config::{consumer_priority, parse_expiration, QueueConfig};
pub(crate) use expiry::{DeadLetter, Reason};

use crate::arguments::{self, Entity, COMPARED_QUEUE_ARGUMENTS};
use crate::connection::ConnectionId;
use crate::envelope::{Envelope, QueuedMessage};
use crate::ledger::Credit;
use crate::routing::DestinationId;
use crate::sync::{unbounded, Mutex, Receiver};
use crate::vhost::VHost;
use crate::{Clock, Error, FieldTable, QueueDeclareOptions, Result, SystemClock};

/// One queue of a vhost.
#[derive(Debug)]
pub(crate) struct Queue {
    /// The queue name.
    pub(crate) name: Arc<str>,
    /// The vhost it lives in (for error texts).
    pub(crate) vhost: Arc<str>,
    /// Its id as a binding destination.
    pub(crate) id: DestinationId,
    /// Declared durable.
    pub(crate) durable: bool,
    /// Deleted when its last consumer goes.
    pub(crate) auto_delete: bool,
    /// The connection that owns an exclusive queue.
    pub(crate) exclusive_owner: Option<ConnectionId>,
    /// Declare arguments.
    pub(crate) arguments: FieldTable,
    /// Messages and consumers. Lock order: a queue's state is taken after any channel lock.
    state: Mutex<QueueState>,
    /// Deliveries made and not yet settled or requeued.
    unacked: AtomicUsize,
    /// The arguments that change behaviour; `None` for a plain queue (the fast path).
    config: Option<Box<QueueConfig>>,
    /// The vhost, for dead-lettering and timers.
    vhost_ref: Weak<VHost>,
    /// The broker's clock.
    clock: Arc<dyn Clock>,
    /// Some message in the queue may carry an expiry time (checked at the head).
    may_expire: AtomicBool,
    /// Last use for `x-expires` (declare, `basic_get`, consumer change), in ms since the epoch.
    last_used: AtomicU64,
}

/// The mutable part of a queue.
#[derive(Debug, Default)]
struct QueueState {
    /// Messages waiting for a consumer.
    ready: ReadyList,
    /// Sequence number of the next published message.
    next_seq: u64,
    /// Subscribed consumers.
    consumers: ConsumerSet,
    /// Has had a consumer (auto-delete applies only after the first).
    had_consumer: bool,
    /// Deleted: accepts nothing more.
    deleted: bool,
    /// Messages to dead-letter (or drop) once the lock is released.
    dead: Vec<DeadLetter>,
}

/// How a consumer subscribes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subscription {
    /// Broker-wide unique key.
    pub(crate) key: u64,
    /// Prefetch limit, 0 for none.
    pub(crate) prefetch: u32,
    /// Exclusive consumer.
    pub(crate) exclusive: bool,
    /// Consumer priority (`x-priority`); 0 by default.
    pub(crate) priority: i32,
}

/// A consumer's removal, as the caller must finish it.
#[derive(Debug)]
pub(crate) struct Unsubscribed {
    /// The queue is `auto_delete` and has just lost its last consumer.
    pub(crate) now_unused: bool,
}

/// A snapshot of a queue's counters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueCounts {
    pub(crate) ready: usize,
    pub(crate) unacked: usize,
    pub(crate) consumers: usize,
}

impl Queue {
    pub(crate) fn new(
        name: Arc<str>,
        vhost: Arc<str>,
        id: DestinationId,
        options: QueueDeclareOptions,
        exclusive_owner: Option<ConnectionId>,
        arguments: FieldTable,
    ) -> Self {
        Queue {
            name,
            vhost,
            id,
            durable: options.durable,
            auto_delete: options.auto_delete,
            exclusive_owner,
            arguments,
            state: Mutex::new(QueueState::default()),
            unacked: AtomicUsize::new(0),
            config: None,
            vhost_ref: Weak::new(),
            clock: Arc::new(SystemClock),
            may_expire: AtomicBool::new(false),
            last_used: AtomicU64::new(0),
        }
    }

    /// Gives a new queue its arguments, its vhost and the broker's clock.
    pub(crate) fn with_features(
        mut self,
        config: QueueConfig,
        vhost: Weak<VHost>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        {
            let st = self.state.get_mut();
            if let Some(max) = config.max_priority {
                st.ready = ReadyList::with_max_priority(max);
            }
            if config.max_length_bytes.is_some() {
                st.ready.count_bytes();
            }
            st.consumers.single_active = config.single_active_consumer;
        }
        self.may_expire = AtomicBool::new(config.message_ttl.is_some());
        self.last_used = AtomicU64::new(clock.now_millis());
        self.config = (!config.is_plain()).then(|| Box::new(config));
        self.vhost_ref = vhost;
        self.clock = clock;
        self
    }

    /// Checks that a redeclare asks for the same queue: 405 if the `exclusive` flag
    /// differs, 406 for any other difference (as RabbitMQ answers).
    pub(crate) fn check_equivalent(
        &self,
        options: QueueDeclareOptions,
        arguments: &FieldTable,
    ) -> Result<()> {
        if self.exclusive_owner.is_some() != options.exclusive {
            return Err(self.locked_error());
        }
        let mismatch = |arg: &str, received: bool, current: bool| {
            Err(Error::precondition(format!(
                "inequivalent arg '{arg}' for queue '{}' in vhost '{}': \
                 received '{received}' but current is '{current}'",
                self.name, self.vhost
            )))
        };
        if self.durable != options.durable {
            return mismatch("durable", options.durable, self.durable);
        }
        if self.auto_delete != options.auto_delete {
            return mismatch("auto_delete", options.auto_delete, self.auto_delete);
        }
        let entity = Entity {
            kind: "queue",
            name: &self.name,
            vhost: &self.vhost,
        };
        arguments::check_equivalent(entity, COMPARED_QUEUE_ARGUMENTS, &self.arguments, arguments)
    }

    fn locked_error(&self) -> Error {
        Error::locked(format!(
            "cannot obtain exclusive access to locked queue '{}' in vhost '{}'. It could \
             be originally declared on another connection or the exclusive property value \
             does not match that of the original declaration.",
            self.name, self.vhost
        ))
    }

    /// Checks that `connection` may use this queue (405 for another's exclusive queue).
    pub(crate) fn check_access(&self, connection: ConnectionId) -> Result<()> {
        match self.exclusive_owner {
            Some(owner) if owner != connection => Err(self.locked_error()),
            _ => Ok(()),
        }
    }

    /// Enqueues a published message: `Accepted`, `Refused` by a length limit, or `Gone` if
    /// the queue was deleted meanwhile.
    pub(crate) fn publish(&self, envelope: Arc<Envelope>) -> Enqueued {
        if self.config.is_some() || envelope.message.properties().expiration.is_some() {
            return self.publish_featured(envelope);
        }
        let mut st = self.state.lock();
        if st.deleted {
            return Enqueued::Gone;
        }
        let msg = QueuedMessage {
            seq: st.next_seq,
            envelope,
            redelivered: false,
            expires_at: None,
        };
        st.next_seq += 1;
        if st.ready.is_empty() {
            match st.consumers.deliver(msg) {
                Ok(()) => {
                    self.unacked.fetch_add(1, Ordering::Relaxed);
                }
                Err(msg) => st.ready.push_back(msg),
            }
        } else {
            st.ready.push_back(msg);
        }
        Enqueued::Accepted
    }

    /// Subscribes a consumer and returns its inbox.
    pub(crate) fn subscribe(&self, sub: Subscription) -> Result<Receiver<QueuedMessage>> {
        let mut st = self.state.lock();
        if st.deleted {
            return Err(self.not_found());
        }
        if st.consumers.has_exclusive() || (sub.exclusive && !st.consumers.is_empty()) {
            return Err(Error::access_refused(format!(
                "queue '{}' in vhost '{}' in exclusive use",
                self.name, self.vhost
            )));
        }
        let (tx, rx) = unbounded();
        st.consumers.add(ConsumerSlot {
            key: sub.key,
            tx,
            rx: rx.clone(),
            prefetch: sub.prefetch,
            in_flight: 0,
            exclusive: sub.exclusive,
            priority: sub.priority,
        });
        st.had_consumer = true;
        self.touch();
        self.dispatch(&mut st);
        self.finish(st);
        Ok(rx)
    }

    /// Removes a consumer, putting back what waited unreceived in its inbox.
    pub(crate) fn unsubscribe(&self, key: u64) -> Unsubscribed {
        let mut st = self.state.lock();
        if let Some(slot) = st.consumers.remove(key) {
            let drained = slot.drain();
            self.unacked.fetch_sub(drained.len(), Ordering::Relaxed);
            for msg in drained {
                st.ready.requeue(msg);
            }
            self.touch();
            self.trim(&mut st);
            self.dispatch(&mut st);
        }
        let unsubscribed = Unsubscribed {
            now_unused: self.auto_delete
                && st.had_consumer
                && st.consumers.is_empty()
                && !st.deleted,
        };
        self.finish(st);
        unsubscribed
    }

    /// Takes the head message for `basic_get`, with the number of messages left ready.
    pub(crate) fn get(&self, no_ack: bool) -> Option<(QueuedMessage, usize)> {
        let mut st = self.state.lock();
        self.touch();
        self.expire_heads(&mut st);
        let Some(msg) = st.ready.pop_front() else {
            self.finish(st);
            return None;
        };
        if !no_ack {
            self.unacked.fetch_add(1, Ordering::Relaxed);
        }
        let left = st.ready.len();
        self.finish(st);
        Some((msg, left))
    }

    /// Settles `count` deliveries (acked, or received without ack) of `consumer`.
    ///
    /// Only a consumer with a prefetch limit needs the queue lock here, to return its credit.
    pub(crate) fn settle(&self, credit: Option<Credit>, count: usize) {
        self.unacked.fetch_sub(count, Ordering::Relaxed);
        if let Some(Credit {
            consumer,
            limited: true,
        }) = credit
        {
            let mut st = self.state.lock();
            st.consumers
                .credit(consumer, u32::try_from(count).unwrap_or(u32::MAX));
            self.dispatch(&mut st);
            self.finish(st);
        }
    }

    /// Puts delivered messages back in their places, marked redelivered.
    pub(crate) fn requeue(&self, credit: Option<Credit>, msgs: Vec<QueuedMessage>) {
        let mut st = self.state.lock();
        self.unacked.fetch_sub(msgs.len(), Ordering::Relaxed);
        if st.deleted {
            return;
        }
        if let Some(Credit {
            consumer,
            limited: true,
        }) = credit
        {
            st.consumers
                .credit(consumer, u32::try_from(msgs.len()).unwrap_or(u32::MAX));
        }
        for mut msg in msgs {
            msg.redelivered = true;
            st.ready.requeue(msg);
        }
        self.trim(&mut st);
        self.dispatch(&mut st);
        self.finish(st);
    }

    /// Counts `count` settled deliveries as unacknowledged again (before requeueing them).
    pub(crate) fn unsettle(&self, count: usize) {
        self.unacked.fetch_add(count, Ordering::Relaxed);
    }

    /// Puts back, unchanged, messages that were handed out but never reached the application.
    pub(crate) fn restore(&self, msgs: Vec<QueuedMessage>) {
        let mut st = self.state.lock();
        self.unacked.fetch_sub(msgs.len(), Ordering::Relaxed);
        if st.deleted {
            return;
        }
        for msg in msgs {
            st.ready.requeue(msg);
        }
        self.trim(&mut st);
        self.dispatch(&mut st);
        self.finish(st);
    }

    /// Removes every ready message; returns how many.
    pub(crate) fn purge(&self) -> usize {
        self.state.lock().ready.clear()
    }

    /// Marks the queue deleted, drops its messages and cancels its consumers. Returns the
    /// number of ready messages it held.
    pub(crate) fn delete(&self) -> usize {
        let mut st = self.state.lock();
        st.deleted = true;
        let count = st.ready.clear();
        for slot in st.consumers.take_all() {
            let drained = slot.drain();
            self.unacked.fetch_sub(drained.len(), Ordering::Relaxed);
        }
        count
    }

    /// Returns the ready, unacked and consumer counts.
    pub(crate) fn counts(&self) -> QueueCounts {
        let st = self.state.lock();
        QueueCounts {
            ready: st.ready.len(),
            unacked: self.unacked.load(Ordering::Relaxed),
            consumers: st.consumers.len(),
        }
    }

    /// The error for a queue that no longer exists.
    pub(crate) fn not_found(&self) -> Error {
        Error::QueueNotFound {
            vhost: self.vhost.to_string(),
            queue: self.name.to_string(),
        }
    }

    /// Hands ready messages to consumers while some have credit.
    fn dispatch(&self, st: &mut QueueState) {
        while !st.ready.is_empty() && st.consumers.any_credit() {
            self.expire_heads(st);
            let Some(msg) = st.ready.pop_front() else {
                break;
            };
            match st.consumers.deliver(msg) {
                Ok(()) => {
                    self.unacked.fetch_add(1, Ordering::Relaxed);
                }
                Err(msg) => {
                    st.ready.requeue(msg);
                    break;
                }
            }
        }
    }
}

/// What a queue did with a published message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Enqueued {
    /// Enqueued or handed to a consumer.
    Accepted,
    /// Refused by a length limit (`x-overflow = reject-publish`): the publisher gets a nack.
    Refused,
    /// The queue was deleted meanwhile.
    Gone,
}
