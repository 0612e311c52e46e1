//! The wire listener's limits (issue 10) against raw bytes on a TcpStream: the total
//! handshake deadline (a handshake dripped one byte a second is cut; hundreds of them do not
//! keep a client out), the count of open channels, consumers per channel and per
//! connection, connections per listener, the message size limit, `connection.update-secret`,
//! the server's capabilities, and the close handshake with a client that keeps writing.
//!
//! Expected codes and texts are RabbitMQ 3.10's (`interop/tests/limits_python.rs` compares
//! them with the real thing).
#![cfg(feature = "wire")]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use amq_protocol::frame::{AMQPContentHeader, AMQPFrame};
use amq_protocol::protocol::{basic, channel, connection, queue, AMQPClass, BasicProperties};
use amq_protocol::types::{AMQPValue, LongString};
use common::eventually;
use common::raw_client::{
    encode_frame, handshake_bytes, publish_frames, start_ok, RawClient as Raw,
};
use warrenmq::{Broker, GetOptions, WireOptions, WireServer};

/// Connects and runs the whole handshake step by step, asking for `channel_max` channels
/// (0: the server's), with the client capability `connection.blocked`.
fn open_with(addr: SocketAddr, channel_max: u16) -> (Raw, connection::Start) {
    let mut raw = Raw::connect(addr);
    raw.send_bytes(b"AMQP\x00\x00\x09\x01");
    let start = match raw.next_method() {
        (0, AMQPClass::Connection(connection::AMQPMethod::Start(s))) => s,
        other => panic!("expected start, got {other:?}"),
    };
    raw.send_connection(start_ok("guest", "guest", &["connection.blocked"]));
    let tune = match raw.next_method() {
        (0, AMQPClass::Connection(connection::AMQPMethod::Tune(t))) => t,
        other => panic!("expected tune, got {other:?}"),
    };
    raw.send_connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
        channel_max: if channel_max == 0 {
            tune.channel_max
        } else {
            channel_max
        },
        frame_max: tune.frame_max,
        heartbeat: 0,
    }));
    raw.send_connection(connection::AMQPMethod::Open(connection::Open {
        virtual_host: "/".into(),
    }));
    (raw, start)
}

/// [`open_with`] the server's channel limit, up to open-ok.
fn open_raw(addr: SocketAddr) -> Raw {
    let (mut raw, _) = open_with(addr, 0);
    raw.expect_open_ok();
    raw
}

fn serve_with(options: WireOptions) -> (Broker, WireServer) {
    let broker = Broker::in_memory();
    let server = broker.serve_with("127.0.0.1:0", options).expect("binds");
    (broker, server)
}

#[test]
fn a_handshake_dripped_one_byte_a_second_is_closed_at_the_deadline() {
    let options = WireOptions {
        handshake_timeout: Duration::from_secs(2),
        ..WireOptions::default()
    };
    let (_broker, server) = serve_with(options);
    let mut raw = Raw::connect(server.local_addr());
    let handshake = handshake_bytes();
    let began = Instant::now();
    eventually("the connection is accepted", || {
        server.connection_count() == 1
    });
    let mut closed_after = None;
    for byte in handshake.iter().take(handshake.len() - 1) {
        if raw.stream.write_all(&[*byte]).is_err() || server.connection_count() == 0 {
            closed_after = Some(began.elapsed());
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "the server still waits for a handshake begun 20 s ago (deadline 2 s)"
        );
        thread::sleep(Duration::from_secs(1));
    }
    let closed_after = closed_after.expect("the server cut the handshake");
    assert!(
        closed_after >= Duration::from_millis(1900),
        "cut before its deadline: {closed_after:?}"
    );
    eventually("the server drops the slow handshake", || {
        server.connection_count() == 0
    });
}

