//! [`StoreOp`]: one write the broker asks the store to make durable.

use super::records::{
    AuthRecord, BindingRecord, EntryKey, ExchangeRecord, MessageId, MessageRecord, PolicyRecord,
    QueueKey, QueueRecord, VhostRecord,
};

/// One write to the store.
///
/// Writes are applied in the order they were submitted. Each is idempotent where that makes
/// sense: putting a record again overwrites it, deleting or removing something that is not
/// there does nothing. Deleting an entity deletes everything stored under it (a queue's
/// entries and bindings, an exchange's bindings, a vhost's entities).
#[derive(Clone, Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "an op is moved once, into `Store::submit`; boxing the message would cost an allocation per publish"
)]
#[allow(
    dead_code,
    reason = "DeleteVhost and PurgeQueue await vhost deletion and whole-queue purges"
)]
pub(crate) enum StoreOp {
    /// Creates or replaces a vhost.
    PutVhost(VhostRecord),
    /// Deletes a vhost with its exchanges, queues, bindings and messages.
    DeleteVhost {
        /// The vhost name.
        vhost: String,
    },
    /// Creates or replaces a policy.
    PutPolicy(PolicyRecord),
    /// Deletes a policy.
    DeletePolicy {
        /// The vhost of the policy.
        vhost: String,
        /// The policy name.
        name: String,
    },
    /// Creates or replaces a user, a permission or the defaults mark.
    PutAuth(AuthRecord),
    /// Deletes an `auth` row by its key (kind, name, name); deleting a user deletes its
    /// permissions too.
    DeleteAuth {
        /// `"user"` or `"permission"`.
        kind: &'static str,
        /// The user name, or the vhost of a permission.
        first: String,
        /// `""`, or the user of a permission.
        second: String,
    },
    /// Creates or replaces a durable exchange.
    PutExchange(ExchangeRecord),
    /// Deletes an exchange and every binding from or to it.
    DeleteExchange {
        /// The vhost of the exchange.
        vhost: String,
        /// The exchange name.
        name: String,
    },
    /// Creates or replaces a durable queue.
    PutQueue(QueueRecord),
    /// Deletes a queue, its entries (releasing their messages) and the bindings to it.
    DeleteQueue(QueueKey),
    /// Removes every entry of a queue, releasing their messages; the queue stays.
    PurgeQueue(QueueKey),
    /// Creates a durable binding.
    PutBinding(BindingRecord),
    /// Deletes a binding (all fields, arguments included, name it).
    DeleteBinding(BindingRecord),
    /// Stores a persistent message once, with one entry per durable queue it was routed to.
    Enqueue {
        /// The id from [`Store::next_message_id`](super::Store::next_message_id).
        id: MessageId,
        /// The message.
        message: MessageRecord,
        /// Its positions in the queues that hold it; its reference count is their number.
        entries: Vec<EntryKey>,
    },
    /// Records that an entry was handed to a consumer (it comes back redelivered).
    MarkDelivered(EntryKey),
    /// [`StoreOp::MarkDelivered`] for many entries: what a clean shutdown writes for the
    /// messages that were delivered and came back.
    MarkAllDelivered(Vec<EntryKey>),
    /// Removes an entry (ack, reject or nack without requeue, expiry, dead-lettering, drop by a
    /// length limit) and releases its message: the message is deleted with its last entry.
    Remove(EntryKey),
    /// [`StoreOp::Remove`] for many entries, e.g. `basic_ack` with `multiple`.
    RemoveAll(Vec<EntryKey>),
}
