//! A minimal hand-driven AMQP client for the wire tests: it writes frames (or any bytes) and
//! reads what the server says, one frame at a time. `RawClient::open` runs the whole
//! handshake in one write; the pieces (`connect`, [`start_ok`], `next_method`, ...) let a
//! test run a handshake of its own, step by step.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use amq_protocol::frame::{gen_frame, parse_frame, AMQPContentHeader, AMQPFrame, WriteContext};
use amq_protocol::protocol::{basic, channel, connection, AMQPClass, BasicProperties};
use amq_protocol::types::{AMQPValue, FieldTable, LongString};

/// The frame size [`handshake_bytes`] asks for.
pub const FRAME_MAX: u32 = 131_072;

/// A minimal hand-driven AMQP client.
pub struct RawClient {
    /// The socket (clone it to write from another thread).
    pub stream: TcpStream,
    /// Bytes read and not yet taken as frames.
    buf: Vec<u8>,
}

impl RawClient {
    /// Connects, with no handshake; reads time out after 30 s.
    pub fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).expect("connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        RawClient {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connects and sends the whole handshake at once (see [`handshake_bytes`]), then waits
    /// for open-ok.
    pub fn open(addr: SocketAddr) -> RawClient {
        RawClient::open_announcing(addr, &[])
    }

    /// As [`open`](Self::open), announcing the client `capabilities` (e.g.
    /// `connection.blocked`).
    pub fn open_announcing(addr: SocketAddr, capabilities: &[&str]) -> RawClient {
        let mut client = RawClient::connect(addr);
        client.send_bytes(&handshake_bytes_announcing(capabilities));
        loop {
            match client.method() {
                Some((0, AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)))) => {
                    return client
                }
                Some(_) => {}
                None => panic!("the server closed during the handshake"),
            }
        }
    }

    /// Sends bytes (encoded frames, or anything) to the server.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("writes");
    }

    /// Sends one frame.
    pub fn send_frame(&mut self, frame: &AMQPFrame) {
        self.send_bytes(&encode_frame(frame));
    }

    /// Sends one method on `channel`.
    pub fn send_method(&mut self, channel: u16, method: AMQPClass) {
        self.send_frame(&AMQPFrame::Method(channel, method));
    }

    /// Sends one connection method (channel 0).
    pub fn send_connection(&mut self, method: connection::AMQPMethod) {
        self.send_method(0, AMQPClass::Connection(method));
    }

    /// Reads one frame; `None` at the end of the stream (or on a read error or timeout).
    pub fn frame(&mut self) -> Option<AMQPFrame> {
        loop {
            if let Ok((rest, frame)) = parse_frame(self.buf.as_slice()) {
                let used = self.buf.len() - rest.len();
                self.buf.drain(..used);
                return Some(frame);
            }
            let mut chunk = vec![0; 256 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads the next method frame, skipping every other frame (content, heartbeats);
    /// `None` at the end of the stream.
    pub fn method(&mut self) -> Option<(u16, AMQPClass)> {
        loop {
            match self.frame()? {
                AMQPFrame::Method(ch, m) => return Some((ch, m)),
                _ => continue,
            }
        }
    }

    /// Reads the next frame, which must be a method (heartbeats are skipped).
    #[track_caller]
    pub fn next_method(&mut self) -> (u16, AMQPClass) {
        loop {
            match self.frame() {
                Some(AMQPFrame::Method(ch, m)) => return (ch, m),
                Some(AMQPFrame::Heartbeat) => {}
                other => panic!("expected a method frame, got {other:?}"),
            }
        }
    }

    /// Expects connection open-ok.
    #[track_caller]
    pub fn expect_open_ok(&mut self) {
        match self.next_method() {
            (0, AMQPClass::Connection(connection::AMQPMethod::OpenOk(_))) => {}
            other => panic!("expected open-ok, got {other:?}"),
        }
    }

    /// Opens channel `id`; returns the server's answer.
    pub fn open_channel(&mut self, id: u16) -> (u16, AMQPClass) {
        let open = channel::AMQPMethod::Open(channel::Open {});
        self.send_method(id, AMQPClass::Channel(open));
        self.next_method()
    }

    /// Opens channel `id` and expects open-ok.
    #[track_caller]
    pub fn expect_channel(&mut self, id: u16) {
        match self.open_channel(id) {
            (i, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))) if i == id => {}
            other => panic!("expected channel.open-ok on {id}, got {other:?}"),
        }
    }

    /// Waits for `connection.close` (skipping everything else) and returns its code and
    /// text.
    #[track_caller]
    pub fn connection_close(&mut self) -> (u16, String) {
        loop {
            match self.method() {
                Some((0, AMQPClass::Connection(connection::AMQPMethod::Close(c)))) => {
                    return (c.reply_code, c.reply_text.to_string())
                }
                Some(_) => {}
                None => panic!("the server hung up without connection.close"),
            }
        }
    }

    /// Expects `connection.close` as the next method; answers `close-ok` and checks that the
    /// server hangs up. Returns the code, the text and the ids of the method that failed.
    #[track_caller]
    pub fn expect_connection_close(&mut self) -> (u16, String, (u16, u16)) {
        let close = match self.next_method() {
            (0, AMQPClass::Connection(connection::AMQPMethod::Close(c))) => c,
            other => panic!("expected connection.close, got {other:?}"),
        };
        let ok = connection::AMQPMethod::CloseOk(connection::CloseOk {});
        // The server may be gone already: only its hanging up is checked.
        let _ = self.stream.write_all(&encode_frame(&AMQPFrame::Method(
            0,
            AMQPClass::Connection(ok),
        )));
        assert_eq!(self.frame(), None, "the server closes the socket");
        (
            close.reply_code,
            close.reply_text.to_string(),
            (close.class_id, close.method_id),
        )
    }

    /// Reads everything until the server closes the socket.
    pub fn read_to_end(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.buf);
        let _ = self.stream.read_to_end(&mut out);
        out
    }
}

