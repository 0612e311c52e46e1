//! The wire listener against raw bytes on a TcpStream: negotiation, bad input (wrong
//! protocol header, oversize and malformed frames, methods out of order), heartbeats, and
//! what happens to a vanished client's messages and exclusive queues.
//!
//! Expected codes and texts follow the AMQP 0-9-1 spec and RabbitMQ 3.10's behaviour.
#![cfg(feature = "wire")]

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use amq_protocol::frame::{AMQPContentHeader, AMQPFrame};
use amq_protocol::protocol::{basic, channel, connection, queue, AMQPClass, BasicProperties};
use amq_protocol::types::{FieldTable, LongString};
use common::eventually;
use common::raw_client::{encode_frame, start_ok, RawClient as Raw};
use common::wire::serve;
use warrenmq::{Broker, Message, ReplyCode, WireServer};

/// Connects and runs the handshake with the given frame-max and heartbeat, checking the
/// server's tune, up to (not including) open-ok.
fn open_with(addr: SocketAddr, vhost: &str, frame_max: u32, heartbeat: u16) -> Raw {
    let mut raw = Raw::connect(addr);
    raw.send_bytes(b"AMQP\x00\x00\x09\x01");
    let start = raw.next_method();
    assert!(matches!(
        start,
        (0, AMQPClass::Connection(connection::AMQPMethod::Start(_)))
    ));
    raw.send_connection(start_ok("guest", "guest", CAPABILITIES));
    match raw.next_method() {
        (0, AMQPClass::Connection(connection::AMQPMethod::Tune(t))) => {
            assert_eq!(
                (t.channel_max, t.frame_max, t.heartbeat),
                (2047, 131_072, 60)
            );
        }
        other => panic!("expected tune, got {other:?}"),
    }
    raw.send_connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
        channel_max: 0,
        frame_max,
        heartbeat,
    }));
    let open = connection::Open {
        virtual_host: vhost.into(),
    };
    raw.send_connection(connection::AMQPMethod::Open(open));
    raw
}

/// What the client announces: it takes `basic.cancel` from the server.
const CAPABILITIES: &[&str] = &["consumer_cancel_notify"];

/// [`open_with`] `/`, the default frame size, no heartbeats, up to open-ok.
fn open_raw(addr: SocketAddr) -> Raw {
    let mut raw = open_with(addr, "/", 131_072, 0);
    raw.expect_open_ok();
    raw
}

fn connection_method(m: connection::AMQPMethod) -> AMQPClass {
    AMQPClass::Connection(m)
}

fn declare(queue: &str, exclusive: bool) -> AMQPClass {
    AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
        queue: queue.into(),
        exclusive,
        ..queue::Declare::default()
    }))
}

#[test]
fn smoke() {
    let (broker, server) = serve();
    let mut raw = open_raw(server.local_addr());
    raw.expect_channel(1);
    raw.send_method(1, declare("hello", false));
    match raw.next_method() {
        (1, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok))) => {
            assert_eq!(ok.queue.as_str(), "hello");
        }
        other => panic!("expected declare-ok, got {other:?}"),
    }
    assert_eq!(
        broker
            .queue_stats("/", "hello")
            .expect("declared")
            .messages(),
        0
    );
}

#[test]
fn wrong_protocol_header_is_answered_with_ours_and_closed() {
    let (_broker, server) = serve();
    for header in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"AMQP\x01\x01\x00\x0a",
        b"AMQP\x00\x00\x09\x00",
    ] {
        let mut raw = Raw::connect(server.local_addr());
        raw.send_bytes(header);
        assert_eq!(raw.read_to_end(), b"AMQP\x00\x00\x09\x01");
    }
}

/// Sends `bytes` on an open connection and returns the code and text of the
/// `connection.close` that follows.
fn close_after(bytes: &[u8]) -> (u16, String) {
    let (_broker, server) = serve();
    let mut raw = open_raw(server.local_addr());
    raw.expect_channel(1);
    raw.send_bytes(bytes);
    let (code, text, _) = raw.expect_connection_close();
    (code, text)
}

#[test]
fn oversize_frame_is_a_frame_error() {
    let (code, text) = close_after(&[1, 0, 1, 0x7F, 0xFF, 0xFF, 0xFF, 0, 0]);
    assert_eq!(code, ReplyCode::FRAME_ERROR.0);
    assert!(
        text.starts_with("FRAME_ERROR - frame size 2147483647"),
        "{text}"
    );
}

