//! The broker: configuration, the vhost registry and connections.

use std::collections::HashMap;
use std::fmt;
#[cfg(feature = "persistence")]
use std::path::Path;
use std::path::PathBuf;
use std::sync::{Arc, Weak};

use crate::alarm::{self, Alarms, Resource};
use crate::auth::{Identity, Registry};
use crate::connection::{Connection, ConnectionInner};
#[cfg(feature = "persistence")]
use crate::message::SharedProperties;
use crate::routing::RouterFactory;
use crate::settings::Settings;
#[cfg(feature = "persistence")]
use crate::store::RecoveredState;
use crate::store::{NullStore, Store, StoreOp, VhostRecord};
use crate::sync::{ConcurrentMap, Mutex};
use crate::vhost::VHost;
use crate::{
    BindingInfo, BrokerStats, Clock, Error, ExchangeStats, Policy, QueueStats, Result, SystemClock,
};

/// Something a broker runs besides its connections (a wire listener), stopped when the
/// broker closes.
pub(crate) trait Service: Send + Sync {
    /// Stops the service and waits for it to end.
    fn stop(&self);

    /// Adds to `busy` what the service holds in flight (for [`Broker::wait_idle`]).
    fn busy(&self, busy: &mut Vec<String>) {
        let _ = busy;
    }
}

/// The connections of a broker, weakly, so that [`Broker::close`] can close them.
#[derive(Debug, Default)]
struct Connections {
    /// Every connection opened, including some already gone (pruned as the list grows).
    list: Vec<Weak<ConnectionInner>>,
    /// The length at which the gone ones are pruned next; doubling keeps pruning amortised
    /// O(1) per connection.
    prune_at: usize,
}

impl Connections {
    fn add(&mut self, connection: Weak<ConnectionInner>) {
        if self.list.len() >= self.prune_at {
            self.list.retain(|c| c.strong_count() > 0);
            self.prune_at = (self.list.len() * 2).max(64);
        }
        self.list.push(connection);
    }
}

/// The shared state behind every [`Broker`] handle.
pub(crate) struct BrokerInner {
    /// Settings and ids.
    pub(crate) settings: Arc<Settings>,
    /// Vhosts by name (shared, weakly, with the store's lost-entries listener).
    vhosts: Arc<ConcurrentMap<String, Arc<VHost>>>,
    /// Users and their permissions.
    pub(crate) auth: Arc<Registry>,
    /// Connections, to close when the broker closes. Its lock also orders opening a
    /// connection against closing the broker.
    connections: Mutex<Connections>,
    /// Services started on the broker (wire listeners), to stop when it closes.
    services: Mutex<Vec<Weak<dyn Service>>>,
    /// How the broker was built, to build it again ([`Broker::crash_and_reopen`]).
    builder: BrokerBuilder,
}

impl BrokerInner {
    /// Closes the broker: stops its services, closes its connections, stops its timers and
    /// closes its store. Only the first call does anything.
    fn shutdown(&self) -> Result<()> {
        if !self.settings.close() {
            return Ok(());
        }
        tracing::debug!("broker closing");
        self.stop_all();
        self.mark_redelivered();
        // Everything submitted is written and the file is marked clean.
        let closed = self.settings.store.close();
        if let Err(e) = &closed {
            tracing::error!(error = %e, "closing the store failed");
        }
        tracing::debug!("broker closed");
        Ok(closed?)
    }
}

impl BrokerInner {
    /// Stops the broker as a crash would: the store is released without the clean-shutdown
    /// record (everything submitted is written, as if the process died just after the
    /// store's last commit) and without the delivery marks of a clean shutdown; then every
    /// service, connection, timer and thread stops, so that no handle of this broker works
    /// any more and the file can be opened again.
    fn crash(&self) -> Result<()> {
        if !self.settings.close() {
            return Err(Error::BrokerClosed);
        }
        tracing::debug!("broker crashing on purpose");
        let stored = self.settings.store.crash();
        self.stop_all();
        Ok(stored?)
    }

    /// Stops each service, closes each connection (requeueing their unacked deliveries and
    /// ending their consumers), stops every vhost's timers, the alarms and the background
    /// thread.
    fn stop_all(&self) {
        let services = std::mem::take(&mut *self.services.lock());
        for service in services.iter().filter_map(Weak::upgrade) {
            service.stop();
        }
        let connections = std::mem::take(&mut self.connections.lock().list);
        for connection in connections.iter().filter_map(Weak::upgrade) {
            connection.close();
        }
        for vhost in self.vhosts.iter() {
            vhost.stop_timers();
        }
        self.settings.alarms.close();
        self.settings.background.stop();
    }

    /// Deliveries write nothing to the store: the messages that were delivered and came back
    /// (every connection is closed by now, so every unacked one did) are marked here, so that
    /// they come back redelivered after this clean shutdown. After a crash every recovered
    /// message comes back redelivered anyway.
    fn mark_redelivered(&self) {
        let store = &self.settings.store;
        if !store.is_persistent() {
            return;
        }
        let entries: Vec<_> = self
            .vhosts
            .iter()
            .flat_map(|v| v.redelivered_entries())
            .collect();
        if !entries.is_empty() {
            drop(store.submit(StoreOp::MarkAllDelivered(entries)));
        }
    }
}

impl Drop for BrokerInner {
    fn drop(&mut self) {
        // A store failure here has no one to report it to but the log; what was confirmed
        // is on disk already. `Broker::close` returns it.
        let _ = self.shutdown();
    }
}

impl fmt::Debug for BrokerInner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerInner")
            .field("settings", &self.settings)
            .field("vhosts", &self.vhosts)
            .finish_non_exhaustive()
    }
}

/// An in-process message broker with RabbitMQ's semantics.
///
/// A `Broker` is a cheap handle: clones share one broker. It owns vhosts (`/` exists from
/// the start), and through them exchanges, queues and bindings. Applications talk to it
/// through a [`Connection`] and its [`Channel`](crate::Channel)s, as AMQP clients do.
///
/// # Examples
///
/// ```
/// use warrenmq::{Broker, GetOptions, Message, QueueDeclareOptions, FieldTable};
///
/// # fn main() -> Result<(), warrenmq::Error> {
/// let broker = Broker::in_memory();
/// let conn = broker.connect("/")?;
/// let ch = conn.open_channel()?;
/// ch.queue_declare("hello", QueueDeclareOptions::default(), FieldTable::new())?;
/// ch.basic_publish("", "hello", Message::new("Hello World!"))?;
/// let delivery = ch.basic_get("hello", GetOptions::no_ack())?.expect("a message");
/// assert_eq!(delivery.body().as_ref(), b"Hello World!");
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Broker {
    pub(crate) inner: Arc<BrokerInner>,
}

