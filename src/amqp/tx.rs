//! Transactions (`tx.select`, `tx.commit`, `tx.rollback`): a transactional channel holds
//! back its publishes, acks, nacks and rejects until commit, and drops them on rollback,
//! as RabbitMQ does. A rolled-back ack leaves its message unacknowledged.

use super::content::Route;
use crate::Message;

/// An operation held back until commit.
#[derive(Debug)]
pub(crate) enum Held {
    /// A publish with its assembled content (boxed: far larger than the other variants).
    Publish(Box<(Route, Message)>),
    /// `basic.ack`.
    Ack {
        /// The delivery tag.
        tag: u64,
        /// Up to and including `tag`.
        multiple: bool,
    },
    /// `basic.nack` or (with `multiple` false) `basic.reject`.
    Nack {
        /// The delivery tag.
        tag: u64,
        /// Up to and including `tag`.
        multiple: bool,
        /// Back to the queue rather than discarded.
        requeue: bool,
    },
}

/// The operations of the open transaction of a channel, in order.
#[derive(Debug, Default)]
pub(crate) struct Transaction {
    /// What commit will do.
    held: Vec<Held>,
}

impl Transaction {
    /// Holds an operation back until commit.
    pub(crate) fn hold(&mut self, op: Held) {
        self.held.push(op);
    }

    /// Takes every held operation, leaving the transaction empty (commit and rollback
    /// both start a new one).
    pub(crate) fn take(&mut self) -> Vec<Held> {
        std::mem::take(&mut self.held)
    }
}

/// The error texts RabbitMQ uses for misuse of transactions.
pub(crate) mod text {
    /// `tx.commit` or `tx.rollback` on a channel without `tx.select`.
    pub(crate) const NOT_TRANSACTIONAL: &str = "channel is not transactional";
    /// `tx.select` on a channel in confirm mode.
    pub(crate) const CONFIRM_TO_TX: &str = "cannot switch from confirm to tx mode";
    /// `confirm.select` on a transactional channel.
    pub(crate) const TX_TO_CONFIRM: &str = "cannot switch from tx to confirm mode";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_held_in_order_until_taken() {
        let mut tx = Transaction::default();
        tx.hold(Held::Ack {
            tag: 1,
            multiple: false,
        });
        tx.hold(Held::Publish(Box::new((
            Route::default(),
            Message::new("x"),
        ))));
        let held = tx.take();
        assert!(matches!(held[0], Held::Ack { tag: 1, .. }));
        assert!(matches!(held[1], Held::Publish(..)));
        assert!(tx.take().is_empty());
    }
}
