//! Counters of a vhost's queues and exchanges.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{Destination, VHost};
use crate::exchange::Exchange;
use crate::queue::Queue;
use crate::{BindingInfo, DestinationKind, ExchangeStats, QueueStats, Result};

impl VHost {
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
        Ok(exchange_stats(&exchange, self.delayed_count(&exchange)))
    }

    /// Returns the counters of every exchange, sorted by name.
    pub(crate) fn list_exchanges(&self) -> Vec<ExchangeStats> {
        let exchanges: Vec<Arc<Exchange>> = self.exchanges.iter().map(|e| Arc::clone(&e)).collect();
        let mut stats: Vec<ExchangeStats> = exchanges
            .iter()
            .map(|e| exchange_stats(e, self.delayed_count(e)))
            .collect();
        stats.sort_by(|a, b| a.name.cmp(&b.name));
        stats
    }

    /// Returns every explicit binding (not the default exchange's implicit ones), sorted by
    /// source, destination kind, destination and key.
    pub(crate) fn list_bindings(&self) -> Vec<BindingInfo> {
        let exchanges: Vec<Arc<Exchange>> = self.exchanges.iter().map(|e| Arc::clone(&e)).collect();
        let mut bindings = Vec::new();
        for exchange in &exchanges {
            for key in exchange.bindings() {
                let Some(destination) = self.destinations.get(&key.destination) else {
                    continue;
                };
                let (name, kind) = match &*destination {
                    Destination::Queue(q) => (q.name.to_string(), DestinationKind::Queue),
                    Destination::Exchange(e) => (e.name.to_string(), DestinationKind::Exchange),
                };
                bindings.push(BindingInfo {
                    source: exchange.name.to_string(),
                    destination: name,
                    destination_kind: kind,
                    routing_key: key.key.clone(),
                    arguments: key.arguments.table().clone(),
                });
            }
        }
        bindings.sort_by(|a, b| {
            (
                &a.source,
                a.destination_kind == DestinationKind::Queue,
                &a.destination,
                &a.routing_key,
            )
                .cmp(&(
                    &b.source,
                    b.destination_kind == DestinationKind::Queue,
                    &b.destination,
                    &b.routing_key,
                ))
        });
        bindings
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
        arguments: queue.arguments.clone(),
        messages_expired: queue.losses.expired.load(Ordering::Relaxed),
        messages_overflowed: queue.losses.overflowed.load(Ordering::Relaxed),
        messages_rejected: queue.losses.rejected.load(Ordering::Relaxed),
        publishes_refused: queue.losses.refused.load(Ordering::Relaxed),
        messages_paged_out: counts.paged_out,
        messages_published: counts.published,
        messages_delivered: counts.delivered,
        messages_redelivered: counts.redelivered,
        messages_got: counts.got,
        messages_acked: counts.acked,
        policy: queue.policy().map(|p| p.to_string()),
    }
}

fn exchange_stats(exchange: &Exchange, messages_delayed: usize) -> ExchangeStats {
    let c = &exchange.counters;
    let routed = c.routed.load(Ordering::Relaxed);
    let unroutable = c.unroutable.load(Ordering::Relaxed);
    let returned = c.returned.load(Ordering::Relaxed);
    ExchangeStats {
        name: exchange.name.to_string(),
        kind: exchange.kind.clone(),
        durable: exchange.durable,
        auto_delete: exchange.auto_delete,
        internal: exchange.internal,
        arguments: exchange.arguments.clone(),
        // Every publish ends in exactly one of these: the publish path keeps no counter of
        // its own for the total.
        published: routed + unroutable + returned,
        routed,
        unroutable,
        returned,
        bindings: exchange.binding_count(),
        messages_delayed,
        table_bytes: exchange.table_bytes(),
        policy: exchange.policy().map(|p| p.to_string()),
    }
}
