//! `Broker::close`: what it stops, what it writes, and the error every operation gets
//! afterwards. (That no thread is left and that a program exits without it:
//! tests/process_exit.rs.)

mod common;

use std::time::Duration;

use common::*;
use futures_lite::StreamExt;
use warrenmq::{
    Broker, ConsumeOptions, Error, FieldTable, GetOptions, Message, QueueDeclareOptions,
    RecvTimeoutError,
};

fn is_broker_closed<T: std::fmt::Debug>(result: Result<T, Error>) -> bool {
    match result {
        Err(e) => {
            assert_eq!(e.reply_code().0, 320, "{e}");
            matches!(e, Error::BrokerClosed)
        }
        Ok(v) => panic!("expected BrokerClosed, got Ok({v:?})"),
    }
}

#[test]
fn smoke() {
    let broker = Broker::in_memory();
    broker.close().unwrap();
    assert!(broker.is_closed());
    assert!(is_broker_closed(broker.connect("/")));
}

#[test]
fn every_operation_after_close_fails_with_broker_closed() {
    let (broker, conn, ch) = setup();
    declare_queue(&ch, "q");
    for i in 0..3 {
        publish(&ch, "", "q", &format!("m{i}"));
    }
    let held = ch.basic_get("q", GetOptions::default()).unwrap().unwrap();
    let consumer_ch = conn.open_channel().unwrap();
    let consumer = consumer_ch
        .basic_consume("q", ConsumeOptions::default())
        .unwrap();
    let clone = broker.clone();

    clone.close().unwrap();

    assert!(broker.is_closed() && conn.is_closed() && ch.is_closed());
    assert!(is_broker_closed(broker.connect("/")));
    assert!(is_broker_closed(broker.add_vhost("other")));
    assert!(is_broker_closed(broker.queue_stats("/", "q")));
    assert!(is_broker_closed(broker.list_exchanges("/")));
    assert!(is_broker_closed(conn.open_channel()));
    assert!(is_broker_closed(ch.basic_publish(
        "",
        "q",
        Message::new("late")
    )));
    assert!(is_broker_closed(ch.queue_declare(
        "q2",
        QueueDeclareOptions::default(),
        FieldTable::new()
    )));
    assert!(is_broker_closed(ch.basic_get("q", GetOptions::no_ack())));
    assert!(is_broker_closed(held.ack()));
    // The consumer ends: what it had not received went back to the queue with the rest.
    assert_eq!(
        consumer.recv_timeout(Duration::from_secs(5)).unwrap_err(),
        RecvTimeoutError::Disconnected
    );
    // Closing again is harmless.
    broker.close().unwrap();
    clone.close().unwrap();
}

#[test]
fn close_ends_async_consumers() {
    let (broker, _conn, ch) = setup();
    declare_queue(&ch, "q");
    let mut consumer = ch.basic_consume("q", ConsumeOptions::default()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let waiting = tokio::spawn(async move { consumer.next().await.is_none() });
        tokio::time::sleep(Duration::from_millis(50)).await;
        tokio::task::spawn_blocking(move || broker.close().unwrap())
            .await
            .unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("the stream ends")
            .unwrap();
        assert!(ended, "the stream ends without a delivery");
    });
}

#[test]
fn close_writes_the_store_and_releases_the_file_while_handles_live() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warren.redb");
    let broker = Broker::open(&path).unwrap();
    let conn = broker.connect("/").unwrap();
    let ch = conn.open_channel().unwrap();
    ch.queue_declare("jobs", QueueDeclareOptions::durable(), FieldTable::new())
        .unwrap();
    for i in 0..10 {
        // Not waited for: close must write them.
        ch.basic_publish("", "jobs", Message::new(format!("m{i}")).persistent())
            .unwrap();
    }
    let delivered = ch
        .basic_get("jobs", GetOptions::default())
        .unwrap()
        .unwrap();
    assert_eq!(body(&delivered), "m0");
    // Another handle cannot open the file while the broker runs.
    assert!(Broker::open(&path).is_err());

    broker.close().unwrap();

    // Every handle is still alive, yet the file is released and clean: the message held
    // unacknowledged comes back redelivered, the others as never delivered.
    let reopened = Broker::open(&path).unwrap();
    let ch2 = reopened.connect("/").unwrap().open_channel().unwrap();
    let mut got = Vec::new();
    while let Some(d) = ch2.basic_get("jobs", GetOptions::no_ack()).unwrap() {
        got.push((body(&d), d.redelivered()));
    }
    let expected: Vec<(String, bool)> = (0..10).map(|i| (format!("m{i}"), i == 0)).collect();
    assert_eq!(got, expected);
    drop((delivered, ch, conn, broker));
    reopened.close().unwrap();
}

#[cfg(feature = "wire")]
#[test]
fn close_stops_the_wire_listener_with_connection_forced() {
    use common::raw_client::RawClient;

    let (broker, server) = common::wire::serve();
    let addr = server.local_addr();
    let mut client = RawClient::open(addr);
    // The client hangs up once told, so that the server need not wait for its close-ok.
    let told = std::thread::spawn(move || client.connection_close());
    broker.close().unwrap();
    let (code, text) = told.join().unwrap();
    assert_eq!(code, 320);
    assert_eq!(
        text,
        "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"
    );
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "the port is closed"
    );
    assert_eq!(server.connection_count(), 0);
    // The handle outlives the broker's close; shutting it down again is harmless.
    server.shutdown();
    // No new listener on a closed broker.
    let err = broker.serve("127.0.0.1:0").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotConnected);
    assert!(err.to_string().contains("CONNECTION_FORCED"), "{err}");
}

#[test]
fn timers_stop_with_the_broker() {
    // A TTL queue starts the vhost's timer sweep; after close nothing expires any more (the
    // broker is gone), and closing returns although the sweep was running.
    let (broker, _conn, ch) = setup();
    let mut args = FieldTable::new();
    args.insert("x-message-ttl", 1_000i32);
    declare(&ch, "ttl", args);
    publish(&ch, "", "ttl", "m");
    std::thread::sleep(Duration::from_millis(50));
    broker.close().unwrap();
    assert!(is_broker_closed(broker.queue_stats("/", "ttl")));
}

#[test]
fn connections_opened_while_closing_are_closed_too() {
    // Threads keep connecting and publishing while the broker closes: every call either
    // works or fails with BrokerClosed, and no connection is left open afterwards.
    let broker = Broker::in_memory();
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    declare_queue(&ch, "q");
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let broker = broker.clone();
            std::thread::spawn(move || {
                let mut opened = Vec::new();
                loop {
                    let conn = match broker.connect("/") {
                        Ok(conn) => conn,
                        Err(e) => {
                            assert!(matches!(e, Error::BrokerClosed), "{e}");
                            return opened;
                        }
                    };
                    let published = conn
                        .open_channel()
                        .and_then(|ch| ch.basic_publish("", "q", Message::new("m")));
                    if let Err(e) = published {
                        assert!(matches!(e, Error::BrokerClosed), "{e}");
                    }
                    opened.push(conn);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(20));
    broker.close().unwrap();
    for worker in workers {
        let opened = worker.join().unwrap();
        assert!(
            opened.iter().all(|c| c.is_closed()),
            "a connection is still open"
        );
    }
}
