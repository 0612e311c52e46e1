//! One virtual host: a namespace of exchanges, queues and the bindings between them.
//!
//! Publishing reads the exchange and queue maps without any vhost-wide lock. Topology
//! changes (declare, delete, bind, unbind) are serialised by the `topology` lock, which also
//! guards the index of bindings by destination used to unbind a deleted queue in time
//! proportional to its own bindings.

//!
//! - `e2e`: exchange-to-exchange bindings and alternate exchanges.
//! - `dead_letter`: dead-lettering with `x-death` headers.
//! - `timers`: message TTL and queue expiry sweeps.

mod dead_letter;
mod e2e;
mod timers;

use std::cell::RefCell;
use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use smallvec::SmallVec;

use crate::broker::Settings;
use crate::connection::ConnectionId;
use crate::envelope::{Envelope, QueuedMessage};
use crate::exchange::{ArgumentsKey, BindingKey, Exchange, ExchangeSpec};
use crate::names;
use crate::queue::{parse_expiration, Enqueued, Queue, QueueConfig};
use crate::routing::{DestinationId, RoutingInput};
use crate::store::{
    BindingRecord, Durable, ExchangeRecord, MessageRecord, QueueRecord, RecoveredQueue, StoreOp,
};
use crate::sync::{ConcurrentMap, Mutex};
use crate::{
    Error, ExchangeDeclareOptions, ExchangeKind, ExchangeStats, FieldTable, Message,
    QueueDeclareOptions, QueueStats, Result,
};

/// Where a binding leads.
#[derive(Debug, Clone)]
enum Destination {
    Queue(Arc<Queue>),
    /// An exchange-to-exchange binding's destination.
    Exchange(Arc<Exchange>),
}

/// The answer to a queue declare.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueDeclareOk {
    /// The queue name (generated when the declare gave `""`).
    pub queue: String,
    /// Ready messages in the queue.
    pub message_count: u32,
    /// Consumers of the queue.
    pub consumer_count: u32,
}

/// What a publish did: how many queues took the message, whether a queue refused it, the
/// message itself if it must be returned, and (for a persistent message bound for durable
/// queues) the ticket that finishes when it is on disk.
#[derive(Debug, Default)]
pub(crate) struct Published {
    /// Queues that took the message (or refused it by a length limit: it was routed).
    pub(crate) queues: usize,
    /// Some queue refused the message (`x-overflow = reject-publish`): nack it.
    pub(crate) refused: bool,
    /// The message, if it was `mandatory` and reached no queue.
    pub(crate) returned: Option<Message>,
    /// The store write of the message, if it was stored.
    pub(crate) durable: Option<Durable>,
}

impl Published {
    /// Counts one queue's answer.
    fn count(&mut self, outcome: Enqueued) {
        match outcome {
            Enqueued::Accepted => self.queues += 1,
            Enqueued::Refused => {
                self.queues += 1;
                self.refused = true;
            }
            Enqueued::Gone => {}
        }
    }
}

/// Where a message would go, as computed by [`Channel::route_preview`](crate::Channel::route_preview).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoutePreview {
    /// The queues reached, sorted by name, each once.
    pub queues: Vec<String>,
    /// The exchanges the message passes through, starting with the one published to.
    pub exchanges: Vec<String>,
}

/// Bindings by destination, so that a deleted queue can be unbound from every exchange.
#[derive(Debug, Default)]
struct Topology {
    inbound: HashMap<DestinationId, Vec<(Arc<Exchange>, BindingKey)>>,
}

/// One vhost.
#[derive(Debug)]
pub(crate) struct VHost {
    /// The vhost name.
    pub(crate) name: Arc<str>,
    /// Broker-wide settings and id source.
    settings: Arc<Settings>,
    /// Exchanges by name.
    exchanges: ConcurrentMap<String, Arc<Exchange>>,
    /// Queues by name.
    queues: ConcurrentMap<String, Arc<Queue>>,
    /// Binding destinations by id.
    destinations: ConcurrentMap<DestinationId, Destination>,
    /// Serialises topology changes; see the module docs.
    topology: Mutex<Topology>,
    /// Some exchange-to-exchange binding was made: routing must follow the graph.
    e2e_used: AtomicBool,
    /// The TTL and expiry sweep, once started.
    timers: OnceLock<timers::Timers>,
}