#[test]
fn bad_frame_end_is_a_frame_error() {
    let mut bytes = encode_frame(&AMQPFrame::Method(1, declare("q", false)));
    *bytes.last_mut().expect("a frame") = 0;
    let (code, text) = close_after(&bytes);
    assert_eq!(
        (code, text.as_str()),
        (501, "FRAME_ERROR - bad frame end marker")
    );
}

#[test]
fn unknown_frame_type_is_a_frame_error() {
    let (code, text) = close_after(&[9, 0, 0, 0, 0, 0, 0, 0xCE]);
    assert_eq!(
        (code, text.as_str()),
        (501, "FRAME_ERROR - unknown frame type 9")
    );
}

#[test]
fn unparsable_method_is_a_syntax_error() {
    // queue.declare whose queue name claims 200 bytes but the payload ends.
    let (code, _) = close_after(&[1, 0, 1, 0, 0, 0, 7, 0, 50, 0, 10, 0, 0, 200, 0xCE]);
    assert_eq!(code, ReplyCode::SYNTAX_ERROR.0);
}

#[test]
fn method_on_a_channel_that_is_not_open_is_a_channel_error() {
    let (code, text) = close_after(&encode_frame(&AMQPFrame::Method(7, declare("q", false))));
    assert_eq!(
        (code, text.as_str()),
        (504, "CHANNEL_ERROR - expected 'channel.open'")
    );
}

#[test]
fn content_without_publish_is_an_unexpected_frame() {
    let (code, _) = close_after(&encode_frame(&AMQPFrame::Body(1, b"stray".to_vec())));
    assert_eq!(code, ReplyCode::UNEXPECTED_FRAME.0);
}

#[test]
fn immediate_publish_is_not_implemented() {
    let publish = basic::Publish {
        immediate: true,
        ..basic::Publish::default()
    };
    let frame = AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Publish(publish)));
    let (code, text) = close_after(&encode_frame(&frame));
    assert_eq!(
        (code, text.as_str()),
        (540, "NOT_IMPLEMENTED - immediate=true")
    );
}

#[test]
fn deeply_nested_tables_do_not_bring_the_server_down() {
    let (broker, server) = serve();
    let mut bystander = open_raw(server.local_addr());
    bystander.expect_channel(1);

    // queue.declare whose arguments nest tables as deep as a 128 KiB frame allows.
    let depth = 18_000;
    let mut table = Vec::new();
    for _ in 0..depth {
        let inner = std::mem::take(&mut table);
        table.extend_from_slice(&[1, b'k', b'F']);
        table.extend_from_slice(&(inner.len() as u32).to_be_bytes());
        table.extend_from_slice(&inner);
    }
    let mut payload = vec![0, 50, 0, 10, 0, 0, 1, b'n', 0];
    payload.extend_from_slice(&(table.len() as u32).to_be_bytes());
    payload.extend_from_slice(&table);
    let mut frame = vec![1, 0, 1];
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&payload);
    frame.push(0xCE);
    let mut attacker = open_raw(server.local_addr());
    attacker.expect_channel(1);
    attacker.send_bytes(&frame);
    // Whatever the answer, the server lives on and other connections are untouched.
    let _ = attacker.frame();
    bystander.send_method(1, declare("still-here", false));
    assert!(matches!(
        bystander.next_method(),
        (1, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_)))
    ));
    assert!(broker.queue_stats("/", "still-here").is_ok());
}

#[test]
fn garbage_on_one_connection_leaves_others_untouched() {
    let (broker, server) = serve();
    let mut good = open_raw(server.local_addr());
    good.expect_channel(1);
    for garbage in [
        &[0xFFu8; 64][..],
        &[1, 0, 1, 0, 0, 0, 1, 0xAA, 0xCE],
        &[8, 0, 1, 0, 0, 0, 0, 0xCE],
    ] {
        let mut bad = open_raw(server.local_addr());
        bad.send_bytes(garbage);
        let (code, _, _) = bad.expect_connection_close();
        assert!((501..=505).contains(&code), "code {code}");
    }
    good.send_method(1, declare("after-garbage", false));
    assert!(matches!(
        good.next_method(),
        (1, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_)))
    ));
    assert!(broker.queue_stats("/", "after-garbage").is_ok());
}

