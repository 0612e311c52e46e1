//! One client connection, served by one task: the handshake (with one deadline for the
//! whole of it), then a loop that reads frames and hands them to channels while the
//! outbox drains to the socket, and the closing sequences (`channel.close`,
//! `connection.close`) that turn failures into the codes and texts RabbitMQ sends.
//!
//! # The loop
//!
//! Each turn takes every complete frame already read, writes what the socket takes, then
//! waits for the first of: the socket readable, or a consumer with deliveries (both only
//! while the outbox is below its high mark: a client that does not read is neither read
//! nor sent more), the socket writable (while bytes wait), the heartbeat tick, or the
//! server stopping. Methods that may wait on the store (declares, deletes, binds,
//! confirms of persistent messages) run on the runtime's blocking threads while this
//! connection waits for them, so its frames stay in order and other connections' tasks
//! go on.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{basic, channel, connection, AMQPClass};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{timeout, timeout_at, Instant, MissedTickBehavior};

use super::activity::Activity;
use super::channel::{may_wait, Confirms, Link, WireChannel};
use super::consumers::{Consumers, Event};
use super::content::Route;
use super::convert::properties_from_wire;
use super::convert::short_string;
use super::delivery::PropertiesCache;
use super::failure::{Failure, MethodId};
use super::frames;
use super::handshake::{self, Negotiated};
use super::inbound::{self, HeaderCache, Publishing};
use super::options::WireOptions;
use super::outbox::HIGH;
use super::registry::{Login, Tracked};
use super::server::Shared;
use super::socket::Socket;
use super::transport::{Opened, Transport};
use crate::alarm::{Alarms, BlockedGuard, Watch};
use crate::sync::FastHash;
use crate::{Connection, ReplyCode};

/// How long to wait for `connection.close-ok` after the server closed, reading and
/// dropping whatever else the client sends meanwhile.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// Heartbeat ticks (half intervals) without a byte read, or with bytes waiting and none
/// written, after which the peer is taken as gone: two heartbeat intervals.
const SILENT_TICKS: u32 = 4;

/// A channel number's state.
#[derive(Debug)]
enum Slot {
    /// Open and working.
    Open(Box<WireChannel>),
    /// The server sent `channel.close` and waits for `close-ok`; other frames are dropped.
    Closing,
}

/// What the frame loop does next.
enum Next {
    /// Read another frame.
    Continue,
    /// The client closed the connection and got its `close-ok`.
    Closed,
}

/// An open connection after the handshake.
struct Session {
    /// The session connection; dropping it deletes exclusive queues.
    connection: Connection,
    /// What channels share.
    link: Link,
    /// The most channels open at once.
    channel_max: u16,
    /// The most consumers per channel, if limited.
    consumer_max_per_channel: Option<u32>,
    /// The most consumers over every channel, if limited.
    consumer_max_per_connection: Option<u32>,
    /// Channels by number.
    channels: HashMap<u16, Slot, FastHash>,
    /// Set once the client closed the connection and got its `close-ok`.
    closed: bool,
    /// The consumers of every channel.
    consumers: Consumers,
    /// What the consumers yielded, waiting to be encoded (kept to reuse its allocation).
    events: Vec<Event>,
    /// The properties of the last delivery encoded, and their encoding.
    properties: PropertiesCache,
    /// The properties of the last content header read, and what they parsed to.
    headers: HeaderCache,
    /// Set at the first `basic.publish`: from then on an alarm blocks this connection.
    watch: Option<Arc<Watch>>,
    /// The alarm epoch last looked at.
    seen_epoch: u64,
    /// Blocked by an alarm: the socket is not read (counted as a held-back publisher).
    blocked: Option<BlockedGuard>,
    /// The client takes `connection.blocked` / `unblocked`.
    notify_blocked: bool,
    /// What the connection holds in flight, for `Broker::wait_idle`.
    activity: Arc<Activity>,
    /// Its entry in the listener's registry (for the management API).
    tracked: Arc<Tracked>,
}