impl Broker {
    /// Creates a broker that keeps everything in memory.
    pub fn in_memory() -> Broker {
        BrokerBuilder::new().build_in_memory()
    }

    /// Opens (or creates) a persistent broker whose durable exchanges, queues, bindings and
    /// persistent messages live in the redb database at `path`.
    ///
    /// # Durability
    ///
    /// Durable entities are on disk when their declare returns. A persistent message
    /// (`delivery_mode = 2`) routed to a durable queue is on disk once
    /// [`Channel::wait_for_confirms`](crate::Channel::wait_for_confirms) says so; writes are
    /// group-committed, so publishing without confirms never waits for the disk. After a
    /// restart each durable queue holds its unacknowledged messages in their order; those
    /// that had been delivered come back with `redelivered` set.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] when the file is locked by another process or handle, corrupt, or
    /// of a newer format version. Nothing is ever reset silently.
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::{Broker, FieldTable, GetOptions, Message, QueueDeclareOptions};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("warren.redb");
    /// {
    ///     let broker = Broker::open(&path)?;
    ///     let ch = broker.connect("/")?.open_channel()?;
    ///     ch.queue_declare("jobs", QueueDeclareOptions::durable(), FieldTable::new())?;
    ///     ch.confirm_select()?;
    ///     ch.basic_publish("", "jobs", Message::new("survives").persistent())?;
    ///     assert!(ch.wait_for_confirms()?);
    /// }
    /// let broker = Broker::open(&path)?;
    /// let ch = broker.connect("/")?.open_channel()?;
    /// let d = ch.basic_get("jobs", GetOptions::no_ack())?.expect("recovered");
    /// assert_eq!(d.body().as_ref(), b"survives");
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "persistence")]
    #[cfg_attr(docsrs, doc(cfg(feature = "persistence")))]
    pub fn open(path: impl AsRef<Path>) -> Result<Broker> {
        BrokerBuilder::new().data_path(path).build()
    }

    /// Returns a builder for a broker with non-default settings.
    pub fn builder() -> BrokerBuilder {
        BrokerBuilder::new()
    }

    /// Opens a trusted connection to `vhost`: the application's own, with every right and
    /// no permission checks. To act as one of the broker's users, with that user's
    /// permissions, use [`connect_as`](Self::connect_as).
    ///
    /// # Errors
    ///
    /// [`Error::VhostNotFound`] (530) if the vhost does not exist; [`Error::BrokerClosed`]
    /// (320) once the broker is closed.
    pub fn connect(&self, vhost: &str) -> Result<Connection> {
        let vhost = self.vhost(vhost)?;
        self.open_connection(vhost, None)
    }

    /// Opens a connection to `vhost` as `user`: each operation of its channels is checked
    /// against the user's [`Permissions`](crate::Permissions) in the vhost, with RabbitMQ's
    /// 403 texts, as on the wire. The password is not asked for: the application vouches
    /// for its caller (check one with [`authenticate`](Self::authenticate)).
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::{Broker, FieldTable, Permissions, QueueDeclareOptions};
    ///
    /// # fn main() -> Result<(), warrenmq::Error> {
    /// let broker = Broker::in_memory();
    /// broker.add_user("reader", "pw", &[])?;
    /// broker.set_permissions("reader", "/", Permissions::new("", "", ".*"))?;
    /// let ch = broker.connect_as("reader", "/")?.open_channel()?;
    /// let err = ch.queue_declare("jobs", QueueDeclareOptions::default(), FieldTable::new());
    /// assert_eq!(
    ///     err.unwrap_err().to_string(),
    ///     "ACCESS_REFUSED - access to queue 'jobs' in vhost '/' refused for user 'reader'"
    /// );
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// 530 NOT_ALLOWED if the vhost does not exist, or if the user has no permissions in it
    /// (or does not exist): `access to vhost '/' refused for user 'u'`, RabbitMQ's text;
    /// [`Error::BrokerClosed`] (320) once the broker is closed.
    pub fn connect_as(&self, user: &str, vhost: &str) -> Result<Connection> {
        let vhost = self.vhost(vhost)?;
        if self.inner.auth.permissions(&vhost.name, user).is_none() {
            return Err(Error::NotAllowed {
                reason: format!("access to vhost '{}' refused for user '{user}'", vhost.name),
            });
        }
        let identity = Identity::new(user, Arc::clone(&self.inner.auth));
        self.open_connection(vhost, Some(identity))
    }

    fn open_connection(&self, vhost: Arc<VHost>, identity: Option<Identity>) -> Result<Connection> {
        let mut connections = self.inner.connections.lock();
        if self.is_closed() {
            return Err(Error::BrokerClosed);
        }
        let connection = Connection::new(self.inner.clone(), vhost, identity);
        connections.add(connection.downgrade());
        drop(connections);
        tracing::debug!(vhost = %connection.vhost(), user = connection.user(), "connection opened");
        Ok(connection)
    }

    /// Deletes a vhost with its exchanges, queues (their consumers are cancelled),
    /// messages and permissions. Connections open in it stay open, but every later
    /// operation on them fails with 530 NOT_ALLOWED.
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::Broker;
    ///
    /// # fn main() -> Result<(), warrenmq::Error> {
    /// let broker = Broker::in_memory();
    /// broker.add_vhost("tenant-a")?;
    /// broker.delete_vhost("tenant-a")?;
    /// assert_eq!(broker.vhosts(), vec!["/".to_owned()]);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// 530 if there is no such vhost; [`Error::Storage`] if a persistent broker cannot
    /// write the deletion.
    pub fn delete_vhost(&self, name: &str) -> Result<()> {
        let vhost = self.vhost(name)?;
        let store = &self.inner.settings.store;
        if store.is_persistent() {
            store
                .submit(StoreOp::DeleteVhost {
                    vhost: name.to_owned(),
                })
                .wait()?;
        }
        self.inner.vhosts.remove(name);
        self.inner.auth.clear_vhost(name);
        vhost.delete_all();
        tracing::info!(vhost = name, "vhost deleted");
        Ok(())
    }

    /// Closes the broker and everything it runs, and returns once all of it has stopped.
    ///
    /// In order: each [wire listener](Broker::serve) stops accepting and closes its client
    /// connections with `connection.close` 320 CONNECTION_FORCED, as RabbitMQ does when it
    /// stops; every in-process [`Connection`] is closed (its channels' unacknowledged
    /// messages go back to their queues, its consumers end: `recv` reports them
    /// disconnected and their streams end); the timer thread of each vhost (TTLs, queue
    /// expiry, delayed messages) stops; and the store writes everything already submitted,
    /// marks the database cleanly shut down and releases the file, so that the next
    /// [`Broker::open`] serves every message that was never delivered with
    /// `redelivered = false`.
    ///
    /// Afterwards every operation of this broker and of its connections, channels and
    /// consumers fails with [`Error::BrokerClosed`] (320) (a consumer's `recv` with
    /// [`RecvError`](crate::RecvError)). Closing again does nothing and returns `Ok(())`.
    ///
    /// `close` is not needed for a clean exit: dropping the last handle of a broker (the
    /// `Broker` clones, its connections, channels, consumers, deliveries and wire listeners)
    /// does the same, with any store error only logged. `close` is the way to close a
    /// broker that handles still point to, and to see the store's error.
    ///
    /// `close` blocks (it waits for the store's last commit and for the threads to end): in
    /// async code call it from `spawn_blocking` or after the runtime. Called from a thread
    /// of a tokio runtime (a worker or `spawn_blocking`), a wire listener's runtime cannot be
    /// waited for there and its threads end in the background, shortly after.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] if the store could not write what was submitted or close the
    /// file; the broker is closed all the same.
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::{Broker, Error, FieldTable, QueueDeclareOptions};
    ///
    /// # fn main() -> Result<(), warrenmq::Error> {
    /// let broker = Broker::in_memory();
    /// let ch = broker.connect("/")?.open_channel()?;
    /// ch.queue_declare("jobs", QueueDeclareOptions::default(), FieldTable::new())?;
    /// broker.close()?;
    /// let err = ch.queue_declare("jobs", QueueDeclareOptions::default(), FieldTable::new());
    /// assert!(matches!(err, Err(Error::BrokerClosed)));
    /// assert!(matches!(broker.connect("/"), Err(Error::BrokerClosed)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn close(&self) -> Result<()> {
        self.inner.shutdown()
    }

    /// Simulates a crash of the broker and a restart on the same file: a fault to inject in
    /// tests of what survives. Returns the restarted broker.
    ///
    /// The broker stops as after `kill -9`: nothing is shut down cleanly. Its store is
    /// released without the clean-shutdown record, so the restarted broker applies the
    /// crash rule of `docs/persistence.md`: every recovered message comes back with
    /// `redelivered = true` (whether or not it had been delivered), since a delivery is
    /// not written to disk. What was submitted to the store before the crash is written
    /// (as if the process died just after the store's last commit), so the outcome does
    /// not depend on timing: persistent messages in durable queues, durable exchanges,
    /// queues and bindings, policies and vhosts come back; transient messages,
    /// non-durable entities, consumers and unacknowledged deliveries do not. Acked
    /// messages stay gone.
    ///
    /// Every handle of the old broker is dead afterwards, as if its process had gone: its
    /// operations fail with [`Error::BrokerClosed`], its consumers end, its wire listeners
    /// have stopped (their clients were sent `connection.close` 320 rather than cut). The
    /// restarted broker has the settings the old one was built with (clock, exchange kinds,
    /// limits) and no listeners.
    ///
    /// An in-memory broker restarts empty, as a process without a data path would.
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::{Broker, FieldTable, GetOptions, Message};
    /// use warrenmq::QueueDeclareOptions;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let broker = Broker::open(dir.path().join("warren.redb"))?;
    /// let ch = broker.connect("/")?.open_channel()?;
    /// ch.queue_declare("jobs", QueueDeclareOptions::durable(), FieldTable::new())?;
    /// ch.confirm_select()?;
    /// ch.basic_publish("", "jobs", Message::new("kept").persistent())?;
    /// ch.basic_publish("", "jobs", Message::new("lost"))?; // transient
    /// assert!(ch.wait_for_confirms()?);
    ///
    /// let broker = broker.crash_and_reopen()?;
    /// assert!(ch.basic_get("jobs", GetOptions::no_ack()).is_err()); // the old handles are dead
    /// let ch = broker.connect("/")?.open_channel()?;
    /// let d = ch.basic_get("jobs", GetOptions::no_ack())?.expect("the persistent one");
    /// assert_eq!(d.body().as_ref(), b"kept");
    /// assert!(d.redelivered()); // after a crash, every recovered message
    /// assert!(ch.basic_get("jobs", GetOptions::no_ack())?.is_none());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::BrokerClosed`] if the broker is closed (or crashed) already; a store error
    /// from writing what was submitted, or from opening the file again.
    pub fn crash_and_reopen(&self) -> Result<Broker> {
        self.inner.crash()?;
        self.inner.builder.clone().build()
    }

    /// Makes every store write fail while `fail` is set, as a full disk, a read-only
    /// remount or an I/O error would: a fault to inject in tests of what a storage failure
    /// does. Set it back to `false` and writes succeed again, in the same process.
    ///
    /// While it is set nothing more reaches the disk: persistent messages published in
    /// confirm mode are nacked ([`Channel::wait_for_confirms`](crate::Channel::wait_for_confirms)
    /// returns `false`, the wire sends `basic.nack`) and withdrawn from the queues that
    /// still hold them ready, declares of durable entities fail with
    /// [`Error::Storage`] (541) and are undone; the broker, its connections and channels go
    /// on. See `docs/persistence.md`.
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::{Broker, FieldTable, Message, QueueDeclareOptions};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let broker = Broker::open(dir.path().join("warren.redb"))?;
    /// let ch = broker.connect("/")?.open_channel()?;
    /// ch.queue_declare("jobs", QueueDeclareOptions::durable(), FieldTable::new())?;
    /// ch.confirm_select()?;
    ///
    /// broker.fail_store_writes(true)?;
    /// ch.basic_publish("", "jobs", Message::new("lost").persistent())?;
    /// assert!(!ch.wait_for_confirms()?, "nacked: it could not be written");
    ///
    /// broker.fail_store_writes(false)?;
    /// ch.basic_publish("", "jobs", Message::new("kept").persistent())?;
    /// assert!(ch.wait_for_confirms()?, "on disk");
    /// assert_eq!(broker.queue_stats("/", "jobs")?.messages_ready, 1);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// 406 PRECONDITION_FAILED for an in-memory broker (it writes nothing).
    pub fn fail_store_writes(&self, fail: bool) -> Result<()> {
        if self.inner.settings.store.fail_writes(fail) {
            Ok(())
        } else {
            Err(Error::precondition(
                "an in-memory broker has no store to fail",
            ))
        }
    }

    /// Returns `true` once the broker is closed ([`close`](Self::close)).
    pub fn is_closed(&self) -> bool {
        self.inner.settings.is_closed()
    }

    /// Registers a service to stop when the broker closes.
    ///
    /// # Errors
    ///
    /// [`Error::BrokerClosed`] if the broker is closed already.
    #[cfg_attr(not(feature = "wire"), allow(dead_code))]
    pub(crate) fn add_service(&self, service: Weak<dyn Service>) -> Result<()> {
        let mut services = self.inner.services.lock();
        if self.is_closed() {
            return Err(Error::BrokerClosed);
        }
        services.retain(|s| s.strong_count() > 0);
        services.push(service);
        Ok(())
    }

    /// Adds a vhost. Adding one that exists changes nothing.
    ///
    /// # Errors
    ///
    /// [`Error::PreconditionFailed`] if the name is longer than 255 bytes;
    /// [`Error::BrokerClosed`] once the broker is closed.
    pub fn add_vhost(&self, name: &str) -> Result<()> {
        if self.is_closed() {
            return Err(Error::BrokerClosed);
        }
        crate::names::check_length("vhost name", name)?;
        if self.inner.vhosts.contains_key(name) {
            return Ok(());
        }
        let store = &self.inner.settings.store;
        if store.is_persistent() {
            store
                .submit(StoreOp::PutVhost(VhostRecord {
                    name: name.to_owned(),
                }))
                .wait()?;
        }
        self.insert_vhost(name);
        Ok(())
    }

    fn insert_vhost(&self, name: &str) -> Arc<VHost> {
        let vhost = self
            .inner
            .vhosts
            .entry(name.to_owned())
            .or_insert_with(|| VHost::new(name, Arc::clone(&self.inner.settings)));
        Arc::clone(&vhost)
    }

    /// Rebuilds vhosts, exchanges, queues with their messages, and bindings from the store.
    #[cfg(feature = "persistence")]
    fn recover(
        &self,
        mut state: RecoveredState,
        default_user: Option<&(String, String)>,
    ) -> Result<()> {
        for vhost in &state.vhosts {
            self.insert_vhost(&vhost.name);
        }
        for policy in &state.policies {
            self.insert_vhost(&policy.vhost).recover_policy(policy)?;
        }
        for exchange in &state.exchanges {
            self.insert_vhost(&exchange.vhost)
                .recover_exchange(exchange)?;
        }
        let mut envelopes = HashMap::new();
        let mut properties = SharedProperties::default();
        // Queue by queue, each message streamed from the store: recovery never holds every
        // stored message at once.
        let mut source = state.source.take();
        for queue in &state.queues {
            self.insert_vhost(&queue.record.vhost).recover_queue(
                queue,
                source.as_deref_mut(),
                &mut envelopes,
                &mut properties,
            )?;
        }
        if let Some(source) = source {
            source.finish()?;
        }
        for binding in &state.bindings {
            self.insert_vhost(&binding.vhost).recover_binding(binding);
        }
        for vhost in self.inner.vhosts.iter() {
            vhost.apply_recovered_policies();
            vhost.finish_recovery();
        }
        if !self.recover_auth(&state.auth)? {
            self.apply_default_user(default_user)?;
        }
        Ok(())
    }

    /// Returns the names of all vhosts, sorted.
    pub fn vhosts(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.vhosts.iter().map(|v| v.key().clone()).collect();
        names.sort();
        names
    }

    /// Returns the broker's resource use and alarms: memory held by messages against the
    /// memory high watermark, free disk space against the disk free limit, and how many
    /// publishers the alarms hold back now.
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::{Broker, FieldTable, Message, MemoryWatermark, QueueDeclareOptions};
    ///
    /// # fn main() -> Result<(), warrenmq::Error> {
    /// let broker = Broker::builder()
    ///     .memory_high_watermark(MemoryWatermark::Absolute(64 * 1024))
    ///     .build()?;
    /// let ch = broker.connect("/")?.open_channel()?;
    /// ch.queue_declare("q", QueueDeclareOptions::default(), FieldTable::new())?;
    /// ch.basic_publish("", "q", Message::new(vec![0u8; 1000]))?;
    /// let stats = broker.stats();
    /// assert!(stats.memory_used > 1000);
    /// assert_eq!(stats.memory_high_watermark, Some(64 * 1024));
    /// assert!(!stats.memory_alarm);
    /// # Ok(())
    /// # }
    /// ```
    pub fn stats(&self) -> BrokerStats {
        let snapshot = self.inner.settings.alarms.snapshot();
        BrokerStats {
            memory_used: snapshot.memory_used,
            memory_high_watermark: snapshot.memory_limit,
            disk_free: snapshot.disk_free,
            disk_free_limit: snapshot.disk_limit,
            memory_alarm: snapshot.on.contains(&Resource::Memory),
            disk_alarm: snapshot.on.contains(&Resource::Disk),
            blocked_publishers: snapshot.blocked,
        }
    }

    /// The resource alarms (for the wire listener, which blocks publishing connections
    /// while one is on).
    #[cfg(feature = "wire")]
    pub(crate) fn alarms(&self) -> &Arc<Alarms> {
        &self.inner.settings.alarms
    }

    /// Returns the counters of one queue.
    ///
    /// # Errors
    ///
    /// 530 for an unknown vhost, 404 for an unknown queue; 320 once the broker is closed.
    pub fn queue_stats(&self, vhost: &str, queue: &str) -> Result<QueueStats> {
        self.vhost(vhost)?.queue_stats(queue)
    }

    /// Returns the counters of every queue of a vhost, sorted by name.
    ///
    /// # Errors
    ///
    /// 530 for an unknown vhost; 320 once the broker is closed.
    pub fn list_queues(&self, vhost: &str) -> Result<Vec<QueueStats>> {
        Ok(self.vhost(vhost)?.list_queues())
    }

    /// Returns the counters of one exchange.
    ///
    /// # Errors
    ///
    /// 530 for an unknown vhost, 404 for an unknown exchange; 320 once the broker is closed.
    pub fn exchange_stats(&self, vhost: &str, exchange: &str) -> Result<ExchangeStats> {
        self.vhost(vhost)?.exchange_stats(exchange)
    }

    /// Returns the counters of every exchange of a vhost, sorted by name.
    ///
    /// # Errors
    ///
    /// 530 for an unknown vhost; 320 once the broker is closed.
    pub fn list_exchanges(&self, vhost: &str) -> Result<Vec<ExchangeStats>> {
        Ok(self.vhost(vhost)?.list_exchanges())
    }

    /// Returns every binding of a vhost made with `queue_bind` or `exchange_bind`, sorted
    /// by source (the default exchange's implicit binding of each queue is not listed).
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::{Broker, FieldTable, QueueDeclareOptions};
    ///
    /// # fn main() -> Result<(), warrenmq::Error> {
    /// let broker = Broker::in_memory();
    /// let ch = broker.connect("/")?.open_channel()?;
    /// ch.queue_declare("logs", QueueDeclareOptions::default(), FieldTable::new())?;
    /// ch.queue_bind("logs", "amq.topic", "kern.#", FieldTable::new())?;
    /// let bindings = broker.list_bindings("/")?;
    /// assert_eq!(bindings[0].source, "amq.topic");
    /// assert_eq!(bindings[0].routing_key, "kern.#");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// 530 for an unknown vhost.
    pub fn list_bindings(&self, vhost: &str) -> Result<Vec<BindingInfo>> {
        Ok(self.vhost(vhost)?.list_bindings())
    }

    /// Sets a policy in a vhost, replacing one of the same name, as `rabbitmqctl set_policy`
    /// does. It applies at once to the existing queues and exchanges it wins for, and to those
    /// declared later; on a persistent broker it is stored before it applies.
    ///
    /// Of the policies whose pattern matches a name, the one with the highest priority applies
    /// alone. The definition keys Warren acts on, and how each combines with a declare
    /// argument, are those of RabbitMQ 3.10 (see `docs/queue-features.md`): for queues
    /// `message-ttl`, `expires`, `max-length`, `max-length-bytes` and (quorum queues)
    /// `delivery-limit` — the smaller of policy and argument —, `overflow`,
    /// `dead-letter-exchange` and `dead-letter-routing-key` — the argument if there is one —;
    /// for exchanges `alternate-exchange`. The other keys RabbitMQ accepts are stored and
    /// listed but change nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::{Broker, FieldTable, Message, Policy, PolicyApplyTo, QueueDeclareOptions};
    ///
    /// # fn main() -> Result<(), warrenmq::Error> {
    /// let broker = Broker::in_memory();
    /// let ch = broker.connect("/")?.open_channel()?;
    /// ch.queue_declare("jobs.small", QueueDeclareOptions::default(), FieldTable::new())?;
    /// for n in 0..5 {
    ///     ch.basic_publish("", "jobs.small", Message::new(format!("job {n}")))?;
    /// }
    /// let limit = FieldTable::new().with("max-length", 2);
    /// broker.set_policy("/", Policy::new("cap", "^jobs\\.", limit).apply_to(PolicyApplyTo::Queues))?;
    /// // The policy applies to the live queue: the oldest messages are dropped.
    /// let stats = broker.queue_stats("/", "jobs.small")?;
    /// assert_eq!(stats.messages_ready, 2);
    /// assert_eq!(stats.policy.as_deref(), Some("cap"));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// 530 for an unknown vhost; 406 PRECONDITION_FAILED with RabbitMQ's validation text
    /// (`Validation failed: -1 is not a valid message TTL`, unknown keys, an empty definition,
    /// an invalid pattern); [`Error::Storage`] if it cannot be stored.
    pub fn set_policy(&self, vhost: &str, policy: Policy) -> Result<()> {
        self.vhost(vhost)?.set_policy(policy)
    }

    /// Removes a policy; what it applied to falls back to the next matching policy, or to its
    /// declare arguments alone (a length limit no longer in force keeps the messages it
    /// dropped gone).
    ///
    /// # Errors
    ///
    /// 530 for an unknown vhost, 404 if the vhost has no policy of that name.
    pub fn clear_policy(&self, vhost: &str, name: &str) -> Result<()> {
        self.vhost(vhost)?.clear_policy(name)
    }

    /// Returns the policies of a vhost, sorted by name.
    ///
    /// # Errors
    ///
    /// 530 for an unknown vhost.
    pub fn list_policies(&self, vhost: &str) -> Result<Vec<Policy>> {
        Ok(self.vhost(vhost)?.list_policies())
    }

    /// Returns every vhost.
    pub(crate) fn all_vhosts(&self) -> Vec<Arc<VHost>> {
        self.inner.vhosts.iter().map(|v| Arc::clone(&v)).collect()
    }

    /// Returns the services still running.
    pub(crate) fn live_services(&self) -> Vec<Arc<dyn Service>> {
        let services = self.inner.services.lock();
        services.iter().filter_map(Weak::upgrade).collect()
    }

    /// Returns the broker-wide settings.
    pub(crate) fn settings(&self) -> &Arc<Settings> {
        &self.inner.settings
    }

    pub(crate) fn vhost(&self, name: &str) -> Result<Arc<VHost>> {
        if self.is_closed() {
            return Err(Error::BrokerClosed);
        }
        self.inner
            .vhosts
            .get(name)
            .map(|v| Arc::clone(&v))
            .ok_or_else(|| Error::VhostNotFound {
                vhost: name.to_owned(),
            })
    }
}

