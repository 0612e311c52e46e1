//! [`RemoteConnection`]: a lapin connection to one node of a list, on a tokio runtime of its
//! own, that reconnects to the next reachable node when the link is lost and then restores
//! what the application had: its topology, channels and consumers.

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures_core::Stream;
use lapin::uri::AMQPUri;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::watch;

use super::channel::RemoteChannel;
use super::errors::{classify, Failure};
use super::events::ConnectionEvent;
use super::topology::{Declared, Topology};
use super::ConnectionBuilder;
use crate::amqp::convert::{short_string, table_to_wire};
use crate::inbox::Inbox;
use crate::sync::{Condvar, Mutex};
use crate::{Error, ReplyCode, Result};

/// One node of the cluster.
#[derive(Debug)]
pub(crate) struct Node {
    /// The URL as given.
    url: String,
    /// The URL without the password, for events and logs.
    pub(crate) shown: String,
}

/// The link to the current node.
enum Link {
    Up(Arc<lapin::Connection>),
    Recovering,
    /// Closed by the application (`None`), by a server error, or after recovery gave up.
    Closed(Option<Arc<Error>>),
}

struct State {
    link: Link,
    /// Bumped by each successful (re)connection.
    epoch: u64,
    /// Index of the node connected to (or last connected to).
    node: usize,
}

/// How a remote connection reconnects.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reconnect {
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) give_up_after: Duration,
    pub(crate) connect_timeout: Duration,
}

/// The shared state of a remote [`Connection`](crate::Connection).
pub(crate) struct RemoteConnection {
    /// Owned so that it can be shut down without blocking when the connection goes.
    runtime: Mutex<Option<Runtime>>,
    handle: Handle,
    nodes: Vec<Node>,
    pub(crate) vhost: String,
    reconnect: Reconnect,
    state: Mutex<State>,
    changed: Condvar,
    /// Bumped on every loss and on close: tasks of the old link stop.
    losses: watch::Sender<u64>,
    channels: Mutex<Vec<Weak<RemoteChannel>>>,
    pub(crate) topology: Mutex<Topology>,
    events: Arc<Inbox<ConnectionEvent>>,
    me: Weak<RemoteConnection>,
}

