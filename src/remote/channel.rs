//! [`RemoteChannel`]: the methods of [`Channel`](crate::Channel) on a lapin channel, with
//! Warren's error semantics (a failed method closes the channel, later calls return
//! `ChannelClosed` with that cause) and recovery (a reopened lapin channel after a
//! reconnect, delivery tags that keep increasing across it).

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Instant;

use bytes::Bytes;
use compact_str::CompactString;
use lapin::options as o;

use super::connection::{next, open_channel, RemoteConnection};
use super::errors::{classify, Failure};
use super::gate::Gate;
use super::topology::Declared;
use crate::amqp::convert::{properties_from_wire, properties_to_wire, short_string, table_to_wire};
use crate::inbox::{Inbox, Signal};
use crate::returns::{ReturnQueue, ReturnedMessage};
use crate::sync::Mutex;
use crate::vhost::QueueDeclareOk;
use crate::{
    ConsumeOptions, Error, ExchangeDeclareOptions, ExchangeDeleteOptions, ExchangeKind, FieldTable,
    Message, PublishOptions, QueueDeclareOptions, QueueDeleteOptions, ReplyCode, Result,
};

/// The outcome of one publish's confirm: `None` while outstanding.
pub(crate) type Outcome = Gate<Option<Result<bool>>>;

/// The callback of a remote callback consumer.
pub(crate) type Callback = Box<dyn FnMut(crate::Delivery) + Send>;

/// A consumer to subscribe again: tag, queue, options, inbox.
type Resubscribe = (Arc<str>, String, ConsumeOptions, Arc<Inbox<Raw>>);

/// A callback consumer as `wait` sees it.
type CallbackEntry = (Arc<Inbox<Raw>>, Arc<Mutex<Callback>>);

/// A delivery as it waits in a remote consumer's inbox.
#[derive(Debug)]
pub(crate) struct Raw {
    /// The link it came on.
    pub(crate) epoch: u64,
    /// The delivery tag the application sees (the server's plus the channel's offset).
    pub(crate) tag: u64,
    pub(crate) redelivered: bool,
    pub(crate) exchange: CompactString,
    pub(crate) routing_key: CompactString,
    pub(crate) message: Message,
    pub(crate) consumer_tag: Arc<str>,
    /// Settled on receipt.
    pub(crate) no_ack: bool,
}

/// A consumer as its remote channel keeps it (to subscribe it again after a reconnect).
pub(crate) struct Subscription {
    pub(crate) queue: String,
    pub(crate) options: ConsumeOptions,
    pub(crate) inbox: Arc<Inbox<Raw>>,
    pub(crate) callback: Option<Arc<Mutex<Callback>>>,
}

/// The lapin channel in use, on which link.
struct Current {
    lapin: lapin::Channel,
    epoch: u64,
    /// Added to the server's delivery tags: the highest tag handed out before this link.
    offset: u64,
}

/// The shared state of a remote [`Channel`](crate::Channel).
pub(crate) struct RemoteChannel {
    pub(crate) conn: Arc<RemoteConnection>,
    me: Weak<RemoteChannel>,
    current: Mutex<Current>,
    /// Set once when the channel closes, with the error that closed it, if any.
    closed: OnceLock<Option<Arc<Error>>>,
    prefetch: AtomicU16,
    /// The application turned confirms on (the lapin channel always has them).
    confirms: AtomicBool,
    /// Publishes sent and settled (confirmed, refused or lost), and whether the channel
    /// closed: waits for confirms wait until `settled` reaches what was sent before them.
    confirms_seen: Gate<Counts>,
    /// A publish was nacked or lost since the last `wait_for_confirms`.
    nacked: AtomicBool,
    /// The highest delivery tag handed out.
    last_tag: AtomicU64,
    /// Delivery tags awaiting an ack.
    unacked: Mutex<BTreeSet<u64>>,
    pub(crate) consumers: Mutex<HashMap<Arc<str>, Subscription>>,
    pub(crate) returns: ReturnQueue,
    /// Bumped by arrivals for callback consumers.
    pub(crate) signal: Arc<Signal>,
    wait_cursor: AtomicUsize,
}

/// Publishes sent and settled on a channel.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counts {
    sent: u64,
    settled: u64,
    closed: bool,
}

/// How a settle call treats the deliveries it names.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Settle {
    Ack,
    Nack { requeue: bool },
}

