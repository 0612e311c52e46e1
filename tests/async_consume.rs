//! The async faces: consumers as `recv_async` futures and `Stream`s, `Returns` as a stream,
//! confirms awaited (`wait_for_confirms_async`, per-publish `PublishConfirm` tickets) — on
//! tokio (multi-thread and current-thread) and on the `futures` executors, with no runtime
//! inside the crate. Cancel safety: futures dropped mid-stream lose and duplicate nothing.

mod common;

use std::collections::HashSet;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use common::*;
use futures_lite::StreamExt;
use warrenmq::{
    Broker, Channel, ConsumeOptions, Consumer, FieldTable, FieldValue, Message, PublishOptions,
    QueueDeclareOptions, RecvError,
};

/// Messages moved by the throughput tests (the 100,000).
const COUNT: u64 = 100_000;

fn id_of(d: &warrenmq::Delivery) -> u64 {
    u64::from_le_bytes(d.body()[..8].try_into().unwrap())
}

/// Publishes `count` numbered messages to queue `q` from another thread.
fn publish_numbered(
    conn: &warrenmq::Connection,
    queue: &str,
    count: u64,
) -> thread::JoinHandle<()> {
    let ch = conn.open_channel().unwrap();
    let queue = queue.to_owned();
    thread::spawn(move || {
        for i in 0..count {
            ch.basic_publish("", &queue, Message::new(i.to_le_bytes().to_vec()))
                .unwrap();
        }
    })
}

/// Consumes `count` messages from the stream with manual ack; returns their ids in order.
async fn consume_acking(mut consumer: Consumer, count: u64) -> Vec<u64> {
    let mut ids = Vec::with_capacity(count as usize);
    while (ids.len() as u64) < count {
        let d = consumer
            .next()
            .await
            .expect("the stream ends only when cancelled");
        ids.push(id_of(&d));
        d.ack().unwrap();
    }
    ids
}

type Job = std::pin::Pin<Box<dyn Future<Output = Vec<u64>> + Send>>;

/// Runs the 100,000-message manual-ack stream test with `block_on` as the executor.
fn hundred_thousand_with(block_on: impl FnOnce(Job) -> Vec<u64>) {
    let (broker, conn, ch) = setup();
    declare_queue(&ch, "work");
    ch.basic_qos(500).unwrap();
    let consumer = ch.basic_consume("work", ConsumeOptions::default()).unwrap();
    let publisher = publish_numbered(&conn, "work", COUNT);
    let ids = block_on(Box::pin(consume_acking(consumer, COUNT)));
    publisher.join().unwrap();
    assert_eq!(ids, (0..COUNT).collect::<Vec<_>>(), "in order, each once");
    let stats = broker.queue_stats("/", "work").unwrap();
    assert_eq!(
        (stats.messages_ready, stats.messages_unacknowledged),
        (0, 0)
    );
}

#[test]
fn smoke() {
    let (_b, _c, ch) = setup();
    declare_queue(&ch, "q");
    let consumer = ch.basic_consume("q", ConsumeOptions::default()).unwrap();
    publish(&ch, "", "q", "hello");
    let d = futures_executor::block_on(consumer.recv_async()).unwrap();
    assert_eq!(body(&d), "hello");
    d.ack().unwrap();
}

#[test]
fn hundred_thousand_with_manual_ack_on_tokio_multi_thread() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    hundred_thousand_with(|f| runtime.block_on(async { tokio::spawn(f).await.unwrap() }));
}

#[test]
fn hundred_thousand_with_manual_ack_on_tokio_current_thread() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    hundred_thousand_with(|f| runtime.block_on(f));
}

#[test]
fn hundred_thousand_with_manual_ack_on_futures_executors() {
    hundred_thousand_with(futures_executor::block_on);
    let pool = futures_executor::ThreadPool::builder()
        .pool_size(2)
        .create()
        .unwrap();
    hundred_thousand_with(|f| {
        let (tx, rx) = std::sync::mpsc::channel();
        pool.spawn_ok(async move {
            let _ = tx.send(f.await);
        });
        rx.recv().unwrap()
    });
}

