//! Queues: ready messages, consumers and the accounting of unacknowledged deliveries.
//!
//! - `ready`: the ready messages in queue order ([`ReadyList`]).
//! - `consumers`: consumer inboxes, prefetch credit, round-robin ([`ConsumerSet`]).
//! - `config`: the queue arguments Warren acts on, validated at declare ([`QueueConfig`]).
//! - `priority`: the lanes of a priority queue.
//! - `limits`: the publish path of queues with arguments: TTL, length limits, overflow.
//! - `expiry`: message TTL at the head, queue expiry (`x-expires`), dead-letter hand-off.
//! - `quorum`: what a quorum queue does differently: declare rules, delivery counts and
//!   limits, where returned messages go.
//!
//! A message published to a queue is handed straight to a consumer with credit, or waits in
//! the ready list. A delivered message is *unacked* while it waits in a consumer inbox or is
//! held by the application awaiting its ack; the bodies live in the inboxes and the
//! channels' ledgers.
//!
//! A durable queue of a persistent broker ([`QueuePersistence`]) removes the store entry of
//! every stored message that leaves it for good: acked, dropped, expired, dead-lettered,
//! purged. A plain one may keep its tail on disk only (`paging`).

mod config;
mod consumers;
mod expiry;
mod limits;
mod paging;
mod priority;
mod quorum;
mod ready;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_utils::CachePadded;

use consumers::{ConsumerSet, ConsumerSlot};
use ready::ReadyList;

pub(crate) use config::{consumer_priority, parse_expiration, QueueConfig};
pub(crate) use consumers::Credit;
pub(crate) use expiry::{DeadLetter, Fallout, Reason};
pub(crate) use quorum::{QueueType, Return};
#[cfg(feature = "persistence")]
pub(crate) use ready::PAGE;

/// How many times `basic_get` tries to read a head that is on disk before it answers empty.
const PAGE_IN_ATTEMPTS: usize = 1000;

use crate::arguments::{self, Entity, QUEUE_ARGUMENT_ORDER};
use crate::envelope::QueuedMessage;
use crate::ids::{ConnectionId, ConsumerKey};
use crate::inbox::Inbox;
use crate::quiet::Quiet;
use crate::routing::DestinationId;
use crate::settings::Settings;
use crate::store::{EntryKey, QueueKey, Store, StoreOp};
use crate::sync::Mutex;
use crate::{Clock, Error, FieldTable, QueueDeclareOptions, Result, SystemClock};

/// The value of `Queue::message_ttl` for a queue without a message TTL.
const NO_TTL: u64 = u64::MAX;

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
    /// Where the queue's persistent messages are stored: set for durable queues of a
    /// persistent broker.
    pub(crate) persistence: Option<QueuePersistence>,
    /// The position of the next published message.
    next_seq: CachePadded<AtomicU64>,
    /// Messages and consumers. Lock order: a queue's state is taken after any channel lock.
    state: CachePadded<Mutex<QueueState>>,
    /// Messages the application received (or fetched) with manual ack and has not yet
    /// settled or requeued. Messages still waiting in consumer inboxes are counted from the
    /// inboxes, so that publishing touches no counter here.
    held: CachePadded<Held>,
    /// Messages that left other than by delivery and ack.
    pub(crate) losses: LossCounters,
    /// The configuration its declare arguments give, before any policy.
    declared: Box<QueueConfig>,
    /// Its type (no policy changes it).
    queue_type: QueueType,
    /// The effective `expires` (argument or policy), in ms; 0 for none. Kept apart from the
    /// state so that [`touch`](Self::touch) and the timer sweep need no lock.
    expires: AtomicU64,
    /// The effective message TTL in ms, [`NO_TTL`] for none: what the store record of a
    /// persistent message is given, read without the queue lock.
    message_ttl: AtomicU64,
    /// The broker's clock.
    clock: Arc<dyn Clock>,
    /// Some message in the queue may carry an expiry time (checked at the head).
    may_expire: AtomicBool,
    /// Last use for `x-expires` (declare, `basic_get`, consumer change), in ms since the epoch.
    last_used: AtomicU64,
    /// Told when the queue stops holding messages back, and counts dead letters on their
    /// way out ([`Broker::wait_idle`](crate::Broker::wait_idle)).
    quiet: Arc<Quiet>,
}

