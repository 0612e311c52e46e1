//! Many threads through one queue: every message arrives exactly once and none is left.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use common::*;
use futures_lite::StreamExt;
use warrenmq::{Broker, ConsumeOptions, Message};

/// Messages moved by the stress test: the million in release builds.
const COUNT: usize = if cfg!(debug_assertions) {
    100_000
} else {
    1_000_000
};
const PUBLISHERS: usize = 4;
const CONSUMERS: usize = 4;

#[test]
fn smoke() {
    let (_b, _c, ch) = setup();
    declare_queue(&ch, "q");
    ch.basic_publish("", "q", Message::new(7u64.to_le_bytes().to_vec()))
        .unwrap();
    assert_eq!(drain(&ch, "q").len(), 1);
}

#[test]
fn four_publishers_and_four_acking_consumers_move_every_message_exactly_once() {
    let (broker, conn, ch) = setup();
    declare_queue(&ch, "work");
    let received = AtomicUsize::new(0);
    let per_consumer: Vec<Vec<u64>> = thread::scope(|s| {
        let consumers: Vec<_> = (0..CONSUMERS)
            .map(|_| {
                let ch = conn.open_channel().unwrap();
                ch.basic_qos(256).unwrap();
                let received = &received;
                s.spawn(move || {
                    let consumer = ch.basic_consume("work", ConsumeOptions::default()).unwrap();
                    let mut ids = Vec::with_capacity(COUNT / CONSUMERS);
                    loop {
                        match consumer.recv_timeout(Duration::from_millis(200)) {
                            Ok(d) => {
                                let id = u64::from_le_bytes(d.body()[..8].try_into().unwrap());
                                ids.push(id);
                                d.ack().unwrap();
                                received.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) if e.is_timeout() => {
                                if received.load(Ordering::Relaxed) >= COUNT {
                                    break;
                                }
                            }
                            Err(e) => panic!("consumer failed: {e}"),
                        }
                    }
                    ids
                })
            })
            .collect();
        for p in 0..PUBLISHERS {
            let ch = conn.open_channel().unwrap();
            s.spawn(move || {
                for i in (p..COUNT).step_by(PUBLISHERS) {
                    ch.basic_publish("", "work", Message::new((i as u64).to_le_bytes().to_vec()))
                        .unwrap();
                }
            });
        }
        consumers.into_iter().map(|c| c.join().unwrap()).collect()
    });

    check_exactly_once(&broker, &per_consumer);
}

#[test]
fn four_publishers_and_four_async_acking_consumers_move_every_message_exactly_once() {
    let (broker, conn, ch) = setup();
    declare_queue(&ch, "work");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let received = std::sync::Arc::new(AtomicUsize::new(0));
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            let ch = conn.open_channel().unwrap();
            ch.basic_qos(256).unwrap();
            let mut consumer = ch.basic_consume("work", ConsumeOptions::default()).unwrap();
            let received = std::sync::Arc::clone(&received);
            runtime.spawn(async move {
                let _channel = ch;
                let mut ids = Vec::with_capacity(COUNT / CONSUMERS);
                loop {
                    let next = tokio::time::timeout(Duration::from_millis(200), consumer.next());
                    match next.await {
                        Ok(Some(d)) => {
                            ids.push(u64::from_le_bytes(d.body()[..8].try_into().unwrap()));
                            d.ack().unwrap();
                            received.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(None) => panic!("the consumer was cancelled"),
                        Err(_) if received.load(Ordering::Relaxed) >= COUNT => break,
                        Err(_) => {}
                    }
                }
                ids
            })
        })
        .collect();
    thread::scope(|s| {
        for p in 0..PUBLISHERS {
            let ch = conn.open_channel().unwrap();
            s.spawn(move || {
                for i in (p..COUNT).step_by(PUBLISHERS) {
                    ch.basic_publish("", "work", Message::new((i as u64).to_le_bytes().to_vec()))
                        .unwrap();
                }
            });
        }
    });
    let per_consumer: Vec<Vec<u64>> = runtime.block_on(async {
        let mut all = Vec::new();
        for task in consumers {
            all.push(task.await.unwrap());
        }
        all
    });
    check_exactly_once(&broker, &per_consumer);
}

/// Checks that the consumers together received every message once and that none is left.
fn check_exactly_once(broker: &Broker, per_consumer: &[Vec<u64>]) {
    let mut seen = vec![false; COUNT];
    for ids in per_consumer {
        assert!(!ids.is_empty(), "every consumer got a share");
        for &id in ids {
            let slot = &mut seen[usize::try_from(id).unwrap()];
            assert!(!*slot, "message {id} arrived twice");
            *slot = true;
        }
    }
    assert!(seen.iter().all(|s| *s), "some message never arrived");
    let stats = broker.queue_stats("/", "work").unwrap();
    assert_eq!(
        (stats.messages_ready, stats.messages_unacknowledged),
        (0, 0)
    );
    assert_eq!(broker.exchange_stats("/", "").unwrap().routed, COUNT as u64);
}
