//! Delayed messages: the `x-delayed-message` exchange kind of RabbitMQ's delayed-message
//! plugin.
//!
//! An `x-delayed-message` exchange routes as the kind its `x-delayed-type` argument names. A
//! message published to it with an integer `x-delay` header of 1 to 2³²−1 milliseconds
//! (a string or float is converted, as the plugin does) is not routed: it waits in the
//! vhost's schedule until the broker's clock reaches its due time, then it is routed through
//! the exchange's bindings *at that moment*, with `x-delay` rewritten to `-delay`. Any other
//! message is routed at once. Because a delayed message reaches no queue when it is
//! published, a `mandatory` one is returned at once (the plugin does not support the flag).
//!
//! Due messages leave the schedule in due-time order, ties in publish order, from the vhost's
//! timer sweep: synchronously when a [`ManualClock`](crate::ManualClock) is advanced, every
//! 20 ms otherwise.
//!
//! # Durability
//!
//! A persistent message (`delivery_mode = 2`) delayed by a durable exchange of a persistent
//! broker is stored before it is confirmed, and comes back after a restart. It is kept as a
//! queue entry of a hidden queue of the vhost, [`DELAYED_QUEUE`], whose entries carry their
//! due time where other messages carry an expiry; the name is reserved (`amq.`), so no client
//! can declare it, and the broker never shows it as a queue. When a message is released, its
//! new queue entries are written before the hidden entry is removed: a crash in between
//! delivers it twice rather than never.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::publish::Published;
use super::VHost;
use crate::envelope::Envelope;
use crate::exchange::Exchange;
use crate::routing::Router;
use crate::store::{MessageRecord, QueueKey, QueueRecord, StoreOp};
use crate::sync::Mutex;
use crate::{Error, ExchangeKind, FieldTable, FieldValue, Message, Result};

/// The hidden queue that holds a vhost's stored delayed messages.
pub(crate) const DELAYED_QUEUE: &str = "amq.warren.delayed-messages";

/// The longest delay the plugin accepts: an Erlang timer's limit, 2³²−1 ms.
const MAX_DELAY_MS: u64 = u32::MAX as u64;

/// The plugin's text for a missing or non-string `x-delayed-type`, typos included.
const BAD_DELAYED_TYPE: &str =
    "Invalid argument, 'x-delayed-type' must bean existing exchnage type";

/// One message waiting for its due time.
#[derive(Debug)]
struct Delayed {
    /// The exchange it was published to, looked up again when it is due.
    exchange: Arc<str>,
    /// Its routing key.
    routing_key: Arc<str>,
    /// The message as published.
    message: Message,
    /// The delay it asked for, in milliseconds (for the rewritten `x-delay` header).
    delay: u64,
    /// Stored as an entry of the hidden queue at this position.
    stored: bool,
}

/// A vhost's delayed messages by (due time, position).
#[derive(Debug, Default)]
pub(super) struct Schedule {
    /// The waiting messages, in release order.
    waiting: BTreeMap<(u64, u64), Delayed>,
    /// The position of the next message (also its entry position in the hidden queue).
    next_seq: u64,
    /// The hidden queue's record is in the store.
    queue_stored: bool,
    /// Recovery is rebuilding the vhost: release nothing until its bindings are back.
    paused: bool,
}

/// The lock over a vhost's schedule.
pub(super) type DelayedMessages = Mutex<Schedule>;

/// Reads a message's `x-delay` header as the plugin does: the delay in milliseconds, or
/// `None` when the message is not to be delayed (no header, not a number, zero, negative or
/// over 2³²−1).
fn delay_of(message: &Message) -> Option<u64> {
    let value = message.properties().headers.as_ref()?.get("x-delay")?;
    let delay = match value {
        FieldValue::F32(f) => f.trunc() as i64,
        FieldValue::F64(f) => f.trunc() as i64,
        FieldValue::String(_) | FieldValue::Bytes(_) => value.as_str()?.parse().ok()?,
        FieldValue::Timestamp(_) => return None,
        other => other.as_i64()?,
    };
    u64::try_from(delay)
        .ok()
        .filter(|d| (1..=MAX_DELAY_MS).contains(d))
}

/// The message as it is routed when its delay ends: `x-delay` becomes `-delay`.
fn released(mut message: Message, delay: u64) -> Message {
    let negative = -i64::try_from(delay).unwrap_or(i64::MAX);
    let value = i32::try_from(negative).map_or(FieldValue::I64(negative), FieldValue::I32);
    if let Some(headers) = message.properties_mut().headers.as_mut() {
        headers.insert("x-delay", value);
    }
    message
}

