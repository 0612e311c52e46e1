//! Publisher confirms: waiting for the store writes of messages published in confirm mode,
//! all at once ([`Channel::wait_for_confirms`], blocking or async) or one publish at a time
//! ([`PublishConfirm`]).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::inner::ChannelInner;
use super::{local_or, Channel};
use crate::store::Durable;
use crate::{Error, Message, PublishOptions, Result};

impl ChannelInner {
    /// Remembers the store write of a message published in confirm mode.
    pub(super) fn track_confirm(&self, durable: Durable) {
        self.unconfirmed.lock().push(durable);
    }

    /// Fails unless confirms are on.
    fn check_confirm_mode(&self) -> Result<()> {
        if self.confirms.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err(Error::precondition("channel is not in confirm mode"))
        }
    }

    /// Returns the ticket of the highest write outstanding now, with its number (0 if none).
    fn confirm_target(&self) -> Result<(Option<Durable>, u64)> {
        self.check_confirm_mode()?;
        Ok(match self.unconfirmed.lock().last_ticket() {
            Some((ticket, through)) => (Some(ticket), through),
            None => (None, 0),
        })
    }

    /// Once the writes up to `through` are finished: forgets them and says whether every
    /// message published so far was confirmed (`false` if a queue refused one, or if the
    /// store could not write one: both are nacks, as RabbitMQ gives them).
    fn settle_confirms(&self, through: u64) -> Result<bool> {
        let stored = self.unconfirmed.lock().settle_through(through);
        let refused = self.nacked.swap(false, Ordering::AcqRel);
        if let Err(e) = &stored {
            tracing::warn!(
                error = %e,
                "publisher confirms: nacked, the store could not write a persistent message"
            );
        }
        Ok(stored.is_ok() && !refused)
    }

    /// Says whether the store write numbered `seq` (a [`Receipt`]'s) failed; its outcome
    /// must be known (waited for).
    #[cfg(feature = "wire")]
    fn write_failed(&self, seq: u64) -> bool {
        self.unconfirmed.lock().failed(seq)
    }

    /// Waits for every tracked store write; `Ok(None)` if `deadline` passes first.
    fn wait_confirms(&self, deadline: Option<Instant>) -> Result<Option<bool>> {
        let (target, through) = self.confirm_target()?;
        if let Some(ticket) = target {
            // The outcome (of the highest write only) is read by `settle_confirms`.
            let finished = match deadline {
                None => {
                    let _ = ticket.wait();
                    true
                }
                Some(deadline) => ticket
                    .wait_timeout(deadline.saturating_duration_since(Instant::now()))
                    .is_some(),
            };
            if !finished {
                return Ok(None);
            }
        }
        self.settle_confirms(through).map(Some)
    }
}

impl Channel {
    /// Turns on publisher confirms for this channel.
    ///
    /// # Errors
    ///
    /// 504 if the channel is closed.
    pub fn confirm_select(&self) -> Result<()> {
        let inner = local_or!(self, r => r.confirm_select());
        inner.run(|| {
            inner.confirms.store(true, Ordering::Relaxed);
            Ok(())
        })
    }

    /// Waits until every message published on this channel since confirms were turned on (or
    /// since the last wait) is confirmed; returns `false` if the broker nacked any.
    ///
    /// # Durability
    ///
    /// On a persistent broker a persistent message routed to a durable queue is confirmed
    /// once its group commit is on disk (fsync'd); everything else is confirmed when it is
    /// enqueued, which has happened by the time `basic_publish` returns. Writes finish in
    /// order, so this waits once, for the last of them.
    ///
    /// # Nacks
    ///
    /// A message is nacked (this returns `false`, as RabbitMQ's `basic.nack`) when a queue
    /// refused it (`x-overflow = reject-publish`), or when the store could not write it (a
    /// full disk, an I/O error: the error is logged). A message whose write failed is
    /// withdrawn from the queues that still hold it ready, so it is not delivered later as
    /// if accepted (one already handed to a consumer stays with it). The channel stays
    /// open; publish the nacked messages again (once the disk has room) to have them
    /// confirmed.
    ///
    /// # Blocking
    ///
    /// Blocks the thread until the store has written; in async code use
    /// [`wait_for_confirms_async`](Self::wait_for_confirms_async).
    ///
    /// # Errors
    ///
    /// 406 if confirms are not on (see [`confirm_select`](Self::confirm_select)); 504 if the
    /// channel is closed. A storage failure is a nack (`Ok(false)`), not an error.
    pub fn wait_for_confirms(&self) -> Result<bool> {
        let inner = local_or!(self, r => r.wait_for_confirms(None).map(|ok| ok.unwrap_or(false)));
        inner.run(|| Ok(inner.wait_confirms(None)?.unwrap_or(true)))
    }

    /// Like [`wait_for_confirms`](Self::wait_for_confirms), but gives up after `timeout`:
    /// `None` if some confirm was still outstanding then (they stay tracked).
    ///
    /// # Errors
    ///
    /// As for [`wait_for_confirms`](Self::wait_for_confirms).
    pub fn wait_for_confirms_timeout(&self, timeout: Duration) -> Result<Option<bool>> {
        let deadline = Instant::now().checked_add(timeout).or(Some(Instant::now()));
        let inner = local_or!(self, r => r.wait_for_confirms(deadline));
        inner.run(|| inner.wait_confirms(deadline))
    }

