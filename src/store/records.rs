//! The records the store keeps, and the ids that name them.
//!
//! Records are plain serde structs; `codec.rs` turns them into bytes. They hold no
//! routing, queue or connection state: only what must come back after a restart.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::{FieldTable, Properties};

/// A virtual host that was created on a persistent broker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct VhostRecord {
    /// The vhost name, e.g. `/`.
    pub(crate) name: String,
}

/// A policy of a vhost (see [`Policy`](crate::Policy)); every policy of a persistent broker
/// is stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct PolicyRecord {
    /// The vhost the policy belongs to.
    pub(crate) vhost: String,
    /// The policy name.
    pub(crate) name: String,
    /// The regular expression matched against entity names.
    pub(crate) pattern: String,
    /// `queues`, `exchanges` or `all`.
    pub(crate) apply_to: String,
    /// Its priority.
    pub(crate) priority: i32,
    /// Its definition.
    pub(crate) definition: FieldTable,
}

/// A user, a user's permissions in a vhost, or the mark that the default user was created:
/// the rows of the `auth` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum AuthRecord {
    /// A user.
    User(UserRecord),
    /// A user's permissions in a vhost.
    Permission(PermissionRecord),
    /// The broker created its default user once; it is not created again (even if deleted).
    DefaultsApplied,
}

impl AuthRecord {
    /// The key of the row: kind, then two names.
    pub(crate) fn key(&self) -> (&'static str, &str, &str) {
        match self {
            AuthRecord::User(u) => (AUTH_USER, &u.name, ""),
            AuthRecord::Permission(p) => (AUTH_PERMISSION, &p.vhost, &p.user),
            AuthRecord::DefaultsApplied => (AUTH_DEFAULTS, "", ""),
        }
    }
}

/// Kind of the `auth` rows of users: (`"user"`, name, `""`).
pub(crate) const AUTH_USER: &str = "user";
/// Kind of the `auth` rows of permissions: (`"permission"`, vhost, user).
pub(crate) const AUTH_PERMISSION: &str = "permission";
/// Kind of the `auth` row that marks the default user as created: (`"defaults"`, `""`, `""`).
pub(crate) const AUTH_DEFAULTS: &str = "defaults";

/// A user of a persistent broker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct UserRecord {
    /// The user name.
    pub(crate) name: String,
    /// RabbitMQ's base64 `password_hash`, or `None` for a user without a password.
    pub(crate) password_hash: Option<String>,
    /// RabbitMQ's name of the hashing algorithm (`rabbit_password_hashing_sha256`).
    pub(crate) hashing_algorithm: String,
    /// The user's tags.
    pub(crate) tags: Vec<String>,
}

/// A user's permissions in a vhost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct PermissionRecord {
    /// The vhost.
    pub(crate) vhost: String,
    /// The user.
    pub(crate) user: String,
    /// The configure pattern.
    pub(crate) configure: String,
    /// The write pattern.
    pub(crate) write: String,
    /// The read pattern.
    pub(crate) read: String,
}

/// A durable exchange.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ExchangeRecord {
    /// The vhost the exchange lives in.
    pub(crate) vhost: String,
    /// The exchange name.
    pub(crate) name: String,
    /// The exchange kind by name (`direct`, `topic`, `fanout`, `headers` or a plugin's name).
    pub(crate) kind: String,
    /// Always `true` for a stored exchange; kept so the record equals the declaration.
    pub(crate) durable: bool,
    /// Deleted when its last binding goes.
    pub(crate) auto_delete: bool,
    /// Cannot be published to directly, only through exchange-to-exchange bindings.
    pub(crate) internal: bool,
    /// The `arguments` of the declaration (e.g. `alternate-exchange`).
    pub(crate) arguments: FieldTable,
}

