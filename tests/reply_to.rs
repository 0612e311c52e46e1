//! Direct reply-to (`amq.rabbitmq.reply-to`), as RabbitMQ 3.10 answers it
//! (docs/rabbitmq-observations.md §19, scripts/quorum_policy_replyto_probe.py): a no-ack
//! consumer on the pseudo-queue, a generated `amq.rabbitmq.reply-to.<token>` address in the
//! requests the channel publishes, replies through the default exchange, and the errors.
//! tests/differential.rs runs the same against RabbitMQ over the wire.

mod common;

use common::*;
use warrenmq::{
    ConsumeOptions, FieldTable, GetOptions, Message, PublishOptions, QueueDeclareOptions,
};

const REPLY_TO: &str = "amq.rabbitmq.reply-to";

#[test]
fn smoke() {
    let (_b, _c, ch) = setup();
    let replies = ch
        .basic_consume(REPLY_TO, ConsumeOptions::no_ack())
        .unwrap();
    assert!(replies.try_recv().is_err());
}

#[test]
fn a_request_carries_an_address_and_the_reply_reaches_the_consumer() {
    let (broker, _c, client) = setup();
    let server = broker.connect("/").unwrap().open_channel().unwrap();
    declare_queue(&server, "rpc");
    let replies = client
        .basic_consume(REPLY_TO, ConsumeOptions::no_ack().tag("replies"))
        .unwrap();
    let request = Message::new("2+2").reply_to(REPLY_TO).correlation_id("c1");
    client.basic_publish("", "rpc", request).unwrap();
    let got = server
        .basic_get("rpc", GetOptions::no_ack())
        .unwrap()
        .unwrap();
    let address = got.properties().reply_to.clone().unwrap();
    assert!(address.starts_with("amq.rabbitmq.reply-to."), "{address}");
    assert!(address.len() > REPLY_TO.len() + 1);
    assert_eq!(got.properties().correlation_id.as_deref(), Some("c1"));
    for body in ["4", "four"] {
        let reply = Message::new(body).correlation_id("c1");
        server.basic_publish("", &address, reply).unwrap();
    }
    let first = replies.recv_timeout(PATIENCE).unwrap();
    assert_eq!(body(&first), "4");
    assert_eq!(first.exchange(), "");
    assert_eq!(first.routing_key(), address);
    assert!(!first.redelivered());
    assert_eq!(first.consumer_tag(), Some("replies"));
    assert_eq!(first.properties().correlation_id.as_deref(), Some("c1"));
    assert_eq!(body(&replies.recv_timeout(PATIENCE).unwrap()), "four");
    // The pseudo-queue and a live address answer declares; a dead address does not.
    let ok = server
        .queue_declare(REPLY_TO, QueueDeclareOptions::default(), FieldTable::new())
        .unwrap();
    assert_eq!((ok.message_count, ok.consumer_count), (0, 1));
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let ok = server
        .queue_declare(&address, passive, FieldTable::new())
        .unwrap();
    assert_eq!(
        (ok.queue.as_str(), ok.consumer_count),
        (address.as_str(), 1)
    );
    // A reply through another exchange, or to the pseudo-queue itself, goes nowhere.
    let returns = server.returns();
    for (exchange, key) in [("amq.direct", address.as_str()), ("", REPLY_TO)] {
        server
            .basic_publish_with(
                exchange,
                key,
                PublishOptions::mandatory(),
                Message::new("x"),
            )
            .unwrap();
        assert_eq!(returns.try_recv().unwrap().reply_text, "NO_ROUTE");
    }
    // Request and reply on one channel.
    client
        .basic_publish("", "rpc", Message::new("self").reply_to(REPLY_TO))
        .unwrap();
    let got = client
        .basic_get("rpc", GetOptions::no_ack())
        .unwrap()
        .unwrap();
    client
        .basic_publish(
            "",
            got.properties().reply_to.as_deref().unwrap(),
            Message::new("me"),
        )
        .unwrap();
    assert_eq!(body(&replies.recv_timeout(PATIENCE).unwrap()), "me");
}

