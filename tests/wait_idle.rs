//! `Broker::wait_idle`: it returns once no message is in flight — every message a consumer
//! with credit could take has been received, dead letters have landed, due timers have fired,
//! wire connections have written what they encoded — and times out with an error naming
//! what is still busy. Consumers run on other threads, gated so that the test knows what is
//! in flight when it calls `wait_idle`; nothing here sleeps.

mod common;

use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::*;
use warrenmq::{
    Broker, ConsumeOptions, Consumer, Error, ExchangeKind, FieldTable, ManualClock, Message,
};

/// Too short for anything to change: the broker is busy and stays so.
const SHORT: Duration = Duration::from_millis(30);

/// Receives `count` deliveries on another thread once `go` says so, and returns their
/// bodies. The consumer is shared, so the test can look at its inbox.
fn receive_later(
    consumer: &Arc<Consumer>,
    count: usize,
) -> (mpsc::Sender<()>, thread::JoinHandle<Vec<String>>) {
    let (go, started) = mpsc::channel::<()>();
    let consumer = Arc::clone(consumer);
    let worker = thread::spawn(move || {
        started.recv().unwrap();
        (0..count)
            .map(|_| {
                let d = consumer.recv_timeout(PATIENCE).expect("a delivery");
                let text = body(&d);
                d.ack().unwrap();
                text
            })
            .collect()
    });
    (go, worker)
}

fn not_idle(result: Result<(), Error>) -> Vec<String> {
    match result {
        Err(Error::NotIdle { busy, .. }) => busy,
        other => panic!("expected NotIdle, got {other:?}"),
    }
}

#[test]
fn smoke() {
    let (broker, _conn, _ch) = setup();
    broker.wait_idle(Duration::ZERO).unwrap();
}

#[test]
fn waits_for_a_consumer_on_another_thread() {
    let (broker, _conn, ch) = setup();
    declare_queue(&ch, "jobs");
    let consumer = Arc::new(ch.basic_consume("jobs", ConsumeOptions::default()).unwrap());
    let (go, worker) = receive_later(&consumer, 100);
    for n in 0..100 {
        publish(&ch, "", "jobs", &format!("job {n}"));
    }
    // Nothing has been received: every message waits in the consumer's inbox.
    let busy = not_idle(broker.wait_idle(SHORT));
    assert_eq!(
        busy,
        ["queue 'jobs' in vhost '/': 100 in consumer inboxes, not yet received"]
    );
    go.send(()).unwrap();
    broker.wait_idle(PATIENCE).unwrap();
    // Returned only once the worker had taken every message.
    assert!(consumer.is_empty());
    assert_eq!(broker.queue_stats("/", "jobs").unwrap().messages_ready, 0);
    let bodies = worker.join().unwrap();
    assert_eq!(bodies.len(), 100);
    assert_eq!(bodies[99], "job 99");
}

#[test]
fn messages_nobody_can_take_are_not_in_flight() {
    let (broker, _conn, ch) = setup();
    declare_queue(&ch, "backlog");
    declare_queue(&ch, "limited");
    for n in 0..3 {
        publish(&ch, "", "backlog", &format!("{n}"));
        publish(&ch, "", "limited", &format!("{n}"));
    }
    // A queue without consumers waits for the application: idle.
    broker.wait_idle(SHORT).unwrap();
    // A consumer out of credit cannot take the rest: idle once it has received its one.
    ch.basic_qos(1).unwrap();
    let consumer = ch
        .basic_consume("limited", ConsumeOptions::default())
        .unwrap();
    let busy = not_idle(broker.wait_idle(SHORT));
    assert_eq!(
        busy,
        ["queue 'limited' in vhost '/': 1 in consumer inboxes, not yet received"]
    );
    let held = consumer.recv().unwrap();
    broker.wait_idle(SHORT).unwrap();
    assert_eq!(
        broker.queue_stats("/", "limited").unwrap().messages_ready,
        2
    );
    // Its ack gives credit back: the next one is dispatched, and in flight again.
    held.ack().unwrap();
    assert!(broker.wait_idle(SHORT).is_err());
    drop(consumer.recv().unwrap());
}

#[test]
fn the_timeout_error_names_what_is_busy() {
    let (broker, _conn, ch) = setup();
    declare_queue(&ch, "q");
    let _consumer = ch.basic_consume("q", ConsumeOptions::default()).unwrap();
    for _ in 0..3 {
        publish(&ch, "", "q", "x");
    }
    let err = broker.wait_idle(SHORT).unwrap_err();
    assert_eq!(code(&err), 541);
    let text = err.to_string();
    assert!(
        text.starts_with("INTERNAL_ERROR - broker not idle after "),
        "{text}"
    );
    assert!(
        text.ends_with(": queue 'q' in vhost '/': 3 in consumer inboxes, not yet received"),
        "{text}"
    );
    let Error::NotIdle { waited, .. } = err else {
        unreachable!()
    };
    assert!(waited >= SHORT);
}

