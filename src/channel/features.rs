//! Channel methods of the queue and exchange features: mandatory publishes and their
//! returns, exchange-to-exchange bindings.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{local_or, Channel, ChannelInner};
use crate::returns::ReturnedMessage;
use crate::vhost::Published;
use crate::{FieldTable, Message, PublishOptions, ReplyCode, Result, Returns};

impl Channel {
    /// Publishes a message with flags: with [`PublishOptions::mandatory`], a message that
    /// reaches no queue comes back to this channel's [`Returns`] handles with reply code 312
    /// `NO_ROUTE` (and is counted in [`ExchangeStats::returned`](crate::ExchangeStats)).
    ///
    /// While a resource alarm is on (the broker holds more messages than its
    /// [memory high watermark](crate::BrokerBuilder::memory_high_watermark) allows, or, for
    /// a persistent message, the disk is short of space), this blocks until consumers
    /// have drained the broker below it; [`try_basic_publish`](Self::try_basic_publish)
    /// fails instead and [`basic_publish_async`](Self::basic_publish_async) awaits. A thread
    /// that is itself the only consumer must not publish with the blocking call: it would
    /// wait for itself.
    ///
    /// Under publisher confirms, a publish refused by a queue's length limit
    /// (`x-overflow = reject-publish`) makes the next
    /// [`wait_for_confirms`](Self::wait_for_confirms) return `false`; a returned message is
    /// still confirmed, as in RabbitMQ.
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::{Broker, Message, PublishOptions};
    ///
    /// # fn main() -> Result<(), warrenmq::Error> {
    /// let broker = Broker::in_memory();
    /// let ch = broker.connect("/")?.open_channel()?;
    /// let returns = ch.returns();
    /// ch.basic_publish_with("amq.direct", "nobody", PublishOptions::mandatory(), Message::new("x"))?;
    /// assert_eq!(returns.try_recv().expect("returned").reply_text, "NO_ROUTE");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`basic_publish`](Self::basic_publish).
    pub fn basic_publish_with(
        &self,
        exchange: &str,
        routing_key: &str,
        options: PublishOptions,
        message: Message,
    ) -> Result<()> {
        let inner =
            local_or!(self, r => r.publish(exchange, routing_key, options, message).map(drop));
        Self::publish(inner, exchange, routing_key, options, message).map(drop)
    }

    /// Publishes, once no resource alarm holds the message back (blocking until then);
    /// returns the store write of the message (if it was stored) and whether a queue
    /// refused it.
    pub(super) fn publish(
        inner: &Arc<ChannelInner>,
        exchange: &str,
        routing_key: &str,
        options: PublishOptions,
        message: Message,
    ) -> Result<Published> {
        let persistent = message.properties().is_persistent();
        inner.alarms().wait(persistent, None);
        Self::publish_now(inner, exchange, routing_key, options, message)
    }

    /// Publishes like [`basic_publish_with`](Self::basic_publish_with) but fails at once
    /// with [`Error::ResourceAlarm`](crate::Error::ResourceAlarm) (506) instead of blocking
    /// while a resource alarm holds publishers back: the memory alarm (the broker holds
    /// more than its [memory high watermark](crate::BrokerBuilder::memory_high_watermark)),
    /// or, for a persistent message, the disk alarm. The channel stays open after that
    /// error; publish again once consumers have drained the broker.
    ///
    /// # Errors
    ///
    /// 506 while an alarm is on; otherwise as for [`basic_publish`](Self::basic_publish).
    /// On a remote connection RabbitMQ's own flow control applies instead, and this
    /// publishes as [`basic_publish_with`](Self::basic_publish_with) does.
    ///
    /// # Examples
    ///
    /// See [`BrokerBuilder::memory_high_watermark`](crate::BrokerBuilder::memory_high_watermark).
    pub fn try_basic_publish(
        &self,
        exchange: &str,
        routing_key: &str,
        options: PublishOptions,
        message: Message,
    ) -> Result<()> {
        let inner =
            local_or!(self, r => r.publish(exchange, routing_key, options, message).map(drop));
        if let Some(resource) = inner.alarms().holding(message.properties().is_persistent()) {
            return Err(crate::Error::ResourceAlarm { resource });
        }
        Self::publish_now(inner, exchange, routing_key, options, message).map(drop)
    }

