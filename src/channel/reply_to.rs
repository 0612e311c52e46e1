//! Direct reply-to on a channel: consuming from `amq.rabbitmq.reply-to` gives the channel a
//! reply queue with an address of its own, and a publish on the channel whose `reply_to` is
//! `amq.rabbitmq.reply-to` carries that address instead; replies published to the address
//! through the default exchange reach the reply consumer (docs/rabbitmq-observations.md §19).
//!
//! The errors are RabbitMQ's: 406 `reply consumer cannot acknowledge` for a consumer with
//! manual acks, `reply consumer already set` for a second one, `fast reply consumer does not
//! exist` for a publish asking for a reply on a channel without one. The address lives while
//! the reply consumer does; replies to a dead address are dropped (returned if mandatory).

use std::sync::Arc;

use super::inner::ChannelInner;
use crate::queue::Queue;
use crate::vhost::REPLY_TO;
use crate::{ConsumeOptions, Error, Message, Result};

impl ChannelInner {
    /// Returns the queue `basic_consume` subscribes to: the named one, or for
    /// `amq.rabbitmq.reply-to` a new reply queue of this channel.
    pub(super) fn consumed_queue(
        &self,
        name: &str,
        options: &ConsumeOptions,
    ) -> Result<Arc<Queue>> {
        if name != REPLY_TO {
            return self.conn.vhost.queue(name, self.conn.id);
        }
        if !options.no_ack {
            return Err(Error::precondition("reply consumer cannot acknowledge"));
        }
        let mut reply = self.reply.lock();
        if reply.is_some() {
            return Err(Error::precondition("reply consumer already set"));
        }
        let queue = self.conn.vhost.open_reply_queue();
        *reply = Some(Arc::clone(&queue));
        Ok(queue)
    }

    /// Gives a message published on this channel with `reply_to = amq.rabbitmq.reply-to`
    /// the channel's reply address.
    ///
    /// # Errors
    ///
    /// 406 `fast reply consumer does not exist` when the channel has no reply consumer.
    pub(super) fn resolve_reply_to(&self, message: &mut Message) -> Result<()> {
        if message.properties().reply_to.as_deref() != Some(REPLY_TO) {
            return Ok(());
        }
        let reply = self.reply.lock();
        let queue = reply
            .as_ref()
            .ok_or_else(|| Error::precondition("fast reply consumer does not exist"))?;
        message.properties_mut().reply_to = Some(queue.name.to_string());
        Ok(())
    }

    /// Closes the channel's reply queue if `queue` is it (its consumer is gone), or
    /// whatever reply queue it has when `queue` is `None` (the channel is closing).
    pub(super) fn close_reply(&self, queue: Option<&Queue>) {
        let mut reply = self.reply.lock();
        let matches = match (reply.as_deref(), queue) {
            (Some(current), Some(q)) => std::ptr::eq(current, q),
            (Some(_), None) => true,
            (None, _) => false,
        };
        if matches {
            if let Some(current) = reply.take() {
                drop(reply);
                self.conn.vhost.close_reply_queue(&current);
            }
        }
    }
}
