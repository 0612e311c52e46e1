//! A first pass over the whole API: declare, bind, publish, get, consume, ack.

use std::time::Duration;

use warrenmq::{
    Broker, ConsumeOptions, ExchangeDeclareOptions, ExchangeKind, FieldTable, GetOptions, Message,
    QueueDeclareOptions,
};

#[test]
fn smoke() {
    let broker = Broker::in_memory();
    let conn = broker.connect("/").unwrap();
    let ch = conn.open_channel().unwrap();
    ch.exchange_declare(
        "sorting_room",
        ExchangeKind::Direct,
        ExchangeDeclareOptions::durable(),
        FieldTable::new(),
    )
    .unwrap();
    let ok = ch
        .queue_declare("po_box", QueueDeclareOptions::durable(), FieldTable::new())
        .unwrap();
    assert_eq!(
        (ok.queue.as_str(), ok.message_count, ok.consumer_count),
        ("po_box", 0, 0)
    );
    ch.queue_bind("po_box", "sorting_room", "1111", FieldTable::new())
        .unwrap();
    for i in 0..3 {
        ch.basic_publish(
            "sorting_room",
            "1111",
            Message::new(format!("m{i}")).persistent(),
        )
        .unwrap();
    }
    ch.basic_publish("sorting_room", "2222", Message::new("lost"))
        .unwrap();

    let got = ch
        .basic_get("po_box", GetOptions::default())
        .unwrap()
        .unwrap();
    assert_eq!(got.body().as_ref(), b"m0");
    assert_eq!(got.message_count(), Some(2));
    assert_eq!(got.exchange(), "sorting_room");
    assert_eq!(got.routing_key(), "1111");
    assert!(!got.redelivered());
    got.ack().unwrap();

    let consumer = ch
        .basic_consume("po_box", ConsumeOptions::default())
        .unwrap();
    let d1 = consumer.recv_timeout(Duration::from_secs(5)).unwrap();
    let d2 = consumer.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(
        (d1.body().as_ref(), d2.body().as_ref()),
        (&b"m1"[..], &b"m2"[..])
    );
    assert!(d1.properties().is_persistent());
    ch.basic_ack(d2.delivery_tag(), true).unwrap();
    drop((d1, d2));

    let stats = broker.queue_stats("/", "po_box").unwrap();
    assert_eq!(
        (
            stats.messages_ready,
            stats.messages_unacknowledged,
            stats.consumers
        ),
        (0, 0, 1)
    );
    let ex = broker.exchange_stats("/", "sorting_room").unwrap();
    assert_eq!((ex.published, ex.routed, ex.unroutable), (4, 3, 1));
}
