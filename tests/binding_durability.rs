//! Durability of bindings, as RabbitMQ 3.10 has it (docs/rabbitmq-observations.md §17,
//! observed with scripts/quorum_policy_replyto_probe.py, the restart on a private node): every
//! combination of durable and non-durable ends binds and routes, for queue and
//! exchange-to-exchange bindings; after a restart exactly the bindings whose two ends are
//! durable are back. The seed tutorial's stricter rule is `strict_binding_durability`.
//! The same four combinations are compared with RabbitMQ over the wire in
//! tests/differential.rs.

mod common;

use common::*;
use warrenmq::{
    Broker, Channel, ExchangeDeclareOptions, ExchangeKind, FieldTable, QueueDeclareOptions,
};

#[test]
fn smoke() {
    let (_b, _c, ch) = setup();
    declare_queue(&ch, "q");
    ch.queue_bind("q", "amq.direct", "k", FieldTable::new())
        .unwrap();
}

fn exchange(ch: &Channel, name: &str, kind: ExchangeKind, durable: bool) {
    let options = ExchangeDeclareOptions {
        durable,
        ..Default::default()
    };
    ch.exchange_declare(name, kind, options, FieldTable::new())
        .unwrap();
}

fn queue(ch: &Channel, name: &str, durable: bool) {
    let options = QueueDeclareOptions {
        durable,
        ..Default::default()
    };
    ch.queue_declare(name, options, FieldTable::new()).unwrap();
}

fn tag(durable: bool) -> &'static str {
    if durable {
        "D"
    } else {
        "T"
    }
}

/// Declares and binds, for each of the four combinations, exchange `x<XQ>` to queue
/// `q<XQ>` and source `s<SD>` to destination `d<SD>` (which feeds durable queue `e<SD>`).
fn bind_all_four(ch: &Channel) {
    for a in [true, false] {
        for b in [true, false] {
            let t = format!("{}{}", tag(a), tag(b));
            exchange(ch, &format!("x{t}"), ExchangeKind::Direct, a);
            queue(ch, &format!("q{t}"), b);
            ch.queue_bind(&format!("q{t}"), &format!("x{t}"), "k", FieldTable::new())
                .unwrap();
            exchange(ch, &format!("s{t}"), ExchangeKind::Fanout, a);
            exchange(ch, &format!("d{t}"), ExchangeKind::Fanout, b);
            queue(ch, &format!("e{t}"), true);
            ch.queue_bind(&format!("e{t}"), &format!("d{t}"), "", FieldTable::new())
                .unwrap();
            ch.exchange_bind(&format!("d{t}"), &format!("s{t}"), "", FieldTable::new())
                .unwrap();
        }
    }
}

fn routes(ch: &Channel, exchange: &str, key: &str) -> Vec<String> {
    ch.route_preview(exchange, key, &FieldTable::new())
        .unwrap()
        .queues
}

#[test]
fn every_combination_binds_and_routes_by_default() {
    let (_b, _c, ch) = setup();
    bind_all_four(&ch);
    for t in ["DD", "DT", "TD", "TT"] {
        publish(&ch, &format!("x{t}"), "k", "via queue binding");
        assert_eq!(drain(&ch, &format!("q{t}")), ["via queue binding"], "{t}");
        publish(&ch, &format!("s{t}"), "", "via exchange binding");
        assert_eq!(
            drain(&ch, &format!("e{t}")),
            ["via exchange binding"],
            "{t}"
        );
    }
}

#[test]
fn pub_sub_shapes_bind() {
    let (_b, _c, ch) = setup();
    // An exclusive server-named queue on amq.topic and on a durable topic exchange.
    let options = QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    let q = ch
        .queue_declare("", options, FieldTable::new())
        .unwrap()
        .queue;
    ch.queue_bind(&q, "amq.topic", "a.#", FieldTable::new())
        .unwrap();
    exchange(&ch, "celeryev", ExchangeKind::Topic, true);
    let args = FieldTable::new()
        .with("x-message-ttl", 5000)
        .with("x-expires", 60000);
    let options = QueueDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    ch.queue_declare("celeryev.worker", options, args).unwrap();
    ch.queue_bind("celeryev.worker", "celeryev", "worker.#", FieldTable::new())
        .unwrap();
    publish(&ch, "celeryev", "worker.heartbeat", "beat");
    assert_eq!(drain(&ch, "celeryev.worker"), ["beat"]);
}

