//! Returned messages: unroutable `mandatory` publishes handed back to their publisher
//! (AMQP `basic.return`), received through a [`Returns`] handle of the channel.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::Stream;

use crate::inbox::{self, Inbox, Slot};
use crate::sync::Mutex;
use crate::{Message, RecvError, RecvTimeoutError, ReplyCode, TryRecvError};

/// A message the broker handed back to its publisher: a `mandatory` publish that reached no
/// queue, with reply code 312 `NO_ROUTE`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ReturnedMessage {
    /// Why it came back: [`ReplyCode::NO_ROUTE`] (312).
    pub reply_code: ReplyCode,
    /// RabbitMQ's text for the code: `NO_ROUTE`.
    pub reply_text: String,
    /// The exchange it was published to.
    pub exchange: String,
    /// The routing key it was published with.
    pub routing_key: String,
    /// The message, as published.
    pub message: Message,
}

/// The returns of one channel: an inbox shared by its [`Returns`] handles, alive while one
/// of them is.
#[derive(Debug, Default)]
pub(crate) struct ReturnQueue {
    /// The handles' inbox; `None` once the channel closed.
    inbox: Mutex<Option<Weak<Inbox<ReturnedMessage>>>>,
    /// The channel is closed: hand out disconnected handles.
    closed: Mutex<bool>,
}

impl ReturnQueue {
    /// Returns a handle on the inbox, creating it if no handle exists.
    pub(crate) fn handle(&self) -> Returns {
        let closed = self.closed.lock();
        if *closed {
            let inbox = Inbox::default();
            inbox.close();
            return Returns::new(Arc::new(inbox));
        }
        let mut current = self.inbox.lock();
        let inbox = current.as_ref().and_then(Weak::upgrade).unwrap_or_else(|| {
            let inbox = Arc::new(Inbox::default());
            *current = Some(Arc::downgrade(&inbox));
            inbox
        });
        Returns::new(inbox)
    }

    /// Hands a returned message to the channel's [`Returns`] handles; dropped if there are
    /// none.
    pub(crate) fn send(&self, returned: ReturnedMessage) {
        let inbox = self.inbox.lock().as_ref().and_then(Weak::upgrade);
        if let Some(inbox) = inbox {
            let _ = inbox.push(returned);
        }
    }

    /// Disconnects every handle (the channel closed).
    pub(crate) fn close(&self) {
        *self.closed.lock() = true;
        let inbox = self.inbox.lock().take().and_then(|weak| weak.upgrade());
        if let Some(inbox) = inbox {
            inbox.close();
        }
    }
}

/// Receives the messages the broker returns to a channel's publisher, in the manner of a
/// crossbeam receiver (blocking) or of a [`Stream`] (async). Created by
/// [`Channel::returns`](crate::Channel::returns); clones of one channel's handles share one
/// inbox (each return goes to one of them).
///
/// Only messages published with [`PublishOptions::mandatory`](crate::PublishOptions) come
/// back. A return is sent before the publish call returns, so a test can publish and then
/// [`try_recv`](Self::try_recv) at once. Returns made while no handle exists are dropped.
///
/// # Examples
///
/// ```
/// use warrenmq::{Broker, Message, PublishOptions, ReplyCode};
///
/// # fn main() -> Result<(), warrenmq::Error> {
/// let broker = Broker::in_memory();
/// let ch = broker.connect("/")?.open_channel()?;
/// let returns = ch.returns();
/// ch.basic_publish_with("", "nowhere", PublishOptions::mandatory(), Message::new("hi"))?;
/// let returned = returns.try_recv().expect("a return");
/// assert_eq!(returned.reply_code, ReplyCode::NO_ROUTE);
/// assert_eq!(returned.routing_key, "nowhere");
/// # Ok(())
/// # }
/// ```
///
/// As a stream:
///
/// ```
/// use futures_lite::StreamExt;
/// use warrenmq::{Broker, Message, PublishOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), warrenmq::Error> {
/// let broker = Broker::in_memory();
/// let ch = broker.connect("/")?.open_channel()?;
/// let mut returns = ch.returns();
/// ch.basic_publish_with("", "nowhere", PublishOptions::mandatory(), Message::new("hi"))?;
/// let returned = returns.next().await.expect("a return");
/// assert_eq!(returned.reply_text, "NO_ROUTE");
/// # Ok(())
/// # }
/// ```
///
/// # Blocking
///
/// `recv` parks the thread until a return arrives or the channel closes; `try_recv`, `len`
/// and `is_empty` never block. [`recv_async`](Self::recv_async) and the [`Stream`] face wait
/// without blocking the thread, and are cancel-safe (see [`Consumer::recv_async`](crate::Consumer::recv_async)).
pub struct Returns {
    /// The channel's returns inbox, shared by clones.
    inbox: Arc<Inbox<ReturnedMessage>>,
    /// The registration of the [`Stream`] face of this handle.
    stream: Slot,
}

