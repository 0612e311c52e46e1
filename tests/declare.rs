//! Declaring, deleting, binding and purging: flags, idempotence, equivalence and the
//! answers (names and counts) RabbitMQ gives.
//!
//! Checked against RabbitMQ 3.x on 127.0.0.1:5672 (see docs/semantics.md).

mod common;

use common::*;
use warrenmq::{
    Broker, ConsumeOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, ExchangeKind,
    FieldTable, QueueDeclareOptions, QueueDeleteOptions,
};

#[test]
fn smoke() {
    let (_b, _c, ch) = setup();
    assert_eq!(declare_queue(&ch, "q"), "q");
}

#[test]
fn default_and_amq_exchanges_exist_in_every_vhost() {
    let broker = Broker::in_memory();
    broker.add_vhost("other").unwrap();
    assert_eq!(broker.vhosts(), ["/", "other"]);
    for vhost in ["/", "other"] {
        let names: Vec<String> = broker
            .list_exchanges(vhost)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        for expected in ["", "amq.direct", "amq.fanout", "amq.headers", "amq.topic"] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} missing in {vhost}"
            );
        }
        let ch = broker.connect(vhost).unwrap().open_channel().unwrap();
        ch.exchange_declare(
            "amq.topic",
            ExchangeKind::Topic,
            ExchangeDeclareOptions::passive(),
            FieldTable::new(),
        )
        .unwrap();
    }
    let err = broker.connect("missing").unwrap_err();
    assert_eq!(code(&err), 530);
}

#[test]
fn vhosts_are_separate_namespaces() {
    let broker = Broker::in_memory();
    broker.add_vhost("v2").unwrap();
    let a = broker.connect("/").unwrap().open_channel().unwrap();
    let b = broker.connect("v2").unwrap().open_channel().unwrap();
    declare_queue(&a, "shared-name");
    let err = b.queue_declare(
        "shared-name",
        QueueDeclareOptions::passive(),
        FieldTable::new(),
    );
    assert_eq!(code(&err.unwrap_err()), 404);
    publish(&a, "", "shared-name", "x");
    assert_eq!(
        broker
            .queue_stats("/", "shared-name")
            .unwrap()
            .messages_ready,
        1
    );
    assert_eq!(
        code(&broker.queue_stats("v2", "shared-name").unwrap_err()),
        404
    );
}

#[test]
fn queue_declare_returns_counts_and_is_idempotent() {
    let (_b, conn, ch) = setup();
    declare_queue(&ch, "q");
    publish(&ch, "", "q", "1");
    publish(&ch, "", "q", "2");
    let ch2 = conn.open_channel().unwrap();
    let _consumer = ch2.basic_consume("q", ConsumeOptions::default()).unwrap();
    // The consumer holds both messages (no prefetch limit), so none is ready.
    let ok = ch
        .queue_declare("q", QueueDeclareOptions::default(), FieldTable::new())
        .unwrap();
    assert_eq!(
        (ok.queue.as_str(), ok.message_count, ok.consumer_count),
        ("q", 0, 1)
    );
    let ok = ch
        .queue_declare("q", QueueDeclareOptions::passive(), FieldTable::new())
        .unwrap();
    assert_eq!(ok.consumer_count, 1);
    declare_queue(&ch, "r");
    publish(&ch, "", "r", "1");
    let ok = ch
        .queue_declare("r", QueueDeclareOptions::passive(), FieldTable::new())
        .unwrap();
    assert_eq!((ok.message_count, ok.consumer_count), (1, 0));
}

#[test]
fn server_named_queues() {
    let (_b, _c, ch) = setup();
    let a = declare_queue(&ch, "");
    let b = declare_queue(&ch, "");
    assert!(a.starts_with("amq.gen-") && a.len() == 30, "{a}");
    assert_ne!(a, b);
    publish(&ch, "", &a, "hi");
    assert_eq!(drain(&ch, &a), ["hi"]);
}

#[test]
fn redeclare_with_other_properties_is_precondition_failed() {
    let (_b, conn, ch) = setup();
    ch.queue_declare("q", QueueDeclareOptions::durable(), FieldTable::new())
        .unwrap();
    let err = ch
        .queue_declare("q", QueueDeclareOptions::default(), FieldTable::new())
        .unwrap_err();
    assert_eq!(code(&err), 406);
    assert!(
        err.to_string().contains("inequivalent arg 'durable'"),
        "{err}"
    );

    let ch = conn.open_channel().unwrap();
    let args = FieldTable::new().with("x-max-length", 10);
    ch.queue_declare("with-args", QueueDeclareOptions::default(), args)
        .unwrap();
    let err = ch.queue_declare(
        "with-args",
        QueueDeclareOptions::default(),
        FieldTable::new(),
    );
    assert_eq!(code(&err.unwrap_err()), 406);

    let ch = conn.open_channel().unwrap();
    declare_exchange(&ch, "x", ExchangeKind::Direct);
    let err = ch
        .exchange_declare(
            "x",
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::new(),
        )
        .unwrap_err();
    assert_eq!(code(&err), 406);
    assert!(err.to_string().contains("inequivalent arg 'type'"), "{err}");

    let ch = conn.open_channel().unwrap();
    let err = ch
        .exchange_declare(
            "x",
            ExchangeKind::Direct,
            ExchangeDeclareOptions::durable(),
            FieldTable::new(),
        )
        .unwrap_err();
    assert_eq!(code(&err), 406);
    // The same declaration again is fine.
    let ch = conn.open_channel().unwrap();
    declare_exchange(&ch, "x", ExchangeKind::Direct);
}