#[test]
fn the_strict_rule_refuses_mixed_bindings_with_a_plain_text() {
    let broker = Broker::builder()
        .strict_binding_durability(true)
        .build()
        .unwrap();
    let conn = broker.connect("/").unwrap();
    let ch = conn.open_channel().unwrap();
    exchange(&ch, "durable-x", ExchangeKind::Direct, true);
    queue(&ch, "transient-q", false);
    let err = ch
        .queue_bind("transient-q", "durable-x", "k", FieldTable::new())
        .unwrap_err();
    assert_eq!(code(&err), 406);
    assert_eq!(
        err.to_string(),
        "PRECONDITION_FAILED - cannot bind durable exchange 'durable-x' to non-durable queue \
         'transient-q' in vhost '/': strict binding durability is on"
    );
    let ch = conn.open_channel().unwrap();
    exchange(&ch, "transient-x", ExchangeKind::Direct, false);
    queue(&ch, "durable-q", true);
    let err = ch
        .queue_bind("durable-q", "transient-x", "k", FieldTable::new())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "PRECONDITION_FAILED - cannot bind non-durable exchange 'transient-x' to durable queue \
         'durable-q' in vhost '/': strict binding durability is on"
    );
    let ch = conn.open_channel().unwrap();
    let err = ch
        .exchange_bind("transient-x", "durable-x", "k", FieldTable::new())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "PRECONDITION_FAILED - cannot bind durable exchange 'durable-x' to non-durable exchange \
         'transient-x' in vhost '/': strict binding durability is on"
    );
    // Same durability on both ends binds, and so do the predeclared amq.* exchanges.
    let ch = conn.open_channel().unwrap();
    ch.queue_bind("durable-q", "durable-x", "k", FieldTable::new())
        .unwrap();
    ch.queue_bind("transient-q", "transient-x", "k", FieldTable::new())
        .unwrap();
    ch.queue_bind("transient-q", "amq.direct", "k", FieldTable::new())
        .unwrap();
}

#[cfg(feature = "persistence")]
#[test]
fn after_a_restart_only_bindings_between_durable_ends_are_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warren.redb");
    {
        let broker = Broker::open(&path).unwrap();
        let ch = broker.connect("/").unwrap().open_channel().unwrap();
        bind_all_four(&ch);
        // Unbinding a transient binding of a durable exchange touches nothing stored.
        queue(&ch, "extra", false);
        ch.queue_bind("extra", "xDD", "k", FieldTable::new())
            .unwrap();
        ch.queue_unbind("extra", "xDD", "k", FieldTable::new())
            .unwrap();
    }
    let broker = Broker::open(&path).unwrap();
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    assert_eq!(routes(&ch, "xDD", "k"), ["qDD"]);
    assert_eq!(routes(&ch, "sDD", ""), ["eDD"]);
    // Durable exchanges whose binding had a transient end come back without it.
    assert!(routes(&ch, "xDT", "k").is_empty());
    assert!(routes(&ch, "sDT", "").is_empty());
    // Durable queues and destination exchanges behind a transient source are unbound.
    assert!(routes(&ch, "dTD", "").contains(&"eTD".to_owned()));
    for gone in ["xTD", "xTT", "sTD", "sTT", "dDT", "dTT"] {
        let err = ch.route_preview(gone, "", &FieldTable::new()).unwrap_err();
        assert_eq!(code(&err), 404, "{gone}");
    }
    let queues: Vec<String> = broker
        .list_queues("/")
        .unwrap()
        .into_iter()
        .map(|q| q.name)
        .collect();
    assert_eq!(queues, ["eDD", "eDT", "eTD", "eTT", "qDD", "qTD"]);
}
