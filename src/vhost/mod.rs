//! One virtual host: a namespace of exchanges, queues and the bindings between them.
//!
//! Publishing reads the exchange and queue maps without any vhost-wide lock. Topology
//! changes (declare, delete, bind, unbind) are serialised by the `topology` lock, which also
//! guards the index of bindings by destination used to unbind a deleted queue in time
//! proportional to its own bindings.
//!
//! A durable change is submitted to the store under the lock (so the store applies topology
//! changes in the order they were made) and waited for after the lock is released: one slow
//! fsync holds up the operations that depend on it (their own writes come after it), not
//! every declare and bind of the vhost. A change whose write fails is undone.
//!
//! - `topology`: declaring, deleting, binding and unbinding exchanges and queues.
//! - `publish`: routing a message and putting it into its queues ([`Published`]).
//! - `e2e`: exchange-to-exchange bindings and alternate exchanges.
//! - `dead_letter`: dead-lettering with `x-death` headers.
//! - `delayed`: the `x-delayed-message` exchange kind's schedule of delayed messages.
//! - `timers`: message TTL and queue expiry sweeps.
//! - `recovery`: rebuilding durable state from the store at open.
//! - `policies`: setting, clearing and applying policies.
//! - `reply_to`: the reply queues of direct reply-to (`amq.rabbitmq.reply-to`).
//! - `stats`: queue and exchange counters.

mod dead_letter;
mod delayed;
mod e2e;
mod policies;
mod publish;
#[cfg(feature = "persistence")]
mod recovery;
mod reply_to;
mod stats;
mod timers;
mod topology;
#[cfg(test)]
mod topology_tests;

pub use publish::RoutePreview;
pub(crate) use publish::{Published, RouteMemo};
pub(crate) use reply_to::REPLY_TO;
pub use topology::QueueDeclareOk;

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use crossbeam_utils::CachePadded;

use crate::exchange::{BindingKey, Exchange, ExchangeSpec};
use crate::ids::ConnectionId;
use crate::queue::{Fallout, Queue};
use crate::routing::DestinationId;
use crate::settings::Settings;
use crate::store::{BindingRecord, Durable, ExchangeRecord, StoreOp};
use crate::sync::{ConcurrentMap, Mutex, MutexGuard};
use crate::{Error, ExchangeDeclareOptions, ExchangeKind, FieldTable, Result};

/// Where a binding leads.
#[derive(Debug, Clone)]
enum Destination {
    Queue(Arc<Queue>),
    /// An exchange-to-exchange binding's destination.
    Exchange(Arc<Exchange>),
}

/// Bindings by destination, so that a deleted queue can be unbound from every exchange, and
/// the vhost's newest topology write to the store, and the policies, so that declares and
/// policy changes are serialised.
#[derive(Debug, Default)]
struct Topology {
    inbound: HashMap<DestinationId, Vec<(Arc<Exchange>, BindingKey)>>,
    /// The ticket of the newest store write submitted under the lock. An answer about durable
    /// state that already exists (a redeclare, a binding that is already there) waits for
    /// it: the write that made that state may still be on its way to disk.
    last_write: Option<Durable>,
    /// The vhost's policies, in the order they were set.
    policies: Vec<policies::CompiledPolicy>,
}

/// The topology lock, and a generation number that every change made under it bumps (as
/// the guard is released), so that a channel's memo of where its publishes go
/// ([`RouteMemo`](publish::RouteMemo)) knows when to look again. Every change to the
/// exchanges, queues, destinations or bindings of a running vhost must be made under it.
#[derive(Debug, Default)]
struct TopologyLock {
    topology: Mutex<Topology>,
    generation: CachePadded<AtomicU64>,
}

impl TopologyLock {
    /// Takes the lock; the generation moves on when the guard goes.
    fn lock(&self) -> TopologyGuard<'_> {
        TopologyGuard {
            topology: self.topology.lock(),
            generation: &self.generation,
        }
    }

    /// Returns the current generation.
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// The held topology lock.
struct TopologyGuard<'a> {
    topology: MutexGuard<'a, Topology>,
    generation: &'a AtomicU64,
}

impl Deref for TopologyGuard<'_> {
    type Target = Topology;

    fn deref(&self) -> &Topology {
        &self.topology
    }
}

impl DerefMut for TopologyGuard<'_> {
    fn deref_mut(&mut self) -> &mut Topology {
        &mut self.topology
    }
}

impl Drop for TopologyGuard<'_> {
    fn drop(&mut self) {
        // Still under the lock: a publisher that reads the new generation sees the change.
        self.generation.fetch_add(1, Ordering::Release);
    }
}