impl RemoteConnection {
    /// Connects to the first node of `builder` that answers.
    pub(crate) fn open(builder: &ConnectionBuilder) -> Result<Arc<Self>> {
        if builder.nodes.is_empty() {
            return Err(invalid_url("", "no node URL given"));
        }
        let mut nodes = Vec::new();
        let mut vhost = None;
        for url in &builder.nodes {
            let uri = AMQPUri::from_str(url).map_err(|e| invalid_url(url, &e))?;
            vhost.get_or_insert_with(|| uri.vhost.clone());
            let shown = format!(
                "{}://{}@{}:{}/{}",
                url.split("://").next().unwrap_or("amqp"),
                uri.authority.userinfo.username,
                uri.authority.host,
                uri.authority.port,
                uri.vhost.replace('%', "%25").replace('/', "%2f")
            );
            nodes.push(Node {
                url: url.clone(),
                shown,
            });
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("warren-remote")
            .enable_all()
            .build()
            .map_err(|e| Error::Internal {
                reason: format!("cannot start the remote connection's runtime: {e}"),
            })?;
        let handle = runtime.handle().clone();
        let (losses, _) = watch::channel(0);
        let conn = Arc::new_cyclic(|me| RemoteConnection {
            runtime: Mutex::new(Some(runtime)),
            handle,
            nodes,
            vhost: vhost.unwrap_or_default(),
            reconnect: builder.reconnect,
            state: Mutex::new(State {
                link: Link::Closed(None),
                epoch: 0,
                node: 0,
            }),
            changed: Condvar::new(),
            losses,
            channels: Mutex::new(Vec::new()),
            topology: Mutex::new(Topology::default()),
            events: Arc::new(Inbox::default()),
            me: me.clone(),
        });
        let mut last = String::new();
        for index in 0..conn.nodes.len() {
            match conn.block_on(conn.clone().connect_node(index))? {
                Ok(link) => {
                    conn.install(link, index, 1);
                    tracing::debug!(node = %conn.nodes[index].shown, "remote connection opened");
                    return Ok(conn);
                }
                Err(e) => {
                    tracing::debug!(node = %conn.nodes[index].shown, error = %e, "node unreachable");
                    last = e;
                }
            }
        }
        Err(Error::Unreachable {
            reason: format!("no node answered: {last}"),
        })
    }

    /// Runs a future on the connection's runtime and waits for it on this thread.
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionClosed`] if the runtime shut down under it (the connection is
    /// going away).
    pub(crate) fn block_on<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Result<T> {
        if Handle::try_current().is_err() {
            return Ok(self.handle.block_on(fut));
        }
        // Called from async code: run it on our runtime and wait for it here.
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().map_err(|_| Error::ConnectionClosed)
    }

    /// Starts a task on the connection's runtime.
    pub(crate) fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        self.handle.spawn(fut);
    }

    /// Returns a receiver that changes when the link is lost or closed.
    pub(crate) fn losses(&self) -> watch::Receiver<u64> {
        self.losses.subscribe()
    }

    /// Opens a lapin connection to node `index`.
    async fn connect_node(
        self: Arc<Self>,
        index: usize,
    ) -> std::result::Result<lapin::Connection, String> {
        let url = self.nodes[index].url.clone();
        let properties =
            lapin::ConnectionProperties::default().with_connection_name("warrenmq".into());
        let timeout = self.reconnect.connect_timeout;
        drop(self);
        match tokio::time::timeout(timeout, lapin::Connection::connect(&url, properties)).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer in {timeout:?}")),
        }
    }

    /// Makes `link` the current link and starts watching it.
    fn install(&self, link: lapin::Connection, node: usize, epoch: u64) {
        let events = link.events_listener();
        let probe = link.status().clone();
        {
            let mut st = self.state.lock();
            st.link = Link::Up(Arc::new(link));
            st.epoch = epoch;
            st.node = node;
        }
        self.changed.notify_all();
        let me = self.me.clone();
        let mut losses = self.losses();
        self.spawn(async move {
            let mut events = Box::pin(events);
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    event = next(&mut events) => {
                        let Some(lapin::Event::Error(error)) = event else {
                            if event.is_none() { break; }
                            continue;
                        };
                        let Some(conn) = me.upgrade() else { break };
                        match classify(&error) {
                            Failure::Lost(reason) => conn.lost(epoch, reason),
                            Failure::Connection(error) => conn.close_with(Some(error)),
                            Failure::Channel(_) | Failure::ChannelGone => continue,
                        }
                        break;
                    }
                    _ = tick.tick() => {
                        if !probe.connected() && !probe.connecting() {
                            if let Some(conn) = me.upgrade() {
                                conn.lost(epoch, "connection dropped".to_owned());
                            }
                            break;
                        }
                    }
                    _ = losses.changed() => break,
                }
            }
        });
    }

    /// Returns the epoch of the link, waiting while it is being recovered.
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionClosed`] (or what closed it) once the connection is closed.
    pub(crate) fn wait_up(&self) -> Result<u64> {
        let mut st = self.state.lock();
        loop {
            match &st.link {
                Link::Up(_) => return Ok(st.epoch),
                Link::Closed(cause) => return Err(closed_error(cause)),
                Link::Recovering => self.changed.wait(&mut st),
            }
        }
    }

    /// Returns the current epoch if the link is up.
    pub(crate) fn epoch_if_up(&self) -> Option<u64> {
        let st = self.state.lock();
        matches!(st.link, Link::Up(_)).then_some(st.epoch)
    }

    /// Returns `true` if the link of `epoch` is the current one and lapin still has it open.
    pub(crate) fn link_alive(&self, epoch: u64) -> bool {
        let st = self.state.lock();
        match &st.link {
            Link::Up(link) => st.epoch == epoch && link.status().connected(),
            _ => false,
        }
    }

    /// Opens a lapin channel on the current link.
    pub(crate) fn create_channel(&self) -> Result<(lapin::Channel, u64)> {
        loop {
            let epoch = self.wait_up()?;
            let link = {
                let st = self.state.lock();
                match &st.link {
                    Link::Up(link) => Arc::clone(link),
                    _ => continue,
                }
            };
            match self.block_on(async move { open_channel(&link).await })? {
                Ok(channel) => return Ok((channel, epoch)),
                Err(e) => match classify(&e) {
                    Failure::Lost(reason) => self.lost(epoch, reason),
                    Failure::Connection(error) => {
                        self.close_with(Some(error.clone()));
                        return Err(error);
                    }
                    Failure::Channel(error) => return Err(error),
                    Failure::ChannelGone => self.lost(epoch, e.to_string()),
                },
            }
        }
    }

    /// Registers a channel, so that it is reopened after a reconnect.
    pub(crate) fn register(&self, channel: &Arc<RemoteChannel>) {
        let mut channels = self.channels.lock();
        channels.retain(|c| c.strong_count() > 0);
        channels.push(Arc::downgrade(channel));
    }