/// What woke the connection task.
enum Wake {
    /// The socket was read or written (or failed).
    Socket(Result<(), Failure>),
    /// A heartbeat tick.
    Tick,
    /// Consumers yielded events.
    Deliveries,
    /// An alarm went on or off.
    Alarm,
}

/// Serves one TCP connection until it closes, over `transport` (after its TLS handshake,
/// for `amqps`, which counts against the handshake deadline). Never panics on bad input;
/// every failure ends with the socket closed and the session connection dropped, which
/// requeues unacknowledged messages and deletes exclusive queues.
///
/// When `stop` changes (the server stops), the client is told with `connection.close` 320
/// CONNECTION_FORCED, as RabbitMQ does when it shuts down. A connection accepted while the
/// listener serves its `connection_max` already (`over_limit`) is refused at
/// `connection.open`.
pub(crate) async fn serve(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    transport: &Transport,
    shared: &Shared,
    mut stop: watch::Receiver<bool>,
    over_limit: bool,
) {
    let options = &shared.options;
    let deadline = Instant::now() + options.handshake_timeout;
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let opened = tokio::select! {
        opened = timeout_at(deadline, transport.open(stream)) => opened,
        _ = stop.changed() => return,
    };
    let opened = match opened {
        Ok(Ok(opened)) => opened,
        Ok(Err(error)) => {
            tracing::info!(%error, "TLS handshake failed");
            return;
        }
        Err(_elapsed) => {
            tracing::info!("TLS handshake timed out; dropped");
            return;
        }
    };
    let Opened { stream, tls } = opened;
    let mut socket = Socket::new(stream);
    let registered = shared.registry.add(
        (peer, local),
        tls.clone(),
        socket.read_counter(),
        socket.outbox().clone(),
    );
    let negotiate = handshake::negotiate(&mut socket, shared, peer, over_limit);
    let negotiated = tokio::select! {
        negotiated = timeout_at(deadline, negotiate) => negotiated,
        _ = stop.changed() => Ok(Err(Failure::Gone)),
    };
    match negotiated {
        Ok(Ok(negotiated)) => {
            let tls = tls.as_ref();
            tracing::info!(
                user = %negotiated.user,
                vhost = %negotiated.connection.vhost(),
                tls = tls.map(|t| t.protocol.as_str()),
                cipher = tls.map(|t| t.cipher.as_str()),
                peer_cert = tls.map(|t| t.peer_cert),
                frame_max = negotiated.frame_max,
                heartbeat = negotiated.heartbeat,
                "connection opened"
            );
            let activity = Arc::new(Activity::new(
                Some(peer),
                socket.outbox().clone(),
                Arc::clone(&shared.broker.settings().quiet),
            ));
            let tracked = Arc::clone(&registered.tracked);
            let _ = tracked.activity.set(Arc::clone(&activity));
            let _ = tracked.login.set(Login {
                user: negotiated.user.clone(),
                vhost: negotiated.connection.vhost().to_owned(),
                auth_mechanism: negotiated.auth_mechanism.clone(),
                client_properties: negotiated.client_properties.clone(),
                frame_max: negotiated.frame_max,
                channel_max: negotiated.channel_max,
                heartbeat: negotiated.heartbeat,
            });
            let alarms = Arc::clone(shared.broker.alarms());
            let user = negotiated.user.clone();
            let vhost = negotiated.connection.vhost().to_owned();
            run(
                &mut socket,
                negotiated,
                options,
                alarms,
                stop,
                activity,
                tracked,
            )
            .await;
            tracing::info!(%user, %vhost, "connection closed");
        }
        Ok(Err(failure)) => {
            tracing::info!(?failure, "handshake refused");
            fail(&mut socket, failure).await
        }
        // A handshake that takes too long is dropped without a word, as RabbitMQ does.
        Err(_elapsed) => tracing::info!("handshake timed out; dropped"),
    }
    socket.outbox().close();
    let _ = timeout(CLOSE_TIMEOUT, async {
        if socket.flush_all().await.is_ok() {
            socket.shutdown().await;
        }
    })
    .await;
}