/// A durable queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct QueueRecord {
    /// The vhost the queue lives in.
    pub(crate) vhost: String,
    /// The queue name.
    pub(crate) name: String,
    /// Always `true` for a stored queue; kept so the record equals the declaration.
    pub(crate) durable: bool,
    /// Deleted when its last consumer goes, once it has had one.
    pub(crate) auto_delete: bool,
    /// Always `false`: exclusive queues die with their connection and are never stored.
    pub(crate) exclusive: bool,
    /// The `arguments` of the declaration (`x-message-ttl`, `x-max-length`, ...).
    pub(crate) arguments: FieldTable,
}

impl QueueRecord {
    /// Returns the key that names this queue in the store.
    #[cfg_attr(not(test), allow(dead_code, reason = "used by the store's tests"))]
    pub(crate) fn key(&self) -> QueueKey {
        QueueKey::new(&*self.vhost, &*self.name)
    }
}

/// A durable binding: exchange → queue, or exchange → exchange.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct BindingRecord {
    /// The vhost of both ends.
    pub(crate) vhost: String,
    /// The exchange messages come from.
    pub(crate) source: String,
    /// The queue or exchange messages go to.
    pub(crate) destination: String,
    /// `true` when `destination` names an exchange, `false` when it names a queue.
    pub(crate) destination_is_exchange: bool,
    /// The binding key.
    pub(crate) routing_key: String,
    /// The binding arguments (what a headers exchange matches on). Two bindings that differ
    /// only in their arguments are two bindings, as in AMQP.
    pub(crate) arguments: FieldTable,
}

/// A persistent message, stored once however many queues hold it. (Its strings are
/// `CompactString`s, inline when short: built from an envelope without allocating; serde
/// encodes them exactly as `String`s.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct MessageRecord {
    /// The exchange it was published to.
    pub(crate) exchange: CompactString,
    /// The routing key it was published with.
    pub(crate) routing_key: CompactString,
    /// Its properties, headers included.
    pub(crate) properties: Properties,
    /// Its body.
    pub(crate) body: Bytes,
    /// When it expires, in milliseconds since the Unix epoch (from `expiration` or the queue's
    /// `x-message-ttl`, computed by the broker); `None` if never. The store does not look at
    /// clocks: dropping expired messages after recovery is the broker's job.
    pub(crate) expires_at_ms: Option<u64>,
}

/// The value of one queue entry: which message sits at a position of a queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EntryRecord {
    /// The message at this position.
    pub(crate) message_id: MessageId,
    /// `true` once the message was handed to a consumer from this queue; it then comes back
    /// with `redelivered = true` after a restart.
    pub(crate) delivered: bool,
}

/// The id of a stored message, unique in one database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) struct MessageId(
    /// The id; ids grow, and continue after the largest stored one at open.
    pub(crate) u64,
);

/// Names one queue: its vhost and name, cheap to clone (two reference counts).
///
/// The broker keeps one per durable queue and clones it into every store operation.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct QueueKey {
    /// The vhost the queue lives in.
    pub(crate) vhost: Arc<str>,
    /// The queue name.
    pub(crate) name: Arc<str>,
}

impl QueueKey {
    /// Creates a key from a vhost and a queue name.
    pub(crate) fn new(vhost: impl Into<Arc<str>>, name: impl Into<Arc<str>>) -> Self {
        QueueKey {
            vhost: vhost.into(),
            name: name.into(),
        }
    }

    /// Returns the key of the entry at `seq` in this queue.
    pub(crate) fn entry(&self, seq: u64) -> EntryKey {
        EntryKey {
            queue: self.clone(),
            seq,
        }
    }
}

impl fmt::Debug for QueueKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QueueKey({:?} in {:?})", self.name, self.vhost)
    }
}

/// Names one queue entry: a queue and a position in it.
///
/// Positions (`seq`) are chosen by the broker: unique in their queue and increasing in
/// publish order. Recovery returns entries sorted by them, so a requeued message keeps its
/// place.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct EntryKey {
    /// The queue.
    pub(crate) queue: QueueKey,
    /// The position in the queue.
    pub(crate) seq: u64,
}
