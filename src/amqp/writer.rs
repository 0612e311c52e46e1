//! The writer thread of a connection: the only code that writes to the socket. It batches
//! frames into few syscalls and sends heartbeats when the connection has been quiet for
//! half the negotiated interval.

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
    loop {
        let first = match heartbeat {
            Some(interval) => match rx.recv_timeout(interval) {
                Ok(item) => item,
                Err(RecvTimeoutError::Timeout) => Outgoing::Frames(frames::heartbeat()),
                Err(RecvTimeoutError::Disconnected) => break,
            },
            None => match rx.recv() {
                Ok(item) => item,
                Err(_) => break,
            },
        };
        // Write everything already queued before one flush.
        let mut next = Some(first);
        let mut close = false;
        while let Some(item) = next {
            match item {
                Outgoing::Frames(bytes) => {
                    if out.write_all(&bytes).is_err() {
                        close = true;
                        break;
                    }
                }
                Outgoing::Heartbeat(interval) => heartbeat = Some(interval),
                Outgoing::Close => {
                    close = true;
                    break;
                }
            }
            next = rx.try_recv().ok();
        }
        if out.flush().is_err() || close {
            break;
        }
    }
    let _ = out.flush();
    drop(out);
    // Also wakes the reader thread, which then sees the end of the stream.
    let _ = stream.shutdown(Shutdown::Both);
}
