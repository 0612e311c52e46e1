//! One client connection: the handshake, then a loop that reads frames and hands them to
//! channels, and the closing sequences (`channel.close`, `connection.close`) that turn
//! failures into the codes and texts RabbitMQ sends.

use std::collections::HashMap;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{channel, connection, AMQPClass};

use super::channel::{Link, WireChannel};
use super::convert::short_string;
use super::failure::{Failure, MethodId};
use super::frames::{self, FrameReader};
use super::handshake::{self, Negotiated};
use super::server::WireOptions;
use super::writer::{self, Outbox};
use crate::{Broker, Connection, ReplyCode};

/// How long the opening handshake may take (RabbitMQ's `handshake_timeout`).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait for `connection.close-ok` after the server closed.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// A channel number's state.
#[derive(Debug)]
enum Slot {
    /// Open and working.
    Open(Box<WireChannel>),
    /// The server sent `channel.close` and waits for `close-ok`; other frames are dropped.
    Closing,
}

/// What the frame loop does next.
enum Next {
    /// Read another frame.
    Continue,
    /// The client closed the connection and got its `close-ok`.
    Closed,
}

/// An open connection after the handshake.
struct Session {
    /// The session connection; dropping it deletes exclusive queues.
    connection: Connection,
    /// What channels share.
    link: Link,
    /// The highest channel number allowed.
    channel_max: u16,
    /// Channels by number.
    channels: HashMap<u16, Slot>,
}

/// Serves one TCP connection until it closes. Never panics on bad input; every failure
/// ends with the socket closed and the session connection dropped, which requeues
/// unacknowledged messages and deletes exclusive queues.
///
/// When `stopping` is set and the read side of the socket is shut down, the client is told
/// with `connection.close` 320 CONNECTION_FORCED, as RabbitMQ does when it shuts down.
pub(crate) fn serve(
    stream: TcpStream,
    broker: &Broker,
    options: &WireOptions,
    stopping: &AtomicBool,
) {
    let _ = stream.set_nodelay(true);
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let Ok((outbox, writer)) = writer::spawn(write_half) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT));
    let mut reader = FrameReader::new(stream);
    match handshake::negotiate(&mut reader, &outbox, broker, options) {
        Ok(negotiated) => run(&mut reader, &outbox, negotiated, stopping),
        Err(failure) => fail(&mut reader, &outbox, failure),
    }
    outbox.close();
    let _ = writer.join();
}

fn run(
    reader: &mut FrameReader<TcpStream>,
    outbox: &Outbox,
    negotiated: Negotiated,
    stopping: &AtomicBool,
) {
    // A peer that sends nothing, not even heartbeats, for two intervals is gone.
    let timeout = (negotiated.heartbeat > 0)
        .then(|| Duration::from_secs(2 * u64::from(negotiated.heartbeat)));
    let _ = reader.get_ref().set_read_timeout(timeout);
    let mut session = Session {
        connection: negotiated.connection,
        link: Link {
            outbox: outbox.clone(),
            frame_max: negotiated.frame_max,
            notify_cancel: negotiated.notify_cancel,
        },
        channel_max: negotiated.channel_max,
        channels: HashMap::new(),
    };
    let outcome = loop {
        let step = reader.read_frame().and_then(|frame| session.frame(frame));
        match step {
            Ok(Next::Continue) => {}
            Ok(Next::Closed) => break None,
            Err(failure) => break Some(failure),
        }
        if reader.is_idle() {
            if let Err(failure) = session.send_confirms() {
                break Some(failure);
            }
        }
    };
    if let Some(mut failure) = outcome {
        if matches!(failure, Failure::Gone) && stopping.load(Ordering::Acquire) {
            failure = Failure::hard(
                ReplyCode::CONNECTION_FORCED,
                "broker forced connection closure with reason 'shutdown'",
            );
        } else if matches!(failure, Failure::Gone) {
            // The writer may be stuck on a peer that stopped reading, with consumer threads
            // waiting on the writer: closing the socket frees them all before they are joined.
            let _ = reader.get_ref().shutdown(Shutdown::Both);
        }
        session.shutdown();
        fail(reader, outbox, failure);
    }
}

