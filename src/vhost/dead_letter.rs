//! Dead-lettering: republishing a queue's dead messages to its dead-letter exchange with
//! RabbitMQ's `x-death` headers.
//!
//! # Headers
//!
//! A dead-lettered message keeps its body and properties (a persistent message stays
//! persistent), loses its `expiration` and `CC` header, and gets:
//! - `x-death`: an array of tables, most recent first, one per (queue, reason, exchange):
//!   `count` (long), `reason` (`rejected`, `expired`, `maxlen`), `queue`, `time` (timestamp,
//!   seconds), `exchange` (where the message was published before it died), `routing-keys`
//!   (its routing key followed by its `CC` keys) and, if it had one, `original-expiration`.
//!   Dying again in the same queue for the same reason (from the same exchange) increments
//!   that entry's `count` and moves it to the front; its other fields keep their first values.
//! - `x-first-death-exchange`, `x-first-death-queue`, `x-first-death-reason`: set at the
//!   first death and never changed.
//!
//! It is routed through the dead-letter exchange with `x-dead-letter-routing-key` if the
//! queue has one, otherwise with its original routing keys (including `CC`), and arrives
//! with `redelivered = false`. A dead-letter exchange that does not exist drops the message.
//! The dead-letter exchange counts the message as routed or unroutable (and so published).
//!
//! # Cycles
//!
//! RabbitMQ's rule: a message dead-lettered for a reason other than `rejected` is not
//! delivered to a queue it already died in, unless a `rejected` death happened since (a
//! rejection is a client's decision, so it cannot loop by itself). Such a cycle drops the
//! message for that queue, so expiry and length-limit loops always end.

use std::sync::atomic::Ordering;

use super::{Destination, VHost};
use crate::envelope::Envelope;
use crate::queue::{DeadLetter, Reason};
use crate::{FieldTable, FieldValue, Message};