    /// Publishes like [`basic_publish_with`](Self::basic_publish_with), awaiting (instead of
    /// blocking the thread) while a resource alarm holds publishers back; for async
    /// applications on any executor. On a remote connection this publishes as
    /// [`basic_publish_with`](Self::basic_publish_with) does.
    ///
    /// # Errors
    ///
    /// As for [`basic_publish`](Self::basic_publish).
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::{Broker, FieldTable, Message, PublishOptions, QueueDeclareOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), warrenmq::Error> {
    /// let broker = Broker::in_memory();
    /// let ch = broker.connect("/")?.open_channel()?;
    /// ch.queue_declare("jobs", QueueDeclareOptions::default(), FieldTable::new())?;
    /// ch.basic_publish_async("", "jobs", PublishOptions::default(), Message::new("x")).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn basic_publish_async(
        &self,
        exchange: &str,
        routing_key: &str,
        options: PublishOptions,
        message: Message,
    ) -> Result<()> {
        let inner =
            local_or!(self, r => r.publish(exchange, routing_key, options, message).map(drop));
        let alarms = inner.alarms();
        let persistent = message.properties().is_persistent();
        if alarms.holding(persistent).is_some() {
            let _blocked = alarms.count_blocked();
            let watch = alarms.watch();
            let mut seen = alarms.epoch();
            while alarms.holding(persistent).is_some() {
                seen = std::future::poll_fn(|cx| watch.poll_change(alarms, seen, cx)).await;
            }
        }
        Self::publish_now(inner, exchange, routing_key, options, message).map(drop)
    }

    /// Publishes whatever the alarms say: for the wire listener, which holds publishers
    /// back by not reading their sockets. Returns what the wire needs to confirm this
    /// publish on its own.
    #[cfg(feature = "wire")]
    pub(crate) fn basic_publish_unheld(
        &self,
        exchange: &str,
        routing_key: &str,
        options: PublishOptions,
        message: Message,
    ) -> Result<super::confirms::Receipt> {
        let inner = local_or!(self, r => r.publish(exchange, routing_key, options, message).map(|_| super::confirms::Receipt::default()));
        Self::publish_now(inner, exchange, routing_key, options, message)
            .map(|published| super::confirms::Receipt::of(&published))
    }

    /// Publishes now; returns the store write of the message (if it was stored) and whether
    /// a queue refused it.
    fn publish_now(
        inner: &Arc<ChannelInner>,
        exchange: &str,
        routing_key: &str,
        options: PublishOptions,
        message: Message,
    ) -> Result<Published> {
        let mut message = message;
        inner.run(|| {
            inner.permit_publish(exchange, &message)?;
            inner.resolve_reply_to(&mut message)?;
            let vhost = &inner.conn.vhost;
            let mut published = match inner.route_memo.try_lock() {
                Some(mut memo) => vhost.publish_memo(
                    &mut memo,
                    exchange,
                    routing_key,
                    message,
                    options.mandatory,
                )?,
                // Another thread is publishing on this channel: route without the memo.
                None => {
                    let source = vhost.exchange(exchange)?;
                    vhost.publish(&source, routing_key, message, options.mandatory)?
                }
            };
            if inner.confirms.load(Ordering::Relaxed) {
                if let Some(durable) = &published.durable {
                    inner.track_confirm(durable.clone());
                }
                if published.refused {
                    inner.nacked.store(true, Ordering::Release);
                }
            }
            if let Some(message) = published.returned.take() {
                inner.returns.send(ReturnedMessage {
                    reply_code: ReplyCode::NO_ROUTE,
                    reply_text: "NO_ROUTE".to_owned(),
                    exchange: exchange.to_owned(),
                    routing_key: routing_key.to_owned(),
                    message,
                });
            }
            Ok(published)
        })
    }