impl VHost {
    /// Creates the router of a new exchange: its kind's, or for `x-delayed-message` the kind
    /// named by `x-delayed-type`.
    ///
    /// # Errors
    ///
    /// 503 for an unknown kind (also as `x-delayed-type`); 406 with the plugin's text for a
    /// delayed exchange without a usable `x-delayed-type`.
    pub(super) fn exchange_router(
        &self,
        kind: &ExchangeKind,
        arguments: &FieldTable,
    ) -> Result<Box<dyn Router>> {
        let routing_kind = if *kind == ExchangeKind::DelayedMessage {
            let name = arguments
                .get("x-delayed-type")
                .and_then(FieldValue::as_str)
                .filter(|name| *name != kind.as_str())
                .ok_or_else(|| Error::precondition(BAD_DELAYED_TYPE))?;
            ExchangeKind::from_name(name)
        } else {
            kind.clone()
        };
        self.settings.router_for(&routing_kind).ok_or_else(|| {
            let name = routing_kind.as_str();
            let adjective = if name.is_empty() {
                "invalid"
            } else {
                "unknown"
            };
            Error::CommandInvalid {
                reason: format!("{adjective} exchange type '{name}'"),
            }
        })
    }

    /// Holds `message` if `source` delays it; otherwise hands it back to be routed now.
    pub(super) fn try_delay(
        &self,
        source: &Exchange,
        routing_key: &str,
        message: Message,
        mandatory: bool,
    ) -> std::result::Result<Published, Message> {
        let Some(delay) = source.delayed.then(|| delay_of(&message)).flatten() else {
            return Err(message);
        };
        // Routed nowhere now: a mandatory message comes back at once (and is still delivered
        // when due), as with the plugin. The exchange counts the others when they are routed.
        let returned = mandatory.then(|| message.clone());
        if returned.is_some() {
            source.counters.returned.fetch_add(1, Ordering::Relaxed);
        }
        let due = self.settings.clock.now_millis().saturating_add(delay);
        let store = &self.settings.store;
        let stores =
            source.durable && message.properties().is_persistent() && store.is_persistent();
        let mut schedule = self.delayed.lock();
        let seq = schedule.next_seq;
        schedule.next_seq += 1;
        let durable = stores.then(|| {
            if !schedule.queue_stored {
                schedule.queue_stored = true;
                drop(store.submit(StoreOp::PutQueue(self.delayed_queue_record())));
            }
            let record = MessageRecord {
                exchange: (*source.name).into(),
                routing_key: routing_key.into(),
                properties: message.properties().clone(),
                body: message.body().clone(),
                expires_at_ms: Some(due),
            };
            store.submit(StoreOp::Enqueue {
                id: store.next_message_id(),
                message: record,
                entries: vec![self.delayed_key().entry(seq)],
            })
        });
        let delayed = Delayed {
            exchange: Arc::clone(&source.name),
            routing_key: routing_key.into(),
            message,
            delay,
            stored: stores,
        };
        schedule.waiting.insert((due, seq), delayed);
        drop(schedule);
        self.ensure_timers();
        Ok(Published {
            returned,
            durable,
            ..Published::default()
        })
    }

    /// Routes every delayed message whose due time has come, in due order.
    pub(super) fn release_delayed(&self) {
        let now = self.settings.clock.now_millis();
        let due: Vec<(u64, Delayed)> = {
            let mut schedule = self.delayed.lock();
            if schedule.paused {
                return;
            }
            let later = schedule.waiting.split_off(&(now.saturating_add(1), 0));
            std::mem::replace(&mut schedule.waiting, later)
                .into_iter()
                .map(|((_, seq), delayed)| (seq, delayed))
                .collect()
        };
        for (seq, delayed) in due {
            self.route_delayed(seq, delayed);
        }
    }

