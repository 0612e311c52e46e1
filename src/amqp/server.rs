//! The listener: [`Broker::serve`] starts a small tokio runtime of its own, accepts TCP
//! connections on it and serves each as one task until the [`WireServer`] handle stops it.
//!
//! The runtime belongs to the server, so serving works the same from plain threads and
//! from inside another tokio runtime; it has one worker per core (a connection is a task,
//! never a thread), and channel methods that may wait (a declare waiting for its fsync,
//! confirms of persistent messages) run on its few blocking threads without holding a
//! worker.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener as StdListener, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::watch;

use super::connection;
use super::options::WireOptions;
use super::registry::Registry;
use super::transport::Transport;
use crate::broker::Service;
use crate::sync::{bounded, Mutex, Receiver, RecvTimeoutError, Sender};
use crate::Broker;

/// Room for each runtime thread, which parses frames (recursively, for nested field
/// tables, whose depth `nesting` bounds).
const THREAD_STACK: usize = 8 * 1024 * 1024;

/// The most threads that run channel methods waiting for the disk at once; more wait
/// their turn (they would wait for the same disk anyway).
const BLOCKING_THREADS: usize = 32;

/// How long [`WireServer::shutdown`] lets connections say goodbye before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How long to wait before accepting again after an accept failed (e.g. out of file
/// descriptors), so that a listener that cannot accept does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What the listener task and every connection task share with the handle.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The broker served.
    pub(crate) broker: Broker,
    /// The settings.
    pub(crate) options: WireOptions,
    /// Slows logins from addresses that failed one (`None`: not slowed).
    pub(crate) throttle: Option<crate::LoginThrottle>,
    /// The number of connections being served.
    connections: AtomicUsize,
    /// The connections being served, with their channels and consumers.
    pub(crate) registry: Arc<Registry>,
    /// The addresses of the `amqps` listeners added with `listen_tls`.
    pub(crate) tls_addrs: Mutex<Vec<SocketAddr>>,
}

impl Shared {
    /// What a listener of `broker` with `options` shares, before any connection.
    pub(crate) fn new(broker: Broker, options: WireOptions) -> Shared {
        let throttle = (options.failed_logins_per_second > 0)
            .then(|| crate::LoginThrottle::new(options.failed_logins_per_second));
        Shared {
            broker,
            throttle,
            options,
            connections: AtomicUsize::new(0),
            registry: Arc::default(),
            tls_addrs: Mutex::default(),
        }
    }
}

/// Counts a connection for as long as its task lives (even if the runtime drops it).
#[derive(Debug)]
struct Counted(Arc<Shared>);

impl Counted {
    /// Counts one more connection; returns it with the number served now, itself included.
    fn new(shared: &Arc<Shared>) -> (Self, usize) {
        let count = shared.connections.fetch_add(1, Ordering::AcqRel) + 1;
        (Counted(Arc::clone(shared)), count)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A running AMQP 0-9-1 listener, returned by [`Broker::serve`].
///
/// Dropping the handle stops the server, like [`shutdown`](Self::shutdown);
/// [`Broker::close`] stops it too.
#[must_use = "dropping a WireServer stops it"]
pub struct WireServer {
    /// The bound address.
    local_addr: SocketAddr,
    /// The running server, shared (weakly) with the broker so that closing it stops the
    /// server.
    control: Arc<Control>,
}

/// What stops a server: its runtime and the signals to its tasks.
struct Control {
    /// Shared with the tasks.
    shared: Arc<Shared>,
    /// The server's own runtime; `None` once stopped.
    runtime: Mutex<Option<Runtime>>,
    /// Tells the listener and every connection to stop.
    stop: watch::Sender<bool>,
    /// Disconnects when every listener task has ended (and closed its socket).
    listener_done: Receiver<()>,
    /// Given (cloned) to each listener added later; dropped at stop, so that
    /// `listener_done` disconnects once the listeners end.
    listener_alive: Mutex<Option<Sender<()>>>,
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
    /// The I/O error of binding the address or starting the listener's runtime; an error
    /// of kind [`io::ErrorKind::NotConnected`] wrapping [`Error::BrokerClosed`](crate::Error::BrokerClosed)
    /// once the broker is closed.
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
    /// binding the address or starting the listener's runtime; an error of kind
    /// [`io::ErrorKind::NotConnected`] wrapping [`Error::BrokerClosed`](crate::Error::BrokerClosed)
    /// once the broker is closed.
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
        let listener = StdListener::bind(addr)?;
        let local_addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(thread::available_parallelism().map_or(2, |n| n.get()))
            .max_blocking_threads(BLOCKING_THREADS)
            .thread_name("warren-wire")
            .thread_stack_size(THREAD_STACK)
            .enable_io()
            .enable_time()
            .build()?;
        let listener = {
            let _entered = runtime.enter();
            TcpListener::from_std(listener)?
        };
        let shared = Arc::new(Shared::new(self.clone(), options));
        let (stop, stopped) = watch::channel(false);
        let (done, listener_done) = bounded(0);
        runtime.spawn(accept_loop(
            listener,
            Transport::Plain,
            Arc::clone(&shared),
            stopped,
            done.clone(),
        ));
        let control = Arc::new(Control {
            shared,
            runtime: Mutex::new(Some(runtime)),
            stop,
            listener_done,
            listener_alive: Mutex::new(Some(done)),
        });
        // Dropping `control` on failure stops what was started.
        let service: Weak<dyn Service> = Arc::downgrade(&control) as Weak<Control>;
        self.add_service(service)
            .map_err(|e| io::Error::new(io::ErrorKind::NotConnected, e))?;
        Ok(WireServer {
            local_addr,
            control,
        })
    }
}

/// Accepts connections until told to stop; each becomes a task, opened with `transport`.
/// Dropping `done` (with the listener) tells the handle that the port is closed.
async fn accept_loop(
    listener: TcpListener,
    transport: Transport,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    done: Sender<()>,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.changed() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let (counted, count) = Counted::new(&shared);
                let limit = shared.options.connection_max;
                let over_limit = limit.is_some_and(|max| count > max);
                if limit.is_some_and(|max| count > max.saturating_mul(2).max(max + 16)) {
                    // Far over the limit: not even a refusal is worth a task.
                    tracing::warn!(%peer, count, "connection limit reached; dropped");
                    continue;
                }
                let stop = stop.clone();
                let transport = transport.clone();
                let span =
                    tracing::info_span!("amqp_connection", %peer, scheme = transport.scheme());
                tokio::spawn(tracing::Instrument::instrument(
                    async move {
                        tracing::debug!("accepted");
                        connection::serve(stream, peer, &transport, &counted.0, stop, over_limit)
                            .await;
                        tracing::debug!("connection ended");
                        drop(counted);
                    },
                    span,
                ));
            }
            // Accept errors (e.g. too many open files) concern one client; keep listening.
            Err(e) => {
                tracing::warn!(error = %e, "accepting a connection failed; retrying");
                tokio::time::sleep(ACCEPT_BACKOFF).await
            }
        }
    }
    drop(listener);
    drop(done);
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
        self.control.connection_count()
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
    pub fn shutdown(self) {
        self.control.stop();
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
    pub fn wait(self) {
        while let Err(RecvTimeoutError::Timeout) = self
            .control
            .listener_done
            .recv_timeout(Duration::from_secs(3600))
        {}
    }
}

