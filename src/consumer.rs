//! Receiving messages: the [`Consumer`] handle (blocking and async) and the [`Delivery`] it
//! yields.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_core::Stream;

use crate::channel::ChannelInner;
use crate::envelope::{Holding, QueuedMessage};
use crate::ids::ConsumerKey;
use crate::inbox::{self, Inbox, Slot, Source};
use crate::queue::Queue;
use crate::{Message, Properties, RecvError, RecvTimeoutError, Result, TryRecvError};

/// What ties a consumer to its queue and channel.
#[derive(Debug)]
pub(crate) struct ConsumerLink {
    /// Broker-wide unique key.
    pub(crate) key: ConsumerKey,
    /// The consumer tag.
    pub(crate) tag: Arc<str>,
    /// The queue consumed from.
    pub(crate) queue: Arc<Queue>,
    /// The inbox the queue delivers to.
    pub(crate) inbox: Arc<Inbox<QueuedMessage>>,
    /// Deliveries count as acknowledged on receipt.
    pub(crate) no_ack: bool,
    /// Has a prefetch limit.
    pub(crate) limited: bool,
}

/// A message delivered to a consumer or fetched with `basic_get`.
///
/// Acknowledge it with [`ack`](Self::ack), [`nack`](Self::nack) or [`reject`](Self::reject),
/// or later by tag with [`Channel::basic_ack`](crate::Channel::basic_ack) and friends.
///
/// # Redelivery
///
/// Dropping a `Delivery` does not acknowledge it: as in AMQP, it stays unacknowledged until
/// acked by tag or until its channel closes, when it goes back to its queue with
/// [`redelivered`](Self::redelivered) set.
#[must_use = "an unacknowledged delivery stays unacked until acked or its channel closes"]
pub struct Delivery {
    channel: Settler,
    envelope: Holding,
    delivery_tag: u64,
    redelivered: bool,
    consumer_tag: Option<Arc<str>>,
    message_count: Option<u32>,
}

/// Who acknowledges a delivery.
enum Settler {
    Local(Arc<ChannelInner>),
    #[cfg(feature = "remote")]
    Remote(Arc<crate::remote::RemoteChannel>),
}

impl Delivery {
    pub(crate) fn new(
        channel: Arc<ChannelInner>,
        envelope: Holding,
        redelivered: bool,
        delivery_tag: u64,
        consumer_tag: Option<Arc<str>>,
        message_count: Option<u32>,
    ) -> Self {
        Delivery {
            channel: Settler::Local(channel),
            envelope,
            delivery_tag,
            redelivered,
            consumer_tag,
            message_count,
        }
    }

    /// A delivery of a remote consumer, or `None` if it came on a link that has been lost
    /// since (its message will be delivered again).
    #[cfg(feature = "remote")]
    pub(crate) fn from_remote(
        channel: Arc<crate::remote::RemoteChannel>,
        raw: crate::remote::Raw,
    ) -> Option<Self> {
        if !raw.no_ack && raw.epoch != channel.epoch() {
            return None;
        }
        let consumer_tag = Some(Arc::clone(&raw.consumer_tag));
        Some(Self::remote(channel, raw, consumer_tag, None))
    }

    /// A message fetched with `basic_get` on a remote channel.
    #[cfg(feature = "remote")]
    pub(crate) fn from_remote_get(
        channel: Arc<crate::remote::RemoteChannel>,
        raw: crate::remote::Raw,
        message_count: u32,
    ) -> Option<Self> {
        Some(Self::remote(channel, raw, None, Some(message_count)))
    }

    #[cfg(feature = "remote")]
    fn remote(
        channel: Arc<crate::remote::RemoteChannel>,
        raw: crate::remote::Raw,
        consumer_tag: Option<Arc<str>>,
        message_count: Option<u32>,
    ) -> Self {
        Delivery {
            channel: Settler::Remote(channel),
            envelope: Holding::Own(crate::envelope::Envelope {
                message: raw.message,
                exchange: raw.exchange,
                routing_key: raw.routing_key,
                // Held by the remote broker, not charged here.
                _charge: crate::alarm::Charge::default(),
            }),
            delivery_tag: raw.tag,
            redelivered: raw.redelivered,
            consumer_tag,
            message_count,
        }
    }

