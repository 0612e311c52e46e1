//! The JSON of queues, exchanges, bindings and vhosts, in the management plugin's shapes,
//! and the sample of every counter that rates are computed from.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::json::table_to_json;
use super::rates::{Rates, Sample, Subject};
use crate::{BindingInfo, Broker, ExchangeStats, FieldValue, QueueStats};

/// The counters of a queue's `message_stats`, by RabbitMQ's names.
const QUEUE_COUNTERS: [&str; 6] = [
    "publish",
    "deliver_get",
    "deliver",
    "get",
    "redeliver",
    "ack",
];

/// The counters of a vhost's or the broker's `message_stats`.
const TOTAL_COUNTERS: [&str; 9] = [
    "publish",
    "deliver_get",
    "deliver",
    "get",
    "redeliver",
    "ack",
    "return_unroutable",
    "drop_unroutable",
    "publish_out",
];

/// The gauges that get a `_details` rate.
const DEPTHS: [&str; 3] = ["messages", "messages_ready", "messages_unacknowledged"];

fn queue_counters(q: &QueueStats) -> HashMap<&'static str, u64> {
    HashMap::from([
        ("publish", q.messages_published),
        ("deliver_get", q.messages_delivered + q.messages_got),
        ("deliver", q.messages_delivered),
        ("get", q.messages_got),
        ("redeliver", q.messages_redelivered),
        ("ack", q.messages_acked),
        ("messages", q.messages() as u64),
        ("messages_ready", q.messages_ready as u64),
        ("messages_unacknowledged", q.messages_unacknowledged as u64),
    ])
}

fn exchange_counters(e: &ExchangeStats) -> HashMap<&'static str, u64> {
    HashMap::from([("publish_in", e.published), ("publish_out", e.routed)])
}

/// Adds `from` into `into`, counter by counter.
fn add(into: &mut HashMap<&'static str, u64>, from: &HashMap<&'static str, u64>) {
    for (k, v) in from {
        *into.entry(k).or_default() += v;
    }
}

/// The totals of one vhost: queue counters summed, publishes as exchanges counted them.
fn vhost_counters(
    queues: &[QueueStats],
    exchanges: &[ExchangeStats],
) -> HashMap<&'static str, u64> {
    let mut totals = HashMap::new();
    for q in queues {
        add(&mut totals, &queue_counters(q));
    }
    // What publishers sent: every publish is counted once by the exchange it went to.
    let sum = |f: fn(&ExchangeStats) -> u64| exchanges.iter().map(f).sum::<u64>();
    totals.insert("publish", sum(|e| e.published));
    totals.insert("publish_out", sum(|e| e.routed));
    totals.insert("return_unroutable", sum(|e| e.returned));
    totals.insert("drop_unroutable", sum(|e| e.unroutable));
    totals
}

/// Reads every counter of the broker.
pub(crate) fn sample(broker: &Broker) -> Sample {
    let mut sample = Sample::new();
    let mut broker_totals = HashMap::new();
    for vhost in broker.vhosts() {
        let queues = broker.list_queues(&vhost).unwrap_or_default();
        let exchanges = broker.list_exchanges(&vhost).unwrap_or_default();
        for q in &queues {
            sample.insert(
                Subject::Queue(vhost.clone(), q.name.clone()),
                queue_counters(q),
            );
        }
        for e in &exchanges {
            sample.insert(
                Subject::Exchange(vhost.clone(), e.name.clone()),
                exchange_counters(e),
            );
        }
        let totals = vhost_counters(&queues, &exchanges);
        add(&mut broker_totals, &totals);
        sample.insert(Subject::Vhost(vhost), totals);
    }
    sample.insert(Subject::Broker, broker_totals);
    sample
}

/// `{"rate": r}`.
fn details(rate: f64) -> Value {
    json!({ "rate": rate })
}

