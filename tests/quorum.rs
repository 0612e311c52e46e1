//! Quorum queues (`x-queue-type = quorum`) as applications observe them on RabbitMQ 3.10:
//! declare rules and texts, delivery counts (`x-delivery-count`), the delivery limit with
//! dead-lettering, where returned messages go, and storage like durable classic queues.
//! Observed with scripts/quorum_policy_replyto_probe.py (docs/rabbitmq-observations.md §20);
//! tests/differential.rs compares the same over the wire with the local RabbitMQ.

mod common;

use common::*;
use warrenmq::{
    Broker, Channel, Connection, Delivery, ExchangeKind, FieldTable, FieldValue, GetOptions,
    Message, QueueDeclareOptions,
};

fn quorum() -> FieldTable {
    FieldTable::new().with("x-queue-type", "quorum")
}

fn declare(ch: &Channel, name: &str, args: FieldTable) {
    ch.queue_declare(name, QueueDeclareOptions::durable(), args)
        .unwrap();
}

/// Declares on a fresh channel; returns the error text, or "ok".
fn try_declare(
    conn: &Connection,
    name: &str,
    options: QueueDeclareOptions,
    args: FieldTable,
) -> String {
    let ch = conn.open_channel().unwrap();
    ch.queue_declare(name, options, args)
        .map_or_else(|e| e.to_string(), |_| "ok".to_owned())
}

fn count(d: &Delivery) -> Option<i64> {
    d.properties()
        .headers
        .as_ref()
        .and_then(|h| h.get("x-delivery-count"))
        .and_then(FieldValue::as_i64)
}

fn get(ch: &Channel, q: &str) -> Delivery {
    ch.basic_get(q, GetOptions::default())
        .unwrap()
        .expect("a message")
}

#[test]
fn smoke() {
    let (_b, _c, ch) = setup();
    declare(&ch, "qq", quorum());
    publish(&ch, "", "qq", "m");
    assert_eq!(drain(&ch, "qq"), ["m"]);
}