/// The mutable part of a queue.
#[derive(Debug, Default)]
struct QueueState {
    /// Messages waiting for a consumer.
    ready: ReadyList,
    /// Subscribed consumers.
    consumers: ConsumerSet,
    /// Has had a consumer (auto-delete applies only after the first).
    had_consumer: bool,
    /// Deleted: accepts nothing more.
    deleted: bool,
    /// Messages to dead-letter (or drop) once the lock is released.
    dead: Vec<DeadLetter>,
    /// The position of the first message published since the queue was created or
    /// recovered (positions count publishes).
    first_seq: u64,
    /// Messages fetched with `basic_get`.
    got: u64,
    /// The arguments and policy keys that change behaviour; `None` for a plain queue (the
    /// fast path). Swapped under the lock when a policy changes.
    config: Option<Box<QueueConfig>>,
    /// The name of the policy that applies, if one does.
    policy: Option<Arc<str>>,
}

/// A durable queue's link to the store.
#[derive(Debug, Clone)]
pub(crate) struct QueuePersistence {
    /// The store.
    pub(crate) store: Arc<dyn Store>,
    /// The queue's key in the store.
    pub(crate) key: QueueKey,
}

/// How a consumer subscribes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subscription {
    /// Broker-wide unique key.
    pub(crate) key: ConsumerKey,
    /// Prefetch limit, 0 for none.
    pub(crate) prefetch: u32,
    /// Exclusive consumer.
    pub(crate) exclusive: bool,
    /// Consumer priority (`x-priority`); 0 by default.
    pub(crate) priority: i32,
}

/// A consumer's removal, as the caller must finish it.
#[derive(Debug)]
#[must_use = "an unused auto-delete queue must be deleted, and the fallout handled"]
pub(crate) struct Unsubscribed {
    /// The queue is `auto_delete` and has just lost its last consumer.
    pub(crate) now_unused: bool,
    /// What the removal left for the vhost.
    pub(crate) fallout: Fallout,
}

/// A snapshot of a queue's counters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueCounts {
    pub(crate) ready: usize,
    /// Ready messages on disk only (counted in `ready` too).
    pub(crate) paged_out: usize,
    pub(crate) unacked: usize,
    pub(crate) consumers: usize,
    /// Messages published into the queue since it was created or recovered.
    pub(crate) published: u64,
    /// Messages handed to consumers.
    pub(crate) delivered: u64,
    /// Of those, messages delivered before.
    pub(crate) redelivered: u64,
    /// Messages fetched with `basic_get`.
    pub(crate) got: u64,
    /// Deliveries acknowledged.
    pub(crate) acked: u64,
}

/// The messages the application holds awaiting their ack, as monotonic counts (so that
/// taking and settling each touch one counter, and the totals are statistics too): held
/// now = taken - acked - dropped - returned.
#[derive(Debug, Default)]
struct Held {
    /// Taken by the application with manual ack (received from an inbox or fetched).
    taken: AtomicU64,
    /// Acknowledged.
    acked: AtomicU64,
    /// Rejected or nacked without requeue.
    dropped: AtomicU64,
    /// Requeued (nack, reject, recover, closed channel).
    returned: AtomicU64,
}

impl Held {
    fn now(&self) -> usize {
        let settled = self.acked.load(Ordering::Relaxed)
            + self.dropped.load(Ordering::Relaxed)
            + self.returned.load(Ordering::Relaxed);
        let taken = self.taken.load(Ordering::Relaxed);
        usize::try_from(taken.saturating_sub(settled)).unwrap_or(usize::MAX)
    }
}

