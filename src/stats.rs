//! Counters for tests and operators, like `rabbitmqctl list_queues` / `list_exchanges`.

use crate::{ExchangeKind, FieldTable};

/// A snapshot of one queue's counters.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct QueueStats {
    /// The queue name.
    pub name: String,
    /// Messages waiting for a consumer.
    pub messages_ready: usize,
    /// Messages delivered and not yet acknowledged.
    pub messages_unacknowledged: usize,
    /// Subscribed consumers.
    pub consumers: usize,
    /// Declared durable.
    pub durable: bool,
    /// Declared exclusive.
    pub exclusive: bool,
    /// Declared auto-delete.
    pub auto_delete: bool,
    /// The arguments it was declared with (`x-message-ttl`, `x-max-length`, ...).
    pub arguments: FieldTable,
    /// Messages that expired in the queue (dead-lettered with a dead-letter exchange,
    /// dropped without one).
    pub messages_expired: u64,
    /// Messages dropped from the head by `x-max-length(-bytes)` with `drop-head`
    /// (dead-lettered or dropped likewise).
    pub messages_overflowed: u64,
    /// Messages rejected or nacked without requeue, or returned to a quorum queue more often
    /// than its `x-delivery-limit` (dead-lettered or dropped likewise).
    pub messages_rejected: u64,
    /// Publishes refused by a length limit with `reject-publish(-dlx)` (nacked under
    /// confirms).
    pub publishes_refused: u64,
    /// Ready messages kept on disk only, not in memory (a durable queue over the broker's
    /// [memory budget](crate::BrokerBuilder::memory_budget), or recovered beyond its first
    /// page); counted in `messages_ready` too. RabbitMQ calls it the same.
    pub messages_paged_out: usize,
    /// Messages published into the queue (dead-lettered ones included) since it was
    /// declared, or since the broker opened for a recovered queue.
    pub messages_published: u64,
    /// Messages handed to consumers (RabbitMQ's `deliver`, with and without ack).
    pub messages_delivered: u64,
    /// Of the messages handed to consumers, those delivered before (`redeliver`).
    pub messages_redelivered: u64,
    /// Messages fetched with `basic_get` (`get`).
    pub messages_got: u64,
    /// Deliveries acknowledged (`ack`).
    pub messages_acked: u64,
    /// The policy that applies to the queue, if one does (`rabbitmqctl list_queues policy`).
    pub policy: Option<String>,
}

impl QueueStats {
    /// Returns ready plus unacknowledged messages (`rabbitmqctl`'s `messages`).
    pub fn messages(&self) -> usize {
        self.messages_ready + self.messages_unacknowledged
    }
}

/// A snapshot of one exchange's counters.
///
/// Every message published to the exchange is counted once as `routed` (it reached at least
/// one queue), `returned` (unroutable and mandatory) or `unroutable` (dropped, as RabbitMQ
/// drops it). A message delayed by an `x-delayed-message` exchange is counted when its delay
/// ends and it is routed (a mandatory one also as `returned` when it is published, since it
/// comes back at once).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ExchangeStats {
    /// The exchange name (`""` for the default exchange).
    pub name: String,
    /// Its kind.
    pub kind: ExchangeKind,
    /// Declared durable.
    pub durable: bool,
    /// Declared auto-delete.
    pub auto_delete: bool,
    /// Declared internal (refuses publishes from clients).
    pub internal: bool,
    /// The arguments it was declared with (`alternate-exchange`, ...).
    pub arguments: FieldTable,
    /// Messages published to it.
    pub published: u64,
    /// Messages that reached at least one queue.
    pub routed: u64,
    /// Messages that reached no queue and were dropped.
    pub unroutable: u64,
    /// Mandatory messages that reached no queue and were returned to the publisher.
    pub returned: u64,
    /// Bindings whose source is this exchange.
    pub bindings: usize,
    /// Messages an `x-delayed-message` exchange holds until their delay ends (the plugin's
    /// `messages_delayed`); 0 for other kinds.
    pub messages_delayed: usize,
    /// Estimated memory of its routing table, in bytes.
    pub table_bytes: usize,
    /// The policy that applies to the exchange, if one does.
    pub policy: Option<String>,
}

/// A snapshot of the broker's resource use and alarms ([`Broker::stats`](crate::Broker::stats)),
/// like the memory and disk lines of `rabbitmqctl status`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerStats {
    /// Bytes charged by the messages the broker holds (ready, in consumers' inboxes,
    /// delivered and unacknowledged, dead-lettered): bodies, exchange and routing key, plus
    /// a fixed overhead per message.
    pub memory_used: usize,
    /// The memory high watermark in bytes (`None`: no limit).
    pub memory_high_watermark: Option<usize>,
    /// Free bytes under the data directory when last measured (`None`: an in-memory broker,
    /// or not measured yet).
    pub disk_free: Option<u64>,
    /// The disk free limit in bytes.
    pub disk_free_limit: u64,
    /// The memory alarm is on: publishers are held back.
    pub memory_alarm: bool,
    /// The disk alarm is on: publishers of persistent messages are held back.
    pub disk_alarm: bool,
    /// Publishers held back now: threads blocked in a publish, tasks awaiting one, and wire
    /// connections blocked (`connection.blocked`).
    pub blocked_publishers: usize,
}

/// What a binding leads to: a queue, or an exchange (an exchange-to-exchange binding).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DestinationKind {
    /// A queue.
    Queue,
    /// An exchange.
    Exchange,
}

impl DestinationKind {
    /// Returns RabbitMQ's name for it: `"queue"` or `"exchange"`.
    pub fn as_str(self) -> &'static str {
        match self {
            DestinationKind::Queue => "queue",
            DestinationKind::Exchange => "exchange",
        }
    }
}

/// One binding of a vhost, as [`Broker::list_bindings`](crate::Broker::list_bindings)
/// reports it (`rabbitmqctl list_bindings`).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct BindingInfo {
    /// The exchange messages come from.
    pub source: String,
    /// The queue or exchange they go to.
    pub destination: String,
    /// Whether the destination is a queue or an exchange.
    pub destination_kind: DestinationKind,
    /// The binding key.
    pub routing_key: String,
    /// The binding arguments (for headers exchanges: `x-match` and the headers).
    pub arguments: FieldTable,
}
