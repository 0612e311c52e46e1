//! A minimal blocking AMQP 0-9-1 client over a `TcpStream`, on `amq-protocol`'s frame codec:
//! just enough for `warren-bench wire` to publish with confirms and consume with acks, the
//! same bytes to Warren and to RabbitMQ.
//!
//! One connection, one channel (1). Writes are buffered and sent on [`Client::flush`] or
//! before waiting for an answer; a `connection.close` or `channel.close` from the server
//! becomes an error.

// basic.get serves tests/wire_server_bin.rs, which includes this client (#[path]).
#[allow(dead_code)]
mod get;
mod topology;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use amq_protocol::frame::{gen_frame, parse_frame, AMQPContentHeader, AMQPFrame, WriteContext};
use amq_protocol::protocol::BasicProperties;
use amq_protocol::protocol::{basic, channel, confirm, connection, queue, AMQPClass};
use amq_protocol::types::{FieldTable, LongString};

/// The channel every call uses.
const CHANNEL: u16 = 1;
/// The largest frame asked for; the server may lower it in `connection.tune`.
const FRAME_MAX: u32 = 131_072;
/// Bytes of a frame that are not payload: type, channel, size and end octet.
const FRAME_OVERHEAD: usize = 8;
/// How long to wait for a server before calling it gone.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A connected client with channel 1 open.
#[derive(Debug)]
pub(crate) struct Client {
    /// The socket.
    stream: TcpStream,
    /// Bytes read but not yet parsed start at `read_at`.
    inbox: Vec<u8>,
    /// Where the unparsed bytes of `inbox` start.
    read_at: usize,
    /// Encoded frames not yet written.
    outbox: Vec<u8>,
    /// The negotiated frame size limit.
    frame_max: usize,
    /// The publisher sequence number of the last publish (confirm mode).
    published: u64,
    /// The highest sequence number confirmed so far.
    confirmed: u64,
}

/// An error with a message.
fn other(message: String) -> io::Error {
    io::Error::other(message)
}

impl Client {
    /// Connects as guest/guest to vhost `/` and opens channel 1.
    pub(crate) fn connect(addr: &str) -> io::Result<Client> {
        Client::connect_as(addr, "guest", "guest")
    }

