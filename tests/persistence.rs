//! Persistence: what survives a restart of `Broker::open`, in which order and with which
//! flags, and how bad storage is reported. Each test uses a fresh temporary directory.

mod common;

use std::path::Path;

use common::*;
use warrenmq::{
    Broker, ConsumeOptions, Error, ExchangeDeclareOptions, ExchangeDeleteOptions, ExchangeKind,
    FieldTable, GetOptions, Message, QueueDeclareOptions, QueueDeleteOptions, StoreError,
};

fn temp_db() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warren.redb");
    (dir, path)
}

fn open(path: &Path) -> (Broker, warrenmq::Connection, warrenmq::Channel) {
    let broker = Broker::open(path).unwrap();
    let conn = broker.connect("/").unwrap();
    let ch = conn.open_channel().unwrap();
    (broker, conn, ch)
}

fn durable_queue(ch: &warrenmq::Channel, name: &str) {
    ch.queue_declare(name, QueueDeclareOptions::durable(), FieldTable::new())
        .unwrap();
}

fn persist(ch: &warrenmq::Channel, exchange: &str, key: &str, body: &str) {
    ch.basic_publish(exchange, key, Message::new(body.to_owned()).persistent())
        .unwrap();
}

#[test]
fn smoke() {
    let (_dir, path) = temp_db();
    {
        let (_b, _c, ch) = open(&path);
        durable_queue(&ch, "q");
        persist(&ch, "", "q", "kept");
    }
    let (_b, _c, ch) = open(&path);
    assert_eq!(drain_marked(&ch, "q"), ["kept"]);
}

#[test]
fn durable_entities_survive_with_their_arguments_and_transient_ones_do_not() {
    let (_dir, path) = temp_db();
    {
        let (broker, _c, ch) = open(&path);
        broker.add_vhost("other").unwrap();
        let args = FieldTable::new().with("x-max-length", 10);
        ch.queue_declare("dq", QueueDeclareOptions::durable(), args)
            .unwrap();
        declare_queue(&ch, "tq");
        let xargs = FieldTable::new().with("alternate-exchange", "ae");
        ch.exchange_declare(
            "dx",
            ExchangeKind::Topic,
            ExchangeDeclareOptions::durable(),
            xargs,
        )
        .unwrap();
        declare_exchange(&ch, "tx", ExchangeKind::Fanout);
        ch.queue_bind("dq", "dx", "a.*", FieldTable::new()).unwrap();
        ch.queue_bind("tq", "tx", "", FieldTable::new()).unwrap();
        ch.queue_bind("dq", "amq.topic", "b.#", FieldTable::new())
            .unwrap();
    }
    let (broker, conn, ch) = open(&path);
    assert_eq!(broker.vhosts(), ["/", "other"]);
    // Redeclaring with the same arguments works; with others is inequivalent: they came back.
    let args = FieldTable::new().with("x-max-length", 10);
    ch.queue_declare("dq", QueueDeclareOptions::durable(), args)
        .unwrap();
    let err = ch
        .queue_declare("dq", QueueDeclareOptions::durable(), FieldTable::new())
        .unwrap_err();
    assert_eq!(code(&err), 406);
    let ch = conn.open_channel().unwrap();
    let stats = broker.exchange_stats("/", "dx").unwrap();
    assert_eq!((stats.kind, stats.bindings), (ExchangeKind::Topic, 1));
    assert_eq!(code(&broker.queue_stats("/", "tq").unwrap_err()), 404);
    assert_eq!(code(&broker.exchange_stats("/", "tx").unwrap_err()), 404);
    // The bindings route again.
    persist(&ch, "dx", "a.b", "via dx");
    persist(&ch, "amq.topic", "b.c.d", "via amq.topic");
    assert_eq!(drain_marked(&ch, "dq"), ["via dx", "via amq.topic"]);
}

