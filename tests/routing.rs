//! Routing by exchange kind, as observed on RabbitMQ 3.10 (docs/rabbitmq-observations.md,
//! sections 4-6): which queues a message reaches, each once.

mod common;

use common::*;
use warrenmq::routing::{Binding, DestinationId, InvalidBinding, Router, RoutingInput};
use warrenmq::{Broker, ExchangeDeclareOptions, ExchangeKind, FieldTable, FieldValue, Message};

#[test]
fn smoke() {
    let (_b, _c, ch) = setup();
    declare_queue(&ch, "q");
    publish(&ch, "", "q", "via default exchange");
    assert_eq!(drain(&ch, "q"), ["via default exchange"]);
}

#[test]
fn direct_routes_by_key_equality() {
    let (_b, _c, ch) = setup();
    declare_exchange(&ch, "d", ExchangeKind::Direct);
    for q in ["info", "error", "both"] {
        declare_queue(&ch, q);
    }
    ch.queue_bind("info", "d", "info", FieldTable::new())
        .unwrap();
    ch.queue_bind("error", "d", "error", FieldTable::new())
        .unwrap();
    ch.queue_bind("both", "d", "info", FieldTable::new())
        .unwrap();
    ch.queue_bind("both", "d", "error", FieldTable::new())
        .unwrap();
    for key in ["info", "error", "debug", ""] {
        publish(&ch, "d", key, key);
    }
    assert_eq!(drain(&ch, "info"), ["info"]);
    assert_eq!(drain(&ch, "error"), ["error"]);
    assert_eq!(drain(&ch, "both"), ["info", "error"]);
}

#[test]
fn topic_routes_like_rabbitmq() {
    // A sample of the pattern x key matrix observed on RabbitMQ.
    let cases: &[(&str, &[&str])] = &[
        ("", &[""]),
        (
            "#",
            &[
                "", ".", "a", "a.", ".a", "a..z", "a.z", "abc", "abc.", "a.b.c.z", "z", "a*",
            ],
        ),
        ("*", &["a", "abc", "z", "a*"]),
        ("#.", &[".", "a.", "abc."]),
        ("a.#.z", &["a..z", "a.z", "a.b.c.z"]),
        ("#.z", &["a..z", "a.z", "a.b.c.z", "z"]),
        ("a.*", &["a.", "a.z"]),
        ("*.*", &[".", "a.", ".a", "a.z", "abc."]),
        ("abc.#", &["abc", "abc."]),
        ("a*", &["a*"]),
    ];
    let keys = [
        "", ".", "a", "a.", ".a", "a..z", "a.z", "abc", "abc.", "a.b.c.z", "z", "a*",
    ];
    let (_b, _c, ch) = setup();
    declare_exchange(&ch, "t", ExchangeKind::Topic);
    for (i, (pattern, _)) in cases.iter().enumerate() {
        let q = format!("q{i}");
        declare_queue(&ch, &q);
        ch.queue_bind(&q, "t", pattern, FieldTable::new()).unwrap();
    }
    for key in keys {
        publish(&ch, "t", key, key);
    }
    for (i, (pattern, expected)) in cases.iter().enumerate() {
        let got = drain(&ch, &format!("q{i}"));
        assert_eq!(got, *expected, "pattern {pattern:?}");
    }
}

#[test]
fn a_queue_matched_by_several_bindings_gets_one_copy() {
    let (_b, _c, ch) = setup();
    declare_exchange(&ch, "t", ExchangeKind::Topic);
    declare_exchange(&ch, "f", ExchangeKind::Fanout);
    declare_queue(&ch, "q");
    for pattern in ["a.*", "a.#", "#", "*.b"] {
        ch.queue_bind("q", "t", pattern, FieldTable::new()).unwrap();
    }
    ch.queue_bind("q", "f", "k1", FieldTable::new()).unwrap();
    ch.queue_bind("q", "f", "k2", FieldTable::new()).unwrap();
    publish(&ch, "t", "a.b", "topic");
    publish(&ch, "f", "whatever", "fanout");
    assert_eq!(drain(&ch, "q"), ["topic", "fanout"]);
    ch.queue_unbind("q", "f", "k1", FieldTable::new()).unwrap();
    publish(&ch, "f", "", "still bound by k2");
    assert_eq!(drain(&ch, "q"), ["still bound by k2"]);
}

