//! Broker-wide unique ids of connections and consumers.
//!
//! They live in a module of their own, below everything that uses them, so that a queue can
//! name its exclusive owner and a consumer without knowing connections or channels.

/// The id of a connection: the owner of its exclusive queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ConnectionId(pub(crate) u64);

/// The key of a consumer, unique in the broker: how its queue and its channel's ledger name
/// it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ConsumerKey(pub(crate) u64);
