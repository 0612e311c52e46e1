//! A published message as the broker carries it: the message plus where it was published,
//! shared by every queue it reaches.

use std::num::NonZeroU64;
use std::sync::Arc;

use compact_str::CompactString;

use crate::alarm::{Alarms, Charge};
use crate::message::SharedProperties;
use crate::store::MessageRecord;
use crate::Message;

/// A published message with its publish-time routing information. Created once per publish
/// and shared (through `Arc`) by every queue the message reaches, and by the ledger entry
/// and the [`Delivery`](crate::Delivery) of each delivery: a queued message stays small to
/// move, and handing it to the application copies a pointer.
#[derive(Debug)]
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
    pub(crate) fn new(seq: u64, envelope: Arc<Envelope>, persisted: bool) -> Self {
        QueuedMessage {
            seq,
            envelope,
            redelivered: false,
            persisted,
            delivery_count: 0,
            expires_at: None,
        }
    }

    /// Returns the body length, which `x-max-length-bytes` counts.
    pub(crate) fn body_len(&self) -> usize {
        self.envelope.message.body().len()
    }
}