    /// Returns the body.
    pub fn body(&self) -> &Bytes {
        self.envelope.message.body()
    }

    /// Returns the properties.
    pub fn properties(&self) -> &Properties {
        self.envelope.message.properties()
    }

    /// Returns the message (body and properties) as published.
    pub fn message(&self) -> &Message {
        &self.envelope.message
    }

    /// Returns the delivery tag, unique on its channel.
    pub fn delivery_tag(&self) -> u64 {
        self.delivery_tag
    }

    /// Returns `true` if the message was delivered before and requeued.
    pub fn redelivered(&self) -> bool {
        self.redelivered
    }

    /// Returns the exchange the message was published to.
    pub fn exchange(&self) -> &str {
        &self.envelope.exchange
    }

    /// Returns the routing key the message was published with.
    pub fn routing_key(&self) -> &str {
        &self.envelope.routing_key
    }

    /// Returns the consumer tag, or `None` for a message fetched with `basic_get`.
    pub fn consumer_tag(&self) -> Option<&str> {
        self.consumer_tag.as_deref()
    }

    /// For `basic_get`, returns the number of messages left ready in the queue.
    pub fn message_count(&self) -> Option<u32> {
        self.message_count
    }

    /// Acknowledges this delivery.
    ///
    /// # Errors
    ///
    /// 406 if it was already acknowledged or came from a `no_ack` consumer; 504 if the
    /// channel is closed.
    pub fn ack(self) -> Result<()> {
        match &self.channel {
            Settler::Local(channel) => channel.ack(self.delivery_tag, false),
            #[cfg(feature = "remote")]
            Settler::Remote(channel) => {
                channel.settle(self.delivery_tag, false, crate::remote::Settle::Ack)
            }
        }
    }

    /// Rejects this delivery: requeued if `requeue`, otherwise discarded (or dead-lettered).
    ///
    /// # Errors
    ///
    /// As for [`ack`](Self::ack).
    pub fn nack(self, requeue: bool) -> Result<()> {
        match &self.channel {
            Settler::Local(channel) => channel.nack(self.delivery_tag, false, requeue),
            #[cfg(feature = "remote")]
            Settler::Remote(channel) => channel.settle(
                self.delivery_tag,
                false,
                crate::remote::Settle::Nack { requeue },
            ),
        }
    }

    /// Rejects this delivery; the same as [`nack`](Self::nack) for one message.
    ///
    /// # Errors
    ///
    /// As for [`ack`](Self::ack).
    pub fn reject(self, requeue: bool) -> Result<()> {
        self.nack(requeue)
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("delivery_tag", &self.delivery_tag)
            .field("redelivered", &self.redelivered)
            .field("exchange", &self.exchange())
            .field("routing_key", &self.routing_key())
            .field("consumer_tag", &self.consumer_tag)
            .field("body_len", &self.body().len())
            .finish()
    }
}

/// A subscription to a queue that receives deliveries, in the manner of a crossbeam
/// receiver (blocking) or of a [`Stream`] (async).
///
/// Dropping a `Consumer` cancels it; messages that waited in it unreceived go back to the
/// queue, in order.
///
/// # Blocking
///
/// `recv` parks the thread until a delivery arrives or the consumer is cancelled (its queue
/// deleted, its channel or connection closed); an idle consumer uses no CPU. `try_recv`,
/// `len` and `is_empty` never block.
///
/// # Async
///
/// [`recv_async`](Self::recv_async) and the [`Stream`] implementation wait without blocking
/// the thread, on any executor (the crate runs no runtime of its own): a service can serve
/// thousands of consumers from a few tasks.
///
/// # Examples
///
/// ```
/// use warrenmq::{Broker, ConsumeOptions, FieldTable, Message, QueueDeclareOptions};
///
/// # fn main() -> Result<(), warrenmq::Error> {
/// let broker = Broker::in_memory();
/// let ch = broker.connect("/")?.open_channel()?;
/// ch.queue_declare("tasks", QueueDeclareOptions::default(), FieldTable::new())?;
/// let consumer = ch.basic_consume("tasks", ConsumeOptions::default())?;
/// ch.basic_publish("", "tasks", Message::new("work"))?;
/// let delivery = consumer.recv().expect("a delivery");
/// assert_eq!(delivery.body().as_ref(), b"work");
/// delivery.ack()?;
/// # Ok(())
/// # }
/// ```
///
/// The same consumer as a stream, on tokio:
///
/// ```
/// use futures_lite::StreamExt;
/// use warrenmq::{Broker, ConsumeOptions, FieldTable, Message, QueueDeclareOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), warrenmq::Error> {
/// let broker = Broker::in_memory();
/// let ch = broker.connect("/")?.open_channel()?;
/// ch.queue_declare("tasks", QueueDeclareOptions::default(), FieldTable::new())?;
/// let mut consumer = ch.basic_consume("tasks", ConsumeOptions::default())?;
/// ch.basic_publish("", "tasks", Message::new("work"))?;
/// while let Some(delivery) = consumer.next().await {
///     assert_eq!(delivery.body().as_ref(), b"work");
///     delivery.ack()?;
///     # break;
/// }
/// # Ok(())
/// # }
/// ```
pub struct Consumer {
    /// What deliveries come from.
    feed: Feeds,
    /// The registration of the [`Stream`] face.
    stream: Slot,
}

