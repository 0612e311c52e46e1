//! Rebuilding a vhost's durable exchanges, queues (with their messages) and bindings from
//! the store when a persistent broker opens.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::Arc;

use super::delayed::DELAYED_QUEUE;
use super::{Destination, VHost};
use crate::envelope::{Envelope, Holding, QueuedMessage};
use crate::exchange::{ArgumentsKey, BindingKey, Exchange, ExchangeSpec};
use crate::message::SharedProperties;
use crate::queue::PAGE;
use crate::queue::{Queue, QueueConfig};
use crate::store::{
    BindingRecord, ExchangeRecord, MessageSource, RecoveredMessage, RecoveredQueue,
};
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

    /// Rebuilds a durable queue and its messages, streamed from `source`, at open. Messages
    /// stored in several queues share one envelope through `envelopes`. A pageable queue
    /// keeps its first page in memory and the rest on disk only (index entries), read back
    /// as consumers drain it.
    pub(crate) fn recover_queue(
        self: &Arc<Self>,
        recovered: &RecoveredQueue,
        source: Option<&mut (dyn MessageSource + 'static)>,
        envelopes: &mut HashMap<u64, Arc<Envelope>>,
        properties: &mut SharedProperties,
    ) -> Result<()> {
        let record = &recovered.record;
        if record.name == DELAYED_QUEUE {
            let mut delayed = RecoveredQueue {
                record: record.clone(),
                messages: Vec::new(),
            };
            if let Some(source) = source {
                source.stream(record, &mut |m| delayed.messages.push(m))?;
            }
            self.recover_delayed(&delayed);
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
            .with_features(config, &self.settings)
            .with_paging(&self.settings.budget),
        );
        let mut next_seq = 0;
        let mut resident = 0;
        let mut each = |m: RecoveredMessage| {
            next_seq = m.seq.saturating_add(1);
            let expires_at = m.message.expires_at_ms.and_then(NonZeroU64::new);
            if queue.is_pageable() && resident >= PAGE && expires_at.is_none() {
                return queue.recover_stored(m.seq, m.id, m.redelivered);
            }
            resident += 1;
            // The store shares one record between the queues that hold a message: only
            // such messages need their envelope remembered for the other queues.
            let envelope: Holding = if Arc::strong_count(&m.message) > 1 {
                envelopes
                    .entry(m.id.0)
                    .or_insert_with(|| {
                        Arc::new(Envelope::from_record(
                            &m.message,
                            properties,
                            Some(&self.settings.alarms),
                        ))
                    })
                    .clone()
                    .into()
            } else {
                Envelope::from_record(&m.message, properties, Some(&self.settings.alarms)).into()
            };
            let mut msg = QueuedMessage::new(m.seq, envelope, true);
            msg.redelivered = m.redelivered;
            msg.expires_at = expires_at;
            queue.recover(msg);
        };
        if let Some(source) = source {
            source.stream(record, &mut each)?;
        }
        queue.recovered(next_seq);
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
