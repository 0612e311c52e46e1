//! What a remote connection tells the application about its link to the cluster:
//! [`ConnectionEvent`]s, received through [`ConnectionEvents`].

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::Stream;

use crate::inbox::{self, Inbox, Slot};
use crate::{RecvError, RecvTimeoutError, TryRecvError};

/// A change in a remote connection's link to its nodes, from [`ConnectionEvents`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// The connection to the node was lost; the connection is reconnecting. Publishes whose
    /// confirms were outstanding are reported as not confirmed.
    Lost {
        /// The node that was lost (its URL without the password).
        node: String,
        /// What the connection reported.
        reason: String,
    },
    /// The connection is up again on `node`: the topology the application declared was
    /// declared again, its channels reopened and its consumers subscribed again.
    Reconnected {
        /// The node now connected to (its URL without the password).
        node: String,
        /// Connection attempts it took (1 when the first node tried answered).
        attempts: u32,
        /// How long the connection was down.
        down_for: Duration,
    },
    /// Recovery gave up (no node answered in the configured time); the connection is
    /// closed.
    Failed {
        /// What the last attempt reported.
        reason: String,
    },
}

/// Receives the [`ConnectionEvent`]s of a connection, blocking or async (a [`Stream`]); from
/// [`Connection::events`](crate::Connection::events). Clones of one connection's handles
/// share one inbox: each event goes to one of them. The handle disconnects when the
/// connection closes; an in-process connection never has events, so its handle is
/// disconnected from the start.
pub struct ConnectionEvents {
    inbox: Arc<Inbox<ConnectionEvent>>,
    stream: Slot,
}

impl ConnectionEvents {
    pub(crate) fn new(inbox: Arc<Inbox<ConnectionEvent>>) -> Self {
        ConnectionEvents {
            inbox,
            stream: None,
        }
    }

    /// A handle that never receives anything (an in-process connection's).
    pub(crate) fn none() -> Self {
        let inbox = Inbox::default();
        inbox.close();
        ConnectionEvents::new(Arc::new(inbox))
    }

    /// Blocks until an event arrives.
    ///
    /// # Errors
    ///
    /// [`RecvError`] once the connection is closed and no event is left.
    pub fn recv(&self) -> Result<ConnectionEvent, RecvError> {
        inbox::recv(&*self.inbox)
    }

    /// Returns an event if one is waiting.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] or [`TryRecvError::Disconnected`].
    pub fn try_recv(&self) -> Result<ConnectionEvent, TryRecvError> {
        inbox::try_recv(&*self.inbox)
    }

    /// Blocks until an event arrives or `timeout` passes.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] or [`RecvTimeoutError::Disconnected`].
    pub fn recv_timeout(&self, timeout: Duration) -> Result<ConnectionEvent, RecvTimeoutError> {
        inbox::recv_deadline(&*self.inbox, deadline_after(timeout))
    }

    /// Waits for an event without blocking the thread (cancel-safe).
    ///
    /// # Errors
    ///
    /// [`RecvError`] once the connection is closed and no event is left.
    pub async fn recv_async(&self) -> Result<ConnectionEvent, RecvError> {
        inbox::recv_async(&*self.inbox).await
    }
}

fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365))
}

impl Clone for ConnectionEvents {
    fn clone(&self) -> Self {
        ConnectionEvents::new(Arc::clone(&self.inbox))
    }
}

impl Stream for ConnectionEvents {
    type Item = ConnectionEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ConnectionEvent>> {
        let this = self.get_mut();
        inbox::poll_recv(&*this.inbox, cx, &mut this.stream)
    }
}

impl Drop for ConnectionEvents {
    fn drop(&mut self) {
        self.inbox.unregister(&mut self.stream);
    }
}

impl fmt::Debug for ConnectionEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionEvents")
            .field("waiting", &self.inbox.len())
            .finish()
    }
}
