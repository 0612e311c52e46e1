//! Direct reply-to: the per-channel reply queues behind `amq.rabbitmq.reply-to.<token>`
//! addresses (the channel side is in `channel/reply_to.rs`).
//!
//! A reply queue is an ordinary in-memory queue that is not in the vhost's queue map: only
//! its address reaches it, and only through the default exchange, as in RabbitMQ. It is
//! registered while its channel has a reply consumer.

use std::sync::Arc;

use super::VHost;
use crate::queue::{Queue, QueueConfig};
use crate::QueueDeclareOptions;

/// The pseudo-queue a client consumes from, and sets as `reply_to`, for direct reply-to.
pub(crate) const REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// The prefix of a reply address: `amq.rabbitmq.reply-to.<token>`.
pub(crate) const REPLY_TO_PREFIX: &str = "amq.rabbitmq.reply-to.";

impl VHost {
    /// Creates and registers a reply queue with a fresh address.
    pub(crate) fn open_reply_queue(&self) -> Arc<Queue> {
        let address = crate::names::generate(REPLY_TO_PREFIX);
        let queue = Arc::new(
            Queue::new(
                address.as_str().into(),
                Arc::clone(&self.name),
                self.settings.next_destination(),
                QueueDeclareOptions::default(),
                None,
                crate::FieldTable::new(),
                &self.settings.store,
            )
            .with_features(QueueConfig::default(), &self.settings),
        );
        self.reply_queues.insert(address, Arc::clone(&queue));
        queue
    }

    /// Unregisters a reply queue: replies to its address are no longer delivered.
    pub(crate) fn close_reply_queue(&self, queue: &Queue) {
        self.reply_queues.remove(&*queue.name);
        queue.delete();
    }

    /// Returns the live reply queue at `address`, if any.
    pub(super) fn reply_queue(&self, address: &str) -> Option<Arc<Queue>> {
        if !address.starts_with(REPLY_TO_PREFIX) {
            return None;
        }
        self.reply_queues.get(address).map(|q| Arc::clone(&q))
    }
}