/// Configures and builds a [`Broker`].
///
/// # Defaults
///
/// - clock: [`SystemClock`];
/// - bindings between durable and non-durable entities: allowed and transient, as in
///   RabbitMQ ([`strict_binding_durability`](Self::strict_binding_durability) refuses them);
/// - exchange kinds: `direct`, `fanout`, `topic`, `headers`;
/// - storage: none (in memory) unless [`data_path`](Self::data_path) is set; then a
///   64 MiB page cache ([`storage_cache_size`](Self::storage_cache_size)) and no memory
///   budget for persistent bodies ([`memory_budget`](Self::memory_budget));
/// - memory high watermark: 0.4 of the memory available to the process, as RabbitMQ
///   ([`memory_high_watermark`](Self::memory_high_watermark));
/// - disk free limit: 50 MB, as RabbitMQ ([`disk_free_limit`](Self::disk_free_limit)).
///
/// # Examples
///
/// ```
/// use warrenmq::{Broker, ManualClock};
///
/// # fn main() -> Result<(), warrenmq::Error> {
/// let clock = ManualClock::new();
/// let broker = Broker::builder()
///     .clock(clock.clone())
///     .strict_binding_durability(true)
///     .build()?;
/// # let _ = broker;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct BrokerBuilder {
    data_path: Option<PathBuf>,
    #[cfg(feature = "persistence")]
    storage_cache_bytes: Option<usize>,
    #[cfg(feature = "persistence")]
    allow_rollback: bool,
    #[cfg(feature = "persistence")]
    memory_budget: Option<usize>,
    strict_binding_durability: bool,
    clock: Arc<dyn Clock>,
    custom_kinds: HashMap<String, Arc<dyn RouterFactory>>,
    memory_watermark: MemoryWatermark,
    disk_free_limit: u64,
    default_user: Option<(String, String)>,
    #[cfg(feature = "definitions")]
    definitions: Option<PathBuf>,
}