    /// Waits, without blocking the thread, until every message published on this channel
    /// since confirms were turned on is confirmed; returns `false` if the broker refused
    /// (nacked) any. The async face of [`wait_for_confirms`](Self::wait_for_confirms); the
    /// store's writer thread wakes the task, on any executor.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: the confirms it was waiting for stay tracked until a wait completes.
    ///
    /// # Errors
    ///
    /// As for [`wait_for_confirms`](Self::wait_for_confirms).
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::{Broker, FieldTable, Message, QueueDeclareOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let broker = Broker::open(dir.path().join("warren.redb"))?;
    /// let ch = broker.connect("/")?.open_channel()?;
    /// ch.queue_declare("jobs", QueueDeclareOptions::durable(), FieldTable::new())?;
    /// ch.confirm_select()?;
    /// for i in 0..100 {
    ///     ch.basic_publish("", "jobs", Message::new(format!("job {i}")).persistent())?;
    /// }
    /// assert!(ch.wait_for_confirms_async().await?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn wait_for_confirms_async(&self) -> Result<bool> {
        let inner = local_or!(self, r => r.wait_for_confirms_async().await);
        let (target, through) = inner.run(|| inner.confirm_target())?;
        if let Some(ticket) = target {
            // The outcome (of the highest write only) is read by `settle_confirms`.
            let _ = std::future::poll_fn(|cx| ticket.poll(cx)).await;
        }
        inner.run(|| inner.settle_confirms(through))
    }

    /// Publishes a message, as [`basic_publish_with`](Self::basic_publish_with), and returns
    /// the ticket of its confirm: a [`Future`] to await, or [`wait`](PublishConfirm::wait)
    /// on it from a thread.
    ///
    /// The ticket works whether or not the channel is in confirm mode; in confirm mode the
    /// publish also counts for [`wait_for_confirms`](Self::wait_for_confirms).
    ///
    /// # Durability
    ///
    /// As for [`wait_for_confirms`](Self::wait_for_confirms): a persistent message routed to
    /// a durable queue of a persistent broker is confirmed once it is on disk; any other is
    /// confirmed at once.
    ///
    /// # Errors
    ///
    /// As for [`basic_publish`](Self::basic_publish).
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::{Broker, FieldTable, Message, PublishOptions, QueueDeclareOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let broker = Broker::open(dir.path().join("warren.redb"))?;
    /// let ch = broker.connect("/")?.open_channel()?;
    /// ch.queue_declare("jobs", QueueDeclareOptions::durable(), FieldTable::new())?;
    /// let message = Message::new("important").persistent();
    /// let confirm = ch.basic_publish_with_confirm("", "jobs", PublishOptions::default(), message)?;
    /// assert!(confirm.await?, "on disk");
    /// # Ok(())
    /// # }
    /// ```
    pub fn basic_publish_with_confirm(
        &self,
        exchange: &str,
        routing_key: &str,
        options: PublishOptions,
        message: Message,
    ) -> Result<PublishConfirm> {
        let inner = local_or!(self, r => r
        .publish(exchange, routing_key, options, message)
        .map(|outcome| PublishConfirm {
            kind: Kind::Remote(outcome),
        }));
        let outcome = Self::publish(inner, exchange, routing_key, options, message)?;
        Ok(PublishConfirm {
            kind: Kind::Local {
                ticket: outcome.durable.unwrap_or_else(Durable::done),
                refused: outcome.refused,
            },
        })
    }
}

/// What the wire listener keeps of one publish in confirm mode, to confirm each publish on
/// its own: its store write while pending, and whether it is nacked already.
#[cfg(feature = "wire")]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Receipt {
    /// The number of its store write, if one was pending (0: none).
    write: u64,
    /// Nacked for sure: a queue refused it, or its write failed at once.
    nacked: bool,
}

#[cfg(feature = "wire")]
impl Receipt {
    /// The receipt of a publish that did `published`.
    pub(super) fn of(published: &crate::vhost::Published) -> Self {
        let (write, failed) = match &published.durable {
            Some(durable) => match durable.pending_seq() {
                Some(seq) => (seq, false),
                None => (0, matches!(durable.try_result(), Some(Err(_)))),
            },
            None => (0, false),
        };
        Receipt {
            write,
            nacked: published.refused || failed,
        }
    }
}

#[cfg(feature = "wire")]
impl Channel {
    /// Says whether the publish of `receipt` was nacked. For the wire listener, once
    /// [`wait_for_confirms`](Self::wait_for_confirms) (or its timeout variant) has seen
    /// every write up to it finished and reported that some publish was nacked.
    pub(crate) fn is_nacked(&self, receipt: &Receipt) -> bool {
        if receipt.nacked {
            return true;
        }
        match &self.backend {
            super::Backend::Local(inner) => receipt.write != 0 && inner.write_failed(receipt.write),
            #[cfg(feature = "remote")]
            super::Backend::Remote(_) => false,
        }
    }
}