/// How many messages left a queue other than by delivery and ack, by reason: each was
/// dead-lettered if the queue has a dead-letter exchange, dropped otherwise.
#[derive(Debug, Default)]
pub(crate) struct LossCounters {
    /// Expired (message TTL).
    pub(crate) expired: AtomicU64,
    /// Dropped from the head by a length limit (`drop-head`).
    pub(crate) overflowed: AtomicU64,
    /// Rejected or nacked without requeue.
    pub(crate) rejected: AtomicU64,
    /// Publishes refused by a length limit (`reject-publish`, `reject-publish-dlx`).
    pub(crate) refused: AtomicU64,
}

impl Queue {
    pub(crate) fn new(
        name: Arc<str>,
        vhost: Arc<str>,
        id: DestinationId,
        options: QueueDeclareOptions,
        exclusive_owner: Option<ConnectionId>,
        arguments: FieldTable,
        store: &Arc<dyn Store>,
    ) -> Self {
        let persistence = (options.durable && store.is_persistent()).then(|| QueuePersistence {
            store: Arc::clone(store),
            key: QueueKey::new(Arc::clone(&vhost), Arc::clone(&name)),
        });
        Queue {
            persistence,
            next_seq: CachePadded::new(AtomicU64::new(0)),
            name,
            vhost,
            id,
            durable: options.durable,
            auto_delete: options.auto_delete,
            exclusive_owner,
            arguments,
            state: CachePadded::new(Mutex::new(QueueState::default())),
            held: CachePadded::default(),
            losses: LossCounters::default(),
            declared: Box::default(),
            queue_type: QueueType::Classic,
            expires: AtomicU64::new(0),
            message_ttl: AtomicU64::new(NO_TTL),
            clock: Arc::new(SystemClock),
            may_expire: AtomicBool::new(false),
            last_used: AtomicU64::new(0),
            quiet: Arc::default(),
        }
    }

    /// Gives a new queue its arguments, the broker's clock and what
    /// [`Broker::wait_idle`](crate::Broker::wait_idle) waits on.
    pub(crate) fn with_features(mut self, config: QueueConfig, settings: &Settings) -> Self {
        let clock = Arc::clone(&settings.clock);
        self.quiet = Arc::clone(&settings.quiet);
        {
            let st = self.state.get_mut();
            if let Some(max) = config.max_priority {
                st.ready = ReadyList::with_max_priority(max);
            }
            if config.queue_type == QueueType::Quorum {
                st.ready = ReadyList::fifo();
            }
            if config.max_length_bytes.is_some() {
                st.ready.count_bytes();
            }
            st.consumers.single_active = config.single_active_consumer;
            st.config = (!config.is_plain()).then(|| Box::new(config.clone()));
        }
        self.may_expire = AtomicBool::new(config.message_ttl.is_some());
        self.last_used = AtomicU64::new(clock.now_millis());
        self.expires = AtomicU64::new(config.expires.unwrap_or(0));
        self.message_ttl = AtomicU64::new(config.message_ttl.unwrap_or(NO_TTL));
        self.queue_type = config.queue_type;
        self.declared = Box::new(config);
        self.clock = clock;
        self
    }

    /// Applies a policy (its name and definition), or none: the queue runs from now on with
    /// its arguments combined with the policy's keys. A lower length limit drops (or
    /// dead-letters) messages from the head at once; a message TTL applies to messages that
    /// enter from now on; `expires` counts from now.
    pub(crate) fn apply_policy(&self, policy: Option<(&str, &FieldTable)>) -> Fallout {
        let config = self.declared.with_policy(policy.map(|p| p.1));
        let expires = config.expires.unwrap_or(0);
        let mut st = self.state.lock();
        st.policy = policy.map(|p| p.0.into());
        self.message_ttl
            .store(config.message_ttl.unwrap_or(NO_TTL), Ordering::Relaxed);
        if config.max_length_bytes.is_some() {
            st.ready.count_bytes();
        }
        if self.expires.swap(expires, Ordering::Relaxed) != expires {
            self.last_used
                .store(self.clock.now_millis(), Ordering::Relaxed);
        }
        st.config = (!config.is_plain()).then(|| Box::new(config));
        if st.deleted {
            return Fallout::default();
        }
        self.trim(&mut st);
        let mut fallout = self.finish(st);
        fallout.start_timers |= expires != 0;
        fallout
    }