/// The memory high watermark: above it, the memory alarm holds publishers back until
/// consumers drain the broker below it (RabbitMQ's `vm_memory_high_watermark`).
///
/// What is measured is the memory the broker's messages are charged: bodies, exchange and
/// routing key, plus a fixed overhead (256 bytes) per message, for as long as any copy of
/// the message is held — ready in a queue, waiting in a consumer's inbox, delivered and not
/// yet acknowledged, or in a [`Delivery`](crate::Delivery) the application keeps.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum MemoryWatermark {
    /// A fraction of the memory available to the process: the smallest of the machine's
    /// memory, its control group's limit and its address-space limit (`ulimit -v`). RabbitMQ's
    /// default is 0.4. Where none of them can be read, there is no limit.
    Relative(f64),
    /// An absolute number of bytes.
    Absolute(u64),
    /// No watermark: the memory alarm never goes on.
    Unlimited,
}

impl Default for MemoryWatermark {
    fn default() -> Self {
        MemoryWatermark::Relative(0.4)
    }
}

impl MemoryWatermark {
    /// Returns the watermark in bytes, `usize::MAX` for none.
    fn bytes(self) -> usize {
        let bytes = match self {
            MemoryWatermark::Relative(fraction) => match alarm::total_memory() {
                Some(total) if fraction > 0.0 => (total as f64 * fraction) as u64,
                Some(_) => 0,
                None => u64::MAX,
            },
            MemoryWatermark::Absolute(bytes) => bytes,
            MemoryWatermark::Unlimited => u64::MAX,
        };
        usize::try_from(bytes).unwrap_or(usize::MAX)
    }
}