#[test]
fn the_errors_are_rabbitmqs() {
    let (broker, conn, _) = setup();
    let err = |f: &dyn Fn(&warrenmq::Channel) -> warrenmq::Result<()>| {
        let ch = conn.open_channel().unwrap();
        f(&ch).unwrap_err().to_string()
    };
    assert_eq!(
        err(&|ch| ch
            .basic_consume(REPLY_TO, ConsumeOptions::default())
            .map(drop)),
        "PRECONDITION_FAILED - reply consumer cannot acknowledge"
    );
    assert_eq!(
        err(&|ch| {
            let _first = ch.basic_consume(REPLY_TO, ConsumeOptions::no_ack())?;
            ch.basic_consume(REPLY_TO, ConsumeOptions::no_ack())
                .map(drop)
        }),
        "PRECONDITION_FAILED - reply consumer already set"
    );
    let server = broker.connect("/").unwrap().open_channel().unwrap();
    declare_queue(&server, "rpc");
    let no_consumer = "PRECONDITION_FAILED - fast reply consumer does not exist";
    assert_eq!(
        err(&|ch| ch.basic_publish("", "rpc", Message::new("x").reply_to(REPLY_TO))),
        no_consumer
    );
    assert_eq!(
        err(&|ch| {
            let c = ch.basic_consume(REPLY_TO, ConsumeOptions::no_ack())?;
            ch.basic_cancel(c.tag())?;
            ch.basic_publish("", "rpc", Message::new("x").reply_to(REPLY_TO))
        }),
        no_consumer
    );
    assert_eq!(
        err(&|ch| ch.basic_get(REPLY_TO, GetOptions::no_ack()).map(drop)),
        "NOT_FOUND - no queue 'amq.rabbitmq.reply-to' in vhost '/'"
    );
    assert_eq!(
        err(&|ch| ch.queue_bind(REPLY_TO, "amq.direct", "k", FieldTable::new())),
        "NOT_FOUND - no queue 'amq.rabbitmq.reply-to' in vhost '/'"
    );
    // A longer reply_to is left alone.
    let ch = conn.open_channel().unwrap();
    ch.basic_publish(
        "",
        "rpc",
        Message::new("x").reply_to("amq.rabbitmq.reply-to.x"),
    )
    .unwrap();
    assert_eq!(drain(&server, "rpc"), ["x"]);
}

#[test]
fn replies_to_a_gone_channel_are_dropped_or_returned() {
    let (broker, conn, _) = setup();
    let server = broker.connect("/").unwrap().open_channel().unwrap();
    declare_queue(&server, "rpc");
    let client = conn.open_channel().unwrap();
    let replies = client
        .basic_consume(REPLY_TO, ConsumeOptions::no_ack())
        .unwrap();
    client
        .basic_publish("", "rpc", Message::new("req").reply_to(REPLY_TO))
        .unwrap();
    let request = server
        .basic_get("rpc", GetOptions::no_ack())
        .unwrap()
        .unwrap();
    let address = request.properties().reply_to.clone().unwrap();
    drop(replies);
    client.close();
    server.confirm_select().unwrap();
    let returns = server.returns();
    server
        .basic_publish("", &address, Message::new("late"))
        .unwrap();
    server
        .basic_publish_with(
            "",
            &address,
            PublishOptions::mandatory(),
            Message::new("late"),
        )
        .unwrap();
    assert!(server.wait_for_confirms().unwrap());
    assert_eq!(returns.try_recv().unwrap().reply_text, "NO_ROUTE");
    assert!(returns.try_recv().is_err());
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let err = server
        .queue_declare(&address, passive, FieldTable::new())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("NOT_FOUND - no queue '{address}' in vhost '/'")
    );
}