    /// Returns a handle that receives the messages this channel published as mandatory and
    /// that reached no queue (AMQP `basic.return`). Returns made while no handle exists are
    /// dropped; the handle disconnects when the channel closes.
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::{Broker, Message, PublishOptions};
    ///
    /// # fn main() -> Result<(), warrenmq::Error> {
    /// let broker = Broker::in_memory();
    /// let ch = broker.connect("/")?.open_channel()?;
    /// let returns = ch.returns();
    /// ch.basic_publish_with("", "no-such-queue", PublishOptions::mandatory(), Message::new("x"))?;
    /// assert_eq!(returns.len(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn returns(&self) -> Returns {
        let inner = local_or!(self, r => r.returns.handle());
        inner.returns.handle()
    }

    /// Binds exchange `destination` to exchange `source`: messages routed by `source` with a
    /// matching `routing_key` (or arguments, for headers exchanges) are routed again by
    /// `destination`. The argument order is AMQP's (`exchange.bind`): destination first.
    ///
    /// A queue reachable through several paths gets one copy, and cycles of exchange
    /// bindings end.
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::{Broker, ExchangeDeclareOptions, ExchangeKind, FieldTable, GetOptions};
    /// use warrenmq::{Message, QueueDeclareOptions};
    ///
    /// # fn main() -> Result<(), warrenmq::Error> {
    /// let broker = Broker::in_memory();
    /// let ch = broker.connect("/")?.open_channel()?;
    /// let opts = ExchangeDeclareOptions::default();
    /// ch.exchange_declare("src", ExchangeKind::Topic, opts, FieldTable::new())?;
    /// ch.exchange_declare("dst", ExchangeKind::Direct, opts, FieldTable::new())?;
    /// ch.queue_declare("q", QueueDeclareOptions::default(), FieldTable::new())?;
    /// ch.exchange_bind("dst", "src", "a.*", FieldTable::new())?;
    /// ch.queue_bind("q", "dst", "a.b", FieldTable::new())?;
    /// ch.basic_publish("src", "a.b", Message::new("hop"))?;
    /// assert!(ch.basic_get("q", GetOptions::no_ack())?.is_some());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// 404 for a missing exchange; 403 for the default exchange; 406 for invalid arguments
    /// or a durable/non-durable pair (unless allowed).
    pub fn exchange_bind(
        &self,
        destination: &str,
        source: &str,
        routing_key: &str,
        arguments: FieldTable,
    ) -> Result<()> {
        let inner =
            local_or!(self, r => r.exchange_bind(destination, source, routing_key, arguments));
        inner.run(|| {
            inner.permit_exchange_bind(destination, source)?;
            let vhost = &inner.conn.vhost;
            vhost.bind_exchange(destination, source, routing_key, &arguments)
        })
    }

    /// Removes an exchange-to-exchange binding. Removing one that does not exist succeeds.
    /// An `auto_delete` source exchange that loses its last binding is deleted.
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::{Broker, ExchangeDeclareOptions, ExchangeKind, FieldTable};
    ///
    /// # fn main() -> Result<(), warrenmq::Error> {
    /// let broker = Broker::in_memory();
    /// let ch = broker.connect("/")?.open_channel()?;
    /// let opts = ExchangeDeclareOptions::default();
    /// ch.exchange_declare("dst", ExchangeKind::Fanout, opts, FieldTable::new())?;
    /// ch.exchange_bind("dst", "amq.fanout", "", FieldTable::new())?;
    /// ch.exchange_unbind("dst", "amq.fanout", "", FieldTable::new())?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// 403 for the default exchange.
    pub fn exchange_unbind(
        &self,
        destination: &str,
        source: &str,
        routing_key: &str,
        arguments: FieldTable,
    ) -> Result<()> {
        let inner =
            local_or!(self, r => r.exchange_unbind(destination, source, routing_key, arguments));
        inner.run(|| {
            inner.permit_exchange_bind(destination, source)?;
            let vhost = &inner.conn.vhost;
            vhost.unbind_exchange(destination, source, routing_key, &arguments)
        })
    }
}
