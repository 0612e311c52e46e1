//! The shared state of a channel: its ledger, consumers and closing.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crate::connection::ConnectionInner;
use crate::consumer::{ConsumerLink, Delivery};
use crate::envelope::QueuedMessage;
use crate::inbox::{Inbox, Signal};
use crate::ledger::{Ledger, Pending, Taken};
use crate::queue::{consumer_priority, Credit, Fallout, Queue, Return, Subscription};
use crate::returns::ReturnQueue;
use crate::store::DurableSet;
use crate::sync::Mutex;
use crate::vhost::RouteMemo;
use crate::{names, ConsumeOptions, Error, Result};

/// The callback of a consumer started with [`Channel::basic_consume_with`].
pub(super) type Callback = Box<dyn FnMut(Delivery) + Send>;

/// A consumer as its channel keeps it.
pub(super) struct ConsumerEntry {
    pub(super) link: Arc<ConsumerLink>,
    /// Set for callback consumers, which [`Channel::wait`] drives.
    pub(super) callback: Option<Arc<Mutex<Callback>>>,
}

/// The shared state of a channel, referenced by the [`Channel`] handle, its consumers and
/// its deliveries.
pub(crate) struct ChannelInner {
    /// The connection it belongs to.
    pub(super) conn: Arc<ConnectionInner>,
    /// Unacknowledged deliveries; also the authority on whether deliveries are accepted.
    pub(super) ledger: Mutex<Ledger>,
    /// Set once when the channel closes, with the error that closed it, if any.
    pub(super) closed: OnceLock<Option<Arc<Error>>>,
    /// Consumers by tag.
    pub(super) consumers: Mutex<HashMap<Arc<str>, ConsumerEntry>>,
    /// Prefetch limit given to consumers created from now on (0 = none).
    pub(super) prefetch: AtomicU32,
    /// Wakes threads blocked in `wait`: bumped by every arrival in a callback consumer's
    /// inbox, when consumers change and when the channel closes.
    pub(super) signal: Arc<Signal>,
    /// Where `wait` starts looking among the callback consumers, so that each gets a turn.
    pub(super) wait_cursor: AtomicUsize,
    /// Publisher confirms are on.
    pub(super) confirms: AtomicBool,
    /// Store writes of messages published in confirm mode that no one has waited for yet.
    pub(super) unconfirmed: Mutex<DurableSet>,
    /// Where the last publish went, so that a publisher sending to one exchange and key
    /// skips the lookups (see [`RouteMemo`]).
    pub(super) route_memo: Mutex<RouteMemo>,
    /// Some publish was refused (nacked) since the last `wait_for_confirms`.
    pub(super) nacked: AtomicBool,
    /// Unroutable mandatory messages for the channel's [`Returns`](crate::Returns) handles.
    pub(super) returns: ReturnQueue,
    /// The reply queue of direct reply-to, while the channel has a reply consumer.
    pub(super) reply: Mutex<Option<Arc<Queue>>>,
}

impl ChannelInner {
    pub(crate) fn new(conn: Arc<ConnectionInner>) -> Arc<Self> {
        Arc::new(ChannelInner {
            conn,
            ledger: Mutex::new(Ledger::default()),
            closed: OnceLock::new(),
            consumers: Mutex::new(HashMap::new()),
            prefetch: AtomicU32::new(0),
            signal: Arc::default(),
            wait_cursor: AtomicUsize::new(0),
            confirms: AtomicBool::new(false),
            unconfirmed: Mutex::default(),
            route_memo: Mutex::default(),
            nacked: AtomicBool::new(false),
            returns: ReturnQueue::default(),
            reply: Mutex::new(None),
        })
    }