#[test]
fn passive_declare_of_missing_entities_is_not_found() {
    let (_b, conn, ch) = setup();
    let err = ch
        .queue_declare("nope", QueueDeclareOptions::passive(), FieldTable::new())
        .unwrap_err();
    assert_eq!(code(&err), 404);
    assert_eq!(err.to_string(), "NOT_FOUND - no queue 'nope' in vhost '/'");
    let ch = conn.open_channel().unwrap();
    let err = ch
        .exchange_declare(
            "nope",
            ExchangeKind::Direct,
            ExchangeDeclareOptions::passive(),
            FieldTable::new(),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "NOT_FOUND - no exchange 'nope' in vhost '/'"
    );
}

#[test]
fn reserved_names_and_the_default_exchange() {
    let (_b, conn, ch) = setup();
    let err = ch
        .exchange_declare(
            "amq.mine",
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::new(),
        )
        .unwrap_err();
    assert_eq!(code(&err), 403);
    let ch = conn.open_channel().unwrap();
    let err = ch
        .queue_declare(
            "amq.mine",
            QueueDeclareOptions::default(),
            FieldTable::new(),
        )
        .unwrap_err();
    assert_eq!(code(&err), 403);
    let ch = conn.open_channel().unwrap();
    declare_queue(&ch, "q");
    let err = ch.queue_bind("q", "", "q", FieldTable::new()).unwrap_err();
    assert_eq!(code(&err), 403);
    let ch = conn.open_channel().unwrap();
    assert_eq!(
        code(
            &ch.exchange_delete("", ExchangeDeleteOptions::default())
                .unwrap_err()
        ),
        403
    );
    let ch = conn.open_channel().unwrap();
    let err = ch
        .exchange_delete("amq.direct", ExchangeDeleteOptions::default())
        .unwrap_err();
    assert_eq!(code(&err), 403);
}

#[test]
fn every_exchange_kind_and_flag_can_be_declared() {
    let (broker, _c, ch) = setup();
    for (name, kind) in [
        ("d", ExchangeKind::Direct),
        ("f", ExchangeKind::Fanout),
        ("t", ExchangeKind::Topic),
        ("h", ExchangeKind::Headers),
    ] {
        let options = ExchangeDeclareOptions {
            durable: true,
            auto_delete: true,
            internal: true,
            passive: false,
        };
        let args = FieldTable::new().with("note", name);
        ch.exchange_declare(name, kind.clone(), options, args.clone())
            .unwrap();
        ch.exchange_declare(name, kind.clone(), options, args)
            .unwrap();
        assert_eq!(broker.exchange_stats("/", name).unwrap().kind, kind);
    }
}

#[test]
fn unknown_exchange_kind_is_refused() {
    let (_b, _c, ch) = setup();
    let err = ch
        .exchange_declare(
            "c",
            ExchangeKind::Custom("x-nope".into()),
            ExchangeDeclareOptions::default(),
            FieldTable::new(),
        )
        .unwrap_err();
    assert_eq!(code(&err), 503);
}

#[test]
fn exchange_delete_if_unused() {
    let (broker, conn, ch) = setup();
    declare_exchange(&ch, "x", ExchangeKind::Fanout);
    declare_queue(&ch, "q");
    ch.queue_bind("q", "x", "", FieldTable::new()).unwrap();
    let opts = ExchangeDeleteOptions { if_unused: true };
    let err = ch.exchange_delete("x", opts).unwrap_err();
    assert_eq!(code(&err), 406);
    let ch = conn.open_channel().unwrap();
    ch.queue_unbind("q", "x", "", FieldTable::new()).unwrap();
    ch.exchange_delete("x", opts).unwrap();
    assert_eq!(code(&broker.exchange_stats("/", "x").unwrap_err()), 404);
    // Deleting what does not exist succeeds, as in RabbitMQ.
    ch.exchange_delete("x", ExchangeDeleteOptions::default())
        .unwrap();
    // A deleted exchange no longer routes to the queue.
    declare_exchange(&ch, "x", ExchangeKind::Fanout);
    publish(&ch, "x", "", "m");
    assert!(drain(&ch, "q").is_empty());
}

