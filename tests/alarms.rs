//! The memory alarm in process (issue 10): publishing far beyond a small watermark with no
//! consumer blocks the publisher (or fails `try_basic_publish`, or keeps
//! `basic_publish_async` waiting) while consumers and acks go on; a consumer then drains
//! everything, nothing is lost, and `Broker::stats` tells the story.

mod common;

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::eventually;
use warrenmq::{
    Broker, Error, FieldTable, GetOptions, MemoryWatermark, Message, PublishOptions,
    QueueDeclareOptions, Resource,
};

const BODY: usize = 64 * 1024;

fn broker(watermark: u64) -> Broker {
    Broker::builder()
        .memory_high_watermark(MemoryWatermark::Absolute(watermark))
        .build()
        .unwrap()
}

fn numbered(i: u32) -> Message {
    let mut body = vec![0u8; BODY];
    body[..4].copy_from_slice(&i.to_be_bytes());
    Message::new(body)
}

fn number(body: &[u8]) -> u32 {
    u32::from_be_bytes(body[..4].try_into().unwrap())
}

#[test]
fn publishing_far_beyond_the_watermark_blocks_until_a_consumer_drains() {
    const COUNT: u32 = 400; // 25 MiB through a 1 MiB watermark
    let broker = broker(1 << 20);
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    ch.queue_declare("big", QueueDeclareOptions::default(), FieldTable::new())
        .unwrap();
    let publisher = {
        let ch = broker.connect("/").unwrap().open_channel().unwrap();
        thread::spawn(move || {
            for i in 0..COUNT {
                ch.basic_publish("", "big", numbered(i)).unwrap();
            }
        })
    };
    eventually("the publisher is held back", || {
        let stats = broker.stats();
        stats.memory_alarm && stats.blocked_publishers == 1
    });
    // Held back, not refused: the queue holds about a watermark's worth, no more.
    thread::sleep(Duration::from_millis(100));
    let stats = broker.stats();
    let ready = broker.queue_stats("/", "big").unwrap().messages_ready;
    assert!(ready < 20, "{ready} messages queued past a 1 MiB watermark");
    assert!(stats.memory_used > 1 << 20, "{stats:?}");
    assert_eq!(stats.memory_high_watermark, Some(1 << 20));
    // A consumer (with acks) drains everything, in order.
    let consumer = ch
        .basic_consume("big", warrenmq::ConsumeOptions::default())
        .unwrap();
    for expected in 0..COUNT {
        let d = consumer
            .recv_timeout(Duration::from_secs(30))
            .expect("a message");
        assert_eq!(number(d.body()), expected);
        d.ack().unwrap();
    }
    publisher.join().unwrap();
    let stats = broker.stats();
    assert!(!stats.memory_alarm);
    assert_eq!(stats.blocked_publishers, 0);
    assert_eq!(broker.queue_stats("/", "big").unwrap().messages(), 0);
    eventually("every charge is given back", || {
        broker.stats().memory_used == 0
    });
}

#[test]
fn try_basic_publish_fails_at_once_and_the_channel_stays_open() {
    let broker = broker(100_000);
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    ch.queue_declare("q", QueueDeclareOptions::default(), FieldTable::new())
        .unwrap();
    ch.try_basic_publish(
        "",
        "q",
        PublishOptions::default(),
        Message::new(vec![0; 200_000]),
    )
    .unwrap();
    let err = ch
        .try_basic_publish("", "q", PublishOptions::default(), Message::new("x"))
        .unwrap_err();
    assert!(matches!(
        err,
        Error::ResourceAlarm {
            resource: Resource::Memory
        }
    ));
    assert_eq!(err.reply_code().0, 506);
    assert_eq!(
        err.to_string(),
        "RESOURCE_ERROR - publishing is held back: low on memory"
    );
    assert!(!ch.is_closed());
    // Acks and gets go on while the alarm is on.
    let d = ch.basic_get("q", GetOptions::default()).unwrap().unwrap();
    assert!(broker.stats().memory_alarm, "unacked, still held");
    d.ack().unwrap();
    assert!(!broker.stats().memory_alarm);
    ch.try_basic_publish("", "q", PublishOptions::default(), Message::new("x"))
        .unwrap();
}

#[test]
fn basic_publish_async_waits_for_the_alarm_to_clear() {
    let broker = broker(100_000);
    let ch = Arc::new(broker.connect("/").unwrap().open_channel().unwrap());
    ch.queue_declare("q", QueueDeclareOptions::default(), FieldTable::new())
        .unwrap();
    ch.basic_publish("", "q", Message::new(vec![0; 200_000]))
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let task = {
        let ch = Arc::clone(&ch);
        runtime.spawn(async move {
            ch.basic_publish_async("", "q", PublishOptions::default(), Message::new("later"))
                .await
        })
    };
    runtime.block_on(async {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    });
    assert!(
        !task.is_finished(),
        "the publish waits while the alarm is on"
    );
    assert_eq!(broker.stats().blocked_publishers, 1);
    assert_eq!(broker.queue_stats("/", "q").unwrap().messages_ready, 1);
    let drained = ch.basic_get("q", GetOptions::no_ack()).unwrap().unwrap();
    drop(drained);
    runtime.block_on(task).unwrap().unwrap();
    let later = ch.basic_get("q", GetOptions::no_ack()).unwrap().unwrap();
    assert_eq!(later.body().as_ref(), b"later");
}

#[test]
fn a_message_in_several_queues_is_charged_once_until_its_last_copy_goes() {
    let broker = broker(u64::MAX);
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    for q in ["a", "b", "c"] {
        ch.queue_declare(q, QueueDeclareOptions::default(), FieldTable::new())
            .unwrap();
        ch.queue_bind(q, "amq.fanout", "", FieldTable::new())
            .unwrap();
    }
    ch.basic_publish("amq.fanout", "", Message::new(vec![0; 10_000]))
        .unwrap();
    let used = broker.stats().memory_used;
    assert!((10_000..12_000).contains(&used), "{used}");
    for q in ["a", "b"] {
        let _ = ch.basic_get(q, GetOptions::no_ack()).unwrap().unwrap();
    }
    assert_eq!(broker.stats().memory_used, used);
    ch.queue_purge("c").unwrap();
    assert_eq!(broker.stats().memory_used, 0);
}

#[test]
fn the_default_watermark_is_a_fraction_of_the_memory_available() {
    let stats = Broker::in_memory().stats();
    if cfg!(target_os = "linux") {
        let watermark = stats.memory_high_watermark.expect("a watermark");
        assert!(watermark > 0);
    }
    assert!(!stats.memory_alarm);
    assert!(!stats.disk_alarm);
    assert_eq!(
        stats.disk_free, None,
        "an in-memory broker measures no disk"
    );
    assert_eq!(stats.disk_free_limit, 50_000_000);
}
