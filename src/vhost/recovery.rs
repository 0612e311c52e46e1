//! Rebuilding a vhost's durable exchanges, queues (with their messages) and bindings from
//! the store when a persistent broker opens.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::Arc;

use super::delayed::DELAYED_QUEUE;
use super::{Destination, VHost};
use crate::envelope::{Envelope, QueuedMessage};
use crate::exchange::{ArgumentsKey, BindingKey, Exchange, ExchangeSpec};
use crate::message::SharedProperties;
use crate::queue::{Queue, QueueConfig};
use crate::store::{BindingRecord, ExchangeRecord, MessageRecord, RecoveredQueue};
use crate::{Error, ExchangeDeclareOptions, ExchangeKind, QueueDeclareOptions, Result};

impl VHost {
    /// Rebuilds a durable exchange from the store at open.
    pub(crate) fn recover_exchange(&self, record: &ExchangeRecord) -> Result<()> {
        let kind = ExchangeKind::from_name(&record.kind);
        let router = self
            .exchange_router(&kind, &record.arguments)
            .map_err(|e| Error::Internal {
                reason: format!(
                    "stored exchange '{}' in vhost '{}' cannot be rebuilt: {e}",
                    record.name, self.name
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
        envelopes: &mut HashMap<u64, Envelope>,
        properties: &mut SharedProperties,
    ) -> Result<()> {
        let record = &recovered.record;
        if record.name == DELAYED_QUEUE {
            self.recover_delayed(recovered);
            return Ok(());
        }
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
            .with_features(config, Arc::clone(&self.settings.clock)),
        );
        let msgs = recovered
            .messages
            .iter()
            .map(|m| {
                let mut envelope_of = |r: &MessageRecord| Envelope {
                    message: properties.message(r.body.clone(), &r.properties),
                    exchange: r.exchange.as_str().into(),
                    routing_key: r.routing_key.as_str().into(),
                };
                // The store shares one record between the queues that hold a message: only
                // such messages need their envelope remembered for the other queues.
                let envelope = if Arc::strong_count(&m.message) > 1 {
                    envelopes
                        .entry(m.id.0)
                        .or_insert_with(|| envelope_of(&m.message))
                        .clone()
                } else {
                    envelope_of(&m.message)
                };
                let mut msg = QueuedMessage::new(m.seq, envelope, true);
                msg.redelivered = m.redelivered;
                msg.expires_at = m.message.expires_at_ms.and_then(NonZeroU64::new);
                msg
            })
            .collect();
        queue.recover(msgs, recovered.next_seq());
        if queue.is_timed() {
            self.ensure_timers();
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
}