async fn run(
    socket: &mut Socket,
    negotiated: Negotiated,
    options: &WireOptions,
    alarms: Arc<Alarms>,
    mut stop: watch::Receiver<bool>,
    activity: Arc<Activity>,
    tracked: Arc<Tracked>,
) {
    let mut session = Session {
        activity,
        tracked: Arc::clone(&tracked),
        watch: None,
        seen_epoch: 0,
        blocked: None,
        notify_blocked: negotiated.notify_blocked,
        connection: negotiated.connection,
        link: Link {
            outbox: socket.outbox().clone(),
            frame_max: negotiated.frame_max,
            notify_cancel: negotiated.notify_cancel,
            consumer_keys: Default::default(),
            max_message_size: options.max_message_size,
            alarms,
        },
        channel_max: negotiated.channel_max,
        consumer_max_per_channel: options.consumer_max_per_channel,
        consumer_max_per_connection: options.consumer_max_per_connection,
        channels: HashMap::default(),
        closed: false,
        consumers: Consumers::default(),
        events: Vec::new(),
        properties: PropertiesCache::default(),
        headers: HeaderCache::default(),
    };
    let outcome = tokio::select! {
        outcome = session.serve(socket, negotiated.heartbeat) => outcome,
        _ = stop.changed() => Some(Failure::hard(
            ReplyCode::CONNECTION_FORCED,
            "broker forced connection closure with reason 'shutdown'",
        )),
        () = tracked.close.notified() => Some(Failure::hard(
            ReplyCode::CONNECTION_FORCED,
            "Closed via management plugin",
        )),
    };
    if let Some(failure) = outcome {
        session.shutdown();
        fail(socket, failure).await;
    }
}

impl Session {
    /// Serves frames until the client closes (`None`) or something fails.
    async fn serve(&mut self, socket: &mut Socket, heartbeat: u16) -> Option<Failure> {
        let mut monitor = Monitor::new(heartbeat);
        loop {
            self.activity.set_unread(socket.unread());
            let stopped = match self.take_frames(socket).await {
                Ok(stopped) => stopped,
                Err(failure) => return Some(failure),
            };
            if let Err(failure) = socket.flush() {
                return Some(failure);
            }
            self.activity.set_unread(socket.unread());
            if self.closed {
                return None;
            }
            if stopped && !socket.outbox().is_full() {
                // Frames read earlier wait: the socket will not say readable for them.
                tokio::task::yield_now().await;
                continue;
            }
            self.follow_alarms();
            let room = HIGH.saturating_sub(socket.outbox().pending());
            let deliver = room > 0 && self.consumers.len() > 0;
            // A blocked publisher is not read (its deliveries still go out).
            let read = room > 0 && self.blocked.is_none();
            let io = read || socket.wants_write();
            let (consumers, events) = (&mut self.consumers, &mut self.events);
            let (alarms, watch, seen) = (&self.link.alarms, self.watch.as_ref(), self.seen_epoch);
            let activity = &self.activity;
            let wake = tokio::select! {
                step = socket.ready(read), if io => Wake::Socket(step),
                () = monitor.tick() => Wake::Tick,
                () = std::future::poll_fn(|cx| {
                    // Take deliveries while their bodies fit the room left in the outbox.
                    let mut used = 0;
                    // Counted as in flight from before they leave the consumers' inboxes
                    // until they are encoded (`deliver`).
                    activity.start_taking();
                    let polled = consumers.poll_events(cx, events, |len| {
                        used += len + 128;
                        used < room
                    });
                    if events.is_empty() {
                        activity.end_taking();
                    }
                    polled
                }), if deliver => Wake::Deliveries,
                _ = std::future::poll_fn(|cx| match watch {
                    Some(watch) => watch.poll_change(alarms, seen, cx),
                    None => std::task::Poll::Pending,
                }), if watch.is_some() => Wake::Alarm,
            };
            let step = match wake {
                Wake::Socket(step) => step,
                Wake::Tick => monitor.check(socket, read),
                Wake::Deliveries => {
                    self.deliver();
                    Ok(())
                }
                Wake::Alarm => Ok(()),
            };
            if let Err(failure) = step {
                return Some(failure);
            }
        }
    }