#[test]
fn queue_delete_conditions_and_counts() {
    let (broker, conn, ch) = setup();
    declare_queue(&ch, "q");
    for i in 0..3 {
        publish(&ch, "", "q", &i.to_string());
    }
    let err = ch.queue_delete(
        "q",
        QueueDeleteOptions {
            if_empty: true,
            ..Default::default()
        },
    );
    assert_eq!(code(&err.unwrap_err()), 406);
    let ch = conn.open_channel().unwrap();
    let consumer = ch.basic_consume("q", ConsumeOptions::default()).unwrap();
    let ch2 = conn.open_channel().unwrap();
    let err = ch2.queue_delete(
        "q",
        QueueDeleteOptions {
            if_unused: true,
            ..Default::default()
        },
    );
    assert_eq!(code(&err.unwrap_err()), 406);
    drop(consumer);
    let ch2 = conn.open_channel().unwrap();
    assert_eq!(
        ch2.queue_delete("q", QueueDeleteOptions::default())
            .unwrap(),
        3
    );
    assert_eq!(code(&broker.queue_stats("/", "q").unwrap_err()), 404);
    assert_eq!(
        ch2.queue_delete("q", QueueDeleteOptions::default())
            .unwrap(),
        0
    );
}

#[test]
fn deleting_a_queue_cancels_its_consumers_and_removes_its_bindings() {
    let (broker, _c, ch) = setup();
    declare_exchange(&ch, "x", ExchangeKind::Fanout);
    declare_queue(&ch, "q");
    ch.queue_bind("q", "x", "", FieldTable::new()).unwrap();
    let consumer = ch.basic_consume("q", ConsumeOptions::default()).unwrap();
    ch.queue_delete("q", QueueDeleteOptions::default()).unwrap();
    assert!(consumer
        .recv_timeout(PATIENCE)
        .unwrap_err()
        .is_disconnected());
    assert_eq!(broker.exchange_stats("/", "x").unwrap().bindings, 0);
    declare_queue(&ch, "q");
    publish(&ch, "x", "", "after");
    assert!(drain(&ch, "q").is_empty());
}

#[test]
fn purge_removes_ready_messages_only() {
    let (broker, _c, ch) = setup();
    declare_queue(&ch, "q");
    for i in 0..5 {
        publish(&ch, "", "q", &i.to_string());
    }
    let held = ch
        .basic_get("q", warrenmq::GetOptions::default())
        .unwrap()
        .unwrap();
    assert_eq!(ch.queue_purge("q").unwrap(), 4);
    let stats = broker.queue_stats("/", "q").unwrap();
    assert_eq!(
        (stats.messages_ready, stats.messages_unacknowledged),
        (0, 1)
    );
    held.ack().unwrap();
    assert_eq!(broker.queue_stats("/", "q").unwrap().messages(), 0);
}

#[test]
fn bind_and_unbind_with_arguments() {
    let (_b, _c, ch) = setup();
    declare_exchange(&ch, "h", ExchangeKind::Headers);
    declare_queue(&ch, "q");
    let args = FieldTable::new().with("x-match", "all").with("k", "v");
    ch.queue_bind("q", "h", "", args.clone()).unwrap();
    ch.queue_bind("q", "h", "", args.clone()).unwrap();
    let preview = ch
        .route_preview("h", "", &FieldTable::new().with("k", "v"))
        .unwrap();
    assert_eq!(preview.queues, ["q"]);
    // Unbinding with other arguments leaves the binding; with the same ones removes it.
    ch.queue_unbind("q", "h", "", FieldTable::new()).unwrap();
    assert_eq!(
        ch.route_preview("h", "", &FieldTable::new().with("k", "v"))
            .unwrap()
            .queues,
        ["q"]
    );
    ch.queue_unbind("q", "h", "", args).unwrap();
    assert!(ch
        .route_preview("h", "", &FieldTable::new().with("k", "v"))
        .unwrap()
        .queues
        .is_empty());
}

#[test]
fn bind_to_missing_entities_is_not_found() {
    let (_b, conn, ch) = setup();
    declare_queue(&ch, "q");
    let err = ch
        .queue_bind("q", "missing", "k", FieldTable::new())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "NOT_FOUND - no exchange 'missing' in vhost '/'"
    );
    let ch = conn.open_channel().unwrap();
    let err = ch
        .queue_bind("missing", "amq.direct", "k", FieldTable::new())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "NOT_FOUND - no queue 'missing' in vhost '/'"
    );
}

#[test]
fn names_longer_than_255_bytes_are_refused() {
    let (_b, conn, ch) = setup();
    let long = "q".repeat(256);
    let err = ch
        .queue_declare(&long, QueueDeclareOptions::default(), FieldTable::new())
        .unwrap_err();
    assert_eq!(code(&err), 406);
    let ch = conn.open_channel().unwrap();
    let err = ch
        .exchange_declare(
            &long,
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::new(),
        )
        .unwrap_err();
    assert_eq!(code(&err), 406);
    let ch = conn.open_channel().unwrap();
    declare_queue(&ch, &"q".repeat(255));
    let err = ch
        .basic_publish("amq.direct", &long, warrenmq::Message::new("x"))
        .unwrap_err();
    assert_eq!(code(&err), 406);
}
