//! Option structs for channel methods: flags with `Default`, as AMQP methods carry them.

use crate::FieldTable;

/// Flags of [`Channel::exchange_declare`](crate::Channel::exchange_declare).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExchangeDeclareOptions {
    /// Only check that the exchange exists (404 if not); change nothing.
    pub passive: bool,
    /// Survive a broker restart (with persistence).
    pub durable: bool,
    /// Delete the exchange when its last binding goes.
    pub auto_delete: bool,
    /// Refuse direct publishes; reachable only through exchange-to-exchange bindings.
    pub internal: bool,
}

impl ExchangeDeclareOptions {
    /// Options for a durable exchange.
    pub fn durable() -> Self {
        ExchangeDeclareOptions {
            durable: true,
            ..Self::default()
        }
    }

    /// Options for a passive declare (an existence check).
    pub fn passive() -> Self {
        ExchangeDeclareOptions {
            passive: true,
            ..Self::default()
        }
    }
}

/// Flags of [`Channel::queue_declare`](crate::Channel::queue_declare).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueDeclareOptions {
    /// Only check that the queue exists (404 if not); change nothing.
    pub passive: bool,
    /// Survive a broker restart (with persistence).
    pub durable: bool,
    /// Usable only by the declaring connection and deleted when it closes.
    pub exclusive: bool,
    /// Delete the queue when its last consumer goes (once it has had one).
    pub auto_delete: bool,
}

impl QueueDeclareOptions {
    /// Options for a durable queue.
    pub fn durable() -> Self {
        QueueDeclareOptions {
            durable: true,
            ..Self::default()
        }
    }

    /// Options for an exclusive, auto-delete queue: the usual private reply or subscriber
    /// queue.
    pub fn exclusive() -> Self {
        QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..Self::default()
        }
    }

    /// Options for a passive declare (an existence check that returns the counts).
    pub fn passive() -> Self {
        QueueDeclareOptions {
            passive: true,
            ..Self::default()
        }
    }
}

/// Flags of [`Channel::exchange_delete`](crate::Channel::exchange_delete).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExchangeDeleteOptions {
    /// Delete only if the exchange has no bindings (406 otherwise).
    pub if_unused: bool,
}

/// Flags of [`Channel::queue_delete`](crate::Channel::queue_delete).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueDeleteOptions {
    /// Delete only if the queue has no consumers (406 otherwise).
    pub if_unused: bool,
    /// Delete only if the queue has no ready messages (406 otherwise).
    pub if_empty: bool,
}

/// Options of [`Channel::basic_consume`](crate::Channel::basic_consume).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConsumeOptions {
    /// The consumer tag; generated (`amq.ctag-…`) when `None`.
    pub consumer_tag: Option<String>,
    /// Deliveries count as acknowledged when they are received.
    pub no_ack: bool,
    /// Be the queue's only consumer (403 if it has others; others are refused after).
    pub exclusive: bool,
    /// Consumer arguments. `x-priority` (an integer, 0 by default) makes this a priority
    /// consumer: messages go to the highest-priority consumers that have prefetch credit.
    pub arguments: FieldTable,
}

impl ConsumeOptions {
    /// Options for an automatically acknowledging consumer.
    pub fn no_ack() -> Self {
        ConsumeOptions {
            no_ack: true,
            ..Self::default()
        }
    }

    /// Sets the consumer tag.
    #[must_use = "builder methods return the changed options"]
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.consumer_tag = Some(tag.into());
        self
    }

    /// Sets the consumer priority (the `x-priority` argument).
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::{ConsumeOptions, FieldValue};
    ///
    /// let options = ConsumeOptions::default().priority(10);
    /// assert_eq!(options.arguments.get("x-priority"), Some(&FieldValue::I32(10)));
    /// ```
    #[must_use = "builder methods return the changed options"]
    pub fn priority(mut self, priority: i32) -> Self {
        self.arguments.insert("x-priority", priority);
        self
    }
}

/// Flags of [`Channel::basic_publish_with`](crate::Channel::basic_publish_with).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublishOptions {
    /// Return the message to the publisher (through
    /// [`Channel::returns`](crate::Channel::returns)) if it reaches no queue, instead of
    /// dropping it.
    pub mandatory: bool,
}

impl PublishOptions {
    /// Options for a mandatory publish.
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::PublishOptions;
    ///
    /// assert!(PublishOptions::mandatory().mandatory);
    /// assert!(!PublishOptions::default().mandatory);
    /// ```
    pub fn mandatory() -> Self {
        PublishOptions { mandatory: true }
    }
}

/// Options of [`Channel::basic_get`](crate::Channel::basic_get).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GetOptions {
    /// The message counts as acknowledged when it is fetched.
    pub no_ack: bool,
}

impl GetOptions {
    /// Options for fetching with automatic acknowledgement.
    pub fn no_ack() -> Self {
        GetOptions { no_ack: true }
    }
}