    /// Blocks a publishing connection while a resource alarm is on, and unblocks it when
    /// every alarm has cleared, telling a client that takes them with `connection.blocked`
    /// (the reasons, as RabbitMQ words them) and `connection.unblocked`.
    fn follow_alarms(&mut self) {
        if self.watch.is_none() {
            return;
        }
        let alarms = &self.link.alarms;
        let epoch = alarms.epoch();
        if epoch == self.seen_epoch {
            return;
        }
        self.seen_epoch = epoch;
        let on = alarms.on();
        let method = match (on.is_empty(), self.blocked.is_some()) {
            (false, false) => {
                self.blocked = Some(alarms.count_blocked());
                let reason: Vec<&str> = on.iter().map(|r| r.reason()).collect();
                let reason = reason.join(" & ");
                tracing::info!(%reason, "publishing connection blocked");
                connection::AMQPMethod::Blocked(connection::Blocked {
                    reason: short_string(&reason),
                })
            }
            (true, true) => {
                self.blocked = None;
                tracing::info!("publishing connection unblocked");
                connection::AMQPMethod::Unblocked(connection::Unblocked {})
            }
            _ => return,
        };
        if self.notify_blocked {
            self.link
                .outbox
                .send(frames::method(0, AMQPClass::Connection(method)));
        }
    }

    /// Encodes what the consumers yielded: `basic.deliver` for each delivery, and
    /// `basic.cancel` for a consumer the server ended (to a client that wants it), all
    /// under one lock of the outbox. The deliveries are dropped after it is released.
    fn deliver(&mut self) {
        let (channels, events) = (&mut self.channels, &self.events);
        let cache = &mut self.properties;
        let encoded = self.link.outbox.encode(|out| {
            for event in events {
                match event {
                    // On a channel closing or closed, the delivery went back to its queue
                    // with the channel's other unacknowledged messages.
                    Event::Delivery {
                        key,
                        channel,
                        delivery,
                    } => {
                        if let Some(Slot::Open(ch)) = channels.get(channel) {
                            ch.deliver(*key, delivery, cache, out);
                        }
                    }
                    Event::Ended { key, channel } => {
                        if let Some(Slot::Open(ch)) = channels.get_mut(channel) {
                            if let Some(cancel) = ch.consumer_ended(*key) {
                                out.extend_from_slice(&cancel);
                            }
                        }
                    }
                }
            }
        });
        if !encoded {
            // The outbox is closed (the connection ends): forget ended consumers all the same.
            for event in &self.events {
                if let Event::Ended { key, channel } = event {
                    if let Some(Slot::Open(ch)) = self.channels.get_mut(channel) {
                        ch.consumer_ended(*key);
                    }
                }
            }
        }
        self.events.clear();
        self.activity.end_taking();
    }

    /// Serves the consumers channel `id` started, and drops those it cancelled.
    fn adopt_consumers(&mut self, id: u16) {
        if let Some(Slot::Open(ch)) = self.channels.get_mut(&id) {
            for key in ch.take_stopped() {
                self.consumers.remove(key);
            }
            for (key, consumer) in ch.take_started() {
                self.consumers.add(key, id, consumer);
            }
        }
    }

    /// Closes a channel: its consumers stop being served.
    fn close_channel(&mut self, ch: Box<WireChannel>) {
        self.tracked.channels.lock().remove(&ch.number());
        for key in ch.shutdown() {
            self.consumers.remove(key);
        }
    }

