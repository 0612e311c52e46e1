//! Returned messages: unroutable `mandatory` publishes handed back to their publisher
//! (AMQP `basic.return`), received through a [`Returns`] handle of the channel.

use std::fmt;
use std::time::{Duration, Instant};

use crate::sync::{recv_timeout_error, try_recv_error, unbounded, Mutex, Receiver, Sender};
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

/// The returns of one channel: created on the first [`Channel::returns`](crate::Channel::returns).
#[derive(Debug, Default)]
pub(crate) struct ReturnQueue {
    /// The inbox, once someone asked for returns; `None` again once the channel closed.
    inbox: Mutex<Option<(Sender<ReturnedMessage>, Receiver<ReturnedMessage>)>>,
    /// The channel is closed: hand out disconnected handles.
    closed: Mutex<bool>,
}

impl ReturnQueue {
    /// Returns a handle on the inbox, creating it on first use.
    pub(crate) fn handle(&self) -> Returns {
        let closed = self.closed.lock();
        if *closed {
            let (_, rx) = unbounded();
            return Returns { rx };
        }
        let mut inbox = self.inbox.lock();
        let (_, rx) = inbox.get_or_insert_with(unbounded);
        Returns { rx: rx.clone() }
    }

    /// Hands a returned message to the channel's [`Returns`] handles; dropped if there are
    /// none.
    pub(crate) fn send(&self, returned: ReturnedMessage) {
        if let Some((tx, _)) = &*self.inbox.lock() {
            let _ = tx.send(returned);
        }
    }

    /// Disconnects every handle (the channel closed).
    pub(crate) fn close(&self) {
        *self.closed.lock() = true;
        self.inbox.lock().take();
    }
}

/// Receives the messages the broker returns to a channel's publisher, in the manner of a
/// crossbeam receiver. Created by [`Channel::returns`](crate::Channel::returns); clones of
/// one channel's handles share one inbox (each return goes to one of them).
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
/// # Blocking
///
/// `recv` parks the thread until a return arrives or the channel closes.
#[derive(Clone)]
pub struct Returns {
    rx: Receiver<ReturnedMessage>,
}

impl Returns {
    /// Blocks until a returned message arrives.
    ///
    /// # Errors
    ///
    /// [`RecvError`] once the channel is closed and nothing is left to receive.
    pub fn recv(&self) -> Result<ReturnedMessage, RecvError> {
        self.rx.recv().map_err(|_| RecvError)
    }

    /// Returns a returned message if one is waiting, without blocking.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] if none is waiting, [`TryRecvError::Disconnected`] once the
    /// channel is closed.
    pub fn try_recv(&self) -> Result<ReturnedMessage, TryRecvError> {
        self.rx.try_recv().map_err(try_recv_error)
    }

    /// Blocks until a returned message arrives or `timeout` passes.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] or [`RecvTimeoutError::Disconnected`].
    pub fn recv_timeout(&self, timeout: Duration) -> Result<ReturnedMessage, RecvTimeoutError> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.recv_deadline(deadline),
            None => self.recv().map_err(RecvTimeoutError::from),
        }
    }

    /// Blocks until a returned message arrives or `deadline` is reached.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] or [`RecvTimeoutError::Disconnected`].
    pub fn recv_deadline(&self, deadline: Instant) -> Result<ReturnedMessage, RecvTimeoutError> {
        self.rx.recv_deadline(deadline).map_err(recv_timeout_error)
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
        self.rx.len()
    }

    /// Returns `true` if no returned message is waiting.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
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