impl RemoteChannel {
    pub(crate) fn open(conn: &Arc<RemoteConnection>) -> Result<Arc<Self>> {
        let (lapin, epoch) = conn.create_channel()?;
        let channel = Arc::new_cyclic(|me| RemoteChannel {
            conn: Arc::clone(conn),
            me: me.clone(),
            current: Mutex::new(Current {
                lapin,
                epoch,
                offset: 0,
            }),
            closed: OnceLock::new(),
            prefetch: AtomicU16::new(0),
            confirms: AtomicBool::new(false),
            confirms_seen: Gate::new(Counts::default()),
            nacked: AtomicBool::new(false),
            last_tag: AtomicU64::new(0),
            unacked: Mutex::default(),
            consumers: Mutex::default(),
            returns: ReturnQueue::default(),
            signal: Arc::default(),
            wait_cursor: AtomicUsize::new(0),
        });
        conn.register(&channel);
        Ok(channel)
    }

    fn arc(&self) -> Option<Arc<Self>> {
        self.me.upgrade()
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if let Some(cause) = self.closed.get() {
            return Err(Error::ChannelClosed {
                cause: cause.clone(),
            });
        }
        if self.conn.is_closed() {
            return Err(Error::ConnectionClosed);
        }
        Ok(())
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.check_open().is_err()
    }

    /// Returns the epoch of the current lapin channel.
    pub(crate) fn epoch(&self) -> u64 {
        self.current.lock().epoch
    }