#[test]
fn declare_rules_and_texts() {
    let (_b, conn, _) = setup();
    let durable = QueueDeclareOptions::durable();
    let prefix = "PRECONDITION_FAILED - ";
    assert_eq!(
        try_declare(&conn, "q", QueueDeclareOptions::default(), quorum()),
        format!("{prefix}invalid property 'non-durable' for queue 'q' in vhost '/'")
    );
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        ..durable
    };
    assert_eq!(
        try_declare(&conn, "q", exclusive, quorum()),
        format!("{prefix}invalid property 'exclusive-owner' for queue 'q' in vhost '/'")
    );
    let auto_delete = QueueDeclareOptions {
        auto_delete: true,
        ..exclusive
    };
    assert_eq!(
        try_declare(&conn, "q", auto_delete, quorum()),
        format!("{prefix}invalid property 'auto-delete' for queue 'q' in vhost '/'")
    );
    assert_eq!(
        try_declare(&conn, "", durable, quorum()),
        format!("{prefix}Cannot declare a server-named queue for type rabbit_quorum_queue")
    );
    for arg in ["x-max-priority", "x-queue-mode"] {
        let value: FieldValue = if arg == "x-queue-mode" {
            "lazy".into()
        } else {
            5.into()
        };
        assert_eq!(
            try_declare(
                &conn,
                "q",
                QueueDeclareOptions::default(),
                quorum().with(arg, value)
            ),
            format!(
                "{prefix}invalid arg '{arg}' for queue 'q' in vhost '/' of queue type \
                 rabbit_quorum_queue"
            )
        );
    }
    assert_eq!(
        try_declare(&conn, "q", durable, quorum().with("x-message-ttl", -1)),
        format!(
            "{prefix}invalid arg 'x-message-ttl' for queue 'q' in vhost '/': {{value_negative,-1}}"
        )
    );
    assert_eq!(
        try_declare(
            &conn,
            "c",
            QueueDeclareOptions::default(),
            FieldTable::new().with("x-delivery-limit", 3)
        ),
        format!(
            "{prefix}invalid arg 'x-delivery-limit' for queue 'c' in vhost '/' of queue type \
             rabbit_classic_queue"
        )
    );
    assert_eq!(
        try_declare(&conn, "s", durable, FieldTable::new().with("x-queue-type", "stream")),
        format!("{prefix}invalid arg 'x-queue-type' for queue 's' in vhost '/': \"unsupported queue type 'stream'\"")
    );
    // Accepted arguments, and classic explicit.
    let accepted = quorum()
        .with("x-delivery-limit", 3)
        .with("x-dead-letter-exchange", "dlx")
        .with("x-max-length", 10)
        .with("x-single-active-consumer", true)
        .with("x-max-in-memory-length", 10)
        .with("x-foo", "bar");
    assert_eq!(try_declare(&conn, "q", durable, accepted.clone()), "ok");
    let classic = FieldTable::new().with("x-queue-type", "classic");
    assert_eq!(
        try_declare(&conn, "c", QueueDeclareOptions::default(), classic.clone()),
        "ok"
    );
    // Redeclares: no type and classic are one type; each type compares its own arguments.
    assert_eq!(
        try_declare(
            &conn,
            "c",
            QueueDeclareOptions::default(),
            FieldTable::new()
        ),
        "ok"
    );
    assert_eq!(
        try_declare(
            &conn,
            "c",
            QueueDeclareOptions::default(),
            classic.with("x-delivery-limit", 1)
        ),
        "ok"
    );
    assert_eq!(
        try_declare(&conn, "q", durable, FieldTable::new()),
        format!(
            "{prefix}inequivalent arg 'x-dead-letter-exchange' for queue 'q' in vhost '/': \
             received none but current is the value 'dlx' of type 'longstr'"
        )
    );
    declare(&conn.open_channel().unwrap(), "bare", quorum());
    assert_eq!(
        try_declare(&conn, "bare", durable, FieldTable::new()),
        format!(
            "{prefix}inequivalent arg 'x-queue-type' for queue 'bare' in vhost '/': received \
             none but current is the value 'quorum' of type 'longstr'"
        )
    );
    assert_eq!(
        try_declare(
            &conn,
            "q",
            durable,
            accepted.clone().with("x-delivery-limit", 4)
        ),
        format!(
            "{prefix}inequivalent arg 'x-delivery-limit' for queue 'q' in vhost '/': received \
             '4' but current is '3'"
        )
    );
    assert_eq!(
        try_declare(&conn, "q", durable, accepted.with("x-max-priority", 9)),
        "ok"
    );
}

#[test]
fn the_delivery_limit_dead_letters_with_the_count_on_each_delivery() {
    let (_b, _c, ch) = setup();
    declare_exchange(&ch, "dlx", ExchangeKind::Fanout);
    declare_queue(&ch, "dlq");
    ch.queue_bind("dlq", "dlx", "", FieldTable::new()).unwrap();
    let args = quorum()
        .with("x-delivery-limit", 2)
        .with("x-dead-letter-exchange", "dlx");
    declare(&ch, "work", args);
    ch.basic_publish("", "work", Message::new("m1").header("h", 1))
        .unwrap();
    publish(&ch, "", "work", "m2");
    let mut seen = Vec::new();
    for _ in 0..4 {
        let d = get(&ch, "work");
        seen.push((body(&d), d.redelivered(), count(&d)));
        d.nack(true).unwrap();
    }
    // With a limit, a returned message is served first: m1 three times (counts 0, 1, 2),
    // then its third return passes the limit.
    assert_eq!(
        seen,
        [
            ("m1".into(), false, Some(0)),
            ("m1".into(), true, Some(1)),
            ("m1".into(), true, Some(2)),
            ("m2".into(), false, Some(0)),
        ]
    );
    let dead = ch.basic_get("dlq", GetOptions::no_ack()).unwrap().unwrap();
    assert_eq!(body(&dead), "m1");
    assert!(!dead.redelivered());
    let headers = dead.properties().headers.as_ref().unwrap();
    assert!(headers.get("x-delivery-count").is_none());
    assert_eq!(headers.get("h"), Some(&FieldValue::I32(1)));
    assert_eq!(
        headers
            .get("x-first-death-reason")
            .and_then(FieldValue::as_str),
        Some("delivery_limit")
    );
    let FieldValue::Array(deaths) = headers.get("x-death").unwrap() else {
        panic!("x-death is an array")
    };
    let FieldValue::Table(death) = &deaths[0] else {
        panic!("an x-death entry is a table")
    };
    assert_eq!(
        death.get("reason").and_then(FieldValue::as_str),
        Some("delivery_limit")
    );
    assert_eq!(
        death.get("queue").and_then(FieldValue::as_str),
        Some("work")
    );
    let rest = get(&ch, "work");
    assert_eq!((body(&rest), count(&rest)), ("m2".into(), Some(1)));
}

