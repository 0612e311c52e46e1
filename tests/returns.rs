//! `mandatory` publishing: an unroutable message comes back on the channel's `Returns`
//! handle with reply code 312 `NO_ROUTE`, its exchange, routing key and message; routed or
//! non-mandatory messages do not; alternate exchanges count as routes; returns are still
//! confirmed (`wait_for_confirms` is true); exchange counters; handles disconnect when the
//! channel closes.
//!
//! Expectations were confirmed against RabbitMQ 3.10.8 (docs/rabbitmq-observations.md,
//! section 10 "Unroutable").

mod common;

use common::*;
use warrenmq::{
    Channel, ExchangeDeclareOptions, ExchangeKind, FieldTable, Message, PublishOptions, ReplyCode,
    TryRecvError,
};

fn mandatory(ch: &Channel, exchange: &str, key: &str, body: &str) {
    ch.basic_publish_with(
        exchange,
        key,
        PublishOptions::mandatory(),
        Message::new(body.to_owned()),
    )
    .unwrap();
}

#[test]
fn smoke() {
    let (_b, _c, ch) = setup();
    let returns = ch.returns();
    mandatory(&ch, "", "no-such-queue", "hello");
    let r = returns.try_recv().unwrap();
    assert_eq!(r.reply_code, ReplyCode::NO_ROUTE);
    assert_eq!(r.reply_code.0, 312);
    assert_eq!(r.reply_text, "NO_ROUTE");
    assert_eq!(r.exchange, "");
    assert_eq!(r.routing_key, "no-such-queue");
    assert_eq!(r.message.body().as_ref(), b"hello");
}

#[test]
fn unroutable_mandatory_messages_come_back_from_any_exchange() {
    let (_b, _c, ch) = setup();
    let returns = ch.returns();
    mandatory(&ch, "amq.topic", "a.b", "t");
    mandatory(&ch, "amq.fanout", "", "f");
    let got: Vec<(String, String)> = returns
        .try_iter()
        .map(|r| (r.exchange, r.routing_key))
        .collect();
    assert_eq!(
        got,
        [
            ("amq.topic".to_owned(), "a.b".to_owned()),
            ("amq.fanout".to_owned(), String::new())
        ]
    );
}

#[test]
fn routed_or_non_mandatory_messages_do_not_come_back() {
    let (broker, _c, ch) = setup();
    declare_queue(&ch, "q");
    let returns = ch.returns();
    mandatory(&ch, "", "q", "routed");
    publish(&ch, "", "nowhere", "dropped");
    assert_eq!(returns.try_recv().unwrap_err(), TryRecvError::Empty);
    let stats = broker.exchange_stats("/", "").unwrap();
    assert_eq!((stats.routed, stats.unroutable, stats.returned), (1, 1, 0));
    mandatory(&ch, "", "nowhere", "returned");
    let stats = broker.exchange_stats("/", "").unwrap();
    assert_eq!((stats.routed, stats.unroutable, stats.returned), (1, 1, 1));
}

#[test]
fn a_return_is_still_confirmed() {
    let (_b, _c, ch) = setup();
    ch.confirm_select().unwrap();
    let returns = ch.returns();
    mandatory(&ch, "", "nowhere", "m");
    assert!(returns.try_recv().is_ok());
    assert!(
        ch.wait_for_confirms().unwrap(),
        "basic.return then basic.ack"
    );
}

#[test]
fn an_alternate_exchange_that_routes_prevents_the_return() {
    let (_b, _c, ch) = setup();
    let with_ae = |name: &str, ae: &str| {
        ch.exchange_declare(
            name,
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::new().with("alternate-exchange", ae),
        )
        .unwrap();
    };
    with_ae("main", "ae");
    with_ae("broken", "missing-ae");
    declare_exchange(&ch, "ae", ExchangeKind::Fanout);
    declare_queue(&ch, "aeq");
    ch.queue_bind("aeq", "ae", "", FieldTable::new()).unwrap();
    let returns = ch.returns();
    mandatory(&ch, "main", "anything", "to-ae");
    assert!(returns.try_recv().is_err());
    assert_eq!(drain(&ch, "aeq"), ["to-ae"]);
    mandatory(&ch, "broken", "anything", "back");
    assert_eq!(returns.try_recv().unwrap().exchange, "broken");
}

#[test]
fn returns_go_to_the_publishing_channel_only() {
    let (_b, conn, ch) = setup();
    let other = conn.open_channel().unwrap();
    let theirs = other.returns();
    let ours = ch.returns();
    mandatory(&ch, "", "nowhere", "m");
    assert!(theirs.try_recv().is_err());
    assert_eq!(ours.len(), 1);
}

#[test]
fn returns_made_before_any_handle_are_dropped() {
    let (_b, _c, ch) = setup();
    mandatory(&ch, "", "nowhere", "lost");
    let returns = ch.returns();
    assert!(returns.is_empty());
}

#[test]
fn the_handle_disconnects_when_the_channel_closes() {
    let (_b, _c, ch) = setup();
    let returns = ch.returns();
    mandatory(&ch, "", "nowhere", "last");
    ch.close();
    assert_eq!(returns.recv().unwrap().message.body().as_ref(), b"last");
    assert!(returns.recv().is_err());
    assert_eq!(returns.iter().count(), 0);
    assert_eq!(
        ch.returns().try_recv().unwrap_err(),
        TryRecvError::Disconnected
    );
}