#[test]
fn several_tasks_share_one_consumer_with_recv_async() {
    let (_b, conn, ch) = setup();
    declare_queue(&ch, "shared");
    let consumer = ch
        .basic_consume("shared", ConsumeOptions::no_ack())
        .unwrap();
    let publisher = publish_numbered(&conn, "shared", 10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let consumer = std::sync::Arc::new(consumer);
    let received: Vec<Vec<u64>> = runtime.block_on(async {
        let done = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let (consumer, done) = (consumer.clone(), done.clone());
                tokio::spawn(async move {
                    let mut ids = Vec::new();
                    while done.load(std::sync::atomic::Ordering::SeqCst) < 10_000 {
                        let next =
                            tokio::time::timeout(Duration::from_millis(50), consumer.recv_async());
                        if let Ok(d) = next.await {
                            ids.push(id_of(&d.unwrap()));
                            done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                    ids
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.push(task.await.unwrap());
        }
        all
    });
    publisher.join().unwrap();
    let mut seen = HashSet::new();
    for id in received.iter().flatten() {
        assert!(seen.insert(*id), "{id} received twice");
    }
    assert_eq!(seen.len(), 10_000);
}

/// A waker that does nothing: the test polls by hand.
fn noop_cx() -> Context<'static> {
    Context::from_waker(Waker::noop())
}

#[test]
fn dropping_recv_async_futures_mid_stream_loses_and_duplicates_nothing() {
    let (broker, _conn, ch) = setup();
    declare_queue(&ch, "q");
    let consumer = ch.basic_consume("q", ConsumeOptions::default()).unwrap();
    let mut cx = noop_cx();
    let mut got = Vec::new();
    let mut next = 0u64;
    for round in 0..3_000u64 {
        // Futures created, polled while empty (registered), then dropped: pure cancellation.
        for _ in 0..(round % 3) {
            let mut abandoned = pin!(consumer.recv_async());
            assert!(abandoned.as_mut().poll(&mut cx).is_pending());
        }
        // Publish one or two, then race two futures and drop the loser after one poll.
        for _ in 0..(1 + round % 2) {
            ch.basic_publish("", "q", Message::new(next.to_le_bytes().to_vec()))
                .unwrap();
            next += 1;
        }
        let mut a = pin!(consumer.recv_async());
        let mut b = pin!(consumer.recv_async());
        for fut in [a.as_mut(), b.as_mut()] {
            if let Poll::Ready(d) = fut.poll(&mut cx) {
                let d = d.unwrap();
                got.push(id_of(&d));
                d.ack().unwrap();
            }
        }
    }
    // Whatever the dropped futures did not take is still there for the next receive.
    while let Ok(d) = consumer.try_recv() {
        got.push(id_of(&d));
        d.ack().unwrap();
    }
    assert_eq!(
        got,
        (0..next).collect::<Vec<_>>(),
        "every message once, in order"
    );
    let stats = broker.queue_stats("/", "q").unwrap();
    assert_eq!(
        (stats.messages_ready, stats.messages_unacknowledged),
        (0, 0)
    );
}

#[test]
fn select_with_a_timer_loses_nothing_under_load() {
    let (_b, conn, ch) = setup();
    declare_queue(&ch, "q");
    let consumer = ch.basic_consume("q", ConsumeOptions::default()).unwrap();
    let publisher = publish_numbered(&conn, "q", 20_000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let ids = runtime.block_on(async {
        let mut ids = Vec::new();
        while ids.len() < 20_000 {
            tokio::select! {
                d = consumer.recv_async() => {
                    let d = d.unwrap();
                    ids.push(id_of(&d));
                    d.ack().unwrap();
                }
                () = tokio::task::yield_now() => {}
            }
        }
        ids
    });
    publisher.join().unwrap();
    assert_eq!(ids, (0..20_000).collect::<Vec<_>>());
}

#[test]
fn a_stream_ends_when_the_consumer_is_cancelled_and_recv_async_errs() {
    let (_b, _c, ch) = setup();
    declare_queue(&ch, "q");
    let mut consumer = ch.basic_consume("q", ConsumeOptions::no_ack()).unwrap();
    publish(&ch, "", "q", "last");
    ch.queue_delete("q", Default::default()).unwrap();
    futures_executor::block_on(async {
        assert!(
            consumer.next().await.is_none(),
            "a deleted queue drops its messages"
        );
        assert_eq!(consumer.recv_async().await.unwrap_err(), RecvError);
    });
}

#[test]
fn a_pending_stream_wakes_when_its_channel_closes() {
    let (_b, _conn, ch) = setup();
    declare_queue(&ch, "q");
    let mut consumer = ch.basic_consume("q", ConsumeOptions::default()).unwrap();
    let closer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        ch.close();
    });
    let end = futures_executor::block_on(consumer.next());
    assert!(end.is_none());
    closer.join().unwrap();
}

#[test]
fn dropping_an_async_consumer_requeues_what_it_held() {
    let (broker, _conn, ch) = setup();
    declare_queue(&ch, "q");
    for i in 0..10u64 {
        ch.basic_publish("", "q", Message::new(i.to_le_bytes().to_vec()))
            .unwrap();
    }
    let mut first = ch.basic_consume("q", ConsumeOptions::default()).unwrap();
    let taken = futures_executor::block_on(async {
        let d = first.next().await.unwrap();
        let id = id_of(&d);
        d.ack().unwrap();
        id
    });
    assert_eq!(taken, 0);
    drop(first);
    let stats = broker.queue_stats("/", "q").unwrap();
    assert_eq!((stats.messages_ready, stats.consumers), (9, 0));
    let second = ch.basic_consume("q", ConsumeOptions::no_ack()).unwrap();
    let rest: Vec<u64> =
        futures_executor::block_on(second.take(9).map(|d| id_of(&d)).collect::<Vec<_>>());
    assert_eq!(rest, (1..10).collect::<Vec<_>>());
}

#[test]
fn returns_are_a_stream() {
    let (_b, _c, ch) = setup();
    let mut returns = ch.returns();
    for key in ["a", "b", "c"] {
        ch.basic_publish_with("", key, PublishOptions::mandatory(), Message::new(key))
            .unwrap();
    }
    let keys: Vec<String> = futures_executor::block_on(async {
        let mut keys = Vec::new();
        for _ in 0..3 {
            keys.push(returns.next().await.unwrap().routing_key);
        }
        keys
    });
    assert_eq!(keys, ["a", "b", "c"]);
    // A pending stream is woken by a return made later on another thread.
    let publisher = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        ch.basic_publish_with("", "late", PublishOptions::mandatory(), Message::new("x"))
            .unwrap();
        ch.close();
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let late = runtime.block_on(returns.next()).unwrap();
    assert_eq!(late.routing_key, "late");
    assert!(
        runtime.block_on(returns.next()).is_none(),
        "ends when the channel closes"
    );
    publisher.join().unwrap();
    assert!(futures_executor::block_on(returns.recv_async()).is_err());
}

fn persistent() -> (tempfile::TempDir, Broker, Channel) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path().join("w.redb")).unwrap();
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    ch.queue_declare("jobs", QueueDeclareOptions::durable(), FieldTable::new())
        .unwrap();
    (dir, broker, ch)
}