#[test]
fn deleting_entities_deletes_their_records() {
    let (_dir, path) = temp_db();
    {
        let (_b, _c, ch) = open(&path);
        durable_queue(&ch, "gone");
        durable_queue(&ch, "stays");
        ch.exchange_declare(
            "x",
            ExchangeKind::Direct,
            ExchangeDeclareOptions::durable(),
            FieldTable::new(),
        )
        .unwrap();
        ch.queue_bind("stays", "x", "k", FieldTable::new()).unwrap();
        ch.queue_bind("stays", "x", "k2", FieldTable::new())
            .unwrap();
        ch.queue_unbind("stays", "x", "k2", FieldTable::new())
            .unwrap();
        persist(&ch, "", "gone", "lost with its queue");
        ch.queue_delete("gone", QueueDeleteOptions::default())
            .unwrap();
    }
    {
        let (broker, _c, ch) = open(&path);
        assert_eq!(code(&broker.queue_stats("/", "gone").unwrap_err()), 404);
        assert_eq!(broker.exchange_stats("/", "x").unwrap().bindings, 1);
        ch.exchange_delete("x", ExchangeDeleteOptions::default())
            .unwrap();
    }
    let (broker, _c, _ch) = open(&path);
    assert_eq!(code(&broker.exchange_stats("/", "x").unwrap_err()), 404);
    assert!(broker.queue_stats("/", "stays").is_ok());
}

#[test]
fn only_persistent_messages_in_durable_queues_survive() {
    let (_dir, path) = temp_db();
    {
        let (_b, _c, ch) = open(&path);
        durable_queue(&ch, "dq");
        ch.queue_declare("tq", QueueDeclareOptions::default(), FieldTable::new())
            .unwrap();
        persist(&ch, "", "dq", "p1");
        publish(&ch, "", "dq", "transient");
        persist(&ch, "", "dq", "p2");
        persist(&ch, "", "tq", "in a transient queue");
    }
    let (_b, _c, ch) = open(&path);
    assert_eq!(drain_marked(&ch, "dq"), ["p1", "p2"]);
}

#[test]
fn order_is_kept_and_delivered_unacked_messages_come_back_redelivered() {
    let (_dir, path) = temp_db();
    {
        let (_b, _c, ch) = open(&path);
        durable_queue(&ch, "q");
        for i in 1..=6 {
            persist(&ch, "", "q", &format!("m{i}"));
        }
        let m1 = ch.basic_get("q", GetOptions::default()).unwrap().unwrap();
        let m2 = ch.basic_get("q", GetOptions::default()).unwrap().unwrap();
        let consumer = ch.basic_consume("q", ConsumeOptions::default()).unwrap();
        let m3 = consumer.recv().unwrap();
        m2.ack().unwrap();
        drop((m1, m3, consumer));
        // A clean close of the broker: m1 and m3 were delivered and not acked.
    }
    let (_b, _c, ch) = open(&path);
    assert_eq!(drain_marked(&ch, "q"), ["m1(R)", "m3(R)", "m4", "m5", "m6"]);
}

#[test]
fn acked_messages_never_come_back() {
    let (_dir, path) = temp_db();
    {
        let (_b, _c, ch) = open(&path);
        durable_queue(&ch, "q");
        for i in 0..100 {
            persist(&ch, "", "q", &i.to_string());
        }
        ch.basic_qos(10).unwrap();
        let consumer = ch.basic_consume("q", ConsumeOptions::default()).unwrap();
        for _ in 0..60 {
            consumer.recv().unwrap().ack().unwrap();
        }
        let last = consumer.recv().unwrap();
        ch.basic_ack(last.delivery_tag(), true).unwrap();
    }
    let (broker, _c, ch) = open(&path);
    assert_eq!(broker.queue_stats("/", "q").unwrap().messages_ready, 39);
    let first = ch.basic_get("q", GetOptions::no_ack()).unwrap().unwrap();
    assert_eq!(body(&first), "61");
}

#[test]
fn a_message_in_several_queues_is_removed_from_each_independently() {
    let (_dir, path) = temp_db();
    {
        let (_b, _c, ch) = open(&path);
        ch.exchange_declare(
            "fan",
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::durable(),
            FieldTable::new(),
        )
        .unwrap();
        for q in ["a", "b", "c"] {
            durable_queue(&ch, q);
            ch.queue_bind(q, "fan", "", FieldTable::new()).unwrap();
        }
        persist(&ch, "fan", "", "shared");
        ch.basic_get("a", GetOptions::default())
            .unwrap()
            .unwrap()
            .ack()
            .unwrap();
        ch.queue_purge("b").unwrap();
    }
    {
        let (_b, _c, ch) = open(&path);
        assert!(drain_marked(&ch, "a").is_empty());
        assert!(drain_marked(&ch, "b").is_empty());
        let c = ch.basic_get("c", GetOptions::default()).unwrap().unwrap();
        assert_eq!((body(&c), c.redelivered()), ("shared".into(), false));
        c.ack().unwrap();
    }
    let (_b, _c, ch) = open(&path);
    assert!(drain_marked(&ch, "c").is_empty());
}

