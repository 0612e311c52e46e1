//! [`WireServer::serve_management`]: the management HTTP API on the wire listener's
//! runtime, and the [`ManagementServer`] handle that stops it.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener as StdListener, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::auth::Auth;
use super::options::ManagementOptions;
use super::rates::{self, Rates};
use super::{
    clients, definitions, messages, metrics, objects, overview, page, topology, users, visibility,
};
use crate::amqp::Shared;
use crate::sync::{bounded, Receiver};
use crate::{Broker, WireServer};

/// How long [`ManagementServer::shutdown`] waits for requests in progress.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What every request handler shares.
#[derive(Debug)]
pub(crate) struct Api {
    /// The broker managed.
    pub(crate) broker: Broker,
    /// Who may log in.
    pub(crate) auth: Auth,
    /// Message rates.
    pub(crate) rates: Rates,
    /// When the API started (the node's uptime).
    pub(crate) started: Instant,
    /// The node name, `warren@<host>`.
    pub(crate) node: String,
    /// The wire listener's state (its address, its connections).
    pub(crate) wire: Arc<Shared>,
    /// The wire listener's address.
    pub(crate) amqp_addr: SocketAddr,
    /// The API's own address.
    pub(crate) http_addr: SocketAddr,
    /// The largest request body accepted ([`ManagementOptions::max_body_size`]).
    pub(crate) max_body_size: usize,
}

/// A running management HTTP API, returned by [`WireServer::serve_management`].
///
/// Dropping the handle stops it, like [`shutdown`](Self::shutdown); it also stops with
/// its [`WireServer`].
#[must_use = "dropping a ManagementServer stops it"]
pub struct ManagementServer {
    /// The bound address.
    local_addr: SocketAddr,
    /// Tells the server to stop.
    stop: watch::Sender<bool>,
    /// Disconnects when the server task has ended.
    done: Receiver<()>,
}

impl WireServer {
    #[cfg_attr(docsrs, doc(cfg(feature = "management")))]
    /// Serves RabbitMQ's management HTTP API for this server's broker on `addr` (RabbitMQ
    /// uses port 15672; bind port 0 for a free one), on the same runtime as the AMQP
    /// listener. Requests authenticate with HTTP basic auth as one of the broker's users
    /// ([`Broker::add_user`](crate::Broker::add_user)).
    ///
    /// It serves the subset of the management plugin's API that tools use (`rabbitmqadmin`,
    /// dashboards, provisioning tools): overview, nodes, vhosts, users, permissions,
    /// exchanges, queues (with message counts and rates), bindings, policies, definitions
    /// (export and import), publishing to an exchange and getting from a queue, the
    /// aliveness test; `/metrics` in Prometheus's
    /// text format (without authentication, as RabbitMQ's Prometheus plugin); and a small
    /// HTML page at `/`. See `docs/management.md`.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let broker = warrenmq::Broker::in_memory();
    /// let server = broker.serve("127.0.0.1:0")?;
    /// let management = server.serve_management("127.0.0.1:0")?;
    /// println!("http://{}/api/overview", management.local_addr());
    /// management.shutdown();
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// The I/O error of binding the address; [`io::ErrorKind::NotConnected`] if the wire
    /// server was stopped.
    pub fn serve_management(&self, addr: impl ToSocketAddrs) -> io::Result<ManagementServer> {
        self.serve_management_with(addr, ManagementOptions::default())
    }