#[test]
fn four_hundred_dripped_handshakes_do_not_keep_a_client_out() {
    const DRIPPERS: usize = 400;
    // Long enough that all 400 are accepted before the first is cut, even on a loaded
    // machine (with 3 s, the first were cut before the last were accepted).
    let options = WireOptions {
        handshake_timeout: Duration::from_secs(10),
        ..WireOptions::default()
    };
    let (_broker, server) = serve_with(options);
    let addr = server.local_addr();
    let handshake = handshake_bytes();
    let mut drippers: Vec<TcpStream> = (0..DRIPPERS)
        .map(|_| TcpStream::connect(addr).expect("connects"))
        .collect();
    // Every dripper sends its first byte; the server now serves 400 slow handshakes.
    for d in &mut drippers {
        d.write_all(&handshake[..1]).expect("writes");
    }
    eventually("every dripper is accepted", || {
        server.connection_count() == DRIPPERS
    });
    // A normal client gets through at once, and works.
    let mut client = open_raw(addr);
    client.expect_channel(1);
    let declare = AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
        queue: "jobs".into(),
        ..queue::Declare::default()
    }));
    client.send_method(1, declare);
    assert!(matches!(
        client.next_method(),
        (1, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_)))
    ));
    // The drippers go on, a byte a second each, and are all cut at the deadline.
    let began = Instant::now();
    let mut sent = 1;
    while server.connection_count() > 1 {
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "{} slow handshakes still served 30 s after their 10 s deadline",
            server.connection_count() - 1
        );
        thread::sleep(Duration::from_secs(1));
        for d in &mut drippers {
            let _ = d.write_all(&handshake[sent..=sent]);
        }
        sent += 1;
    }
    // The client that finished its handshake is still served.
    client.expect_channel(2);
    for d in &mut drippers {
        d.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut rest = Vec::new();
        let _ = d.read_to_end(&mut rest);
    }
}

#[test]
fn channel_max_counts_open_channels_whatever_their_numbers() {
    let (_broker, server) = serve_with(WireOptions::default());
    let (mut raw, _) = open_with(server.local_addr(), 3);
    raw.expect_open_ok();
    // Numbers above channel_max are fine, as in RabbitMQ; the count is what is limited.
    raw.expect_channel(7);
    raw.expect_channel(1);
    raw.send_method(
        1,
        AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
            reply_code: 200,
            reply_text: "".into(),
            class_id: 0,
            method_id: 0,
        })),
    );
    assert!(matches!(
        raw.next_method(),
        (1, AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)))
    ));
    raw.expect_channel(2);
    raw.expect_channel(3);
    raw.send_method(
        4,
        AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
    );
    let (code, text, ids) = raw.expect_connection_close();
    assert_eq!(code, 530);
    assert_eq!(
        text,
        "NOT_ALLOWED - number of channels opened (3) has reached the negotiated channel_max (3)"
    );
    assert_eq!(ids, (0, 0));
}

fn consume(raw: &mut Raw, channel: u16, queue: &str) -> (u16, AMQPClass) {
    let consume = AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
        queue: queue.into(),
        ..basic::Consume::default()
    }));
    raw.send_method(channel, consume);
    raw.next_method()
}

#[track_caller]
fn expect_consume_ok(reply: (u16, AMQPClass)) {
    assert!(
        matches!(
            reply,
            (_, AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_)))
        ),
        "expected consume-ok, got {reply:?}"
    );
}

#[test]
fn consumers_are_limited_per_channel_and_per_connection() {
    let options = WireOptions {
        consumer_max_per_channel: Some(2),
        consumer_max_per_connection: Some(3),
        ..WireOptions::default()
    };
    let (broker, server) = serve_with(options);
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    ch.queue_declare("work", Default::default(), Default::default())
        .unwrap();

    let mut raw = open_raw(server.local_addr());
    raw.expect_channel(1);
    expect_consume_ok(consume(&mut raw, 1, "work"));
    expect_consume_ok(consume(&mut raw, 1, "work"));
    raw.send_method(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: "work".into(),
            ..basic::Consume::default()
        })),
    );
    let (code, text, ids) = raw.expect_connection_close();
    assert_eq!(code, 530);
    assert_eq!(
        text,
        "NOT_ALLOWED - reached maximum (2) of consumers per channel"
    );
    assert_eq!(ids, (60, 20));

    let mut raw = open_raw(server.local_addr());
    raw.expect_channel(1);
    raw.expect_channel(2);
    expect_consume_ok(consume(&mut raw, 1, "work"));
    expect_consume_ok(consume(&mut raw, 1, "work"));
    expect_consume_ok(consume(&mut raw, 2, "work"));
    raw.send_method(
        2,
        AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: "work".into(),
            ..basic::Consume::default()
        })),
    );
    let (code, text, _) = raw.expect_connection_close();
    assert_eq!(code, 530);
    assert_eq!(
        text,
        "NOT_ALLOWED - reached maximum (3) of consumers per connection"
    );
}

