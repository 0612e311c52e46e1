//! Connections: a client's session with one vhost, owning channels and exclusive queues.

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use crate::auth::Identity;
use crate::channel::{Channel, ChannelInner};
use crate::ids::ConnectionId;
use crate::queue::Queue;
use crate::sync::Mutex;
use crate::vhost::VHost;
use crate::{Error, ReplyCode, Result};

/// What keeps the broker open while a connection lives (the broker's shared state, opaque
/// here so that connections do not depend on the broker).
pub(crate) type Keepalive = Arc<dyn Any + Send + Sync>;

/// The shared state of a connection.
pub(crate) struct ConnectionInner {
    /// Unique id.
    pub(crate) id: ConnectionId,
    /// Keeps the broker open.
    _broker: Keepalive,
    /// The vhost connected to.
    pub(crate) vhost: Arc<VHost>,
    /// The user whose permissions its operations are checked against; `None` for a
    /// trusted connection ([`Broker::connect`](crate::Broker::connect)).
    pub(crate) identity: Option<Identity>,
    /// Set once when the connection closes.
    closed: AtomicBool,
    /// Why the broker closed it, when it was closed by [`Connection::force_close`].
    cause: OnceLock<Error>,
    /// Channels opened on this connection.
    channels: Mutex<Vec<Weak<ChannelInner>>>,
    /// Exclusive queues this connection declared; deleted when it closes.
    exclusive_queues: Mutex<Vec<Arc<Queue>>>,
}

impl ConnectionInner {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The error of an operation on this closed connection: [`Error::BrokerClosed`] when the
    /// broker closed it, [`Error::ConnectionClosed`] otherwise.
    pub(crate) fn closed_error(&self) -> Error {
        if self.vhost.settings().is_closed() {
            Error::BrokerClosed
        } else {
            self.cause.get().cloned().unwrap_or(Error::ConnectionClosed)
        }
    }

    pub(crate) fn own_exclusive(&self, queue: Arc<Queue>) {
        self.exclusive_queues.lock().push(queue);
    }

    /// Closes the connection with `cause` as the error of every later operation.
    pub(crate) fn force_close(&self, cause: Error) {
        if self.is_closed() {
            return;
        }
        let _ = self.cause.set(cause);
        self.close();
    }

    pub(crate) fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::debug!(vhost = %self.vhost.name, "connection closed");
        let channels = std::mem::take(&mut *self.channels.lock());
        for channel in channels.iter().filter_map(Weak::upgrade) {
            channel.close_with(None);
        }
        let queues = std::mem::take(&mut *self.exclusive_queues.lock());
        for queue in &queues {
            self.vhost.drop_queue(queue);
        }
    }
}

/// A connection to one vhost of a [`Broker`](crate::Broker), carrying any number of
/// [`Channel`]s.
///
/// Closing the connection closes its channels (their unacknowledged messages go back to
/// their queues) and deletes the exclusive queues it declared. A connection closes when
/// [`close`](Self::close) is called, or when the `Connection` and every [`Channel`] (with
/// its consumers and deliveries) have been dropped.
///
/// # Remote connections
///
/// With the `remote` feature, `Connection::open` and `Connection::builder` give a
/// `Connection` to `warren-server` or a RabbitMQ cluster instead, with the same methods, the
/// same channels, consumers and errors (`docs/scale-out.md` lists the differences).
pub struct Connection {
    backend: Backend,
}

/// Where a connection's broker is.
enum Backend {
    /// In this process.
    Local(Arc<ConnectionInner>),
    /// Across the network.
    #[cfg(feature = "remote")]
    Remote(Arc<crate::remote::RemoteConnection>),
}

