//! The outgoing bytes of a connection: replies, deliveries and heartbeats are encoded into
//! one buffer, which the connection task writes to its socket whenever the socket takes
//! bytes.
//!
//! # Backpressure
//!
//! The buffer is bounded by [`HIGH`]: once that much waits for a client that reads slowly,
//! its connection stops taking deliveries from its consumers and stops reading the
//! client's requests (whose replies would grow it further), until the socket has taken
//! enough. Only that connection waits; every other one goes on.

use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::sync::Mutex;

/// How many bytes may wait for a client before its connection stops producing more.
pub(crate) const HIGH: usize = 128 * 1024;

/// What an idle connection keeps of its buffer: the rest is given back once it drains.
const KEEP: usize = 4 * 1024;

/// What a buffer starts with once it has something to hold.
const FIRST: usize = 16 * 1024;

/// The sending side of a connection's socket; cheap to clone.
#[derive(Clone, Debug, Default)]
pub(crate) struct Outbox {
    /// Shared with the connection task and the threads that queue deliveries.
    shared: Arc<Shared>,
}

/// The buffer and its counters.
#[derive(Debug, Default)]
struct Shared {
    /// The bytes not yet written.
    state: Mutex<State>,
    /// Bytes not yet written, updated under the lock of `state`, so that the connection
    /// task checks for room (before each frame it reads) without taking the lock.
    pending: AtomicUsize,
    /// Bytes written to the socket so far (for heartbeat and stall checks).
    written: AtomicU64,
}

/// The buffer itself.
#[derive(Debug, Default)]
struct State {
    /// Encoded frames; `bytes[start..]` is still to be written.
    bytes: Vec<u8>,
    /// How much of `bytes` was written already.
    start: usize,
    /// Set once the connection ends: nothing more is queued.
    closed: bool,
}

impl State {
    fn pending(&self) -> usize {
        self.bytes.len() - self.start
    }

    /// Makes room for more bytes at the end.
    fn buffer(&mut self) -> &mut Vec<u8> {
        if self.bytes.capacity() == 0 {
            self.bytes.reserve(FIRST);
        }
        &mut self.bytes
    }
}

impl Outbox {
    /// Queues complete frames. Returns `false` once the outbox is closed.
    pub(crate) fn send(&self, frames: Vec<u8>) -> bool {
        self.encode(|out| out.extend_from_slice(&frames))
    }

    /// Encodes complete frames straight into the buffer with `encode`, which appends to the
    /// vector it is given. Returns `false` (and encodes nothing) once the outbox is closed.
    pub(crate) fn encode(&self, encode: impl FnOnce(&mut Vec<u8>)) -> bool {
        let mut state = self.shared.state.lock();
        if state.closed {
            return false;
        }
        let before = state.bytes.len();
        encode(state.buffer());
        // Every writer of the counter holds the lock: no read-modify-write is needed. While
        // a flush has the bytes out of `state`, the counter still includes them.
        let added = state.bytes.len().saturating_sub(before);
        let pending = &self.shared.pending;
        pending.store(pending.load(Ordering::Relaxed) + added, Ordering::Relaxed);
        true
    }

    /// Returns the number of bytes waiting to be written.
    pub(crate) fn pending(&self) -> usize {
        self.shared.pending.load(Ordering::Relaxed)
    }

    /// Returns `true` when the buffer is full: stop producing until it drains.
    pub(crate) fn is_full(&self) -> bool {
        self.pending() >= HIGH
    }

    /// Returns the number of bytes written to the socket so far.
    pub(crate) fn written(&self) -> u64 {
        self.shared.written.load(Ordering::Relaxed)
    }

    /// Closes the outbox: later sends fail. What is queued can still be flushed.
    pub(crate) fn close(&self) {
        self.shared.state.lock().closed = true;
    }

    /// Writes as much as `write` takes now, without waiting: `write` writes some of the
    /// bytes it is given and returns how many, or fails with [`io::ErrorKind::WouldBlock`]
    /// when the socket takes none now. The lock is not held while writing.
    ///
    /// # Errors
    ///
    /// The socket's error; a socket that takes no bytes is [`io::ErrorKind::WriteZero`].
    pub(crate) fn flush(&self, write: impl FnMut(&[u8]) -> io::Result<usize>) -> io::Result<()> {
        let (mut bytes, mut start) = {
            let mut state = self.shared.state.lock();
            if state.pending() == 0 {
                return Ok(());
            }
            let start = std::mem::take(&mut state.start);
            (std::mem::take(&mut state.bytes), start)
        };
        let before = start;
        let result = write_some(write, &bytes, &mut start);
        self.shared
            .written
            .fetch_add((start - before) as u64, Ordering::Relaxed);
        let mut state = self.shared.state.lock();
        // Bytes queued meanwhile go after what is left.
        let appended = std::mem::take(&mut state.bytes);
        if start == bytes.len() {
            bytes.clear();
            start = 0;
        } else if start > bytes.len() / 2 {
            bytes.drain(..start);
            start = 0;
        }
        bytes.extend_from_slice(&appended);
        if bytes.is_empty() && bytes.capacity() > KEEP {
            bytes = Vec::new();
        }
        state.bytes = bytes;
        state.start = start;
        self.shared
            .pending
            .store(state.pending(), Ordering::Relaxed);
        result
    }
}

/// Writes `bytes[*start..]` until the socket would block; advances `start`.
fn write_some(
    mut write: impl FnMut(&[u8]) -> io::Result<usize>,
    bytes: &[u8],
    start: &mut usize,
) -> io::Result<()> {
    while *start < bytes.len() {
        match write(&bytes[*start..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => *start += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
