//! Channels: the AMQP session API (declare, bind, publish, consume, ack) of a connection.

mod features;

use std::collections::HashMap;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::connection::ConnectionInner;
use crate::consumer::{ConsumerLink, Delivery};
use crate::envelope::QueuedMessage;
use crate::exchange::{Exchange, ExchangeSpec};
use crate::ledger::{Credit, Ledger, Pending};
use crate::queue::{consumer_priority, Subscription};
use crate::returns::ReturnQueue;
use crate::store::Durable;
use crate::sync::{unbounded, Mutex, Receiver, Select, Sender};
use crate::vhost::{QueueDeclareOk, RoutePreview};
use crate::{
    names, ConsumeOptions, Consumer, Error, ExchangeDeclareOptions, ExchangeDeleteOptions,
    ExchangeKind, FieldTable, GetOptions, Message, PublishOptions, QueueDeclareOptions,
    QueueDeleteOptions, Result,
};

/// The callback of a consumer started with [`Channel::basic_consume_with`].
type Callback = Box<dyn FnMut(Delivery) + Send>;

/// A consumer as its channel keeps it.
struct ConsumerEntry {
    link: Arc<ConsumerLink>,
    /// Set for callback consumers, which [`Channel::wait`] drives.
    callback: Option<Arc<Mutex<Callback>>>,
}

/// The shared state of a channel, referenced by the [`Channel`] handle, its consumers and
/// its deliveries.
pub(crate) struct ChannelInner {
    /// The connection it belongs to.
    conn: Arc<ConnectionInner>,
    /// Unacknowledged deliveries; also the authority on whether deliveries are accepted.
    ledger: Mutex<Ledger>,
    /// Set once when the channel closes, with the error that closed it, if any.
    closed: OnceLock<Option<Arc<Error>>>,
    /// Consumers by tag.
    consumers: Mutex<HashMap<Arc<str>, ConsumerEntry>>,
    /// Prefetch limit given to consumers created from now on (0 = none).
    prefetch: AtomicU32,
    /// Wakes threads blocked in `wait` when consumers change or the channel closes.
    wake_tx: Sender<()>,
    /// The receiving side of `wake_tx`.
    wake_rx: Receiver<()>,
    /// Publisher confirms are on.
    confirms: AtomicBool,
    /// Store writes of messages published in confirm mode that no one has waited for yet.
    unconfirmed: Mutex<Vec<Durable>>,
    /// The exchange last published to, so that a publisher sending to one exchange skips
    /// the lookup by name.
    last_exchange: Mutex<Option<Arc<Exchange>>>,
    /// Some publish was refused (nacked) since the last `wait_for_confirms`.
    nacked: AtomicBool,
    /// Unroutable mandatory messages for the channel's [`Returns`](crate::Returns) handles.
    returns: ReturnQueue,
}

impl ChannelInner {
    pub(crate) fn new(conn: Arc<ConnectionInner>) -> Arc<Self> {
        let (wake_tx, wake_rx) = unbounded();
        Arc::new(ChannelInner {
            conn,
            ledger: Mutex::new(Ledger::default()),
            closed: OnceLock::new(),
            consumers: Mutex::new(HashMap::new()),
            prefetch: AtomicU32::new(0),
            wake_tx,
            wake_rx,
            confirms: AtomicBool::new(false),
            unconfirmed: Mutex::new(Vec::new()),
            last_exchange: Mutex::new(None),
            nacked: AtomicBool::new(false),
            returns: ReturnQueue::default(),
        })
    }