#[test]
fn confirms_wait_for_the_disk() {
    let (_dir, path) = temp_db();
    {
        let (_b, _c, ch) = open(&path);
        durable_queue(&ch, "q");
        assert_eq!(code(&ch.wait_for_confirms().unwrap_err()), 406);
    }
    {
        let (_b, _c, ch) = open(&path);
        ch.confirm_select().unwrap();
        for i in 0..1000 {
            persist(&ch, "", "q", &i.to_string());
        }
        assert!(ch.wait_for_confirms().unwrap());
        assert_eq!(ch.wait_for_confirms_timeout(PATIENCE).unwrap(), Some(true));
    }
    let (broker, _c, _ch) = open(&path);
    assert_eq!(broker.queue_stats("/", "q").unwrap().messages_ready, 1000);
}

#[test]
fn a_database_open_twice_is_locked() {
    let (_dir, path) = temp_db();
    let _first = Broker::open(&path).unwrap();
    let err = Broker::open(&path).unwrap_err();
    assert!(matches!(err, Error::Storage(StoreError::Locked)), "{err:?}");
    assert_eq!(code(&err), 541);
}

#[test]
fn a_garbled_or_truncated_file_is_a_clear_error() {
    let (_dir, path) = temp_db();
    {
        let (_b, _c, ch) = open(&path);
        durable_queue(&ch, "q");
        for i in 0..50 {
            persist(
                &ch,
                "",
                "q",
                &format!("message {i} with some body to fill pages"),
            );
        }
    }
    let bytes = std::fs::read(&path).unwrap();
    // Truncated to half.
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(
        Broker::open(&path).unwrap_err(),
        Error::Storage(_)
    ));
    // Not a database at all.
    std::fs::write(&path, b"this is not a redb file, just some text").unwrap();
    assert!(matches!(
        Broker::open(&path).unwrap_err(),
        Error::Storage(_)
    ));
    // Garbled in the middle.
    let mut garbled = bytes.clone();
    let len = garbled.len();
    for b in &mut garbled[len / 4..len / 2] {
        *b ^= 0x5a;
    }
    std::fs::write(&path, &garbled).unwrap();
    match Broker::open(&path) {
        Err(Error::Storage(_)) => {}
        Err(other) => panic!("unexpected error {other:?}"),
        // redb may not read the garbled pages at open; then the data must still be sane.
        Ok(broker) => {
            let ch = broker.connect("/").unwrap().open_channel().unwrap();
            let _ = ch.queue_declare("q", QueueDeclareOptions::passive(), FieldTable::new());
        }
    }
}

#[test]
fn a_newer_format_version_is_refused_not_reset() {
    let (_dir, path) = temp_db();
    drop(Broker::open(&path).unwrap());
    {
        let db = redb::Database::open(&path).unwrap();
        let meta: redb::TableDefinition<'_, &str, u64> = redb::TableDefinition::new("meta");
        let txn = db.begin_write().unwrap();
        txn.open_table(meta)
            .unwrap()
            .insert("format_version", 99)
            .unwrap();
        txn.commit().unwrap();
    }
    let err = Broker::open(&path).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Storage(StoreError::UnsupportedFormat { found: 99, .. })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("99"), "{err}");
}

#[test]
fn an_in_memory_broker_keeps_nothing() {
    let (_dir, path) = temp_db();
    let broker = Broker::in_memory();
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    durable_queue(&ch, "q");
    persist(&ch, "", "q", "x");
    assert!(!path.exists());
    ch.confirm_select().unwrap();
    persist(&ch, "", "q", "y");
    assert!(ch.wait_for_confirms().unwrap());
}

#[test]
fn a_message_stored_for_several_queues_comes_back_in_each() {
    let (_dir, path) = temp_db();
    {
        let (_b, _c, ch) = open(&path);
        ch.exchange_declare(
            "fan",
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::durable(),
            FieldTable::new(),
        )
        .unwrap();
        for q in ["a", "b"] {
            durable_queue(&ch, q);
            ch.queue_bind(q, "fan", "", FieldTable::new()).unwrap();
        }
        persist(&ch, "fan", "", "for both");
        persist(&ch, "", "a", "only a");
    }
    let (_b, _c, ch) = open(&path);
    assert_eq!(drain_marked(&ch, "a"), ["for both", "only a"]);
    assert_eq!(drain_marked(&ch, "b"), ["for both"]);
}
