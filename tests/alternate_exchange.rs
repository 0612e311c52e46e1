//! Alternate exchanges (`alternate-exchange`) and exchange-to-exchange bindings
//! (`exchange_bind(destination, source, ..)`): the original routing key at every hop, one
//! copy for a queue reachable by several paths, cycles that end, AE chains, errors, and the
//! auto-delete rule for exchanges (deleted when the last binding *as a source* goes).
//!
//! Expectations were confirmed against RabbitMQ 3.10.8 (docs/rabbitmq-observations.md,
//! sections 0, 1 "Default / system exchanges, bindings", 6, 8 and 14 "E2E", "Alternate
//! exchange").

mod common;

use common::*;
use warrenmq::{
    Channel, ExchangeDeclareOptions, ExchangeDeleteOptions, ExchangeKind, FieldTable,
    QueueDeleteOptions,
};

fn declare_with_ae(ch: &Channel, name: &str, kind: ExchangeKind, ae: &str) {
    ch.exchange_declare(
        name,
        kind,
        ExchangeDeclareOptions::default(),
        FieldTable::new().with("alternate-exchange", ae),
    )
    .unwrap();
}

fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str) {
    ch.queue_bind(queue, exchange, key, FieldTable::new())
        .unwrap();
}

fn bind_x(ch: &Channel, destination: &str, source: &str, key: &str) {
    ch.exchange_bind(destination, source, key, FieldTable::new())
        .unwrap();
}

fn exists(ch: &Channel, exchange: &str) -> bool {
    ch.route_preview(exchange, "", &FieldTable::new()).is_ok()
}

#[test]
fn smoke() {
    let (_b, _c, ch) = setup();
    declare_with_ae(&ch, "main", ExchangeKind::Direct, "ae");
    declare_exchange(&ch, "ae", ExchangeKind::Fanout);
    declare_queue(&ch, "mainq");
    declare_queue(&ch, "aeq");
    bind(&ch, "mainq", "main", "good");
    bind(&ch, "aeq", "ae", "");
    publish(&ch, "main", "good", "g");
    publish(&ch, "main", "bad", "b");
    assert_eq!(drain(&ch, "mainq"), ["g"]);
    assert_eq!(drain(&ch, "aeq"), ["b"]);
}

#[test]
fn e2e_uses_the_original_routing_key_at_every_hop() {
    let (_b, _c, ch) = setup();
    declare_exchange(&ch, "src", ExchangeKind::Topic);
    declare_exchange(&ch, "dst", ExchangeKind::Direct);
    declare_queue(&ch, "q");
    bind_x(&ch, "dst", "src", "a.*");
    bind(&ch, "q", "dst", "a.b");
    for key in ["a.b", "a.c", "x.y"] {
        publish(&ch, "src", key, key);
    }
    assert_eq!(drain(&ch, "q"), ["a.b"]);
    let preview = ch.route_preview("src", "a.b", &FieldTable::new()).unwrap();
    assert_eq!(preview.queues, ["q"]);
    assert_eq!(preview.exchanges, ["src", "dst"]);
}

#[test]
fn a_queue_reachable_twice_gets_one_copy() {
    let (_b, _c, ch) = setup();
    declare_exchange(&ch, "f1", ExchangeKind::Fanout);
    declare_exchange(&ch, "f2", ExchangeKind::Fanout);
    declare_queue(&ch, "q");
    bind(&ch, "q", "f1", "");
    bind(&ch, "q", "f2", "");
    bind_x(&ch, "f2", "f1", "");
    publish(&ch, "f1", "", "m");
    assert_eq!(drain(&ch, "q"), ["m"]);
}

#[test]
fn exchange_cycles_end() {
    let (_b, _c, ch) = setup();
    declare_exchange(&ch, "src", ExchangeKind::Fanout);
    declare_exchange(&ch, "dst", ExchangeKind::Fanout);
    declare_queue(&ch, "q");
    bind_x(&ch, "dst", "src", "");
    bind_x(&ch, "src", "dst", "");
    bind(&ch, "q", "src", "");
    publish(&ch, "src", "", "m1");
    publish(&ch, "dst", "", "m2");
    assert_eq!(drain(&ch, "q"), ["m1", "m2"]);
    // An exchange bound to itself.
    bind_x(&ch, "src", "src", "");
    publish(&ch, "src", "", "m3");
    assert_eq!(drain(&ch, "q"), ["m3"]);
}

#[test]
fn alternate_exchanges_chain_and_their_cycles_end() {
    let (broker, _c, ch) = setup();
    declare_with_ae(&ch, "a", ExchangeKind::Direct, "b");
    declare_with_ae(&ch, "b", ExchangeKind::Direct, "c");
    declare_with_ae(&ch, "c", ExchangeKind::Direct, "a");
    declare_queue(&ch, "cq");
    bind(&ch, "cq", "c", "k");
    publish(&ch, "a", "k", "via-c");
    publish(&ch, "a", "other", "lost");
    assert_eq!(drain(&ch, "cq"), ["via-c"]);
    assert_eq!(broker.exchange_stats("/", "a").unwrap().unroutable, 1);
}

