//! A minimal hand-driven AMQP client that opens a connection in one write and reads what
//! the server says (for instance the `connection.close` of a server that stops).

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A minimal hand-driven AMQP client for the wire tests: opens a connection (heartbeats
/// off) and reads what the server says.
pub struct RawClient {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawClient {
    /// Connects and sends the whole handshake at once (protocol header, start-ok with
    /// guest/guest, tune-ok without heartbeats, open of vhost `/`), then waits for open-ok.
    pub fn open(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).expect("connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut client = RawClient {
            stream,
            buf: Vec::new(),
        };
        std::io::Write::write_all(&mut client.stream, &handshake_bytes()).expect("writes");
        loop {
            match client.method() {
                Some((
                    0,
                    amq_protocol::protocol::AMQPClass::Connection(
                        amq_protocol::protocol::connection::AMQPMethod::OpenOk(_),
                    ),
                )) => return client,
                Some(_) => {}
                None => panic!("the server closed during the handshake"),
            }
        }
    }

    /// Sends bytes (encoded frames) to the server.
    pub fn send(&mut self, bytes: &[u8]) {
        std::io::Write::write_all(&mut self.stream, bytes).expect("writes");
    }

    /// Reads the next method frame (skipping others); `None` at the end of the stream.
    pub fn method(&mut self) -> Option<(u16, amq_protocol::protocol::AMQPClass)> {
        use amq_protocol::frame::{parse_frame, AMQPFrame};
        loop {
            if let Ok((rest, frame)) = parse_frame(self.buf.as_slice()) {
                let used = self.buf.len() - rest.len();
                self.buf.drain(..used);
                if let AMQPFrame::Method(ch, m) = frame {
                    return Some((ch, m));
                }
                continue;
            }
            let mut chunk = [0; 65536];
            match std::io::Read::read(&mut self.stream, &mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Waits for `connection.close` and returns its code and text.
    #[track_caller]
    pub fn connection_close(&mut self) -> (u16, String) {
        use amq_protocol::protocol::{connection, AMQPClass};
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
}

/// Encodes one frame.
pub fn encode_frame(frame: &amq_protocol::frame::AMQPFrame) -> Vec<u8> {
    use amq_protocol::frame::{gen_frame, WriteContext};
    let ctx = gen_frame(frame)(WriteContext::from(Vec::new())).expect("encodes");
    ctx.into_inner().0
}

/// The bytes of a whole client handshake, sent in one go: protocol header, start-ok
/// (PLAIN guest/guest), tune-ok (no heartbeats), open of vhost `/`.
pub fn handshake_bytes() -> Vec<u8> {
    use amq_protocol::frame::AMQPFrame;
    use amq_protocol::protocol::{connection, AMQPClass};
    use amq_protocol::types::{FieldTable, LongString};
    let mut out = b"AMQP\x00\x00\x09\x01".to_vec();
    let methods = [
        connection::AMQPMethod::StartOk(connection::StartOk {
            client_properties: FieldTable::default(),
            mechanism: "PLAIN".into(),
            response: LongString::from(&b"\0guest\0guest"[..]),
            locale: "en_US".into(),
        }),
        connection::AMQPMethod::TuneOk(connection::TuneOk {
            channel_max: 2047,
            frame_max: 131_072,
            heartbeat: 0,
        }),
        connection::AMQPMethod::Open(connection::Open {
            virtual_host: "/".into(),
        }),
    ];
    for m in methods {
        out.extend_from_slice(&encode_frame(&AMQPFrame::Method(
            0,
            AMQPClass::Connection(m),
        )));
    }
    out
}
