//! A published message as the broker carries it: the message plus where it was published,
//! shared by every queue it reaches.

use std::num::NonZeroU64;
use std::sync::Arc;

use crate::Message;

/// A published message with its publish-time routing information. Created once per publish
/// and shared (through `Arc`) by every queue the message reaches.
#[derive(Debug)]
pub(crate) struct Envelope {
    /// Body and properties.
    pub(crate) message: Message,
    /// The exchange it was published to.
    pub(crate) exchange: Arc<str>,
    /// The routing key it was published with.
    pub(crate) routing_key: Box<str>,
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
    /// When it expires in this queue (message TTL), in milliseconds since the Unix epoch:
    /// an absolute time, so that it survives a restart. Never 0 (a niche that keeps the
    /// field at 8 bytes, since every queued message carries it).
    pub(crate) expires_at: Option<NonZeroU64>,
}

impl QueuedMessage {
    /// Returns the body length, which `x-max-length-bytes` counts.
    pub(crate) fn body_len(&self) -> usize {
        self.envelope.message.body().len()
    }
}