impl Connection {
    pub(crate) fn new(broker: Keepalive, vhost: Arc<VHost>, identity: Option<Identity>) -> Self {
        let id = vhost.settings().next_connection();
        Connection {
            backend: Backend::Local(Arc::new(ConnectionInner {
                id,
                _broker: broker,
                vhost,
                identity,
                closed: AtomicBool::new(false),
                cause: OnceLock::new(),
                channels: Mutex::new(Vec::new()),
                exclusive_queues: Mutex::new(Vec::new()),
            })),
        }
    }

    #[cfg(feature = "remote")]
    pub(crate) fn from_remote(remote: Arc<crate::remote::RemoteConnection>) -> Self {
        Connection {
            backend: Backend::Remote(remote),
        }
    }

    /// Connects to a remote broker (`warren-server`, RabbitMQ) by URL:
    /// `amqp://user:password@host:port/vhost`, the vhost URL-encoded (`%2f` for `/`). For
    /// several nodes and the reconnection settings use [`Connection::builder`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use warrenmq::{Connection, FieldTable, Message, QueueDeclareOptions};
    ///
    /// # fn main() -> Result<(), warrenmq::Error> {
    /// let conn = Connection::open("amqp://guest:guest@127.0.0.1:5672/%2f")?;
    /// let ch = conn.open_channel()?;
    /// ch.queue_declare("hello", QueueDeclareOptions::default(), FieldTable::new())?;
    /// ch.basic_publish("", "hello", Message::new("Hello World!"))?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`ConnectionBuilder::connect`](crate::ConnectionBuilder::connect).
    #[cfg(feature = "remote")]
    #[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
    pub fn open(url: &str) -> Result<Connection> {
        crate::ConnectionBuilder::default().node(url).connect()
    }

    /// Returns a builder for a remote connection to one node or a cluster.
    #[cfg(feature = "remote")]
    #[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
    pub fn builder() -> crate::ConnectionBuilder {
        crate::ConnectionBuilder::default()
    }

    /// Returns a handle on the connection's events: for a remote connection, each loss of
    /// its node and each reconnection. An in-process connection has none (the handle is
    /// disconnected from the start).
    #[cfg(feature = "remote")]
    #[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
    pub fn events(&self) -> crate::ConnectionEvents {
        match &self.backend {
            Backend::Local(_) => crate::ConnectionEvents::none(),
            Backend::Remote(remote) => crate::ConnectionEvents::new(remote.events()),
        }
    }

    /// Returns `true` for a connection to a remote broker, `false` in process.
    pub fn is_remote(&self) -> bool {
        !matches!(self.backend, Backend::Local(_))
    }