impl Returns {
    fn new(inbox: Arc<Inbox<ReturnedMessage>>) -> Self {
        Returns {
            inbox,
            stream: None,
        }
    }

    /// Blocks until a returned message arrives.
    ///
    /// # Errors
    ///
    /// [`RecvError`] once the channel is closed and nothing is left to receive.
    pub fn recv(&self) -> Result<ReturnedMessage, RecvError> {
        inbox::recv(&*self.inbox)
    }

    /// Returns a returned message if one is waiting, without blocking.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] if none is waiting, [`TryRecvError::Disconnected`] once the
    /// channel is closed.
    pub fn try_recv(&self) -> Result<ReturnedMessage, TryRecvError> {
        inbox::try_recv(&*self.inbox)
    }

    /// Blocks until a returned message arrives or `timeout` passes.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] or [`RecvTimeoutError::Disconnected`].
    pub fn recv_timeout(&self, timeout: Duration) -> Result<ReturnedMessage, RecvTimeoutError> {
        inbox::recv_timeout(&*self.inbox, timeout)
    }

    /// Blocks until a returned message arrives or `deadline` is reached.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] or [`RecvTimeoutError::Disconnected`].
    pub fn recv_deadline(&self, deadline: Instant) -> Result<ReturnedMessage, RecvTimeoutError> {
        inbox::recv_deadline(&*self.inbox, deadline)
    }

    /// Waits for a returned message without blocking the thread.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future loses no returned message.
    ///
    /// # Errors
    ///
    /// [`RecvError`] once the channel is closed and nothing is left to receive.
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::{Broker, Message, PublishOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let broker = Broker::in_memory();
    /// let ch = broker.connect("/")?.open_channel()?;
    /// let returns = ch.returns();
    /// ch.basic_publish_with("", "nowhere", PublishOptions::mandatory(), Message::new("hi"))?;
    /// assert_eq!(returns.recv_async().await?.routing_key, "nowhere");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv_async(&self) -> Result<ReturnedMessage, RecvError> {
        inbox::recv_async(&*self.inbox).await
    }

    /// Returns a blocking iterator that ends when the channel closes.
    pub fn iter(&self) -> ReturnsIter<'_> {
        ReturnsIter { returns: self }
    }

    /// Returns an iterator over the returned messages waiting now.
    pub fn try_iter(&self) -> ReturnsTryIter<'_> {
        ReturnsTryIter { returns: self }
    }

    /// Returns the number of returned messages waiting.
    pub fn len(&self) -> usize {
        self.inbox.len()
    }

    /// Returns `true` if no returned message is waiting.
    pub fn is_empty(&self) -> bool {
        self.inbox.is_empty()
    }
}

/// Another handle on the same inbox (each return goes to one of the handles).
impl Clone for Returns {
    fn clone(&self) -> Self {
        Returns::new(Arc::clone(&self.inbox))
    }
}

/// Receives returned messages as a stream that ends when the channel closes.
impl Stream for Returns {
    type Item = ReturnedMessage;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ReturnedMessage>> {
        let this = self.get_mut();
        inbox::poll_recv(&*this.inbox, cx, &mut this.stream)
    }
}

impl Drop for Returns {
    fn drop(&mut self) {
        self.inbox.unregister(&mut self.stream);
    }
}

impl fmt::Debug for Returns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("Returns { .. }")
    }
}

/// A blocking iterator over a [`Returns`] handle.
#[derive(Debug)]
pub struct ReturnsIter<'a> {
    returns: &'a Returns,
}

impl Iterator for ReturnsIter<'_> {
    type Item = ReturnedMessage;

    fn next(&mut self) -> Option<ReturnedMessage> {
        self.returns.recv().ok()
    }
}

/// A non-blocking iterator over the returned messages waiting in a [`Returns`] handle.
#[derive(Debug)]
pub struct ReturnsTryIter<'a> {
    returns: &'a Returns,
}

impl Iterator for ReturnsTryIter<'_> {
    type Item = ReturnedMessage;

    fn next(&mut self) -> Option<ReturnedMessage> {
        self.returns.try_recv().ok()
    }
}

impl<'a> IntoIterator for &'a Returns {
    type Item = ReturnedMessage;
    type IntoIter = ReturnsIter<'a>;

    fn into_iter(self) -> ReturnsIter<'a> {
        self.iter()
    }
}