    /// Routes one due message through its exchange's current bindings, then forgets its
    /// stored copy.
    fn route_delayed(&self, seq: u64, delayed: Delayed) {
        if let Some(source) = self
            .exchanges
            .get(&*delayed.exchange)
            .map(|e| Arc::clone(&e))
        {
            let message = released(delayed.message, delayed.delay);
            let headers = message.properties().headers.as_ref();
            let queues = self.target_queues(&source, &delayed.routing_key, headers);
            let weight = Envelope::weight(&message, &source.name, &delayed.routing_key);
            let envelope = Envelope {
                message,
                exchange: source.name.as_ref().into(),
                routing_key: delayed.routing_key.as_ref().into(),
                _charge: self.settings.alarms.charge(weight),
            };
            let published = self.enqueue(envelope, &queues);
            let counter = if published.queues > 0 {
                &source.counters.routed
            } else {
                &source.counters.unroutable
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        if delayed.stored {
            self.settings
                .store
                .submit_untracked(StoreOp::Remove(self.delayed_key().entry(seq)));
        }
    }

    /// The store key of the hidden queue.
    fn delayed_key(&self) -> QueueKey {
        QueueKey::new(Arc::clone(&self.name), DELAYED_QUEUE)
    }

    /// The record of the hidden queue.
    fn delayed_queue_record(&self) -> QueueRecord {
        QueueRecord {
            vhost: self.name.to_string(),
            name: DELAYED_QUEUE.to_owned(),
            durable: true,
            auto_delete: false,
            exclusive: false,
            arguments: FieldTable::new(),
        }
    }

    /// Returns the number of messages `exchange` holds until their delay ends.
    pub(super) fn delayed_count(&self, exchange: &Exchange) -> usize {
        if !exchange.delayed {
            return 0;
        }
        let schedule = self.delayed.lock();
        schedule
            .waiting
            .values()
            .filter(|d| d.exchange == exchange.name)
            .count()
    }
}

#[cfg(feature = "persistence")]
impl VHost {
    /// Puts back the stored delayed messages at open. Nothing is released before
    /// [`finish_recovery`](Self::finish_recovery): the bindings are not back yet.
    pub(super) fn recover_delayed(&self, recovered: &crate::store::RecoveredQueue) {
        let mut schedule = self.delayed.lock();
        schedule.paused = true;
        schedule.queue_stored = true;
        schedule.next_seq = recovered.next_seq();
        for m in &recovered.messages {
            let record = &m.message;
            let message = Message::with_properties(record.body.clone(), record.properties.clone());
            let delay = delay_of(&message).unwrap_or(0);
            let due = record.expires_at_ms.unwrap_or(0);
            schedule.waiting.insert(
                (due, m.seq),
                Delayed {
                    exchange: record.exchange.as_str().into(),
                    routing_key: record.routing_key.as_str().into(),
                    message,
                    delay,
                    stored: true,
                },
            );
        }
    }

    /// Ends recovery: delayed messages may now be released.
    pub(crate) fn finish_recovery(&self) {
        let waiting = {
            let mut schedule = self.delayed.lock();
            schedule.paused = false;
            !schedule.waiting.is_empty()
        };
        if waiting {
            self.ensure_timers();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_delay(value: impl Into<FieldValue>) -> Message {
        Message::new("m").header("x-delay", value)
    }

    #[test]
    fn delays_are_read_as_the_plugin_reads_them() {
        assert_eq!(delay_of(&with_delay(1500)), Some(1500));
        assert_eq!(delay_of(&with_delay(1500i64)), Some(1500));
        assert_eq!(delay_of(&with_delay(7u8)), Some(7));
        assert_eq!(delay_of(&with_delay("250")), Some(250));
        assert_eq!(delay_of(&with_delay(2.9f64)), Some(2));
        assert_eq!(delay_of(&with_delay(0)), None);
        assert_eq!(delay_of(&with_delay(-5)), None);
        assert_eq!(delay_of(&with_delay("soon")), None);
        assert_eq!(
            delay_of(&with_delay(u64::from(u32::MAX) as i64)),
            Some(MAX_DELAY_MS)
        );
        assert_eq!(delay_of(&with_delay(i64::from(u32::MAX) + 1)), None);
        assert_eq!(delay_of(&Message::new("no headers")), None);
    }

    #[test]
    fn a_released_message_carries_the_negative_delay() {
        let m = released(with_delay(1500), 1500);
        let headers = m.properties().headers.as_ref().unwrap();
        assert_eq!(headers.get("x-delay"), Some(&FieldValue::I32(-1500)));
        let m = released(with_delay("4294967295"), MAX_DELAY_MS);
        let headers = m.properties().headers.as_ref().unwrap();
        assert_eq!(
            headers.get("x-delay"),
            Some(&FieldValue::I64(-4_294_967_295))
        );
    }
}