#[test]
fn channel_errors_close_only_the_channel() {
    let (_broker, server) = serve();
    let mut raw = open_raw(server.local_addr());
    raw.expect_channel(1);
    let passive = queue::Declare {
        queue: "missing".into(),
        passive: true,
        ..queue::Declare::default()
    };
    raw.send_method(1, AMQPClass::Queue(queue::AMQPMethod::Declare(passive)));
    match raw.next_method() {
        (1, AMQPClass::Channel(channel::AMQPMethod::Close(c))) => {
            assert_eq!(c.reply_code, 404);
            assert_eq!(
                c.reply_text.as_str(),
                "NOT_FOUND - no queue 'missing' in vhost '/'"
            );
            assert_eq!((c.class_id, c.method_id), (50, 10));
        }
        other => panic!("expected channel.close, got {other:?}"),
    }
    // Frames on a closing channel are dropped until close-ok.
    raw.send_method(1, declare("ignored", false));
    raw.send_method(
        1,
        AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
    );
    raw.expect_channel(1);
    raw.expect_channel(2);
    raw.send_method(2, declare("fine", false));
    assert!(matches!(
        raw.next_method(),
        (2, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_)))
    ));
}

#[test]
fn refused_login_and_unknown_vhost_close_the_connection() {
    let (_broker, server) = serve();
    let mut raw = Raw::connect(server.local_addr());
    raw.send_bytes(b"AMQP\x00\x00\x09\x01");
    let _start = raw.next_method();
    raw.send_connection(start_ok("guest", "wrong", CAPABILITIES));
    let (code, text, _) = raw.expect_connection_close();
    assert_eq!(code, 403);
    assert!(
        text.starts_with("ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN")
    );

    let mut raw = open_with(server.local_addr(), "nope", 131_072, 0);
    let (code, text, _) = raw.expect_connection_close();
    assert_eq!(
        (code, text.as_str()),
        (530, "NOT_ALLOWED - vhost nope not found")
    );
}

#[test]
fn bodies_are_split_at_the_negotiated_frame_max() {
    let (broker, server) = serve();
    broker
        .connect("/")
        .and_then(|c| {
            let ch = c.open_channel()?;
            ch.queue_declare("big", Default::default(), Default::default())?;
            ch.basic_publish("", "big", Message::new(vec![7u8; 10_000]))
        })
        .expect("published");
    let mut raw = open_with(server.local_addr(), "/", 4096, 0);
    raw.expect_open_ok();
    raw.expect_channel(1);
    let get = basic::Get {
        queue: "big".into(),
        no_ack: true,
    };
    raw.send_method(1, AMQPClass::Basic(basic::AMQPMethod::Get(get)));
    assert!(matches!(
        raw.next_method(),
        (1, AMQPClass::Basic(basic::AMQPMethod::GetOk(_)))
    ));
    assert!(matches!(raw.frame(), Some(AMQPFrame::Header(1, h)) if h.body_size == 10_000));
    let sizes: Vec<usize> = (0..3)
        .map(|_| match raw.frame() {
            Some(AMQPFrame::Body(1, b)) => b.len(),
            other => panic!("expected a body frame, got {other:?}"),
        })
        .collect();
    assert_eq!(sizes, [4088, 4088, 1824]);

    // And a publish split by the client is joined again.
    let publish = basic::Publish {
        routing_key: "big".into(),
        ..basic::Publish::default()
    };
    raw.send_method(1, AMQPClass::Basic(basic::AMQPMethod::Publish(publish)));
    let header = AMQPContentHeader {
        class_id: 60,
        body_size: 6000,
        properties: BasicProperties::default().with_delivery_mode(2),
    };
    raw.send_frame(&AMQPFrame::Header(1, header));
    raw.send_frame(&AMQPFrame::Body(1, vec![1; 4000]));
    raw.send_frame(&AMQPFrame::Body(1, vec![2; 2000]));
    let ch = broker
        .connect("/")
        .and_then(|c| c.open_channel().map(|ch| (c, ch)));
    let (_conn, ch) = ch.expect("a channel");
    let mut fetched = None;
    eventually("the publish arrives", || {
        fetched = ch
            .basic_get("big", warrenmq::GetOptions::no_ack())
            .expect("get");
        fetched.is_some()
    });
    let d = fetched.expect("a message");
    assert_eq!(d.body().len(), 6000);
    assert_eq!(d.body()[3999..4001], [1, 2]);
    assert!(d.properties().is_persistent());
}

