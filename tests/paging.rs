//! Backlogs larger than memory: a durable queue over the broker's memory budget keeps its
//! tail on disk only and reads it back in order as consumers drain it; after a restart only
//! the first page of each queue is in memory.

use std::path::Path;
use std::time::Duration;

use warrenmq::{
    Broker, ConsumeOptions, FieldTable, GetOptions, Message, QueueDeclareOptions,
    QueueDeleteOptions,
};

/// The budget of these tests: 64 bodies of 1 KiB.
const BUDGET: usize = 64 * 1024;
/// Messages per test: well beyond the budget and a recovery page (512).
const N: usize = 3_000;

/// Opens a broker on `path` with [`BUDGET`].
fn open(path: &Path) -> Broker {
    Broker::builder()
        .data_path(path)
        .memory_budget(BUDGET)
        .build()
        .unwrap()
}

/// The body of message `i`: 1 KiB starting with its number.
fn body(i: usize) -> Vec<u8> {
    let mut body = format!("{i:08}:").into_bytes();
    body.resize(1024, b'a' + (i % 26) as u8);
    body
}

/// The number at the start of a body.
fn number(body: &[u8]) -> usize {
    std::str::from_utf8(&body[..8]).unwrap().parse().unwrap()
}

/// Publishes messages `range` persistent with confirms (every tenth transient when
/// `mixed`) to `queue`.
fn publish(broker: &Broker, queue: &str, range: std::ops::Range<usize>, mixed: bool) {
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    ch.confirm_select().unwrap();
    for i in range {
        let message = Message::new(body(i));
        let message = if mixed && i % 10 == 0 {
            message
        } else {
            message.persistent()
        };
        ch.basic_publish("", queue, message).unwrap();
    }
    assert!(ch.wait_for_confirms().unwrap());
}

/// Declares a durable queue.
fn declare(broker: &Broker, queue: &str) {
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    ch.queue_declare(queue, QueueDeclareOptions::durable(), FieldTable::new())
        .unwrap();
}

/// Ready messages on disk only.
fn paged_out(broker: &Broker, queue: &str) -> usize {
    broker.queue_stats("/", queue).unwrap().messages_paged_out
}

#[test]
fn a_backlog_over_budget_is_kept_on_disk_and_consumed_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(&dir.path().join("warren.redb"));
    declare(&broker, "backlog");
    publish(&broker, "backlog", 0..N, true);
    let stats = broker.queue_stats("/", "backlog").unwrap();
    assert_eq!(stats.messages_ready, N);
    // Persistent messages beyond the budget are on disk only; transient ones never are.
    assert!(
        stats.messages_paged_out > N * 8 / 10,
        "{} of {N} paged out",
        stats.messages_paged_out
    );
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    ch.basic_qos(50).unwrap();
    let consumer = ch
        .basic_consume("backlog", ConsumeOptions::default())
        .unwrap();
    for i in 0..N {
        let d = consumer
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("message {i}: {e:?}"));
        assert_eq!(d.body().as_ref(), body(i).as_slice(), "message {i}");
        assert!(!d.redelivered());
        assert_eq!(d.properties().is_persistent(), i % 10 != 0);
        d.ack().unwrap();
    }
    let stats = broker.queue_stats("/", "backlog").unwrap();
    assert_eq!((stats.messages_ready, stats.messages_paged_out), (0, 0));
}

#[test]
fn basic_get_reads_a_head_on_disk_and_requeues_keep_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(&dir.path().join("warren.redb"));
    declare(&broker, "backlog");
    // Fill the budget with another queue: every message of this one is on disk.
    declare(&broker, "filler");
    publish(&broker, "filler", 0..100, false);
    publish(&broker, "backlog", 0..1_000, false);
    assert_eq!(paged_out(&broker, "backlog"), 1_000);
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    let first = ch
        .basic_get("backlog", GetOptions::default())
        .unwrap()
        .unwrap();
    assert_eq!(number(first.body()), 0);
    let second = ch
        .basic_get("backlog", GetOptions::default())
        .unwrap()
        .unwrap();
    assert_eq!(number(second.body()), 1);
    first.nack(true).unwrap();
    let again = ch
        .basic_get("backlog", GetOptions::default())
        .unwrap()
        .unwrap();
    assert_eq!(number(again.body()), 0);
    assert!(again.redelivered());
    again.ack().unwrap();
    second.ack().unwrap();
    for i in 2..1_000 {
        let d = ch
            .basic_get("backlog", GetOptions::no_ack())
            .unwrap()
            .unwrap();
        assert_eq!(number(d.body()), i);
    }
    assert!(ch
        .basic_get("backlog", GetOptions::no_ack())
        .unwrap()
        .is_none());
}

#[test]
fn a_restart_recovers_the_first_page_in_memory_and_the_rest_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warren.redb");
    {
        let broker = open(&path);
        declare(&broker, "backlog");
        publish(&broker, "backlog", 0..N, false);
        // Deliver three, give them back: they come back redelivered after the restart.
        let ch = broker.connect("/").unwrap().open_channel().unwrap();
        let held: Vec<_> = (0..3)
            .map(|_| {
                ch.basic_get("backlog", GetOptions::default())
                    .unwrap()
                    .unwrap()
            })
            .collect();
        drop(held);
        broker.close().unwrap();
    }
    // Without a budget too: recovery keeps one page per queue in memory.
    let broker = Broker::open(&path).unwrap();
    let stats = broker.queue_stats("/", "backlog").unwrap();
    assert_eq!(stats.messages_ready, N);
    assert_eq!(stats.messages_paged_out, N - 512);
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    ch.basic_qos(100).unwrap();
    let consumer = ch
        .basic_consume("backlog", ConsumeOptions::default())
        .unwrap();
    for i in 0..N {
        let d = consumer.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(d.body().as_ref(), body(i).as_slice());
        assert_eq!(d.redelivered(), i < 3, "message {i}");
        d.ack().unwrap();
    }
    drop(consumer);
    broker.close().unwrap();
    let broker = Broker::open(&path).unwrap();
    assert_eq!(
        broker.queue_stats("/", "backlog").unwrap().messages_ready,
        0
    );
}

#[test]
fn purge_and_delete_forget_messages_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warren.redb");
    {
        let broker = open(&path);
        for q in ["purged", "deleted", "kept"] {
            declare(&broker, q);
            publish(&broker, q, 0..600, false);
        }
        let ch = broker.connect("/").unwrap().open_channel().unwrap();
        assert_eq!(ch.queue_purge("purged").unwrap(), 600);
        assert_eq!(
            ch.queue_delete("deleted", QueueDeleteOptions::default())
                .unwrap(),
            600
        );
        broker.close().unwrap();
    }
    let broker = Broker::open(&path).unwrap();
    assert_eq!(broker.queue_stats("/", "purged").unwrap().messages_ready, 0);
    assert!(broker.queue_stats("/", "deleted").is_err());
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    for i in 0..600 {
        let d = ch.basic_get("kept", GetOptions::no_ack()).unwrap().unwrap();
        assert_eq!(number(d.body()), i);
    }
}
