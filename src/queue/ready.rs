//! The ready messages of a queue, in queue order.

use std::collections::VecDeque;

use super::priority::Lanes;
use crate::envelope::QueuedMessage;

/// Ready messages ordered by their sequence number (within their priority, for a priority
/// queue).
///
/// New messages have the highest sequence so far and go to the back. A requeued message
/// goes back to the place its sequence number gives it, which is where RabbitMQ's classic
/// queues put it: at or near the head.
///
/// A quorum queue's list is in arrival order instead ([`ReadyList::fifo`]): returned
/// messages wait in `returns`, served before the others in the order they came back, and a
/// message requeued to the tail joins the back of `messages`.
#[derive(Debug, Default)]
pub(crate) struct ReadyList {
    /// Messages, sorted by `seq` (unused in a priority queue); in arrival order for a quorum
    /// queue.
    messages: VecDeque<QueuedMessage>,
    /// A quorum queue's returned messages, served first, in the order they came back.
    returns: VecDeque<QueuedMessage>,
    /// Arrival order (quorum queues) instead of `seq` order.
    fifo: bool,
    /// The lanes of a priority queue; `None` for a plain queue.
    lanes: Option<Box<Lanes>>,
    /// Number of messages (in `messages` or the lanes).
    len: usize,
    /// Total body bytes of the messages, counted only with `count_bytes`.
    bytes: usize,
    /// Count body bytes (the queue has `x-max-length-bytes`); off for other queues, so that
    /// taking a message does not have to read its envelope.
    count_bytes: bool,
}

impl ReadyList {
    /// Creates the ready list of a priority queue with priorities `0..=max`.
    pub(crate) fn with_max_priority(max: u8) -> Self {
        ReadyList {
            lanes: Some(Box::new(Lanes::new(max))),
            ..Self::default()
        }
    }

    /// Creates the ready list of a quorum queue: arrival order, returns first.
    pub(crate) fn fifo() -> Self {
        ReadyList {
            fifo: true,
            ..Self::default()
        }
    }

    /// Starts counting body bytes (for `x-max-length-bytes`); call while empty.
    pub(crate) fn count_bytes(&mut self) {
        self.count_bytes = true;
    }

    fn added(&mut self, msg: &QueuedMessage) {
        self.len += 1;
        if self.count_bytes {
            self.bytes += msg.body_len();
        }
    }

    fn removed(&mut self, msg: Option<QueuedMessage>) -> Option<QueuedMessage> {
        if let Some(m) = &msg {
            self.len -= 1;
            if self.count_bytes {
                self.bytes -= m.body_len();
            }
        }
        msg
    }

    /// Adds a newly published message. Positions are reserved before the queue lock is
    /// taken, so concurrent publishers may arrive slightly out of order; the message still
    /// goes to its place (almost always the back).
    pub(crate) fn push_back(&mut self, msg: QueuedMessage) {
        if self.fifo {
            self.added(&msg);
            return self.messages.push_back(msg);
        }
        if self.lanes.is_some() || self.messages.back().is_some_and(|last| last.seq > msg.seq) {
            return self.requeue(msg);
        }
        self.added(&msg);
        self.messages.push_back(msg);
    }

    /// Puts a requeued message back in its place. In a quorum queue's list: at the head,
    /// before the returned messages of later positions (it was never seen by the
    /// application, so it goes back where it was).
    pub(crate) fn requeue(&mut self, msg: QueuedMessage) {
        self.added(&msg);
        if let Some(lanes) = &mut self.lanes {
            return lanes.requeue(msg);
        }
        if self.fifo {
            let at = self
                .returns
                .iter()
                .position(|m| m.seq > msg.seq)
                .unwrap_or(self.returns.len());
            return self.returns.insert(at, msg);
        }
        let at = self.messages.partition_point(|m| m.seq < msg.seq);
        self.messages.insert(at, msg);
    }

    /// Adds a message a quorum queue got back: behind the other returned messages, before
    /// every other ready one.
    pub(crate) fn push_returned(&mut self, msg: QueuedMessage) {
        self.added(&msg);
        self.returns.push_back(msg);
    }

    /// Adds a message a quorum queue requeues at its tail.
    pub(crate) fn push_tail(&mut self, msg: QueuedMessage) {
        self.added(&msg);
        self.messages.push_back(msg);
    }

    /// Takes the message at the head.
    pub(crate) fn pop_front(&mut self) -> Option<QueuedMessage> {
        let msg = match &mut self.lanes {
            Some(lanes) => lanes.pop_front(),
            None => match self.returns.pop_front() {
                Some(msg) => Some(msg),
                None => self.messages.pop_front(),
            },
        };
        self.removed(msg)
    }

    /// Takes the message at the head if it expired at or before `now`. Only the head is
    /// examined, as RabbitMQ does.
    pub(crate) fn pop_expired(&mut self, now: u64) -> Option<QueuedMessage> {
        let expired = |m: &QueuedMessage| m.expires_at.is_some_and(|at| at.get() <= now);
        let msg = match &mut self.lanes {
            Some(lanes) => lanes.pop_expired(expired),
            None => {
                let head = if self.returns.is_empty() {
                    &mut self.messages
                } else {
                    &mut self.returns
                };
                if head.front().is_some_and(expired) {
                    head.pop_front()
                } else {
                    None
                }
            }
        };
        self.removed(msg)
    }

    /// Returns the number of ready messages.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Returns the total body bytes of the ready messages (0 unless counting bytes).
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Returns `true` if no message is ready.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Visits every ready message (in no particular order).
    pub(crate) fn iter(&self) -> impl Iterator<Item = &QueuedMessage> {
        let lanes = self.lanes.iter().flat_map(|l| l.iter());
        self.returns.iter().chain(&self.messages).chain(lanes)
    }

    /// Removes and returns every ready message, in queue order.
    pub(crate) fn drain(&mut self) -> Vec<QueuedMessage> {
        let mut all = Vec::with_capacity(self.len);
        while let Some(msg) = self.pop_front() {
            all.push(msg);
        }
        all
    }
}