/// One vhost.
#[derive(Debug)]
pub(crate) struct VHost {
    /// The vhost name.
    pub(crate) name: Arc<str>,
    /// The vhost itself, for the timers it starts.
    me: Weak<VHost>,
    /// Broker-wide settings and id source.
    settings: Arc<Settings>,
    /// Exchanges by name.
    exchanges: ConcurrentMap<String, Arc<Exchange>>,
    /// Queues by name.
    queues: ConcurrentMap<String, Arc<Queue>>,
    /// Binding destinations by id.
    destinations: ConcurrentMap<DestinationId, Destination>,
    /// Serialises topology changes; see the module docs.
    topology: TopologyLock,
    /// Some exchange-to-exchange binding was made: routing must follow the graph.
    e2e_used: AtomicBool,
    /// The TTL and expiry sweep, once started.
    timers: OnceLock<timers::Timers>,
    /// Messages held by `x-delayed-message` exchanges until their delay ends.
    delayed: delayed::DelayedMessages,
    /// Direct reply-to queues by address (`amq.rabbitmq.reply-to.<token>`).
    reply_queues: ConcurrentMap<String, Arc<Queue>>,
    /// Set once the vhost is deleted: connections still in it are refused from then on.
    deleted: AtomicBool,
}

impl VHost {
    /// Creates a vhost with the default exchange and the `amq.*` exchanges.
    pub(crate) fn new(name: &str, settings: Arc<Settings>) -> Arc<Self> {
        Arc::new_cyclic(|me| VHost::build(name, settings, Weak::clone(me)))
    }

    fn build(name: &str, settings: Arc<Settings>, me: Weak<VHost>) -> Self {
        let vhost = VHost {
            name: name.into(),
            me,
            settings,
            exchanges: ConcurrentMap::default(),
            queues: ConcurrentMap::default(),
            destinations: ConcurrentMap::default(),
            topology: TopologyLock::default(),
            e2e_used: AtomicBool::new(false),
            timers: OnceLock::new(),
            delayed: Mutex::default(),
            reply_queues: ConcurrentMap::default(),
            deleted: AtomicBool::new(false),
        };
        let builtins = [
            ("", ExchangeKind::Direct),
            ("amq.direct", ExchangeKind::Direct),
            ("amq.fanout", ExchangeKind::Fanout),
            ("amq.topic", ExchangeKind::Topic),
            ("amq.headers", ExchangeKind::Headers),
            ("amq.match", ExchangeKind::Headers),
        ];
        let no_args = FieldTable::new();
        for (name, kind) in builtins {
            let spec = ExchangeSpec {
                name,
                kind: &kind,
                options: ExchangeDeclareOptions::durable(),
                arguments: &no_args,
            };
            let router = vhost
                .settings
                .router_for(&kind)
                .expect("built-in kinds have routers");
            let exchange = Exchange::new(&spec, vhost.settings.next_destination(), router, true);
            vhost.exchanges.insert(name.to_owned(), Arc::new(exchange));
        }
        vhost
    }

    /// Does what a queue operation left to do: dead-letters its dead messages through the
    /// queue's dead-letter exchange and starts the timers.
    #[inline]
    pub(crate) fn absorb(&self, queue: &Queue, fallout: Fallout) {
        if !fallout.is_empty() {
            self.absorb_some(queue, fallout);
        }
    }

    /// [`absorb`](Self::absorb) when there is something to do (off the hot path).
    #[cold]
    fn absorb_some(&self, queue: &Queue, fallout: Fallout) {
        if fallout.start_timers {
            self.ensure_timers();
        }
        if fallout.page_in {
            self.schedule_page_in(queue);
        }
        if fallout.dead.is_empty() {
            return;
        }
        if let Some((exchange, routing_key)) = queue.dead_letter_target() {
            self.dead_letter(&queue.name, &exchange, routing_key.as_deref(), fallout.dead);
        }
    }

    /// Returns the store entries of every durable queue's ready messages that were delivered
    /// and came back (see [`Queue::redelivered_entries`]).
    pub(crate) fn redelivered_entries(&self) -> Vec<crate::store::EntryKey> {
        self.queues
            .iter()
            .flat_map(|q| q.redelivered_entries())
            .collect()
    }

    /// Adds to `busy` a description of each queue that holds messages back from consumers
    /// that could take them (see [`Broker::wait_idle`](crate::Broker::wait_idle)).
    pub(crate) fn busy(&self, busy: &mut Vec<String>) {
        let queues = self.queues.iter().map(|q| Arc::clone(&q));
        let replies = self.reply_queues.iter().map(|q| Arc::clone(&q));
        let all: Vec<Arc<Queue>> = queues.chain(replies).collect();
        busy.extend(all.iter().filter_map(|q| q.busy()));
    }

