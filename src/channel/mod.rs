//! Channels: the AMQP session API (declare, bind, publish, consume, ack) of a connection.
//!
//! - `inner`: [`ChannelInner`], the shared state behind a [`Channel`], its consumers and
//!   deliveries: closing, accepting deliveries, subscriptions.
//! - `topology`: declaring, deleting, binding, purging; route previews.
//! - `basic`: publishing, getting, consuming, acknowledging.
//! - `callbacks`: callback consumers and [`Channel::wait`].
//! - `confirms`: publisher confirms.
//! - `features`: mandatory publishes and their returns, exchange-to-exchange bindings.
//! - `reply_to`: direct reply-to (`amq.rabbitmq.reply-to`).

mod basic;
mod callbacks;
mod confirms;
mod features;
mod inner;
mod reply_to;
mod topology;

pub use confirms::PublishConfirm;
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
pub struct Channel {
    pub(super) inner: Arc<ChannelInner>,
}

impl Channel {
    pub(crate) fn new(inner: Arc<ChannelInner>) -> Self {
        Channel { inner }
    }

    /// Returns the number of deliveries on this channel awaiting an ack.
    pub fn unacked_count(&self) -> usize {
        self.inner.ledger.lock().len()
    }

    /// Returns `true` once the channel is closed.
    pub fn is_closed(&self) -> bool {
        self.inner.check_open().is_err()
    }

    /// Closes the channel: cancels its consumers and requeues its unacknowledged deliveries.
    /// Closing a closed channel does nothing.
    pub fn close(&self) {
        self.inner.close_with(None);
    }
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("Channel { .. }")
    }
}
