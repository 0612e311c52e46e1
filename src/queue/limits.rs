//! The publish path of a queue with arguments (or of a message with an `expiration`):
//! message TTL, length limits and overflow.
//!
//! # Length limits
//!
//! `x-max-length` counts ready messages and `x-max-length-bytes` their body bytes;
//! unacknowledged messages count for neither, as in RabbitMQ. With `x-overflow = drop-head`
//! (the default) a publish or a requeue that takes the queue over a limit drops (or
//! dead-letters, reason `maxlen`) messages from the head until it fits. With
//! `reject-publish` a publish that would take it over is refused: the publisher's confirm
//! is a nack. `reject-publish-dlx` also dead-letters the refused message. A quorum queue
//! refuses only once it is already over a limit, and treats `reject-publish-dlx` as
//! `drop-head`, as RabbitMQ 3.10's do.

use std::num::NonZeroU64;
use std::sync::atomic::Ordering;

use super::config::{parse_expiration, Overflow, QueueConfig, QueueType};
use super::expiry::{DeadLetter, Reason};
use super::ready::ReadyList;
use super::{Enqueued, Fallout, Queue, QueueState, NO_TTL};
use crate::envelope::{Envelope, QueuedMessage};
use crate::sync::MutexGuard;
use crate::Clock;

impl Queue {
    /// Enqueues a message on a queue with arguments (or a policy), or a message with an
    /// `expiration`, under the queue lock the plain path took.
    pub(super) fn publish_featured(
        &self,
        mut st: MutexGuard<'_, QueueState>,
        mut msg: QueuedMessage,
    ) -> (Enqueued, Fallout) {
        let expires_at = expiry_of(st.config.as_deref(), &*self.clock, &msg.envelope);
        let start_timers = expires_at.is_some() && !self.may_expire.swap(true, Ordering::Relaxed);
        self.expire_heads(&mut st);
        msg.expires_at = expires_at;
        if let Some(config) = st.config.as_deref() {
            // A quorum queue refuses only once it is over a limit, so it takes one message
            // more than a classic queue (observed on RabbitMQ 3.10).
            let refuse = if config.queue_type == QueueType::Quorum {
                over_limit(config, &st.ready)
            } else {
                would_overflow(config, &st.ready, &msg)
            };
            if config.overflow != Overflow::DropHead && refuse {
                if config.overflow == Overflow::RejectPublishDlx {
                    st.dead.push(DeadLetter {
                        msg,
                        reason: Reason::MaxLen,
                    });
                }
                self.losses.refused.fetch_add(1, Ordering::Relaxed);
                let mut fallout = self.finish(st);
                fallout.start_timers |= start_timers;
                return (Enqueued::Refused, fallout);
            }
        }
        if st.ready.is_empty() {
            if let Err(msg) = st.consumers.deliver(msg) {
                st.ready.push_back(msg);
            }
        } else {
            st.ready.push_back(msg);
        }
        self.trim(&mut st);
        let mut fallout = self.finish(st);
        fallout.start_timers |= start_timers;
        (Enqueued::Accepted, fallout)
    }

    /// Returns when a message published now expires in this queue: the smaller of the
    /// queue's message TTL (argument or policy) and the message's `expiration`.
    /// Reads the TTL without the queue lock, for the store record of a persistent message.
    pub(crate) fn expiry_of(&self, envelope: &Envelope) -> Option<NonZeroU64> {
        let ttl = self.message_ttl.load(Ordering::Relaxed);
        let config = QueueConfig {
            message_ttl: (ttl != NO_TTL).then_some(ttl),
            ..QueueConfig::default()
        };
        expiry_of(Some(&config), &*self.clock, envelope)
    }

    /// Drops expired heads and, under `drop-head`, heads over the length limits. What is
    /// dropped waits in the state's dead-letter outbox.
    pub(super) fn trim(&self, st: &mut QueueState) {
        self.expire_heads(st);
        let Some(config) = st.config.as_deref() else {
            return;
        };
        if config.overflow != Overflow::DropHead || !config.has_limit() {
            return;
        }
        while over_limit(config, &st.ready) {
            let Some(msg) = st.ready.pop_front() else {
                break;
            };
            st.dead.push(DeadLetter {
                msg,
                reason: Reason::MaxLen,
            });
        }
    }
}

/// Returns when a message published now expires under `config`: the smaller of the queue's
/// message TTL and the message's `expiration`.
fn expiry_of(
    config: Option<&QueueConfig>,
    clock: &dyn Clock,
    envelope: &Envelope,
) -> Option<NonZeroU64> {
    let queue_ttl = config.and_then(|c| c.message_ttl);
    let message_ttl = envelope
        .message
        .properties()
        .expiration
        .as_deref()
        .and_then(|e| parse_expiration(e).ok());
    let ttl = match (queue_ttl, message_ttl) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    let at = clock.now_millis().saturating_add(ttl);
    Some(NonZeroU64::new(at).unwrap_or(NonZeroU64::MIN))
}

/// Returns `true` if the ready messages exceed a limit.
fn over_limit(config: &QueueConfig, ready: &ReadyList) -> bool {
    let len = ready.len() as u64;
    let bytes = ready.bytes() as u64;
    config.max_length.is_some_and(|max| len > max)
        || config.max_length_bytes.is_some_and(|max| bytes > max)
}

/// Returns `true` if adding `msg` would take the ready messages over a limit.
fn would_overflow(config: &QueueConfig, ready: &ReadyList, msg: &QueuedMessage) -> bool {
    let len = ready.len() as u64 + 1;
    let bytes = (ready.bytes() + msg.body_len()) as u64;
    config.max_length.is_some_and(|max| len > max)
        || config.max_length_bytes.is_some_and(|max| bytes > max)
}
