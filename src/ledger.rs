//! A channel's ledger of unacknowledged deliveries, by delivery tag.

use std::collections::VecDeque;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::envelope::QueuedMessage;
use crate::queue::{Credit, Queue};
use crate::{Error, Result};

/// One delivery awaiting its ack.
#[derive(Debug)]
pub(crate) struct Pending {
    /// The queue it came from.
    pub(crate) queue: Arc<Queue>,
    /// The message, kept to requeue it.
    pub(crate) msg: QueuedMessage,
    /// The consumer it was delivered to (`None` for `basic_get`).
    pub(crate) credit: Option<Credit>,
}

/// The deliveries one ack, nack or reject names, in tag order: one without `multiple`,
/// which then needs no allocation.
pub(crate) type Taken = SmallVec<[Pending; 1]>;

/// Delivery tags and the deliveries awaiting acks on one channel.
///
/// Tags increase by one per delivery (acknowledged or not), starting at 1. Pending
/// deliveries are kept in tag order, so single acks are a binary search and `multiple`
/// acks drain the front.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// The channel is closed: accept no more deliveries.
    pub(crate) closed: bool,
    /// The last tag handed out.
    last_tag: u64,
    /// Unacknowledged deliveries in tag order; acked ones in the middle become `None`.
    pending: VecDeque<(u64, Option<Pending>)>,
}

impl Ledger {
    /// Hands out the next delivery tag.
    pub(crate) fn next_tag(&mut self) -> u64 {
        self.last_tag += 1;
        self.last_tag
    }

    /// Records a delivery that awaits its ack.
    pub(crate) fn insert(&mut self, tag: u64, pending: Pending) {
        self.pending.push_back((tag, Some(pending)));
    }

    /// Removes the deliveries an ack, nack or reject names: the one with `tag`, or with
    /// `multiple` every one up to and including it (`tag` 0 with `multiple` means all).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownDeliveryTag`] if `tag` is not awaiting an ack.
    pub(crate) fn take(&mut self, tag: u64, multiple: bool) -> Result<Taken> {
        if multiple {
            if tag == 0 {
                return Ok(self.take_all().into());
            }
            // As in RabbitMQ, the named tag itself must be awaiting an ack.
            let known = self.pending.binary_search_by_key(&tag, |(t, _)| *t);
            if !known.is_ok_and(|at| self.pending[at].1.is_some()) {
                return Err(Error::UnknownDeliveryTag { delivery_tag: tag });
            }
            let mut taken = Taken::new();
            while let Some((t, _)) = self.pending.front() {
                if *t > tag {
                    break;
                }
                if let Some((_, Some(p))) = self.pending.pop_front() {
                    taken.push(p);
                }
            }
            return Ok(taken);
        }
        let mut one = Taken::new();
        one.push(self.take_one(tag)?);
        Ok(one)
    }

    /// Removes the delivery with `tag` (an ack, nack or reject without `multiple`). The
    /// oldest one, the usual case, is taken from the front without a search.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownDeliveryTag`] if `tag` is not awaiting an ack.
    pub(crate) fn take_one(&mut self, tag: u64) -> Result<Pending> {
        let unknown = || Error::UnknownDeliveryTag { delivery_tag: tag };
        let taken = if self.pending.front().is_some_and(|(t, _)| *t == tag) {
            match self.pending.pop_front() {
                Some((_, Some(p))) => p,
                _ => return Err(unknown()),
            }
        } else {
            let at = self
                .pending
                .binary_search_by_key(&tag, |(t, _)| *t)
                .map_err(|_| unknown())?;
            self.pending[at].1.take().ok_or_else(unknown)?
        };
        while matches!(self.pending.front(), Some((_, None))) {
            self.pending.pop_front();
        }
        while matches!(self.pending.back(), Some((_, None))) {
            self.pending.pop_back();
        }
        Ok(taken)
    }

    /// Removes every pending delivery, in tag order.
    pub(crate) fn take_all(&mut self) -> Vec<Pending> {
        self.pending.drain(..).filter_map(|(_, p)| p).collect()
    }

    /// Returns the number of deliveries awaiting an ack.
    pub(crate) fn len(&self) -> usize {
        self.pending.iter().filter(|(_, p)| p.is_some()).count()
    }
}