    /// Returns the name of the policy that applies to the queue, if one does.
    pub(crate) fn policy(&self) -> Option<Arc<str>> {
        self.state.lock().policy.clone()
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
        // Compared in RabbitMQ's order, `x-queue-type` among them (observed: a quorum queue
        // with `x-max-length` redeclared as classic without it reports `x-max-length`); no
        // `x-queue-type` and `classic` are the same type.
        let classic = |args: &FieldTable| {
            args.get("x-queue-type")
                .is_none_or(|t| t.as_str() == Some("classic"))
        };
        let same_type = classic(&self.arguments) && classic(arguments);
        let compared = self.queue_type().compared_arguments();
        for &arg in QUEUE_ARGUMENT_ORDER {
            let checked = if arg == "x-queue-type" {
                !same_type
            } else {
                compared.contains(&arg)
            };
            if checked {
                arguments::check_equivalent(entity, &[arg], &self.arguments, arguments)?;
            }
        }
        Ok(())
    }

    /// Returns the queue's type.
    pub(crate) fn queue_type(&self) -> QueueType {
        self.queue_type
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

    /// Returns `true` if the queue itself is kept in the store: durable, not exclusive (an
    /// exclusive queue ends with its connection, so it never outlives a restart), in a
    /// persistent broker. Only then are bindings to it stored.
    pub(crate) fn is_stored(&self) -> bool {
        self.persistence.is_some() && self.exclusive_owner.is_none()
    }

    /// Reserves the position of a message about to be published.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Returns `true` if a message with these properties is stored when it enters this queue.
    pub(crate) fn stores(&self, message: &crate::Message) -> bool {
        self.persistence.is_some() && message.properties().is_persistent()
    }

    /// Enqueues a published message (its `seq` from [`next_seq`](Self::next_seq)):
    /// `Accepted`, `Refused` by a length limit, or `Gone` if the queue was deleted meanwhile.
    pub(crate) fn publish(&self, msg: QueuedMessage) -> (Enqueued, Fallout) {
        let mut st = self.state.lock();
        if st.deleted {
            return (Enqueued::Gone, Fallout::default());
        }
        if st.config.is_some() || msg.envelope.message.properties().expiration.is_some() {
            return self.publish_featured(st, msg);
        }
        if st.ready.is_empty() {
            if let Err(msg) = st.consumers.deliver(msg) {
                st.ready.push_back(msg);
            }
        } else {
            st.ready.push_back(msg);
        }
        (Enqueued::Accepted, self.page_in_fallout(&st))
    }

    /// Subscribes a consumer that receives into `inbox`.
    pub(crate) fn subscribe(
        &self,
        sub: Subscription,
        inbox: Arc<Inbox<QueuedMessage>>,
    ) -> Result<Fallout> {
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
        st.consumers.add(ConsumerSlot {
            key: sub.key,
            inbox,
            prefetch: sub.prefetch,
            in_flight: 0,
            exclusive: sub.exclusive,
            priority: sub.priority,
        });
        st.had_consumer = true;
        self.touch();
        self.dispatch(&mut st);
        Ok(self.finish(st))
    }

    /// Removes a consumer, putting back what waited unreceived in its inbox.
    pub(crate) fn unsubscribe(&self, key: ConsumerKey) -> Unsubscribed {
        let mut st = self.state.lock();
        if let Some(slot) = st.consumers.remove(key) {
            for msg in slot.close() {
                st.ready.requeue(msg);
            }
            self.touch();
            self.trim(&mut st);
            self.dispatch(&mut st);
        }
        let now_unused =
            self.auto_delete && st.had_consumer && st.consumers.is_empty() && !st.deleted;
        Unsubscribed {
            now_unused,
            fallout: self.finish(st),
        }
    }

    /// Takes the head message for `basic_get`, with the number of messages left ready. The
    /// message counts as held by the application until the caller settles it.
    pub(crate) fn get(&self) -> (Option<(QueuedMessage, usize)>, Fallout) {
        let mut fallout = Fallout::default();
        for attempt in 0..PAGE_IN_ATTEMPTS {
            let mut st = self.state.lock();
            self.touch();
            self.expire_heads(&mut st);
            if let Some(msg) = st.ready.pop_front() {
                self.held.taken.fetch_add(1, Ordering::Relaxed);
                st.got += 1;
                let left = st.ready.len();
                fallout.merge(self.finish(st));
                return (Some((msg, left)), fallout);
            }
            if !st.ready.head_is_stored() {
                break;
            }
            // The head is on disk: read it back here (no lock held), or wait for the
            // page-in under way.
            drop(st);
            if !self.page_in_now(&mut fallout) && attempt > 0 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        let st = self.state.lock();
        fallout.merge(self.finish(st));
        (None, fallout)
    }

    /// Settles deliveries the application held (acked, or rejected without requeue): they
    /// leave the queue for good, and the store forgets them.
    pub(crate) fn settle(&self, credit: Option<Credit>, msgs: &[QueuedMessage]) -> Fallout {
        self.forget(msgs);
        self.held
            .acked
            .fetch_add(msgs.len() as u64, Ordering::Relaxed);
        self.release(credit, msgs.len())
    }

    /// Returns the credit of `count` settled deliveries to their consumer. Only a consumer
    /// with a prefetch limit needs the queue lock here.
    pub(crate) fn release(&self, credit: Option<Credit>, count: usize) -> Fallout {
        let Some(Credit {
            consumer,
            limited: true,
        }) = credit
        else {
            return Fallout::default();
        };
        let mut st = self.state.lock();
        st.consumers
            .credit(consumer, u32::try_from(count).unwrap_or(u32::MAX));
        self.dispatch(&mut st);
        self.finish(st)
    }

    /// Removes the store entry of the persisted message at `seq` (refused after the store
    /// took it).
    pub(crate) fn forget_entry(&self, seq: u64) {
        if let Some(p) = &self.persistence {
            p.store.submit_untracked(StoreOp::Remove(p.key.entry(seq)));
        }
    }

    /// Removes the store entries of messages that left the queue for good.
    pub(crate) fn forget<'a>(&self, msgs: impl IntoIterator<Item = &'a QueuedMessage>) {
        let Some(p) = &self.persistence else { return };
        let mut stored = msgs
            .into_iter()
            .filter(|m| m.persisted)
            .map(|m| p.key.entry(m.seq));
        let Some(first) = stored.next() else { return };
        let op = match stored.next() {
            None => StoreOp::Remove(first),
            Some(second) => StoreOp::RemoveAll([first, second].into_iter().chain(stored).collect()),
        };
        p.store.submit_untracked(op);
    }

    /// Returns the store entries of the ready messages that were delivered before (and came
    /// back): what a clean shutdown records as delivered, so that they come back
    /// redelivered. Deliveries write nothing to the store themselves.
    pub(crate) fn redelivered_entries(&self) -> Vec<EntryKey> {
        let Some(p) = &self.persistence else {
            return Vec::new();
        };
        let st = self.state.lock();
        st.ready
            .iter()
            .filter(|m| m.persisted && m.redelivered)
            .map(|m| p.key.entry(m.seq))
            .collect()
    }

    /// Puts delivered messages back in their places, marked redelivered (a quorum queue
    /// counts the return and may dead-letter them instead; see `quorum`).
    pub(crate) fn requeue(
        &self,
        credit: Option<Credit>,
        msgs: Vec<QueuedMessage>,
        how: Return,
    ) -> Fallout {
        let mut st = self.state.lock();
        self.held
            .returned
            .fetch_add(msgs.len() as u64, Ordering::Relaxed);
        if st.deleted {
            return Fallout::default();
        }
        if let Some(Credit {
            consumer,
            limited: true,
        }) = credit
        {
            st.consumers
                .credit(consumer, u32::try_from(msgs.len()).unwrap_or(u32::MAX));
        }
        let quorum = self.is_quorum();
        for mut msg in msgs {
            if quorum {
                self.return_to_quorum(&mut st, msg, how);
                continue;
            }
            msg.redelivered = true;
            st.ready.requeue(msg);
        }
        self.trim(&mut st);
        self.dispatch(&mut st);
        self.finish(st)
    }

    /// Counts a held delivery rejected without requeue (its credit goes back through
    /// [`release`](Self::release)).
    pub(crate) fn held_dropped(&self) {
        self.held.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `count` messages as held by the application, awaiting their ack.
    pub(crate) fn hold(&self, count: usize) {
        self.held.taken.fetch_add(count as u64, Ordering::Relaxed);
    }

    /// Puts back, unchanged, messages that were handed out but never reached the application.
    pub(crate) fn restore(&self, msgs: Vec<QueuedMessage>) -> Fallout {
        let mut st = self.state.lock();
        if st.deleted {
            return Fallout::default();
        }
        for msg in msgs {
            st.ready.requeue(msg);
        }
        self.trim(&mut st);
        self.dispatch(&mut st);
        self.finish(st)
    }

    /// Removes the ready messages at positions `seqs`, whose store write failed (their
    /// publishers are nacked; they are not on disk, so the store has nothing to forget);
    /// returns how many were still ready. One already handed to a consumer stays with it.
    pub(crate) fn withdraw(&self, seqs: &[u64]) -> usize {
        let mut st = self.state.lock();
        let count = st.ready.withdraw(seqs);
        drop(st);
        if count > 0 {
            self.quiet.notify();
        }
        count
    }

    /// Removes every ready message; returns how many.
    pub(crate) fn purge(&self) -> usize {
        let mut st = self.state.lock();
        let removed = st.ready.drain();
        let stored = st.ready.take_stored();
        drop(st);
        self.quiet.notify();
        self.forget(&removed);
        self.forget_positions(&stored);
        removed.len() + stored.len()
    }

    /// Marks the queue deleted, drops its messages and cancels its consumers. Returns the
    /// number of ready messages it held.
    pub(crate) fn delete(&self) -> usize {
        let mut st = self.state.lock();
        st.deleted = true;
        let count = st.ready.drain().len() + st.ready.take_stored().len();
        if let Some(p) = &self.persistence {
            drop(p.store.submit(StoreOp::DeleteQueue(p.key.clone())));
        }
        for slot in st.consumers.take_all() {
            drop(slot.close());
        }
        drop(st);
        self.quiet.notify();
        count
    }

    /// Describes what the queue holds back from consumers that could take it now, for
    /// [`Broker::wait_idle`](crate::Broker::wait_idle): ready messages while a consumer has
    /// credit (a dispatch or a page-in under way), and messages waiting unreceived in its
    /// consumers' inboxes. `None` when it holds nothing back.
    pub(crate) fn busy(&self) -> Option<String> {
        let st = self.state.lock();
        let ready = if st.consumers.any_credit() {
            st.ready.len()
        } else {
            0
        };
        let waiting = st.consumers.waiting();
        drop(st);
        let mut parts = Vec::new();
        if ready > 0 {
            parts.push(format!("{ready} ready for a consumer with credit"));
        }
        if waiting > 0 {
            parts.push(format!("{waiting} in consumer inboxes, not yet received"));
        }
        (!parts.is_empty()).then(|| {
            format!(
                "queue '{}' in vhost '{}': {}",
                self.name,
                self.vhost,
                parts.join(", ")
            )
        })
    }

    /// Returns the ready, unacked and consumer counts.
    pub(crate) fn counts(&self) -> QueueCounts {
        let st = self.state.lock();
        QueueCounts {
            ready: st.ready.len(),
            paged_out: st.ready.stored(),
            unacked: self.held.now() + st.consumers.waiting(),
            consumers: st.consumers.len(),
            published: self.next_seq.load(Ordering::Relaxed) - st.first_seq,
            delivered: st.consumers.delivered,
            redelivered: st.consumers.redelivered,
            got: st.got,
            acked: self.held.acked.load(Ordering::Relaxed),
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
            if let Err(msg) = st.consumers.deliver(msg) {
                st.ready.requeue(msg);
                break;
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
