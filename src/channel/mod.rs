//! Channels: the AMQP session API (declare, bind, publish, consume, ack) of a connection.
//!
//! - `access`: the permission checks of a connection opened as a user.
//! - `inner`: [`ChannelInner`], the shared state behind a [`Channel`], its consumers and
//!   deliveries: closing, accepting deliveries, subscriptions.
//! - `topology`: declaring, deleting, binding, purging; route previews.
//! - `basic`: publishing, getting, consuming, acknowledging.
//! - `callbacks`: callback consumers and [`Channel::wait`].
//! - `confirms`: publisher confirms.
//! - `features`: mandatory publishes and their returns, exchange-to-exchange bindings.
//! - `reply_to`: direct reply-to (`amq.rabbitmq.reply-to`).

// Without the `remote` feature a channel has one backend, and `local_or!` one arm.
#![cfg_attr(not(feature = "remote"), allow(clippy::infallible_destructuring_match))]

mod access;
mod basic;
mod callbacks;
mod confirms;
mod features;
mod inner;
mod reply_to;
mod topology;

pub use confirms::PublishConfirm;
#[cfg(feature = "wire")]
pub(crate) use confirms::Receipt;
pub(crate) use inner::ChannelInner;

use std::fmt;
use std::sync::Arc;

/// A session on a [`Connection`](crate::Connection): the AMQP methods for exchanges, queues,
/// publishing and consuming.
///
/// A channel is `Send + Sync`: threads may share one. As in AMQP, a method that fails
/// closes the channel; later calls return [`Error::ChannelClosed`](crate::Error::ChannelClosed) carrying that first
/// error. The connection and its other channels go on.
///
/// Closing a channel cancels its consumers and returns its unacknowledged messages to their
/// queues, marked redelivered. A channel closes when [`close`](Self::close) is called, when
/// its connection closes, or when the `Channel` and every [`Consumer`](crate::Consumer) and [`Delivery`](crate::Delivery) of it
/// have been dropped.
///
/// On a remote connection (feature `remote`) the methods are the same and fail with the same
/// errors; `docs/scale-out.md` lists, method by method, what differs (publish errors come on
/// the next call, `route_preview` is not supported, a reconnect reopens the channel).
pub struct Channel {
    pub(super) backend: Backend,
}

/// Where a channel's broker is.
pub(super) enum Backend {
    /// In this process.
    Local(Arc<ChannelInner>),
    /// Across the network (feature `remote`).
    #[cfg(feature = "remote")]
    Remote(Arc<crate::remote::RemoteChannel>),
}

/// Binds the in-process channel of `$self`, or returns `$remote` (an expression using
/// `$r`, the remote channel) for a remote one.
macro_rules! local_or {
    ($self:expr, $r:ident => $remote:expr) => {
        match &$self.backend {
            $crate::channel::Backend::Local(inner) => inner,
            #[cfg(feature = "remote")]
            #[allow(unused_variables)]
            $crate::channel::Backend::Remote($r) => return $remote,
        }
    };
}
pub(super) use local_or;

impl Channel {
    pub(crate) fn new(inner: Arc<ChannelInner>) -> Self {
        Channel {
            backend: Backend::Local(inner),
        }
    }

    #[cfg(feature = "remote")]
    pub(crate) fn remote(remote: Arc<crate::remote::RemoteChannel>) -> Self {
        Channel {
            backend: Backend::Remote(remote),
        }
    }

    /// Returns the number of deliveries on this channel awaiting an ack.
    pub fn unacked_count(&self) -> usize {
        let inner = local_or!(self, r => r.unacked_count());
        inner.ledger.lock().len()
    }

    /// Returns `true` once the channel is closed.
    pub fn is_closed(&self) -> bool {
        let inner = local_or!(self, r => r.is_closed());
        inner.check_open().is_err()
    }

    /// Closes the channel as if the broker had, with a reply code and text: a fault to
    /// inject in tests (RabbitMQ closes a channel so on a channel error, e.g. 406
    /// `PRECONDITION_FAILED` for an unknown delivery tag, or 404 `NOT_FOUND`).
    ///
    /// Everything happens as when an operation of the channel fails with that error: the
    /// channel closes, its consumers end (`recv` reports them disconnected, their streams
    /// end, [`wait`](Self::wait) fails), its unacknowledged messages go back to their
    /// queues, and every later operation fails with [`Error::ChannelClosed`](crate::Error::ChannelClosed)
    /// whose [`cause`](crate::Error::cause) is the error the code and text make (the
    /// variant the broker itself uses for that code, e.g.
    /// [`Error::PreconditionFailed`](crate::Error::PreconditionFailed) for 406). A hard
    /// error code (320, 5xx) closes the whole connection too, as AMQP has it. `text` may
    /// start with the code's name (`PRECONDITION_FAILED - ...`) or not. A closed channel
    /// stays as it was.
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::{Broker, ConsumeOptions, Error, FieldTable, QueueDeclareOptions};
    /// use warrenmq::ReplyCode;
    ///
    /// # fn main() -> Result<(), warrenmq::Error> {
    /// let broker = Broker::in_memory();
    /// let conn = broker.connect("/")?;
    /// let ch = conn.open_channel()?;
    /// ch.queue_declare("jobs", QueueDeclareOptions::default(), FieldTable::new())?;
    /// let consumer = ch.basic_consume("jobs", ConsumeOptions::default())?;
    /// ch.force_close(ReplyCode::PRECONDITION_FAILED, "unknown delivery tag 9")?;
    /// assert!(consumer.recv().is_err());
    /// let err = ch.basic_publish("", "jobs", warrenmq::Message::new("x")).unwrap_err();
    /// assert!(matches!(err.cause(), Some(Error::UnknownDeliveryTag { delivery_tag: 9 })));
    /// assert!(!conn.is_closed()); // a soft error closes only the channel
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::NotSupportedRemotely`](crate::Error::NotSupportedRemotely) on a channel of a
    /// remote connection.
    pub fn force_close(&self, code: crate::ReplyCode, text: &str) -> crate::Result<()> {
        let inner = local_or!(self, r => Err(crate::Error::NotSupportedRemotely {
            operation: "force_close",
        }));
        let cause = crate::error::forced(code, text);
        if code.is_channel_error() {
            inner.close_with(Some(std::sync::Arc::new(cause)));
        } else {
            inner.close_with(Some(std::sync::Arc::new(cause.clone())));
            inner.conn.force_close(cause);
        }
        Ok(())
    }

    /// Closes the channel: cancels its consumers and requeues its unacknowledged deliveries.
    /// Closing a closed channel does nothing.
    pub fn close(&self) {
        let inner = local_or!(self, r => r.close());
        inner.close_with(None);
    }
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("Channel { .. }")
    }
}
