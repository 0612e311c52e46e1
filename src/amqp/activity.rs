//! What a wire connection holds in flight, for [`Broker::wait_idle`](crate::Broker::wait_idle):
//! deliveries taken from its consumers and not yet encoded, frames read from the client and
//! not yet handled, bytes encoded and not yet written to the socket.
//!
//! The connection task updates it as it goes (a store and, when something may have ended,
//! a notification: a fence and one load while no one waits); `wait_idle` reads it from
//! another thread. Deliveries are counted from before the task takes them from a consumer's
//! inbox until their frames are in the outbox, so there is no moment when a delivery is in
//! neither place.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use super::outbox::Outbox;
use crate::quiet::Quiet;

/// The in-flight state of one wire connection.
#[derive(Debug)]
pub(crate) struct Activity {
    /// The client's address, to name the connection.
    peer: Option<SocketAddr>,
    /// Deliveries are being taken from consumers or wait to be encoded.
    taking: AtomicBool,
    /// Bytes read from the client and not yet handled.
    unread: AtomicUsize,
    /// The connection's outbox (bytes not yet written).
    outbox: Outbox,
    /// Told when the connection may have gone quiet.
    quiet: Arc<Quiet>,
}

impl Activity {
    /// The activity of a connection from `peer` writing through `outbox`.
    pub(crate) fn new(peer: Option<SocketAddr>, outbox: Outbox, quiet: Arc<Quiet>) -> Self {
        Activity {
            peer,
            taking: AtomicBool::new(false),
            unread: AtomicUsize::new(0),
            outbox,
            quiet,
        }
    }

    /// Marks deliveries as being taken (before the consumers are polled).
    pub(crate) fn start_taking(&self) {
        self.taking.store(true, Ordering::SeqCst);
    }

    /// Marks the deliveries taken as encoded into the outbox (or none taken).
    pub(crate) fn end_taking(&self) {
        self.taking.store(false, Ordering::SeqCst);
        self.quiet.notify();
    }

    /// Records how many bytes read from the client wait to be handled, and tells waiters
    /// (the outbox may have drained too).
    pub(crate) fn set_unread(&self, bytes: usize) {
        self.unread.store(bytes, Ordering::SeqCst);
        self.quiet.notify();
    }

    /// Describes what the connection holds in flight, if anything.
    pub(super) fn busy(&self) -> Option<String> {
        let mut parts = Vec::new();
        if self.taking.load(Ordering::SeqCst) {
            parts.push("deliveries being encoded".to_owned());
        }
        let unread = self.unread.load(Ordering::SeqCst);
        if unread > 0 {
            parts.push(format!(
                "{unread} bytes read from the client, not yet handled"
            ));
        }
        let pending = self.outbox.pending();
        if pending > 0 {
            parts.push(format!("{pending} bytes not yet written to the client"));
        }
        if parts.is_empty() {
            return None;
        }
        let peer = self
            .peer
            .map_or_else(|| "a client".to_owned(), |p| p.to_string());
        Some(format!("wire connection from {peer}: {}", parts.join(", ")))
    }
}