    /// Returns the lapin channel to call, waiting while the connection recovers.
    fn lapin(&self) -> Result<(lapin::Channel, u64)> {
        let mut since: Option<Instant> = None;
        loop {
            self.check_open()?;
            let epoch = self.conn.wait_up()?;
            let current = self.current.lock();
            if current.epoch == epoch {
                return Ok((current.lapin.clone(), epoch));
            }
            drop(current);
            // A channel opened while its link was being lost missed the recovery.
            let first = *since.get_or_insert_with(Instant::now);
            if first.elapsed() > std::time::Duration::from_secs(1) {
                self.close_locally(None);
                return Err(Error::ChannelClosed { cause: None });
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Runs one method. A lost link is recovered and the method retried on the new one; a
    /// server error closes the channel (or the connection) as in process.
    fn call<T, F, Fut>(&self, method: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(lapin::Channel) -> Fut,
        Fut: Future<Output = lapin::Result<T>> + Send + 'static,
    {
        self.call_at(method).map(|(value, _)| value)
    }

    /// As [`call`](Self::call), also returning the epoch of the link it succeeded on.
    fn call_at<T, F, Fut>(&self, method: F) -> Result<(T, u64)>
    where
        T: Send + 'static,
        F: Fn(lapin::Channel) -> Fut,
        Fut: Future<Output = lapin::Result<T>> + Send + 'static,
    {
        loop {
            let (lapin, epoch) = self.lapin()?;
            match self.conn.block_on(method(lapin))? {
                Ok(value) => return Ok((value, epoch)),
                Err(e) => match classify(&e) {
                    Failure::Lost(reason) => self.conn.lost(epoch, reason),
                    Failure::Channel(error) => return Err(self.fail(error)),
                    Failure::Connection(error) => {
                        self.conn.close_with(Some(error.clone()));
                        return Err(error);
                    }
                    Failure::ChannelGone => {
                        if !self.conn.link_alive(epoch) {
                            self.conn.lost(epoch, e.to_string());
                        } else if self.current.lock().epoch == epoch {
                            // Closed by the server for an earlier publish: its cause is
                            // known once the confirm tasks have seen it.
                            self.settle_outstanding();
                            self.check_open()?;
                            return Err(self.fail_without_cause());
                        }
                    }
                },
            }
        }
    }

    /// Runs a synchronous method: first waits for the confirms of earlier publishes, so
    /// that an error one of them caused closes the channel before this method runs.
    fn sync_call<T, F, Fut>(&self, method: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(lapin::Channel) -> Fut,
        Fut: Future<Output = lapin::Result<T>> + Send + 'static,
    {
        self.check_open()?;
        self.settle_outstanding();
        self.check_open()?;
        self.call(method)
    }

    /// Waits until every publish sent so far has its confirm (each resolves, or fails with
    /// its link), or the channel closes; `false` if `deadline` passed first.
    fn settle_outstanding_until(&self, deadline: Option<Instant>) -> bool {
        let target = self.confirms_seen.get().sent;
        self.confirms_seen
            .wait(|c| c.settled >= target || c.closed, deadline)
            .1
    }

    fn settle_outstanding(&self) {
        self.settle_outstanding_until(None);
    }

    /// The server closed the channel with `error`: close it here too and return the error.
    fn fail(&self, error: Error) -> Error {
        self.close_locally(Some(error.clone()));
        error
    }

    fn fail_without_cause(&self) -> Error {
        self.close_locally(None);
        Error::ChannelClosed {
            cause: self.closed.get().cloned().flatten(),
        }
    }

    /// Marks the channel closed with `cause` and disconnects its consumers and returns.
    pub(crate) fn close_locally(&self, cause: Option<Error>) {
        if self.closed.set(cause.map(Arc::new)).is_err() {
            return;
        }
        let subscriptions: Vec<Subscription> =
            self.consumers.lock().drain().map(|(_, s)| s).collect();
        for s in subscriptions {
            s.inbox.close();
        }
        self.unacked.lock().clear();
        self.returns.close();
        self.signal.notify();
        self.confirms_seen.update(|c| c.closed = true);
    }

    /// Closes the channel: the server requeues its unacknowledged deliveries.
    pub(crate) fn close(&self) {
        if self.closed.get().is_some() {
            return;
        }
        let lapin = self.current.lock().lapin.clone();
        self.close_locally(None);
        if self.conn.is_closed() {
            return;
        }
        let _ = self.conn.block_on(async move {
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                lapin.close(200, "OK".into()),
            )
            .await;
        });
    }

    /// Reopens the channel on a new link after a reconnect: confirms, prefetch, consumers.
    pub(crate) async fn reopen(
        &self,
        link: &lapin::Connection,
        epoch: u64,
    ) -> std::result::Result<(), String> {
        if self.closed.get().is_some() {
            return Ok(());
        }
        let lapin = open_channel(link).await.map_err(|e| e.to_string())?;
        let prefetch = self.prefetch.load(Ordering::Relaxed);
        if prefetch > 0 {
            lapin
                .basic_qos(prefetch, o::BasicQosOptions::default())
                .await
                .map_err(|e| e.to_string())?;
        }
        let offset = self.last_tag.load(Ordering::Acquire);
        {
            let mut current = self.current.lock();
            *current = Current {
                lapin: lapin.clone(),
                epoch,
                offset,
            };
        }
        self.unacked.lock().clear();
        let subscriptions: Vec<Resubscribe> = self
            .consumers
            .lock()
            .iter()
            .map(|(tag, s)| {
                (
                    Arc::clone(tag),
                    s.queue.clone(),
                    s.options.clone(),
                    Arc::clone(&s.inbox),
                )
            })
            .collect();
        for (tag, queue, options, inbox) in subscriptions {
            match subscribe(&lapin, &queue, &tag, &options).await {
                Ok(consumer) => self.pump(consumer, tag, inbox, epoch, offset, options.no_ack),
                Err(e) => match classify(&e) {
                    Failure::Lost(reason) => return Err(reason),
                    _ => {
                        tracing::warn!(%queue, error = %e, "cannot consume again after reconnecting");
                        self.consumers.lock().remove(&tag);
                        inbox.close();
                        // The failed consume closed the channel: open another.
                        let lapin = open_channel(link).await.map_err(|e| e.to_string())?;
                        if prefetch > 0 {
                            let _ = lapin
                                .basic_qos(prefetch, o::BasicQosOptions::default())
                                .await;
                        }
                        self.current.lock().lapin = lapin;
                    }
                },
            }
        }
        Ok(())
    }

    /// A server-named queue has a new name after a reconnect.
    pub(crate) fn rename_queue(&self, old: &str, new: &str) {
        for s in self.consumers.lock().values_mut() {
            if s.queue == old {
                new.clone_into(&mut s.queue);
            }
        }
    }

    // ---- topology ----

    pub(crate) fn exchange_declare(
        &self,
        name: &str,
        kind: &ExchangeKind,
        options: ExchangeDeclareOptions,
        arguments: FieldTable,
    ) -> Result<()> {
        let (n, k, a) = (
            short_string(name),
            exchange_kind(kind),
            table_to_wire(&arguments),
        );
        let opts = o::ExchangeDeclareOptions {
            passive: options.passive,
            durable: options.durable,
            auto_delete: options.auto_delete,
            internal: options.internal,
            nowait: false,
        };
        self.sync_call(move |ch| {
            let (n, k, a) = (n.clone(), k.clone(), a.clone());
            async move { ch.exchange_declare(n, k, opts, a).await }
        })?;
        if !options.passive {
            self.conn.record(Declared::Exchange {
                name: name.to_owned(),
                kind: kind.clone(),
                options,
                arguments,
            });
        }
        Ok(())
    }

    pub(crate) fn exchange_delete(&self, name: &str, options: ExchangeDeleteOptions) -> Result<()> {
        let n = short_string(name);
        let opts = o::ExchangeDeleteOptions {
            if_unused: options.if_unused,
            nowait: false,
        };
        self.sync_call(move |ch| {
            let n = n.clone();
            async move { ch.exchange_delete(n, opts).await }
        })?;
        self.conn.topology.lock().delete_exchange(name);
        Ok(())
    }

    pub(crate) fn queue_declare(
        &self,
        name: &str,
        options: QueueDeclareOptions,
        arguments: FieldTable,
    ) -> Result<QueueDeclareOk> {
        let (n, a) = (short_string(name), table_to_wire(&arguments));
        let opts = o::QueueDeclareOptions {
            passive: options.passive,
            durable: options.durable,
            exclusive: options.exclusive,
            auto_delete: options.auto_delete,
            nowait: false,
        };
        let ok = self.sync_call(move |ch| {
            let (n, a) = (n.clone(), a.clone());
            async move { ch.queue_declare(n, opts, a).await }
        })?;
        let queue = ok.name().as_str().to_owned();
        if !options.passive {
            self.conn.record(Declared::Queue {
                name: queue.clone(),
                options,
                arguments,
                server_named: name.is_empty(),
            });
        }
        Ok(QueueDeclareOk {
            queue,
            message_count: ok.message_count(),
            consumer_count: ok.consumer_count(),
        })
    }

    pub(crate) fn queue_bind(
        &self,
        queue: &str,
        exchange: &str,
        routing_key: &str,
        arguments: FieldTable,
    ) -> Result<()> {
        self.binding(
            Declared::queue_binding(queue, exchange, routing_key, arguments),
            true,
        )
    }

    pub(crate) fn queue_unbind(
        &self,
        queue: &str,
        exchange: &str,
        routing_key: &str,
        arguments: FieldTable,
    ) -> Result<()> {
        self.binding(
            Declared::queue_binding(queue, exchange, routing_key, arguments),
            false,
        )
    }

    pub(crate) fn exchange_bind(
        &self,
        destination: &str,
        source: &str,
        routing_key: &str,
        arguments: FieldTable,
    ) -> Result<()> {
        let entry = Declared::exchange_binding(destination, source, routing_key, arguments);
        self.binding(entry, true)
    }

    pub(crate) fn exchange_unbind(
        &self,
        destination: &str,
        source: &str,
        routing_key: &str,
        arguments: FieldTable,
    ) -> Result<()> {
        let entry = Declared::exchange_binding(destination, source, routing_key, arguments);
        self.binding(entry, false)
    }

    /// Makes (`bind`) or removes the binding `entry` on the server, then records it for
    /// recovery or forgets it. Other declarations are not bindings: nothing is done.
    fn binding(&self, entry: Declared, bind: bool) -> Result<()> {
        let (to_queue, destination, source, key, arguments) = match &entry {
            Declared::QueueBinding {
                queue,
                exchange,
                routing_key,
                arguments,
            } => (true, queue, exchange, routing_key, arguments),
            Declared::ExchangeBinding {
                destination,
                source,
                routing_key,
                arguments,
            } => (false, destination, source, routing_key, arguments),
            Declared::Exchange { .. } | Declared::Queue { .. } => return Ok(()),
        };
        let (d, s, k, a) = (
            short_string(destination),
            short_string(source),
            short_string(key),
            table_to_wire(arguments),
        );
        self.sync_call(move |ch| {
            let (d, s, k, a) = (d.clone(), s.clone(), k.clone(), a.clone());
            async move {
                match (to_queue, bind) {
                    (true, true) => ch.queue_bind(d, s, k, Default::default(), a).await,
                    (true, false) => ch.queue_unbind(d, s, k, a).await,
                    (false, true) => ch.exchange_bind(d, s, k, Default::default(), a).await,
                    (false, false) => ch.exchange_unbind(d, s, k, Default::default(), a).await,
                }
            }
        })?;
        let mut topology = self.conn.topology.lock();
        if bind {
            topology.record(entry);
        } else {
            topology.unbind(&entry);
        }
        Ok(())
    }

    pub(crate) fn queue_purge(&self, queue: &str) -> Result<u32> {
        let q = short_string(queue);
        self.sync_call(move |ch| {
            let q = q.clone();
            async move { ch.queue_purge(q, o::QueuePurgeOptions::default()).await }
        })
    }

    pub(crate) fn queue_delete(&self, queue: &str, options: QueueDeleteOptions) -> Result<u32> {
        let q = short_string(queue);
        let opts = o::QueueDeleteOptions {
            if_unused: options.if_unused,
            if_empty: options.if_empty,
            nowait: false,
        };
        let n = self.sync_call(move |ch| {
            let q = q.clone();
            async move { ch.queue_delete(q, opts).await }
        })?;
        self.conn.topology.lock().delete_queue(queue);
        Ok(n)
    }

    // ---- publishing ----

    /// Publishes; returns the outcome of the message's confirm. A mandatory publish waits
    /// for its confirm, so that a return is in the channel's `Returns` when it returns (as
    /// in process).
    pub(crate) fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        options: PublishOptions,
        message: Message,
    ) -> Result<Arc<Outcome>> {
        self.check_open()?;
        let (e, k) = (short_string(exchange), short_string(routing_key));
        let (body, properties) = message.into_parts();
        let props = properties_to_wire(&properties);
        let opts = o::BasicPublishOptions {
            mandatory: options.mandatory,
            immediate: false,
        };
        let (confirm, epoch) = self.call_at(move |ch| {
            let (e, k, body, props) = (e.clone(), k.clone(), body.clone(), props.clone());
            async move { ch.basic_publish(e, k, opts, &body, props).await }
        })?;
        let outcome = Arc::new(Gate::new(None));
        self.confirms_seen.update(|c| c.sent += 1);
        let me = self.me.clone();
        let settled = Arc::clone(&outcome);
        let mut losses = self.conn.losses();
        let lost_now = self.conn.epoch_if_up() != Some(epoch);
        self.conn.spawn(async move {
            let result = if lost_now {
                None
            } else {
                tokio::select! {
                    r = confirm => Some(r),
                    _ = losses.changed() => None,
                }
            };
            let Some(channel) = me.upgrade() else {
                settled.update(|o| *o = Some(Ok(false)));
                return;
            };
            channel.confirmed(result, epoch, &settled);
        });
        if options.mandatory {
            let (value, _) = outcome.wait(Option::is_some, None);
            if let Some(Err(error)) = value {
                return Err(error);
            }
        }
        Ok(outcome)
    }

    /// Records the confirm of one publish.
    fn confirmed(
        &self,
        result: Option<lapin::Result<lapin::Confirmation>>,
        epoch: u64,
        outcome: &Outcome,
    ) {
        let verdict = match result {
            Some(Ok(confirmation)) => {
                let ok = !confirmation.is_nack();
                if let Some(returned) = confirmation.take_message() {
                    self.returns.send(ReturnedMessage {
                        reply_code: ReplyCode(returned.reply_code),
                        reply_text: returned.reply_text.as_str().to_owned(),
                        exchange: returned.delivery.exchange.as_str().to_owned(),
                        routing_key: returned.delivery.routing_key.as_str().to_owned(),
                        message: Message::with_properties(
                            Bytes::from(returned.delivery.data),
                            properties_from_wire(&returned.delivery.properties),
                        ),
                    });
                }
                Ok(ok)
            }
            Some(Err(e)) => match classify(&e) {
                Failure::Channel(error) => {
                    self.close_locally(Some(error.clone()));
                    Err(error)
                }
                Failure::Connection(error) => {
                    self.conn.close_with(Some(error.clone()));
                    Err(error)
                }
                Failure::Lost(reason) => {
                    self.conn.lost(epoch, reason);
                    Ok(false)
                }
                Failure::ChannelGone => Ok(false),
            },
            // The link was lost before the confirm came: not confirmed.
            None => Ok(false),
        };
        if !matches!(verdict, Ok(true)) {
            self.nacked.store(true, Ordering::Release);
        }
        outcome.update(|o| *o = Some(verdict));
        self.confirms_seen.update(|c| c.settled += 1);
    }

    pub(crate) fn confirm_select(&self) -> Result<()> {
        self.check_open()?;
        if !self.confirms.swap(true, Ordering::AcqRel) {
            self.nacked.store(false, Ordering::Release);
        }
        Ok(())
    }

    fn check_confirm_mode(&self) -> Result<()> {
        if self.confirms.load(Ordering::Acquire) {
            Ok(())
        } else {
            let error = Error::precondition("channel is not in confirm mode");
            self.close_remotely(&error);
            Err(self.fail(error))
        }
    }

    /// Waits for the confirms of every publish so far; `None` on timeout.
    pub(crate) fn wait_for_confirms(&self, deadline: Option<Instant>) -> Result<Option<bool>> {
        self.check_open()?;
        self.check_confirm_mode()?;
        if !self.settle_outstanding_until(deadline) {
            return Ok(None);
        }
        self.check_open()?;
        Ok(Some(!self.nacked.swap(false, Ordering::AcqRel)))
    }

    pub(crate) async fn wait_for_confirms_async(&self) -> Result<bool> {
        self.check_open()?;
        self.check_confirm_mode()?;
        let target = self.confirms_seen.get().sent;
        std::future::poll_fn(|cx| {
            self.confirms_seen
                .poll(|c| c.settled >= target || c.closed, cx)
        })
        .await;
        self.check_open()?;
        Ok(!self.nacked.swap(false, Ordering::AcqRel))
    }

    // ---- consuming ----

    pub(crate) fn basic_qos(&self, prefetch: u16) -> Result<()> {
        self.sync_call(move |ch| async move {
            ch.basic_qos(prefetch, o::BasicQosOptions::default()).await
        })?;
        self.prefetch.store(prefetch, Ordering::Relaxed);
        Ok(())
    }

    /// Subscribes; returns the tag and the inbox deliveries arrive in.
    pub(crate) fn consume(
        &self,
        queue: &str,
        options: &ConsumeOptions,
        callback: Option<Callback>,
    ) -> Result<(Arc<str>, Arc<Inbox<Raw>>)> {
        let tag: Arc<str> = match &options.consumer_tag {
            Some(tag) if !tag.is_empty() => tag.as_str().into(),
            _ => crate::names::generate("amq.ctag-").into(),
        };
        let inbox = Arc::new(match callback {
            Some(_) => Inbox::with_signal(Arc::clone(&self.signal)),
            None => Inbox::default(),
        });
        let (consumer, epoch, offset) = loop {
            let (q, t, opts) = (queue.to_owned(), Arc::clone(&tag), options.clone());
            self.check_open()?;
            self.settle_outstanding();
            let (consumer, epoch) = self.call_at(move |ch| {
                let (q, t, opts) = (q.clone(), Arc::clone(&t), opts.clone());
                async move { subscribe(&ch, &q, &t, &opts).await }
            })?;
            let current = self.current.lock();
            // A consumer of a link lost meanwhile died with it: subscribe again.
            if current.epoch == epoch {
                break (consumer, epoch, current.offset);
            }
        };
        self.consumers.lock().insert(
            Arc::clone(&tag),
            Subscription {
                queue: queue.to_owned(),
                options: options.clone(),
                inbox: Arc::clone(&inbox),
                callback: callback.map(|cb| Arc::new(Mutex::new(cb))),
            },
        );
        self.pump(
            consumer,
            Arc::clone(&tag),
            Arc::clone(&inbox),
            epoch,
            offset,
            options.no_ack,
        );
        self.signal.notify();
        Ok((tag, inbox))
    }

    /// Moves the deliveries of a lapin consumer into `inbox` until it ends or the link is
    /// lost.
    fn pump(
        &self,
        consumer: lapin::Consumer,
        tag: Arc<str>,
        inbox: Arc<Inbox<Raw>>,
        epoch: u64,
        offset: u64,
        no_ack: bool,
    ) {
        let me = self.me.clone();
        let mut losses = self.conn.losses();
        self.conn.spawn(async move {
            let mut consumer = Box::pin(consumer);
            loop {
                let item = tokio::select! {
                    item = next(&mut consumer) => item,
                    _ = losses.changed() => return,
                };
                let Some(channel) = me.upgrade() else { return };
                match item {
                    Some(Ok(d)) => channel.arrived(d, &tag, &inbox, epoch, offset, no_ack),
                    Some(Err(e)) => {
                        match classify(&e) {
                            Failure::Lost(reason) => channel.conn.lost(epoch, reason),
                            Failure::Channel(error) => channel.close_locally(Some(error)),
                            Failure::Connection(error) => channel.conn.close_with(Some(error)),
                            Failure::ChannelGone => {}
                        }
                        return;
                    }
                    None => {
                        // Cancelled: by the server (its queue was deleted) or by us.
                        if channel.conn.epoch_if_up() == Some(epoch) {
                            let mut consumers = channel.consumers.lock();
                            if consumers
                                .get(&tag)
                                .is_some_and(|s| Arc::ptr_eq(&s.inbox, &inbox))
                            {
                                consumers.remove(&tag);
                            }
                            drop(consumers);
                            inbox.close();
                            channel.signal.notify();
                        }
                        return;
                    }
                }
            }
        });
    }

    fn arrived(
        &self,
        d: lapin::message::Delivery,
        consumer_tag: &Arc<str>,
        inbox: &Inbox<Raw>,
        epoch: u64,
        offset: u64,
        no_ack: bool,
    ) {
        let tag = offset + d.delivery_tag;
        self.last_tag.fetch_max(tag, Ordering::AcqRel);
        if !no_ack {
            self.unacked.lock().insert(tag);
        }
        let raw = Raw {
            epoch,
            tag,
            redelivered: d.redelivered,
            exchange: d.exchange.as_str().into(),
            routing_key: d.routing_key.as_str().into(),
            message: Message::with_properties(
                Bytes::from(d.data),
                properties_from_wire(&d.properties),
            ),
            consumer_tag: Arc::clone(consumer_tag),
            no_ack,
        };
        if let Err(raw) = inbox.push(raw) {
            // Cancelled meanwhile: give it back.
            if !raw.no_ack {
                let _ = self.settle(raw.tag, false, Settle::Nack { requeue: true });
            }
        }
    }

    /// Cancels a consumer; what waited in its inbox goes back to the queue.
    pub(crate) fn cancel(&self, tag: &str) -> Result<()> {
        self.check_open()?;
        let Some(subscription) = self.consumers.lock().remove(tag) else {
            return Ok(());
        };
        let t = short_string(tag);
        let result = self.sync_call(move |ch| {
            let t = t.clone();
            async move { ch.basic_cancel(t, o::BasicCancelOptions::default()).await }
        });
        let epoch = self.epoch();
        for raw in subscription.inbox.close_and_drain() {
            if raw.epoch == epoch && !raw.no_ack {
                let _ = self.settle(raw.tag, false, Settle::Nack { requeue: true });
            }
        }
        self.signal.notify();
        result
    }

    pub(crate) fn basic_get(&self, queue: &str, no_ack: bool) -> Result<Option<(Raw, u32)>> {
        let q = short_string(queue);
        let got = self.sync_call(move |ch| {
            let q = q.clone();
            async move { ch.basic_get(q, o::BasicGetOptions { no_ack }).await }
        })?;
        let Some(got) = got else { return Ok(None) };
        let (epoch, offset) = {
            let current = self.current.lock();
            (current.epoch, current.offset)
        };
        let d = got.delivery;
        let tag = offset + d.delivery_tag;
        self.last_tag.fetch_max(tag, Ordering::AcqRel);
        if !no_ack {
            self.unacked.lock().insert(tag);
        }
        let raw = Raw {
            epoch,
            tag,
            redelivered: d.redelivered,
            exchange: d.exchange.as_str().into(),
            routing_key: d.routing_key.as_str().into(),
            message: Message::with_properties(
                Bytes::from(d.data),
                properties_from_wire(&d.properties),
            ),
            consumer_tag: Arc::from(""),
            no_ack,
        };
        Ok(Some((raw, got.message_count)))
    }

    /// Acks or nacks by tag. Tags of deliveries from before a reconnect are ignored (the
    /// server redelivers those messages); an unknown tag is a 406, as in process.
    pub(crate) fn settle(&self, tag: u64, multiple: bool, how: Settle) -> Result<()> {
        self.check_open()?;
        let (lapin, epoch, offset) = {
            let current = self.current.lock();
            (current.lapin.clone(), current.epoch, current.offset)
        };
        if tag != 0 && tag <= offset {
            return Ok(());
        }
        {
            let mut unacked = self.unacked.lock();
            if multiple && tag == 0 {
                unacked.clear();
            } else if !unacked.contains(&tag) {
                drop(unacked);
                let error = Error::UnknownDeliveryTag { delivery_tag: tag };
                self.close_remotely(&error);
                return Err(self.fail(error));
            } else if multiple {
                let rest = unacked.split_off(&(tag + 1));
                *unacked = rest;
            } else {
                unacked.remove(&tag);
            }
        }
        let server_tag = if tag == 0 { 0 } else { tag - offset };
        let result = self.conn.block_on(async move {
            match how {
                Settle::Ack => {
                    lapin
                        .basic_ack(server_tag, o::BasicAckOptions { multiple })
                        .await
                }
                Settle::Nack { requeue } => {
                    lapin
                        .basic_nack(server_tag, o::BasicNackOptions { multiple, requeue })
                        .await
                }
            }
        })?;
        match result {
            Ok(()) => Ok(()),
            Err(e) => match classify(&e) {
                // Lost with its link: the server redelivers the message.
                Failure::Lost(reason) => {
                    self.conn.lost(epoch, reason);
                    Ok(())
                }
                Failure::Channel(error) => Err(self.fail(error)),
                Failure::Connection(error) => {
                    self.conn.close_with(Some(error.clone()));
                    Err(error)
                }
                Failure::ChannelGone => {
                    if self.conn.link_alive(epoch) && self.epoch() == epoch {
                        self.settle_outstanding();
                        self.check_open()?;
                        Err(self.fail_without_cause())
                    } else {
                        Ok(())
                    }
                }
            },
        }
    }

    pub(crate) fn recover(&self) -> Result<()> {
        self.sync_call(move |ch| async move {
            ch.basic_recover(o::BasicRecoverOptions { requeue: true })
                .await
        })?;
        self.unacked.lock().clear();
        Ok(())
    }

    pub(crate) fn unacked_count(&self) -> usize {
        self.unacked.lock().len()
    }

    /// Closes the server's channel with a client-side error, as the in-process broker
    /// closes it (its unacknowledged deliveries are requeued).
    fn close_remotely(&self, error: &Error) {
        let lapin = self.current.lock().lapin.clone();
        let (code, text) = (error.reply_code().0, error.reply_text());
        let _ = self.conn.block_on(async move {
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                lapin.close(code, text.as_str().into()),
            )
            .await;
        });
    }

    // ---- callback consumers ----

    /// Waits for one delivery for a callback consumer and runs its callback; `false` on
    /// timeout.
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> Result<bool> {
        let Some(me) = self.arc() else {
            return Err(Error::ChannelClosed { cause: None });
        };
        loop {
            self.check_open()?;
            let seen = self.signal.generation();
            let entries: Vec<CallbackEntry> = self
                .consumers
                .lock()
                .values()
                .filter_map(|s| Some((Arc::clone(&s.inbox), Arc::clone(s.callback.as_ref()?))))
                .collect();
            let first = self.wait_cursor.fetch_add(1, Ordering::Relaxed);
            for step in 0..entries.len() {
                let (inbox, callback) = &entries[(first + step) % entries.len()];
                while let Ok(raw) = inbox.try_pop() {
                    let no_ack = raw.no_ack;
                    let Some(delivery) = crate::Delivery::from_remote(Arc::clone(&me), raw) else {
                        continue;
                    };
                    let tag = delivery.delivery_tag();
                    let outcome = catch_unwind(AssertUnwindSafe(|| (callback.lock())(delivery)));
                    if outcome.is_err() && !no_ack && self.unacked.lock().contains(&tag) {
                        let _ = self.settle(tag, false, Settle::Nack { requeue: true });
                    }
                    return Ok(true);
                }
            }
            if !self.signal.wait_past(seen, deadline) {
                return Ok(false);
            }
        }
    }
}

impl Drop for RemoteChannel {
    fn drop(&mut self) {
        if self.closed.get().is_some() || self.conn.is_closed() {
            return;
        }
        let lapin = self.current.lock().lapin.clone();
        self.conn.spawn(async move {
            let _ = lapin.close(200, "OK".into()).await;
        });
    }
}

impl std::fmt::Debug for RemoteChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteChannel")
            .field("closed", &self.closed.get().is_some())
            .finish_non_exhaustive()
    }
}

/// Starts a lapin consumer.
async fn subscribe(
    channel: &lapin::Channel,
    queue: &str,
    tag: &str,
    options: &ConsumeOptions,
) -> lapin::Result<lapin::Consumer> {
    channel
        .basic_consume(
            short_string(queue),
            short_string(tag),
            o::BasicConsumeOptions {
                no_local: false,
                no_ack: options.no_ack,
                exclusive: options.exclusive,
                nowait: false,
            },
            table_to_wire(&options.arguments),
        )
        .await
}

/// The lapin name of an exchange kind.
pub(crate) fn exchange_kind(kind: &ExchangeKind) -> lapin::ExchangeKind {
    match kind {
        ExchangeKind::Direct => lapin::ExchangeKind::Direct,
        ExchangeKind::Fanout => lapin::ExchangeKind::Fanout,
        ExchangeKind::Topic => lapin::ExchangeKind::Topic,
        ExchangeKind::Headers => lapin::ExchangeKind::Headers,
        other => lapin::ExchangeKind::Custom(other.to_string()),
    }
}
