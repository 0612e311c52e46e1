//! Quorum queues (`x-queue-type = quorum`), with the semantics applications observe on
//! RabbitMQ 3.10 (docs/rabbitmq-observations.md §20). Warren keeps one copy, as for every
//! queue; what differs from a classic queue is what clients see.
//!
//! - **Declare.** Durable only, never exclusive or auto-delete, never server-named; some
//!   classic arguments are refused (`x-max-priority`, `x-queue-mode`, ...), and classic
//!   queues refuse the quorum ones (`x-delivery-limit`, ...). Each type compares its own
//!   arguments on redeclare.
//! - **Returns.** Every time a delivered message comes back (nack or reject with requeue,
//!   `basic.recover`, its channel closing) its delivery count grows by one. A message that
//!   comes back more than `x-delivery-limit` times is dead-lettered instead (reason
//!   `delivery_limit`), or dropped without a dead-letter exchange.
//! - **Order.** Returned messages are served first, in the order they came back; but without
//!   a delivery limit an explicit requeue (nack, reject, recover) goes to the tail.
//! - **`x-delivery-count`.** A delivery of a message that came back carries the header with
//!   its count; `basic.get` always carries it (0 the first time).
//!
//! A durable quorum queue is stored like a durable classic queue. Its delivery counts are
//! kept in memory: after a restart they start again from 0 (or 1 for a message delivered
//! before), and messages come back in publish order.

use super::expiry::{DeadLetter, Reason};
use super::{Queue, QueueState};
use crate::alarm::Charge;
use crate::arguments::{COMPARED_QUEUE_ARGUMENTS, COMPARED_QUORUM_QUEUE_ARGUMENTS};
use crate::envelope::{Envelope, Holding, QueuedMessage};
use crate::{Error, FieldTable, FieldValue, QueueDeclareOptions, Result};

/// The type of a queue (`x-queue-type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum QueueType {
    /// A classic queue (no `x-queue-type`, or `classic`).
    #[default]
    Classic,
    /// A quorum queue.
    Quorum,
}

/// Arguments a classic queue refuses at declare (observed).
const CLASSIC_REFUSES: &[&str] = &[
    "x-dead-letter-strategy",
    "x-delivery-limit",
    "x-initial-cluster-size",
    "x-max-age",
    "x-max-in-memory-bytes",
    "x-max-in-memory-length",
    "x-queue-leader-locator",
    "x-quorum-initial-group-size",
    "x-stream-max-segment-size-bytes",
];

/// Arguments a quorum queue refuses at declare (observed).
const QUORUM_REFUSES: &[&str] = &[
    "x-initial-cluster-size",
    "x-max-age",
    "x-max-priority",
    "x-queue-master-locator",
    "x-queue-mode",
    "x-queue-version",
    "x-stream-max-segment-size-bytes",
];

impl QueueType {
    /// Returns RabbitMQ's module name for the type, as its error texts show it.
    fn module(self) -> &'static str {
        match self {
            QueueType::Classic => "rabbit_classic_queue",
            QueueType::Quorum => "rabbit_quorum_queue",
        }
    }

    /// Returns the arguments compared on redeclare (besides `x-queue-type`).
    pub(crate) fn compared_arguments(self) -> &'static [&'static str] {
        match self {
            QueueType::Classic => COMPARED_QUEUE_ARGUMENTS,
            QueueType::Quorum => COMPARED_QUORUM_QUEUE_ARGUMENTS,
        }
    }

    /// Checks what only a new queue of this type is checked for, in RabbitMQ's order: a
    /// server-generated name, the arguments the type refuses, then the flags.
    ///
    /// # Errors
    ///
    /// 406 with RabbitMQ's texts.
    pub(crate) fn check_new(
        self,
        name: &str,
        options: QueueDeclareOptions,
        arguments: &FieldTable,
        vhost: &str,
    ) -> Result<()> {
        let quorum = self == QueueType::Quorum;
        if quorum && name.is_empty() {
            return Err(Error::precondition(format!(
                "Cannot declare a server-named queue for type {}",
                self.module()
            )));
        }
        let refused = if quorum {
            QUORUM_REFUSES
        } else {
            CLASSIC_REFUSES
        };
        if let Some((arg, _)) = arguments.iter().find(|(k, _)| refused.contains(k)) {
            return Err(Error::precondition(format!(
                "invalid arg '{arg}' for queue '{name}' in vhost '{vhost}' of queue type {}",
                self.module()
            )));
        }
        if !quorum {
            return Ok(());
        }
        let property = if options.auto_delete {
            "auto-delete"
        } else if options.exclusive {
            "exclusive-owner"
        } else if !options.durable {
            "non-durable"
        } else {
            return Ok(());
        };
        Err(Error::precondition(format!(
            "invalid property '{property}' for queue '{name}' in vhost '{vhost}'"
        )))
    }
}