#[test]
fn confirm_tickets_are_awaited_and_waited_for() {
    let (_dir, broker, ch) = persistent();
    let publish = |i: u32| {
        ch.basic_publish_with_confirm(
            "",
            "jobs",
            PublishOptions::default(),
            Message::new(format!("m{i}")).persistent(),
        )
        .unwrap()
    };
    let tickets: Vec<_> = (0..200).map(publish).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let confirmed = runtime.block_on(async {
        let mut ok = 0;
        for ticket in tickets {
            ok += usize::from(ticket.await.unwrap());
        }
        ok
    });
    assert_eq!(confirmed, 200);
    let ticket = publish(200);
    assert!(ticket.wait().unwrap());
    assert_eq!(ticket.try_wait().unwrap(), Some(true));
    assert_eq!(
        ticket.wait_timeout(Duration::from_secs(5)).unwrap(),
        Some(true)
    );
    assert!(futures_executor::block_on(publish(201)).unwrap());
    // A transient message is confirmed at once; so is any message of an in-memory broker.
    let transient = ch
        .basic_publish_with_confirm("", "jobs", PublishOptions::default(), Message::new("t"))
        .unwrap();
    assert_eq!(transient.try_wait().unwrap(), Some(true));
    assert_eq!(broker.queue_stats("/", "jobs").unwrap().messages_ready, 203);
}

#[test]
fn wait_for_confirms_async_waits_for_the_disk_and_reports_refusals() {
    let (_dir, _broker, ch) = persistent();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let not_in_confirm_mode = runtime.block_on(ch.wait_for_confirms_async()).unwrap_err();
    assert_eq!(code(&not_in_confirm_mode), 406);
    let (_dir, _broker, ch) = persistent();
    ch.confirm_select().unwrap();
    for i in 0..1_000 {
        ch.basic_publish("", "jobs", Message::new(format!("m{i}")).persistent())
            .unwrap();
    }
    assert!(runtime.block_on(ch.wait_for_confirms_async()).unwrap());
    assert!(
        runtime.block_on(ch.wait_for_confirms_async()).unwrap(),
        "nothing outstanding"
    );
    // A publish refused by a length limit is nacked: false, once.
    let limited = FieldTable::new()
        .with("x-max-length", FieldValue::I64(1))
        .with("x-overflow", "reject-publish");
    ch.queue_declare("short", QueueDeclareOptions::durable(), limited)
        .unwrap();
    ch.basic_publish("", "short", Message::new("fits").persistent())
        .unwrap();
    let refused = ch
        .basic_publish_with_confirm(
            "",
            "short",
            PublishOptions::default(),
            Message::new("refused").persistent(),
        )
        .unwrap();
    assert!(!futures_executor::block_on(refused).unwrap());
    assert!(!runtime.block_on(ch.wait_for_confirms_async()).unwrap());
    assert!(runtime.block_on(ch.wait_for_confirms_async()).unwrap());
}

#[test]
fn a_dropped_wait_for_confirms_async_keeps_the_confirms_tracked() {
    let (_dir, _broker, ch) = persistent();
    ch.confirm_select().unwrap();
    for i in 0..100 {
        ch.basic_publish("", "jobs", Message::new(format!("m{i}")).persistent())
            .unwrap();
    }
    {
        let mut waiting = pin!(ch.wait_for_confirms_async());
        let _ = waiting.as_mut().poll(&mut noop_cx());
    }
    assert!(ch.wait_for_confirms().unwrap());
}
