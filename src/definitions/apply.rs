//! Applying parsed definitions to a broker, in RabbitMQ's order: vhosts, policies, queues,
//! exchanges, bindings.

use std::collections::HashMap;

use super::json::table_from_json;
use super::model::{refused, BindingDef, Definitions, ExchangeDef, QueueDef, UserDef};
use super::DefinitionsReport;
use crate::{
    Broker, Channel, Connection, Error, ExchangeDeclareOptions, ExchangeKind, HashingAlgorithm,
    PasswordHash, Permissions, Policy, PolicyApplyTo, QueueDeclareOptions, Result,
};

/// What to do with an entry the broker refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum OnError {
    /// Stop and return the error, naming the entry.
    Fail,
    /// Go on (copying a broker's own topology onto a scratch broker).
    Skip,
}

/// One channel per vhost, opened as the import needs them and reopened after an error.
#[derive(Default)]
struct Channels(HashMap<String, (Connection, Channel)>);

impl Channels {
    /// Runs `op` on a channel of `vhost`; a channel the error closed is dropped.
    fn with<T>(
        &mut self,
        broker: &Broker,
        vhost: &str,
        op: impl FnOnce(&Channel) -> Result<T>,
    ) -> Result<T> {
        if !self.0.contains_key(vhost) {
            let connection = broker.connect(vhost)?;
            let channel = connection.open_channel()?;
            self.0.insert(vhost.to_owned(), (connection, channel));
        }
        let result = op(&self.0[vhost].1);
        if result.is_err() {
            if let Some((connection, _)) = self.0.remove(vhost) {
                connection.close();
            }
        }
        result
    }
}

impl Drop for Channels {
    fn drop(&mut self) {
        for (connection, _) in self.0.values() {
            connection.close();
        }
    }
}

/// Applies `defs` to `broker`, in RabbitMQ's order: users, vhosts, permissions, policies,
/// queues, exchanges, bindings. A user that exists is replaced (password and tags), as
/// RabbitMQ replaces it. Entities that exist already are redeclared; when the broker
/// refuses that (they differ), the existing one is kept with a warning, as RabbitMQ keeps
/// it. Bindings with a missing end are skipped with a warning, as RabbitMQ skips them.
pub(super) fn apply(
    broker: &Broker,
    defs: &Definitions,
    on_error: OnError,
) -> Result<DefinitionsReport> {
    let mut report = DefinitionsReport::default();
    let mut channels = Channels::default();
    let check = |entry: String, result: Result<()>| -> Result<bool> {
        match result {
            Ok(()) => Ok(true),
            Err(e) if on_error == OnError::Fail => Err(refused(entry, e)),
            Err(_) => Ok(false),
        }
    };
    for u in &defs.users {
        let entry = format!("user '{}'", u.name);
        report.users += usize::from(check(entry, add_user(broker, u))?);
    }
    for v in &defs.vhosts {
        let entry = format!("vhost '{}'", v.name);
        report.vhosts += usize::from(check(entry, broker.add_vhost(&v.name))?);
    }
    for p in &defs.permissions {
        let entry = format!("permissions of user '{}' in vhost '{}'", p.user, p.vhost);
        let permissions = Permissions::new(&p.configure, &p.write, &p.read);
        let result = broker.set_permissions(&p.user, &p.vhost, permissions);
        report.permissions += usize::from(check(entry, result)?);
    }
    for p in &defs.policies {
        let entry = format!("policy '{}' in vhost '{}'", p.name, p.vhost);
        let result = PolicyApplyTo::from_name(&p.apply_to).and_then(|apply_to| {
            let policy = Policy::new(&p.name, &p.pattern, table_from_json(&p.definition))
                .apply_to(apply_to)
                .priority(p.priority);
            broker.set_policy(&p.vhost, policy)
        });
        report.policies += usize::from(check(entry, result)?);
    }
    for q in &defs.queues {
        let entry = format!("queue '{}' in vhost '{}'", q.name, q.vhost);
        let existed = broker.queue_stats(&q.vhost, &q.name).is_ok();
        match declare_queue(broker, &mut channels, q) {
            Err(e) if existed => report.warnings.push(kept(&entry, &e)),
            result => report.queues += usize::from(check(entry, result)?),
        }
    }
    for x in &defs.exchanges {
        let entry = format!("exchange '{}' in vhost '{}'", x.name, x.vhost);
        let existed = broker.exchange_stats(&x.vhost, &x.name).is_ok();
        match declare_exchange(broker, &mut channels, x) {
            Err(e) if existed => report.warnings.push(kept(&entry, &e)),
            result => report.exchanges += usize::from(check(entry, result)?),
        }
    }
    for b in &defs.bindings {
        let entry = format!(
            "binding of {} '{}' to exchange '{}' with key '{}' in vhost '{}'",
            b.destination_type, b.destination, b.source, b.routing_key, b.vhost
        );
        let to_exchange = match b.destination_type.as_str() {
            "queue" => false,
            "exchange" => true,
            other => {
                let reason =
                    format!("destination_type '{other}' is neither 'queue' nor 'exchange'");
                check(entry, Err(Error::precondition(reason)))?;
                continue;
            }
        };
        let destination_exists = if to_exchange {
            broker.exchange_stats(&b.vhost, &b.destination).is_ok()
        } else {
            broker.queue_stats(&b.vhost, &b.destination).is_ok()
        };
        if !destination_exists || broker.exchange_stats(&b.vhost, &b.source).is_err() {
            report.warnings.push(format!(
                "{entry}: skipped, its source or destination does not exist"
            ));
            continue;
        }
        let result = bind(broker, &mut channels, b, to_exchange);
        report.bindings += usize::from(check(entry, result)?);
    }
    Ok(report)
}

