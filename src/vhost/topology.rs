//! Declaring, deleting, binding and unbinding: the topology changes of a vhost, serialised
//! by its topology lock; durable ones are written to the store before they are answered.

use std::sync::Arc;

use super::policies::{winner, Target};
use super::{settle, Destination, Topology, VHost, REPLY_TO};
use crate::exchange::{ArgumentsKey, BindingKey, Exchange, ExchangeSpec};
use crate::ids::ConnectionId;
use crate::names;
use crate::queue::{Queue, QueueConfig};
use crate::store::{Durable, QueueRecord, StoreOp};
use crate::{Error, FieldTable, QueueDeclareOptions, Result};

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

impl VHost {
    /// Declares an exchange, or checks an existing one.
    pub(crate) fn declare_exchange(&self, spec: &ExchangeSpec<'_>) -> Result<()> {
        names::check_length("exchange name", spec.name)?;
        let mut topology = self.topology.lock();
        if spec.name.is_empty() {
            return Err(Error::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        if let Some(existing) = self.exchanges.get(spec.name).map(|e| Arc::clone(&e)) {
            if !spec.options.passive {
                existing.check_equivalent(spec, &self.name)?;
            }
            let wait = existing.durable.then(|| Self::unsettled(&topology));
            drop(topology);
            return settle(wait.flatten());
        }
        if spec.options.passive {
            return Err(self.exchange_not_found(spec.name));
        }
        names::check_not_reserved("exchange", spec.name)?;
        let router = self.exchange_router(spec.kind, spec.arguments)?;
        let exchange = Arc::new(Exchange::new(
            spec,
            self.settings.next_destination(),
            router,
            false,
        ));
        exchange.apply_policy(winner(&topology.policies, Target::Exchange, spec.name));
        let ticket = if exchange.durable {
            self.submit_topology(&mut topology, || {
                StoreOp::PutExchange(self.exchange_record(&exchange))
            })
        } else {
            None
        };
        self.exchanges
            .insert(spec.name.to_owned(), Arc::clone(&exchange));
        drop(topology);
        settle(ticket).inspect_err(|_| {
            // Not durable: undo the declare (the store refuses writes from here on anyway).
            let mut topology = self.topology.lock();
            if self.is_current_exchange(&exchange) {
                drop(self.remove_exchange(&mut topology, &exchange));
            }
        })
    }

    /// Returns `true` if `exchange` is still the exchange of its name.
    fn is_current_exchange(&self, exchange: &Arc<Exchange>) -> bool {
        self.exchanges
            .get(&*exchange.name)
            .is_some_and(|e| Arc::ptr_eq(&e, exchange))
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
        let ticket = self.remove_exchange(&mut topology, &exchange);
        drop(topology);
        settle(ticket)
    }

    /// Removes an exchange and its bindings; returns the store write for a durable one.
    pub(super) fn remove_exchange(
        &self,
        topology: &mut Topology,
        exchange: &Arc<Exchange>,
    ) -> Option<Durable> {
        let durable = if exchange.durable {
            self.submit_topology(topology, || StoreOp::DeleteExchange {
                vhost: self.name.to_string(),
                name: exchange.name.to_string(),
            })
        } else {
            None
        };
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
        let mut topology = self.topology.lock();
        if options.passive && name.is_empty() {
            return Err(self.queue_not_found(name));
        }
        // Direct reply-to: the pseudo-queue always "exists" with one consumer; an address
        // does while its channel has a reply consumer (observed).
        if name == REPLY_TO || (options.passive && self.reply_queue(name).is_some()) {
            let ok = QueueDeclareOk {
                queue: name.to_owned(),
                message_count: 0,
                consumer_count: 1,
            };
            return Ok((ok, None));
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
                let wait = existing.is_stored().then(|| Self::unsettled(&topology));
                drop(topology);
                settle(wait.flatten())?;
                return Ok((declare_ok(&existing), None));
            }
            if options.passive {
                return Err(self.queue_not_found(name));
            }
            names::check_not_reserved("queue", name)?;
        }
        config
            .queue_type
            .check_new(name, options, arguments, &self.name)?;
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
            .with_features(config, &self.settings)
            .with_paging(&self.settings.budget),
        );
        // A new queue has no messages: its policy leaves at most timers to start.
        let fallout = queue.apply_policy(winner(&topology.policies, Target::Queue, &name));
        if queue.is_timed() || fallout.start_timers {
            self.ensure_timers();
        }
        let ticket = if queue.is_stored() {
            self.submit_topology(&mut topology, || {
                StoreOp::PutQueue(QueueRecord {
                    vhost: self.name.to_string(),
                    name: name.clone(),
                    durable: true,
                    auto_delete: options.auto_delete,
                    exclusive: false,
                    arguments: arguments.clone(),
                })
            })
        } else {
            None
        };
        self.queues.insert(name, Arc::clone(&queue));
        self.destinations
            .insert(id, Destination::Queue(Arc::clone(&queue)));
        drop(topology);
        if let Err(e) = settle(ticket) {
            // Not durable: undo the declare.
            self.drop_queue(&queue);
            return Err(e);
        }
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

    pub(super) fn remove_queue(&self, topology: &mut Topology, queue: &Arc<Queue>) -> usize {
        self.queues.remove(&*queue.name);
        self.destinations.remove(&queue.id);
        let count = queue.delete();
        for (exchange, key) in topology.inbound.remove(&queue.id).unwrap_or_default() {
            exchange.unbind(&key);
            self.auto_delete_exchange(topology, &exchange);
        }
        count
    }

    pub(super) fn auto_delete_exchange(&self, topology: &mut Topology, exchange: &Arc<Exchange>) {
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
        if self.settings.strict_binding_durability
            && !source.builtin
            && source.durable != queue.durable
        {
            return Err(mixed_durability(
                ("exchange", &source.name, source.durable),
                ("queue", &queue.name, queue.durable),
                &self.name,
            ));
        }
        let key = BindingKey {
            destination: queue.id,
            key: routing_key.to_owned(),
            arguments: ArgumentsKey::new(arguments),
        };
        let added = source
            .bind(key.clone())
            .map_err(|e| Error::precondition(e.0))?;
        let stored = source.durable && queue.is_stored();
        if !added {
            let wait = stored.then(|| Self::unsettled(&topology));
            drop(topology);
            return settle(wait.flatten());
        }
        let ticket = if stored {
            self.submit_topology(&mut topology, || {
                StoreOp::PutBinding(self.binding_record(&source, (&queue.name, false), &key))
            })
        } else {
            None
        };
        topology
            .inbound
            .entry(queue.id)
            .or_default()
            .push((Arc::clone(&source), key.clone()));
        drop(topology);
        settle(ticket).inspect_err(|_| {
            // Not durable: undo the binding.
            let mut topology = self.topology.lock();
            if source.unbind(&key) {
                if let Some(list) = topology.inbound.get_mut(&queue.id) {
                    list.retain(|(src, k)| !(Arc::ptr_eq(src, &source) && *k == key));
                }
            }
        })
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
        let mut ticket = None;
        if source.unbind(&key) {
            if source.durable && queue.is_stored() {
                ticket = self.submit_topology(&mut topology, || {
                    StoreOp::DeleteBinding(self.binding_record(&source, (&queue.name, false), &key))
                });
            }
            if let Some(list) = topology.inbound.get_mut(&queue.id) {
                list.retain(|(src, k)| !(Arc::ptr_eq(src, &source) && *k == key));
            }
            self.auto_delete_exchange(&mut topology, &source);
        }
        drop(topology);
        settle(ticket)
    }

    /// Removes every ready message of a queue; returns how many.
    pub(crate) fn purge_queue(&self, name: &str, connection: ConnectionId) -> Result<usize> {
        Ok(self.queue(name, connection)?.purge())
    }
}

/// The error of a binding between a durable and a non-durable end under the seed's strict
/// rule ([`BrokerBuilder::strict_binding_durability`](crate::BrokerBuilder)). Each end is
/// (kind, name, durable).
pub(super) fn mixed_durability(
    source: (&str, &str, bool),
    destination: (&str, &str, bool),
    vhost: &str,
) -> Error {
    let durable = |d: bool| if d { "durable" } else { "non-durable" };
    Error::precondition(format!(
        "cannot bind {} {} '{}' to {} {} '{}' in vhost '{vhost}': strict binding durability \
         is on",
        durable(source.2),
        source.0,
        source.1,
        durable(destination.2),
        destination.0,
        destination.1,
    ))
}

fn declare_ok(queue: &Queue) -> QueueDeclareOk {
    let counts = queue.counts();
    QueueDeclareOk {
        queue: queue.name.to_string(),
        message_count: u32::try_from(counts.ready).unwrap_or(u32::MAX),
        consumer_count: u32::try_from(counts.consumers).unwrap_or(u32::MAX),
    }
}