    /// Records a declaration for topology recovery.
    pub(crate) fn record(&self, entry: Declared) {
        self.topology.lock().record(entry);
    }

    /// Returns `true` once closed.
    pub(crate) fn is_closed(&self) -> bool {
        matches!(self.state.lock().link, Link::Closed(_))
    }

    /// The link of `epoch` was lost: start recovering, unless that is already done.
    pub(crate) fn lost(&self, epoch: u64, reason: String) {
        let node = {
            let mut st = self.state.lock();
            if st.epoch != epoch || !matches!(st.link, Link::Up(_)) {
                return;
            }
            st.link = Link::Recovering;
            st.node
        };
        self.losses.send_modify(|n| *n += 1);
        let shown = self.nodes[node].shown.clone();
        tracing::warn!(node = %shown, %reason, "remote connection lost; reconnecting");
        let _ = self.events.push(ConnectionEvent::Lost {
            node: shown,
            reason: reason.clone(),
        });
        let Some(me) = self.me.upgrade() else { return };
        self.spawn(async move { me.recover(epoch, node, reason).await });
    }

    /// Reconnects to the next reachable node with backoff, restores the topology, channels
    /// and consumers; gives up (closing the connection) after the configured time.
    async fn recover(self: Arc<Self>, epoch: u64, lost_node: usize, reason: String) {
        let started = Instant::now();
        let n = self.nodes.len();
        let mut index = (lost_node + 1) % n;
        let mut delay = self.reconnect.initial_backoff;
        let mut attempts = 0u32;
        let mut last = reason;
        loop {
            for _ in 0..n {
                if self.is_closed() {
                    return;
                }
                attempts += 1;
                match self.clone().connect_node(index).await {
                    Ok(link) => match self.restore(&link, epoch + 1).await {
                        Ok(()) => {
                            self.install(link, index, epoch + 1);
                            let node = self.nodes[index].shown.clone();
                            tracing::info!(%node, attempts, "remote connection recovered");
                            let _ = self.events.push(ConnectionEvent::Reconnected {
                                node,
                                attempts,
                                down_for: started.elapsed(),
                            });
                            return;
                        }
                        Err(e) => {
                            last = e;
                            let _ = link.close(200, "recovery failed".into()).await;
                        }
                    },
                    Err(e) => last = e,
                }
                index = (index + 1) % n;
            }
            if started.elapsed() >= self.reconnect.give_up_after {
                let reason = format!(
                    "no node answered in {:?} ({attempts} attempts): {last}",
                    self.reconnect.give_up_after
                );
                let _ = self.events.push(ConnectionEvent::Failed {
                    reason: reason.clone(),
                });
                self.close_with(Some(Error::Unreachable { reason }));
                return;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(self.reconnect.max_backoff);
        }
    }

    /// Declares the recorded topology on `link`, then reopens every channel on it.
    async fn restore(
        &self,
        link: &lapin::Connection,
        epoch: u64,
    ) -> std::result::Result<(), String> {
        let mut replay = open_channel(link).await.map_err(|e| e.to_string())?;
        // Replayed in order; a server-named queue's new name also applies to the
        // declarations after it (its bindings).
        let mut pending = self.topology.lock().snapshot();
        let mut index = 0;
        while let Some(entry) = pending.get(index).cloned() {
            index += 1;
            let outcome = declare(&replay, &entry).await;
            match outcome {
                Ok(Some((old, new))) => {
                    pending.rename_queue(&old, &new);
                    self.topology.lock().rename_queue(&old, &new);
                    for channel in self.live_channels() {
                        channel.rename_queue(&old, &new);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    if let Failure::Lost(reason) = classify(&e) {
                        return Err(reason);
                    }
                    tracing::warn!(?entry, error = %e, "cannot declare again after reconnecting");
                    replay = open_channel(link).await.map_err(|e| e.to_string())?;
                }
            }
        }
        let _ = replay.close(200, "OK".into()).await;
        for channel in self.live_channels() {
            channel.reopen(link, epoch).await?;
        }
        Ok(())
    }

    fn live_channels(&self) -> Vec<Arc<RemoteChannel>> {
        self.channels
            .lock()
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    }

    /// Closes the connection for good: its channels close, their consumers disconnect.
    pub(crate) fn close_with(&self, cause: Option<Error>) {
        let link = {
            let mut st = self.state.lock();
            if matches!(st.link, Link::Closed(_)) {
                return;
            }
            std::mem::replace(&mut st.link, Link::Closed(cause.clone().map(Arc::new)))
        };
        self.changed.notify_all();
        self.losses.send_modify(|n| *n += 1);
        for channel in self.live_channels() {
            channel.close_locally(None);
        }
        self.events.close();
        if let Link::Up(link) = link {
            let (code, text) = match &cause {
                None => (200, "OK".to_owned()),
                Some(e) => (e.reply_code().0, e.reply_text()),
            };
            let close = async move {
                let _ = tokio::time::timeout(
                    Duration::from_secs(5),
                    link.close(code, text.as_str().into()),
                )
                .await;
            };
            if cause.is_none() {
                let _ = self.block_on(close);
            } else {
                self.spawn(close);
            }
        }
    }

    /// Returns the handle the application receives events through.
    pub(crate) fn events(&self) -> Arc<Inbox<ConnectionEvent>> {
        Arc::clone(&self.events)
    }
}

impl Drop for RemoteConnection {
    /// The last handle went: close the link politely (unless dropped inside async code,
    /// where waiting is not allowed; the server then sees the socket close), then stop the
    /// runtime without waiting for its threads.
    fn drop(&mut self) {
        let link = match std::mem::replace(&mut self.state.get_mut().link, Link::Closed(None)) {
            Link::Up(link) => Some(link),
            _ => None,
        };
        self.events.close();
        if let (Some(link), Err(_)) = (link, Handle::try_current()) {
            self.handle.block_on(async move {
                let _ = tokio::time::timeout(Duration::from_secs(2), link.close(200, "OK".into()))
                    .await;
            });
        }
        if let Some(runtime) = self.runtime.lock().take() {
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for RemoteConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteConnection")
            .field(
                "nodes",
                &self.nodes.iter().map(|n| &n.shown).collect::<Vec<_>>(),
            )
            .field("vhost", &self.vhost)
            .finish_non_exhaustive()
    }
}

/// The error of a call on a closed connection.
fn closed_error(cause: &Option<Arc<Error>>) -> Error {
    match cause.as_deref() {
        Some(e @ Error::Unreachable { .. }) => e.clone(),
        _ => Error::ConnectionClosed,
    }
}

fn invalid_url(url: &str, why: &str) -> Error {
    Error::Server {
        code: ReplyCode::INVALID_PATH,
        reason: format!("invalid AMQP URL '{url}': {why}"),
    }
}

/// Opens a channel with confirms on (the remote channel always uses them: they carry
/// returns and say when a publish is safe).
pub(crate) async fn open_channel(link: &lapin::Connection) -> lapin::Result<lapin::Channel> {
    let channel = link.create_channel().await?;
    channel
        .confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

/// Replays one declaration; for a server-named queue returns its old and new names.
async fn declare(
    channel: &lapin::Channel,
    entry: &Declared,
) -> lapin::Result<Option<(String, String)>> {
    use lapin::options as o;
    match entry {
        Declared::Exchange {
            name,
            kind,
            options,
            arguments,
        } => {
            let opts = o::ExchangeDeclareOptions {
                passive: false,
                durable: options.durable,
                auto_delete: options.auto_delete,
                internal: options.internal,
                nowait: false,
            };
            channel
                .exchange_declare(
                    short_string(name),
                    super::channel::exchange_kind(kind),
                    opts,
                    table_to_wire(arguments),
                )
                .await?;
            Ok(None)
        }
        Declared::Queue {
            name,
            options,
            arguments,
            server_named,
        } => {
            let opts = o::QueueDeclareOptions {
                passive: false,
                durable: options.durable,
                exclusive: options.exclusive,
                auto_delete: options.auto_delete,
                nowait: false,
            };
            let asked = if *server_named { "" } else { name.as_str() };
            let ok = channel
                .queue_declare(short_string(asked), opts, table_to_wire(arguments))
                .await?;
            let new = ok.name().as_str();
            Ok((new != name).then(|| (name.clone(), new.to_owned())))
        }
        Declared::QueueBinding {
            queue,
            exchange,
            routing_key,
            arguments,
        } => {
            channel
                .queue_bind(
                    short_string(queue),
                    short_string(exchange),
                    short_string(routing_key),
                    o::QueueBindOptions::default(),
                    table_to_wire(arguments),
                )
                .await?;
            Ok(None)
        }
        Declared::ExchangeBinding {
            destination,
            source,
            routing_key,
            arguments,
        } => {
            channel
                .exchange_bind(
                    short_string(destination),
                    short_string(source),
                    short_string(routing_key),
                    o::ExchangeBindOptions::default(),
                    table_to_wire(arguments),
                )
                .await?;
            Ok(None)
        }
    }
}

/// The next item of a stream.
pub(crate) async fn next<S: Stream + ?Sized>(stream: &mut Pin<Box<S>>) -> Option<S::Item> {
    std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await
}
