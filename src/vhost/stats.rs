//! Counters of a vhost's queues and exchanges.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::VHost;
use crate::exchange::Exchange;
use crate::queue::Queue;
use crate::{ExchangeStats, QueueStats, Result};

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
        messages_expired: queue.losses.expired.load(Ordering::Relaxed),
        messages_overflowed: queue.losses.overflowed.load(Ordering::Relaxed),
        messages_rejected: queue.losses.rejected.load(Ordering::Relaxed),
        publishes_refused: queue.losses.refused.load(Ordering::Relaxed),
        messages_paged_out: counts.paged_out,
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
        // Every publish ends in exactly one of these: the publish path keeps no counter of
        // its own for the total.
        published: routed + unroutable + returned,
        routed,
        unroutable,
        returned,
        bindings: exchange.binding_count(),
        messages_delayed,
        table_bytes: exchange.table_bytes(),
    }
}