impl VHost {
    /// Dead-letters messages that died in `queue` through `exchange`.
    pub(crate) fn dead_letter(
        &self,
        queue: &str,
        exchange: &str,
        routing_key: Option<&str>,
        dead: Vec<DeadLetter>,
    ) {
        let Ok(dlx) = self.exchange(exchange) else {
            return;
        };
        let now_secs = self.settings.clock.now_millis() / 1000;
        for letter in dead {
            let envelope = &letter.msg.envelope;
            let (message, keys) = stamp(
                &envelope.message,
                &envelope.exchange,
                &envelope.routing_key,
                queue,
                letter.reason,
                now_secs,
            );
            let mut ids = Vec::new();
            let headers = message.properties().headers.as_ref();
            match routing_key {
                Some(key) => self.route(&dlx, key, headers, &mut ids),
                None => {
                    for key in &keys {
                        self.route(&dlx, key, headers, &mut ids);
                    }
                    ids.sort_unstable();
                    ids.dedup();
                }
            }
            let deaths = x_deaths(&message).to_vec();
            let routing_key = routing_key.unwrap_or(&envelope.routing_key);
            let weight = Envelope::weight(&message, &dlx.name, routing_key);
            let envelope = Envelope {
                message,
                exchange: dlx.name.as_ref().into(),
                routing_key: routing_key.into(),
                _charge: self.settings.alarms.charge(weight),
            };
            let targets: Vec<_> = ids
                .iter()
                .filter_map(|id| match self.destinations.get(id).map(|d| d.clone()) {
                    Some(Destination::Queue(target)) => Some(target),
                    _ => None,
                })
                .filter(|t| letter.reason == Reason::Rejected || !is_cycle(&deaths, &t.name))
                .collect();
            // Through the common path, so that a persistent message stays stored.
            let delivered = self.enqueue(envelope, &targets).queues > 0;
            let counters = &dlx.counters;
            let outcome = if delivered {
                &counters.routed
            } else {
                &counters.unroutable
            };
            outcome.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Returns the `x-death` entries of a message.
fn x_deaths(message: &Message) -> &[FieldValue] {
    message
        .properties()
        .headers
        .as_ref()
        .and_then(|h| h.get("x-death"))
        .and_then(FieldValue::as_array)
        .unwrap_or(&[])
}

fn text<'a>(entry: &'a FieldValue, key: &str) -> Option<&'a str> {
    entry.as_table()?.get(key)?.as_str()
}

/// Returns the message as dead-lettered from `queue`, with its routing keys (the original
/// key, then the `CC` keys).
fn stamp(
    message: &Message,
    exchange: &str,
    routing_key: &str,
    queue: &str,
    reason: Reason,
    now_secs: u64,
) -> (Message, Vec<String>) {
    let mut properties = message.properties().clone();
    let mut headers = properties.headers.take().unwrap_or_default();
    let mut keys = vec![routing_key.to_owned()];
    if let Some(cc) = headers.remove("CC") {
        let cc = cc.as_array().unwrap_or(&[]);
        keys.extend(cc.iter().filter_map(FieldValue::as_str).map(str::to_owned));
    }
    let mut deaths: Vec<FieldValue> = headers
        .get("x-death")
        .and_then(FieldValue::as_array)
        .map(<[FieldValue]>::to_vec)
        .unwrap_or_default();
    let same = |d: &FieldValue| {
        text(d, "queue") == Some(queue)
            && text(d, "reason") == Some(reason.as_str())
            && text(d, "exchange") == Some(exchange)
    };
    let entry = match deaths.iter().position(same) {
        Some(at) => {
            let mut entry = deaths.remove(at).as_table().cloned().unwrap_or_default();
            let count = entry.get("count").and_then(FieldValue::as_i64).unwrap_or(0);
            entry.insert("count", FieldValue::I64(count + 1));
            entry
        }
        None => {
            let routing_keys = keys.iter().cloned().map(FieldValue::String).collect();
            let mut entry = FieldTable::new()
                .with("count", FieldValue::I64(1))
                .with("reason", reason.as_str())
                .with("queue", queue)
                .with("time", FieldValue::Timestamp(now_secs))
                .with("exchange", exchange)
                .with("routing-keys", FieldValue::Array(routing_keys));
            if let Some(expiration) = &properties.expiration {
                entry.insert("original-expiration", expiration.as_str());
            }
            entry
        }
    };
    properties.expiration = None;
    deaths.insert(0, FieldValue::Table(entry));
    headers.insert("x-death", FieldValue::Array(deaths));
    for (key, value) in [
        ("x-first-death-exchange", exchange),
        ("x-first-death-queue", queue),
        ("x-first-death-reason", reason.as_str()),
    ] {
        if !headers.contains_key(key) {
            headers.insert(key, value);
        }
    }
    properties.headers = Some(headers);
    (
        Message::with_properties(message.body().clone(), properties),
        keys,
    )
}

/// RabbitMQ's cycle rule: `queue` appears in the deaths (most recent first) with no
/// `rejected` death up to and including that entry.
fn is_cycle(deaths: &[FieldValue], queue: &str) -> bool {
    for death in deaths {
        if text(death, "reason") == Some("rejected") {
            return false;
        }
        if text(death, "queue") == Some(queue) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_death_counts_and_new_death_is_prepended() {
        let m = Message::new("x").header("CC", FieldValue::Array(vec!["c1".into()]));
        let (m, keys) = stamp(&m, "", "work", "work", Reason::Rejected, 7);
        assert_eq!(keys, ["work", "c1"]);
        assert!(m.properties().headers.as_ref().unwrap().get("CC").is_none());
        let (m, _) = stamp(&m, "", "work", "work", Reason::Rejected, 9);
        let (m, _) = stamp(&m, "", "work2", "work2", Reason::Expired, 9);
        let deaths = x_deaths(&m);
        assert_eq!(deaths.len(), 2);
        assert_eq!(text(&deaths[0], "queue"), Some("work2"));
        let old = deaths[1].as_table().unwrap();
        assert_eq!(old.get("count"), Some(&FieldValue::I64(2)));
        assert_eq!(old.get("time"), Some(&FieldValue::Timestamp(7)));
        assert!(!is_cycle(deaths, "work"), "a rejection breaks the cycle");
        assert!(is_cycle(deaths, "work2"));
    }
}
