//! Remote connections (feature `remote`): the same [`Connection`](crate::Connection),
//! [`Channel`](crate::Channel), [`Consumer`](crate::Consumer) and [`Delivery`](crate::Delivery)
//! against `warren-server` or a RabbitMQ cluster, on [lapin](https://docs.rs/lapin).
//!
//! - `connection`: [`RemoteConnection`], the lapin connection on a runtime of its own, the
//!   node list, reconnection with backoff and recovery.
//! - `channel`: [`RemoteChannel`], the channel methods on a lapin channel, consumers feeding
//!   the crate's inbox (so that the blocking and async faces of `Consumer` are the same).
//! - `topology`: what the application declared, to declare it again after a reconnect.
//! - `errors`: lapin's errors as Warren's [`Error`](crate::Error) variants.
//! - `events`: [`ConnectionEvent`] and [`ConnectionEvents`].
//! - `gate`: a value threads and tasks wait on (outstanding confirms).
//!
//! See `docs/scale-out.md` for what changes, method by method.

mod channel;
mod connection;
mod errors;
mod events;
mod gate;
mod topology;

pub(crate) use channel::{Outcome, Raw, RemoteChannel, Settle};
pub(crate) use connection::RemoteConnection;
pub use events::{ConnectionEvent, ConnectionEvents};

use std::sync::Arc;
use std::time::Duration;

use connection::Reconnect;

use crate::inbox::{Inbox, Source};
use crate::{Connection, Delivery, Result};

/// Opens a remote [`Connection`] to one node or a cluster: from
/// [`Connection::builder`](crate::Connection::builder).
///
/// Nodes are tried in order; when the link to one is lost, the connection reconnects to the
/// next reachable one (waiting `initial_backoff`, doubling up to `max_backoff`, between
/// rounds over the list), declares again the exchanges, queues and bindings the application
/// declared, reopens its channels and subscribes its consumers again. It gives up, and
/// closes, after `give_up_after` without a node.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use warrenmq::Connection;
///
/// # fn main() -> Result<(), warrenmq::Error> {
/// let conn = Connection::builder()
///     .node("amqp://guest:guest@rabbit-1:5672/%2f")
///     .node("amqp://guest:guest@rabbit-2:5672/%2f")
///     .give_up_after(Duration::from_secs(60))
///     .connect()?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ConnectionBuilder {
    pub(crate) nodes: Vec<String>,
    pub(crate) reconnect: Reconnect,
}

impl Default for ConnectionBuilder {
    fn default() -> Self {
        ConnectionBuilder {
            nodes: Vec::new(),
            reconnect: Reconnect {
                initial_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(5),
                give_up_after: Duration::from_secs(60),
                connect_timeout: Duration::from_secs(5),
            },
        }
    }
}

impl ConnectionBuilder {
    /// Adds a node: `amqp://user:password@host:port/vhost` (the vhost URL-encoded: `%2f` for
    /// `/`; an empty path means the vhost `/`). Every node should name the same vhost; the
    /// first one's is the connection's.
    #[must_use]
    pub fn node(mut self, url: impl Into<String>) -> Self {
        self.nodes.push(url.into());
        self
    }

    /// Adds several nodes, in order.
    #[must_use]
    pub fn nodes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, urls: I) -> Self {
        self.nodes.extend(urls.into_iter().map(Into::into));
        self
    }

    /// The wait after a round over every node failed, doubling up to `max` (default 100 ms
    /// up to 5 s).
    #[must_use]
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.reconnect.initial_backoff = initial;
        self.reconnect.max_backoff = max.max(initial);
        self
    }

    /// How long a lost connection keeps trying before it closes for good (default 60 s).
    #[must_use]
    pub fn give_up_after(mut self, limit: Duration) -> Self {
        self.reconnect.give_up_after = limit;
        self
    }

    /// How long one connection attempt may take (default 5 s).
    #[must_use]
    pub fn connect_timeout(mut self, limit: Duration) -> Self {
        self.reconnect.connect_timeout = limit;
        self
    }

    /// Connects to the first node that answers.
    ///
    /// # Errors
    ///
    /// [`Error::Unreachable`](crate::Error::Unreachable) if none answers (with the last
    /// node's reason: refused, timed out, refused credentials, unknown vhost);
    /// [`Error::Server`](crate::Error::Server) 402 for a URL that does not parse.
    pub fn connect(self) -> Result<Connection> {
        let remote = RemoteConnection::open(&self)?;
        Ok(Connection::from_remote(remote))
    }
}

/// The receiving side of a remote consumer: its inbox, turned into deliveries of its channel.
pub(crate) struct RemoteFeed {
    pub(crate) channel: Arc<RemoteChannel>,
    pub(crate) inbox: Arc<Inbox<Raw>>,
    pub(crate) tag: Arc<str>,
    pub(crate) queue: String,
}

impl Source for RemoteFeed {
    type Raw = Raw;
    type Item = Delivery;

    fn inbox(&self) -> &Inbox<Raw> {
        &self.inbox
    }

    fn accept(&self, raw: Raw) -> Option<Delivery> {
        Delivery::from_remote(Arc::clone(&self.channel), raw)
    }
}