    /// Handles every complete frame already read, while the outbox has room; sends the
    /// confirms owed once the client pauses. Returns `true` if it stopped because the
    /// outbox was full, with frames possibly left to take once it drains.
    async fn take_frames(&mut self, socket: &mut Socket) -> Result<bool, Failure> {
        while !self.closed {
            if socket.outbox().is_full() {
                return Ok(true);
            }
            let Some(len) = socket.frame_len()? else {
                break;
            };
            if let Some(frame) = inbound::publishing(socket.peek(len)) {
                self.publishing(frame)?;
                socket.skip(len);
                continue;
            }
            let frame = socket.take_frame(len)?;
            if let Next::Closed = self.frame(frame).await? {
                self.closed = true;
            }
        }
        if socket.is_idle() && !self.closed {
            self.send_confirms().await?;
        }
        Ok(false)
    }

    /// Runs `f` on channel `id` on a blocking thread, for work that may wait for the disk;
    /// the connection waits for it (its frames stay in order), other connections do not.
    ///
    /// # Errors
    ///
    /// 541 INTERNAL_ERROR if `f` panicked.
    async fn off_thread<R: Send + 'static>(
        &mut self,
        id: u16,
        f: impl FnOnce(&mut WireChannel) -> R + Send + 'static,
    ) -> Result<R, Failure> {
        let Some(Slot::Open(mut ch)) = self.channels.remove(&id) else {
            return Err(Failure::hard(ReplyCode::INTERNAL_ERROR, "channel vanished"));
        };
        match tokio::task::spawn_blocking(move || {
            let result = f(&mut ch);
            (ch, result)
        })
        .await
        {
            Ok((ch, result)) => {
                self.channels.insert(id, Slot::Open(ch));
                Ok(result)
            }
            Err(_) => Err(Failure::hard(
                ReplyCode::INTERNAL_ERROR,
                "a channel method failed",
            )),
        }
    }
}

/// Heartbeats: a tick every half interval sends a heartbeat if nothing was written since
/// the last tick, and gives up on a peer that sent nothing for two intervals, or that took
/// none of the bytes waiting for it for as long.
struct Monitor {
    /// Ticks every half interval; `None` without heartbeats.
    interval: Option<tokio::time::Interval>,
    /// Bytes read and written at the last tick.
    seen: (u64, u64),
    /// Ticks in a row without a byte read.
    quiet_reads: u32,
    /// Ticks in a row with bytes waiting and none written.
    stalled_writes: u32,
}

impl Monitor {
    fn new(heartbeat: u16) -> Self {
        let interval = (heartbeat > 0).then(|| {
            let half = Duration::from_millis(u64::from(heartbeat) * 500);
            let mut interval = tokio::time::interval_at(Instant::now() + half, half);
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            interval
        });
        Monitor {
            interval,
            seen: (0, 0),
            quiet_reads: 0,
            stalled_writes: 0,
        }
    }

    /// Waits for the next tick (for ever without heartbeats).
    async fn tick(&mut self) {
        match self.interval.as_mut() {
            Some(interval) => {
                interval.tick().await;
            }
            None => std::future::pending().await,
        }
    }

    /// Runs the checks of one tick. `reading` is `false` while the connection does not
    /// read (its outbox is full), when silence from the peer proves nothing.
    fn check(&mut self, socket: &mut Socket, reading: bool) -> Result<(), Failure> {
        let now = (socket.bytes_read(), socket.outbox().written());
        let (read, wrote) = (now.0 != self.seen.0, now.1 != self.seen.1);
        self.seen = now;
        self.quiet_reads = if read || !reading {
            0
        } else {
            self.quiet_reads + 1
        };
        let waiting = socket.outbox().pending() > 0;
        self.stalled_writes = if wrote || !waiting {
            0
        } else {
            self.stalled_writes + 1
        };
        if self.quiet_reads >= SILENT_TICKS || self.stalled_writes >= SILENT_TICKS {
            return Err(Failure::Gone);
        }
        if !wrote && !waiting {
            socket.outbox().send(frames::heartbeat());
            socket.flush()?;
        }
        Ok(())
    }
}

