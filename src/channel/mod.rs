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

// Without the `remote` feature a channel has one backend, and `local_or!` one arm.
#![cfg_attr(not(feature = "remote"), allow(clippy::infallible_destructuring_match))]

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