#[test]
fn fanout_ignores_the_key() {
    let (_b, _c, ch) = setup();
    declare_exchange(&ch, "logs", ExchangeKind::Fanout);
    for q in ["a", "b", "c"] {
        declare_queue(&ch, q);
        ch.queue_bind(q, "logs", "", FieldTable::new()).unwrap();
    }
    publish(&ch, "logs", "any.key", "hello");
    for q in ["a", "b", "c"] {
        assert_eq!(drain(&ch, q), ["hello"]);
    }
}

#[test]
fn headers_match_all_and_any() {
    let (_b, _c, ch) = setup();
    declare_exchange(&ch, "h", ExchangeKind::Headers);
    declare_queue(&ch, "all");
    declare_queue(&ch, "any");
    declare_queue(&ch, "present");
    let all = FieldTable::new()
        .with("x-match", "all")
        .with("format", "pdf")
        .with("size", 4);
    let any = FieldTable::new()
        .with("x-match", "any")
        .with("format", "pdf")
        .with("size", 4);
    let present = FieldTable::new().with("size", FieldValue::Void);
    ch.queue_bind("all", "h", "", all).unwrap();
    ch.queue_bind("any", "h", "", any).unwrap();
    ch.queue_bind("present", "h", "", present).unwrap();
    let send = |body: &str, headers: FieldTable| {
        ch.basic_publish(
            "h",
            "ignored",
            Message::new(body.to_owned()).headers(headers),
        )
        .unwrap();
    };
    send(
        "both",
        FieldTable::new().with("format", "pdf").with("size", 4i64),
    );
    send("format only", FieldTable::new().with("format", "pdf"));
    send("size as float", FieldTable::new().with("size", 4.0f64));
    send("size as string", FieldTable::new().with("size", "4"));
    ch.basic_publish("h", "", Message::new("no headers"))
        .unwrap();
    assert_eq!(drain(&ch, "all"), ["both"]);
    assert_eq!(drain(&ch, "any"), ["both", "format only", "size as float"]);
    assert_eq!(
        drain(&ch, "present"),
        ["both", "size as float", "size as string"]
    );
}

