//! Consuming: basic_get, blocking consumers, callbacks with wait, cancel, prefetch,
//! round-robin, exclusive consumers (docs/rabbitmq-observations.md, sections 7, 8, 11).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::*;
use warrenmq::{ConsumeOptions, GetOptions, RecvTimeoutError, TryRecvError};

#[test]
fn smoke() {
    let (_b, _c, ch) = setup();
    declare_queue(&ch, "q");
    let consumer = ch.basic_consume("q", ConsumeOptions::no_ack()).unwrap();
    publish(&ch, "", "q", "hi");
    assert_eq!(body(&consumer.recv().unwrap()), "hi");
}

#[test]
fn basic_get_returns_none_when_empty_and_counts_what_is_left() {
    let (broker, _c, ch) = setup();
    declare_queue(&ch, "q");
    assert!(ch.basic_get("q", GetOptions::default()).unwrap().is_none());
    publish(&ch, "", "q", "a");
    publish(&ch, "", "q", "b");
    let a = ch.basic_get("q", GetOptions::default()).unwrap().unwrap();
    assert_eq!(
        (body(&a), a.message_count(), a.delivery_tag()),
        ("a".into(), Some(1), 1)
    );
    assert_eq!(a.consumer_tag(), None);
    let b = ch.basic_get("q", GetOptions::no_ack()).unwrap().unwrap();
    assert_eq!(
        (body(&b), b.message_count(), b.delivery_tag()),
        ("b".into(), Some(0), 2)
    );
    let stats = broker.queue_stats("/", "q").unwrap();
    assert_eq!(
        (stats.messages_ready, stats.messages_unacknowledged),
        (0, 1)
    );
    a.ack().unwrap();
    assert_eq!(broker.queue_stats("/", "q").unwrap().messages(), 0);
    assert_eq!(
        code(&ch.basic_get("missing", GetOptions::default()).unwrap_err()),
        404
    );
}

#[test]
fn blocking_receive_family() {
    let (_b, _c, ch) = setup();
    declare_queue(&ch, "q");
    let consumer = ch
        .basic_consume("q", ConsumeOptions::default().tag("mine"))
        .unwrap();
    assert_eq!(consumer.tag(), "mine");
    assert_eq!(consumer.queue(), "q");
    assert_eq!(consumer.try_recv().unwrap_err(), TryRecvError::Empty);
    assert_eq!(
        consumer
            .recv_timeout(Duration::from_millis(20))
            .unwrap_err(),
        RecvTimeoutError::Timeout
    );
    for i in 0..3 {
        publish(&ch, "", "q", &i.to_string());
    }
    assert_eq!(consumer.len(), 3);
    let first = consumer.try_recv().unwrap();
    assert_eq!(
        (body(&first), first.consumer_tag()),
        ("0".into(), Some("mine"))
    );
    let rest: Vec<String> = consumer.try_iter().map(|d| body(&d)).collect();
    assert_eq!(rest, ["1", "2"]);
    assert!(consumer.is_empty());

    // A consumer blocked in recv wakes when a message is published from another thread.
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let receiver = thread::spawn(move || {
        tid_tx.send(current_thread_id()).unwrap();
        let late = body(&consumer.recv().unwrap());
        (late, consumer)
    });
    wait_until_blocked(tid_rx.recv().unwrap());
    publish(&ch, "", "q", "late");
    let (late, consumer) = receiver.join().unwrap();
    assert_eq!(late, "late");
    ch.basic_cancel("mine").unwrap();
    assert_eq!(consumer.recv().unwrap_err(), warrenmq::RecvError);
    assert!(consumer.try_recv().unwrap_err().is_disconnected());
}

