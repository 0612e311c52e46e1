//! The one place where lock and channel types are chosen, so that swapping them (or adding
//! loom) is a one-file change.

#[cfg(feature = "wire")]
pub(crate) use crossbeam_channel::bounded;
pub(crate) use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError, Select, Sender};
pub(crate) use parking_lot::Mutex;