#[test]
fn connections_over_the_listener_limit_are_refused_at_open() {
    let options = WireOptions {
        connection_max: Some(2),
        ..WireOptions::default()
    };
    let (_broker, server) = serve_with(options);
    let addr = server.local_addr();
    let first = open_raw(addr);
    let _second = open_raw(addr);
    let (mut third, _) = open_with(addr, 0);
    let (code, text, ids) = third.expect_connection_close();
    assert_eq!(code, 530);
    assert_eq!(
        text,
        "NOT_ALLOWED - connection refused: listener connection limit (2) is reached"
    );
    assert_eq!(ids, (10, 40));
    drop(first);
    eventually("the first connection is gone", || {
        server.connection_count() == 1
    });
    let mut again = open_raw(addr);
    again.expect_channel(1);
}

#[test]
fn an_oversize_message_closes_its_channel_with_406_and_the_connection_goes_on() {
    let options = WireOptions {
        max_message_size: 1000,
        ..WireOptions::default()
    };
    let (broker, server) = serve_with(options);
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    ch.queue_declare("big", Default::default(), Default::default())
        .unwrap();
    let mut raw = open_raw(server.local_addr());
    raw.expect_channel(1);
    raw.send_bytes(&publish_frames(1, "big", &[7; 1000]));
    raw.send_bytes(&publish_frames(1, "big", &[7; 1001]));
    match raw.next_method() {
        (1, AMQPClass::Channel(channel::AMQPMethod::Close(c))) => {
            assert_eq!(c.reply_code, 406);
            assert_eq!(
                c.reply_text.as_str(),
                "PRECONDITION_FAILED - message size 1001 is larger than configured max size 1000"
            );
            assert_eq!((c.class_id, c.method_id), (60, 40));
        }
        other => panic!("expected channel.close, got {other:?}"),
    }
    raw.send_method(
        1,
        AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
    );
    raw.expect_channel(2);
    assert_eq!(broker.queue_stats("/", "big").unwrap().messages_ready, 1);
}

#[test]
fn update_secret_is_answered_and_the_capabilities_are_rabbitmqs() {
    let (_broker, server) = serve_with(WireOptions::default());
    let (mut raw, start) = open_with(server.local_addr(), 0);
    raw.expect_open_ok();
    let properties = start.server_properties.inner();
    for key in [
        "cluster_name",
        "copyright",
        "information",
        "platform",
        "product",
        "version",
    ] {
        assert!(
            matches!(properties.get(key), Some(AMQPValue::LongString(_))),
            "{key}"
        );
    }
    let Some(AMQPValue::FieldTable(capabilities)) = properties.get("capabilities") else {
        panic!("no capabilities table");
    };
    let names: Vec<&str> = capabilities
        .inner()
        .iter()
        .filter(|(_, v)| matches!(v, AMQPValue::Boolean(true)))
        .map(|(k, _)| k.as_str())
        .collect();
    let mut expected = vec![
        "authentication_failure_close",
        "basic.nack",
        "connection.blocked",
        "consumer_cancel_notify",
        "consumer_priorities",
        "direct_reply_to",
        "exchange_exchange_bindings",
        "per_consumer_qos",
        "publisher_confirms",
    ];
    let mut names = names;
    names.sort_unstable();
    expected.sort_unstable();
    assert_eq!(names, expected);
    raw.send_connection(connection::AMQPMethod::UpdateSecret(
        connection::UpdateSecret {
            new_secret: LongString::from(&b"token"[..]),
            reason: "rotation".into(),
        },
    ));
    assert!(matches!(
        raw.next_method(),
        (
            0,
            AMQPClass::Connection(connection::AMQPMethod::UpdateSecretOk(_))
        )
    ));
    raw.expect_channel(1);
}

