//! The listener: [`Broker::serve`] accepts TCP connections and serves each on its own
//! thread until the [`WireServer`] handle stops it.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::connection;
use crate::sync::Mutex;
use crate::Broker;

/// Room for the reader thread of a connection, which parses frames (recursively, for
/// nested field tables, whose depth `nesting` bounds).
const CONNECTION_STACK: usize = 8 * 1024 * 1024;

/// How long [`WireServer::shutdown`] lets connections say goodbye before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Settings of the wire listener.
///
/// # Defaults
///
/// - user `guest`, password `guest` (accepted from any address, unlike RabbitMQ's
///   loopback-only default);
/// - heartbeat 60 s proposed (the client's answer wins, 0 turns heartbeats off);
/// - frame-max 131072 bytes, channel-max 2047 (RabbitMQ's defaults).
///
/// # Examples
///
/// ```
/// use warrenmq::{Broker, WireOptions};
///
/// # fn main() -> std::io::Result<()> {
/// let options = WireOptions { user: "app".into(), password: "s3cret".into(), ..WireOptions::default() };
/// let server = Broker::in_memory().serve_with("127.0.0.1:0", options)?;
/// server.shutdown();
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireOptions {
    /// The user name clients must log in with (PLAIN or AMQPLAIN).
    pub user: String,
    /// The password clients must log in with.
    pub password: String,
    /// The heartbeat interval proposed to clients, in seconds.
    pub heartbeat: u16,
    /// The largest frame proposed to clients, in bytes: at least 4096 (AMQP's
    /// frame-min-size); clients may ask for less.
    pub frame_max: u32,
    /// The highest channel number proposed to clients (0 = no limit).
    pub channel_max: u16,
}

impl Default for WireOptions {
    fn default() -> Self {
        WireOptions {
            user: "guest".into(),
            password: "guest".into(),
            heartbeat: 60,
            frame_max: super::frames::FRAME_MAX,
            channel_max: 2047,
        }
    }
}

/// State shared by the listener thread and the handle.
#[derive(Debug, Default)]
struct Shared {
    /// Set when the server stops.
    stopping: AtomicBool,
    /// The next connection number.
    next_id: AtomicU64,
    /// The sockets of live connections, to close them on shutdown.
    connections: Mutex<HashMap<u64, TcpStream>>,
}

/// A running AMQP 0-9-1 listener, returned by [`Broker::serve`].
///
/// Dropping the handle stops the server, like [`shutdown`](Self::shutdown).
#[must_use = "dropping a WireServer stops it"]
pub struct WireServer {
    /// The bound address.
    local_addr: SocketAddr,
    /// Shared with the listener thread.
    shared: Arc<Shared>,
    /// The listener thread.
    thread: Option<JoinHandle<()>>,
}

impl Broker {
    /// Serves this broker over AMQP 0-9-1 on `addr`, with [`WireOptions::default`]
    /// (guest/guest). Bind port 0 to get a free port, then read
    /// [`WireServer::local_addr`].
    ///
    /// Each client connection becomes a [`Connection`](crate::Connection) and each AMQP
    /// channel a [`Channel`](crate::Channel); a client that disconnects, or misses two
    /// heartbeats, has its connection closed, so its unacknowledged messages are requeued
    /// and its exclusive queues deleted.
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::Broker;
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let broker = Broker::in_memory();
    /// let server = broker.serve("127.0.0.1:0")?;
    /// println!("amqp://guest:guest@{}/", server.local_addr());
    /// server.shutdown();
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// The I/O error of binding the address or starting the listener thread.
    pub fn serve(&self, addr: impl ToSocketAddrs) -> io::Result<WireServer> {
        self.serve_with(addr, WireOptions::default())
    }

    /// Serves this broker over AMQP 0-9-1 on `addr` with the given options.
    ///
    /// # Examples
    ///
    /// See [`WireOptions`].
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`] for a `frame_max` below 4096; the I/O error of
    /// binding the address or starting the listener thread.
    pub fn serve_with(
        &self,
        addr: impl ToSocketAddrs,
        options: WireOptions,
    ) -> io::Result<WireServer> {
        if options.frame_max < 4096 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "frame_max {} is below 4096, AMQP's minimum",
                    options.frame_max
                ),
            ));
        }
        let listener = TcpListener::bind(addr)?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let broker = self.clone();
        let listener_shared = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("warren-wire-listener".into())
            .spawn(move || accept_loop(&listener, &broker, &Arc::new(options), &listener_shared))?;
        Ok(WireServer {
            local_addr,
            shared,
            thread: Some(thread),
        })
    }
}

fn accept_loop(
    listener: &TcpListener,
    broker: &Broker,
    options: &Arc<WireOptions>,
    shared: &Arc<Shared>,
) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::Acquire) {
            break;
        }
        // Accept errors (e.g. too many open files) concern one client; keep listening.
        let Ok(stream) = stream else { continue };
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(handle) = stream.try_clone() {
            shared.connections.lock().insert(id, handle);
        }
        let (broker, options, owner) = (broker.clone(), Arc::clone(options), Arc::clone(shared));
        let spawned = thread::Builder::new()
            .name("warren-wire-connection".into())
            .stack_size(CONNECTION_STACK)
            .spawn(move || {
                connection::serve(stream, &broker, &options, &owner.stopping);
                owner.connections.lock().remove(&id);
            });
        if spawned.is_err() {
            if let Some(stream) = shared.connections.lock().remove(&id) {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }
}

impl WireServer {
    /// Returns the address the server listens on.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let server = warrenmq::Broker::in_memory().serve("127.0.0.1:0")?;
    /// assert!(server.local_addr().ip().is_loopback());
    /// assert_ne!(server.local_addr().port(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Returns the number of client connections open now.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let server = warrenmq::Broker::in_memory().serve("127.0.0.1:0")?;
    /// assert_eq!(server.connection_count(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn connection_count(&self) -> usize {
        self.shared.connections.lock().len()
    }

    /// Stops accepting connections and closes the open ones: each client is told with
    /// `connection.close` 320 CONNECTION_FORCED (as RabbitMQ does when it stops) and its
    /// session [`Connection`](crate::Connection) is dropped, so its unacknowledged
    /// messages go back to their queues and its exclusive queues are deleted. Returns once
    /// every connection has ended (after at most a few seconds).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let server = warrenmq::Broker::in_memory().serve("127.0.0.1:0")?;
    /// let addr = server.local_addr();
    /// server.shutdown();
    /// assert!(std::net::TcpStream::connect(addr).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn shutdown(mut self) {
        self.stop();
    }

    /// Serves for as long as the process runs, blocking the calling thread: for programs
    /// such as `warren-server` that do nothing else and stop with the process (Ctrl-C,
    /// SIGTERM).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> std::io::Result<()> {
    /// let server = warrenmq::Broker::in_memory().serve("0.0.0.0:5672")?;
    /// server.wait();
    /// # Ok(())
    /// # }
    /// ```
    pub fn wait(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    fn stop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::Release);
        // Wake the blocked accept with a connection of our own.
        let _ = TcpStream::connect(wake_address(self.local_addr));
        let _ = thread.join();
        // Each connection sees the end of its input and, as the server is stopping, tells
        // its client with connection.close 320 before it goes.
        for stream in self.shared.connections.lock().values() {
            let _ = stream.shutdown(Shutdown::Read);
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while self.connection_count() > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        for (_, stream) in self.shared.connections.lock().drain() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// The address to connect to in order to reach a listener bound to `addr`.
fn wake_address(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

impl Drop for WireServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl fmt::Debug for WireServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WireServer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}