/// RabbitMQ's default disk free limit: 50 MB.
const DEFAULT_DISK_FREE_LIMIT: u64 = 50_000_000;

impl BrokerBuilder {
    fn new() -> Self {
        BrokerBuilder {
            memory_watermark: MemoryWatermark::default(),
            disk_free_limit: DEFAULT_DISK_FREE_LIMIT,
            data_path: None,
            #[cfg(feature = "persistence")]
            storage_cache_bytes: None,
            #[cfg(feature = "persistence")]
            allow_rollback: false,
            #[cfg(feature = "persistence")]
            memory_budget: None,
            strict_binding_durability: false,
            clock: Arc::new(SystemClock),
            custom_kinds: HashMap::new(),
            default_user: Some(("guest".to_owned(), "guest".to_owned())),
            #[cfg(feature = "definitions")]
            definitions: None,
        }
    }

    /// Keeps durable state in the redb database at `path` (created if missing); see
    /// [`Broker::open`].
    #[cfg(feature = "persistence")]
    #[cfg_attr(docsrs, doc(cfg(feature = "persistence")))]
    pub fn data_path(&mut self, path: impl AsRef<Path>) -> &mut Self {
        self.data_path = Some(path.as_ref().to_path_buf());
        self
    }

    /// Limits the memory the database may use to cache its pages (64 MiB by default). A
    /// larger cache speeds up recovery of large stores and reads of queues that do not fit
    /// in memory; it is not needed for ordinary publishing.
    #[cfg(feature = "persistence")]
    #[cfg_attr(docsrs, doc(cfg(feature = "persistence")))]
    pub fn storage_cache_size(&mut self, bytes: usize) -> &mut Self {
        self.storage_cache_bytes = Some(bytes);
        self
    }

