//! Priority lanes of a priority queue (`x-max-priority`).
//!
//! One lane per priority from 0 to the maximum, each in sequence order. The head of the
//! queue is the head of the highest non-empty lane: higher priorities first, FIFO within a
//! priority, and a requeued message returns to its place within its own lane (as RabbitMQ's
//! classic priority queues do). A priority above the maximum counts as the maximum; a
//! message without one counts as 0.

use std::collections::VecDeque;

use crate::envelope::QueuedMessage;

/// The ready messages of a priority queue.
#[derive(Debug)]
pub(crate) struct Lanes {
    /// `lanes[p]` holds the messages of effective priority `p`, sorted by `seq`.
    lanes: Vec<VecDeque<QueuedMessage>>,
}

impl Lanes {
    /// Creates empty lanes for priorities `0..=max`.
    pub(crate) fn new(max: u8) -> Self {
        Lanes {
            lanes: (0..=max).map(|_| VecDeque::new()).collect(),
        }
    }

    fn lane_of(&self, msg: &QueuedMessage) -> usize {
        let p = msg.envelope.message.properties().priority.unwrap_or(0);
        usize::from(p).min(self.lanes.len() - 1)
    }

    /// Puts a message in its place within its lane (almost always the back for a newly
    /// published one).
    pub(crate) fn requeue(&mut self, msg: QueuedMessage) {
        let lane = self.lane_of(&msg);
        let lane = &mut self.lanes[lane];
        let at = lane.partition_point(|m| m.seq < msg.seq);
        lane.insert(at, msg);
    }

    /// Takes the message at position `seq`, if one is here.
    pub(crate) fn take(&mut self, seq: u64) -> Option<QueuedMessage> {
        self.lanes.iter_mut().find_map(|lane| {
            let at = lane.partition_point(|m| m.seq < seq);
            match lane.get(at) {
                Some(m) if m.seq == seq => lane.remove(at),
                _ => None,
            }
        })
    }

    /// Visits every message, lane by lane.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &QueuedMessage> {
        self.lanes.iter().flatten()
    }

    /// Takes the head: the oldest message of the highest non-empty lane.
    pub(crate) fn pop_front(&mut self) -> Option<QueuedMessage> {
        self.lanes.iter_mut().rev().find_map(VecDeque::pop_front)
    }

    /// Takes the head (of the highest non-empty lane) if `expired` says it has expired.
    /// Heads of lower lanes wait until they are the head, as in RabbitMQ (observed: an
    /// expired low-priority message behind a live high-priority one still counts).
    pub(crate) fn pop_expired(
        &mut self,
        expired: impl Fn(&QueuedMessage) -> bool,
    ) -> Option<QueuedMessage> {
        let lane = self.lanes.iter_mut().rev().find(|l| !l.is_empty())?;
        if lane.front().is_some_and(expired) {
            lane.pop_front()
        } else {
            None
        }
    }
}