#[test]
fn a_dead_letter_chain_ends_at_a_consumer_on_another_thread() {
    let clock = ManualClock::new();
    let broker = Broker::builder().clock(clock.clone()).build().unwrap();
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    // delay (TTL 1 s) --expired--> dlx (fanout) --> work (consumer on another thread)
    declare_exchange(&ch, "dlx", ExchangeKind::Fanout);
    declare_queue(&ch, "work");
    ch.queue_bind("work", "dlx", "", FieldTable::new()).unwrap();
    let args = FieldTable::new()
        .with("x-message-ttl", 1_000)
        .with("x-dead-letter-exchange", "dlx");
    declare(&ch, "delay", args);
    let consumer = Arc::new(ch.basic_consume("work", ConsumeOptions::default()).unwrap());
    let (go, worker) = receive_later(&consumer, 20);
    go.send(()).unwrap();
    for n in 0..20 {
        publish(&ch, "", "delay", &format!("retry {n}"));
    }
    // Nothing is due yet: the messages wait out their TTL, which is not "in flight".
    broker.wait_idle(PATIENCE).unwrap();
    assert_eq!(broker.queue_stats("/", "delay").unwrap().messages_ready, 20);
    clock.advance(Duration::from_millis(1_000));
    broker.wait_idle(PATIENCE).unwrap();
    // Expired, dead-lettered, routed, and received by the worker, all before it returned.
    assert_eq!(broker.queue_stats("/", "delay").unwrap().messages_ready, 0);
    let work = broker.queue_stats("/", "work").unwrap();
    assert_eq!((work.messages_ready, work.messages_delivered), (0, 20));
    assert!(consumer.is_empty());
    let bodies = worker.join().unwrap();
    assert_eq!(bodies.first().map(String::as_str), Some("retry 0"));
}

#[test]
fn a_rejection_on_another_thread_is_followed_to_the_dead_letter_queue() {
    let (broker, _conn, ch) = setup();
    work_with_dlx(&ch);
    let dead = Arc::new(ch.basic_consume("dlq", ConsumeOptions::default()).unwrap());
    let (go_dead, dead_worker) = receive_later(&dead, 10);
    go_dead.send(()).unwrap();
    let work = ch.basic_consume("work", ConsumeOptions::default()).unwrap();
    let rejecter = thread::spawn(move || {
        for _ in 0..10 {
            work.recv_timeout(PATIENCE).unwrap().reject(false).unwrap();
        }
    });
    for n in 0..10 {
        publish(&ch, "", "work", &format!("bad {n}"));
    }
    rejecter.join().unwrap();
    broker.wait_idle(PATIENCE).unwrap();
    assert!(dead.is_empty());
    let dlq = broker.queue_stats("/", "dlq").unwrap();
    assert_eq!((dlq.messages_ready, dlq.messages_delivered), (0, 10));
    assert_eq!(dead_worker.join().unwrap().len(), 10);
}

#[test]
fn due_delayed_messages_are_released() {
    let clock = ManualClock::new();
    let broker = Broker::builder().clock(clock.clone()).build().unwrap();
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    ch.exchange_declare(
        "later",
        ExchangeKind::DelayedMessage,
        warrenmq::ExchangeDeclareOptions::default(),
        FieldTable::new().with("x-delayed-type", "direct"),
    )
    .unwrap();
    declare_queue(&ch, "due");
    ch.queue_bind("due", "later", "k", FieldTable::new())
        .unwrap();
    ch.basic_publish("later", "k", Message::new("soon").header("x-delay", 500))
        .unwrap();
    broker.wait_idle(SHORT).unwrap();
    assert_eq!(broker.queue_stats("/", "due").unwrap().messages_ready, 0);
    clock.advance(Duration::from_millis(500));
    broker.wait_idle(SHORT).unwrap();
    assert_eq!(drain(&ch, "due"), ["soon"]);
}

#[test]
fn a_closed_broker_is_an_error() {
    let (broker, _conn, _ch) = setup();
    broker.close().unwrap();
    assert!(matches!(broker.wait_idle(SHORT), Err(Error::BrokerClosed)));
}

#[cfg(feature = "wire")]
mod wire {
    use amq_protocol::frame::AMQPFrame;
    use amq_protocol::protocol::{basic, channel, AMQPClass};

    use super::*;
    use common::raw_client::{encode_frame, RawClient};

    /// One body: big enough that a few fill the loopback socket's buffers.
    const BODY: usize = 1024 * 1024;
    const COUNT: usize = 24;

    fn method(channel: u16, class: AMQPClass) -> Vec<u8> {
        encode_frame(&AMQPFrame::Method(channel, class))
    }

    #[test]
    fn bytes_a_client_has_not_read_are_in_flight() {
        let (broker, server) = common::wire::serve();
        let ch = broker.connect("/").unwrap().open_channel().unwrap();
        declare_queue(&ch, "big");
        let mut client = RawClient::open(server.local_addr());
        let mut setup = method(
            1,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        );
        setup.extend(method(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                queue: "big".into(),
                consumer_tag: "reader".into(),
                no_local: false,
                no_ack: true,
                exclusive: false,
                nowait: false,
                arguments: Default::default(),
            })),
        ));
        client.send_bytes(&setup);
        // channel.open-ok, basic.consume-ok
        for _ in 0..2 {
            client.method().expect("a reply");
        }
        for _ in 0..COUNT {
            ch.basic_publish("", "big", Message::new(vec![7u8; BODY]))
                .unwrap();
        }
        // The client reads nothing: what the socket does not take waits in the connection.
        let busy = not_idle(broker.wait_idle(SHORT));
        assert!(
            busy.iter()
                .any(|b| b.starts_with("wire connection from 127.0.0.1:")
                    && b.contains("bytes not yet written to the client")),
            "{busy:?}"
        );
        let reading = thread::spawn(move || {
            let mut delivered = 0;
            while delivered < COUNT {
                match client.method() {
                    Some((1, AMQPClass::Basic(basic::AMQPMethod::Deliver(_)))) => delivered += 1,
                    Some(_) => {}
                    None => panic!("the server hung up"),
                }
            }
            client
        });
        broker.wait_idle(PATIENCE).unwrap();
        let _client = reading.join().unwrap();
        assert_eq!(
            broker.queue_stats("/", "big").unwrap().messages_delivered,
            COUNT as u64
        );
    }
}