    #[cfg_attr(docsrs, doc(cfg(feature = "management")))]
    /// Like [`serve_management`](Self::serve_management), with settings other than the
    /// defaults: the largest request body accepted ([`ManagementOptions`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use warrenmq::{Broker, ManagementOptions};
    ///
    /// let server = Broker::in_memory().serve("127.0.0.1:0")?;
    /// let mut options = ManagementOptions::default();
    /// options.max_body_size = 1 << 20; // 1 MiB
    /// let management = server.serve_management_with("127.0.0.1:0", options)?;
    /// management.shutdown();
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`serve_management`](Self::serve_management).
    pub fn serve_management_with(
        &self,
        addr: impl ToSocketAddrs,
        options: ManagementOptions,
    ) -> io::Result<ManagementServer> {
        let Some(handle) = self.runtime_handle() else {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the wire server is stopped",
            ));
        };
        let listener = StdListener::bind(addr)?;
        let local_addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let listener = {
            let _entered = handle.enter();
            TcpListener::from_std(listener)?
        };
        let shared = self.shared();
        let api = Arc::new(Api {
            broker: shared.broker.clone(),
            auth: Auth::new(shared.broker.clone(), shared.options.loopback_users.clone()),
            rates: Rates::default(),
            started: Instant::now(),
            node: node_name(),
            wire: Arc::clone(shared),
            amqp_addr: self.local_addr(),
            http_addr: local_addr,
            max_body_size: options.max_body_size,
        });
        let (stop, stopped) = watch::channel(false);
        let (done_tx, done) = bounded::<()>(0);
        handle.spawn(sample_rates(Arc::clone(&api), stopped.clone()));
        handle.spawn(async move {
            let mut stopped = stopped;
            let app = router(api).into_make_service_with_connect_info::<SocketAddr>();
            let shutdown = async move {
                let _ = stopped.changed().await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::warn!(error = %e, "management API stopped");
            }
            drop(done_tx);
        });
        tracing::info!(addr = %local_addr, "management API listening");
        Ok(ManagementServer {
            local_addr,
            stop,
            done,
        })
    }
}

/// The route table.
fn router(api: Arc<Api>) -> Router {
    // The routes whose `{vhost}` the user must have permissions in.
    let per_vhost = Router::new()
        .merge(topology::vhost_routes())
        .merge(messages::routes())
        .merge(clients::vhost_routes())
        .merge(definitions::vhost_routes())
        .merge(overview::vhost_routes())
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&api),
            visibility::vhost_access,
        ));
    let authenticated = Router::new()
        .route("/", get(page::index))
        .merge(overview::routes())
        .merge(topology::routes())
        .merge(definitions::routes())
        .merge(users::routes())
        .merge(clients::routes())
        .merge(per_vhost)
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&api),
            authenticate,
        ));
    Router::new()
        .route("/metrics", get(metrics::metrics))
        .route("/metrics/per-object", get(metrics::per_object))
        .merge(authenticated)
        .fallback(not_found)
        .with_state(api)
}

/// Unknown paths: RabbitMQ's 404 (after authentication, as the plugin does).
async fn not_found() -> super::error::ApiError {
    super::error::ApiError::NotFound
}

/// Refuses requests without valid credentials. An address that failed a login waits for
/// its turn first (the wire listener's [`LoginThrottle`](crate::LoginThrottle), shared, so
/// that guessing over HTTP is no faster than over AMQP).
async fn authenticate(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let throttle = api.wire.throttle.as_ref();
    if let Some(throttle) = throttle {
        let wait = throttle.delay(peer.ip());
        if !wait.is_zero() {
            tracing::debug!(%peer, ?wait, "management login slowed after failures from this address");
            tokio::time::sleep(wait).await;
        }
    }
    match api.auth.check(request.headers(), peer.ip()) {
        Ok(user) => {
            let mut request = request;
            request.extensions_mut().insert(user);
            next.run(request).await
        }
        Err(refused) => {
            if let (true, Some(throttle)) = (refused.is_failed_login(), throttle) {
                throttle.failed(peer.ip());
            }
            refused.into_response()
        }
    }
}

/// Samples the counters every [`rates::INTERVAL`] until the server stops.
async fn sample_rates(api: Arc<Api>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(rates::INTERVAL);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {
                let broker = api.broker.clone();
                let Ok(sample) = tokio::task::spawn_blocking(move || objects::sample(&broker)).await else {
                    break;
                };
                api.rates.record(Instant::now(), sample);
            }
        }
    }
}

/// `warren@<hostname>`, as RabbitMQ names nodes `rabbit@<hostname>`.
fn node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("warren@{host}")
}

impl ManagementServer {
    /// Returns the address the API listens on.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let server = warrenmq::Broker::in_memory().serve("127.0.0.1:0")?;
    /// let management = server.serve_management("127.0.0.1:0")?;
    /// assert_ne!(management.local_addr().port(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting requests, lets those in progress finish (for a few seconds at
    /// most) and closes the port.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let server = warrenmq::Broker::in_memory().serve("127.0.0.1:0")?;
    /// let management = server.serve_management("127.0.0.1:0")?;
    /// let addr = management.local_addr();
    /// management.shutdown();
    /// assert!(std::net::TcpStream::connect(addr).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for ManagementServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        let _ = self.done.recv_timeout(SHUTDOWN_GRACE);
    }
}

impl fmt::Debug for ManagementServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagementServer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}
