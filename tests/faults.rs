//! Fault injection for tests: `Channel::force_close` and `Connection::force_close` close a
//! channel or a connection as the broker does on an error (consumers end, unacked messages
//! go back redelivered, later operations fail with the code and text given), and
//! `Broker::crash_and_reopen` restarts a persistent broker as after `kill -9` (no clean
//! shutdown: every recovered message comes back redelivered; what was acked, transient or
//! non-durable is gone), the rule of docs/persistence.md.

mod common;

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::*;
use warrenmq::{
    Broker, ConsumeOptions, Error, FieldTable, GetOptions, ManualClock, Message,
    QueueDeclareOptions, RecvTimeoutError, ReplyCode,
};

#[test]
fn smoke() {
    let (_broker, conn, ch) = setup();
    ch.force_close(ReplyCode::PRECONDITION_FAILED, "x").unwrap();
    assert!(ch.is_closed() && !conn.is_closed());
}

/// A consumer blocked in `recv` on another thread; returns what its `recv` ended with.
fn blocked_consumer(
    consumer: warrenmq::Consumer,
) -> thread::JoinHandle<Result<warrenmq::Delivery, RecvTimeoutError>> {
    let (ready, started) = std::sync::mpsc::channel();
    let handle = thread::spawn(move || {
        ready.send(current_thread_id()).unwrap();
        consumer.recv_timeout(PATIENCE)
    });
    wait_until_blocked(started.recv().unwrap());
    handle
}

/// Declares `queue` with one message `held`, fetched and not acked, and a consumer blocked
/// on another thread.
fn held_and_waiting(
    ch: &warrenmq::Channel,
    queue: &str,
) -> (
    warrenmq::Delivery,
    thread::JoinHandle<Result<warrenmq::Delivery, RecvTimeoutError>>,
) {
    declare_queue(ch, queue);
    publish(ch, "", queue, "held");
    let held = ch.basic_get(queue, GetOptions::default()).unwrap().unwrap();
    let waiting = blocked_consumer(ch.basic_consume(queue, ConsumeOptions::default()).unwrap());
    (held, waiting)
}

#[test]
fn a_channel_closed_with_406_ends_its_consumers_and_requeues_its_deliveries() {
    let (broker, conn, ch) = setup();
    let (held, waiting) = held_and_waiting(&ch, "jobs");
    ch.force_close(
        ReplyCode::PRECONDITION_FAILED,
        "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'jobs' in vhost '/'",
    )
    .unwrap();
    // The consumer on the other thread sees its cancel.
    assert_eq!(
        waiting.join().unwrap().unwrap_err(),
        RecvTimeoutError::Disconnected
    );
    // Every later operation fails with the channel's closing error.
    let err = ch.basic_publish("", "jobs", Message::new("x")).unwrap_err();
    assert_eq!(code(&err), 504);
    let cause = err.cause().expect("the cause");
    assert_eq!(cause.reply_code(), ReplyCode::PRECONDITION_FAILED);
    assert_eq!(
        cause.reply_text(),
        "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'jobs' in vhost '/'"
    );
    assert!(matches!(cause, Error::PreconditionFailed { .. }));
    assert!(held.ack().is_err());
    // The unacked message is back, redelivered; the connection goes on.
    assert!(!conn.is_closed());
    let other = conn.open_channel().unwrap();
    assert_eq!(drain_marked(&other, "jobs"), ["held(R)"]);
    broker.wait_idle(PATIENCE).unwrap();
}

#[test]
fn a_channel_closed_with_a_hard_error_closes_its_connection() {
    let (_broker, conn, ch) = setup();
    let other = conn.open_channel().unwrap();
    ch.force_close(ReplyCode::INTERNAL_ERROR, "something broke")
        .unwrap();
    assert!(conn.is_closed());
    let err = other.queue_declare("q", QueueDeclareOptions::default(), FieldTable::new());
    let err = err.unwrap_err();
    assert_eq!(err.reply_code(), ReplyCode::INTERNAL_ERROR);
    assert_eq!(err.to_string(), "INTERNAL_ERROR - something broke");
}

#[test]
fn a_connection_closed_with_320_ends_consumers_and_deletes_exclusive_queues() {
    let (broker, conn, ch) = setup();
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        ..QueueDeclareOptions::default()
    };
    ch.queue_declare("mine", exclusive, FieldTable::new())
        .unwrap();
    let (held, waiting) = held_and_waiting(&ch, "shared");
    conn.force_close(ReplyCode::CONNECTION_FORCED, "Closed via management plugin")
        .unwrap();
    assert!(waiting.join().unwrap().is_err());
    assert!(conn.is_closed() && ch.is_closed());
    for err in [
        ch.basic_publish("", "shared", Message::new("x"))
            .unwrap_err(),
        conn.open_channel().unwrap_err(),
        held.ack().unwrap_err(),
    ] {
        assert_eq!(err.reply_code(), ReplyCode::CONNECTION_FORCED);
        assert_eq!(
            err.reply_text(),
            "CONNECTION_FORCED - Closed via management plugin"
        );
    }
    // The broker and its other connections go on.
    let other = broker.connect("/").unwrap().open_channel().unwrap();
    assert_eq!(code(&broker.queue_stats("/", "mine").unwrap_err()), 404);
    assert_eq!(drain_marked(&other, "shared"), ["held(R)"]);
    // Closing again changes nothing.
    conn.force_close(ReplyCode::INTERNAL_ERROR, "again")
        .unwrap();
    let err = ch
        .basic_publish("", "shared", Message::new("x"))
        .unwrap_err();
    assert_eq!(err.reply_code(), ReplyCode::CONNECTION_FORCED);
}