/// The receiving side of an in-process or a remote consumer.
enum Feeds {
    Local(Feed),
    #[cfg(feature = "remote")]
    Remote(crate::remote::RemoteFeed),
}

/// Runs `$body` with `$f` bound to the consumer's feed, whichever kind it is.
macro_rules! with_feed {
    ($self:expr, $f:ident => $body:expr) => {
        match &$self.feed {
            Feeds::Local($f) => $body,
            #[cfg(feature = "remote")]
            Feeds::Remote($f) => $body,
        }
    };
}

/// The receiving side of a consumer: its inbox, turned into deliveries by its channel.
struct Feed {
    link: Arc<ConsumerLink>,
    channel: Arc<ChannelInner>,
}

impl Source for Feed {
    type Raw = QueuedMessage;
    type Item = Delivery;

    fn inbox(&self) -> &Inbox<QueuedMessage> {
        &self.link.inbox
    }

    fn accept(&self, msg: QueuedMessage) -> Option<Delivery> {
        self.channel.accept(&self.link, msg)
    }
}

impl Consumer {
    pub(crate) fn new(link: Arc<ConsumerLink>, channel: Arc<ChannelInner>) -> Self {
        Consumer {
            feed: Feeds::Local(Feed { link, channel }),
            stream: None,
        }
    }

    #[cfg(feature = "remote")]
    pub(crate) fn remote(
        channel: Arc<crate::remote::RemoteChannel>,
        tag: Arc<str>,
        inbox: Arc<crate::inbox::Inbox<crate::remote::Raw>>,
        queue: &str,
    ) -> Self {
        Consumer {
            feed: Feeds::Remote(crate::remote::RemoteFeed {
                channel,
                inbox,
                tag,
                queue: queue.to_owned(),
            }),
            stream: None,
        }
    }

    /// Returns the consumer tag.
    pub fn tag(&self) -> &str {
        match &self.feed {
            Feeds::Local(f) => &f.link.tag,
            #[cfg(feature = "remote")]
            Feeds::Remote(f) => &f.tag,
        }
    }

    /// Returns the name of the queue consumed from.
    pub fn queue(&self) -> &str {
        match &self.feed {
            Feeds::Local(f) => &f.link.queue.name,
            #[cfg(feature = "remote")]
            Feeds::Remote(f) => &f.queue,
        }
    }

    /// Blocks until a delivery arrives.
    ///
    /// # Errors
    ///
    /// [`RecvError`] once the consumer is cancelled and nothing is left to receive.
    pub fn recv(&self) -> Result<Delivery, RecvError> {
        with_feed!(self, f => inbox::recv(f))
    }

    /// Returns a delivery if one is waiting, without blocking.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] if none is waiting, [`TryRecvError::Disconnected`] once the
    /// consumer is cancelled.
    pub fn try_recv(&self) -> Result<Delivery, TryRecvError> {
        with_feed!(self, f => inbox::try_recv(f))
    }

    /// Blocks until a delivery arrives or `timeout` passes.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] or [`RecvTimeoutError::Disconnected`].
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Delivery, RecvTimeoutError> {
        with_feed!(self, f => inbox::recv_timeout(f, timeout))
    }

