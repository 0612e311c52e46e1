//! A published message as the broker carries it: the message plus where it was published,
//! shared by every queue it reaches.

use std::sync::Arc;

use compact_str::CompactString;

use crate::Message;

/// A published message with its publish-time routing information. Created once per publish
/// and shared (through `Arc`) by every queue the message reaches.
#[derive(Debug)]
pub(crate) struct Envelope {
    /// Body and properties.
    pub(crate) message: Message,
    /// The exchange it was published to (a copy, inline when short: sharing the exchange's
    /// name would make publisher and consumer threads contend on its reference count).
    pub(crate) exchange: CompactString,
    /// The routing key it was published with (inline when short: no allocation).
    pub(crate) routing_key: CompactString,
}

/// One message in one queue.
#[derive(Clone, Debug)]
pub(crate) struct QueuedMessage {
    /// Position in the queue: increasing in publish order, so that a requeued message can go
    /// back to its original place.
    pub(crate) seq: u64,
    /// The shared message.
    pub(crate) envelope: Arc<Envelope>,
    /// Delivered before and requeued (AMQP `redelivered`).
    pub(crate) redelivered: bool,
    /// Has an entry in the store (a persistent message in a durable queue).
    pub(crate) persisted: bool,
}