    /// Opens a database that is behind the last commit it is known to have made durable, or
    /// whose witness file is missing or belongs to another database, instead of refusing it
    /// with [`StoreError::RolledBack`](crate::StoreError::RolledBack). Off by default.
    ///
    /// Each commit is recorded in a small witness file beside the database
    /// (`<file>.witness`). A database that opens at an older commit than its witness — redb
    /// fell back to the previous commit because the newest was damaged, or an old copy of the
    /// file was put in place — would serve less than was confirmed, so it is refused. This
    /// setting is the operator's way to accept that (a restored backup, a damaged file whose
    /// older commit is all there is): the broker then serves what the database holds, says on
    /// standard error what it accepted, and starts a new witness. `warren-server
    /// --allow-rollback` sets it.
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::{Broker, Error, StoreError};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("warren.redb");
    /// drop(Broker::open(&path)?);
    /// // The witness is lost (or belongs to another copy): the database cannot be shown
    /// // complete, so it is refused ...
    /// std::fs::remove_file(dir.path().join("warren.redb.witness"))?;
    /// let err = Broker::open(&path).unwrap_err();
    /// assert!(matches!(err, Error::Storage(StoreError::RolledBack { .. })));
    /// // ... unless the operator accepts it.
    /// let broker = Broker::builder().data_path(&path).allow_rollback(true).build()?;
    /// # drop(broker);
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "persistence")]
    #[cfg_attr(docsrs, doc(cfg(feature = "persistence")))]
    pub fn allow_rollback(&mut self, allow: bool) -> &mut Self {
        self.allow_rollback = allow;
        self
    }

    /// Limits the memory that durable queues may use for the bodies of persistent messages
    /// (no limit by default). Beyond it, a plain durable queue (classic, no arguments that
    /// change its behaviour) keeps each persistent message it gets on disk only — 24 bytes of
    /// index in memory — and reads its tail back in order, a page at a time, as consumers
    /// drain it; transient messages, and queues with arguments, priorities or of the quorum
    /// type, keep everything in memory. After a restart such queues keep only their first
    /// page in memory, whatever the budget. `warren-server --memory-budget` sets it.
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::{Broker, FieldTable, Message, QueueDeclareOptions};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let broker = Broker::builder()
    ///     .data_path(dir.path().join("warren.redb"))
    ///     .memory_budget(64 * 1024 * 1024)
    ///     .build()?;
    /// let ch = broker.connect("/")?.open_channel()?;
    /// ch.queue_declare("backlog", QueueDeclareOptions::durable(), FieldTable::new())?;
    /// ch.basic_publish("", "backlog", Message::new("on disk if over budget").persistent())?;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "persistence")]
    #[cfg_attr(docsrs, doc(cfg(feature = "persistence")))]
    pub fn memory_budget(&mut self, bytes: usize) -> &mut Self {
        self.memory_budget = Some(bytes);
        self
    }

    /// Sets the memory high watermark (0.4 of the memory available by default, as in
    /// RabbitMQ). Above it the memory alarm is on: [`Channel::basic_publish`](crate::Channel::basic_publish)
    /// blocks, [`Channel::basic_publish_async`](crate::Channel::basic_publish_async) waits,
    /// [`Channel::try_basic_publish`](crate::Channel::try_basic_publish) fails at once, and
    /// the wire listener sends `connection.blocked` to publishing clients and stops reading
    /// them, while consumers and acks go on, until the broker is below it again.
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::{Broker, Error, FieldTable, GetOptions, Message, MemoryWatermark};
    /// use warrenmq::{PublishOptions, QueueDeclareOptions, Resource};
    ///
    /// # fn main() -> Result<(), Error> {
    /// let broker = Broker::builder()
    ///     .memory_high_watermark(MemoryWatermark::Absolute(10_000))
    ///     .build()?;
    /// let ch = broker.connect("/")?.open_channel()?;
    /// ch.queue_declare("q", QueueDeclareOptions::default(), FieldTable::new())?;
    /// ch.basic_publish("", "q", Message::new(vec![0u8; 20_000]))?; // over the watermark now
    /// let refused = ch.try_basic_publish("", "q", PublishOptions::default(), Message::new("more"));
    /// assert!(matches!(refused, Err(Error::ResourceAlarm { resource: Resource::Memory, .. })));
    /// ch.basic_get("q", GetOptions::no_ack())?.expect("the big one"); // drained
    /// ch.try_basic_publish("", "q", PublishOptions::default(), Message::new("more"))?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn memory_high_watermark(&mut self, watermark: MemoryWatermark) -> &mut Self {
        self.memory_watermark = watermark;
        self
    }

    /// Sets the disk free limit in bytes (50 MB by default, as in RabbitMQ). A persistent
    /// broker measures the free space of the file system that holds its database every
    /// second; below the limit the disk alarm is on and publishes of persistent messages
    /// are held back as for the memory alarm (on the wire, publishing connections are
    /// blocked), until space returns — no restart needed. Without a data path there is no
    /// disk alarm.
    pub fn disk_free_limit(&mut self, bytes: u64) -> &mut Self {
        self.disk_free_limit = bytes;
        self
    }

    /// Sets the user created when the broker is new, with the `administrator` tag and full
    /// permissions on `/` (RabbitMQ's `default_user` / `default_pass`); `None` creates no
    /// user. By default `guest` / `guest`, which the wire listener accepts only from
    /// loopback addresses ([`WireOptions::loopback_users`](crate::WireOptions)).
    ///
    /// An in-memory broker is always new. A persistent one creates the user the first time
    /// it opens a database and never again, so that a deleted default user stays deleted.
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::Broker;
    ///
    /// # fn main() -> Result<(), warrenmq::Error> {
    /// let broker = Broker::builder().default_user(Some(("admin", "s3cret"))).build()?;
    /// assert!(broker.authenticate("admin", "s3cret").is_ok());
    /// assert!(broker.user("guest").is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn default_user(&mut self, user: Option<(&str, &str)>) -> &mut Self {
        self.default_user = user.map(|(n, p)| (n.to_owned(), p.to_owned()));
        self
    }

    /// Sets the clock that TTLs, expiry and `x-death` times read.
    pub fn clock(&mut self, clock: impl Clock) -> &mut Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Refuses bindings between a durable and a non-durable entity, the rule of the tutorial
    /// Warren grew from: binding a durable exchange to a non-durable queue or exchange, or the
    /// reverse, fails with 406 PRECONDITION_FAILED. The predeclared `amq.*` exchanges accept
    /// any queue either way.
    ///
    /// Off by default: as in RabbitMQ, every combination binds, and a binding is durable
    /// (restored by a persistent broker after a restart) only when both of its ends are.
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::{Broker, ExchangeDeclareOptions, ExchangeKind, FieldTable};
    /// use warrenmq::QueueDeclareOptions;
    ///
    /// # fn main() -> Result<(), warrenmq::Error> {
    /// let broker = Broker::builder().strict_binding_durability(true).build()?;
    /// let ch = broker.connect("/")?.open_channel()?;
    /// let durable = ExchangeDeclareOptions::durable();
    /// ch.exchange_declare("events", ExchangeKind::Topic, durable, FieldTable::new())?;
    /// ch.queue_declare("scratch", QueueDeclareOptions::default(), FieldTable::new())?;
    /// let err = ch.queue_bind("scratch", "events", "#", FieldTable::new()).unwrap_err();
    /// assert_eq!(err.reply_code().0, 406);
    /// # Ok(())
    /// # }
    /// ```
    pub fn strict_binding_durability(&mut self, strict: bool) -> &mut Self {
        self.strict_binding_durability = strict;
        self
    }

    /// Registers a custom exchange kind: exchanges declared with
    /// [`ExchangeKind::Custom`](crate::ExchangeKind::Custom)`(name)` get a router from `factory`.
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::routing::FanoutRouter;
    /// use warrenmq::{Broker, ExchangeDeclareOptions, ExchangeKind, FieldTable};
    ///
    /// # fn main() -> Result<(), warrenmq::Error> {
    /// let broker = Broker::builder().exchange_kind("x-broadcast", FanoutRouter::new).build()?;
    /// let ch = broker.connect("/")?.open_channel()?;
    /// let kind = ExchangeKind::Custom("x-broadcast".into());
    /// ch.exchange_declare("all", kind, ExchangeDeclareOptions::default(), FieldTable::new())?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn exchange_kind(&mut self, name: &str, factory: impl RouterFactory) -> &mut Self {
        self.exchange_kind_arc(name, Arc::new(factory))
    }

    /// Registers a custom exchange kind whose factory is shared already.
    pub(crate) fn exchange_kind_arc(
        &mut self,
        name: &str,
        factory: Arc<dyn RouterFactory>,
    ) -> &mut Self {
        self.custom_kinds.insert(name.to_owned(), factory);
        self
    }

    /// Imports a definitions file (RabbitMQ's format) when the broker is built, after its
    /// stored state is recovered, as RabbitMQ's `load_definitions` setting does at boot;
    /// see [`Broker::import_definitions`]. `warren-server --definitions FILE` sets it.
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::Broker;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let file = dir.path().join("definitions.json");
    /// std::fs::write(&file, r#"{"queues": [{"name": "jobs", "vhost": "/", "durable": true,
    ///     "auto_delete": false, "arguments": {}}]}"#)?;
    /// let broker = Broker::builder().definitions(&file).build()?;
    /// assert!(broker.queue_stats("/", "jobs").is_ok());
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "definitions")]
    #[cfg_attr(docsrs, doc(cfg(feature = "definitions")))]
    pub fn definitions(&mut self, path: impl AsRef<std::path::Path>) -> &mut Self {
        self.definitions = Some(path.as_ref().to_path_buf());
        self
    }

    /// Builds the broker, recovering its durable state when a data path is set, then
    /// importing the [definitions](Self::definitions) file if one is set.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] when the database cannot be opened or read (locked, corrupt, newer
    /// format); never for an in-memory broker. [`Error::InvalidDefinitions`] when the
    /// definitions file cannot be read or imported.
    pub fn build(&mut self) -> Result<Broker> {
        let broker = match &self.data_path {
            None => self.build_in_memory(),
            Some(path) => self.build_persistent(path.clone())?,
        };
        #[cfg(feature = "definitions")]
        if let Some(path) = &self.definitions {
            let file = std::fs::File::open(path).map_err(|e| Error::InvalidDefinitions {
                entry: format!("the file {}", path.display()),
                reason: e.to_string(),
            })?;
            broker.import_definitions(std::io::BufReader::new(file))?;
        }
        Ok(broker)
    }

    #[cfg(feature = "persistence")]
    fn build_persistent(&mut self, path: PathBuf) -> Result<Broker> {
        let options = crate::store::StoreOptions {
            cache_bytes: self
                .storage_cache_bytes
                .unwrap_or(crate::store::DEFAULT_CACHE_BYTES),
            allow_rollback: self.allow_rollback,
        };
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let store = Arc::new(crate::store::RedbStore::open_with(path, options)?);
        let state = store.load()?;
        let broker = self.build_with(store);
        broker
            .inner
            .settings
            .alarms
            .monitor_disk(dir)
            .map_err(|e| Error::Internal {
                reason: format!("cannot start the disk monitor: {e}"),
            })?;
        broker.recover(state, self.default_user.as_ref())?;
        Ok(broker)
    }

    #[cfg(not(feature = "persistence"))]
    fn build_persistent(&mut self, _path: PathBuf) -> Result<Broker> {
        Ok(self.build_in_memory())
    }

    pub(crate) fn build_in_memory(&mut self) -> Broker {
        let broker = self.build_with(Arc::new(NullStore::default()));
        // Nothing to write for an in-memory broker, so this cannot fail.
        let _ = broker.apply_default_user(self.default_user.as_ref());
        broker
    }

    /// Builds a broker on a store of the caller's (tests inject slow or failing stores).
    #[cfg(test)]
    pub(crate) fn build_with_store(&mut self, store: Arc<dyn Store>) -> Broker {
        self.build_with(store)
    }

    /// The memory budget of persistent bodies, if one was set.
    fn budget(&self) -> Option<usize> {
        #[cfg(feature = "persistence")]
        return self.memory_budget;
        #[cfg(not(feature = "persistence"))]
        None
    }

    fn build_with(&mut self, store: Arc<dyn Store>) -> Broker {
        let alarms = Alarms::new(self.memory_watermark.bytes(), self.disk_free_limit);
        let settings = Arc::new(Settings::new(
            self.strict_binding_durability,
            Arc::clone(&self.clock),
            store,
            alarms,
            self.custom_kinds.clone(),
            self.budget(),
        ));
        let vhosts: Arc<ConcurrentMap<String, Arc<VHost>>> = Arc::default();
        settings
            .store
            .on_lost(withdraw_lost(Arc::downgrade(&vhosts)));
        let broker = Broker {
            inner: Arc::new(BrokerInner {
                settings,
                vhosts,
                auth: Arc::default(),
                connections: Mutex::default(),
                services: Mutex::default(),
                builder: self.clone(),
            }),
        };
        broker.insert_vhost("/");
        broker
    }
}