impl Session {
    fn frame(&mut self, frame: AMQPFrame) -> Result<Next, Failure> {
        match frame {
            AMQPFrame::Heartbeat => Ok(Next::Continue),
            AMQPFrame::Method(0, method) => self.connection_method(method),
            AMQPFrame::Method(id, method) => self.channel_method(id, method),
            AMQPFrame::Header(id, header) => self.content(id, |ch| ch.header(header)),
            AMQPFrame::Body(id, body) => self.content(id, |ch| ch.body(body)),
            AMQPFrame::InvalidHeartbeat(_) => Err(Failure::hard(
                ReplyCode::FRAME_ERROR,
                "heartbeat frame on a non-zero channel",
            )),
            AMQPFrame::ProtocolHeader(_) => Err(Failure::hard(
                ReplyCode::FRAME_ERROR,
                "protocol header in an open connection",
            )),
        }
    }

    fn connection_method(&mut self, method: AMQPClass) -> Result<Next, Failure> {
        let id = MethodId::of(&method);
        match method {
            AMQPClass::Connection(connection::AMQPMethod::Close(_)) => {
                self.shutdown();
                let ok = connection::AMQPMethod::CloseOk(connection::CloseOk {});
                self.link
                    .outbox
                    .send(frames::method(0, AMQPClass::Connection(ok)));
                Ok(Next::Closed)
            }
            AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)) => Ok(Next::Closed),
            _ => Err(
                Failure::hard(ReplyCode::COMMAND_INVALID, "unexpected method on channel 0").at(id),
            ),
        }
    }

    fn channel_method(&mut self, id: u16, method: AMQPClass) -> Result<Next, Failure> {
        let method_id = MethodId::of(&method);
        match (self.channels.get_mut(&id), method) {
            (None, AMQPClass::Channel(channel::AMQPMethod::Open(_))) => self.open(id, method_id)?,
            (None, _) => {
                return Err(
                    Failure::hard(ReplyCode::CHANNEL_ERROR, "expected 'channel.open'")
                        .at(method_id),
                )
            }
            (Some(Slot::Closing), AMQPClass::Channel(channel::AMQPMethod::CloseOk(_))) => {
                self.channels.remove(&id);
            }
            (Some(Slot::Closing), AMQPClass::Channel(channel::AMQPMethod::Close(_))) => {
                self.channels.remove(&id);
                self.send_close_ok(id);
            }
            (Some(Slot::Closing), _) => {}
            (Some(Slot::Open(_)), AMQPClass::Channel(channel::AMQPMethod::Open(_))) => {
                return Err(
                    Failure::hard(ReplyCode::CHANNEL_ERROR, "second 'channel.open' seen")
                        .at(method_id),
                )
            }
            (Some(Slot::Open(_)), AMQPClass::Channel(channel::AMQPMethod::Close(_))) => {
                if let Some(Slot::Open(ch)) = self.channels.remove(&id) {
                    ch.shutdown();
                }
                self.send_close_ok(id);
            }
            (Some(Slot::Open(_)), AMQPClass::Channel(channel::AMQPMethod::CloseOk(_))) => {}
            (Some(Slot::Open(ch)), method) => {
                let result = ch.method(method);
                self.settle(id, result)?;
            }
        }
        Ok(Next::Continue)
    }

    fn content(
        &mut self,
        id: u16,
        handle: impl FnOnce(&mut WireChannel) -> Result<(), Failure>,
    ) -> Result<Next, Failure> {
        match self.channels.get_mut(&id) {
            Some(Slot::Open(ch)) => {
                let result = handle(ch);
                self.settle(id, result)?;
            }
            Some(Slot::Closing) => {}
            None => {
                return Err(Failure::hard(
                    ReplyCode::CHANNEL_ERROR,
                    "content frame on a channel that is not open",
                ))
            }
        }
        Ok(Next::Continue)
    }

    fn open(&mut self, id: u16, method: MethodId) -> Result<(), Failure> {
        if id > self.channel_max {
            return Err(Failure::hard(
                ReplyCode::CHANNEL_ERROR,
                format_args!(
                    "channel number {id} is above channel_max {}",
                    self.channel_max
                ),
            )
            .at(method));
        }
        let session_channel = self
            .connection
            .open_channel()
            .map_err(|e| Failure::from_error(&e, method))?;
        let ch = WireChannel::new(id, session_channel, self.link.clone());
        self.channels.insert(id, Slot::Open(Box::new(ch)));
        let ok = channel::AMQPMethod::OpenOk(channel::OpenOk {});
        self.link
            .outbox
            .send(frames::method(id, AMQPClass::Channel(ok)));
        Ok(())
    }

    /// Turns a soft failure into `channel.close`; passes hard ones on.
    fn settle(&mut self, id: u16, result: Result<(), Failure>) -> Result<(), Failure> {
        match result {
            Err(Failure::Channel { code, text, method }) => {
                if let Some(Slot::Open(ch)) = self.channels.insert(id, Slot::Closing) {
                    ch.shutdown();
                }
                let close = channel::Close {
                    reply_code: code.0,
                    reply_text: short_string(&text),
                    class_id: method.class,
                    method_id: method.method,
                };
                let close = AMQPClass::Channel(channel::AMQPMethod::Close(close));
                self.link.outbox.send(frames::method(id, close));
                Ok(())
            }
            other => other,
        }
    }

    fn send_close_ok(&self, id: u16) {
        let ok = channel::AMQPMethod::CloseOk(channel::CloseOk {});
        self.link
            .outbox
            .send(frames::method(id, AMQPClass::Channel(ok)));
    }

    /// Sends the confirms every channel owes. A channel whose confirms fail is closed.
    fn send_confirms(&mut self) -> Result<(), Failure> {
        let ids: Vec<u16> = self.channels.keys().copied().collect();
        for id in ids {
            let Some(Slot::Open(ch)) = self.channels.get_mut(&id) else {
                continue;
            };
            match ch.take_confirms() {
                Ok(Some(ack)) => {
                    self.link.outbox.send(ack);
                }
                Ok(None) => {}
                Err(failure) => self.settle(id, Err(failure))?,
            }
        }
        Ok(())
    }

    /// Closes every channel: consumers stop, unacknowledged messages go back.
    fn shutdown(&mut self) {
        // Publishes taken before the end are confirmed if they can be; a failure here
        // changes nothing, as everything closes anyway.
        let _ = self.send_confirms();
        for (_, slot) in self.channels.drain() {
            if let Slot::Open(ch) = slot {
                ch.shutdown();
            }
        }
        self.connection.close();
    }
}

/// Ends a connection after a failure: a hard error is reported with `connection.close`,
/// then the server waits briefly for `close-ok`; an I/O failure just closes.
fn fail(reader: &mut FrameReader<TcpStream>, outbox: &Outbox, failure: Failure) {
    let (code, text, method) = match failure {
        Failure::Gone => return,
        Failure::Channel { code, text, method } | Failure::Connection { code, text, method } => {
            (code, text, method)
        }
    };
    let close = connection::Close {
        reply_code: code.0,
        reply_text: short_string(&text),
        class_id: method.class,
        method_id: method.method,
    };
    outbox.send(frames::method(
        0,
        AMQPClass::Connection(connection::AMQPMethod::Close(close)),
    ));
    let _ = reader.get_ref().set_read_timeout(Some(CLOSE_TIMEOUT));
    while let Ok(frame) = reader.read_frame() {
        if let AMQPFrame::Method(0, AMQPClass::Connection(m)) = frame {
            if matches!(
                m,
                connection::AMQPMethod::CloseOk(_) | connection::AMQPMethod::Close(_)
            ) {
                break;
            }
        }
    }
}
