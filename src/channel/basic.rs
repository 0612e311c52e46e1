//! Channel methods for publishing, getting, consuming and acknowledging.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{local_or, Channel};
use crate::consumer::Delivery;
use crate::ledger::Pending;
use crate::queue::Return;
use crate::{ConsumeOptions, Consumer, GetOptions, Message, PublishOptions, Result};

impl Channel {
    /// Publishes a message to an exchange with a routing key.
    ///
    /// A message that reaches no queue is dropped and counted in the exchange's
    /// [`unroutable`](crate::ExchangeStats::unroutable) counter, as RabbitMQ drops it. To
    /// get it back instead, publish with [`basic_publish_with`](Self::basic_publish_with)
    /// and [`PublishOptions::mandatory`].
    ///
    /// # Errors
    ///
    /// 404 for a missing exchange; 403 for an internal exchange; 406 for an invalid
    /// `expiration` property. On a remote connection the server routes the message after the
    /// call returns: such an error closes the channel and is the cause of the
    /// [`Error::ChannelClosed`](crate::Error::ChannelClosed) the channel's next call returns
    /// (`docs/scale-out.md`).
    pub fn basic_publish(&self, exchange: &str, routing_key: &str, message: Message) -> Result<()> {
        self.basic_publish_with(exchange, routing_key, PublishOptions::default(), message)
    }

    /// Fetches the message at the head of a queue, or `None` if it is empty.
    ///
    /// # Errors
    ///
    /// 404 for a missing queue; 405 for another connection's exclusive queue.
    pub fn basic_get(&self, queue: &str, options: GetOptions) -> Result<Option<Delivery>> {
        let inner = local_or!(self, r => r.basic_get(queue, options.no_ack).map(|got| got.and_then(|(raw, count)| Delivery::from_remote_get(Arc::clone(r), raw, count))));
        inner.run(|| {
            inner.permit_queue_read(queue)?;
            let conn = &inner.conn;
            let queue = conn.vhost.queue(queue, conn.id)?;
            let mut ledger = inner.ledger.lock();
            let (got, fallout) = queue.get();
            inner.absorb(&queue, fallout);
            let Some((mut msg, left)) = got else {
                return Ok(None);
            };
            let tag = ledger.next_tag();
            let count = Some(u32::try_from(left).unwrap_or(u32::MAX));
            let envelope = queue.delivered_envelope(&mut msg, true);
            let delivery = Delivery::new(
                Arc::clone(inner),
                envelope,
                msg.redelivered,
                tag,
                None,
                count,
            );
            if options.no_ack {
                let fallout = queue.settle(None, std::slice::from_ref(&msg));
                inner.absorb(&queue, fallout);
            } else {
                ledger.insert(
                    tag,
                    Pending {
                        queue,
                        msg,
                        credit: None,
                    },
                );
            }
            Ok(Some(delivery))
        })
    }

    /// Subscribes to a queue and returns a blocking [`Consumer`].
    ///
    /// Messages are spread round-robin among a queue's consumers, each holding at most the
    /// channel's [`basic_qos`](Self::basic_qos) prefetch unacknowledged.
    ///
    /// # Errors
    ///
    /// 404 for a missing queue; 405 for another connection's exclusive queue; 403 if the
    /// queue has an exclusive consumer (or others, when asking for exclusivity); 530 for a
    /// consumer tag in use on this channel.
    pub fn basic_consume(&self, queue: &str, options: ConsumeOptions) -> Result<Consumer> {
        let inner = local_or!(self, r => r.consume(queue, &options, None).map(|(tag, inbox)| Consumer::remote(Arc::clone(r), tag, inbox, queue)));
        inner.run(|| {
            let link = inner.subscribe(queue, &options, None)?;
            Ok(Consumer::new(link, Arc::clone(inner)))
        })
    }

    /// Cancels a consumer. Its unreceived messages go back to the queue; messages already
    /// received stay unacknowledged on this channel. Unknown tags are ignored.
    ///
    /// # Errors
    ///
    /// 504 if the channel is closed.
    pub fn basic_cancel(&self, consumer_tag: &str) -> Result<()> {
        let inner = local_or!(self, r => r.cancel(consumer_tag));
        inner.cancel(consumer_tag)
    }

    /// Sets the prefetch count for consumers created on this channel from now on: each may
    /// hold at most this many unacknowledged deliveries (0 = no limit).
    ///
    /// # Errors
    ///
    /// 504 if the channel is closed.
    pub fn basic_qos(&self, prefetch_count: u16) -> Result<()> {
        let inner = local_or!(self, r => r.basic_qos(prefetch_count));
        inner.run(|| {
            inner
                .prefetch
                .store(u32::from(prefetch_count), Ordering::Relaxed);
            Ok(())
        })
    }

    /// Acknowledges a delivery, or with `multiple` every one up to `delivery_tag`.
    ///
    /// # Errors
    ///
    /// 406 for an unknown delivery tag (which closes the channel).
    pub fn basic_ack(&self, delivery_tag: u64, multiple: bool) -> Result<()> {
        let inner =
            local_or!(self, r => r.settle(delivery_tag, multiple, crate::remote::Settle::Ack));
        inner.ack(delivery_tag, multiple)
    }

    /// Rejects one or (with `multiple`) several deliveries: requeued if `requeue`,
    /// otherwise discarded.
    ///
    /// # Errors
    ///
    /// 406 for an unknown delivery tag.
    pub fn basic_nack(&self, delivery_tag: u64, multiple: bool, requeue: bool) -> Result<()> {
        let inner = local_or!(self, r => r.settle(delivery_tag, multiple, crate::remote::Settle::Nack { requeue }));
        inner.nack(delivery_tag, multiple, requeue)
    }

    /// Rejects one delivery: requeued if `requeue`, otherwise discarded.
    ///
    /// # Errors
    ///
    /// 406 for an unknown delivery tag.
    pub fn basic_reject(&self, delivery_tag: u64, requeue: bool) -> Result<()> {
        let inner = local_or!(self, r => r.settle(delivery_tag, false, crate::remote::Settle::Nack { requeue }));
        inner.nack(delivery_tag, false, requeue)
    }

    /// Returns every unacknowledged delivery of this channel to its queue, marked
    /// redelivered (`basic.recover` with `requeue = true`).
    ///
    /// # Errors
    ///
    /// 504 if the channel is closed.
    pub fn basic_recover(&self) -> Result<()> {
        let inner = local_or!(self, r => r.recover());
        inner.run(|| {
            let pending = inner.ledger.lock().take_all();
            inner.requeue(pending, Return::Requeued);
            Ok(())
        })
    }
}