impl Session {
    async fn frame(&mut self, frame: AMQPFrame) -> Result<Next, Failure> {
        match frame {
            AMQPFrame::Heartbeat => Ok(Next::Continue),
            AMQPFrame::Method(0, method) => self.connection_method(method),
            AMQPFrame::Method(id, method)
                if may_wait(&method) && matches!(self.channels.get(&id), Some(Slot::Open(_))) =>
            {
                let result = self.off_thread(id, move |ch| ch.method(method)).await?;
                self.settle(id, result)?;
                Ok(Next::Continue)
            }
            AMQPFrame::Method(id, method) => self.channel_method(id, method),
            AMQPFrame::Header(id, header) => {
                let properties = properties_from_wire(&header.properties);
                self.content(id, |ch| {
                    ch.header(header.class_id, header.body_size, properties)
                })
            }
            AMQPFrame::Body(id, body) => self.content(id, |ch| ch.body(body)),
            AMQPFrame::InvalidHeartbeat(_) => Err(Failure::hard(
                ReplyCode::FRAME_ERROR,
                "heartbeat frame on a non-zero channel",
            )),
            AMQPFrame::ProtocolHeader(_) => Err(Failure::hard(
                ReplyCode::FRAME_ERROR,
                "protocol header in an open connection",
            )),
        }
    }