#[cfg(feature = "tls")]
impl WireServer {
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    /// Also serves AMQP over TLS (`amqps`) on `addr` (RabbitMQ's default port is 5671;
    /// bind port 0 for a free one), and returns the address bound. Its connections are
    /// served exactly as the plain listener's, with the same options, connection limit and
    /// handshake deadline, which the TLS handshake counts against.
    ///
    /// # Examples
    ///
    /// See [`TlsOptions`](crate::TlsOptions).
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`] for a certificate, key or CA bundle that cannot be
    /// used (with what is wrong in the message); the I/O error of binding the address;
    /// [`io::ErrorKind::NotConnected`] once the server is stopped.
    pub fn listen_tls(
        &self,
        addr: impl ToSocketAddrs,
        tls: &crate::TlsOptions,
    ) -> io::Result<SocketAddr> {
        let acceptor = tls.acceptor()?;
        let stopped = || io::Error::new(io::ErrorKind::NotConnected, "the wire server is stopped");
        let Some(done) = self.control.listener_alive.lock().clone() else {
            return Err(stopped());
        };
        let runtime = self.control.runtime.lock();
        let runtime = runtime.as_ref().ok_or_else(stopped)?;
        let listener = StdListener::bind(addr)?;
        let local_addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let listener = {
            let _entered = runtime.enter();
            TcpListener::from_std(listener)?
        };
        runtime.spawn(accept_loop(
            listener,
            Transport::Tls(acceptor),
            Arc::clone(&self.control.shared),
            self.control.stop.subscribe(),
            done,
        ));
        self.control.shared.tls_addrs.lock().push(local_addr);
        tracing::info!(addr = %local_addr, "amqps listener started");
        Ok(local_addr)
    }
}

impl Control {
    fn connection_count(&self) -> usize {
        self.shared.connections.load(Ordering::Acquire)
    }
}

impl Service for Control {
    fn busy(&self, busy: &mut Vec<String>) {
        self.shared.registry.busy(busy);
    }

    fn stop(&self) {
        // Held until the runtime is shut down, so that a second caller returns only once
        // the server has stopped.
        let mut runtime = self.runtime.lock();
        let Some(runtime) = runtime.take() else {
            return;
        };
        // The listener closes its port, then each connection tells its client with
        // connection.close 320 and closes its session before it ends.
        let _ = self.stop.send(true);
        drop(self.listener_alive.lock().take());
        let _ = self.listener_done.recv_timeout(SHUTDOWN_GRACE);
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while self.connection_count() > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        // Whatever is left is cut. A runtime cannot wait for its threads from inside
        // another runtime's task; there it ends in the background.
        if tokio::runtime::Handle::try_current().is_ok() {
            runtime.shutdown_background();
        } else {
            runtime.shutdown_timeout(SHUTDOWN_GRACE);
        }
    }
}

impl WireServer {
    /// The runtime the server runs on, while it runs (for the management API).
    #[cfg(feature = "management")]
    pub(crate) fn runtime_handle(&self) -> Option<tokio::runtime::Handle> {
        self.control
            .runtime
            .lock()
            .as_ref()
            .map(|r| r.handle().clone())
    }

    /// What the server's tasks share (for the management API).
    #[cfg(feature = "management")]
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.control.shared
    }
}

impl Shared {
    /// Returns the number of client connections open now.
    #[cfg(feature = "management")]
    pub(crate) fn connection_count(&self) -> usize {
        self.connections.load(Ordering::Acquire)
    }
}

impl Drop for WireServer {
    fn drop(&mut self) {
        self.control.stop();
    }
}

impl fmt::Debug for WireServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WireServer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}