/// Encodes one frame.
pub fn encode_frame(frame: &AMQPFrame) -> Vec<u8> {
    let ctx = gen_frame(frame)(WriteContext::from(Vec::new())).expect("encodes");
    ctx.into_inner().0
}

/// A `connection.start-ok` with PLAIN `user`/`password`, announcing the client
/// `capabilities`.
pub fn start_ok(user: &str, password: &str, capabilities: &[&str]) -> connection::AMQPMethod {
    let mut announced = FieldTable::default();
    for capability in capabilities {
        announced.insert((*capability).into(), AMQPValue::Boolean(true));
    }
    let mut properties = FieldTable::default();
    properties.insert("capabilities".into(), AMQPValue::FieldTable(announced));
    connection::AMQPMethod::StartOk(connection::StartOk {
        client_properties: properties,
        mechanism: "PLAIN".into(),
        response: LongString::from(format!("\0{user}\0{password}").into_bytes()),
        locale: "en_US".into(),
    })
}

/// The bytes of a whole client handshake, sent in one go: protocol header, start-ok
/// (PLAIN guest/guest), tune-ok (no heartbeats), open of vhost `/`.
pub fn handshake_bytes() -> Vec<u8> {
    handshake_bytes_announcing(&[])
}

/// [`handshake_bytes`] with client `capabilities` announced.
pub fn handshake_bytes_announcing(capabilities: &[&str]) -> Vec<u8> {
    let mut out = b"AMQP\x00\x00\x09\x01".to_vec();
    let methods = [
        start_ok("guest", "guest", capabilities),
        connection::AMQPMethod::TuneOk(connection::TuneOk {
            channel_max: 2047,
            frame_max: FRAME_MAX,
            heartbeat: 0,
        }),
        connection::AMQPMethod::Open(connection::Open {
            virtual_host: "/".into(),
        }),
    ];
    for m in methods {
        out.extend(encode_frame(&AMQPFrame::Method(
            0,
            AMQPClass::Connection(m),
        )));
    }
    out
}

/// The frames of a `basic.publish` of `body` to the default exchange with `routing_key`, on
/// `channel`: method, header, and the body in frames of at most [`FRAME_MAX`] (none for an
/// empty body).
pub fn publish_frames(channel: u16, routing_key: &str, body: &[u8]) -> Vec<u8> {
    let publish = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
        exchange: "".into(),
        routing_key: routing_key.into(),
        ..basic::Publish::default()
    }));
    let mut out = encode_frame(&AMQPFrame::Method(channel, publish));
    out.extend(encode_frame(&AMQPFrame::Header(
        channel,
        AMQPContentHeader {
            class_id: 60,
            body_size: body.len() as u64,
            properties: BasicProperties::default(),
        },
    )));
    for chunk in body.chunks(FRAME_MAX as usize - 8) {
        out.extend(encode_frame(&AMQPFrame::Body(channel, chunk.to_vec())));
    }
    out
}