    fn connection_method(&mut self, method: AMQPClass) -> Result<Next, Failure> {
        let id = MethodId::of(&method);
        match method {
            AMQPClass::Connection(connection::AMQPMethod::Close(_)) => {
                self.shutdown();
                let ok = connection::AMQPMethod::CloseOk(connection::CloseOk {});
                self.link
                    .outbox
                    .send(frames::method(0, AMQPClass::Connection(ok)));
                Ok(Next::Closed)
            }
            AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)) => Ok(Next::Closed),
            // RabbitMQ's internal users accept any new secret: there is no token to
            // refresh, and the connection goes on as it was.
            AMQPClass::Connection(connection::AMQPMethod::UpdateSecret(m)) => {
                tracing::info!(reason = %m.reason, "connection.update-secret");
                let ok = connection::AMQPMethod::UpdateSecretOk(connection::UpdateSecretOk {});
                self.link
                    .outbox
                    .send(frames::method(0, AMQPClass::Connection(ok)));
                Ok(Next::Continue)
            }
            _ => Err(
                Failure::hard(ReplyCode::COMMAND_INVALID, "unexpected method on channel 0").at(id),
            ),
        }
    }

    fn channel_method(&mut self, id: u16, method: AMQPClass) -> Result<Next, Failure> {
        let method_id = MethodId::of(&method);
        match (self.channels.get_mut(&id), method) {
            (None, AMQPClass::Channel(channel::AMQPMethod::Open(_))) => self.open(id, method_id)?,
            (None, _) => {
                return Err(
                    Failure::hard(ReplyCode::CHANNEL_ERROR, "expected 'channel.open'")
                        .at(method_id),
                )
            }
            (Some(Slot::Closing), AMQPClass::Channel(channel::AMQPMethod::CloseOk(_))) => {
                self.channels.remove(&id);
            }
            (Some(Slot::Closing), AMQPClass::Channel(channel::AMQPMethod::Close(_))) => {
                self.channels.remove(&id);
                self.send_close_ok(id);
            }
            (Some(Slot::Closing), _) => {}
            (Some(Slot::Open(_)), AMQPClass::Channel(channel::AMQPMethod::Open(_))) => {
                return Err(
                    Failure::hard(ReplyCode::CHANNEL_ERROR, "second 'channel.open' seen")
                        .at(method_id),
                )
            }
            (Some(Slot::Open(_)), AMQPClass::Channel(channel::AMQPMethod::Close(_))) => {
                if let Some(Slot::Open(ch)) = self.channels.remove(&id) {
                    self.close_channel(ch);
                }
                self.send_close_ok(id);
            }
            (Some(Slot::Open(_)), AMQPClass::Channel(channel::AMQPMethod::CloseOk(_))) => {}
            (Some(Slot::Open(ch)), method) => {
                if self.watch.is_none()
                    && matches!(&method, AMQPClass::Basic(basic::AMQPMethod::Publish(_)))
                {
                    // A publishing connection from now on: alarms block it.
                    self.watch = Some(self.link.alarms.watch());
                }
                if let AMQPClass::Basic(basic::AMQPMethod::Consume(_)) = &method {
                    let on_channel = ch.consumer_count();
                    check_consumers(self.consumer_max_per_channel, on_channel, "channel")
                        .and_then(|()| {
                            let all = self.consumers.len();
                            check_consumers(self.consumer_max_per_connection, all, "connection")
                        })
                        .map_err(|f| f.at(method_id))?;
                }
                let result = ch.method(method);
                self.adopt_consumers(id);
                self.settle(id, result)?;
            }
        }
        Ok(Next::Continue)
    }

    /// Handles a frame of a publish read in place, as [`frame`](Self::frame) handles the
    /// same frame parsed by `amq-protocol`.
    fn publishing(&mut self, frame: Publishing<'_>) -> Result<Next, Failure> {
        match frame {
            Publishing::Publish {
                channel: id,
                exchange,
                routing_key,
                mandatory,
                immediate,
            } => {
                let publish = MethodId {
                    class: 60,
                    method: 40,
                };
                let ch = match self.channels.get_mut(&id) {
                    Some(Slot::Open(ch)) => ch,
                    Some(Slot::Closing) => return Ok(Next::Continue),
                    None => {
                        return Err(Failure::hard(
                            ReplyCode::CHANNEL_ERROR,
                            "expected 'channel.open'",
                        )
                        .at(publish))
                    }
                };
                if self.watch.is_none() {
                    // A publishing connection from now on: alarms block it.
                    self.watch = Some(self.link.alarms.watch());
                }
                let route = Route {
                    exchange: exchange.into(),
                    routing_key: routing_key.into(),
                    mandatory,
                };
                let result = ch.start_publish(route, immediate);
                self.settle(id, result)?;
                Ok(Next::Continue)
            }
            Publishing::Header {
                channel,
                class_id,
                body_size,
                properties,
                frame,
            } => {
                let properties = self.headers.properties(properties, frame)?;
                self.content(channel, |ch| ch.header(class_id, body_size, properties))
            }
            Publishing::Body { channel, payload } => {
                self.content(channel, |ch| ch.body(payload.to_vec()))
            }
        }
    }

    fn content(
        &mut self,
        id: u16,
        handle: impl FnOnce(&mut WireChannel) -> Result<(), Failure>,
    ) -> Result<Next, Failure> {
        match self.channels.get_mut(&id) {
            Some(Slot::Open(ch)) => {
                let result = handle(ch);
                self.settle(id, result)?;
            }
            Some(Slot::Closing) => {}
            None => {
                return Err(Failure::hard(
                    ReplyCode::CHANNEL_ERROR,
                    "content frame on a channel that is not open",
                ))
            }
        }
        Ok(Next::Continue)
    }

    /// Opens channel `id`. As RabbitMQ, the limit counts the channels open (or closing),
    /// whatever their numbers.
    fn open(&mut self, id: u16, method: MethodId) -> Result<(), Failure> {
        let open = self.channels.len();
        if open >= usize::from(self.channel_max) {
            return Err(Failure::hard(
                ReplyCode::NOT_ALLOWED,
                format_args!(
                    "number of channels opened ({open}) has reached the negotiated channel_max ({})",
                    self.channel_max
                ),
            ));
        }
        let session_channel = self
            .connection
            .open_channel()
            .map_err(|e| Failure::from_error(&e, method))?;
        let ch = WireChannel::new(id, session_channel, self.link.clone());
        self.tracked.channels.lock().insert(id, ch.view());
        self.channels.insert(id, Slot::Open(Box::new(ch)));
        let ok = channel::AMQPMethod::OpenOk(channel::OpenOk {});
        self.link
            .outbox
            .send(frames::method(id, AMQPClass::Channel(ok)));
        Ok(())
    }

    /// Turns a soft failure into `channel.close`; passes hard ones on.
    fn settle(&mut self, id: u16, result: Result<(), Failure>) -> Result<(), Failure> {
        match result {
            Err(Failure::Channel { code, text, method }) => {
                if let Some(Slot::Open(ch)) = self.channels.insert(id, Slot::Closing) {
                    self.close_channel(ch);
                }
                let close = channel::Close {
                    reply_code: code.0,
                    reply_text: short_string(&text),
                    class_id: method.class,
                    method_id: method.method,
                };
                let close = AMQPClass::Channel(channel::AMQPMethod::Close(close));
                self.link.outbox.send(frames::method(id, close));
                Ok(())
            }
            other => other,
        }
    }

    fn send_close_ok(&self, id: u16) {
        let ok = channel::AMQPMethod::CloseOk(channel::CloseOk {});
        self.link
            .outbox
            .send(frames::method(id, AMQPClass::Channel(ok)));
    }

    /// Sends the confirms every channel owes. A channel whose confirms fail is closed.
    async fn send_confirms(&mut self) -> Result<(), Failure> {
        let ids: Vec<u16> = self.channels.keys().copied().collect();
        for id in ids {
            let Some(Slot::Open(ch)) = self.channels.get_mut(&id) else {
                continue;
            };
            let mut owed = ch.take_confirms(false);
            if let Ok(Confirms::MustWait) = owed {
                owed = self.off_thread(id, |ch| ch.take_confirms(true)).await?;
            }
            match owed {
                Ok(Confirms::Frame(ack)) => {
                    self.link.outbox.send(ack);
                }
                Ok(Confirms::None | Confirms::MustWait) => {}
                Err(failure) => self.settle(id, Err(failure))?,
            }
        }
        Ok(())
    }

    /// Closes every channel: consumers stop, unacknowledged messages go back.
    fn shutdown(&mut self) {
        // Confirms that are ready go out first; the end does not wait for the disk.
        for slot in self.channels.values_mut() {
            if let Slot::Open(ch) = slot {
                if let Ok(Confirms::Frame(ack)) = ch.take_confirms(false) {
                    self.link.outbox.send(ack);
                }
            }
        }
        self.tracked.channels.lock().clear();
        for (_, slot) in self.channels.drain() {
            if let Slot::Open(ch) = slot {
                ch.shutdown();
            }
        }
        self.consumers = Consumers::default();
        self.connection.close();
    }
}

