//! The broker's topology as a definitions file, in the shape RabbitMQ 3.10 writes.

use std::collections::HashSet;

use serde_json::{json, Map, Value};

use super::json::table_to_json;
use super::model::{header, vhost_json, EMPTY_SECTIONS};
use crate::{Broker, HashingAlgorithm, Policy, QueueStats, Result, User};

/// The sections of one vhost: policies, queues, exchanges, bindings.
#[derive(Default)]
struct Sections {
    policies: Vec<Value>,
    queues: Vec<Value>,
    exchanges: Vec<Value>,
    bindings: Vec<Value>,
}

/// The whole broker: every vhost, with `vhost` keys in the entries.
pub(super) fn broker(broker: &Broker) -> Value {
    let mut all = Sections::default();
    let mut vhosts = Vec::new();
    for vhost in broker.vhosts() {
        // A vhost deleted meanwhile is left out.
        if let Ok(sections) = of_vhost(broker, &vhost, true) {
            vhosts.push(vhost_json(&vhost));
            all.policies.extend(sections.policies);
            all.queues.extend(sections.queues);
            all.exchanges.extend(sections.exchanges);
            all.bindings.extend(sections.bindings);
        }
    }
    let users = broker.users().iter().map(user_json).collect();
    let permissions = broker
        .permissions()
        .into_iter()
        .map(|p| {
            json!({
                "user": p.user,
                "vhost": p.vhost,
                "configure": p.permissions.configure,
                "write": p.permissions.write,
                "read": p.permissions.read,
            })
        })
        .collect();
    let mut top = header();
    top.insert("users".into(), Value::Array(users));
    top.insert("vhosts".into(), Value::Array(vhosts));
    top.insert("permissions".into(), Value::Array(permissions));
    for section in EMPTY_SECTIONS {
        top.insert((*section).into(), json!([]));
    }
    put(&mut top, all);
    Value::Object(top)
}

/// A user as RabbitMQ 3.10 writes it: an empty `password_hash` for one without a password.
fn user_json(u: &User) -> Value {
    let (hash, algorithm) = match &u.password_hash {
        Some(hash) => (hash.to_base64(), hash.algorithm()),
        None => (String::new(), HashingAlgorithm::default()),
    };
    json!({
        "name": u.name,
        "password_hash": hash,
        "hashing_algorithm": algorithm.name(),
        "tags": u.tags,
        "limits": {},
    })
}

/// One vhost, without `vhost` keys (the management API's `/api/definitions/{vhost}`).
pub(super) fn vhost(broker: &Broker, vhost: &str) -> Result<Value> {
    let sections = of_vhost(broker, vhost, false)?;
    let mut top = header();
    top.insert("parameters".into(), json!([]));
    put(&mut top, sections);
    Ok(Value::Object(top))
}

fn put(top: &mut Map<String, Value>, sections: Sections) {
    top.insert("policies".into(), Value::Array(sections.policies));
    top.insert("queues".into(), Value::Array(sections.queues));
    top.insert("exchanges".into(), Value::Array(sections.exchanges));
    top.insert("bindings".into(), Value::Array(sections.bindings));
}

/// The entries of one vhost; with `named`, each has its `vhost` key.
fn of_vhost(broker: &Broker, vhost: &str, named: bool) -> Result<Sections> {
    let entry = |mut value: Value| {
        if named {
            if let Value::Object(map) = &mut value {
                map.insert("vhost".into(), vhost.into());
            }
        }
        value
    };
    let mut sections = Sections::default();
    for p in broker.list_policies(vhost)? {
        sections.policies.push(entry(policy_json(&p)));
    }
    let queues = broker.list_queues(vhost)?;
    let exclusive: HashSet<&str> = queues
        .iter()
        .filter(|q| q.exclusive)
        .map(|q| q.name.as_str())
        .collect();
    for q in queues.iter().filter(|q| !q.exclusive) {
        sections.queues.push(entry(queue(q)));
    }
    for x in broker.list_exchanges(vhost)? {
        if x.name.is_empty() || x.name.starts_with("amq.") {
            continue;
        }
        sections.exchanges.push(entry(json!({
            "name": x.name,
            "type": x.kind.as_str(),
            "durable": x.durable,
            "auto_delete": x.auto_delete,
            "internal": x.internal,
            "arguments": table_to_json(&x.arguments),
        })));
    }
    for b in broker.list_bindings(vhost)? {
        let kind = b.destination_kind.as_str();
        if kind == "queue" && exclusive.contains(b.destination.as_str()) {
            continue;
        }
        sections.bindings.push(entry(json!({
            "source": b.source,
            "destination": b.destination,
            "destination_type": kind,
            "routing_key": b.routing_key,
            "arguments": table_to_json(&b.arguments),
        })));
    }
    Ok(sections)
}

/// A policy as RabbitMQ writes it (without its vhost), in definitions and in the
/// management API's `/api/policies`.
pub(crate) fn policy_json(p: &Policy) -> Value {
    json!({
        "name": p.name,
        "pattern": p.pattern,
        "apply-to": p.apply_to.as_str(),
        "definition": table_to_json(&p.definition),
        "priority": p.priority,
    })
}

fn queue(q: &QueueStats) -> Value {
    let kind = match q.arguments.get("x-queue-type").and_then(|t| t.as_str()) {
        Some("quorum") => "quorum",
        _ => "classic",
    };
    json!({
        "name": q.name,
        "durable": q.durable,
        "auto_delete": q.auto_delete,
        "arguments": table_to_json(&q.arguments),
        "type": kind,
    })
}