/// The store's lost-entries listener: withdraws the messages a failed commit did not store
/// from the queues that still hold them ready, before their publishers are nacked.
///
/// It runs on the store's writer thread and holds the vhosts weakly. While it runs the
/// broker is alive: a broker being dropped waits (in its shutdown) for the writer thread
/// before its vhosts go, so the writer thread never drops the last of them.
fn withdraw_lost(vhosts: Weak<ConcurrentMap<String, Arc<VHost>>>) -> crate::store::LostListener {
    Box::new(move |entries| {
        let Some(vhosts) = vhosts.upgrade() else {
            return;
        };
        let mut by_queue: HashMap<(&str, &str), Vec<u64>> = HashMap::new();
        for entry in entries {
            by_queue
                .entry((&*entry.queue.vhost, &*entry.queue.name))
                .or_default()
                .push(entry.seq);
        }
        let mut withdrawn = 0;
        for ((vhost, queue), seqs) in by_queue {
            let vhost = vhosts.get(vhost).map(|v| Arc::clone(&v));
            if let Some(vhost) = vhost {
                withdrawn += vhost.withdraw(queue, &seqs);
            }
        }
        tracing::warn!(
            withdrawn,
            entries = entries.len(),
            "messages whose store write failed were withdrawn from their queues (those already \
             delivered stay with their consumers)"
        );
    })
}

impl fmt::Debug for BrokerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerBuilder")
            .field("strict_binding_durability", &self.strict_binding_durability)
            .field("clock", &self.clock)
            .field(
                "default_user",
                &self.default_user.as_ref().map(|(name, _)| name),
            )
            .finish_non_exhaustive()
    }
}