#[test]
fn a_client_still_writing_after_a_hard_error_reads_the_close() {
    let (_broker, server) = serve_with(WireOptions::default());
    let mut raw = open_raw(server.local_addr());
    raw.expect_channel(1);
    let burst = publish_frames(1, "nowhere", &[b'y'; 1000]).repeat(50);
    // A method on channel 5, which is not open: 504, a hard error.
    let qos = AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
        prefetch_count: 1,
        ..basic::Qos::default()
    }));
    raw.send_bytes(&encode_frame(&AMQPFrame::Method(5, qos)));
    let writer = raw.stream.try_clone().expect("clones");
    let writing = thread::spawn(move || {
        let mut writer = writer;
        let began = Instant::now();
        let mut written = 0usize;
        while began.elapsed() < Duration::from_secs(1) {
            writer.write_all(&burst)?;
            written += burst.len();
        }
        Ok::<usize, std::io::Error>(written)
    });
    let written = writing.join().expect("joins");
    assert!(
        written.is_ok(),
        "the server cut the client off while it wrote: {written:?}"
    );
    let (code, text, ids) = raw.expect_connection_close();
    assert_eq!(code, 504);
    assert_eq!(text, "CHANNEL_ERROR - expected 'channel.open'");
    assert_eq!(ids, (60, 10));
}

#[test]
fn a_client_writing_garbage_after_a_frame_error_reads_the_close() {
    let (_broker, server) = serve_with(WireOptions::default());
    let mut raw = open_raw(server.local_addr());
    // A frame of an unknown type: 501, after which nothing parses.
    raw.send_bytes(&[9, 0, 0, 0, 0, 0, 1, 0, 0xCE]);
    let writer = raw.stream.try_clone().expect("clones");
    let writing = thread::spawn(move || {
        let mut writer = writer;
        let began = Instant::now();
        while began.elapsed() < Duration::from_millis(500) {
            writer.write_all(&[0xAB; 4096])?;
        }
        Ok::<(), std::io::Error>(())
    });
    let written = writing.join().expect("joins");
    assert!(
        written.is_ok(),
        "the server cut the client off: {written:?}"
    );
    match raw.next_method() {
        (0, AMQPClass::Connection(connection::AMQPMethod::Close(c))) => {
            assert_eq!(c.reply_code, 501);
        }
        other => panic!("expected connection.close, got {other:?}"),
    }
    // Close-ok cannot be parsed among the garbage: the server gives up after its timeout.
    assert_eq!(raw.frame(), None);
}