/// A durable queue with four persistent messages (confirmed): one acked, one delivered and
/// unacked, two never delivered; plus a transient message and a non-durable queue.
fn crash_scene(broker: &Broker) -> warrenmq::Channel {
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    ch.queue_declare("jobs", QueueDeclareOptions::durable(), FieldTable::new())
        .unwrap();
    declare_queue(&ch, "scratch");
    ch.confirm_select().unwrap();
    for n in 1..=4 {
        ch.basic_publish("", "jobs", Message::new(format!("m{n}")).persistent())
            .unwrap();
    }
    ch.basic_publish("", "jobs", Message::new("transient"))
        .unwrap();
    publish(&ch, "", "scratch", "scratch");
    assert!(ch.wait_for_confirms().unwrap());
    ch.basic_get("jobs", GetOptions::default())
        .unwrap()
        .unwrap()
        .ack()
        .unwrap();
    ch
}

#[test]
fn a_crash_keeps_what_was_stored_and_marks_it_redelivered() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path().join("warren.redb")).unwrap();
    let ch = crash_scene(&broker);
    let unacked = ch
        .basic_get("jobs", GetOptions::default())
        .unwrap()
        .unwrap();
    assert_eq!(body(&unacked), "m2");
    declare_queue(&ch, "empty");
    let waiting = blocked_consumer(
        ch.basic_consume("empty", ConsumeOptions::default())
            .unwrap(),
    );
    let broker = broker.crash_and_reopen().unwrap();
    // The old broker is gone: its consumer ended, its handles fail.
    let _ = waiting.join().unwrap();
    assert!(matches!(
        ch.basic_publish("", "jobs", Message::new("x")),
        Err(Error::BrokerClosed)
    ));
    assert!(unacked.ack().is_err());
    // Acked: gone. Delivered or not: back, and all redelivered (the crash rule).
    // Transient messages and non-durable queues: gone.
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    assert_eq!(drain_marked(&ch, "jobs"), ["m2(R)", "m3(R)", "m4(R)"]);
    assert_eq!(code(&broker.queue_stats("/", "scratch").unwrap_err()), 404);
}

#[test]
fn a_clean_restart_differs_from_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warren.redb");
    let broker = Broker::open(&path).unwrap();
    let ch = crash_scene(&broker);
    drop(
        ch.basic_get("jobs", GetOptions::default())
            .unwrap()
            .unwrap(),
    );
    drop(ch);
    broker.close().unwrap();
    // After a clean shutdown only what was delivered comes back redelivered.
    let broker = Broker::open(&path).unwrap();
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    assert_eq!(drain_marked(&ch, "jobs"), ["m2(R)", "m3", "m4"]);
    assert!(broker.crash_and_reopen().is_ok());
    assert!(matches!(
        broker.crash_and_reopen(),
        Err(Error::BrokerClosed)
    ));
}

#[test]
fn a_crash_keeps_the_settings_and_an_in_memory_broker_comes_back_empty() {
    let clock = ManualClock::new();
    let broker = Broker::builder().clock(clock.clone()).build().unwrap();
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    declare_queue(&ch, "q");
    publish(&ch, "", "q", "x");
    let broker = broker.crash_and_reopen().unwrap();
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    assert_eq!(code(&broker.queue_stats("/", "q").unwrap_err()), 404);
    // The restarted broker runs on the same clock.
    declare(&ch, "ttl", FieldTable::new().with("x-message-ttl", 100));
    publish(&ch, "", "ttl", "soon gone");
    clock.advance(Duration::from_millis(100));
    assert_eq!(broker.queue_stats("/", "ttl").unwrap().messages_ready, 0);
}

#[test]
fn wait_idle_and_faults_work_together() {
    let (broker, _conn, ch) = setup();
    declare_queue(&ch, "q");
    let consumer = Arc::new(ch.basic_consume("q", ConsumeOptions::default()).unwrap());
    publish(&ch, "", "q", "x");
    assert!(broker.wait_idle(Duration::from_millis(20)).is_err());
    // Closing the channel puts the message back with no consumer: nothing in flight.
    ch.force_close(ReplyCode::NOT_FOUND, "no queue 'q' in vhost '/'")
        .unwrap();
    broker.wait_idle(PATIENCE).unwrap();
    assert!(consumer.recv().is_err());
    assert_eq!(broker.queue_stats("/", "q").unwrap().messages_ready, 1);
}
