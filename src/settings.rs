//! Broker-wide settings shared by every vhost and connection, and the source of unique ids.
//!
//! The broker builds one [`Settings`]; vhosts and connections hold it. It sits below them, so
//! that neither needs to know the broker.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::ids::{ConnectionId, ConsumerKey};
use crate::routing::{
    DestinationId, DirectRouter, FanoutRouter, HeadersRouter, Router, RouterFactory, TopicRouter,
};
use crate::store::Store;
use crate::{Clock, ExchangeKind};

/// Broker-wide settings shared by every vhost, and the source of unique ids.
pub(crate) struct Settings {
    /// Refuse bindings between durable and non-durable entities (the seed tutorial's rule);
    /// off by default, as in RabbitMQ.
    pub(crate) strict_binding_durability: bool,
    /// The time source.
    pub(crate) clock: Arc<dyn Clock>,
    /// Where durable state goes ([`NullStore`](crate::store::NullStore) for an in-memory
    /// broker).
    pub(crate) store: Arc<dyn Store>,
    /// Custom exchange kinds by name.
    custom_kinds: HashMap<String, Arc<dyn RouterFactory>>,
    /// The next unique id (destinations, connections, consumers).
    next_id: AtomicU64,
    /// Set once when the broker closes ([`Broker::close`](crate::Broker::close)).
    closed: AtomicBool,
}

impl Settings {
    /// Creates the settings of a new broker.
    pub(crate) fn new(
        strict_binding_durability: bool,
        clock: Arc<dyn Clock>,
        store: Arc<dyn Store>,
        custom_kinds: HashMap<String, Arc<dyn RouterFactory>>,
    ) -> Self {
        Settings {
            strict_binding_durability,
            clock,
            store,
            custom_kinds,
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
        }
    }

    /// Marks the broker closed; returns `true` the first time.
    pub(crate) fn close(&self) -> bool {
        !self.closed.swap(true, Ordering::AcqRel)
    }

    /// Returns `true` once the broker is closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Returns a new unique id.
    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Returns a new unique destination id.
    pub(crate) fn next_destination(&self) -> DestinationId {
        DestinationId::new(self.next_id())
    }

    /// Returns a new unique connection id.
    pub(crate) fn next_connection(&self) -> ConnectionId {
        ConnectionId(self.next_id())
    }

    /// Returns a new unique consumer key.
    pub(crate) fn next_consumer(&self) -> ConsumerKey {
        ConsumerKey(self.next_id())
    }

    /// Creates the router of a new exchange of `kind`, or `None` for an unknown kind (and
    /// for `x-delayed-message`, whose router is that of its `x-delayed-type`).
    pub(crate) fn router_for(&self, kind: &ExchangeKind) -> Option<Box<dyn Router>> {
        Some(match kind {
            ExchangeKind::Direct => Box::new(DirectRouter::new()),
            ExchangeKind::Fanout => Box::new(FanoutRouter::new()),
            ExchangeKind::Topic => Box::new(TopicRouter::new()),
            ExchangeKind::Headers => Box::new(HeadersRouter::new()),
            ExchangeKind::Custom(name) => self.custom_kinds.get(name)?.create(),
            ExchangeKind::DelayedMessage => return None,
        })
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("strict_binding_durability", &self.strict_binding_durability)
            .field("clock", &self.clock)
            .field(
                "custom_kinds",
                &self.custom_kinds.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}