    /// Opens a new channel.
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionClosed`] if the connection is closed, [`Error::BrokerClosed`] if
    /// its broker is.
    #[cfg_attr(not(feature = "remote"), allow(clippy::infallible_destructuring_match))]
    pub fn open_channel(&self) -> Result<Channel> {
        let inner = match &self.backend {
            Backend::Local(inner) => inner,
            #[cfg(feature = "remote")]
            Backend::Remote(remote) => {
                return crate::remote::RemoteChannel::open(remote).map(Channel::remote);
            }
        };
        if inner.is_closed() {
            return Err(inner.closed_error());
        }
        inner.vhost.check_not_deleted()?;
        let channel = ChannelInner::new(Arc::clone(inner));
        let mut channels = inner.channels.lock();
        channels.retain(|c| c.strong_count() > 0);
        channels.push(Arc::downgrade(&channel));
        tracing::trace!(vhost = %inner.vhost.name, channels = channels.len(), "channel opened");
        Ok(Channel::new(channel))
    }

    /// Returns a weak reference to the shared state, for the broker's list of connections
    /// (one that never upgrades for a remote connection, which no broker here lists).
    pub(crate) fn downgrade(&self) -> Weak<ConnectionInner> {
        match &self.backend {
            Backend::Local(inner) => Arc::downgrade(inner),
            #[cfg(feature = "remote")]
            Backend::Remote(_) => Weak::new(),
        }
    }

    /// Returns the user this connection was opened as, or `None` for a trusted connection
    /// ([`Broker::connect`](crate::Broker::connect)) and for a remote one.
    pub fn user(&self) -> Option<&str> {
        match &self.backend {
            Backend::Local(inner) => inner.identity.as_ref().map(|i| &*i.user),
            #[cfg(feature = "remote")]
            Backend::Remote(_) => None,
        }
    }

    /// Returns the name of the vhost this connection is in.
    pub fn vhost(&self) -> &str {
        match &self.backend {
            Backend::Local(inner) => &inner.vhost.name,
            #[cfg(feature = "remote")]
            Backend::Remote(remote) => &remote.vhost,
        }
    }

    /// Returns `true` once the connection is closed.
    pub fn is_closed(&self) -> bool {
        match &self.backend {
            Backend::Local(inner) => inner.is_closed(),
            #[cfg(feature = "remote")]
            Backend::Remote(remote) => remote.is_closed(),
        }
    }

    /// Closes the connection as if the broker had, with a reply code and text: a fault to
    /// inject in tests (RabbitMQ closes a connection so when an operator runs
    /// `rabbitmqctl close_connection` — 320 `CONNECTION_FORCED` — or on a hard error such as
    /// 541 `INTERNAL_ERROR`).
    ///
    /// Everything happens as when the broker closes a connection: its channels close (their
    /// unacknowledged messages go back to their queues, their consumers end: `recv` reports
    /// them disconnected and their streams end), its exclusive queues are deleted, and every
    /// later operation on it or its channels fails with the error the code and text make —
    /// the variant the broker itself uses for that code (`Error::Internal` for 541, for
    /// example), or [`Error::Server`] with the code and text where the broker has none (320
    /// among them, so that the text is kept). `text` may start with the code's name
    /// (`CONNECTION_FORCED - ...`) or not. A closed connection stays as it was.
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::{Broker, ConsumeOptions, FieldTable, QueueDeclareOptions, ReplyCode};
    ///
    /// # fn main() -> Result<(), warrenmq::Error> {
    /// let broker = Broker::in_memory();
    /// let conn = broker.connect("/")?;
    /// let ch = conn.open_channel()?;
    /// ch.queue_declare("jobs", QueueDeclareOptions::default(), FieldTable::new())?;
    /// let consumer = ch.basic_consume("jobs", ConsumeOptions::default())?;
    /// conn.force_close(ReplyCode::CONNECTION_FORCED, "Closed via management plugin")?;
    /// assert!(consumer.recv().is_err()); // the consumer ended
    /// let err = ch.queue_declare("jobs", QueueDeclareOptions::default(), FieldTable::new());
    /// let err = err.unwrap_err();
    /// assert_eq!(err.reply_code(), ReplyCode::CONNECTION_FORCED);
    /// assert_eq!(err.to_string(), "CONNECTION_FORCED - Closed via management plugin");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::NotSupportedRemotely`] on a remote connection (close it from the server:
    /// `rabbitmqctl close_connection`).
    pub fn force_close(&self, code: ReplyCode, text: &str) -> Result<()> {
        match &self.backend {
            Backend::Local(inner) => {
                inner.force_close(crate::error::forced(code, text));
                Ok(())
            }
            #[cfg(feature = "remote")]
            Backend::Remote(_) => Err(Error::NotSupportedRemotely {
                operation: "force_close",
            }),
        }
    }

    /// Closes the connection, its channels and its exclusive queues. Closing twice does
    /// nothing.
    pub fn close(&self) {
        match &self.backend {
            Backend::Local(inner) => inner.close(),
            #[cfg(feature = "remote")]
            Backend::Remote(remote) => remote.close_with(None),
        }
    }
}

impl Drop for ConnectionInner {
    fn drop(&mut self) {
        self.close();
    }
}

impl fmt::Debug for ConnectionInner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionInner")
            .field("id", &self.id)
            .field("vhost", &self.vhost.name)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("vhost", &self.vhost())
            .finish_non_exhaustive()
    }
}