#[test]
fn vanished_client_requeues_unacked_and_loses_its_exclusive_queues() {
    let (broker, server) = serve();
    {
        let conn = broker.connect("/").expect("connects");
        let ch = conn.open_channel().expect("channel");
        ch.queue_declare("work", Default::default(), Default::default())
            .expect("declared");
        ch.basic_publish("", "work", Message::new("job"))
            .expect("published");
    }
    let mut raw = open_raw(server.local_addr());
    raw.expect_channel(1);
    raw.send_method(1, declare("mine", true));
    let _ = raw.next_method();
    let get = basic::Get {
        queue: "work".into(),
        no_ack: false,
    };
    raw.send_method(1, AMQPClass::Basic(basic::AMQPMethod::Get(get)));
    assert!(matches!(
        raw.next_method(),
        (1, AMQPClass::Basic(basic::AMQPMethod::GetOk(_)))
    ));
    eventually("the job is unacked", || {
        broker
            .queue_stats("/", "work")
            .is_ok_and(|s| s.messages_unacknowledged == 1)
    });
    assert!(broker.queue_stats("/", "mine").is_ok());
    drop(raw);
    eventually("the job is back and 'mine' is gone", || {
        let work = broker.queue_stats("/", "work").expect("work stays");
        work.messages_ready == 1 && broker.queue_stats("/", "mine").is_err()
    });
    eventually("the server forgets the connection", || {
        server.connection_count() == 0
    });
}

#[test]
fn heartbeats_flow_and_a_silent_client_is_dropped() {
    let (broker, server) = serve();
    let mut raw = open_with(server.local_addr(), "/", 131_072, 1);
    raw.expect_open_ok();
    raw.expect_channel(1);
    raw.send_method(1, declare("hb-exclusive", true));
    let _ = raw.next_method();
    // The server sends heartbeats every half interval.
    let started = Instant::now();
    assert_eq!(raw.frame(), Some(AMQPFrame::Heartbeat));
    assert!(started.elapsed() < Duration::from_secs(2));
    // The client now says nothing: after two intervals the server gives up on it.
    eventually("the silent client is dropped", || {
        broker.queue_stats("/", "hb-exclusive").is_err()
    });
    while let Some(frame) = raw.frame() {
        assert_eq!(frame, AMQPFrame::Heartbeat);
    }
}

#[test]
fn shutdown_closes_connections() {
    let (broker, server) = serve();
    let mut raw = open_raw(server.local_addr());
    raw.expect_channel(1);
    raw.send_method(1, declare("temp", true));
    let _ = raw.next_method();
    let addr = server.local_addr();
    server.shutdown();
    let (code, text, _) = raw.expect_connection_close();
    assert_eq!(code, ReplyCode::CONNECTION_FORCED.0);
    assert_eq!(
        text,
        "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"
    );
    assert!(TcpStream::connect(addr).is_err());
    eventually("the exclusive queue goes", || {
        broker.queue_stats("/", "temp").is_err()
    });
}

#[test]
fn a_client_that_stops_reading_is_dropped_and_its_deliveries_requeued() {
    const COUNT: usize = 3000;
    let (broker, server) = serve();
    let conn = broker.connect("/").expect("connects");
    let ch = conn.open_channel().expect("channel");
    ch.queue_declare("flood", Default::default(), Default::default())
        .expect("declared");
    for _ in 0..COUNT {
        ch.basic_publish("", "flood", Message::new(vec![0u8; 16 * 1024]))
            .expect("published");
    }
    let mut raw = open_with(server.local_addr(), "/", 131_072, 1);
    raw.expect_open_ok();
    raw.expect_channel(1);
    let consume = basic::Consume {
        queue: "flood".into(),
        consumer_tag: "greedy".into(),
        ..basic::Consume::default()
    };
    raw.send_method(1, AMQPClass::Basic(basic::AMQPMethod::Consume(consume)));
    // The client reads nothing more and sends nothing: the server's writes back up, and
    // after two heartbeat intervals it gives up on the client.
    eventually("the server drops the silent client", || {
        server.connection_count() == 0
    });
    eventually("every delivery is back in the queue", || {
        broker
            .queue_stats("/", "flood")
            .is_ok_and(|s| s.messages_ready == COUNT && s.consumers == 0)
    });
    drop(raw);
}