/// How a delivered message comes back to its queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Return {
    /// Nacked or rejected with requeue, or `basic.recover`.
    Requeued,
    /// Its channel (or connection) closed while it was unacknowledged.
    ChannelClosed,
}

impl Queue {
    /// Returns `true` for a quorum queue.
    pub(crate) fn is_quorum(&self) -> bool {
        self.queue_type() == QueueType::Quorum
    }

    /// Takes back a delivered message of a quorum queue: counts the return, then
    /// dead-letters it past the delivery limit or puts it where RabbitMQ 3.10 does.
    pub(super) fn return_to_quorum(
        &self,
        st: &mut QueueState,
        mut msg: QueuedMessage,
        how: Return,
    ) {
        let limit = st.config.as_deref().and_then(|c| c.delivery_limit);
        msg.delivery_count = msg.delivery_count.saturating_add(1);
        if limit.is_some_and(|limit| i64::from(msg.delivery_count) > limit) {
            st.dead.push(DeadLetter {
                msg,
                reason: Reason::DeliveryLimit,
            });
            return;
        }
        msg.redelivered = true;
        if how == Return::Requeued && limit.is_none() {
            st.ready.push_tail(msg);
        } else {
            st.ready.push_returned(msg);
        }
    }

    /// Returns the envelope a delivery of `msg` carries (shared with `msg`, which stays for
    /// the ledger): a quorum queue adds `x-delivery-count` once the message has come back,
    /// and to every `basic.get`, in a copy that shares the body and is not charged again
    /// (`msg`, charged, is held as long as the delivery is unacknowledged).
    pub(crate) fn delivered_envelope(&self, msg: &mut QueuedMessage, via_get: bool) -> Holding {
        if !((msg.delivery_count > 0 || via_get) && self.is_quorum()) {
            return Holding::Shared(msg.envelope.share());
        }
        let mut message = msg.envelope.message.clone();
        let count = FieldValue::I64(i64::from(msg.delivery_count));
        message
            .properties_mut()
            .headers
            .get_or_insert_with(FieldTable::new)
            .insert("x-delivery-count", count);
        Holding::Own(Envelope {
            message,
            exchange: msg.envelope.exchange.clone(),
            routing_key: msg.envelope.routing_key.clone(),
            _charge: Charge::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(t: QueueType, name: &str, options: QueueDeclareOptions, args: FieldTable) -> String {
        t.check_new(name, options, &args, "/")
            .map_or_else(|e| e.to_string(), |()| "ok".to_owned())
    }

    #[test]
    fn declare_texts_match_rabbitmq() {
        let q = QueueType::Quorum;
        let durable = QueueDeclareOptions::durable();
        assert_eq!(
            check(q, "", durable, FieldTable::new()),
            "PRECONDITION_FAILED - Cannot declare a server-named queue for type \
             rabbit_quorum_queue"
        );
        assert_eq!(
            check(q, "q", QueueDeclareOptions::default(), FieldTable::new()),
            "PRECONDITION_FAILED - invalid property 'non-durable' for queue 'q' in vhost '/'"
        );
        let exclusive = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..durable
        };
        assert_eq!(
            check(q, "q", exclusive, FieldTable::new()),
            "PRECONDITION_FAILED - invalid property 'auto-delete' for queue 'q' in vhost '/'"
        );
        assert_eq!(
            check(
                q,
                "q",
                QueueDeclareOptions::default(),
                FieldTable::new().with("x-max-priority", 5)
            ),
            "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue 'q' in vhost '/' of \
             queue type rabbit_quorum_queue"
        );
        assert_eq!(
            check(
                QueueType::Classic,
                "c",
                QueueDeclareOptions::default(),
                FieldTable::new().with("x-delivery-limit", 3)
            ),
            "PRECONDITION_FAILED - invalid arg 'x-delivery-limit' for queue 'c' in vhost '/' of \
             queue type rabbit_classic_queue"
        );
        assert_eq!(
            check(q, "q", durable, FieldTable::new().with("x-foo", 1)),
            "ok"
        );
    }
}