#[test]
fn every_kind_of_return_counts() {
    let (_b, conn, ch) = setup();
    declare(&ch, "work", quorum().with("x-delivery-limit", 2));
    publish(&ch, "", "work", "r1");
    // reject, channel close, recover: three returns; the third passes the limit of 2.
    let c1 = conn.open_channel().unwrap();
    let d = get(&c1, "work");
    assert_eq!(count(&d), Some(0));
    d.reject(true).unwrap();
    let c2 = conn.open_channel().unwrap();
    let d = get(&c2, "work");
    assert_eq!(count(&d), Some(1));
    drop(d);
    c2.close();
    let c3 = conn.open_channel().unwrap();
    let d = get(&c3, "work");
    assert_eq!(count(&d), Some(2));
    drop(d);
    c3.basic_recover().unwrap();
    assert!(c3
        .basic_get("work", GetOptions::default())
        .unwrap()
        .is_none());
    assert_eq!(
        ch.queue_declare(
            "work",
            QueueDeclareOptions::durable(),
            quorum().with("x-delivery-limit", 2)
        )
        .unwrap()
        .message_count,
        0
    );
}

#[test]
fn limits_of_zero_or_less_drop_at_the_first_return_and_odd_ones_mean_none() {
    let (_b, _c, ch) = setup();
    for (name, limit, deliveries) in [
        ("zero", FieldValue::I32(0), 1),
        ("negative", FieldValue::I32(-1), 1),
        ("text", FieldValue::from("x"), 5),
    ] {
        declare(&ch, name, quorum().with("x-delivery-limit", limit));
        publish(&ch, "", name, "z");
        let mut n = 0;
        while n < 5 {
            let Some(d) = ch.basic_get(name, GetOptions::default()).unwrap() else {
                break;
            };
            n += 1;
            d.nack(true).unwrap();
        }
        assert_eq!(n, deliveries, "{name}");
    }
}

#[test]
fn without_a_limit_explicit_requeues_go_to_the_tail() {
    let (_b, conn, ch) = setup();
    declare(&ch, "free", quorum());
    for m in ["a", "b", "c"] {
        publish(&ch, "", "free", m);
    }
    get(&ch, "free").nack(true).unwrap(); // a to the tail
    get(&ch, "free").reject(false).unwrap(); // b gone
    let out: Vec<(String, bool, Option<i64>)> = std::iter::from_fn(|| {
        ch.basic_get("free", GetOptions::no_ack())
            .unwrap()
            .map(|d| (body(&d), d.redelivered(), count(&d)))
    })
    .collect();
    assert_eq!(
        out,
        [("c".into(), false, Some(0)), ("a".into(), true, Some(1))]
    );
    // A consumer sees no header on a first delivery, then the count.
    for m in ["c1", "c2", "c3"] {
        publish(&ch, "", "free", m);
    }
    let c = conn.open_channel().unwrap();
    c.basic_qos(1).unwrap();
    let consumer = c
        .basic_consume("free", warrenmq::ConsumeOptions::default())
        .unwrap();
    let mut seen = Vec::new();
    let mut rejected = false;
    while seen.len() < 4 {
        let d = consumer.recv_timeout(PATIENCE).unwrap();
        seen.push((body(&d), count(&d)));
        if body(&d) == "c1" && !rejected {
            rejected = true;
            d.reject(true).unwrap();
        } else {
            d.ack().unwrap();
        }
    }
    assert_eq!(
        seen,
        [
            ("c1".into(), None),
            ("c2".into(), None),
            ("c3".into(), None),
            ("c1".into(), Some(1))
        ]
    );
}

