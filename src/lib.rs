//! Warren: an embeddable, in-process message bus with the semantics of RabbitMQ.
#![forbid(unsafe_code)]

#[cfg(feature = "wire")]
mod amqp;
mod broker;
mod channel;
mod clock;
mod connection;
mod consumer;
mod envelope;
mod error;
mod exchange;
mod field_table;
mod ledger;
mod message;
mod names;
mod options;
mod queue;
pub mod routing;
mod stats;
mod sync;
mod vhost;

#[cfg(feature = "wire")]
pub use amqp::{WireOptions, WireServer};
pub use broker::{Broker, BrokerBuilder};
pub use channel::Channel;
pub use clock::{Clock, ManualClock, SystemClock};
pub use connection::Connection;
pub use consumer::{Consumer, Delivery, Iter, TryIter};
pub use error::{Error, RecvError, RecvTimeoutError, ReplyCode, Result, TryRecvError};
pub use exchange::ExchangeKind;
pub use field_table::{FieldTable, FieldValue};
pub use message::{DeliveryMode, Message, Properties};
pub use options::{
    ConsumeOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, GetOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
pub use stats::{ExchangeStats, QueueStats};
pub use vhost::{QueueDeclareOk, RoutePreview};
