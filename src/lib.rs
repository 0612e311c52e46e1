//! Warren: an embeddable, in-process message bus with the semantics of RabbitMQ.
//!
//! A [`Broker`] lives inside your application. It owns vhosts, exchanges, queues and
//! bindings; applications talk to it through [`Connection`]s and [`Channel`]s with the
//! methods AMQP 0-9-1 clients know (`exchange_declare`, `queue_bind`, `basic_publish`,
//! `basic_consume`, `basic_ack`, ...), and it answers as RabbitMQ 3.x does: same routing, same
//! errors and reply codes, same redelivery. See `docs/semantics.md` for the contract and the
//! few deliberate differences.
//!
//! # Quick start
//!
//! ```
//! use warrenmq::{Broker, ConsumeOptions, FieldTable, Message, QueueDeclareOptions};
//!
//! # fn main() -> Result<(), warrenmq::Error> {
//! let broker = Broker::in_memory();
//! let conn = broker.connect("/")?;
//! let ch = conn.open_channel()?;
//! ch.queue_declare("hello", QueueDeclareOptions::default(), FieldTable::new())?;
//! ch.basic_publish("", "hello", Message::new("Hello World!"))?;
//!
//! let consumer = ch.basic_consume("hello", ConsumeOptions::default())?;
//! let delivery = consumer.recv().expect("a delivery");
//! assert_eq!(delivery.body().as_ref(), b"Hello World!");
//! delivery.ack()?;
//! # Ok(())
//! # }
//! ```
//!
//! # Exchanges and routing
//!
//! Messages are published to an exchange with a routing key; the exchange's kind decides
//! which bound queues get a copy ([`ExchangeKind`]: direct, fanout, topic, headers, or a
//! [custom kind](routing::Router)). The default exchange `""` routes to the queue named by
//! the key. [`Channel::route_preview`] tells where a message would go without sending it.
//!
//! ```
//! use warrenmq::{Broker, ExchangeDeclareOptions, ExchangeKind, FieldTable, QueueDeclareOptions};
//!
//! # fn main() -> Result<(), warrenmq::Error> {
//! let broker = Broker::in_memory();
//! let ch = broker.connect("/")?.open_channel()?;
//! ch.exchange_declare("logs", ExchangeKind::Topic, ExchangeDeclareOptions::default(), FieldTable::new())?;
//! ch.queue_declare("kernel", QueueDeclareOptions::default(), FieldTable::new())?;
//! ch.queue_bind("kernel", "logs", "kern.#", FieldTable::new())?;
//! let preview = ch.route_preview("logs", "kern.critical", &FieldTable::new())?;
//! assert_eq!(preview.queues, ["kernel"]);
//! # Ok(())
//! # }
//! ```
//!
//! # Queues and consumers
//!
//! [`Channel::basic_get`] pulls one message. [`Channel::basic_consume`] returns a blocking
//! [`Consumer`] with crossbeam's receive family (`recv`, `recv_timeout`, `try_recv`, `iter`);
//! [`Channel::basic_consume_with`] registers a callback that [`Channel::wait`] runs, as the
//! py-amqp programs of the tutorial Warren grew from do. Consumers of one queue share its
//! messages round-robin; [`Channel::basic_qos`] bounds how many each holds unacknowledged.
//!
//! # Acknowledgements
//!
//! A [`Delivery`] from a manual-ack consumer stays unacknowledged until
//! [`ack`](Delivery::ack)ed, [`nack`](Delivery::nack)ed or [`reject`](Delivery::reject)ed
//! (or acked by tag, with `multiple`). Requeued messages, and those of a channel that closes,
//! go back to their original place in the queue marked [`redelivered`](Delivery::redelivered).
//!
//! # Persistence
//!
//! [`Broker::open`] keeps durable exchanges, queues, bindings and persistent messages
//! (`delivery_mode = 2`) routed to durable queues in a redb file; after a restart or a crash
//! they come back. With [`Channel::confirm_select`], [`Channel::wait_for_confirms`] returns
//! once every published message is on disk; writes are group-committed.
//!
//! # Crate features
//!
//! - `persistence` (default): [`Broker::open`] and [`BrokerBuilder::data_path`], on redb.
//! - `wire` (default): `Broker::serve`, an AMQP 0-9-1 listener that real clients (pika,
//!   py-amqp, lapin, amqprs) connect to; see `docs/wire.md`.
//! - `definitions` (default): RabbitMQ definitions files, the JSON `rabbitmqctl
//!   export_definitions` writes: [`Broker::import_definitions`],
//!   [`Broker::export_definitions`], [`BrokerBuilder::definitions`] (with `serde_json`); see
//!   `docs/definitions.md`.
//! - `remote` (off): `Connection::open` and `Connection::builder`, the same
//!   `Connection` / `Channel` / `Consumer` API against `warren-server` or a RabbitMQ cluster
//!   (on lapin, reconnecting and restoring the topology when a node goes); see
//!   `docs/scale-out.md`.
//! - `tls` (off): `WireServer::listen_tls`, an `amqps` listener (rustls with the `ring`
//!   provider; PEM certificate and key, optional client certificates); see
//!   `docs/tls.md`.
//! - `management` (off): `WireServer::serve_management`, RabbitMQ's management HTTP API
//!   and Prometheus `/metrics` on the wire listener's runtime (axum); see
//!   `docs/management.md`.
//! - `cli` (off): what only the binaries use (argument parsing, logging set-up, the
//!   management API); the
//!   `warren-server` (with `wire`) and `warren-bench` binaries require it:
//!   `cargo run --release --features cli --bin warren-server`.
//!
//! # Logging
//!
//! Warren emits [`tracing`](https://docs.rs/tracing) events when connections and channels
//! open and close, on declares, deletes and binds (`debug`), and when an error closes a
//! channel (`debug`) or a connection (`info`, `warn` on the wire); the wire listener wraps
//! each client connection in an `amqp_connection` span with the peer's address. Nothing is
//! logged per message. Install any `tracing` subscriber to see them; `warren-server` logs
//! to stderr filtered by `RUST_LOG`.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod alarm;
#[cfg(feature = "wire")]
mod amqp;
mod arguments;
mod auth;
mod body;
mod broker;
mod channel;
mod clock;
mod connection;
mod consumer;
#[cfg(feature = "definitions")]
mod definitions;
mod envelope;
mod error;
mod exchange;
mod field_table;
mod idle;
mod ids;
mod inbox;
mod ledger;
#[cfg(feature = "management")]
mod management;
mod message;
mod names;
mod options;
mod policy;
mod queue;
mod quiet;
#[cfg(feature = "remote")]
mod remote;
mod returns;
pub mod routing;
mod settings;
mod stats;
mod store;
mod sync;
mod vhost;

