//! Undoing an import: putting the broker back as its own definitions (`mine`, exported before
//! the import) describe it, after an import (`defs`) was applied in full or in part.
//!
//! What the import added is deleted, in the reverse of RabbitMQ's order (bindings,
//! exchanges, queues, policies, permissions, vhosts, users); what it replaced (users,
//! permissions, policies of the same name) is applied again from `mine`. Queues and
//! exchanges that existed are never touched by an import (it keeps them as they are), so
//! they need nothing. Every step is tried, whatever the others do.

use std::collections::HashSet;

use super::apply::{apply, OnError};
use super::model::{BindingDef, Definitions};
use crate::{Broker, QueueDeleteOptions};

/// Undoes what applying `defs` to a broker whose definitions were `mine` may have done.
pub(super) fn undo(broker: &Broker, mine: &Definitions, defs: &Definitions) {
    let bindings: HashSet<String> = mine.bindings.iter().map(binding_key).collect();
    for b in defs.bindings.iter().rev() {
        if bindings.contains(&binding_key(b)) {
            continue;
        }
        let _ = with_channel(broker, &b.vhost, |ch| {
            let arguments = super::json::table_from_json(&b.arguments);
            if b.destination_type == "exchange" {
                ch.exchange_unbind(&b.destination, &b.source, &b.routing_key, arguments)
            } else {
                ch.queue_unbind(&b.destination, &b.source, &b.routing_key, arguments)
            }
        });
    }
    let exchanges: HashSet<(&str, &str)> = mine
        .exchanges
        .iter()
        .map(|x| (x.vhost.as_str(), x.name.as_str()))
        .collect();
    for x in defs.exchanges.iter().rev() {
        if !exchanges.contains(&(x.vhost.as_str(), x.name.as_str())) {
            let _ = with_channel(broker, &x.vhost, |ch| {
                ch.exchange_delete(&x.name, crate::ExchangeDeleteOptions::default())
            });
        }
    }
    let queues: HashSet<(&str, &str)> = mine
        .queues
        .iter()
        .map(|q| (q.vhost.as_str(), q.name.as_str()))
        .collect();
    for q in defs.queues.iter().rev() {
        if !queues.contains(&(q.vhost.as_str(), q.name.as_str())) {
            let _ = with_channel(broker, &q.vhost, |ch| {
                ch.queue_delete(&q.name, QueueDeleteOptions::default())
                    .map(drop)
            });
        }
    }
    let policies: HashSet<(&str, &str)> = mine
        .policies
        .iter()
        .map(|p| (p.vhost.as_str(), p.name.as_str()))
        .collect();
    for p in defs.policies.iter().rev() {
        if !policies.contains(&(p.vhost.as_str(), p.name.as_str())) {
            let _ = broker.clear_policy(&p.vhost, &p.name);
        }
    }
    let permissions: HashSet<(&str, &str)> = mine
        .permissions
        .iter()
        .map(|p| (p.user.as_str(), p.vhost.as_str()))
        .collect();
    for p in defs.permissions.iter().rev() {
        if !permissions.contains(&(p.user.as_str(), p.vhost.as_str())) {
            let _ = broker.clear_permissions(&p.user, &p.vhost);
        }
    }
    let vhosts: HashSet<&str> = mine.vhosts.iter().map(|v| v.name.as_str()).collect();
    for v in defs.vhosts.iter().rev() {
        if !vhosts.contains(v.name.as_str()) {
            let _ = broker.delete_vhost(&v.name);
        }
    }
    let users: HashSet<&str> = mine.users.iter().map(|u| u.name.as_str()).collect();
    for u in defs.users.iter().rev() {
        if !users.contains(u.name.as_str()) {
            let _ = broker.delete_user(&u.name);
        }
    }
    // What the import replaced, as it was.
    let replaced = |user: &str| defs.users.iter().any(|u| u.name == user);
    let restore = Definitions {
        users: mine
            .users
            .iter()
            .filter(|u| replaced(&u.name))
            .cloned()
            .collect(),
        permissions: mine
            .permissions
            .iter()
            .filter(|p| {
                defs.permissions
                    .iter()
                    .any(|d| d.user == p.user && d.vhost == p.vhost)
            })
            .cloned()
            .collect(),
        policies: mine
            .policies
            .iter()
            .filter(|p| {
                defs.policies
                    .iter()
                    .any(|d| d.vhost == p.vhost && d.name == p.name)
            })
            .cloned()
            .collect(),
        ..Definitions::default()
    };
    let _ = apply(broker, &restore, OnError::Skip);
}

/// A binding's identity: every field, arguments included.
fn binding_key(b: &BindingDef) -> String {
    format!(
        "{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}",
        b.vhost,
        b.source,
        b.destination,
        b.destination_type,
        b.routing_key,
        serde_json::Value::Object(b.arguments.clone())
    )
}

/// Runs `op` on a fresh channel of `vhost`.
fn with_channel<T>(
    broker: &Broker,
    vhost: &str,
    op: impl FnOnce(&crate::Channel) -> crate::Result<T>,
) -> crate::Result<T> {
    let connection = broker.connect(vhost)?;
    let result = op(&connection.open_channel()?);
    connection.close();
    result
}