#[test]
fn invalid_x_match_is_precondition_failed() {
    let (_b, _c, ch) = setup();
    declare_exchange(&ch, "h", ExchangeKind::Headers);
    declare_queue(&ch, "q");
    let err = ch
        .queue_bind("q", "h", "", FieldTable::new().with("x-match", "bogus"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "PRECONDITION_FAILED - Invalid x-match field value <<\"bogus\">>; expected all, any, \
         all-with-x, or any-with-x"
    );
}

#[test]
fn message_properties_arrive_intact_and_the_body_is_shared() {
    let (_b, _c, ch) = setup();
    declare_exchange(&ch, "f", ExchangeKind::Fanout);
    declare_queue(&ch, "a");
    declare_queue(&ch, "b");
    ch.queue_bind("a", "f", "", FieldTable::new()).unwrap();
    ch.queue_bind("b", "f", "", FieldTable::new()).unwrap();
    let msg = Message::new(vec![7u8; 1024])
        .content_type("application/json")
        .content_encoding("identity")
        .header("h", 1)
        .persistent()
        .priority(3)
        .correlation_id("c-1")
        .reply_to("replies")
        .expiration_ms(60_000)
        .message_id("m-1")
        .timestamp(1_700_000_000)
        .message_type("t")
        .user_id("guest")
        .app_id("tests");
    ch.basic_publish("f", "k", msg.clone()).unwrap();
    let a = ch
        .basic_get("a", warrenmq::GetOptions::no_ack())
        .unwrap()
        .unwrap();
    let b = ch
        .basic_get("b", warrenmq::GetOptions::no_ack())
        .unwrap()
        .unwrap();
    assert_eq!(a.message(), &msg);
    assert_eq!(b.properties(), msg.properties());
    // One body in memory for both queues.
    assert_eq!(a.body().as_ptr(), b.body().as_ptr());
}

/// A custom exchange kind: routes to destinations whose binding key is a prefix of the
/// routing key.
#[derive(Debug, Default)]
struct PrefixRouter {
    bindings: parking_lot::RwLock<Vec<(DestinationId, String)>>,
}

impl Router for PrefixRouter {
    fn bind(&self, b: Binding<'_>) -> Result<bool, InvalidBinding> {
        if b.key.is_empty() {
            return Err(InvalidBinding("empty prefix".into()));
        }
        let mut all = self.bindings.write();
        if all.iter().any(|(d, k)| *d == b.destination && k == b.key) {
            return Ok(false);
        }
        all.push((b.destination, b.key.to_owned()));
        Ok(true)
    }

    fn unbind(&self, b: Binding<'_>) -> bool {
        let mut all = self.bindings.write();
        let before = all.len();
        all.retain(|(d, k)| !(*d == b.destination && k == b.key));
        all.len() != before
    }

    fn route(&self, input: RoutingInput<'_>, out: &mut Vec<DestinationId>) {
        for (d, k) in self.bindings.read().iter() {
            if input.routing_key.starts_with(k.as_str()) {
                out.push(*d);
            }
        }
    }
}

#[test]
fn custom_exchange_kinds_plug_in_by_name() {
    let broker = Broker::builder()
        .exchange_kind("x-prefix", PrefixRouter::default)
        .build()
        .unwrap();
    let conn = broker.connect("/").unwrap();
    let ch = conn.open_channel().unwrap();
    let kind = ExchangeKind::Custom("x-prefix".into());
    ch.exchange_declare(
        "p",
        kind,
        ExchangeDeclareOptions::default(),
        FieldTable::new(),
    )
    .unwrap();
    declare_queue(&ch, "eu");
    declare_queue(&ch, "all");
    ch.queue_bind("eu", "p", "eu.", FieldTable::new()).unwrap();
    ch.queue_bind("all", "p", "e", FieldTable::new()).unwrap();
    ch.queue_bind("all", "p", "eu", FieldTable::new()).unwrap();
    publish(&ch, "p", "eu.west", "1");
    publish(&ch, "p", "us.east", "2");
    assert_eq!(drain(&ch, "eu"), ["1"]);
    assert_eq!(drain(&ch, "all"), ["1"]);
    let err = ch.queue_bind("eu", "p", "", FieldTable::new()).unwrap_err();
    assert_eq!(code(&err), 406);
    assert_eq!(err.to_string(), "PRECONDITION_FAILED - empty prefix");
}

#[test]
fn route_preview_names_the_queues_without_publishing() {
    let (broker, _c, ch) = setup();
    declare_exchange(&ch, "t", ExchangeKind::Topic);
    declare_queue(&ch, "b");
    declare_queue(&ch, "a");
    ch.queue_bind("a", "t", "order.*", FieldTable::new())
        .unwrap();
    ch.queue_bind("b", "t", "#", FieldTable::new()).unwrap();
    let preview = ch
        .route_preview("t", "order.created", &FieldTable::new())
        .unwrap();
    assert_eq!(preview.queues, ["a", "b"]);
    assert_eq!(preview.exchanges, ["t"]);
    assert!(
        ch.route_preview("t", "", &FieldTable::new())
            .unwrap()
            .queues
            == ["b"]
    );
    assert_eq!(broker.queue_stats("/", "a").unwrap().messages_ready, 0);
    assert_eq!(
        code(
            &ch.route_preview("missing", "k", &FieldTable::new())
                .unwrap_err()
        ),
        404
    );
    // A failed preview does not close the channel.
    assert!(!ch.is_closed());
}

#[test]
fn unroutable_messages_are_dropped_and_counted() {
    let (broker, _c, ch) = setup();
    declare_exchange(&ch, "d", ExchangeKind::Direct);
    publish(&ch, "d", "nobody", "lost");
    publish(&ch, "", "no-such-queue", "lost too");
    let d = broker.exchange_stats("/", "d").unwrap();
    assert_eq!((d.published, d.routed, d.unroutable), (1, 0, 1));
    let default = broker.exchange_stats("/", "").unwrap();
    assert_eq!((default.published, default.unroutable), (1, 1));
}

#[test]
fn internal_exchanges_refuse_publishes() {
    let (_b, _c, ch) = setup();
    let options = ExchangeDeclareOptions {
        internal: true,
        ..Default::default()
    };
    ch.exchange_declare("i", ExchangeKind::Fanout, options, FieldTable::new())
        .unwrap();
    let err = ch.basic_publish("i", "", Message::new("x")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ACCESS_REFUSED - cannot publish to internal exchange 'i' in vhost '/'"
    );
}

/// A channel remembers where its last publish went (exchange, key, queues reached); every
/// topology change made meanwhile, on any connection, must show in its next publish.
#[test]
fn a_publisher_follows_every_topology_change_made_elsewhere() {
    let (broker, _c, ch) = setup();
    let admin_conn = broker.connect("/").unwrap();
    let admin = admin_conn.open_channel().unwrap();
    declare_exchange(&admin, "d", ExchangeKind::Direct);
    for q in ["a", "b", "c"] {
        declare_queue(&admin, q);
    }
    admin.queue_bind("a", "d", "k", FieldTable::new()).unwrap();
    publish(&ch, "d", "k", "1");
    admin.queue_bind("b", "d", "k", FieldTable::new()).unwrap();
    publish(&ch, "d", "k", "2");
    admin
        .queue_unbind("a", "d", "k", FieldTable::new())
        .unwrap();
    publish(&ch, "d", "k", "3");
    assert_eq!(drain(&admin, "a"), ["1", "2"]);
    assert_eq!(drain(&admin, "b"), ["2", "3"]);

    // The queue deleted and declared again: the new one gets the next message.
    admin.queue_delete("b", Default::default()).unwrap();
    publish(&ch, "d", "k", "to nobody");
    declare_queue(&admin, "b");
    admin.queue_bind("b", "d", "k", FieldTable::new()).unwrap();
    publish(&ch, "d", "k", "4");
    assert_eq!(drain(&admin, "b"), ["4"]);

    // An exchange-to-exchange binding added under a memoised route.
    declare_exchange(&admin, "fan", ExchangeKind::Fanout);
    admin.queue_bind("c", "fan", "", FieldTable::new()).unwrap();
    admin
        .exchange_bind("fan", "d", "k", FieldTable::new())
        .unwrap();
    publish(&ch, "d", "k", "5");
    assert_eq!(drain(&admin, "b"), ["5"]);
    assert_eq!(drain(&admin, "c"), ["5"]);

    // The exchange deleted and declared again with another kind.
    admin.exchange_delete("d", Default::default()).unwrap();
    declare_exchange(&admin, "d", ExchangeKind::Fanout);
    admin.queue_bind("a", "d", "", FieldTable::new()).unwrap();
    publish(&ch, "d", "k", "6");
    assert_eq!(drain(&admin, "a"), ["6"]);
    assert!(drain(&admin, "b").is_empty());

    // The default exchange: a queue deleted and declared again.
    publish(&ch, "", "a", "7");
    admin.queue_delete("a", Default::default()).unwrap();
    publish(&ch, "", "a", "lost");
    declare_queue(&admin, "a");
    publish(&ch, "", "a", "8");
    assert_eq!(drain(&admin, "a"), ["8"]);
}