#[test]
fn generated_consumer_tags_and_tag_reuse() {
    let (_b, conn, ch) = setup();
    declare_queue(&ch, "q");
    let c1 = ch.basic_consume("q", ConsumeOptions::default()).unwrap();
    assert!(
        c1.tag().starts_with("amq.ctag-") && c1.tag().len() == 31,
        "{}",
        c1.tag()
    );
    let _c2 = ch
        .basic_consume("q", ConsumeOptions::default().tag("t"))
        .unwrap();
    // The same tag on another channel is fine.
    let ch2 = conn.open_channel().unwrap();
    let _c3 = ch2
        .basic_consume("q", ConsumeOptions::default().tag("t"))
        .unwrap();
    // Reusing a tag on one channel is a connection error (530), as in RabbitMQ.
    let err = ch
        .basic_consume("q", ConsumeOptions::default().tag("t"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "NOT_ALLOWED - attempt to reuse consumer tag 't'"
    );
    assert!(conn.is_closed());
}

#[test]
fn iteration_ends_when_the_consumer_is_cancelled() {
    let (_b, _conn, ch) = setup();
    declare_queue(&ch, "q");
    let consumer = ch
        .basic_consume("q", ConsumeOptions::no_ack().tag("it"))
        .unwrap();
    for i in 0..5 {
        publish(&ch, "", "q", &i.to_string());
    }
    let received = Arc::new(AtomicUsize::new(0));
    let reader = thread::spawn({
        let received = Arc::clone(&received);
        move || {
            (&consumer)
                .into_iter()
                .map(|d| {
                    received.fetch_add(1, Ordering::SeqCst);
                    body(&d)
                })
                .collect::<Vec<_>>()
        }
    });
    // Cancel once the reader has taken all five: the iteration then ends.
    eventually("the reader has all five", || {
        received.load(Ordering::SeqCst) == 5
    });
    ch.basic_cancel("it").unwrap();
    assert_eq!(reader.join().unwrap(), ["0", "1", "2", "3", "4"]);
}

#[test]
fn callbacks_run_on_the_waiting_thread() {
    let (_b, _c, ch) = setup();
    declare_queue(&ch, "po_box");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let tag = ch
        .basic_consume_with(
            "po_box",
            ConsumeOptions::no_ack().tag("consumer"),
            move |d| {
                sink.lock()
                    .unwrap()
                    .push((body(&d), d.consumer_tag().map(str::to_owned)));
            },
        )
        .unwrap();
    assert_eq!(tag, "consumer");
    assert!(!ch.wait_timeout(Duration::from_millis(10)).unwrap());
    for i in 0..3 {
        publish(&ch, "", "po_box", &i.to_string());
    }
    for _ in 0..3 {
        ch.wait().unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[2], ("2".to_owned(), Some("consumer".to_owned())));
    ch.basic_cancel("consumer").unwrap();
    publish(&ch, "", "po_box", "after cancel");
    assert!(!ch.wait_timeout(Duration::from_millis(20)).unwrap());
    assert_eq!(drain(&ch, "po_box"), ["after cancel"]);
}

#[test]
fn callbacks_with_manual_ack() {
    let (broker, _c, ch) = setup();
    declare_queue(&ch, "q");
    ch.basic_consume_with("q", ConsumeOptions::default(), |d| d.ack().unwrap())
        .unwrap();
    publish(&ch, "", "q", "x");
    assert!(ch.wait_timeout(PATIENCE).unwrap());
    assert_eq!(broker.queue_stats("/", "q").unwrap().messages(), 0);
}

#[test]
fn a_panicking_callback_requeues_its_message_and_spares_the_rest() {
    let (broker, conn, ch) = setup();
    declare_queue(&ch, "q");
    declare_queue(&ch, "other");
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    ch.basic_consume_with("q", ConsumeOptions::default(), move |d| {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("first delivery fails on purpose");
        }
        assert!(d.redelivered(), "the retried message is marked redelivered");
        d.ack().unwrap();
    })
    .unwrap();
    let others = Arc::new(AtomicUsize::new(0));
    let other_counter = Arc::clone(&others);
    ch.basic_consume_with("other", ConsumeOptions::no_ack(), move |_d| {
        other_counter.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    publish(&ch, "", "q", "boom");
    assert!(ch.wait_timeout(PATIENCE).unwrap()); // panics inside, caught
    assert!(ch.wait_timeout(PATIENCE).unwrap()); // redelivered and acked
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    publish(&ch, "", "other", "fine");
    assert!(ch.wait_timeout(PATIENCE).unwrap());
    assert_eq!(others.load(Ordering::SeqCst), 1);
    assert!(!ch.is_closed() && !conn.is_closed());
    assert_eq!(broker.queue_stats("/", "q").unwrap().messages(), 0);
}

#[test]
fn a_panicking_no_ack_callback_also_requeues() {
    let (broker, _c, ch) = setup();
    declare_queue(&ch, "q");
    ch.basic_consume_with("q", ConsumeOptions::no_ack().tag("c"), |_d| {
        panic!("on purpose")
    })
    .unwrap();
    publish(&ch, "", "q", "m");
    assert!(ch.wait_timeout(PATIENCE).unwrap());
    ch.basic_cancel("c").unwrap();
    let again = ch.basic_get("q", GetOptions::no_ack()).unwrap().unwrap();
    assert!(again.redelivered());
    assert_eq!(broker.queue_stats("/", "q").unwrap().messages(), 0);
}

#[test]
fn round_robin_among_consumers() {
    let (_b, conn, _ch) = setup();
    let chans: Vec<_> = (0..3).map(|_| conn.open_channel().unwrap()).collect();
    declare_queue(&chans[0], "q");
    let consumers: Vec<_> = chans
        .iter()
        .map(|c| c.basic_consume("q", ConsumeOptions::no_ack()).unwrap())
        .collect();
    for i in 1..=9 {
        publish(&chans[0], "", "q", &format!("m{i}"));
    }
    let got: Vec<Vec<String>> = consumers
        .iter()
        .map(|c| c.try_iter().map(|d| body(&d)).collect())
        .collect();
    assert_eq!(got[0], ["m1", "m4", "m7"]);
    assert_eq!(got[1], ["m2", "m5", "m8"]);
    assert_eq!(got[2], ["m3", "m6", "m9"]);
}

#[test]
fn prefetch_limits_unacked_deliveries_per_consumer() {
    let (broker, _c, ch) = setup();
    declare_queue(&ch, "q");
    ch.basic_qos(2).unwrap();
    let consumer = ch.basic_consume("q", ConsumeOptions::default()).unwrap();
    for i in 1..=5 {
        publish(&ch, "", "q", &format!("p{i}"));
    }
    let stats = broker.queue_stats("/", "q").unwrap();
    assert_eq!(
        (stats.messages_ready, stats.messages_unacknowledged),
        (3, 2)
    );
    let p1 = consumer.try_recv().unwrap();
    let p2 = consumer.try_recv().unwrap();
    assert_eq!(consumer.try_recv().unwrap_err(), TryRecvError::Empty);
    p1.ack().unwrap();
    let p3 = consumer.recv_timeout(PATIENCE).unwrap();
    assert_eq!(body(&p3), "p3");
    assert_eq!(broker.queue_stats("/", "q").unwrap().messages_ready, 2);
    // basic_get is not limited by prefetch.
    assert_eq!(
        body(&ch.basic_get("q", GetOptions::no_ack()).unwrap().unwrap()),
        "p4"
    );
    drop((p2, p3));
}

#[test]
fn qos_applies_to_consumers_created_afterwards() {
    let (broker, _c, ch) = setup();
    declare_queue(&ch, "q");
    ch.basic_qos(1).unwrap();
    let _limited = ch.basic_consume("q", ConsumeOptions::default()).unwrap();
    ch.basic_qos(0).unwrap();
    for i in 0..4 {
        publish(&ch, "", "q", &i.to_string());
    }
    // Round-robin: the limited consumer takes one, the unlimited one the other three.
    let stats = broker.queue_stats("/", "q").unwrap();
    assert_eq!(
        (stats.messages_ready, stats.messages_unacknowledged),
        (3, 1)
    );
    let _unlimited = ch.basic_consume("q", ConsumeOptions::default()).unwrap();
    let stats = broker.queue_stats("/", "q").unwrap();
    assert_eq!(
        (stats.messages_ready, stats.messages_unacknowledged),
        (0, 4)
    );
}

#[test]
fn exclusive_consumers() {
    let (_b, conn, ch) = setup();
    declare_queue(&ch, "q");
    let exclusive = warrenmq::ConsumeOptions {
        exclusive: true,
        ..Default::default()
    };
    let _c1 = ch.basic_consume("q", exclusive.clone()).unwrap();
    let ch2 = conn.open_channel().unwrap();
    let err = ch2
        .basic_consume("q", ConsumeOptions::default())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "ACCESS_REFUSED - queue 'q' in vhost '/' in exclusive use"
    );
    declare_queue(&ch, "r");
    let _c2 = ch.basic_consume("r", ConsumeOptions::default()).unwrap();
    let ch3 = conn.open_channel().unwrap();
    assert_eq!(code(&ch3.basic_consume("r", exclusive).unwrap_err()), 403);
}

#[test]
fn dropping_a_consumer_cancels_it_and_returns_unreceived_messages_in_order() {
    let (broker, _c, ch) = setup();
    declare_queue(&ch, "q");
    let consumer = ch.basic_consume("q", ConsumeOptions::default()).unwrap();
    for i in 1..=4 {
        publish(&ch, "", "q", &format!("m{i}"));
    }
    let m1 = consumer.recv().unwrap();
    drop(consumer);
    let stats = broker.queue_stats("/", "q").unwrap();
    assert_eq!(
        (
            stats.consumers,
            stats.messages_ready,
            stats.messages_unacknowledged
        ),
        (0, 3, 1)
    );
    // m2..m4 never reached the application: they come back as they were, not redelivered.
    let next = ch.basic_get("q", GetOptions::no_ack()).unwrap().unwrap();
    assert_eq!((body(&next), next.redelivered()), ("m2".into(), false));
    m1.ack().unwrap();
}

#[test]
fn cancel_leaves_received_messages_unacked_until_acked() {
    let (broker, _c, ch) = setup();
    declare_queue(&ch, "q");
    ch.basic_qos(3).unwrap();
    let consumer = ch
        .basic_consume("q", ConsumeOptions::default().tag("c"))
        .unwrap();
    for i in 1..=5 {
        publish(&ch, "", "q", &format!("m{i}"));
    }
    let held: Vec<_> = (0..3).map(|_| consumer.recv().unwrap()).collect();
    ch.basic_cancel("c").unwrap();
    let stats = broker.queue_stats("/", "q").unwrap();
    assert_eq!(
        (
            stats.messages_ready,
            stats.messages_unacknowledged,
            stats.consumers
        ),
        (2, 3, 0)
    );
    let mut held = held.into_iter();
    held.next().unwrap().ack().unwrap();
    held.next().unwrap().nack(true).unwrap();
    assert_eq!(broker.queue_stats("/", "q").unwrap().messages_ready, 3);
    drop(held);
    // Cancelling an unknown tag is fine.
    ch.basic_cancel("never-existed").unwrap();
    assert!(!ch.is_closed());
}

/// Reads the calling thread's CPU time (user + system) from /proc, in clock ticks.
fn thread_cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

#[test]
fn an_idle_consumer_parks_instead_of_spinning() {
    if thread_cpu_ticks().is_none() {
        println!("skipped: /proc/thread-self/stat is not available on this platform");
        return;
    }
    let (_b, _c, ch) = setup();
    declare_queue(&ch, "idle");
    let consumer = ch.basic_consume("idle", ConsumeOptions::default()).unwrap();
    let waiter = thread::spawn(move || {
        let before = thread_cpu_ticks().unwrap();
        let timed_out = consumer.recv_timeout(Duration::from_millis(500)).is_err();
        (timed_out, thread_cpu_ticks().unwrap() - before)
    });
    let (timed_out, used) = waiter.join().unwrap();
    assert!(timed_out);
    // Half a second of spinning would be ~50 ticks; a parked thread uses none.
    assert!(
        used < 5,
        "an idle consumer used {used} ticks of CPU in 500 ms"
    );
}
