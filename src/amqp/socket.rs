//! A connection's socket: the bytes read from it, cut into frames, and the [`Outbox`]
//! written to it. One file descriptor per connection; reading and writing never wait on
//! each other, and an idle connection holds no buffer.

use std::io;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{connection, AMQPClass};
use bytes::BytesMut;
use tokio::net::TcpStream;

use super::failure::Failure;
use super::frames::{self, FRAME_MAX};
use super::outbox::Outbox;

/// The first read of a burst asks for this much; reads that fill it double it.
const MIN_READ: usize = 4 * 1024;

/// The most a single read asks for.
const MAX_READ: usize = 128 * 1024;

/// The socket of one connection.
#[derive(Debug)]
pub(crate) struct Socket {
    /// The TCP stream, shared by reads and writes.
    stream: TcpStream,
    /// Bytes read and not yet taken as frames; empty (with no allocation) when idle.
    input: BytesMut,
    /// How much the next read asks for.
    read_size: usize,
    /// The largest frame accepted, overhead included.
    frame_max: u32,
    /// Bytes read so far (for the heartbeat check).
    read: u64,
    /// What waits to be written.
    outbox: Outbox,
}

impl Socket {
    /// Wraps an accepted stream; frames up to [`FRAME_MAX`] are accepted until tuned.
    pub(crate) fn new(stream: TcpStream) -> Self {
        let _ = stream.set_nodelay(true);
        Socket {
            stream,
            input: BytesMut::new(),
            read_size: MIN_READ,
            frame_max: FRAME_MAX,
            read: 0,
            outbox: Outbox::default(),
        }
    }

    /// Sets the negotiated frame size limit.
    pub(crate) fn set_frame_max(&mut self, frame_max: u32) {
        self.frame_max = frame_max;
    }

    /// Returns the outbox.
    pub(crate) fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Returns the number of bytes read so far.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.read
    }

    /// Returns the number of bytes read and not yet taken as frames.
    pub(crate) fn unread(&self) -> usize {
        self.input.len()
    }

    /// Returns the client's address, if the socket still knows it.
    pub(crate) fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        self.stream.peer_addr().ok()
    }

    /// Returns `true` when no read bytes wait to be taken: the peer has paused (or a frame
    /// is incomplete), a good moment to send batched replies such as publisher confirms.
    pub(crate) fn is_idle(&self) -> bool {
        self.input.is_empty()
    }

    /// Takes the next complete frame from what was read, if there is one.
    ///
    /// # Errors
    ///
    /// As [`frames::split`].
    pub(crate) fn next_frame(&mut self) -> Result<Option<AMQPFrame>, Failure> {
        frames::split(&mut self.input, self.frame_max)
    }

    /// Reads what the socket holds now, without waiting.
    ///
    /// # Errors
    ///
    /// [`Failure::Gone`] when the peer closed or the socket failed.
    pub(crate) fn fill(&mut self) -> Result<(), Failure> {
        loop {
            self.input.reserve(self.read_size);
            let spare = self.input.capacity() - self.input.len();
            match self.stream.try_read_buf(&mut self.input) {
                Ok(0) => return Err(Failure::Gone),
                Ok(n) => {
                    self.read += n as u64;
                    if n == spare {
                        self.read_size = (self.read_size * 2).min(MAX_READ);
                        // At most about one large read waits to be taken: a client that
                        // writes faster than it is served is read no further ahead (and a
                        // blocked publisher's frames stop a read after the alarm).
                        if self.input.len() < MAX_READ {
                            continue;
                        }
                    }
                    if n < self.read_size / 2 {
                        self.read_size = (self.read_size / 2).max(MIN_READ);
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.input.is_empty() {
                        // Idle: give the buffer back until the next burst.
                        self.input = BytesMut::new();
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Failure::Gone),
            }
        }
    }

    /// Writes what the outbox holds, as far as the socket takes it now.
    ///
    /// # Errors
    ///
    /// [`Failure::Gone`] when the socket failed.
    pub(crate) fn flush(&self) -> Result<(), Failure> {
        self.outbox.flush(&self.stream).map_err(|_| Failure::Gone)
    }

    /// Waits until the socket can be read (when `read`) or, while bytes wait in the
    /// outbox, written; then reads or writes what it can.
    ///
    /// # Errors
    ///
    /// [`Failure::Gone`] when the socket failed or the peer closed.
    pub(crate) async fn ready(&mut self, read: bool) -> Result<(), Failure> {
        let write = self.outbox.pending() > 0;
        tokio::select! {
            r = self.stream.readable(), if read => {
                r.map_err(|_| Failure::Gone)?;
                self.fill()
            }
            r = self.stream.writable(), if write => {
                r.map_err(|_| Failure::Gone)?;
                self.flush()
            }
        }
    }

    /// Reads the next frame, writing what the outbox holds meanwhile.
    ///
    /// # Errors
    ///
    /// As [`next_frame`](Self::next_frame) and [`ready`](Self::ready).
    pub(crate) async fn read_frame(&mut self) -> Result<AMQPFrame, Failure> {
        loop {
            if let Some(frame) = self.next_frame()? {
                return Ok(frame);
            }
            self.flush()?;
            self.ready(true).await?;
        }
    }

    /// Reads the 8-byte protocol header.
    ///
    /// # Errors
    ///
    /// [`Failure::Gone`] when the peer closed or the socket failed first.
    pub(crate) async fn read_protocol_header(&mut self) -> Result<[u8; 8], Failure> {
        while self.input.len() < 8 {
            self.flush()?;
            self.ready(true).await?;
        }
        let head = self.input.split_to(8);
        Ok(head[..].try_into().unwrap_or_default())
    }

    /// After the server sent `connection.close`: writes it, then reads and drops whatever
    /// the client sends until its `connection.close-ok` (or a `connection.close` of its
    /// own), as RabbitMQ does, so that a client still writing is not cut off (and reset)
    /// before it reads why. Bytes that do not parse as frames are dropped unparsed.
    ///
    /// # Errors
    ///
    /// [`Failure::Gone`] when the peer closed or the socket failed.
    pub(crate) async fn discard_until_close(&mut self) -> Result<(), Failure> {
        loop {
            match self.next_frame() {
                Ok(Some(AMQPFrame::Method(
                    0,
                    AMQPClass::Connection(
                        connection::AMQPMethod::CloseOk(_) | connection::AMQPMethod::Close(_),
                    ),
                ))) => {
                    return self.flush_all().await;
                }
                Ok(Some(_)) => continue,
                Ok(None) => {}
                // Out of step with the frames: drop everything unread from now on.
                Err(_) => loop {
                    self.input.clear();
                    self.flush()?;
                    self.ready(true).await?;
                },
            }
            self.flush()?;
            self.ready(true).await?;
        }
    }

    /// Writes everything the outbox holds.
    ///
    /// # Errors
    ///
    /// [`Failure::Gone`] when the socket failed.
    pub(crate) async fn flush_all(&mut self) -> Result<(), Failure> {
        self.flush()?;
        while self.outbox.pending() > 0 {
            self.ready(false).await?;
        }
        Ok(())
    }
}
