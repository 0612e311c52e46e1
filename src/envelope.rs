//! A published message as the broker carries it: the message plus where it was published,
//! shared by every queue it reaches.

use std::num::NonZeroU64;
use std::sync::Arc;

use compact_str::CompactString;

use crate::alarm::{Alarms, Charge};
use crate::message::SharedProperties;
use crate::store::MessageRecord;
use crate::Message;

/// A published message with its publish-time routing information, created once per
/// publish. One holder owns it; where several hold it at once (the queues of a fanout, the
/// ledger entry beside the [`Delivery`](crate::Delivery) of a manual-ack delivery) they
/// share it through [`Holding::Shared`].
#[derive(Debug, Default)]
pub(crate) struct Envelope {
    /// Body and properties.
    pub(crate) message: Message,
    /// The exchange it was published to (a copy, inline when short: sharing the exchange's
    /// name would make publisher and consumer threads contend on its reference count).
    pub(crate) exchange: CompactString,
    /// The routing key it was published with (inline when short: no allocation).
    pub(crate) routing_key: CompactString,
    /// The memory the message is charged while anything holds the envelope.
    pub(crate) _charge: Charge,
}

impl Envelope {
    /// Returns the bytes a held message is charged beyond the fixed overhead: its body,
    /// exchange and routing key.
    pub(crate) fn weight(message: &Message, exchange: &str, routing_key: &str) -> usize {
        message.body().len() + exchange.len() + routing_key.len()
    }
}

impl Envelope {
    /// The envelope of a stored message (its properties shared with the previous one's when
    /// equal, through `properties`), charged to `alarms` if given.
    pub(crate) fn from_record(
        record: &MessageRecord,
        properties: &mut SharedProperties,
        alarms: Option<&Arc<Alarms>>,
    ) -> Self {
        let message = properties.message(record.body.clone(), &record.properties);
        let weight = Envelope::weight(&message, &record.exchange, &record.routing_key);
        Envelope {
            message,
            exchange: record.exchange.as_str().into(),
            routing_key: record.routing_key.as_str().into(),
            _charge: alarms.map(|a| a.charge(weight)).unwrap_or_default(),
        }
    }
}

/// How a queued message or a delivery holds its envelope: alone, or shared with others.
///
/// A message published to one queue and consumed without ack is owned all the way, with no
/// allocation: it is created on the publisher's thread and let go on the consumer's, and an
/// allocation freed on another thread than the one that made it costs the system allocator
/// far more than the copies it saves. A manual-ack delivery shares its envelope with the
/// ledger, allocated on the consumer's thread ([`share`](Self::share)), which lets it go.
#[derive(Debug)]
pub(crate) enum Holding {
    /// The only holder.
    Own(Envelope),
    /// One of several holders.
    Shared(Arc<Envelope>),
}

impl Holding {
    /// Returns a shared handle on the envelope, moving it behind an `Arc` the first time.
    pub(crate) fn share(&mut self) -> Arc<Envelope> {
        let shared = match self {
            Holding::Shared(shared) => return Arc::clone(shared),
            Holding::Own(envelope) => Arc::new(std::mem::take(envelope)),
        };
        *self = Holding::Shared(Arc::clone(&shared));
        shared
    }
}

impl std::ops::Deref for Holding {
    type Target = Envelope;

    #[inline]
    fn deref(&self) -> &Envelope {
        match self {
            Holding::Own(envelope) => envelope,
            Holding::Shared(envelope) => envelope,
        }
    }
}

impl Default for Holding {
    fn default() -> Self {
        Holding::Own(Envelope::default())
    }
}

impl From<Envelope> for Holding {
    fn from(envelope: Envelope) -> Self {
        Holding::Own(envelope)
    }
}

impl From<Arc<Envelope>> for Holding {
    fn from(envelope: Arc<Envelope>) -> Self {
        Holding::Shared(envelope)
    }
}

/// One message in one queue.
#[derive(Debug)]
pub(crate) struct QueuedMessage {
    /// Position in the queue: increasing in publish order, so that a requeued message can go
    /// back to its original place.
    pub(crate) seq: u64,
    /// The message.
    pub(crate) envelope: Holding,
    /// Delivered before and requeued (AMQP `redelivered`).
    pub(crate) redelivered: bool,
    /// Has an entry in the store (a persistent message in a durable queue).
    pub(crate) persisted: bool,
    /// How many times a quorum queue got it back (`x-delivery-count`); 0 elsewhere.
    pub(crate) delivery_count: u32,
    /// When it expires in this queue (message TTL), in milliseconds since the Unix epoch:
    /// an absolute time, so that it survives a restart. Never 0 (a niche that keeps the
    /// field at 8 bytes, since every queued message carries it).
    pub(crate) expires_at: Option<NonZeroU64>,
}

impl QueuedMessage {
    /// A message newly placed at `seq` of a queue: not redelivered, no expiry yet.
    #[inline]
    pub(crate) fn new(seq: u64, envelope: impl Into<Holding>, persisted: bool) -> Self {
        QueuedMessage {
            seq,
            envelope: envelope.into(),
            redelivered: false,
            persisted,
            delivery_count: 0,
            expires_at: None,
        }
    }

    /// Returns a copy of the message that shares its envelope.
    pub(crate) fn share(&mut self) -> QueuedMessage {
        QueuedMessage {
            envelope: Holding::Shared(self.envelope.share()),
            ..*self
        }
    }

    /// Returns the body length, which `x-max-length-bytes` counts.
    pub(crate) fn body_len(&self) -> usize {
        self.envelope.message.body().len()
    }
}