/// The confirm of one publish, from [`Channel::basic_publish_with_confirm`]: `true` once the
/// message is safe (on disk when it is persistent and reached a durable queue), `false` if
/// the broker nacked it: a queue's `x-overflow = reject-publish` limit refused it, or the
/// store could not write it (see [`Channel::wait_for_confirms`]).
///
/// Await it in async code (it is a [`Future`]; the store's writer thread wakes the task), or
/// [`wait`](Self::wait) for it from a thread. Dropping it gives up nothing: the message is
/// published either way.
///
/// # Examples
///
/// ```
/// use warrenmq::{Broker, FieldTable, Message, PublishOptions, QueueDeclareOptions};
///
/// # fn main() -> Result<(), warrenmq::Error> {
/// let broker = Broker::in_memory();
/// let ch = broker.connect("/")?.open_channel()?;
/// ch.queue_declare("jobs", QueueDeclareOptions::default(), FieldTable::new())?;
/// let confirm = ch.basic_publish_with_confirm("", "jobs", PublishOptions::default(), Message::new("x"))?;
/// assert!(confirm.wait()?);
/// # Ok(())
/// # }
/// ```
#[must_use = "a confirm says nothing unless it is awaited or waited for"]
pub struct PublishConfirm {
    kind: Kind,
}

/// Where the confirm comes from.
enum Kind {
    /// The in-process broker.
    Local {
        /// The store write of the message (already finished when nothing was written).
        ticket: Durable,
        /// A queue refused the message.
        refused: bool,
    },
    /// A remote broker's `basic.ack` / `basic.nack`; not confirmed if the link was lost
    /// first.
    #[cfg(feature = "remote")]
    Remote(std::sync::Arc<crate::remote::Outcome>),
}

impl PublishConfirm {
    /// Blocks until the publish is confirmed; `false` if it was nacked: refused by a queue,
    /// or not written by the store (or, on a remote connection, if the link was lost before
    /// the confirm came: publish it again).
    ///
    /// # Errors
    ///
    /// On a remote connection, the error that closed the channel if this publish did.
    pub fn wait(&self) -> Result<bool> {
        let (ticket, refused) = match &self.kind {
            Kind::Local { ticket, refused } => (ticket, *refused),
            #[cfg(feature = "remote")]
            Kind::Remote(outcome) => {
                return outcome.wait(Option::is_some, None).0.unwrap_or(Ok(false));
            }
        };
        Ok(confirmed(ticket.wait(), refused))
    }

    /// Like [`wait`](Self::wait), but gives up after `timeout`: `None` if the confirm was
    /// still outstanding then.
    ///
    /// # Errors
    ///
    /// As for [`wait`](Self::wait).
    pub fn wait_timeout(&self, timeout: Duration) -> Result<Option<bool>> {
        let (ticket, refused) = match &self.kind {
            Kind::Local { ticket, refused } => (ticket, *refused),
            #[cfg(feature = "remote")]
            Kind::Remote(outcome) => {
                let deadline = Instant::now().checked_add(timeout);
                return outcome.wait(Option::is_some, deadline).0.transpose();
            }
        };
        Ok(ticket
            .wait_timeout(timeout)
            .map(|result| confirmed(result, refused)))
    }

    /// Returns the outcome if the confirm is in, without blocking.
    ///
    /// # Errors
    ///
    /// As for [`wait`](Self::wait).
    pub fn try_wait(&self) -> Result<Option<bool>> {
        let (ticket, refused) = match &self.kind {
            Kind::Local { ticket, refused } => (ticket, *refused),
            #[cfg(feature = "remote")]
            Kind::Remote(outcome) => return outcome.get().transpose(),
        };
        Ok(ticket.try_result().map(|result| confirmed(result, refused)))
    }
}

/// The confirm of a publish whose store write ended with `written`: a nack (`false`) if it
/// failed (logged) or a queue refused the message.
fn confirmed(written: std::result::Result<(), crate::StoreError>, refused: bool) -> bool {
    if let Err(e) = &written {
        tracing::warn!(
            error = %e,
            "publisher confirm: nacked, the store could not write the message"
        );
    }
    written.is_ok() && !refused
}

impl Future for PublishConfirm {
    type Output = Result<bool>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<bool>> {
        match &self.kind {
            Kind::Local { ticket, refused } => {
                let refused = *refused;
                ticket.poll(cx).map(|result| Ok(confirmed(result, refused)))
            }
            #[cfg(feature = "remote")]
            Kind::Remote(outcome) => outcome
                .poll(Option::is_some, cx)
                .map(|o| o.unwrap_or(Ok(false))),
        }
    }
}

impl fmt::Debug for PublishConfirm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Local { ticket, refused } => f
                .debug_struct("PublishConfirm")
                .field("ticket", ticket)
                .field("refused", refused)
                .finish(),
            #[cfg(feature = "remote")]
            Kind::Remote(outcome) => f
                .debug_struct("PublishConfirm")
                .field("outcome", &outcome.get())
                .finish(),
        }
    }
}
