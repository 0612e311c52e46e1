//! Routing: how an exchange turns a routing key (and headers) into destinations.
//!
//! Every exchange owns one [`Router`]. The broker calls [`Router::bind`] and
//! [`Router::unbind`] as bindings come and go, and [`Router::route`] for every message
//! published to the exchange. A router knows nothing of queues: it stores opaque
//! [`DestinationId`]s, and the broker maps them back to queues (or exchanges).
//!
//! The built-in kinds are:
//! - [`DirectRouter`]: the binding key equals the routing key.
//! - [`FanoutRouter`]: every binding, whatever the key.
//! - [`TopicRouter`]: dot-separated words with `*` (one word) and `#` (zero or more words).
//! - [`HeadersRouter`]: message headers against binding arguments (`x-match`).
//!
//! A custom kind implements [`Router`] and is registered by name with
//! [`BrokerBuilder::exchange_kind`](crate::BrokerBuilder::exchange_kind); exchanges declared with
//! [`ExchangeKind::Custom`](crate::ExchangeKind::Custom) of that name then use it.
//!
//! # Concurrency
//!
//! `route` is called from many publishing threads at once, while `bind` and `unbind` may run
//! on other threads. A router must give every `route` call a consistent view (a binding is
//! either wholly in or wholly out) and should not make publishers wait on one another.

mod direct;
mod fanout;
mod headers;
mod topic;

use std::fmt;

pub use direct::DirectRouter;
pub use fanout::FanoutRouter;
pub use headers::HeadersRouter;
pub use topic::{topic_matches, TopicRouter};

use crate::FieldTable;

/// The opaque id of a binding's destination (a queue or an exchange), as a router sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestinationId(u64);

impl DestinationId {
    /// Wraps a raw id.
    pub const fn new(raw: u64) -> Self {
        DestinationId(raw)
    }

    /// Returns the raw id.
    pub const fn get(self) -> u64 {
        self.0
    }
}

/// A binding as a router receives it: the destination, the binding key and its arguments.
#[derive(Clone, Copy, Debug)]
pub struct Binding<'a> {
    /// Where matching messages go.
    pub destination: DestinationId,
    /// The binding (routing) key given to `queue_bind`.
    pub key: &'a str,
    /// The arguments given to `queue_bind` (used by the headers kind).
    pub arguments: &'a FieldTable,
}

/// What a router routes: the routing key and the message headers.
#[derive(Clone, Copy, Debug)]
pub struct RoutingInput<'a> {
    /// The routing key the message was published with.
    pub routing_key: &'a str,
    /// The message's `headers` property, if it has one.
    pub headers: Option<&'a FieldTable>,
}

/// A binding the router refuses, with the reason given to the client (reply code 406).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidBinding(pub String);

impl fmt::Display for InvalidBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidBinding {}

/// The routing logic of one exchange kind.
///
/// Implement this to add an exchange kind, then register a factory for it with
/// [`BrokerBuilder::exchange_kind`](crate::BrokerBuilder::exchange_kind).
///
/// A binding is identified by `(destination, key, arguments)`: binding the same triple twice
/// is one binding, and `unbind` removes exactly that triple.
pub trait Router: 'static + fmt::Debug + Send + Sync {
    /// Adds a binding. Returns `Ok(false)` if the same binding already existed.
    ///
    /// # Errors
    ///
    /// [`InvalidBinding`] when the key or the arguments make no sense for this kind.
    fn bind(&self, binding: Binding<'_>) -> Result<bool, InvalidBinding>;

    /// Removes a binding. Returns `false` if it did not exist.
    fn unbind(&self, binding: Binding<'_>) -> bool;

    /// Appends to `out` every destination that a message with this input reaches.
    ///
    /// Each destination should appear once; the broker removes duplicates in any case.
    fn route(&self, input: RoutingInput<'_>, out: &mut Vec<DestinationId>);

    /// Returns an estimate of the memory the routing table uses, in bytes.
    fn memory_bytes(&self) -> usize {
        0
    }
}

/// Makes a new, empty [`Router`] for each exchange declared with a custom kind.
pub trait RouterFactory: 'static + Send + Sync {
    /// Creates the router of one new exchange.
    fn create(&self) -> Box<dyn Router>;
}

impl<F, R> RouterFactory for F
where
    F: Fn() -> R + 'static + Send + Sync,
    R: Router,
{
    fn create(&self) -> Box<dyn Router> {
        Box::new(self())
    }
}