thread_local! {
    /// Reused buffer for routing results, so that publishing does not allocate for them.
    static ROUTE_BUFFER: RefCell<Vec<DestinationId>> = const { RefCell::new(Vec::new()) };
}

impl VHost {
    /// Creates a vhost with the default exchange and the `amq.*` exchanges.
    pub(crate) fn new(name: &str, settings: Arc<Settings>) -> Self {
        let vhost = VHost {
            name: name.into(),
            settings,
            exchanges: ConcurrentMap::default(),
            queues: ConcurrentMap::default(),
            destinations: ConcurrentMap::default(),
            topology: Mutex::new(Topology::default()),
            e2e_used: AtomicBool::new(false),
            timers: OnceLock::new(),
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

    fn exchange_not_found(&self, exchange: &str) -> Error {
        Error::ExchangeNotFound {
            vhost: self.name.to_string(),
            exchange: exchange.to_owned(),
        }
    }

    fn queue_not_found(&self, queue: &str) -> Error {
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

    /// Makes a topology change durable before it is acknowledged (nothing to do for an
    /// in-memory broker).
    fn persist(&self, op: impl FnOnce() -> StoreOp) -> Result<()> {
        let store = &self.settings.store;
        if !store.is_persistent() {
            return Ok(());
        }
        store.submit(op()).wait().map_err(Error::from)
    }

    fn exchange_record(&self, exchange: &Exchange) -> ExchangeRecord {
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
    fn binding_record(
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

    /// Declares an exchange, or checks an existing one.
    pub(crate) fn declare_exchange(&self, spec: &ExchangeSpec<'_>) -> Result<()> {
        names::check_length("exchange name", spec.name)?;
        let _topology = self.topology.lock();
        if spec.name.is_empty() {
            return Err(Error::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        if let Some(existing) = self.exchanges.get(spec.name) {
            if spec.options.passive {
                return Ok(());
            }
            return existing.check_equivalent(spec, &self.name);
        }
        if spec.options.passive {
            return Err(self.exchange_not_found(spec.name));
        }
        names::check_not_reserved("exchange", spec.name)?;
        let router = self.settings.router_for(spec.kind).ok_or_else(|| {
            let kind = spec.kind.as_str();
            let adjective = if kind.is_empty() {
                "invalid"
            } else {
                "unknown"
            };
            Error::CommandInvalid {
                reason: format!("{adjective} exchange type '{kind}'"),
            }
        })?;
        let exchange = Exchange::new(spec, self.settings.next_destination(), router, false);
        if exchange.durable {
            self.persist(|| StoreOp::PutExchange(self.exchange_record(&exchange)))?;
        }
        self.exchanges
            .insert(spec.name.to_owned(), Arc::new(exchange));
        Ok(())
    }

    /// Deletes an exchange and every binding from it.
    pub(crate) fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<()> {
        names::check_length("exchange name", name)?;
        let mut topology = self.topology.lock();
        let Some(exchange) = self.exchanges.get(name).map(|e| Arc::clone(&e)) else {
            return Ok(());
        };
        if exchange.builtin {
            return Err(Error::access_refused(if name.is_empty() {
                "operation not permitted on the default exchange".to_owned()
            } else {
                format!(
                    "deletion of system exchange '{name}' in vhost '{}' not allowed",
                    self.name
                )
            }));
        }
        if if_unused && exchange.binding_count() > 0 {
            return Err(Error::precondition(format!(
                "exchange '{name}' in vhost '{}' in use",
                self.name
            )));
        }
        match self.remove_exchange(&mut topology, &exchange) {
            Some(durable) => durable.wait().map_err(Error::from),
            None => Ok(()),
        }
    }

    /// Removes an exchange and its bindings; returns the store write for a durable one.
    fn remove_exchange(
        &self,
        topology: &mut Topology,
        exchange: &Arc<Exchange>,
    ) -> Option<Durable> {
        let durable = (exchange.durable && self.settings.store.is_persistent()).then(|| {
            let vhost = self.name.to_string();
            let name = exchange.name.to_string();
            self.settings
                .store
                .submit(StoreOp::DeleteExchange { vhost, name })
        });
        exchange.mark_deleted();
        self.exchanges.remove(&*exchange.name);
        self.destinations.remove(&exchange.id);
        self.unbind_destination_exchange(topology, exchange);
        for key in exchange.bindings() {
            exchange.unbind(&key);
            if let Some(list) = topology.inbound.get_mut(&key.destination) {
                list.retain(|(src, k)| !(Arc::ptr_eq(src, exchange) && *k == key));
            }
        }
        durable
    }

    /// Declares a queue, or checks an existing one.
    pub(crate) fn declare_queue(
        self: &Arc<Self>,
        name: &str,
        options: QueueDeclareOptions,
        arguments: &FieldTable,
        connection: ConnectionId,
    ) -> Result<(QueueDeclareOk, Option<Arc<Queue>>)> {
        names::check_length("queue name", name)?;
        let _topology = self.topology.lock();
        if options.passive && name.is_empty() {
            return Err(self.queue_not_found(name));
        }
        let config = if options.passive {
            QueueConfig::default()
        } else {
            QueueConfig::parse(arguments, name, &self.name)?
        };
        if !name.is_empty() {
            if let Some(existing) = self.queues.get(name).map(|q| Arc::clone(&q)) {
                existing.check_access(connection)?;
                if !options.passive {
                    existing.check_equivalent(options, arguments)?;
                }
                existing.touch();
                return Ok((declare_ok(&existing), None));
            }
            if options.passive {
                return Err(self.queue_not_found(name));
            }
            names::check_not_reserved("queue", name)?;
        }
        let name = if name.is_empty() {
            names::generate("amq.gen-")
        } else {
            name.to_owned()
        };
        let owner = options.exclusive.then_some(connection);
        let id = self.settings.next_destination();
        let queue = Arc::new(
            Queue::new(
                name.as_str().into(),
                Arc::clone(&self.name),
                id,
                options,
                owner,
                arguments.clone(),
                &self.settings.store,
            )
            .with_features(
                config,
                Arc::downgrade(self),
                Arc::clone(&self.settings.clock),
            ),
        );
        if queue.is_timed() {
            VHost::ensure_timers(&Arc::downgrade(self));
        }
        if queue.persistence.is_some() && owner.is_none() {
            self.persist(|| {
                StoreOp::PutQueue(QueueRecord {
                    vhost: self.name.to_string(),
                    name: name.clone(),
                    durable: true,
                    auto_delete: options.auto_delete,
                    exclusive: false,
                    arguments: arguments.clone(),
                })
            })?;
        }
        self.queues.insert(name, Arc::clone(&queue));
        self.destinations
            .insert(id, Destination::Queue(Arc::clone(&queue)));
        Ok((declare_ok(&queue), Some(queue)))
    }

    /// Deletes a queue if the conditions hold; returns the number of ready messages dropped.
    pub(crate) fn delete_queue(
        &self,
        name: &str,
        if_unused: bool,
        if_empty: bool,
        connection: ConnectionId,
    ) -> Result<usize> {
        names::check_length("queue name", name)?;
        let mut topology = self.topology.lock();
        let Some(queue) = self.queues.get(name).map(|q| Arc::clone(&q)) else {
            return Ok(0);
        };
        queue.check_access(connection)?;
        let counts = queue.counts();
        if if_unused && counts.consumers > 0 {
            return Err(Error::precondition(format!(
                "queue '{name}' in vhost '{}' in use",
                self.name
            )));
        }
        if if_empty && counts.ready > 0 {
            return Err(Error::precondition(format!(
                "queue '{name}' in vhost '{}' not empty",
                self.name
            )));
        }
        Ok(self.remove_queue(&mut topology, &queue))
    }

    /// Deletes `queue` if it is still the queue of that name (auto-delete, exclusive owner
    /// gone).
    pub(crate) fn drop_queue(&self, queue: &Arc<Queue>) {
        let mut topology = self.topology.lock();
        let current = self
            .queues
            .get(&*queue.name)
            .is_some_and(|q| Arc::ptr_eq(&q, queue));
        if current {
            self.remove_queue(&mut topology, queue);
        }
    }

    fn remove_queue(&self, topology: &mut Topology, queue: &Arc<Queue>) -> usize {
        self.queues.remove(&*queue.name);
        self.destinations.remove(&queue.id);
        let count = queue.delete();
        for (exchange, key) in topology.inbound.remove(&queue.id).unwrap_or_default() {
            exchange.unbind(&key);
            self.auto_delete_exchange(topology, &exchange);
        }
        count
    }

    fn auto_delete_exchange(&self, topology: &mut Topology, exchange: &Arc<Exchange>) {
        if exchange.auto_delete && exchange.binding_count() == 0 && !exchange.builtin {
            // An auto-delete happens as a side effect; nobody waits for its store write.
            drop(self.remove_exchange(topology, exchange));
        }
    }

    /// Binds a queue to an exchange.
    pub(crate) fn bind_queue(
        &self,
        queue: &str,
        exchange: &str,
        routing_key: &str,
        arguments: &FieldTable,
        connection: ConnectionId,
    ) -> Result<()> {
        names::check_length("routing key", routing_key)?;
        let mut topology = self.topology.lock();
        let source = self.bindable_exchange(exchange)?;
        let queue = self.queue(queue, connection)?;
        if !self.settings.allow_mixed_durability
            && !source.builtin
            && source.durable != queue.durable
        {
            let (d, n) = if source.durable {
                ("", "non-")
            } else {
                ("non-", "")
            };
            return Err(Error::precondition(format!(
                "cannot bind {d}durable exchange '{}' to {n}durable queue '{}' in vhost '{}': \
                 a binding between a durable and a non-durable entity is refused unless \
                 BrokerBuilder::allow_mixed_durability_bindings is set",
                source.name, queue.name, self.name
            )));
        }
        let key = BindingKey {
            destination: queue.id,
            key: routing_key.to_owned(),
            arguments: ArgumentsKey::new(arguments),
        };
        let added = source
            .bind(key.clone())
            .map_err(|e| Error::precondition(e.0))?;
        if added {
            if source.durable && queue.persistence.is_some() {
                let stored = self.persist(|| {
                    StoreOp::PutBinding(self.binding_record(&source, (&queue.name, false), &key))
                });
                if let Err(e) = stored {
                    source.unbind(&key);
                    return Err(e);
                }
            }
            topology
                .inbound
                .entry(queue.id)
                .or_default()
                .push((source, key));
        }
        Ok(())
    }

    /// Removes a binding between a queue and an exchange. Unbinding what is not bound, even
    /// from a missing queue or exchange, is not an error (as in RabbitMQ).
    pub(crate) fn unbind_queue(
        &self,
        queue: &str,
        exchange: &str,
        routing_key: &str,
        arguments: &FieldTable,
        connection: ConnectionId,
    ) -> Result<()> {
        let mut topology = self.topology.lock();
        let source = match self.bindable_exchange(exchange) {
            Err(Error::ExchangeNotFound { .. }) => return Ok(()),
            other => other?,
        };
        let queue = match self.queue(queue, connection) {
            Err(Error::QueueNotFound { .. }) => return Ok(()),
            other => other?,
        };
        let key = BindingKey {
            destination: queue.id,
            key: routing_key.to_owned(),
            arguments: ArgumentsKey::new(arguments),
        };
        if source.unbind(&key) {
            if source.durable && queue.persistence.is_some() {
                self.persist(|| {
                    StoreOp::DeleteBinding(self.binding_record(&source, (&queue.name, false), &key))
                })?;
            }
            if let Some(list) = topology.inbound.get_mut(&queue.id) {
                list.retain(|(src, k)| !(Arc::ptr_eq(src, &source) && *k == key));
            }
            self.auto_delete_exchange(&mut topology, &source);
        }
        Ok(())
    }

    fn bindable_exchange(&self, name: &str) -> Result<Arc<Exchange>> {
        if name.is_empty() {
            return Err(Error::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        self.exchange(name)
    }

    /// Removes every ready message of a queue; returns how many.
    pub(crate) fn purge_queue(&self, name: &str, connection: ConnectionId) -> Result<usize> {
        Ok(self.queue(name, connection)?.purge())
    }

    /// Routes a message and enqueues it on every queue reached. An unroutable `mandatory`
    /// message is handed back for a return.
    pub(crate) fn publish(
        &self,
        source: &Arc<Exchange>,
        routing_key: &str,
        message: Message,
        mandatory: bool,
    ) -> Result<Published> {
        names::check_length("routing key", routing_key)?;
        if let Some(expiration) = &message.properties().expiration {
            parse_expiration(expiration)?;
        }
        let exchange = &source.name;
        if source.internal {
            return Err(Error::access_refused(format!(
                "cannot publish to internal exchange '{exchange}' in vhost '{}'",
                self.name
            )));
        }
        source.counters.published.fetch_add(1, Ordering::Relaxed);
        let headers = message.properties().headers.as_ref();
        let queues = self.target_queues(source, routing_key, headers);
        let envelope = Arc::new(Envelope {
            message,
            exchange: source.name.as_ref().into(),
            routing_key: routing_key.into(),
        });
        let mut published = self.enqueue(&envelope, &queues);
        let returned = published.queues == 0 && mandatory;
        let counter = if published.queues > 0 {
            &source.counters.routed
        } else if returned {
            &source.counters.returned
        } else {
            &source.counters.unroutable
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if returned {
            published.returned =
                Some(Arc::try_unwrap(envelope).map_or_else(|e| e.message.clone(), |e| e.message));
        }
        Ok(published)
    }

    /// Puts a routed message into its queues.
    fn enqueue(&self, envelope: &Arc<Envelope>, queues: &[Arc<Queue>]) -> Published {
        if queues.iter().any(|q| q.stores(&envelope.message)) {
            return self.enqueue_stored(envelope, queues);
        }
        let mut published = Published::default();
        for queue in queues {
            let seq = queue.next_seq();
            let msg = QueuedMessage::new(seq, Arc::clone(envelope), false);
            published.count(queue.publish(msg));
        }
        published
    }

    /// Puts a persistent message into its queues, some durable. The message is submitted to
    /// the store (once, with an entry per durable queue) before any queue holds it, so that
    /// no ack can reach the store before the message does.
    fn enqueue_stored(&self, envelope: &Arc<Envelope>, queues: &[Arc<Queue>]) -> Published {
        let placed: Vec<(u64, bool)> = queues
            .iter()
            .map(|q| (q.next_seq(), q.stores(&envelope.message)))
            .collect();
        let stored_in = || {
            queues
                .iter()
                .zip(&placed)
                .filter(|(_, (_, stored))| *stored)
        };
        let entries = stored_in()
            .filter_map(|(q, (seq, _))| q.persistence.as_ref().map(|p| p.key.entry(*seq)))
            .collect();
        // One record serves every queue: it expires when the last of its queues would let
        // it go (None if one of them never would).
        let expiries: Option<Vec<u64>> = stored_in()
            .map(|(q, _)| q.expiry_of(envelope).map(|at| at.get()))
            .collect();
        let store = &self.settings.store;
        let record = MessageRecord {
            exchange: envelope.exchange.to_string(),
            routing_key: envelope.routing_key.to_string(),
            properties: envelope.message.properties().clone(),
            body: envelope.message.body().clone(),
            expires_at_ms: expiries.and_then(|all| all.into_iter().max()),
        };
        let id = store.next_message_id();
        let durable = store.submit(StoreOp::Enqueue {
            id,
            message: record,
            entries,
        });
        let mut published = Published {
            durable: Some(durable),
            ..Published::default()
        };
        for (queue, (seq, persisted)) in queues.iter().zip(placed) {
            let outcome = queue.publish(QueuedMessage::new(seq, Arc::clone(envelope), persisted));
            if outcome == Enqueued::Refused && persisted {
                // Refused by a length limit after the store took it: forget it there.
                queue.forget(&[QueuedMessage::new(seq, Arc::clone(envelope), true)]);
            }
            published.count(outcome);
        }
        published
    }

    /// Rebuilds a durable exchange from the store at open.
    pub(crate) fn recover_exchange(&self, record: &ExchangeRecord) -> Result<()> {
        let kind = ExchangeKind::from_name(&record.kind);
        let router = self
            .settings
            .router_for(&kind)
            .ok_or_else(|| Error::Internal {
                reason: format!(
                    "stored exchange '{}' in vhost '{}' has kind '{}', which is not registered",
                    record.name, self.name, record.kind
                ),
            })?;
        let options = ExchangeDeclareOptions {
            passive: false,
            durable: true,
            auto_delete: record.auto_delete,
            internal: record.internal,
        };
        let spec = ExchangeSpec {
            name: &record.name,
            kind: &kind,
            options,
            arguments: &record.arguments,
        };
        let exchange = Exchange::new(&spec, self.settings.next_destination(), router, false);
        self.exchanges
            .insert(record.name.clone(), Arc::new(exchange));
        Ok(())
    }

    /// Rebuilds a durable queue and its messages from the store at open. Messages stored in
    /// several queues share one envelope through `envelopes`.
    pub(crate) fn recover_queue(
        self: &Arc<Self>,
        recovered: &RecoveredQueue,
        envelopes: &mut HashMap<u64, Arc<Envelope>>,
    ) -> Result<()> {
        let record = &recovered.record;
        let options = QueueDeclareOptions {
            passive: false,
            durable: true,
            exclusive: false,
            auto_delete: record.auto_delete,
        };
        let config = QueueConfig::parse(&record.arguments, &record.name, &self.name)?;
        let id = self.settings.next_destination();
        let queue = Arc::new(
            Queue::new(
                record.name.as_str().into(),
                Arc::clone(&self.name),
                id,
                options,
                None,
                record.arguments.clone(),
                &self.settings.store,
            )
            .with_features(
                config,
                Arc::downgrade(self),
                Arc::clone(&self.settings.clock),
            ),
        );
        let msgs = recovered
            .messages
            .iter()
            .map(|m| {
                let envelope = envelopes.entry(m.id.0).or_insert_with(|| {
                    let r = &m.message;
                    let message = Message::with_properties(r.body.clone(), r.properties.clone());
                    Arc::new(Envelope {
                        message,
                        exchange: r.exchange.as_str().into(),
                        routing_key: r.routing_key.as_str().into(),
                    })
                });
                let mut msg = QueuedMessage::new(m.seq, Arc::clone(envelope), true);
                msg.redelivered = m.redelivered;
                msg.expires_at = m.message.expires_at_ms.and_then(NonZeroU64::new);
                msg
            })
            .collect();
        queue.recover(msgs, recovered.next_seq());
        if queue.is_timed() {
            VHost::ensure_timers(&Arc::downgrade(self));
        }
        self.queues.insert(record.name.clone(), Arc::clone(&queue));
        self.destinations.insert(id, Destination::Queue(queue));
        Ok(())
    }

    /// Rebuilds a durable binding from the store at open; a binding whose ends are gone is
    /// skipped.
    pub(crate) fn recover_binding(&self, record: &BindingRecord) {
        if record.destination_is_exchange {
            return self.recover_exchange_binding(record);
        }
        let (Some(source), Some(queue)) = (
            self.exchanges.get(&record.source).map(|e| Arc::clone(&e)),
            self.queues.get(&record.destination).map(|q| Arc::clone(&q)),
        ) else {
            return;
        };
        let key = BindingKey {
            destination: queue.id,
            key: record.routing_key.clone(),
            arguments: ArgumentsKey::new(&record.arguments),
        };
        if let Ok(true) = source.bind(key.clone()) {
            self.topology
                .lock()
                .inbound
                .entry(queue.id)
                .or_default()
                .push((source, key));
        }
    }

    /// Returns the distinct queues a message published to `source` reaches.
    fn target_queues(
        &self,
        source: &Exchange,
        routing_key: &str,
        headers: Option<&FieldTable>,
    ) -> SmallVec<[Arc<Queue>; 4]> {
        if source.name.is_empty() {
            // The default exchange: one lookup by queue name, no router.
            return self
                .queues
                .get(routing_key)
                .map(|q| Arc::clone(&q))
                .into_iter()
                .collect();
        }
        let mut buffer = ROUTE_BUFFER.with(RefCell::take);
        buffer.clear();
        self.route(source, routing_key, headers, &mut buffer);
        let queues = buffer
            .iter()
            .filter_map(|id| {
                self.destinations.get(id).and_then(|d| match &*d {
                    Destination::Queue(queue) => Some(Arc::clone(queue)),
                    Destination::Exchange(_) => None,
                })
            })
            .collect();
        ROUTE_BUFFER.with(|b| b.replace(buffer));
        queues
    }

    /// Fills `out` with the distinct destinations of a message published to `source`.
    fn route(
        &self,
        source: &Exchange,
        routing_key: &str,
        headers: Option<&FieldTable>,
        out: &mut Vec<DestinationId>,
    ) {
        if source.name.is_empty() {
            if let Some(queue) = self.queues.get(routing_key) {
                out.push(queue.id);
            }
            return;
        }
        let input = RoutingInput {
            routing_key,
            headers,
        };
        if source.alternate.is_some() || self.e2e_used.load(Ordering::Relaxed) {
            return self.route_graph(source, input, out, None);
        }
        source.route(input, out);
        if out.len() > 1 {
            out.sort_unstable();
            out.dedup();
        }
    }

    /// Computes where a message would go, without publishing it.
    pub(crate) fn route_preview(
        &self,
        exchange: &str,
        routing_key: &str,
        headers: Option<&FieldTable>,
    ) -> Result<RoutePreview> {
        let source = self.exchange(exchange)?;
        let mut ids = Vec::new();
        let mut exchanges = vec![source.name.to_string()];
        if !source.name.is_empty() {
            exchanges.clear();
            let input = RoutingInput {
                routing_key,
                headers,
            };
            self.route_graph(&source, input, &mut ids, Some(&mut exchanges));
        } else {
            self.route(&source, routing_key, headers, &mut ids);
        }
        let mut queues: Vec<String> = ids
            .iter()
            .filter_map(|id| {
                self.destinations.get(id).and_then(|d| match &*d {
                    Destination::Queue(q) => Some(q.name.to_string()),
                    Destination::Exchange(_) => None,
                })
            })
            .collect();
        queues.sort();
        Ok(RoutePreview { queues, exchanges })
    }

    /// Returns the counters of one queue.
    pub(crate) fn queue_stats(&self, name: &str) -> Result<QueueStats> {
        let queue = self
            .queues
            .get(name)
            .map(|q| Arc::clone(&q))
            .ok_or_else(|| self.queue_not_found(name))?;
        Ok(queue_stats(&queue))
    }

    /// Returns the counters of every queue, sorted by name.
    pub(crate) fn list_queues(&self) -> Vec<QueueStats> {
        let queues: Vec<Arc<Queue>> = self.queues.iter().map(|q| Arc::clone(&q)).collect();
        let mut stats: Vec<QueueStats> = queues.iter().map(|q| queue_stats(q)).collect();
        stats.sort_by(|a, b| a.name.cmp(&b.name));
        stats
    }

    /// Returns the counters of one exchange.
    pub(crate) fn exchange_stats(&self, name: &str) -> Result<ExchangeStats> {
        let exchange = self.exchange(name)?;
        Ok(exchange_stats(&exchange))
    }

    /// Returns the counters of every exchange, sorted by name.
    pub(crate) fn list_exchanges(&self) -> Vec<ExchangeStats> {
        let exchanges: Vec<Arc<Exchange>> = self.exchanges.iter().map(|e| Arc::clone(&e)).collect();
        let mut stats: Vec<ExchangeStats> = exchanges.iter().map(|e| exchange_stats(e)).collect();
        stats.sort_by(|a, b| a.name.cmp(&b.name));
        stats
    }
}

fn declare_ok(queue: &Queue) -> QueueDeclareOk {
    let counts = queue.counts();
    QueueDeclareOk {
        queue: queue.name.to_string(),
        message_count: u32::try_from(counts.ready).unwrap_or(u32::MAX),
        consumer_count: u32::try_from(counts.consumers).unwrap_or(u32::MAX),
    }
}

fn queue_stats(queue: &Queue) -> QueueStats {
    let counts = queue.counts();
    QueueStats {
        name: queue.name.to_string(),
        messages_ready: counts.ready,
        messages_unacknowledged: counts.unacked,
        consumers: counts.consumers,
        durable: queue.durable,
        exclusive: queue.exclusive_owner.is_some(),
        auto_delete: queue.auto_delete,
    }
}

fn exchange_stats(exchange: &Exchange) -> ExchangeStats {
    let c = &exchange.counters;
    ExchangeStats {
        name: exchange.name.to_string(),
        kind: exchange.kind.clone(),
        published: c.published.load(Ordering::Relaxed),
        routed: c.routed.load(Ordering::Relaxed),
        unroutable: c.unroutable.load(Ordering::Relaxed),
        returned: c.returned.load(Ordering::Relaxed),
        bindings: exchange.binding_count(),
        table_bytes: exchange.table_bytes(),
    }
}
