//! Fuzzes the wire listener's frame reader and parser through its only door, a TCP
//! connection: each input follows a valid handshake and `channel.open`, so that the bytes
//! reach the frame loop, then the client hangs up. A panic on any server thread aborts the
//! process, which libFuzzer reports; so does a server that stops answering.
//!
//! `cargo fuzz run frame_parser` (from the crate root, with a nightly toolchain).
#![no_main]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

use amq_protocol::frame::{gen_frame, AMQPFrame, WriteContext};
use amq_protocol::protocol::{channel, connection, AMQPClass};
use amq_protocol::types::{FieldTable, LongString};
use libfuzzer_sys::fuzz_target;
use warrenmq::{Broker, WireServer};

/// One server for the whole run.
fn server() -> SocketAddr {
    static SERVER: OnceLock<WireServer> = OnceLock::new();
    SERVER
        .get_or_init(|| Broker::in_memory().serve("127.0.0.1:0").expect("binds"))
        .local_addr()
}

/// The bytes a client sends to get an open channel 1.
fn preamble() -> &'static [u8] {
    static PREAMBLE: OnceLock<Vec<u8>> = OnceLock::new();
    PREAMBLE.get_or_init(|| {
        let frames = [
            AMQPFrame::Method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                    client_properties: FieldTable::default(),
                    mechanism: "PLAIN".into(),
                    response: LongString::from(&b"\0guest\0guest"[..]),
                    locale: "en_US".into(),
                })),
            ),
            AMQPFrame::Method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                    channel_max: 16,
                    frame_max: 131_072,
                    heartbeat: 0,
                })),
            ),
            AMQPFrame::Method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                    virtual_host: "/".into(),
                })),
            ),
            AMQPFrame::Method(
                1,
                AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
            ),
        ];
        let mut out = b"AMQP\x00\x00\x09\x01".to_vec();
        for frame in &frames {
            let ctx = gen_frame(frame)(WriteContext::from(Vec::new())).expect("encodes");
            out.extend_from_slice(&ctx.into_inner().0);
        }
        out
    })
}

fuzz_target!(|data: &[u8]| {
    let mut stream = TcpStream::connect(server()).expect("the server accepts");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let _ = stream.write_all(preamble());
    let _ = stream.write_all(data);
    let _ = stream.shutdown(Shutdown::Write);
    // The server must end the conversation by itself: it closes on end of input.
    let mut sink = Vec::new();
    match stream.read_to_end(&mut sink) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the server did not close the connection: {e}"),
    }
});
