//! Queue features on a persistent broker: dead-lettered persistent messages stay stored,
//! TTLs survive a restart as absolute expiry times, length limits and e2e bindings are kept.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use warrenmq::{
    Broker, Channel, ExchangeDeclareOptions, ExchangeKind, FieldTable, FieldValue, GetOptions,
    ManualClock, Message, QueueDeclareOptions,
};

fn open_with(path: &Path, clock: &ManualClock) -> (Broker, Channel) {
    let broker = Broker::builder()
        .data_path(path)
        .clock(clock.clone())
        .build()
        .unwrap();
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    (broker, ch)
}

fn persist(ch: &Channel, exchange: &str, key: &str, body: &str) {
    ch.basic_publish(exchange, key, Message::new(body.to_owned()).persistent())
        .unwrap();
}

#[test]
fn smoke() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let (_b, ch) = open_with(&dir.path().join("db"), &clock);
    declare_queue(&ch, "q");
}

#[test]
fn dead_lettered_persistent_messages_stay_persistent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let clock = ManualClock::new();
    {
        let (_b, ch) = open_with(&path, &clock);
        ch.exchange_declare(
            "dlx",
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::durable(),
            FieldTable::new(),
        )
        .unwrap();
        ch.queue_declare("dead", QueueDeclareOptions::durable(), FieldTable::new())
            .unwrap();
        ch.queue_bind("dead", "dlx", "", FieldTable::new()).unwrap();
        let args = FieldTable::new().with("x-dead-letter-exchange", "dlx");
        ch.queue_declare("work", QueueDeclareOptions::durable(), args)
            .unwrap();
        persist(&ch, "", "work", "doomed");
        let d = ch
            .basic_get("work", GetOptions::default())
            .unwrap()
            .unwrap();
        d.reject(false).unwrap();
    }
    let (_b, ch) = open_with(&path, &clock);
    assert!(ch
        .basic_get("work", GetOptions::no_ack())
        .unwrap()
        .is_none());
    let d = ch
        .basic_get("dead", GetOptions::no_ack())
        .unwrap()
        .expect("kept in the DLQ");
    assert_eq!(body(&d), "doomed");
    assert!(d.properties().is_persistent());
    let headers = d.properties().headers.as_ref().unwrap();
    assert_eq!(
        headers.get("x-first-death-reason"),
        Some(&FieldValue::from("rejected"))
    );
}

#[test]
fn ttl_survives_a_restart_as_an_absolute_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let clock = ManualClock::new();
    {
        let (_b, ch) = open_with(&path, &clock);
        let args = FieldTable::new().with("x-message-ttl", 10_000);
        ch.queue_declare("ttl", QueueDeclareOptions::durable(), args)
            .unwrap();
        persist(&ch, "", "ttl", "queue ttl");
        ch.queue_declare("plain", QueueDeclareOptions::durable(), FieldTable::new())
            .unwrap();
        let short = Message::new("message ttl")
            .persistent()
            .expiration_ms(3_000);
        ch.basic_publish("", "plain", short).unwrap();
        persist(&ch, "", "plain", "forever");
    }
    clock.advance(Duration::from_secs(5));
    {
        let (broker, ch) = open_with(&path, &clock);
        // 5 s after publishing: the 3 s message expired at the head; the 10 s one lives.
        assert_eq!(drain(&ch, "plain"), ["forever"]);
        assert_eq!(broker.queue_stats("/", "ttl").unwrap().messages_ready, 1);
    }
    clock.advance(Duration::from_secs(6));
    let (_b, ch) = open_with(&path, &clock);
    assert!(ch.basic_get("ttl", GetOptions::no_ack()).unwrap().is_none());
}

#[test]
fn length_limit_drops_leave_the_store_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let clock = ManualClock::new();
    {
        let (_b, ch) = open_with(&path, &clock);
        let args = FieldTable::new().with("x-max-length", 2);
        ch.queue_declare("short", QueueDeclareOptions::durable(), args)
            .unwrap();
        for i in 1..=4 {
            persist(&ch, "", "short", &format!("m{i}"));
        }
    }
    let (_b, ch) = open_with(&path, &clock);
    assert_eq!(drain(&ch, "short"), ["m3", "m4"]);
}

#[test]
fn durable_exchange_to_exchange_bindings_survive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let clock = ManualClock::new();
    {
        let (_b, ch) = open_with(&path, &clock);
        let durable = ExchangeDeclareOptions::durable();
        ch.exchange_declare("src", ExchangeKind::Topic, durable, FieldTable::new())
            .unwrap();
        ch.exchange_declare("dst", ExchangeKind::Direct, durable, FieldTable::new())
            .unwrap();
        ch.queue_declare("q", QueueDeclareOptions::durable(), FieldTable::new())
            .unwrap();
        ch.exchange_bind("dst", "src", "a.*", FieldTable::new())
            .unwrap();
        ch.queue_bind("q", "dst", "a.b", FieldTable::new()).unwrap();
    }
    let (_b, ch) = open_with(&path, &clock);
    persist(&ch, "src", "a.b", "through two exchanges");
    persist(&ch, "src", "a.c", "stops at dst");
    assert_eq!(drain(&ch, "q"), ["through two exchanges"]);
    ch.exchange_unbind("dst", "src", "a.*", FieldTable::new())
        .unwrap();
    drop(ch);
    drop(_b);
    let (_b, ch) = open_with(&path, &clock);
    persist(&ch, "src", "a.b", "unbound now");
    assert!(drain(&ch, "q").is_empty());
}

#[test]
fn messages_that_expired_while_down_are_dead_lettered_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let clock = ManualClock::new();
    {
        let (_b, ch) = open_with(&path, &clock);
        ch.exchange_declare(
            "dlx",
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::durable(),
            FieldTable::new(),
        )
        .unwrap();
        ch.queue_declare("dead", QueueDeclareOptions::durable(), FieldTable::new())
            .unwrap();
        ch.queue_bind("dead", "dlx", "", FieldTable::new()).unwrap();
        let args = FieldTable::new()
            .with("x-dead-letter-exchange", "dlx")
            .with("x-message-ttl", 1_000);
        ch.queue_declare("work", QueueDeclareOptions::durable(), args)
            .unwrap();
        persist(&ch, "", "work", "expires while the broker is down");
    }
    clock.advance(Duration::from_secs(2));
    let (_b, ch) = open_with(&path, &clock);
    assert!(ch
        .basic_get("work", GetOptions::no_ack())
        .unwrap()
        .is_none());
    let d = ch
        .basic_get("dead", GetOptions::no_ack())
        .unwrap()
        .expect("dead-lettered");
    assert_eq!(body(&d), "expires while the broker is down");
    let headers = d.properties().headers.as_ref().unwrap();
    assert_eq!(
        headers.get("x-first-death-reason"),
        Some(&FieldValue::from("expired"))
    );
}