pub use alarm::Resource;
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub use amqp::TlsOptions;
#[cfg(feature = "wire")]
#[cfg_attr(docsrs, doc(cfg(feature = "wire")))]
pub use amqp::{WireOptions, WireServer};
pub use auth::{HashingAlgorithm, LoginThrottle, PasswordHash, Permissions, User, UserPermissions};
pub use body::IntoBody;
pub use broker::{Broker, BrokerBuilder, MemoryWatermark};
pub use bytes::Bytes;
pub use channel::{Channel, PublishConfirm};
pub use clock::{Clock, ClockHook, ManualClock, SystemClock};
pub use connection::Connection;
pub use consumer::{Consumer, Delivery, Iter, TryIter};
#[cfg(feature = "definitions")]
#[cfg_attr(docsrs, doc(cfg(feature = "definitions")))]
pub use definitions::DefinitionsReport;
pub use error::{Error, RecvError, RecvTimeoutError, ReplyCode, Result, TryRecvError};
pub use exchange::ExchangeKind;
pub use field_table::{FieldTable, FieldValue};
#[cfg(feature = "management")]
pub use management::{ManagementOptions, ManagementServer};
pub use message::{DeliveryMode, Message, Properties};
pub use options::{
    ConsumeOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, GetOptions, PublishOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
pub use policy::{Policy, PolicyApplyTo};
#[cfg(feature = "remote")]
#[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
pub use remote::{ConnectionBuilder, ConnectionEvent, ConnectionEvents};
pub use returns::{ReturnedMessage, Returns, ReturnsIter, ReturnsTryIter};
pub use stats::{BindingInfo, BrokerStats, DestinationKind, ExchangeStats, QueueStats};
pub use store::StoreError;
#[cfg(feature = "persistence")]
#[cfg_attr(docsrs, doc(cfg(feature = "persistence")))]
pub use store::{salvage, SalvageCounts, SalvageReport, SalvagedQueue};
pub use vhost::{QueueDeclareOk, RoutePreview};

/// The guide `docs/testing.md`, included here so that its examples run as doc tests.
#[cfg(all(doctest, feature = "persistence"))]
#[doc = include_str!("../docs/testing.md")]
pub struct TestingGuide;