    fn check_open(&self) -> Result<()> {
        if self.conn.is_closed() {
            return Err(Error::ConnectionClosed);
        }
        match self.closed.get() {
            Some(cause) => Err(Error::ChannelClosed {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Runs a channel method: fails on a closed channel, and when the method fails closes
    /// the channel (soft errors: 403, 404, 405, 406) or the whole connection (hard errors
    /// such as 503 or 530), as AMQP does.
    fn run<T>(self: &Arc<Self>, method: impl FnOnce() -> Result<T>) -> Result<T> {
        self.check_open()?;
        let result = method();
        if let Err(e) = &result {
            if !matches!(e, Error::ChannelClosed { .. } | Error::ConnectionClosed) {
                self.close_with(Some(Arc::new(e.clone())));
                if !e.reply_code().is_channel_error() {
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
        let pending = {
            let mut ledger = self.ledger.lock();
            ledger.closed = true;
            ledger.take_all()
        };
        requeue(pending);
        self.returns.close();
        let _ = self.wake_tx.send(());
    }

    fn unsubscribe(&self, link: &ConsumerLink) {
        if link.queue.unsubscribe(link.key).now_unused {
            self.conn.vhost.drop_queue(&link.queue);
        }
    }

    /// Turns a message taken from a consumer inbox into a delivery, or puts it back if the
    /// channel has closed meanwhile.
    pub(crate) fn accept(
        self: &Arc<Self>,
        link: &ConsumerLink,
        msg: QueuedMessage,
    ) -> Option<Delivery> {
        let mut ledger = self.ledger.lock();
        if ledger.closed {
            drop(ledger);
            link.queue.restore(vec![msg]);
            return None;
        }
        let tag = ledger.next_tag();
        let consumer_tag = Some(Arc::clone(&link.tag));
        if link.no_ack {
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
        let envelope = Arc::clone(&msg.envelope);
        let delivery = Delivery::new(
            Arc::clone(self),
            envelope,
            msg.redelivered,
            tag,
            consumer_tag,
            None,
        );
        link.queue.hold(1);
        link.queue.mark_delivered(&msg);
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
                let _ = self.wake_tx.send(());
            }
            Ok(())
        })
    }

    fn subscribe(
        self: &Arc<Self>,
        queue: &str,
        options: &ConsumeOptions,
        callback: Option<Callback>,
    ) -> Result<Arc<ConsumerLink>> {
        let queue = self.conn.vhost.queue(queue, self.conn.id)?;
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
        let key = self.conn.broker.settings.next_id();
        let prefetch = if options.no_ack {
            0
        } else {
            self.prefetch.load(Ordering::Relaxed)
        };
        let priority = consumer_priority(&options.arguments, &queue.name, &queue.vhost)?;
        let rx = queue.subscribe(Subscription {
            key,
            prefetch,
            exclusive: options.exclusive,
            priority,
        })?;
        let link = Arc::new(ConsumerLink {
            key,
            tag: Arc::clone(&tag),
            queue,
            rx,
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
        let _ = self.wake_tx.send(());
        Ok(link)
    }

    /// Settles acknowledged deliveries, one call per run of the same queue and consumer.
    fn settle(&self, pending: Vec<Pending>) {
        let mut run: Vec<QueuedMessage> = Vec::new();
        let mut iter = pending.into_iter().peekable();
        while let Some(p) = iter.next() {
            run.push(p.msg);
            let same_run = iter
                .peek()
                .is_some_and(|next| Arc::ptr_eq(&next.queue, &p.queue) && next.credit == p.credit);
            if !same_run {
                p.queue.settle(p.credit, &run);
                run.clear();
            }
        }
    }

    /// Finds the exchange to publish to, from the one-entry cache when it is the last one.
    fn publish_target(&self, name: &str) -> Result<Arc<Exchange>> {
        let mut last = self.last_exchange.lock();
        if let Some(exchange) = last
            .as_ref()
            .filter(|e| &*e.name == name && !e.is_deleted())
        {
            return Ok(Arc::clone(exchange));
        }
        let exchange = self.conn.vhost.exchange(name)?;
        *last = Some(Arc::clone(&exchange));
        Ok(exchange)
    }

    /// Remembers the store write of a message published in confirm mode.
    fn track_confirm(&self, durable: Durable) {
        if durable.is_finished() && durable.try_result().is_some_and(|r| r.is_ok()) {
            return;
        }
        let mut unconfirmed = self.unconfirmed.lock();
        if unconfirmed.len() >= 4096 {
            // Keep memory bounded for publishers that rarely wait: forget what is durable,
            // keep what failed (to report it) or is still pending.
            unconfirmed.retain(|d| d.try_result().is_none_or(|r| r.is_err()));
        }
        unconfirmed.push(durable);
    }

    /// Waits for every tracked store write; `Ok(None)` if `deadline` passes first.
    fn wait_confirms(&self, deadline: Option<Instant>) -> Result<Option<bool>> {
        if !self.confirms.load(Ordering::Relaxed) {
            return Err(Error::precondition("channel is not in confirm mode"));
        }
        let pending = std::mem::take(&mut *self.unconfirmed.lock());
        for (i, durable) in pending.iter().enumerate() {
            let outcome = match deadline {
                None => Some(durable.wait()),
                Some(deadline) => {
                    durable.wait_timeout(deadline.saturating_duration_since(Instant::now()))
                }
            };
            match outcome {
                Some(Ok(())) => {}
                Some(Err(e)) => return Err(Error::Storage(e)),
                None => {
                    let mut unconfirmed = self.unconfirmed.lock();
                    let rest = pending.into_iter().skip(i);
                    let newer = std::mem::take(&mut *unconfirmed);
                    unconfirmed.extend(rest.chain(newer));
                    return Ok(None);
                }
            }
        }
        Ok(Some(true))
    }

    /// Waits for one callback delivery and runs its callback. Returns `false` on timeout.
    fn wait_until(self: &Arc<Self>, deadline: Option<Instant>) -> Result<bool> {
        loop {
            self.check_open()?;
            while self.wake_rx.try_recv().is_ok() {}
            let links: Vec<Arc<ConsumerLink>> = self
                .consumers
                .lock()
                .values()
                .filter(|e| e.callback.is_some())
                .map(|e| Arc::clone(&e.link))
                .collect();
            let mut select = Select::new();
            select.recv(&self.wake_rx);
            for link in &links {
                select.recv(&link.rx);
            }
            let op = match deadline {
                Some(deadline) => match select.select_deadline(deadline) {
                    Ok(op) => op,
                    Err(_) => return Ok(false),
                },
                None => select.select(),
            };
            let index = op.index();
            if index == 0 {
                let _ = op.recv(&self.wake_rx);
                continue;
            }
            let link = &links[index - 1];
            match op.recv(&link.rx) {
                Ok(msg) => {
                    if self.dispatch_callback(link, msg) {
                        return Ok(true);
                    }
                }
                // The queue was deleted: the consumer is gone.
                Err(_) => {
                    self.consumers.lock().remove(&link.tag);
                }
            }
        }
    }

    /// Runs the callback of `link` on `msg`. A panicking callback does not unwind into the
    /// broker: its message goes back to the queue, marked redelivered.
    fn dispatch_callback(self: &Arc<Self>, link: &Arc<ConsumerLink>, msg: QueuedMessage) -> bool {
        let callback = self
            .consumers
            .lock()
            .get(&link.tag)
            .and_then(|e| e.callback.clone());
        let Some(callback) = callback else {
            link.queue.restore(vec![msg]);
            return false;
        };
        let kept = link.no_ack.then(|| msg.clone());
        let Some(delivery) = self.accept(link, msg) else {
            return false;
        };
        let tag = delivery.delivery_tag();
        let outcome = catch_unwind(AssertUnwindSafe(|| (callback.lock())(delivery)));
        if outcome.is_err() {
            match kept {
                Some(mut msg) => {
                    // Settled on receipt, so its store entry is gone: the retry is transient.
                    msg.persisted = false;
                    link.queue.hold(1);
                    link.queue.requeue(None, vec![msg]);
                }
                None => {
                    if let Ok(pending) = self.ledger.lock().take(tag, false) {
                        requeue(pending);
                    }
                }
            }
        }
        true
    }
}

/// Puts deliveries back in their queues, marked redelivered.
fn requeue(pending: Vec<Pending>) {
    for p in pending {
        p.queue.requeue(p.credit, vec![p.msg]);
    }
}

impl fmt::Debug for ChannelInner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelInner")
            .field("closed", &self.closed.get().is_some())
            .finish()
    }
}

/// A session on a [`Connection`](crate::Connection): the AMQP methods for exchanges, queues,
/// publishing and consuming.
///
/// A channel is `Send + Sync`: threads may share one. As in AMQP, a method that fails
/// closes the channel; later calls return [`Error::ChannelClosed`] carrying that first
/// error. The connection and its other channels go on.
///
/// Closing a channel cancels its consumers and returns its unacknowledged messages to their
/// queues, marked redelivered. A channel closes when [`close`](Self::close) is called, when
/// its connection closes, or when the `Channel` and every [`Consumer`] and [`Delivery`] of it
/// have been dropped.
pub struct Channel {
    inner: Arc<ChannelInner>,
}

impl Channel {
    pub(crate) fn new(inner: Arc<ChannelInner>) -> Self {
        Channel { inner }
    }

    /// Declares an exchange, or checks that an existing one has the same properties.
    ///
    /// # Errors
    ///
    /// 403 for names starting with `amq.`; 406 if the exchange exists with other
    /// properties; 404 for a passive declare of a missing exchange; 503 for an unknown kind.
    pub fn exchange_declare(
        &self,
        exchange: &str,
        kind: ExchangeKind,
        options: ExchangeDeclareOptions,
        arguments: FieldTable,
    ) -> Result<()> {
        self.inner.run(|| {
            let spec = ExchangeSpec {
                name: exchange,
                kind: &kind,
                options,
                arguments: &arguments,
            };
            self.inner.conn.vhost.declare_exchange(&spec)
        })
    }

    /// Deletes an exchange and its bindings. Deleting a missing exchange succeeds.
    ///
    /// # Errors
    ///
    /// 406 with `if_unused` when it has bindings; 403 for the predeclared exchanges.
    pub fn exchange_delete(&self, exchange: &str, options: ExchangeDeleteOptions) -> Result<()> {
        self.inner.run(|| {
            self.inner
                .conn
                .vhost
                .delete_exchange(exchange, options.if_unused)
        })
    }

    /// Declares a queue, or checks that an existing one has the same properties. An empty
    /// name asks for a server-named queue (`amq.gen-…`).
    ///
    /// # Errors
    ///
    /// 403 for names starting with `amq.`; 406 if the queue exists with other properties;
    /// 404 for a passive declare of a missing queue; 405 for another connection's exclusive
    /// queue.
    pub fn queue_declare(
        &self,
        queue: &str,
        options: QueueDeclareOptions,
        arguments: FieldTable,
    ) -> Result<QueueDeclareOk> {
        self.inner.run(|| {
            let conn = &self.inner.conn;
            let (ok, created) = conn
                .vhost
                .declare_queue(queue, options, &arguments, conn.id)?;
            if let Some(queue) = created.filter(|q| q.exclusive_owner.is_some()) {
                conn.own_exclusive(queue);
            }
            Ok(ok)
        })
    }

    /// Binds a queue to an exchange with a routing key (and arguments, for headers
    /// exchanges). Binding twice is one binding.
    ///
    /// # Errors
    ///
    /// 404 for a missing queue or exchange; 403 for the default exchange; 406 for a
    /// durable/non-durable pair (unless allowed) or invalid arguments.
    pub fn queue_bind(
        &self,
        queue: &str,
        exchange: &str,
        routing_key: &str,
        arguments: FieldTable,
    ) -> Result<()> {
        self.inner.run(|| {
            let conn = &self.inner.conn;
            conn.vhost
                .bind_queue(queue, exchange, routing_key, &arguments, conn.id)
        })
    }

    /// Removes a binding. Removing one that does not exist succeeds.
    ///
    /// # Errors
    ///
    /// 404 for a missing queue or exchange.
    pub fn queue_unbind(
        &self,
        queue: &str,
        exchange: &str,
        routing_key: &str,
        arguments: FieldTable,
    ) -> Result<()> {
        self.inner.run(|| {
            let conn = &self.inner.conn;
            conn.vhost
                .unbind_queue(queue, exchange, routing_key, &arguments, conn.id)
        })
    }

    /// Removes every ready message of a queue; returns how many. Unacknowledged messages
    /// stay.
    ///
    /// # Errors
    ///
    /// 404 for a missing queue; 405 for another connection's exclusive queue.
    pub fn queue_purge(&self, queue: &str) -> Result<u32> {
        self.inner.run(|| {
            let conn = &self.inner.conn;
            let n = conn.vhost.purge_queue(queue, conn.id)?;
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        })
    }

    /// Deletes a queue, its bindings and its messages; returns the number of ready messages
    /// it held. Its consumers are cancelled. Deleting a missing queue succeeds with 0.
    ///
    /// # Errors
    ///
    /// 406 with `if_unused` when it has consumers or `if_empty` when it has messages; 405
    /// for another connection's exclusive queue.
    pub fn queue_delete(&self, queue: &str, options: QueueDeleteOptions) -> Result<u32> {
        self.inner.run(|| {
            let conn = &self.inner.conn;
            let n = conn
                .vhost
                .delete_queue(queue, options.if_unused, options.if_empty, conn.id)?;
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        })
    }

    /// Publishes a message to an exchange with a routing key.
    ///
    /// A message that reaches no queue is dropped and counted in the exchange's
    /// [`unroutable`](crate::ExchangeStats::unroutable) counter, as RabbitMQ drops it. To
    /// get it back instead, publish with [`basic_publish_with`](Self::basic_publish_with)
    /// and [`PublishOptions::mandatory`].
    ///
    /// # Errors
    ///
    /// 404 for a missing exchange; 403 for an internal exchange; 406 for an invalid
    /// `expiration` property.
    pub fn basic_publish(&self, exchange: &str, routing_key: &str, message: Message) -> Result<()> {
        self.basic_publish_with(exchange, routing_key, PublishOptions::default(), message)
    }

    /// Fetches the message at the head of a queue, or `None` if it is empty.
    ///
    /// # Errors
    ///
    /// 404 for a missing queue; 405 for another connection's exclusive queue.
    pub fn basic_get(&self, queue: &str, options: GetOptions) -> Result<Option<Delivery>> {
        self.inner.run(|| {
            let conn = &self.inner.conn;
            let queue = conn.vhost.queue(queue, conn.id)?;
            let mut ledger = self.inner.ledger.lock();
            let Some((msg, left)) = queue.get() else {
                return Ok(None);
            };
            let tag = ledger.next_tag();
            let count = Some(u32::try_from(left).unwrap_or(u32::MAX));
            let envelope = Arc::clone(&msg.envelope);
            let delivery = Delivery::new(
                Arc::clone(&self.inner),
                envelope,
                msg.redelivered,
                tag,
                None,
                count,
            );
            if options.no_ack {
                queue.settle(None, std::slice::from_ref(&msg));
            } else {
                queue.mark_delivered(&msg);
                ledger.insert(
                    tag,
                    Pending {
                        queue,
                        msg,
                        credit: None,
                    },
                );
            }
            Ok(Some(delivery))
        })
    }

    /// Subscribes to a queue and returns a blocking [`Consumer`].
    ///
    /// Messages are spread round-robin among a queue's consumers, each holding at most the
    /// channel's [`basic_qos`](Self::basic_qos) prefetch unacknowledged.
    ///
    /// # Errors
    ///
    /// 404 for a missing queue; 405 for another connection's exclusive queue; 403 if the
    /// queue has an exclusive consumer (or others, when asking for exclusivity); 530 for a
    /// consumer tag in use on this channel.
    pub fn basic_consume(&self, queue: &str, options: ConsumeOptions) -> Result<Consumer> {
        self.inner.run(|| {
            let link = self.inner.subscribe(queue, &options, None)?;
            Ok(Consumer::new(link, Arc::clone(&self.inner)))
        })
    }

    /// Subscribes to a queue with a callback, run by [`wait`](Self::wait) on the waiting
    /// thread (the py-amqp style). Returns the consumer tag.
    ///
    /// A callback that panics does not take the channel down: its delivery goes back to the
    /// queue, marked redelivered. A callback must not call `wait` on its own channel.
    ///
    /// # Errors
    ///
    /// As for [`basic_consume`](Self::basic_consume).
    pub fn basic_consume_with(
        &self,
        queue: &str,
        options: ConsumeOptions,
        callback: impl FnMut(Delivery) + Send + 'static,
    ) -> Result<String> {
        self.inner.run(|| {
            let link = self
                .inner
                .subscribe(queue, &options, Some(Box::new(callback)))?;
            Ok(link.tag.to_string())
        })
    }

    /// Blocks until one delivery for a callback consumer arrives and runs its callback.
    ///
    /// # Errors
    ///
    /// 504 once the channel is closed.
    pub fn wait(&self) -> Result<()> {
        self.inner.wait_until(None).map(drop)
    }

    /// Like [`wait`](Self::wait), but gives up after `timeout`; returns `false` if no
    /// callback ran.
    ///
    /// # Errors
    ///
    /// 504 once the channel is closed.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        self.inner.wait_until(Instant::now().checked_add(timeout))
    }

    /// Cancels a consumer. Its unreceived messages go back to the queue; messages already
    /// received stay unacknowledged on this channel. Unknown tags are ignored.
    ///
    /// # Errors
    ///
    /// 504 if the channel is closed.
    pub fn basic_cancel(&self, consumer_tag: &str) -> Result<()> {
        self.inner.cancel(consumer_tag)
    }

    /// Sets the prefetch count for consumers created on this channel from now on: each may
    /// hold at most this many unacknowledged deliveries (0 = no limit).
    ///
    /// # Errors
    ///
    /// 504 if the channel is closed.
    pub fn basic_qos(&self, prefetch_count: u16) -> Result<()> {
        self.inner.run(|| {
            self.inner
                .prefetch
                .store(u32::from(prefetch_count), Ordering::Relaxed);
            Ok(())
        })
    }

    /// Acknowledges a delivery, or with `multiple` every one up to `delivery_tag`.
    ///
    /// # Errors
    ///
    /// 406 for an unknown delivery tag (which closes the channel).
    pub fn basic_ack(&self, delivery_tag: u64, multiple: bool) -> Result<()> {
        Self::ack_on(&self.inner, delivery_tag, multiple)
    }

    /// Rejects one or (with `multiple`) several deliveries: requeued if `requeue`,
    /// otherwise discarded.
    ///
    /// # Errors
    ///
    /// 406 for an unknown delivery tag.
    pub fn basic_nack(&self, delivery_tag: u64, multiple: bool, requeue: bool) -> Result<()> {
        Self::nack_on(&self.inner, delivery_tag, multiple, requeue)
    }

    /// Rejects one delivery: requeued if `requeue`, otherwise discarded.
    ///
    /// # Errors
    ///
    /// 406 for an unknown delivery tag.
    pub fn basic_reject(&self, delivery_tag: u64, requeue: bool) -> Result<()> {
        Self::nack_on(&self.inner, delivery_tag, false, requeue)
    }

    /// Returns every unacknowledged delivery of this channel to its queue, marked
    /// redelivered (`basic.recover` with `requeue = true`).
    ///
    /// # Errors
    ///
    /// 504 if the channel is closed.
    pub fn basic_recover(&self) -> Result<()> {
        self.inner.run(|| {
            let pending = self.inner.ledger.lock().take_all();
            requeue(pending);
            Ok(())
        })
    }

    pub(crate) fn ack_on(inner: &Arc<ChannelInner>, tag: u64, multiple: bool) -> Result<()> {
        inner.run(|| {
            let pending = inner.ledger.lock().take(tag, multiple)?;
            inner.settle(pending);
            Ok(())
        })
    }

    pub(crate) fn nack_on(
        inner: &Arc<ChannelInner>,
        tag: u64,
        multiple: bool,
        requeue_them: bool,
    ) -> Result<()> {
        inner.run(|| {
            let pending = inner.ledger.lock().take(tag, multiple)?;
            if requeue_them {
                requeue(pending);
            } else {
                for p in pending {
                    p.queue.reject(p.credit, p.msg);
                }
            }
            Ok(())
        })
    }

    /// Turns on publisher confirms for this channel.
    ///
    /// # Errors
    ///
    /// 504 if the channel is closed.
    pub fn confirm_select(&self) -> Result<()> {
        self.inner.run(|| {
            self.inner.confirms.store(true, Ordering::Relaxed);
            Ok(())
        })
    }

    /// Waits until every message published on this channel since confirms were turned on is
    /// confirmed; returns `false` if the broker refused (nacked) any.
    ///
    /// # Durability
    ///
    /// On a persistent broker a persistent message routed to a durable queue is confirmed
    /// once its group commit is on disk (fsync'd); everything else is confirmed when it is
    /// enqueued, which has happened by the time `basic_publish` returns.
    ///
    /// # Errors
    ///
    /// 406 if confirms are not on (see [`confirm_select`](Self::confirm_select));
    /// [`Error::Storage`] if a message could not be written, so its confirm cannot be given.
    pub fn wait_for_confirms(&self) -> Result<bool> {
        self.inner.run(|| {
            let written = self.inner.wait_confirms(None)?.unwrap_or(true);
            Ok(written && !self.inner.nacked.swap(false, Ordering::AcqRel))
        })
    }

    /// Like [`wait_for_confirms`](Self::wait_for_confirms), but gives up after `timeout`:
    /// `None` if some confirm was still outstanding then (they stay tracked).
    ///
    /// # Errors
    ///
    /// As for [`wait_for_confirms`](Self::wait_for_confirms).
    pub fn wait_for_confirms_timeout(&self, timeout: Duration) -> Result<Option<bool>> {
        let deadline = Instant::now().checked_add(timeout).or(Some(Instant::now()));
        self.inner.run(|| {
            Ok(self
                .inner
                .wait_confirms(deadline)?
                .map(|written| written && !self.inner.nacked.swap(false, Ordering::AcqRel)))
        })
    }

    /// Computes which queues a message would reach, without publishing it. For unit tests of
    /// routing logic. Does not close the channel on error.
    ///
    /// # Errors
    ///
    /// 404 for a missing exchange.
    pub fn route_preview(
        &self,
        exchange: &str,
        routing_key: &str,
        headers: &FieldTable,
    ) -> Result<RoutePreview> {
        self.inner.check_open()?;
        let headers = (!headers.is_empty()).then_some(headers);
        self.inner
            .conn
            .vhost
            .route_preview(exchange, routing_key, headers)
    }

    /// Returns the number of deliveries on this channel awaiting an ack.
    pub fn unacked_count(&self) -> usize {
        self.inner.ledger.lock().len()
    }

    /// Returns `true` once the channel is closed.
    pub fn is_closed(&self) -> bool {
        self.inner.check_open().is_err()
    }

    /// Closes the channel: cancels its consumers and requeues its unacknowledged deliveries.
    /// Closing a closed channel does nothing.
    pub fn close(&self) {
        self.inner.close_with(None);
    }
}

impl Drop for ChannelInner {
    fn drop(&mut self) {
        self.close_with(None);
    }
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("Channel { .. }")
    }
}
