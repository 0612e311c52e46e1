//! The consuming side of a channel: `basic.consume` and `basic.cancel`, the consumers this
//! channel started (handed to the connection's [`Consumers`](crate::amqp::consumers) set,
//! which polls them), and `basic.deliver` / server-sent `basic.cancel` for what they yield.

use amq_protocol::protocol::{basic, AMQPClass};
use amq_protocol::types::ShortString;

use super::WireChannel;
use crate::amqp::consumers::ConsumerKey;
use crate::amqp::convert::{short_string, table_from_wire};
use crate::amqp::delivery::{push_delivery, Deliver, PropertiesCache};
use crate::amqp::failure::Failure;
use crate::amqp::frames;
use crate::amqp::registry::ConsumerView;
use crate::{ConsumeOptions, Consumer, Delivery};

impl WireChannel {
    pub(super) fn consume(&mut self, m: basic::Consume) -> Result<(), Failure> {
        let queue = self.queue_name(&m.queue)?;
        let tag = m.consumer_tag.as_str();
        let options = ConsumeOptions {
            consumer_tag: (!tag.is_empty()).then(|| tag.to_owned()),
            no_ack: m.no_ack,
            exclusive: m.exclusive,
            arguments: table_from_wire(&m.arguments),
        };
        let view = ConsumerView {
            queue: queue.clone(),
            ack_required: !m.no_ack,
            exclusive: m.exclusive,
            prefetch_count: self
                .view
                .prefetch_count
                .load(std::sync::atomic::Ordering::Relaxed),
            arguments: options.arguments.clone(),
        };
        let consumer = self.channel.basic_consume(&queue, options)?;
        let tag = short_string(consumer.tag());
        self.view
            .consumers
            .lock()
            .insert(tag.as_str().to_owned(), view);
        if !m.nowait {
            let ok = basic::ConsumeOk {
                consumer_tag: tag.clone(),
            };
            self.reply(AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(ok)));
        }
        let key = self.link.next_consumer_key();
        self.consumers.insert(tag.as_str().to_owned(), key);
        self.tags.insert(key, tag);
        self.started.push((key, consumer));
        Ok(())
    }

    pub(super) fn cancel(&mut self, m: &basic::Cancel) -> Result<(), Failure> {
        let tag = m.consumer_tag.as_str();
        if let Some(key) = self.consumers.remove(tag) {
            self.tags.remove(&key);
            self.view.consumers.lock().remove(tag);
            self.stopped.push(key);
            // Whatever its inbox held goes back to the queue; what the connection took
            // from it is already in the outbox, ahead of the cancel-ok.
            self.channel.basic_cancel(tag)?;
        }
        if !m.nowait {
            let ok = basic::CancelOk {
                consumer_tag: m.consumer_tag.clone(),
            };
            self.reply(AMQPClass::Basic(basic::AMQPMethod::CancelOk(ok)));
        }
        Ok(())
    }

    /// Takes the consumers started since the last call, for the connection to serve.
    pub(crate) fn take_started(&mut self) -> Vec<(ConsumerKey, Consumer)> {
        std::mem::take(&mut self.started)
    }

    /// Takes the consumers the client cancelled since the last call.
    pub(crate) fn take_stopped(&mut self) -> Vec<ConsumerKey> {
        std::mem::take(&mut self.stopped)
    }

    /// Encodes `basic.deliver` for a delivery of consumer `key` into `out`, its properties
    /// through the connection's `cache`; the delivery stays unacknowledged on the session
    /// channel until the client acks its tag. Returns `false` (and encodes nothing) for a
    /// consumer this channel no longer has.
    pub(crate) fn deliver(
        &self,
        key: ConsumerKey,
        d: &Delivery,
        cache: &mut PropertiesCache,
        out: &mut Vec<u8>,
    ) -> bool {
        let Some(tag) = self.tags.get(&key) else {
            return false;
        };
        let deliver = Deliver {
            channel: self.id,
            consumer_tag: tag.as_str(),
            delivery_tag: d.delivery_tag(),
            redelivered: d.redelivered(),
            exchange: d.exchange(),
            routing_key: d.routing_key(),
        };
        let properties = cache.encode(d.properties());
        push_delivery(out, &deliver, properties, d.body(), self.link.frame_max);
        true
    }

    /// Forgets consumer `key`, which ended without the client asking (its queue was
    /// deleted); returns the `basic.cancel` to tell a client that announced
    /// `consumer_cancel_notify`, as RabbitMQ does.
    pub(crate) fn consumer_ended(&mut self, key: ConsumerKey) -> Option<Vec<u8>> {
        let tag: ShortString = self.tags.remove(&key)?;
        self.consumers.remove(tag.as_str());
        self.view.consumers.lock().remove(tag.as_str());
        if !self.link.notify_cancel || self.channel.is_closed() {
            return None;
        }
        let cancel = AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
            consumer_tag: tag,
            nowait: true,
        }));
        Some(frames::method(self.id, cancel))
    }

    /// Returns the number of consumers of this channel.
    pub(crate) fn consumer_count(&self) -> usize {
        self.tags.len()
    }

    /// Returns the keys of every consumer of this channel.
    pub(crate) fn consumer_keys(&self) -> Vec<ConsumerKey> {
        self.tags.keys().copied().collect()
    }
}