#[test]
fn a_client_that_pipelines_without_reading_is_dropped() {
    let (broker, server) = serve();
    // Long names make long replies, which fill the socket buffers sooner.
    let name = "p".repeat(250);
    let mut raw = open_with(server.local_addr(), "/", 131_072, 1);
    raw.expect_open_ok();
    raw.expect_channel(1);
    raw.send_method(1, declare(&name, true));
    // Ask for replies (declare-ok, tens of bytes each) far beyond what socket buffers and
    // the writer's queue hold, and never read them; keep sending heartbeats meanwhile.
    let request = encode_frame(&AMQPFrame::Method(1, declare(&name, true)));
    let heartbeat = encode_frame(&AMQPFrame::Heartbeat);
    let deadline = Instant::now() + Duration::from_secs(20);
    raw.stream
        .set_write_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    while Instant::now() < deadline && server.connection_count() > 0 {
        let mut burst = Vec::new();
        for _ in 0..1000 {
            burst.extend_from_slice(&request);
        }
        burst.extend_from_slice(&heartbeat);
        if raw.stream.write_all(&burst).is_err() {
            thread::sleep(Duration::from_millis(50));
        }
    }
    eventually("the server drops the client", || {
        server.connection_count() == 0
    });
    eventually("its exclusive queue goes", || {
        broker.queue_stats("/", &name).is_err()
    });
}

#[test]
fn wire_handles_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<WireServer>();
    assert_send_sync::<warrenmq::WireOptions>();
}

#[test]
fn a_frame_max_below_the_amqp_minimum_is_refused() {
    let options = warrenmq::WireOptions {
        frame_max: 1024,
        ..warrenmq::WireOptions::default()
    };
    let err = Broker::in_memory()
        .serve_with("127.0.0.1:0", options)
        .expect_err("refused");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn a_handshake_trickled_byte_by_byte_is_cut_at_one_total_deadline() {
    // A client that sends a byte now and then never lets a per-read timeout fire; the
    // handshake as a whole must still end within its 10 s deadline (RabbitMQ's
    // handshake_timeout), or idle half-open clients could hold the server's sockets.
    let (_broker, server) = serve();
    let mut raw = Raw::connect(server.local_addr());
    raw.send_bytes(b"AMQP\x00\x00\x09\x01");
    assert!(matches!(
        raw.next_method(),
        (0, AMQPClass::Connection(connection::AMQPMethod::Start(_)))
    ));
    assert_eq!(server.connection_count(), 1);
    // A start-ok frame, sent one byte every 300 ms: it would take far longer than 10 s.
    let start_ok = encode_frame(&AMQPFrame::Method(
        0,
        connection_method(connection::AMQPMethod::StartOk(connection::StartOk {
            client_properties: FieldTable::default(),
            mechanism: "PLAIN".into(),
            response: LongString::from(&b"\0guest\0guest"[..]),
            locale: "en_US".into(),
        })),
    ));
    let began = Instant::now();
    for byte in start_ok.iter().take(start_ok.len() - 1) {
        if raw.stream.write_all(&[*byte]).is_err() || server.connection_count() == 0 {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "the server still waits for a handshake begun 30 s ago"
        );
        thread::sleep(Duration::from_millis(300));
    }
    eventually("the server drops the slow handshake", || {
        server.connection_count() == 0
    });
    assert_eq!(raw.frame(), None, "the server closed the socket");
}

#[test]
fn pipelined_requests_whose_replies_fill_the_outbox_are_all_answered() {
    // Replies beyond the connection's outbox make it stop taking frames until the socket
    // drains; the frames already read must then be taken without the client sending more.
    const COUNT: usize = 2000;
    let (_broker, server) = serve();
    let mut raw = open_raw(server.local_addr());
    raw.expect_channel(1);
    let name = "r".repeat(250);
    let request = encode_frame(&AMQPFrame::Method(1, declare(&name, true)));
    let mut burst = Vec::new();
    for _ in 0..COUNT {
        burst.extend_from_slice(&request);
    }
    let mut writer = raw.stream.try_clone().expect("clones");
    let sending = thread::spawn(move || writer.write_all(&burst).expect("writes"));
    for _ in 0..COUNT {
        assert!(matches!(
            raw.next_method(),
            (1, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_)))
        ));
    }
    sending.join().expect("sent");
}