/// A `message_stats` object: each counter and its `_details`.
fn message_stats(
    rates: &Rates,
    subject: &Subject,
    counters: &HashMap<&'static str, u64>,
    names: &[&'static str],
) -> Value {
    let mut stats = Map::new();
    for name in names {
        let value = counters.get(name).copied().unwrap_or(0);
        stats.insert((*name).to_owned(), Value::from(value));
        stats.insert(
            format!("{name}_details"),
            details(rates.rate(subject, name)),
        );
    }
    Value::Object(stats)
}

/// Adds the depth gauges and their `_details` to `object`.
fn depths(
    object: &mut Map<String, Value>,
    rates: &Rates,
    subject: &Subject,
    c: &HashMap<&'static str, u64>,
) {
    for name in DEPTHS {
        object.insert(
            name.to_owned(),
            Value::from(c.get(name).copied().unwrap_or(0)),
        );
        object.insert(
            format!("{name}_details"),
            details(rates.rate(subject, name)),
        );
    }
}

/// One queue, as `GET /api/queues/{vhost}/{name}` shows it.
pub(crate) fn queue(rates: &Rates, node: &str, vhost: &str, q: &QueueStats) -> Value {
    let subject = Subject::Queue(vhost.to_owned(), q.name.clone());
    let counters = queue_counters(q);
    let kind = match q.arguments.get("x-queue-type").and_then(FieldValue::as_str) {
        Some("quorum") => "quorum",
        _ => "classic",
    };
    let mut object = Map::new();
    object.insert("name".into(), Value::from(q.name.clone()));
    object.insert("vhost".into(), Value::from(vhost));
    object.insert("type".into(), Value::from(kind));
    object.insert("node".into(), Value::from(node));
    object.insert("state".into(), Value::from("running"));
    object.insert("durable".into(), Value::from(q.durable));
    object.insert("auto_delete".into(), Value::from(q.auto_delete));
    object.insert("exclusive".into(), Value::from(q.exclusive));
    object.insert("arguments".into(), table_to_json(&q.arguments));
    object.insert("consumers".into(), Value::from(q.consumers));
    object.insert(
        "messages_paged_out".into(),
        Value::from(q.messages_paged_out),
    );
    object.insert("policy".into(), Value::Null);
    object.insert("effective_policy_definition".into(), json!({}));
    depths(&mut object, rates, &subject, &counters);
    object.insert(
        "message_stats".into(),
        message_stats(rates, &subject, &counters, &QUEUE_COUNTERS),
    );
    Value::Object(object)
}

/// One exchange; the default exchange is listed as `""` (and reached as `amq.default`).
pub(crate) fn exchange(rates: &Rates, user: &str, vhost: &str, e: &ExchangeStats) -> Value {
    let subject = Subject::Exchange(vhost.to_owned(), e.name.clone());
    json!({
        "name": e.name,
        "vhost": vhost,
        "type": e.kind.as_str(),
        "durable": e.durable,
        "auto_delete": e.auto_delete,
        "internal": e.internal,
        "arguments": table_to_json(&e.arguments),
        "user_who_performed_action": user,
        "message_stats": message_stats(rates, &subject, &exchange_counters(e), &["publish_in", "publish_out"]),
    })
}

/// The identity of a binding in URLs: the routing key, quoted, and a digest of the
/// arguments after `~` when there are any; `~` alone for an empty key without arguments.
pub(crate) fn properties_key(routing_key: &str, arguments: &crate::FieldTable) -> String {
    if arguments.is_empty() {
        return if routing_key.is_empty() {
            "~".to_owned()
        } else {
            quote(routing_key)
        };
    }
    // FNV-1a over the canonical JSON of the arguments: stable, and only compared with
    // itself.
    let canonical = table_to_json(arguments).to_string();
    let digest = canonical.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{}~{digest:016x}", quote(routing_key))
}

/// Percent-encodes all but letters, digits and `-_.`.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One binding.
pub(crate) fn binding(vhost: &str, b: &BindingInfo) -> Value {
    json!({
        "source": b.source,
        "vhost": vhost,
        "destination": b.destination,
        "destination_type": b.destination_kind.as_str(),
        "routing_key": b.routing_key,
        "arguments": table_to_json(&b.arguments),
        "properties_key": properties_key(&b.routing_key, &b.arguments),
    })
}

/// The default exchange's implicit binding of a queue.
pub(crate) fn default_binding(vhost: &str, queue: &str) -> Value {
    json!({
        "source": "",
        "vhost": vhost,
        "destination": queue,
        "destination_type": "queue",
        "routing_key": queue,
        "arguments": {},
        "properties_key": properties_key(queue, &crate::FieldTable::new()),
    })
}

/// Every binding of a vhost, the default exchange's first, as the plugin lists them.
pub(crate) fn bindings(broker: &Broker, vhost: &str) -> crate::Result<Vec<Value>> {
    let mut out: Vec<Value> = broker
        .list_queues(vhost)?
        .iter()
        .map(|q| default_binding(vhost, &q.name))
        .collect();
    out.extend(
        broker
            .list_bindings(vhost)?
            .iter()
            .map(|b| binding(vhost, b)),
    );
    Ok(out)
}

/// One vhost, with its message totals.
pub(crate) fn vhost(
    broker: &Broker,
    rates: &Rates,
    node: &str,
    name: &str,
) -> crate::Result<Value> {
    let queues = broker.list_queues(name)?;
    let exchanges = broker.list_exchanges(name)?;
    let subject = Subject::Vhost(name.to_owned());
    let counters = vhost_counters(&queues, &exchanges);
    let mut object = Map::new();
    object.insert("name".into(), Value::from(name));
    object.insert("description".into(), Value::from(""));
    object.insert("tags".into(), json!([]));
    object.insert("metadata".into(), json!({"description": "", "tags": []}));
    object.insert("tracing".into(), Value::from(false));
    object.insert("cluster_state".into(), json!({ node: "running" }));
    depths(&mut object, rates, &subject, &counters);
    object.insert(
        "message_stats".into(),
        message_stats(rates, &subject, &counters, &TOTAL_COUNTERS),
    );
    Ok(Value::Object(object))
}

/// The `message_stats` and `queue_totals` of the overview: of the whole broker, or of
/// `vhosts` only (what a user without the `monitoring` tag sees; `queue_totals` is `{}`
/// when that is no vhost at all, as RabbitMQ shows it).
pub(crate) fn totals(broker: &Broker, rates: &Rates, vhosts: Option<&[String]>) -> (Value, Value) {
    let (names, subject) = match vhosts {
        None => (broker.vhosts(), Subject::Broker),
        Some(v) => (v.to_vec(), Subject::Vhosts(v.to_vec())),
    };
    let mut counters = HashMap::new();
    for name in &names {
        let queues = broker.list_queues(name).unwrap_or_default();
        let exchanges = broker.list_exchanges(name).unwrap_or_default();
        add(&mut counters, &vhost_counters(&queues, &exchanges));
    }
    let mut queue_totals = Map::new();
    if !(vhosts.is_some() && names.is_empty()) {
        depths(&mut queue_totals, rates, &subject, &counters);
    }
    (
        message_stats(rates, &subject, &counters, &TOTAL_COUNTERS),
        Value::Object(queue_totals),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FieldTable;

    #[test]
    fn properties_keys_as_rabbitmq_writes_them() {
        assert_eq!(properties_key("", &FieldTable::new()), "~");
        assert_eq!(properties_key("a.#", &FieldTable::new()), "a.%23");
        let args = FieldTable::new().with("x-match", "all");
        let key = properties_key("k", &args);
        assert!(key.starts_with("k~"), "{key}");
        assert_eq!(key, properties_key("k", &args));
    }
}
