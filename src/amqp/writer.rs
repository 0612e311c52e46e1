//! The writer thread of a connection: the only code that writes to the socket. It batches
//! frames into few syscalls and sends heartbeats when the connection has been quiet for
//! half the negotiated interval.
//!
//! When the writer stops (the socket failed or was closed), its queue disconnects, so
//! every thread blocked on [`Outbox::send`] wakes up with `false`.

use std::io::{BufWriter, Write};
use std::net::{Shutdown, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::sync::{bounded, Receiver, RecvTimeoutError, Sender};

use super::frames;

/// How many frame groups may wait for the writer before senders block (backpressure on
/// consumers when the client reads slowly).
const CAPACITY: usize = 1024;

/// What the writer thread is asked to do.
#[derive(Debug)]
enum Outgoing {
    /// Write these bytes: one or more complete frames.
    Frames(Vec<u8>),
    /// Send a heartbeat after this much silence (from `connection.tune-ok`).
    Heartbeat(Duration),
    /// Flush, close the socket and stop.
    Close,
}

/// The sending side of a connection's writer; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Outbox {
    /// The queue to the writer thread.
    tx: Sender<Outgoing>,
}

impl Outbox {
    /// Queues complete frames. Returns `false` once the writer has stopped.
    pub(crate) fn send(&self, frames: Vec<u8>) -> bool {
        self.tx.send(Outgoing::Frames(frames)).is_ok()
    }

    /// Starts heartbeats: one frame after `interval` of silence (half the negotiated
    /// heartbeat, as RabbitMQ does).
    pub(crate) fn heartbeat_every(&self, interval: Duration) {
        let _ = self.tx.send(Outgoing::Heartbeat(interval));
    }

    /// Asks the writer to flush what is queued and close the socket.
    pub(crate) fn close(&self) {
        let _ = self.tx.send(Outgoing::Close);
    }
}

/// Starts the writer thread of `stream`.
pub(crate) fn spawn(stream: TcpStream) -> std::io::Result<(Outbox, JoinHandle<()>)> {
    let (tx, rx) = bounded(CAPACITY);
    let handle = thread::Builder::new()
        .name("warren-wire-writer".into())
        .spawn(move || run(stream, &rx))?;
    Ok((Outbox { tx }, handle))
}

fn run(stream: TcpStream, rx: &Receiver<Outgoing>) {
    let mut out = BufWriter::with_capacity(64 * 1024, &stream);
    let mut heartbeat: Option<Duration> = None;
    while let Some(first) = next(rx, heartbeat) {
        // Write everything already queued, then flush once.
        let mut item = Some(first);
        let mut close = false;
        while let Some(current) = item {
            match current {
                Outgoing::Frames(bytes) => {
                    if out.write_all(&bytes).is_err() {
                        return abort(&stream);
                    }
                }
                Outgoing::Heartbeat(interval) => {
                    heartbeat = Some(interval);
                    // A peer that takes no bytes for two heartbeat intervals is as gone as
                    // one that sends none; without this a full socket would block the
                    // writer, and everything queued behind it, for ever.
                    let _ = stream.set_write_timeout(Some(interval * 4));
                }
                Outgoing::Close => close = true,
            }
            item = if close { None } else { rx.try_recv().ok() };
        }
        if out.flush().is_err() {
            return abort(&stream);
        }
        if close {
            break;
        }
    }
    drop(out);
    // Also wakes the reader thread, which then sees the end of the stream.
    let _ = stream.shutdown(Shutdown::Both);
}

/// Waits for the next thing to write: a heartbeat after `heartbeat` of silence, `None`
/// once every sender is gone.
fn next(rx: &Receiver<Outgoing>, heartbeat: Option<Duration>) -> Option<Outgoing> {
    match heartbeat {
        Some(interval) => match rx.recv_timeout(interval) {
            Ok(item) => Some(item),
            Err(RecvTimeoutError::Timeout) => Some(Outgoing::Frames(frames::heartbeat())),
            Err(RecvTimeoutError::Disconnected) => None,
        },
        None => rx.recv().ok(),
    }
}

/// Gives up on a socket that failed: closes it at once, without trying to flush what is
/// buffered (a peer that stopped reading would make every flush wait for the timeout).
fn abort(stream: &TcpStream) {
    let _ = stream.shutdown(Shutdown::Both);
}
