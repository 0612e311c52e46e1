//! The live connections of a wire server, with their channels and consumers, as the
//! management API lists them (`/api/connections`, `/api/channels`, `/api/consumers`) and
//! closes them (`DELETE /api/connections/{name}`).
//!
//! Each connection task keeps its own entry up to date when something changes: the
//! handshake, a channel opened or closed, `basic.consume` / `basic.cancel`, `basic.qos`,
//! `confirm.select`, `tx.select`; never per message. Counts that change per message
//! (unacknowledged messages, bytes) are read live from the session channel and counters.
//! Each open connection's [`Activity`] is reached through it too, for
//! [`Broker::wait_idle`](crate::Broker::wait_idle).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

use super::activity::Activity;
use super::outbox::Outbox;
use super::transport::TlsSession;
use crate::sync::Mutex;
use crate::{Channel, FieldTable};

/// The connections being served, by the order they were accepted.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    /// Numbers the entries.
    next: AtomicU64,
    /// The live entries.
    live: Mutex<BTreeMap<u64, Arc<Tracked>>>,
}

impl Registry {
    /// Adds a connection opened from `peer` to `local`, whose socket counts the bytes it
    /// reads in `received` and writes through `outbox`; it is listed once its handshake
    /// succeeded ([`Tracked::login`] set), until the returned guard drops.
    pub(crate) fn add(
        self: &Arc<Self>,
        (peer, local): (SocketAddr, SocketAddr),
        tls: Option<TlsSession>,
        received: Arc<AtomicU64>,
        outbox: Outbox,
    ) -> Registered {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let connected_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let tracked = Arc::new(Tracked {
            name: format!("{peer} -> {local}"),
            peer,
            local,
            connected_at,
            tls,
            login: OnceLock::new(),
            activity: OnceLock::new(),
            channels: Mutex::new(BTreeMap::new()),
            received,
            outbox,
            close: Notify::new(),
        });
        self.live.lock().insert(id, Arc::clone(&tracked));
        Registered {
            registry: Arc::clone(self),
            id,
            tracked,
        }
    }

    /// The connections open now (the handshake done), in the order they were accepted.
    pub(crate) fn connections(&self) -> Vec<Arc<Tracked>> {
        self.live
            .lock()
            .values()
            .filter(|t| t.login.get().is_some())
            .cloned()
            .collect()
    }

    /// The open connection named `name` (`"peer -> local"`).
    pub(crate) fn find(&self, name: &str) -> Option<Arc<Tracked>> {
        self.connections().into_iter().find(|t| t.name == name)
    }

    /// Adds to `busy` what each open connection holds in flight.
    pub(crate) fn busy(&self, busy: &mut Vec<String>) {
        let live: Vec<Arc<Tracked>> = self.live.lock().values().cloned().collect();
        busy.extend(
            live.iter()
                .filter_map(|t| t.activity.get())
                .filter_map(|a| a.busy()),
        );
    }
}

/// A connection's entry, removed from the registry when this drops.
#[derive(Debug)]
pub(crate) struct Registered {
    /// The registry.
    registry: Arc<Registry>,
    /// The entry's number.
    id: u64,
    /// The entry.
    pub(crate) tracked: Arc<Tracked>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.live.lock().remove(&self.id);
    }
}

/// One connection as the management API shows it.
#[derive(Debug)]
pub(crate) struct Tracked {
    /// RabbitMQ's name for it: `"127.0.0.1:41234 -> 127.0.0.1:5672"`.
    pub(crate) name: String,
    /// The client's address.
    pub(crate) peer: SocketAddr,
    /// The listener's address.
    pub(crate) local: SocketAddr,
    /// When it was accepted, in milliseconds since the Unix epoch.
    pub(crate) connected_at: u64,
    /// Its TLS session, on an `amqps` listener.
    pub(crate) tls: Option<TlsSession>,
    /// What the handshake agreed on; set once it succeeded.
    pub(crate) login: OnceLock<Login>,
    /// What it holds in flight; set once the handshake succeeded.
    pub(crate) activity: OnceLock<Arc<Activity>>,
    /// Its open channels, by number.
    pub(crate) channels: Mutex<BTreeMap<u16, Arc<ChannelView>>>,
    /// Bytes received, counted by the socket per read.
    received: Arc<AtomicU64>,
    /// Its outbox, which counts the bytes sent.
    outbox: Outbox,
    /// Notified to close the connection with 320 CONNECTION_FORCED.
    pub(crate) close: Notify,
}

impl Tracked {
    /// Asks the connection to close, with 320 CONNECTION_FORCED.
    pub(crate) fn force_close(&self) {
        self.close.notify_one();
    }

    /// The channels open now.
    pub(crate) fn channels(&self) -> Vec<Arc<ChannelView>> {
        self.channels.lock().values().cloned().collect()
    }

    /// Bytes received and sent so far.
    pub(crate) fn octets(&self) -> (u64, u64) {
        (self.received.load(Ordering::Relaxed), self.outbox.written())
    }
}

/// What the handshake of a connection agreed on.
#[derive(Debug)]
pub(crate) struct Login {
    /// The user.
    pub(crate) user: String,
    /// The vhost.
    pub(crate) vhost: String,
    /// `PLAIN` or `AMQPLAIN`.
    pub(crate) auth_mechanism: String,
    /// What the client said of itself in `connection.start-ok`.
    pub(crate) client_properties: FieldTable,
    /// The negotiated frame size.
    pub(crate) frame_max: u32,
    /// The negotiated channel limit.
    pub(crate) channel_max: u16,
    /// The negotiated heartbeat, in seconds.
    pub(crate) heartbeat: u16,
}

/// One open channel as the management API shows it.
#[derive(Debug)]
pub(crate) struct ChannelView {
    /// The channel number.
    pub(crate) number: u16,
    /// The session channel (for its live unacknowledged count).
    pub(crate) channel: Arc<Channel>,
    /// The prefetch count set with `basic.qos`.
    pub(crate) prefetch_count: AtomicU16,
    /// `confirm.select` was sent.
    pub(crate) confirm: AtomicBool,
    /// `tx.select` was sent.
    pub(crate) transactional: AtomicBool,
    /// Its consumers, by tag.
    pub(crate) consumers: Mutex<BTreeMap<String, ConsumerView>>,
}

impl ChannelView {
    /// A view of a freshly opened channel.
    pub(crate) fn new(number: u16, channel: Arc<Channel>) -> Self {
        ChannelView {
            number,
            channel,
            prefetch_count: AtomicU16::new(0),
            confirm: AtomicBool::new(false),
            transactional: AtomicBool::new(false),
            consumers: Mutex::new(BTreeMap::new()),
        }
    }
}

/// One consumer as the management API shows it.
#[derive(Clone, Debug)]
pub(crate) struct ConsumerView {
    /// The queue consumed.
    pub(crate) queue: String,
    /// Deliveries must be acknowledged (`no_ack` was off).
    pub(crate) ack_required: bool,
    /// The consumer is exclusive.
    pub(crate) exclusive: bool,
    /// The channel's prefetch count when it started.
    pub(crate) prefetch_count: u16,
    /// Its `basic.consume` arguments.
    pub(crate) arguments: FieldTable,
}
