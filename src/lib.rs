//! Warren: an embeddable, in-process message bus with the semantics of RabbitMQ.
#![forbid(unsafe_code)]

mod clock;
mod error;
mod field_table;
mod message;
pub mod routing;
// Used by the broker once it is integrated; until then most of the store is unused.
#[allow(
    dead_code,
    unused_imports,
    reason = "the broker integrating the store is not merged yet"
)]
mod store;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, RecvError, RecvTimeoutError, ReplyCode, Result, TryRecvError};
pub use field_table::{FieldTable, FieldValue};
pub use message::{DeliveryMode, Message, Properties};
pub use store::StoreError;
