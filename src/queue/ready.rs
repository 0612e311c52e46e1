//! The ready messages of a queue, in queue order.

use std::collections::VecDeque;
use std::sync::Arc;

use super::priority::Lanes;
use crate::envelope::QueuedMessage;
use crate::settings::MemoryBudget;
use crate::store::MessageId;

/// How many messages a page-in reads back at most, and below how many resident ones at the
/// head the next one starts.
pub(crate) const PAGE: usize = 512;

/// One message of a pageable queue's tail.
#[derive(Debug)]
pub(crate) enum Tail {
    /// On disk only: its position, the stored message's id, and whether it was delivered
    /// before.
    Stored {
        /// Position in the queue.
        seq: u64,
        /// The stored message.
        id: MessageId,
        /// Delivered before (comes back redelivered).
        redelivered: bool,
    },
    /// In memory, behind messages on disk (it could not be paged, or there was room).
    Resident(Box<QueuedMessage>),
}

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
///
/// The list of a plain durable queue of a persistent broker may page
/// ([`enable_paging`](Self::enable_paging)): behind `messages` it then keeps a `tail` whose
/// persistent messages may be on disk only ([`Tail::Stored`], 24 bytes each) — those
/// published while the broker is over its memory budget, and those recovered beyond the
/// first [`PAGE`]. Once a tail exists every new message joins it, so order holds; the
/// queue reads the tail's head back (`start_page_in` / `finish_page_in`, the store read
/// happening with no lock held) as consumers drain `messages`.
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
    /// Behind `messages`, for a pageable list: messages on disk only, and those that came
    /// after them. Every `seq` here is above those of `messages`.
    tail: VecDeque<Tail>,
    /// A page-in of the tail's head is under way: nothing is taken from the tail's stored
    /// head meanwhile.
    loading: bool,
    /// The broker's budget for resident persistent bodies; set for a pageable list.
    budget: Option<Arc<MemoryBudget>>,
    /// How many entries of `tail` are on disk only.
    stored: usize,
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

    /// Starts counting body bytes (for `x-max-length-bytes`), counting those already here.
    pub(crate) fn count_bytes(&mut self) {
        if self.count_bytes {
            return;
        }
        self.count_bytes = true;
        let lanes = self.lanes.iter().flat_map(|l| l.iter());
        self.bytes = self
            .messages
            .iter()
            .chain(&self.returns)
            .chain(lanes)
            .map(QueuedMessage::body_len)
            .sum();
    }

    fn added(&mut self, msg: &QueuedMessage) {
        self.len += 1;
        if self.count_bytes {
            self.bytes += msg.body_len();
        }
        if let Some(budget) = self.budget.as_ref().filter(|_| msg.persisted) {
            budget.add(msg.body_len());
        }
    }

    fn removed(&mut self, msg: Option<QueuedMessage>) -> Option<QueuedMessage> {
        if let Some(m) = &msg {
            self.len -= 1;
            if self.count_bytes {
                self.bytes -= m.body_len();
            }
            if let Some(budget) = self.budget.as_ref().filter(|_| m.persisted) {
                budget.sub(m.body_len());
            }
        }
        msg
    }

    /// Lets this (plain) list keep persistent messages on disk only, accounting resident
    /// persistent bodies in `budget`; call while empty.
    pub(crate) fn enable_paging(&mut self, budget: Arc<MemoryBudget>) {
        self.budget = Some(budget);
    }

    #[cfg(feature = "persistence")]
    /// Returns `true` if the list may keep messages on disk only.
    pub(crate) fn is_pageable(&self) -> bool {
        self.budget.is_some()
    }

    /// Returns `true` if a persistent message published now should stay on disk only: the
    /// broker is over its budget.
    pub(crate) fn should_page(&self) -> bool {
        self.budget.as_ref().is_some_and(|b| b.is_over())
    }

    /// Adds a message that is on disk only, at the back.
    pub(crate) fn push_stored(&mut self, seq: u64, id: MessageId, redelivered: bool) {
        self.len += 1;
        self.stored += 1;
        self.tail.push_back(Tail::Stored {
            seq,
            id,
            redelivered,
        });
    }

    /// Returns `true` if the head of the tail is on disk and `messages` is running low, so
    /// that a page-in should start (none is under way).
    pub(crate) fn wants_page_in(&self) -> bool {
        !self.loading
            && self.messages.len() < PAGE / 2
            && matches!(self.tail.front(), Some(Tail::Stored { .. }))
    }

    /// Returns `true` if the next message to take is on disk.
    pub(crate) fn head_is_stored(&self) -> bool {
        self.messages.is_empty() && matches!(self.tail.front(), Some(Tail::Stored { .. }))
    }

    /// Starts a page-in: returns (position, id, redelivered) of the messages on disk among
    /// the first [`PAGE`] of the tail, and holds the tail's head until
    /// [`finish_page_in`](Self::finish_page_in). Empty if one is under way or none is needed.
    pub(crate) fn start_page_in(&mut self) -> Vec<(u64, MessageId, bool)> {
        if self.loading {
            return Vec::new();
        }
        let wanted: Vec<_> = self
            .tail
            .iter()
            .take(PAGE)
            .filter_map(|t| match *t {
                Tail::Stored {
                    seq,
                    id,
                    redelivered,
                } => Some((seq, id, redelivered)),
                Tail::Resident(_) => None,
            })
            .collect();
        self.loading = !wanted.is_empty();
        wanted
    }

    /// Ends a page-in: each `(seq, message)` read back takes the place of its entry; an
    /// entry whose message could not be read (`None`) is removed, and its position returned.
    /// With `loaded` empty the entries stay on disk (a failed read is tried again later).
    pub(crate) fn finish_page_in(&mut self, loaded: Vec<(u64, Option<QueuedMessage>)>) -> Vec<u64> {
        self.loading = false;
        let mut lost = Vec::new();
        let mut loaded = loaded.into_iter().peekable();
        let mut at = 0;
        while let Some((seq, _)) = loaded.peek() {
            let Some(entry) = self.tail.get_mut(at) else {
                break;
            };
            match entry {
                Tail::Stored { seq: s, .. } if s == seq => {
                    let (seq, msg) = loaded.next().expect("peeked");
                    self.stored -= 1;
                    match msg {
                        Some(msg) => {
                            if let Some(budget) = self.budget.as_ref() {
                                budget.add(msg.body_len());
                            }
                            *entry = Tail::Resident(Box::new(msg));
                            at += 1;
                        }
                        None => {
                            self.tail.remove(at);
                            self.len -= 1;
                            lost.push(seq);
                        }
                    }
                }
                _ => at += 1,
            }
        }
        self.promote();
        lost
    }

    /// Moves resident messages from the head of the tail into `messages` (their bodies are
    /// counted already).
    fn promote(&mut self) {
        if !self.messages.is_empty() {
            return;
        }
        while let Some(Tail::Resident(_)) = self.tail.front() {
            if let Some(Tail::Resident(msg)) = self.tail.pop_front() {
                self.messages.push_back(*msg);
            }
        }
    }

    /// Removes every message on disk only; returns their positions.
    pub(crate) fn take_stored(&mut self) -> Vec<u64> {
        let mut seqs = Vec::new();
        let mut rest = VecDeque::new();
        for entry in self.tail.drain(..) {
            match entry {
                Tail::Stored { seq, .. } => seqs.push(seq),
                resident @ Tail::Resident(_) => rest.push_back(resident),
            }
        }
        self.tail = rest;
        self.len -= seqs.len();
        self.stored = 0;
        seqs
    }

    /// Returns how many messages are on disk only.
    pub(crate) fn stored(&self) -> usize {
        self.stored
    }

    /// Adds a newly published message. Positions are reserved before the queue lock is
    /// taken, so concurrent publishers may arrive slightly out of order; the message still
    /// goes to its place (almost always the back).
    pub(crate) fn push_back(&mut self, msg: QueuedMessage) {
        if !self.tail.is_empty() {
            self.added(&msg);
            return self.tail.push_back(Tail::Resident(Box::new(msg)));
        }
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

    /// Takes the message at the head (`None` also while it is on disk).
    pub(crate) fn pop_front(&mut self) -> Option<QueuedMessage> {
        self.promote();
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
        self.promote();
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

    /// Removes the messages at positions `seqs` that are here (in memory or on disk only),
    /// and returns how many were. The positions sought are those of recent publishes, so
    /// each is looked for from the back.
    pub(crate) fn withdraw(&mut self, seqs: &[u64]) -> usize {
        let mut count = 0;
        for &seq in seqs {
            let taken = self.take_seq(seq);
            if taken.is_some() {
                self.removed(taken);
                count += 1;
            } else if self.take_stored_seq(seq) {
                count += 1;
            }
        }
        count
    }

    /// Takes the message at position `seq` from memory, if it is there; its accounting is
    /// left to [`removed`](Self::removed).
    fn take_seq(&mut self, seq: u64) -> Option<QueuedMessage> {
        if let Some(lanes) = &mut self.lanes {
            return lanes.take(seq);
        }
        if let Some(at) = self.returns.iter().rposition(|m| m.seq == seq) {
            return self.returns.remove(at);
        }
        let at = if self.fifo {
            self.messages.iter().rposition(|m| m.seq == seq)
        } else {
            let at = self.messages.partition_point(|m| m.seq < seq);
            self.messages.get(at).filter(|m| m.seq == seq).map(|_| at)
        };
        if let Some(at) = at {
            return self.messages.remove(at);
        }
        let at = self
            .tail
            .iter()
            .rposition(|t| matches!(t, Tail::Resident(m) if m.seq == seq))?;
        match self.tail.remove(at) {
            Some(Tail::Resident(msg)) => Some(*msg),
            _ => None,
        }
    }

    /// Removes the entry at position `seq` kept on disk only, unless a page-in holds the
    /// tail (it then finds the message missing and drops it itself).
    fn take_stored_seq(&mut self, seq: u64) -> bool {
        if self.loading {
            return false;
        }
        let found = self
            .tail
            .iter()
            .rposition(|t| matches!(t, Tail::Stored { seq: s, .. } if *s == seq));
        match found {
            Some(at) => {
                self.tail.remove(at);
                self.len -= 1;
                self.stored -= 1;
                true
            }
            None => false,
        }
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

    /// Visits every ready message in memory (in no particular order).
    pub(crate) fn iter(&self) -> impl Iterator<Item = &QueuedMessage> {
        let lanes = self.lanes.iter().flat_map(|l| l.iter());
        let tail = self.tail.iter().filter_map(|t| match t {
            Tail::Resident(msg) => Some(&**msg),
            Tail::Stored { .. } => None,
        });
        self.returns
            .iter()
            .chain(&self.messages)
            .chain(lanes)
            .chain(tail)
    }

    /// Removes and returns every ready message in memory, in queue order; messages on disk
    /// only stay (see [`take_stored`](Self::take_stored)).
    pub(crate) fn drain(&mut self) -> Vec<QueuedMessage> {
        let stored = std::mem::take(&mut self.tail);
        let mut all = Vec::with_capacity(self.len);
        while let Some(msg) = self.pop_front() {
            all.push(msg);
        }
        for entry in stored {
            match entry {
                Tail::Resident(msg) => {
                    let msg = *msg;
                    self.len -= 1;
                    if let Some(budget) = self.budget.as_ref().filter(|_| msg.persisted) {
                        budget.sub(msg.body_len());
                    }
                    all.push(msg);
                }
                stored => self.tail.push_back(stored),
            }
        }
        all
    }
}
