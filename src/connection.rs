//! Connections: a client's session with one vhost, owning channels and exclusive queues.

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use crate::channel::{Channel, ChannelInner};
use crate::ids::ConnectionId;
use crate::queue::Queue;
use crate::sync::Mutex;
use crate::vhost::VHost;
use crate::{Error, Result};

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
    /// Set once when the connection closes.
    closed: AtomicBool,
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
            Error::ConnectionClosed
        }
    }

    pub(crate) fn own_exclusive(&self, queue: Arc<Queue>) {
        self.exclusive_queues.lock().push(queue);
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
pub struct Connection {
    inner: Arc<ConnectionInner>,
}

impl Connection {
    pub(crate) fn new(broker: Keepalive, vhost: Arc<VHost>) -> Self {
        let id = vhost.settings().next_connection();
        Connection {
            inner: Arc::new(ConnectionInner {
                id,
                _broker: broker,
                vhost,
                closed: AtomicBool::new(false),
                channels: Mutex::new(Vec::new()),
                exclusive_queues: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Opens a new channel.
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionClosed`] if the connection is closed, [`Error::BrokerClosed`] if
    /// its broker is.
    pub fn open_channel(&self) -> Result<Channel> {
        if self.inner.is_closed() {
            return Err(self.inner.closed_error());
        }
        let channel = ChannelInner::new(Arc::clone(&self.inner));
        let mut channels = self.inner.channels.lock();
        channels.retain(|c| c.strong_count() > 0);
        channels.push(Arc::downgrade(&channel));
        tracing::trace!(vhost = %self.inner.vhost.name, channels = channels.len(), "channel opened");
        Ok(Channel::new(channel))
    }

    /// Returns a weak reference to the shared state, for the broker's list of connections.
    pub(crate) fn downgrade(&self) -> Weak<ConnectionInner> {
        Arc::downgrade(&self.inner)
    }

    /// Returns the name of the vhost this connection is in.
    pub fn vhost(&self) -> &str {
        &self.inner.vhost.name
    }

    /// Returns `true` once the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Closes the connection, its channels and its exclusive queues. Closing twice does
    /// nothing.
    pub fn close(&self) {
        self.inner.close();
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