    /// Connects as `user` to vhost `/` and opens channel 1.
    pub(crate) fn connect_as(addr: &str, user: &str, password: &str) -> io::Result<Client> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        let mut client = Client {
            stream,
            inbox: Vec::with_capacity(1 << 16),
            read_at: 0,
            outbox: Vec::with_capacity(1 << 16),
            frame_max: FRAME_MAX as usize,
            published: 0,
            confirmed: 0,
        };
        client.stream.write_all(b"AMQP\x00\x00\x09\x01")?;
        client.expect(|m| matches!(m, AMQPClass::Connection(connection::AMQPMethod::Start(_))))?;
        let start_ok = connection::StartOk {
            client_properties: FieldTable::default(),
            mechanism: "PLAIN".into(),
            response: LongString::from(format!("\0{user}\0{password}").as_bytes()),
            locale: "en_US".into(),
        };
        client.method(AMQPClass::Connection(connection::AMQPMethod::StartOk(
            start_ok,
        )))?;
        let tune = match client.next_method()? {
            AMQPClass::Connection(connection::AMQPMethod::Tune(tune)) => tune,
            other => return Err(unexpected("connection.tune", &other)),
        };
        let frame_max = match tune.frame_max {
            0 => FRAME_MAX,
            n => n.min(FRAME_MAX),
        };
        client.frame_max = frame_max as usize;
        let tune_ok = connection::TuneOk {
            channel_max: tune.channel_max,
            frame_max,
            heartbeat: 0,
        };
        client.method(AMQPClass::Connection(connection::AMQPMethod::TuneOk(
            tune_ok,
        )))?;
        let open = connection::Open {
            virtual_host: "/".into(),
        };
        client.method(AMQPClass::Connection(connection::AMQPMethod::Open(open)))?;
        client.expect(|m| matches!(m, AMQPClass::Connection(connection::AMQPMethod::OpenOk(_))))?;
        client.method(AMQPClass::Channel(channel::AMQPMethod::Open(
            channel::Open {},
        )))?;
        client.expect(|m| matches!(m, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))))?;
        Ok(client)
    }

    /// Declares a queue (not exclusive, so another connection may consume it).
    pub(crate) fn queue_declare(&mut self, name: &str, durable: bool) -> io::Result<()> {
        let declare = queue::Declare {
            queue: name.into(),
            durable,
            ..queue::Declare::default()
        };
        self.method(AMQPClass::Queue(queue::AMQPMethod::Declare(declare)))?;
        self.expect(|m| matches!(m, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_))))
    }

    /// Deletes a queue.
    pub(crate) fn queue_delete(&mut self, name: &str) -> io::Result<()> {
        let delete = queue::Delete {
            queue: name.into(),
            ..queue::Delete::default()
        };
        self.method(AMQPClass::Queue(queue::AMQPMethod::Delete(delete)))?;
        self.expect(|m| matches!(m, AMQPClass::Queue(queue::AMQPMethod::DeleteOk(_))))
    }

    /// Turns on publisher confirms.
    pub(crate) fn confirm_select(&mut self) -> io::Result<()> {
        let select = confirm::Select { nowait: false };
        self.method(AMQPClass::Confirm(confirm::AMQPMethod::Select(select)))?;
        self.expect(|m| matches!(m, AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_))))
    }

    /// Queues one publish to the default exchange (sent at the next flush or wait).
    pub(crate) fn publish(&mut self, queue: &str, body: &[u8], persistent: bool) -> io::Result<()> {
        self.publish_to("", queue, body, persistent)
    }

    /// Queues one publish to `exchange` with `routing_key` (sent at the next flush or wait).
    pub(crate) fn publish_to(
        &mut self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        persistent: bool,
    ) -> io::Result<()> {
        let publish = basic::Publish {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            ..basic::Publish::default()
        };
        self.encode(&AMQPFrame::Method(
            CHANNEL,
            AMQPClass::Basic(basic::AMQPMethod::Publish(publish)),
        ))?;
        let header = AMQPContentHeader {
            class_id: 60,
            body_size: body.len() as u64,
            properties: BasicProperties::default().with_delivery_mode(if persistent {
                2
            } else {
                1
            }),
        };
        self.encode(&AMQPFrame::Header(CHANNEL, header))?;
        for chunk in body.chunks(self.frame_max - FRAME_OVERHEAD) {
            self.encode(&AMQPFrame::Body(CHANNEL, chunk.to_vec()))?;
        }
        self.published += 1;
        Ok(())
    }

    /// Sends what is buffered and waits until every publish so far is confirmed.
    pub(crate) fn wait_for_confirms(&mut self) -> io::Result<()> {
        self.flush()?;
        while self.confirmed < self.published {
            match self.next_method()? {
                AMQPClass::Basic(basic::AMQPMethod::Ack(ack)) => {
                    self.confirmed = self.confirmed.max(ack.delivery_tag);
                }
                AMQPClass::Basic(basic::AMQPMethod::Nack(nack)) => {
                    return Err(other(format!("publish {} nacked", nack.delivery_tag)));
                }
                other => return Err(unexpected("basic.ack", &other)),
            }
        }
        Ok(())
    }

    /// Sets the prefetch count of the channel.
    pub(crate) fn basic_qos(&mut self, prefetch_count: u16) -> io::Result<()> {
        let qos = basic::Qos {
            prefetch_count,
            global: false,
        };
        self.method(AMQPClass::Basic(basic::AMQPMethod::Qos(qos)))?;
        self.expect(|m| matches!(m, AMQPClass::Basic(basic::AMQPMethod::QosOk(_))))
    }

    /// Consumes `count` deliveries from `queue`, then cancels the consumer. With
    /// `Some(ack_every)` acks are manual, with `multiple` every `ack_every` deliveries and at
    /// the end; with `None` the consumer is `no_ack`.
    pub(crate) fn consume(
        &mut self,
        queue: &str,
        count: u64,
        ack_every: Option<u64>,
    ) -> io::Result<()> {
        let consume = basic::Consume {
            queue: queue.into(),
            consumer_tag: "bench".into(),
            no_ack: ack_every.is_none(),
            ..basic::Consume::default()
        };
        self.method(AMQPClass::Basic(basic::AMQPMethod::Consume(consume)))?;
        self.expect(|m| matches!(m, AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_))))?;
        let mut received = 0;
        while received < count {
            let tag = match self.next_method()? {
                AMQPClass::Basic(basic::AMQPMethod::Deliver(d)) => d.delivery_tag,
                other => return Err(unexpected("basic.deliver", &other)),
            };
            self.skip_content()?;
            received += 1;
            let Some(every) = ack_every else { continue };
            if received.is_multiple_of(every) || received == count {
                let ack = basic::Ack {
                    delivery_tag: tag,
                    multiple: true,
                };
                self.encode(&AMQPFrame::Method(
                    CHANNEL,
                    AMQPClass::Basic(basic::AMQPMethod::Ack(ack)),
                ))?;
                self.flush()?;
            }
        }
        let cancel = basic::Cancel {
            consumer_tag: "bench".into(),
            nowait: false,
        };
        self.method(AMQPClass::Basic(basic::AMQPMethod::Cancel(cancel)))?;
        loop {
            match self.next_method()? {
                AMQPClass::Basic(basic::AMQPMethod::CancelOk(_)) => return Ok(()),
                // A delivery already on its way: left unacked, it goes back when we close.
                AMQPClass::Basic(basic::AMQPMethod::Deliver(_)) => self.skip_content()?,
                other => return Err(unexpected("basic.cancel-ok", &other)),
            }
        }
    }

    /// Closes the connection politely.
    pub(crate) fn close(mut self) -> io::Result<()> {
        let close = connection::Close {
            reply_code: 200,
            reply_text: "done".into(),
            class_id: 0,
            method_id: 0,
        };
        self.encode(&AMQPFrame::Method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Close(close)),
        ))?;
        self.flush()?;
        loop {
            match self.frame()? {
                AMQPFrame::Method(_, AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))) => {
                    return Ok(())
                }
                _ => continue,
            }
        }
    }

    /// Reads a content header and its body frames.
    fn skip_content(&mut self) -> io::Result<()> {
        let mut left = match self.frame()? {
            AMQPFrame::Header(_, header) => header.body_size,
            other => return Err(other_frame("content header", &other)),
        };
        while left > 0 {
            match self.frame()? {
                AMQPFrame::Body(_, body) => left = left.saturating_sub(body.len() as u64),
                other => return Err(other_frame("content body", &other)),
            }
        }
        Ok(())
    }

    /// Sends a method on the right channel (0 for the connection class) and flushes.
    fn method(&mut self, method: AMQPClass) -> io::Result<()> {
        let channel = match method {
            AMQPClass::Connection(_) => 0,
            _ => CHANNEL,
        };
        self.encode(&AMQPFrame::Method(channel, method))?;
        self.flush()
    }

    /// Appends a frame to the outbox.
    fn encode(&mut self, frame: &AMQPFrame) -> io::Result<()> {
        let out = std::mem::take(&mut self.outbox);
        let written = gen_frame(frame)(WriteContext::from(out))
            .map_err(|e| other(format!("encoding a frame: {e:?}")))?;
        self.outbox = written.into_inner().0;
        Ok(())
    }

    /// Writes the outbox.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.stream.write_all(&self.outbox)?;
        self.outbox.clear();
        Ok(())
    }

    /// Flushes, then reads the next method, which `is_expected` must accept.
    fn expect(&mut self, is_expected: impl Fn(&AMQPClass) -> bool) -> io::Result<()> {
        let method = self.next_method()?;
        if is_expected(&method) {
            Ok(())
        } else {
            Err(unexpected("another method", &method))
        }
    }

    /// Flushes, then reads the next method frame; a close from the server is an error.
    fn next_method(&mut self) -> io::Result<AMQPClass> {
        self.flush()?;
        loop {
            match self.frame()? {
                AMQPFrame::Method(_, AMQPClass::Connection(connection::AMQPMethod::Close(c))) => {
                    return Err(other(format!("connection closed: {}", c.reply_text)))
                }
                AMQPFrame::Method(_, AMQPClass::Channel(channel::AMQPMethod::Close(c))) => {
                    return Err(other(format!("channel closed: {}", c.reply_text)))
                }
                AMQPFrame::Method(_, method) => return Ok(method),
                AMQPFrame::Heartbeat => {}
                other => return Err(other_frame("a method", &other)),
            }
        }
    }

    /// Reads one frame.
    fn frame(&mut self) -> io::Result<AMQPFrame> {
        loop {
            let unread = &self.inbox[self.read_at..];
            match parse_frame(unread) {
                Ok((rest, frame)) => {
                    self.read_at += unread.len() - rest.len();
                    return Ok(frame);
                }
                Err(e) if !e.is_incomplete() => {
                    return Err(other(format!("bad frame from the server: {e:?}")))
                }
                Err(_) => {}
            }
            self.inbox.drain(..self.read_at);
            self.read_at = 0;
            let len = self.inbox.len();
            self.inbox.resize(len + (1 << 16), 0);
            // A signal may interrupt the read (EINTR): read again rather than fail.
            let read = loop {
                match self.stream.read(&mut self.inbox[len..]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    read => break read,
                }
            };
            let n = match read {
                Ok(n) => n,
                Err(e) => {
                    self.inbox.truncate(len);
                    return Err(e);
                }
            };
            self.inbox.truncate(len + n);
            if n == 0 {
                return Err(other("the server closed the connection".into()));
            }
        }
    }
}

/// The error for an unexpected method.
fn unexpected(wanted: &str, got: &AMQPClass) -> io::Error {
    let name = format!("{got:?}");
    let name: String = name.chars().take(120).collect();
    other(format!("expected {wanted}, got {name}"))
}

/// The error for an unexpected frame.
fn other_frame(wanted: &str, got: &AMQPFrame) -> io::Error {
    let name = format!("{got:?}");
    let name: String = name.chars().take(120).collect();
    other(format!("expected {wanted}, got {name}"))
}