    /// Blocks until a delivery arrives or `deadline` is reached.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] or [`RecvTimeoutError::Disconnected`].
    pub fn recv_deadline(&self, deadline: Instant) -> Result<Delivery, RecvTimeoutError> {
        with_feed!(self, f => inbox::recv_deadline(f, deadline))
    }

    /// Waits for a delivery without blocking the thread.
    ///
    /// Several tasks may wait on one consumer at once; each delivery goes to one of them.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a delivery leaves the consumer only when the future completes with it,
    /// so dropping the future (in a `select!` branch that lost, on a timeout) loses nothing.
    ///
    /// # Errors
    ///
    /// [`RecvError`] once the consumer is cancelled and nothing is left to receive.
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::{Broker, ConsumeOptions, FieldTable, Message, QueueDeclareOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let broker = Broker::in_memory();
    /// let ch = broker.connect("/")?.open_channel()?;
    /// ch.queue_declare("tasks", QueueDeclareOptions::default(), FieldTable::new())?;
    /// let consumer = ch.basic_consume("tasks", ConsumeOptions::default())?;
    /// ch.basic_publish("", "tasks", Message::new("work"))?;
    /// let delivery = consumer.recv_async().await?;
    /// delivery.ack()?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv_async(&self) -> Result<Delivery, RecvError> {
        with_feed!(self, f => inbox::recv_async(f).await)
    }

    /// Returns a blocking iterator that ends when the consumer is cancelled.
    pub fn iter(&self) -> Iter<'_> {
        Iter { consumer: self }
    }

    /// Returns an iterator over the deliveries waiting now.
    pub fn try_iter(&self) -> TryIter<'_> {
        TryIter { consumer: self }
    }

    /// Returns the number of deliveries waiting to be received.
    pub fn len(&self) -> usize {
        with_feed!(self, f => f.inbox().len())
    }

    /// Returns `true` if no delivery is waiting.
    pub fn is_empty(&self) -> bool {
        with_feed!(self, f => f.inbox().is_empty())
    }

    /// Cancels the consumer (`basic_cancel`); the same as dropping it.
    ///
    /// # Errors
    ///
    /// 504 if the channel is closed.
    pub fn cancel(self) -> Result<()> {
        match &self.feed {
            Feeds::Local(f) => f.channel.cancel(&f.link.tag),
            #[cfg(feature = "remote")]
            Feeds::Remote(f) => f.channel.cancel(&f.tag),
        }
    }
}

/// Receives deliveries as a stream that ends when the consumer is cancelled (as
/// [`recv_async`](Consumer::recv_async), and as cancel-safe).
impl Stream for Consumer {
    type Item = Delivery;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        let this = self.get_mut();
        let stream = &mut this.stream;
        match &this.feed {
            Feeds::Local(f) => inbox::poll_recv(f, cx, stream),
            #[cfg(feature = "remote")]
            Feeds::Remote(f) => inbox::poll_recv(f, cx, stream),
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let stream = &mut self.stream;
        // Dropping cancels; on a closed channel the consumer is already gone.
        match &self.feed {
            Feeds::Local(f) => {
                f.link.inbox.unregister(stream);
                let _ = f.channel.cancel(&f.link.tag);
            }
            #[cfg(feature = "remote")]
            Feeds::Remote(f) => {
                f.inbox.unregister(stream);
                let _ = f.channel.cancel(&f.tag);
            }
        }
    }
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("Consumer { .. }")
    }
}

/// A blocking iterator over a [`Consumer`]'s deliveries.
#[derive(Debug)]
pub struct Iter<'a> {
    consumer: &'a Consumer,
}

impl Iterator for Iter<'_> {
    type Item = Delivery;

    fn next(&mut self) -> Option<Delivery> {
        self.consumer.recv().ok()
    }
}

/// A non-blocking iterator over the deliveries waiting in a [`Consumer`].
#[derive(Debug)]
pub struct TryIter<'a> {
    consumer: &'a Consumer,
}

impl Iterator for TryIter<'_> {
    type Item = Delivery;

    fn next(&mut self) -> Option<Delivery> {
        self.consumer.try_recv().ok()
    }
}

impl<'a> IntoIterator for &'a Consumer {
    type Item = Delivery;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}
