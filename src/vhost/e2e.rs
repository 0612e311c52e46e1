//! Exchange-to-exchange bindings and alternate exchanges: routing through a graph of
//! exchanges.
//!
//! A message published to an exchange is routed by it; destinations that are exchanges
//! route it in turn with the same routing key and headers. An exchange whose own routing
//! finds no destination at all passes the message to its `alternate-exchange`, if that
//! exists (RabbitMQ's rule). Every exchange is visited at most once per message, so cycles
//! end, and the queues reached are collected as a set: a queue reachable by several paths
//! gets one copy.
//!
//! Exchange bindings follow RabbitMQ's auto-delete rule: an `auto_delete` exchange goes
//! when its last binding *as a source* goes; losing a binding in which it is the
//! destination does not delete it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{Destination, VHost};
use crate::exchange::{ArgumentsKey, BindingKey, Exchange};
use crate::routing::{DestinationId, RoutingInput};
#[cfg(feature = "persistence")]
use crate::store::BindingRecord;
use crate::store::StoreOp;
use crate::{names, Error, FieldTable, Result};

impl VHost {
    /// Binds exchange `destination` to exchange `source` (AMQP `exchange.bind`).
    pub(crate) fn bind_exchange(
        &self,
        destination: &str,
        source: &str,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> Result<()> {
        names::check_length("routing key", routing_key)?;
        let mut topology = self.topology.lock();
        let src = self.bindable_exchange(source)?;
        let dst = self.bindable_exchange(destination)?;
        if self.settings.strict_binding_durability
            && !src.builtin
            && !dst.builtin
            && src.durable != dst.durable
        {
            return Err(super::topology::mixed_durability(
                ("exchange", &src.name, src.durable),
                ("exchange", &dst.name, dst.durable),
                &self.name,
            ));
        }
        let key = BindingKey {
            destination: dst.id,
            key: routing_key.to_owned(),
            arguments: ArgumentsKey::new(arguments),
        };
        self.destinations
            .entry(dst.id)
            .or_insert_with(|| Destination::Exchange(Arc::clone(&dst)));
        self.e2e_used.store(true, Ordering::Relaxed);
        let added = src
            .bind(key.clone())
            .map_err(|e| Error::precondition(e.0))?;
        let stored = src.durable && dst.durable;
        if !added {
            let wait = stored.then(|| Self::unsettled(&topology));
            drop(topology);
            return super::settle(wait.flatten());
        }
        let ticket = if stored {
            let record = self.binding_record(&src, (&dst.name, true), &key);
            self.submit_topology(&mut topology, || StoreOp::PutBinding(record))
        } else {
            None
        };
        topology
            .inbound
            .entry(dst.id)
            .or_default()
            .push((Arc::clone(&src), key.clone()));
        drop(topology);
        super::settle(ticket).inspect_err(|_| {
            // Not durable: undo the binding.
            let mut topology = self.topology.lock();
            if src.unbind(&key) {
                if let Some(list) = topology.inbound.get_mut(&dst.id) {
                    list.retain(|(s, k)| !(Arc::ptr_eq(s, &src) && *k == key));
                }
            }
        })
    }

    /// Rebuilds a durable exchange-to-exchange binding at open; skipped if an end is gone.
    #[cfg(feature = "persistence")]
    pub(super) fn recover_exchange_binding(&self, record: &BindingRecord) {
        let (Ok(src), Ok(dst)) = (
            self.exchange(&record.source),
            self.exchange(&record.destination),
        ) else {
            return;
        };
        let key = BindingKey {
            destination: dst.id,
            key: record.routing_key.clone(),
            arguments: ArgumentsKey::new(&record.arguments),
        };
        self.destinations
            .entry(dst.id)
            .or_insert_with(|| Destination::Exchange(Arc::clone(&dst)));
        self.e2e_used.store(true, Ordering::Relaxed);
        if let Ok(true) = src.bind(key.clone()) {
            self.topology
                .lock()
                .inbound
                .entry(dst.id)
                .or_default()
                .push((src, key));
        }
    }

    /// Removes an exchange-to-exchange binding. Removing one that does not exist, even
    /// between missing exchanges, is not an error (as in RabbitMQ).
    pub(crate) fn unbind_exchange(
        &self,
        destination: &str,
        source: &str,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> Result<()> {
        let mut topology = self.topology.lock();
        let src = match self.bindable_exchange(source) {
            Err(Error::ExchangeNotFound { .. }) => return Ok(()),
            other => other?,
        };
        let dst = match self.bindable_exchange(destination) {
            Err(Error::ExchangeNotFound { .. }) => return Ok(()),
            other => other?,
        };
        let key = BindingKey {
            destination: dst.id,
            key: routing_key.to_owned(),
            arguments: ArgumentsKey::new(arguments),
        };
        let mut ticket = None;
        if src.unbind(&key) {
            if src.durable && dst.durable {
                let record = self.binding_record(&src, (&dst.name, true), &key);
                ticket = self.submit_topology(&mut topology, || StoreOp::DeleteBinding(record));
            }
            if let Some(list) = topology.inbound.get_mut(&dst.id) {
                list.retain(|(s, k)| !(Arc::ptr_eq(s, &src) && *k == key));
            }
            self.auto_delete_exchange(&mut topology, &src);
        }
        drop(topology);
        super::settle(ticket)
    }

    /// Unbinds an exchange that is going away from every exchange that routes to it.
    pub(super) fn unbind_destination_exchange(
        &self,
        topology: &mut super::Topology,
        exchange: &Exchange,
    ) {
        for (source, key) in topology.inbound.remove(&exchange.id).unwrap_or_default() {
            source.unbind(&key);
            self.auto_delete_exchange(topology, &source);
        }
    }

    /// Routes through exchange bindings and alternate exchanges; fills `out` with the
    /// distinct queues reached and, if asked, `visited` with the exchanges passed through.
    pub(super) fn route_graph(
        &self,
        source: &Exchange,
        input: RoutingInput<'_>,
        out: &mut Vec<DestinationId>,
        mut visited: Option<&mut Vec<String>>,
    ) {
        let mut seen = vec![source.id];
        let mut work: Vec<Arc<Exchange>> = Vec::new();
        let mut hop = Vec::new();
        let mut current: Option<Arc<Exchange>> = None;
        loop {
            let exchange: &Exchange = current.as_deref().unwrap_or(source);
            if let Some(v) = visited.as_deref_mut() {
                v.push(exchange.name.to_string());
            }
            hop.clear();
            exchange.route(input, &mut hop);
            if hop.is_empty() {
                if let Some(ae) = exchange.alternate() {
                    if let Some(ae) = self.exchanges.get(&*ae).map(|e| Arc::clone(&e)) {
                        if !seen.contains(&ae.id) {
                            seen.push(ae.id);
                            work.push(ae);
                        }
                    }
                }
            }
            for id in &hop {
                match self.destinations.get(id).map(|d| d.clone()) {
                    Some(Destination::Queue(_)) => out.push(*id),
                    Some(Destination::Exchange(next)) if !seen.contains(&next.id) => {
                        seen.push(next.id);
                        work.push(next);
                    }
                    _ => {}
                }
            }
            match work.pop() {
                Some(next) => current = Some(next),
                None => break,
            }
        }
        out.sort_unstable();
        out.dedup();
    }
}
