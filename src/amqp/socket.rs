//! A connection's socket: the bytes read from it, cut into frames, and the [`Outbox`]
//! written to it. The stream is a plain TCP connection or a TLS session on one (any
//! [`Stream`]); the same code serves both. Reading and writing never wait on each other,
//! and an idle connection holds no buffer.

use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{connection, AMQPClass};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::failure::Failure;
use super::frames::{self, FRAME_MAX};
use super::outbox::Outbox;
use super::transport::Stream;

/// The first read of a burst asks for this much; reads that fill it double it.
const MIN_READ: usize = 4 * 1024;

/// The most a single read asks for.
const MAX_READ: usize = 128 * 1024;

/// The socket of one connection.
pub(crate) struct Socket {
    /// The stream, shared by reads and writes.
    stream: Box<dyn Stream>,
    /// Bytes read and not yet taken as frames; empty (with no allocation) when idle.
    input: BytesMut,
    /// How much the next read asks for.
    read_size: usize,
    /// The largest frame accepted, overhead included.
    frame_max: u32,
    /// Bytes read so far (for the heartbeat check and the management API).
    read: Arc<AtomicU64>,
    /// What waits to be written.
    outbox: Outbox,
    /// Bytes were handed to the stream since it was last flushed: a TLS session may hold
    /// records it has not sent yet (a TCP stream holds none).
    unflushed: bool,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("read", &self.bytes_read())
            .field("pending", &self.outbox.pending())
            .finish_non_exhaustive()
    }
}

impl Socket {
    /// Wraps an opened stream; frames up to [`FRAME_MAX`] are accepted until tuned.
    pub(crate) fn new(stream: Box<dyn Stream>) -> Self {
        Socket {
            stream,
            input: BytesMut::new(),
            read_size: MIN_READ,
            frame_max: FRAME_MAX,
            read: Arc::default(),
            outbox: Outbox::default(),
            unflushed: false,
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
        self.read.load(Ordering::Relaxed)
    }

    /// Returns the counter of bytes read, shared.
    pub(crate) fn read_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.read)
    }

    /// Returns the number of bytes read and not yet taken as frames.
    pub(crate) fn unread(&self) -> usize {
        self.input.len()
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

    /// Returns the size of the complete frame at the front of what was read, if there is
    /// one, for [`peek`](Self::peek) and then [`skip`](Self::skip) or
    /// [`take_frame`](Self::take_frame).
    ///
    /// # Errors
    ///
    /// As [`frames::complete`].
    pub(crate) fn frame_len(&mut self) -> Result<Option<usize>, Failure> {
        frames::complete(&mut self.input, self.frame_max)
    }

    /// Returns the first `len` bytes read and not yet taken (`len` from
    /// [`frame_len`](Self::frame_len)).
    pub(crate) fn peek(&self, len: usize) -> &[u8] {
        &self.input[..len.min(self.input.len())]
    }

    /// Drops the first `len` bytes read (a frame handled in place).
    pub(crate) fn skip(&mut self, len: usize) {
        self.input.advance(len.min(self.input.len()));
    }

    /// Takes the frame of `len` bytes at the front of what was read (`len` from
    /// [`frame_len`](Self::frame_len)).
    ///
    /// # Errors
    ///
    /// As [`frames::decode`].
    pub(crate) fn take_frame(&mut self, len: usize) -> Result<AMQPFrame, Failure> {
        let frame = frames::decode(self.peek(len));
        self.skip(len);
        frame
    }

    /// Returns `true` while bytes wait to be written: in the outbox, or in the stream
    /// (TLS records not sent yet).
    pub(crate) fn wants_write(&self) -> bool {
        self.unflushed || self.outbox.pending() > 0
    }

    /// Reads what the stream holds, as long as it has more; `Pending` (with `cx` woken
    /// when there is more) if it had nothing.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Failure>> {
        let mut got = false;
        loop {
            self.input.reserve(self.read_size);
            let spare = self.input.capacity() - self.input.len();
            let polled = pin!(self.stream.read_buf(&mut self.input)).poll(cx);
            match polled {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(Failure::Gone)),
                Poll::Ready(Ok(n)) => {
                    got = true;
                    self.read.fetch_add(n as u64, Ordering::Relaxed);
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
                    return Poll::Ready(Ok(()));
                }
                Poll::Pending => {
                    if self.input.is_empty() {
                        // Idle: give the buffer back until the next burst.
                        self.input = BytesMut::new();
                    }
                    return if got {
                        Poll::Ready(Ok(()))
                    } else {
                        Poll::Pending
                    };
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(_)) => return Poll::Ready(Err(Failure::Gone)),
            }
        }
    }

    /// Writes what the outbox holds, as far as the stream takes it now, then flushes the
    /// stream. Returns `true` if it made progress (wrote bytes, or finished a flush).
    fn write_out(&mut self, cx: &mut Context<'_>) -> Result<bool, Failure> {
        let stream = &mut self.stream;
        let before = self.outbox.written();
        self.outbox
            .flush(
                |bytes| match Pin::new(&mut **stream).poll_write(cx, bytes) {
                    Poll::Ready(written) => written,
                    Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
                },
            )
            .map_err(|_| Failure::Gone)?;
        let wrote = self.outbox.written() != before;
        self.unflushed |= wrote;
        if !self.unflushed {
            return Ok(wrote);
        }
        match Pin::new(&mut **stream).poll_flush(cx) {
            Poll::Ready(Ok(())) => {
                self.unflushed = false;
                Ok(true)
            }
            Poll::Ready(Err(_)) => Err(Failure::Gone),
            Poll::Pending => Ok(wrote),
        }
    }

    /// Writes what the outbox holds, as far as the stream takes it now, without waiting.
    ///
    /// # Errors
    ///
    /// [`Failure::Gone`] when the socket failed.
    pub(crate) fn flush(&mut self) -> Result<(), Failure> {
        if !self.wants_write() {
            return Ok(());
        }
        // Nothing waits here: what is left is written when `ready` next polls the
        // stream with the task's own waker.
        self.write_out(&mut Context::from_waker(Waker::noop()))
            .map(drop)
    }

    /// Waits until the socket can be read (when `read`) or, while bytes wait to be
    /// written, written; then reads or writes what it can.
    ///
    /// # Errors
    ///
    /// [`Failure::Gone`] when the socket failed or the peer closed.
    pub(crate) async fn ready(&mut self, read: bool) -> Result<(), Failure> {
        std::future::poll_fn(|cx| {
            let wrote = self.wants_write() && self.write_out(cx)?;
            if read {
                if let Poll::Ready(filled) = self.poll_fill(cx) {
                    return Poll::Ready(filled);
                }
            }
            if wrote {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        })
        .await
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
        while self.wants_write() {
            self.ready(false).await?;
        }
        Ok(())
    }

    /// Ends the stream after what was written: a TLS session sends its `close_notify`
    /// (without which clients such as lapin take the end for a truncation), then TCP
    /// closes its sending side.
    pub(crate) async fn shutdown(&mut self) {
        let _ = self.stream.shutdown().await;
    }
}