#[test]
fn with_a_limit_returns_are_served_first_in_return_order() {
    let (_b, _c, ch) = setup();
    declare(&ch, "lim", quorum().with("x-delivery-limit", 5));
    for m in ["a", "b", "c"] {
        publish(&ch, "", "lim", m);
    }
    let a = get(&ch, "lim");
    let b = get(&ch, "lim");
    b.nack(true).unwrap();
    a.nack(true).unwrap();
    assert_eq!(drain(&ch, "lim"), ["b", "a", "c"]);
}

#[test]
fn length_limits_as_rabbitmq_quorum_queues_have_them() {
    let (_b, _c, ch) = setup();
    let args = quorum()
        .with("x-max-length", 1)
        .with("x-overflow", "reject-publish");
    declare(&ch, "rp", args);
    ch.confirm_select().unwrap();
    let mut acks = Vec::new();
    for m in ["1", "2", "3"] {
        publish(&ch, "", "rp", m);
        acks.push(ch.wait_for_confirms().unwrap());
    }
    // Refused only once the queue is over the limit: one more than a classic queue takes.
    assert_eq!(acks, [true, true, false]);
    assert_eq!(drain(&ch, "rp"), ["1", "2"]);
    declare_exchange(&ch, "dlx", ExchangeKind::Fanout);
    declare_queue(&ch, "dlq");
    ch.queue_bind("dlq", "dlx", "", FieldTable::new()).unwrap();
    let args = quorum()
        .with("x-max-length", 1)
        .with("x-overflow", "reject-publish-dlx")
        .with("x-dead-letter-exchange", "dlx");
    declare(&ch, "rpd", args);
    publish(&ch, "", "rpd", "k1");
    publish(&ch, "", "rpd", "k2");
    assert!(ch.wait_for_confirms().unwrap());
    // reject-publish-dlx acts as drop-head on a quorum queue.
    assert_eq!(drain(&ch, "rpd"), ["k2"]);
    assert_eq!(drain(&ch, "dlq"), ["k1"]);
}

#[cfg(feature = "persistence")]
#[test]
fn durable_quorum_queues_are_stored_like_classic_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warren.redb");
    {
        let broker = Broker::open(&path).unwrap();
        let ch = broker.connect("/").unwrap().open_channel().unwrap();
        declare(&ch, "qq", quorum().with("x-delivery-limit", 1));
        ch.confirm_select().unwrap();
        for m in ["p1", "p2"] {
            ch.basic_publish("", "qq", Message::new(m).persistent())
                .unwrap();
        }
        assert!(ch.wait_for_confirms().unwrap());
    }
    let broker = Broker::open(&path).unwrap();
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    let err = ch
        .queue_declare("qq", QueueDeclareOptions::durable(), FieldTable::new())
        .unwrap_err();
    assert!(err.to_string().contains("'x-queue-type'"), "{err}");
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    // Still a quorum queue with its limit: p1 returned twice is gone.
    let d = get(&ch, "qq");
    assert_eq!(count(&d), Some(0));
    d.nack(true).unwrap();
    get(&ch, "qq").nack(true).unwrap();
    assert_eq!(drain(&ch, "qq"), ["p2"]);
}
