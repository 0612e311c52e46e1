//! The ready messages of a queue, in queue order.

use std::collections::VecDeque;

use crate::envelope::QueuedMessage;

/// Ready messages ordered by their sequence number.
///
/// New messages have the highest sequence so far and go to the back. A requeued message
/// goes back to the place its sequence number gives it, which is where RabbitMQ's classic
/// queues put it: at or near the head.
#[derive(Debug, Default)]
pub(crate) struct ReadyList {
    /// Messages, sorted by `seq`.
    messages: VecDeque<QueuedMessage>,
}

impl ReadyList {
    /// Adds a newly published message. Positions are reserved before the queue lock is
    /// taken, so concurrent publishers may arrive slightly out of order; the message still
    /// goes to its place (almost always the back).
    pub(crate) fn push(&mut self, msg: QueuedMessage) {
        if self.messages.back().is_none_or(|last| last.seq < msg.seq) {
            self.messages.push_back(msg);
        } else {
            self.requeue(msg);
        }
    }

    /// Puts a requeued message back in its place.
    pub(crate) fn requeue(&mut self, msg: QueuedMessage) {
        let at = self.messages.partition_point(|m| m.seq < msg.seq);
        self.messages.insert(at, msg);
    }

    /// Takes the message at the head.
    pub(crate) fn pop_front(&mut self) -> Option<QueuedMessage> {
        self.messages.pop_front()
    }

    /// Returns the number of ready messages.
    pub(crate) fn len(&self) -> usize {
        self.messages.len()
    }

    /// Returns `true` if no message is ready.
    pub(crate) fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Removes and returns every ready message.
    pub(crate) fn drain(&mut self) -> Vec<QueuedMessage> {
        self.messages.drain(..).collect()
    }
}
