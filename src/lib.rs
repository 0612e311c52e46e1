//! Warren: an embeddable, in-process message bus with the semantics of RabbitMQ.
#![forbid(unsafe_code)]

mod arguments;
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
mod returns;
pub mod routing;
mod stats;
// Used by the broker once it is integrated; until then most of the store is unused.
#[allow(
    dead_code,
    unused_imports,
    reason = "the broker integrating the store is not merged yet"
)]
mod store;
mod sync;
mod vhost;

pub use broker::{Broker, BrokerBuilder};
pub use channel::Channel;
pub use clock::{Clock, ClockHook, ManualClock, SystemClock};
pub use connection::Connection;
pub use consumer::{Consumer, Delivery, Iter, TryIter};
pub use error::{Error, RecvError, RecvTimeoutError, ReplyCode, Result, TryRecvError};
pub use exchange::ExchangeKind;
pub use field_table::{FieldTable, FieldValue};
pub use message::{DeliveryMode, Message, Properties};
pub use options::{
    ConsumeOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, GetOptions, PublishOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
pub use returns::{ReturnedMessage, Returns, ReturnsIter, ReturnsTryIter};
pub use stats::{ExchangeStats, QueueStats};
pub use store::StoreError;
pub use vhost::{QueueDeclareOk, RoutePreview};