#[test]
fn an_alternate_exchange_is_used_only_when_nothing_matches() {
    let (_b, _c, ch) = setup();
    declare_with_ae(&ch, "main", ExchangeKind::Topic, "ae");
    declare_exchange(&ch, "ae", ExchangeKind::Fanout);
    declare_exchange(&ch, "dead-end", ExchangeKind::Fanout);
    declare_queue(&ch, "aeq");
    bind(&ch, "aeq", "ae", "");
    // main routes "x" to an exchange that leads nowhere: that counts as routed by main.
    bind_x(&ch, "dead-end", "main", "x");
    publish(&ch, "main", "x", "swallowed");
    publish(&ch, "main", "y", "alternate");
    assert_eq!(drain(&ch, "aeq"), ["alternate"]);
}

#[test]
fn exchange_bind_errors() {
    let (_b, conn, ch) = setup();
    declare_exchange(&ch, "x", ExchangeKind::Direct);
    let err = ch
        .exchange_bind("missingx", "x", "", FieldTable::new())
        .unwrap_err();
    assert_eq!(code(&err), 404);
    assert_eq!(
        err.to_string(),
        "NOT_FOUND - no exchange 'missingx' in vhost '/'"
    );
    let ch = conn.open_channel().unwrap();
    let err = ch
        .exchange_bind("x", "missingx", "", FieldTable::new())
        .unwrap_err();
    assert_eq!(code(&err), 404);
    let ch = conn.open_channel().unwrap();
    let err = ch
        .exchange_bind("x", "", "", FieldTable::new())
        .unwrap_err();
    assert_eq!(code(&err), 403);
    let ch = conn.open_channel().unwrap();
    ch.exchange_unbind("x", "amq.direct", "never", FieldTable::new())
        .unwrap();
    ch.exchange_unbind("missing", "missing2", "", FieldTable::new())
        .unwrap();
}

#[test]
fn delete_if_unused_counts_only_source_bindings() {
    let (_b, conn, ch) = setup();
    declare_exchange(&ch, "src", ExchangeKind::Fanout);
    declare_exchange(&ch, "dst", ExchangeKind::Fanout);
    bind_x(&ch, "dst", "src", "");
    let err = ch
        .exchange_delete("src", ExchangeDeleteOptions { if_unused: true })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "PRECONDITION_FAILED - exchange 'src' in vhost '/' in use"
    );
    let ch = conn.open_channel().unwrap();
    ch.exchange_delete("dst", ExchangeDeleteOptions { if_unused: true })
        .unwrap();
    assert!(!exists(&ch, "dst"));
    // The binding went with its destination.
    ch.exchange_delete("src", ExchangeDeleteOptions { if_unused: true })
        .unwrap();
}

fn auto_delete(ch: &Channel, name: &str) {
    ch.exchange_declare(
        name,
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::new(),
    )
    .unwrap();
}

#[test]
fn auto_delete_applies_to_exchanges_only_as_sources() {
    let (_b, _c, ch) = setup();
    auto_delete(&ch, "ad-dst");
    declare_exchange(&ch, "plain", ExchangeKind::Fanout);
    bind_x(&ch, "ad-dst", "plain", "");
    ch.exchange_unbind("ad-dst", "plain", "", FieldTable::new())
        .unwrap();
    assert!(exists(&ch, "ad-dst"), "only a destination: lives on");

    auto_delete(&ch, "ad-src");
    bind_x(&ch, "plain", "ad-src", "");
    ch.exchange_unbind("plain", "ad-src", "", FieldTable::new())
        .unwrap();
    assert!(!exists(&ch, "ad-src"), "its last source binding went");

    auto_delete(&ch, "ad-src2");
    declare_exchange(&ch, "doomed", ExchangeKind::Fanout);
    bind_x(&ch, "doomed", "ad-src2", "");
    ch.exchange_delete("doomed", ExchangeDeleteOptions::default())
        .unwrap();
    assert!(!exists(&ch, "ad-src2"), "its only destination was deleted");
}

#[test]
fn deleting_a_queue_behind_an_exchange_binding_unbinds_it() {
    let (_b, _c, ch) = setup();
    declare_exchange(&ch, "src", ExchangeKind::Fanout);
    auto_delete(&ch, "mid");
    declare_queue(&ch, "q");
    bind_x(&ch, "mid", "src", "");
    bind(&ch, "q", "mid", "");
    ch.queue_delete("q", QueueDeleteOptions::default()).unwrap();
    assert!(!exists(&ch, "mid"), "mid lost its last source binding");
    let preview = ch.route_preview("src", "", &FieldTable::new()).unwrap();
    assert!(preview.queues.is_empty());
    publish(&ch, "src", "", "nowhere");
}
