//! Broker-wide settings shared by every vhost and connection, and the source of unique ids.
//!
//! The broker builds one [`Settings`]; vhosts and connections hold it. It sits below them, so
//! that neither needs to know the broker.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use crate::sync::Mutex;

use crate::alarm::Alarms;
use crate::ids::{ConnectionId, ConsumerKey};
use crate::quiet::Quiet;
use crate::routing::{
    DestinationId, DirectRouter, FanoutRouter, HeadersRouter, Router, RouterFactory, TopicRouter,
};
use crate::store::Store;
use crate::{Clock, ExchangeKind};

/// Broker-wide settings shared by every vhost, and the source of unique ids.
pub(crate) struct Settings {
    /// Refuse bindings between durable and non-durable entities (the seed tutorial's rule);
    /// off by default, as in RabbitMQ.
    pub(crate) strict_binding_durability: bool,
    /// The time source.
    pub(crate) clock: Arc<dyn Clock>,
    /// Where durable state goes ([`NullStore`](crate::store::NullStore) for an in-memory
    /// broker).
    pub(crate) store: Arc<dyn Store>,
    /// The memory and disk alarms, and the charges of the messages held.
    pub(crate) alarms: Arc<Alarms>,
    /// Custom exchange kinds by name.
    custom_kinds: HashMap<String, Arc<dyn RouterFactory>>,
    /// The next unique id (destinations, connections, consumers).
    next_id: AtomicU64,
    /// Set once when the broker closes ([`Broker::close`](crate::Broker::close)).
    closed: AtomicBool,
    /// The budget for persistent message bodies that durable queues hold in memory.
    pub(crate) budget: Arc<MemoryBudget>,
    /// Runs queues' page-ins off the callers' threads.
    pub(crate) background: Background,
    /// What [`Broker::wait_idle`](crate::Broker::wait_idle) waits on.
    pub(crate) quiet: Arc<Quiet>,
}

/// The broker's budget for the bodies of persistent messages that plain durable queues hold
/// in memory ([`BrokerBuilder::memory_budget`](crate::BrokerBuilder)). Beyond it such a queue
/// keeps newly published persistent messages on disk only.
#[derive(Debug, Default)]
pub(crate) struct MemoryBudget {
    /// The most bytes; `None` for no limit (nothing is paged out at publish).
    limit: Option<usize>,
    /// Body bytes held now.
    used: AtomicUsize,
}

impl MemoryBudget {
    /// A budget of `limit` bytes (`None`: unlimited).
    pub(crate) fn new(limit: Option<usize>) -> Self {
        MemoryBudget {
            limit,
            used: AtomicUsize::new(0),
        }
    }

    /// Counts `bytes` more held in memory.
    pub(crate) fn add(&self, bytes: usize) {
        self.used.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts `bytes` fewer.
    pub(crate) fn sub(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Returns `true` once the bodies held reach the limit.
    pub(crate) fn is_over(&self) -> bool {
        self.limit
            .is_some_and(|limit| self.used.load(Ordering::Relaxed) >= limit)
    }
}

/// A job for the [`Background`] thread.
type Job = Box<dyn FnOnce() + Send>;

/// A thread that runs jobs off the callers' threads (queues reading their messages on disk
/// back into memory), started on first use and joined when the broker closes.
#[derive(Default)]
pub(crate) struct Background {
    /// The queue to the thread, and the thread.
    thread: Mutex<Option<(crossbeam_channel::Sender<Job>, JoinHandle<()>)>>,
    /// Stopped: jobs are dropped.
    stopped: AtomicBool,
}

impl Background {
    /// Runs `job` on the background thread (dropped once the broker has closed).
    pub(crate) fn run(&self, job: Job) {
        if self.stopped.load(Ordering::Acquire) {
            return;
        }
        let mut thread = self.thread.lock();
        if thread.is_none() {
            let (tx, rx) = crossbeam_channel::unbounded::<Job>();
            let spawned = thread::Builder::new()
                .name("warren-pager".into())
                .spawn(move || rx.into_iter().for_each(|job| job()));
            match spawned {
                Ok(handle) => *thread = Some((tx, handle)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the page-in thread");
                    return;
                }
            }
        }
        if let Some((tx, _)) = thread.as_ref() {
            let _ = tx.send(job);
        }
    }

    /// Stops taking jobs, lets the thread finish those queued and joins it.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        let Some((tx, handle)) = self.thread.lock().take() else {
            return;
        };
        drop(tx);
        if handle.thread().id() != thread::current().id() {
            let _ = handle.join();
        }
    }
}

impl fmt::Debug for Background {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Background")
            .field("started", &self.thread.lock().is_some())
            .finish()
    }
}

impl Settings {
    /// Creates the settings of a new broker.
    pub(crate) fn new(
        strict_binding_durability: bool,
        clock: Arc<dyn Clock>,
        store: Arc<dyn Store>,
        alarms: Arc<Alarms>,
        custom_kinds: HashMap<String, Arc<dyn RouterFactory>>,
        memory_budget: Option<usize>,
    ) -> Self {
        Settings {
            strict_binding_durability,
            clock,
            store,
            alarms,
            custom_kinds,
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            budget: Arc::new(MemoryBudget::new(memory_budget)),
            background: Background::default(),
            quiet: Arc::default(),
        }
    }

    /// Marks the broker closed; returns `true` the first time.
    pub(crate) fn close(&self) -> bool {
        !self.closed.swap(true, Ordering::AcqRel)
    }

    /// Returns `true` once the broker is closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Returns the custom exchange kinds by name.
    #[cfg_attr(not(feature = "definitions"), allow(dead_code))]
    pub(crate) fn custom_kinds(&self) -> &HashMap<String, Arc<dyn RouterFactory>> {
        &self.custom_kinds
    }

    /// Returns a new unique id.
    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Returns a new unique destination id.
    pub(crate) fn next_destination(&self) -> DestinationId {
        DestinationId::new(self.next_id())
    }

    /// Returns a new unique connection id.
    pub(crate) fn next_connection(&self) -> ConnectionId {
        ConnectionId(self.next_id())
    }

    /// Returns a new unique consumer key.
    pub(crate) fn next_consumer(&self) -> ConsumerKey {
        ConsumerKey(self.next_id())
    }

    /// Creates the router of a new exchange of `kind`, or `None` for an unknown kind (and
    /// for `x-delayed-message`, whose router is that of its `x-delayed-type`).
    pub(crate) fn router_for(&self, kind: &ExchangeKind) -> Option<Box<dyn Router>> {
        Some(match kind {
            ExchangeKind::Direct => Box::new(DirectRouter::new()),
            ExchangeKind::Fanout => Box::new(FanoutRouter::new()),
            ExchangeKind::Topic => Box::new(TopicRouter::new()),
            ExchangeKind::Headers => Box::new(HeadersRouter::new()),
            ExchangeKind::Custom(name) => self.custom_kinds.get(name)?.create(),
            ExchangeKind::DelayedMessage => return None,
        })
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("strict_binding_durability", &self.strict_binding_durability)
            .field("clock", &self.clock)
            .field(
                "custom_kinds",
                &self.custom_kinds.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}