    pub(super) fn check_open(&self) -> Result<()> {
        if self.conn.is_closed() {
            return Err(self.conn.closed_error());
        }
        match self.closed.get() {
            Some(cause) => Err(Error::ChannelClosed {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    /// The broker's resource alarms.
    pub(crate) fn alarms(&self) -> &Arc<crate::alarm::Alarms> {
        &self.conn.vhost.settings().alarms
    }

    /// Runs a channel method: fails on a closed channel, and when the method fails closes
    /// the channel (soft errors: 403, 404, 405, 406) or the whole connection (hard errors
    /// such as 503 or 530), as AMQP does.
    pub(super) fn run<T>(self: &Arc<Self>, method: impl FnOnce() -> Result<T>) -> Result<T> {
        self.check_open()?;
        let result = self.conn.vhost.check_not_deleted().and_then(|()| method());
        if let Err(e) = &result {
            if !matches!(
                e,
                Error::ChannelClosed { .. } | Error::ConnectionClosed | Error::BrokerClosed
            ) {
                self.close_with(Some(Arc::new(e.clone())));
                if e.reply_code().is_channel_error() {
                    tracing::debug!(code = e.reply_code().0, error = %e, "channel closed by an error");
                } else {
                    tracing::info!(code = e.reply_code().0, error = %e, "connection closed by an error");
                    self.conn.close();
                }
            }
        }
        result
    }

    /// Closes the channel: cancels its consumers and requeues its unacknowledged deliveries.
    pub(crate) fn close_with(&self, cause: Option<Arc<Error>>) {
        if self.closed.set(cause).is_err() {
            return;
        }
        let entries: Vec<ConsumerEntry> = self.consumers.lock().drain().map(|(_, e)| e).collect();
        for entry in entries {
            self.unsubscribe(&entry.link);
        }
        self.close_reply(None);
        self.route_memo.lock().clear();
        let pending = {
            let mut ledger = self.ledger.lock();
            ledger.closed = true;
            ledger.take_all()
        };
        self.requeue(pending, Return::ChannelClosed);
        self.returns.close();
        self.signal.notify();
    }

    pub(super) fn unsubscribe(&self, link: &ConsumerLink) {
        let unsubscribed = link.queue.unsubscribe(link.key);
        self.absorb(&link.queue, unsubscribed.fallout);
        if unsubscribed.now_unused {
            self.conn.vhost.drop_queue(&link.queue);
        }
        self.close_reply(Some(&link.queue));
    }

    /// Hands what a queue operation left to do to the vhost.
    pub(super) fn absorb(&self, queue: &Queue, fallout: Fallout) {
        self.conn.vhost.absorb(queue, fallout);
    }

    /// Turns a message taken from a consumer inbox into a delivery, or puts it back if the
    /// channel has closed meanwhile.
    pub(crate) fn accept(
        self: &Arc<Self>,
        link: &ConsumerLink,
        mut msg: QueuedMessage,
    ) -> Option<Delivery> {
        let mut ledger = self.ledger.lock();
        if ledger.closed {
            drop(ledger);
            let fallout = link.queue.restore(vec![msg]);
            self.absorb(&link.queue, fallout);
            return None;
        }
        let tag = ledger.next_tag();
        let consumer_tag = Some(Arc::clone(&link.tag));
        if link.no_ack && msg.delivery_count == 0 {
            drop(ledger);
            link.queue.forget(std::slice::from_ref(&msg));
            let QueuedMessage {
                envelope,
                redelivered,
                ..
            } = msg;
            return Some(Delivery::new(
                Arc::clone(self),
                envelope,
                redelivered,
                tag,
                consumer_tag,
                None,
            ));
        }
        let envelope = link.queue.delivered_envelope(&mut msg, false);
        let delivery = Delivery::new(
            Arc::clone(self),
            envelope,
            msg.redelivered,
            tag,
            consumer_tag,
            None,
        );
        if link.no_ack {
            // A returned message of a quorum queue, carrying its delivery count.
            drop(ledger);
            link.queue.forget(std::slice::from_ref(&msg));
            return Some(delivery);
        }
        link.queue.hold(1);
        let credit = Some(Credit {
            consumer: link.key,
            limited: link.limited,
        });
        ledger.insert(
            tag,
            Pending {
                queue: Arc::clone(&link.queue),
                msg,
                credit,
            },
        );
        Some(delivery)
    }

    /// Cancels the consumer with `tag`; unknown tags are ignored (as in RabbitMQ).
    pub(crate) fn cancel(self: &Arc<Self>, tag: &str) -> Result<()> {
        self.run(|| {
            let entry = self.consumers.lock().remove(tag);
            if let Some(entry) = entry {
                self.unsubscribe(&entry.link);
                self.signal.notify();
            }
            Ok(())
        })
    }

    pub(super) fn subscribe(
        self: &Arc<Self>,
        queue: &str,
        options: &ConsumeOptions,
        callback: Option<Callback>,
    ) -> Result<Arc<ConsumerLink>> {
        self.permit_queue_read(queue)?;
        let queue = self.consumed_queue(queue, options)?;
        let tag: Arc<str> = match &options.consumer_tag {
            Some(tag) if !tag.is_empty() => tag.as_str().into(),
            _ => names::generate("amq.ctag-").into(),
        };
        names::check_length("consumer tag", &tag)?;
        let mut consumers = self.consumers.lock();
        if consumers.contains_key(&tag) {
            return Err(Error::NotAllowed {
                reason: format!("attempt to reuse consumer tag '{tag}'"),
            });
        }
        let key = self.conn.vhost.settings().next_consumer();
        let prefetch = if options.no_ack {
            0
        } else {
            self.prefetch.load(Ordering::Relaxed)
        };
        let priority = consumer_priority(&options.arguments, &queue.name, &queue.vhost)?;
        let inbox = Arc::new(match callback {
            Some(_) => Inbox::with_signal(Arc::clone(&self.signal)),
            None => Inbox::default(),
        });
        let subscription = Subscription {
            key,
            prefetch,
            exclusive: options.exclusive,
            priority,
        };
        let fallout = queue.subscribe(subscription, Arc::clone(&inbox))?;
        self.absorb(&queue, fallout);
        let link = Arc::new(ConsumerLink {
            key,
            tag: Arc::clone(&tag),
            queue,
            inbox,
            no_ack: options.no_ack,
            limited: prefetch > 0,
        });
        let callback = callback.map(|cb| Arc::new(Mutex::new(cb)));
        consumers.insert(
            tag,
            ConsumerEntry {
                link: Arc::clone(&link),
                callback,
            },
        );
        drop(consumers);
        self.signal.notify();
        Ok(link)
    }

    /// Acknowledges a delivery, or with `multiple` every one up to `tag`.
    pub(crate) fn ack(self: &Arc<Self>, tag: u64, multiple: bool) -> Result<()> {
        self.run(|| {
            if !multiple {
                let p = self.ledger.lock().take_one(tag)?;
                let fallout = p.queue.settle(p.credit, std::slice::from_ref(&p.msg));
                self.absorb(&p.queue, fallout);
                return Ok(());
            }
            let pending = self.ledger.lock().take(tag, multiple)?;
            self.settle(pending);
            Ok(())
        })
    }

    /// Rejects one or (with `multiple`) several deliveries: requeued if `requeue_them`,
    /// otherwise dead-lettered or dropped.
    pub(crate) fn nack(
        self: &Arc<Self>,
        tag: u64,
        multiple: bool,
        requeue_them: bool,
    ) -> Result<()> {
        self.run(|| {
            let pending = self.ledger.lock().take(tag, multiple)?;
            if requeue_them {
                self.requeue(pending, Return::Requeued);
            } else {
                for p in pending {
                    let fallout = p.queue.reject(p.credit, p.msg);
                    self.absorb(&p.queue, fallout);
                }
            }
            Ok(())
        })
    }

    /// Settles acknowledged deliveries, one call per run of the same queue and consumer.
    pub(super) fn settle(&self, pending: Taken) {
        if let [p] = pending.as_slice() {
            let fallout = p.queue.settle(p.credit, std::slice::from_ref(&p.msg));
            self.absorb(&p.queue, fallout);
            return;
        }
        let mut run: Vec<QueuedMessage> = Vec::new();
        let mut pending = pending.into_iter();
        let mut next = pending.next();
        while let Some(p) = next {
            run.push(p.msg);
            next = pending.next();
            let same_run = next
                .as_ref()
                .is_some_and(|n| Arc::ptr_eq(&n.queue, &p.queue) && n.credit == p.credit);
            if !same_run {
                let fallout = p.queue.settle(p.credit, &run);
                self.absorb(&p.queue, fallout);
                run.clear();
            }
        }
    }

    /// Puts deliveries back in their queues, marked redelivered.
    pub(super) fn requeue(&self, pending: impl IntoIterator<Item = Pending>, how: Return) {
        for p in pending {
            let fallout = p.queue.requeue(p.credit, vec![p.msg], how);
            self.absorb(&p.queue, fallout);
        }
    }
}

impl fmt::Debug for ChannelInner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelInner")
            .field("closed", &self.closed.get().is_some())
            .finish()
    }
}

impl Drop for ChannelInner {
    fn drop(&mut self) {
        self.close_with(None);
    }
}