    /// Has `queue` read its head back from the store on the broker's background thread.
    fn schedule_page_in(&self, queue: &Queue) {
        let (vhost, name, id) = (Weak::clone(&self.me), Arc::clone(&queue.name), queue.id);
        let transit = self.settings.quiet.transit();
        self.settings.background.run(Box::new(move || {
            let _transit = transit;
            let Some(vhost) = vhost.upgrade() else { return };
            let queue = vhost.queues.get(&*name).map(|q| Arc::clone(&q));
            if let Some(queue) = queue.filter(|q| q.id == id) {
                let fallout = queue.page_in();
                vhost.absorb(&queue, fallout);
            }
        }));
    }

    /// Fails with 530 once the vhost is deleted (its connections stay open but may do
    /// nothing more).
    pub(crate) fn check_not_deleted(&self) -> Result<()> {
        if self.deleted.load(Ordering::Relaxed) {
            return Err(Error::NotAllowed {
                reason: format!("vhost '{}' is deleted", self.name),
            });
        }
        Ok(())
    }

    /// Marks the vhost deleted and deletes its queues (cancelling their consumers) and
    /// exchanges. The store is the caller's (one `DeleteVhost` covers everything).
    pub(crate) fn delete_all(&self) {
        self.deleted.store(true, Ordering::Relaxed);
        let mut topology = self.topology.lock();
        let queues: Vec<Arc<Queue>> = self.queues.iter().map(|q| Arc::clone(&q)).collect();
        for queue in &queues {
            self.remove_queue(&mut topology, queue);
        }
        let replies: Vec<Arc<Queue>> = self.reply_queues.iter().map(|q| Arc::clone(&q)).collect();
        self.reply_queues.clear();
        for queue in replies {
            queue.delete();
        }
        self.exchanges.clear();
        self.destinations.clear();
        topology.inbound.clear();
    }

    /// Returns the broker-wide settings.
    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    pub(super) fn exchange_not_found(&self, exchange: &str) -> Error {
        Error::ExchangeNotFound {
            vhost: self.name.to_string(),
            exchange: exchange.to_owned(),
        }
    }

    pub(super) fn queue_not_found(&self, queue: &str) -> Error {
        Error::QueueNotFound {
            vhost: self.name.to_string(),
            queue: queue.to_owned(),
        }
    }

    /// Looks up an exchange.
    pub(crate) fn exchange(&self, name: &str) -> Result<Arc<Exchange>> {
        self.exchanges
            .get(name)
            .map(|e| Arc::clone(&e))
            .ok_or_else(|| self.exchange_not_found(name))
    }

    /// Looks up a queue that `connection` may use.
    pub(crate) fn queue(&self, name: &str, connection: ConnectionId) -> Result<Arc<Queue>> {
        let queue = self
            .queues
            .get(name)
            .map(|q| Arc::clone(&q))
            .ok_or_else(|| self.queue_not_found(name))?;
        queue.check_access(connection)?;
        Ok(queue)
    }

    /// Submits the store write of a durable topology change, under the topology lock, and
    /// returns its ticket for the caller to wait on once the lock is released (nothing to
    /// write for an in-memory broker).
    fn submit_topology(
        &self,
        topology: &mut Topology,
        op: impl FnOnce() -> StoreOp,
    ) -> Option<Durable> {
        let store = &self.settings.store;
        if !store.is_persistent() {
            return None;
        }
        let ticket = store.submit(op());
        topology.last_write = Some(ticket.clone());
        Some(ticket)
    }

    /// The newest topology write of the vhost while it is not yet durable: what an answer
    /// about existing durable state waits for.
    fn unsettled(topology: &Topology) -> Option<Durable> {
        topology
            .last_write
            .as_ref()
            .filter(|t| t.try_result().is_none())
            .cloned()
    }

    pub(super) fn exchange_record(&self, exchange: &Exchange) -> ExchangeRecord {
        ExchangeRecord {
            vhost: self.name.to_string(),
            name: exchange.name.to_string(),
            kind: exchange.kind.as_str().to_owned(),
            durable: exchange.durable,
            auto_delete: exchange.auto_delete,
            internal: exchange.internal,
            arguments: exchange.arguments.clone(),
        }
    }

    /// The record of a binding from `source` to the queue or exchange named `destination`.
    pub(super) fn binding_record(
        &self,
        source: &Exchange,
        destination: (&str, bool),
        key: &BindingKey,
    ) -> BindingRecord {
        BindingRecord {
            vhost: self.name.to_string(),
            source: source.name.to_string(),
            destination: destination.0.to_owned(),
            destination_is_exchange: destination.1,
            routing_key: key.key.clone(),
            arguments: key.arguments.table().clone(),
        }
    }

    pub(super) fn bindable_exchange(&self, name: &str) -> Result<Arc<Exchange>> {
        if name.is_empty() {
            return Err(Error::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        self.exchange(name)
    }
}

/// Waits (with no lock held) for a topology write to be durable.
fn settle(ticket: Option<Durable>) -> Result<()> {
    ticket.map_or(Ok(()), |t| t.wait().map_err(Error::from))
}