/// Adds (or replaces) a user with its password hash as RabbitMQ wrote it.
fn add_user(broker: &Broker, u: &UserDef) -> Result<()> {
    let algorithm = HashingAlgorithm::from_name(&u.hashing_algorithm)?;
    let hash = match u.password_hash.as_str() {
        "" => None,
        text => Some(PasswordHash::from_base64(algorithm, text)?),
    };
    broker.add_user_with_hash(&u.name, hash, u.tags.clone())
}

/// The warning of an entry whose entity exists and differs.
fn kept(entry: &str, e: &Error) -> String {
    format!("{entry}: exists and differs ({e}); kept as it is")
}

fn declare_queue(broker: &Broker, channels: &mut Channels, q: &QueueDef) -> Result<()> {
    let mut arguments = table_from_json(&q.arguments);
    if let Some(kind) = q.queue_type.as_deref() {
        if kind != "classic" && !arguments.contains_key("x-queue-type") {
            arguments.insert("x-queue-type", kind);
        }
    }
    let options = QueueDeclareOptions {
        durable: q.durable,
        auto_delete: q.auto_delete,
        ..QueueDeclareOptions::default()
    };
    channels.with(broker, &q.vhost, |ch| {
        ch.queue_declare(&q.name, options, arguments).map(drop)
    })
}

fn declare_exchange(broker: &Broker, channels: &mut Channels, x: &ExchangeDef) -> Result<()> {
    let options = ExchangeDeclareOptions {
        durable: x.durable,
        auto_delete: x.auto_delete,
        internal: x.internal,
        ..ExchangeDeclareOptions::default()
    };
    let kind = ExchangeKind::from_name(&x.kind);
    let arguments = table_from_json(&x.arguments);
    channels.with(broker, &x.vhost, |ch| {
        ch.exchange_declare(&x.name, kind, options, arguments)
    })
}

fn bind(broker: &Broker, channels: &mut Channels, b: &BindingDef, to_exchange: bool) -> Result<()> {
    let arguments = table_from_json(&b.arguments);
    channels.with(broker, &b.vhost, |ch| {
        if to_exchange {
            ch.exchange_bind(&b.destination, &b.source, &b.routing_key, arguments)
        } else {
            ch.queue_bind(&b.destination, &b.source, &b.routing_key, arguments)
        }
    })
}