#[test]
fn a_publishing_client_is_blocked_by_the_memory_alarm_until_a_consumer_drains() {
    const COUNT: usize = 200; // 12.5 MiB through a 1 MiB watermark
    let broker = Broker::builder()
        .memory_high_watermark(warrenmq::MemoryWatermark::Absolute(1 << 20))
        .build()
        .unwrap();
    let server = broker.serve("127.0.0.1:0").expect("binds");
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    ch.queue_declare("big", Default::default(), Default::default())
        .unwrap();
    let (mut raw, _) = open_with(server.local_addr(), 0);
    raw.expect_open_ok();
    raw.expect_channel(1);
    // The client writes from another thread, as a real one would; the server stops reading
    // it, so that thread ends up waiting on a full socket.
    let mut writer = raw.stream.try_clone().expect("clones");
    let writing = thread::spawn(move || {
        let body = vec![b'm'; 64 * 1024];
        for _ in 0..COUNT {
            writer.write_all(&publish_frames(1, "big", &body))?;
        }
        Ok::<(), std::io::Error>(())
    });
    match raw.next_method() {
        (0, AMQPClass::Connection(connection::AMQPMethod::Blocked(b))) => {
            assert_eq!(b.reason.as_str(), "low on memory");
        }
        other => panic!("expected connection.blocked, got {other:?}"),
    }
    eventually("the connection counts as blocked", || {
        broker.stats().blocked_publishers == 1
    });
    thread::sleep(Duration::from_millis(200));
    let held = broker.queue_stats("/", "big").unwrap().messages_ready;
    assert!(
        held < COUNT / 4,
        "{held} of {COUNT} taken past the watermark"
    );
    assert!(
        !writing.is_finished(),
        "the server stopped reading the client"
    );
    // A consumer drains: the client is unblocked and everything arrives.
    let mut got = 0;
    while got < COUNT {
        match ch.basic_get("big", GetOptions::no_ack()).unwrap() {
            Some(d) => {
                assert_eq!(d.body().len(), 64 * 1024);
                got += 1;
            }
            None => thread::sleep(Duration::from_millis(5)),
        }
    }
    writing
        .join()
        .expect("joins")
        .expect("every publish written");
    match raw.next_method() {
        (0, AMQPClass::Connection(connection::AMQPMethod::Unblocked(_))) => {}
        other => panic!("expected connection.unblocked, got {other:?}"),
    }
    // The alarm may have gone on and off again while the rest was published; the last word
    // before the channel opens is that the connection is unblocked.
    raw.send_method(
        2,
        AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
    );
    let mut blocked = false;
    loop {
        match raw.next_method() {
            (0, AMQPClass::Connection(connection::AMQPMethod::Blocked(_))) => blocked = true,
            (0, AMQPClass::Connection(connection::AMQPMethod::Unblocked(_))) => blocked = false,
            (2, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(!blocked, "still blocked after the drain");
    eventually("no publisher counts as blocked", || {
        broker.stats().blocked_publishers == 0
    });
}

#[test]
fn bodies_still_arriving_are_charged_to_the_memory_alarm() {
    // A client sending a large body slowly holds that memory in the broker before any
    // message exists: it counts, so such clients raise the alarm (and are blocked) instead
    // of growing the process without bound.
    const BODY: usize = 3 << 20;
    const CHUNK: usize = 64 * 1024;
    const QUEUED: usize = 32;
    let broker = Broker::builder()
        .memory_high_watermark(warrenmq::MemoryWatermark::Absolute(4 << 20))
        .build()
        .unwrap();
    let server = broker.serve("127.0.0.1:0").expect("binds");
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    ch.queue_declare("big", Default::default(), Default::default())
        .unwrap();
    // 2 MiB queued: below the watermark on its own.
    for _ in 0..QUEUED {
        ch.basic_publish("", "big", warrenmq::Message::new(vec![b'q'; CHUNK]))
            .unwrap();
    }
    assert!(!broker.stats().memory_alarm);
    let (mut raw, _) = open_with(server.local_addr(), 0);
    raw.expect_open_ok();
    raw.expect_channel(1);
    let publish = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
        exchange: "".into(),
        routing_key: "big".into(),
        ..basic::Publish::default()
    }));
    let mut frames = encode_frame(&AMQPFrame::Method(1, publish));
    frames.extend(encode_frame(&AMQPFrame::Header(
        1,
        AMQPContentHeader {
            class_id: 60,
            body_size: BODY as u64,
            properties: BasicProperties::default(),
        },
    )));
    raw.send_bytes(&frames);
    // The body in frames of 64 KiB, from another thread (the server stops reading it).
    let mut writer = raw.stream.try_clone().expect("clones");
    let writing = thread::spawn(move || {
        for _ in 0..BODY / CHUNK {
            writer.write_all(&encode_frame(&AMQPFrame::Body(1, vec![b'b'; CHUNK])))?;
        }
        Ok::<(), std::io::Error>(())
    });
    match raw.next_method() {
        (0, AMQPClass::Connection(connection::AMQPMethod::Blocked(b))) => {
            assert_eq!(b.reason.as_str(), "low on memory");
        }
        other => panic!("expected connection.blocked, got {other:?}"),
    }
    let stats = broker.stats();
    assert!(stats.memory_alarm);
    assert!(
        stats.memory_used > 4 << 20,
        "{} bytes charged: the queued 2 MiB and the body in flight",
        stats.memory_used
    );
    assert_eq!(
        broker.queue_stats("/", "big").unwrap().messages_ready,
        QUEUED,
        "the big message is not complete yet"
    );
    // A publisher in process is held back by it too.
    assert_eq!(
        ch.try_basic_publish("", "big", Default::default(), warrenmq::Message::new("x"))
            .unwrap_err()
            .reply_code(),
        warrenmq::ReplyCode::RESOURCE_ERROR
    );
    // Draining the queued messages clears the alarm: the client is read again, its message
    // arrives whole, and once it is consumed nothing is charged any more.
    for _ in 0..QUEUED {
        let d = ch.basic_get("big", GetOptions::no_ack()).unwrap().unwrap();
        assert_eq!(d.body().len(), CHUNK);
    }
    writing
        .join()
        .expect("joins")
        .expect("the whole body written");
    let mut big = None;
    eventually("the big message arrives", || {
        big = ch.basic_get("big", GetOptions::no_ack()).unwrap();
        big.is_some()
    });
    let big = big.unwrap();
    assert_eq!(big.body().len(), BODY);
    assert!(big.body().iter().all(|&b| b == b'b'));
    drop(big);
    eventually("nothing is charged once it is consumed", || {
        let stats = broker.stats();
        stats.memory_used == 0 && !stats.memory_alarm
    });
    ch.try_basic_publish("", "big", Default::default(), warrenmq::Message::new("x"))
        .expect("publishing resumes");
}