/// Refuses one more consumer when `count` consumers of a channel or connection (`what`)
/// have reached `limit`: 530, as RabbitMQ's `consumer_max_per_channel`.
fn check_consumers(limit: Option<u32>, count: usize, what: &str) -> Result<(), Failure> {
    match limit {
        Some(max) if count >= max as usize => Err(Failure::hard(
            ReplyCode::NOT_ALLOWED,
            format_args!("reached maximum ({max}) of consumers per {what}"),
        )),
        _ => Ok(()),
    }
}

/// Ends a connection after a failure: a hard error is reported with `connection.close`,
/// then the server reads (and drops) what the client sends until its `close-ok`, for a
/// few seconds at most; an I/O failure just closes.
async fn fail(socket: &mut Socket, failure: Failure) {
    let (code, text, method) = match failure {
        Failure::Gone => {
            tracing::debug!("client gone");
            return;
        }
        Failure::Channel { code, text, method } | Failure::Connection { code, text, method } => {
            (code, text, method)
        }
    };
    tracing::warn!(code = code.0, %text, "closing the connection after an error");
    let close = connection::Close {
        reply_code: code.0,
        reply_text: short_string(&text),
        class_id: method.class,
        method_id: method.method,
    };
    socket.outbox().send(frames::method(
        0,
        AMQPClass::Connection(connection::AMQPMethod::Close(close)),
    ));
    let _ = timeout(CLOSE_TIMEOUT, socket.discard_until_close()).await;
}
