//! Reply texts: every error a client can provoke through the public API has RabbitMQ's
//! wording, names no Rust API, and fits the 255 bytes of an AMQP short string. A text made
//! long by names near 255 bytes is cut after a whole word and ends in `...` (RabbitMQ cuts at
//! byte 252 inside the name, docs/rabbitmq-observations.md §18).

mod common;

use common::*;
use warrenmq::{
    Broker, Channel, ConsumeOptions, Error, ExchangeDeclareOptions, ExchangeDeleteOptions,
    ExchangeKind, FieldTable, Message, PublishOptions, QueueDeclareOptions, QueueDeleteOptions,
};

#[test]
fn smoke() {
    let e = Error::QueueNotFound {
        vhost: "/".into(),
        queue: "q".into(),
    };
    assert_eq!(e.reply_text(), "NOT_FOUND - no queue 'q' in vhost '/'");
}

/// Checks one error: a short string, cut only after a whole word, no Rust API named.
#[track_caller]
fn check(e: &Error) {
    let full = e.to_string();
    let text = e.reply_text();
    assert!(text.len() <= 255, "{} bytes: {text}", text.len());
    for rust in ["::", "()", "Builder", "set_", "allow_"] {
        assert!(!full.contains(rust), "names a Rust API ({rust}): {full}");
    }
    if full.len() <= 255 {
        assert_eq!(text, full);
        return;
    }
    let kept = text.strip_suffix("...").expect("a cut text ends in ...");
    assert!(full.starts_with(kept), "{text} is not a prefix of {full}");
    assert!(!kept.ends_with(' '), "{text}");
    assert!(
        full[kept.len()..].starts_with(' '),
        "cut inside a word: {text}"
    );
}

/// Runs `f` on a fresh channel and checks the error it must return.
#[track_caller]
fn fails(conn: &warrenmq::Connection, f: impl FnOnce(&Channel) -> warrenmq::Result<()>) {
    let ch = conn.open_channel().unwrap();
    let e = f(&ch).expect_err("the call fails");
    check(&e);
    // A closed channel's later calls carry the first error.
    let closed = ch.basic_qos(1).unwrap_err();
    check(&closed);
}

fn every_error(name_len: usize) {
    let n = |tag: &str| format!("{tag}{}", "n".repeat(name_len - tag.len()));
    let broker = Broker::builder()
        .strict_binding_durability(true)
        .build()
        .unwrap();
    let vhost = n("v");
    broker.add_vhost(&vhost).unwrap();
    check(&broker.connect(&n("missing")).unwrap_err());
    check(&broker.queue_stats(&vhost, &n("gone")).unwrap_err());
    let conn = broker.connect(&vhost).unwrap();
    let other = broker.connect(&vhost).unwrap();
    let ch = conn.open_channel().unwrap();
    let (q, x, d) = (n("q"), n("x"), n("d"));
    let ttl = FieldTable::new().with("x-message-ttl", 5);
    ch.queue_declare(&q, QueueDeclareOptions::default(), ttl.clone())
        .unwrap();
    ch.exchange_declare(
        &x,
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        FieldTable::new(),
    )
    .unwrap();
    ch.exchange_declare(
        &d,
        ExchangeKind::Direct,
        ExchangeDeclareOptions::durable(),
        FieldTable::new(),
    )
    .unwrap();
    let internal = ExchangeDeclareOptions {
        internal: true,
        ..Default::default()
    };
    let xi = n("i");
    ch.exchange_declare(&xi, ExchangeKind::Fanout, internal, FieldTable::new())
        .unwrap();
    ch.queue_bind(&q, &x, "k", FieldTable::new()).unwrap();
    publish(&ch, "", &q, "ready");
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    let qx = n("e");
    ch.queue_declare(&qx, exclusive, FieldTable::new()).unwrap();
    let plain = QueueDeclareOptions::default;
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };

    fails(&conn, |c| {
        c.queue_declare(&n("nq"), passive, FieldTable::new())
            .map(drop)
    });
    fails(&conn, |c| {
        let passive = ExchangeDeclareOptions {
            passive: true,
            ..Default::default()
        };
        c.exchange_declare(&n("nx"), ExchangeKind::Direct, passive, FieldTable::new())
    });
    fails(&conn, |c| {
        c.queue_declare(&q, plain(), FieldTable::new()).map(drop)
    });
    fails(&conn, |c| {
        c.queue_declare(&q, QueueDeclareOptions::durable(), ttl.clone())
            .map(drop)
    });
    fails(&conn, |c| {
        let args = FieldTable::new().with("alternate-exchange", "ae");
        c.exchange_declare(
            &x,
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            args,
        )
    });
    fails(&conn, |c| {
        c.exchange_declare(
            &x,
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::new(),
        )
    });
    fails(&other, |c| {
        c.queue_declare(&qx, plain(), FieldTable::new()).map(drop)
    });
    fails(&other, |c| {
        c.basic_consume(&qx, ConsumeOptions::default()).map(drop)
    });
    for (arg, value) in [
        ("x-message-ttl", warrenmq::FieldValue::from(-1)),
        ("x-expires", 0.into()),
        ("x-max-priority", 300.into()),
        ("x-overflow", "bogus".into()),
        ("x-queue-type", "bogus".into()),
        ("x-queue-mode", "bogus".into()),
        ("x-dead-letter-exchange", 1.into()),
        ("x-single-active-consumer", "yes".into()),
    ] {
        let args = FieldTable::new().with(arg, value);
        fails(&conn, |c| c.queue_declare(&n("a"), plain(), args).map(drop));
    }
    fails(&conn, |c| {
        let args = FieldTable::new().with("x-dead-letter-routing-key", "k");
        c.queue_declare(&n("a"), plain(), args).map(drop)
    });
    fails(&conn, |c| {
        c.queue_declare(&format!("amq.{}", n("r")), plain(), FieldTable::new())
            .map(drop)
    });
    fails(&conn, |c| {
        c.exchange_declare(
            &format!("amq.{}", n("r")),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::new(),
        )
    });
    fails(&conn, |c| {
        c.exchange_declare(
            &n("k"),
            ExchangeKind::Custom(n("kind")),
            ExchangeDeclareOptions::default(),
            FieldTable::new(),
        )
    });
    let conn = broker.connect(&vhost).unwrap();
    fails(&conn, |c| c.queue_bind(&q, &d, "k", FieldTable::new()));
    fails(&conn, |c| c.exchange_bind(&x, &d, "k", FieldTable::new()));
    fails(&conn, |c| c.queue_bind(&q, "", "k", FieldTable::new()));
    fails(&conn, |c| {
        c.exchange_delete("amq.direct", ExchangeDeleteOptions::default())
    });
    fails(&conn, |c| {
        let if_unused = ExchangeDeleteOptions { if_unused: true };
        c.exchange_delete(&x, if_unused)
    });
    fails(&conn, |c| {
        let if_empty = QueueDeleteOptions {
            if_empty: true,
            ..Default::default()
        };
        c.queue_delete(&q, if_empty).map(drop)
    });
    fails(&conn, |c| c.basic_publish(&xi, "k", Message::new("x")));
    fails(&conn, |c| c.basic_publish(&n("nx"), "k", Message::new("x")));
    fails(&conn, |c| {
        let mut m = Message::new("x");
        m.properties_mut().expiration = Some(n("exp"));
        c.basic_publish("", &q, m)
    });
    fails(&conn, |c| {
        let m = Message::new("x");
        c.basic_publish_with("", &"k".repeat(300), PublishOptions::default(), m)
    });
    fails(&conn, |c| c.basic_ack(99, false));
    fails(&conn, |c| {
        let args = FieldTable::new().with("x-priority", "high");
        let options = ConsumeOptions {
            arguments: args,
            ..Default::default()
        };
        c.basic_consume(&q, options).map(drop)
    });
    fails(&conn, |c| {
        let tag = ConsumeOptions {
            consumer_tag: Some(n("t")),
            ..Default::default()
        };
        let _first = c.basic_consume(&q, tag.clone())?;
        c.basic_consume(&q, tag).map(drop)
    });
}

#[test]
fn texts_with_ordinary_names_are_never_cut() {
    every_error(12);
}

#[test]
fn texts_with_names_of_255_bytes_are_cut_after_a_word() {
    every_error(255);
}

#[test]
fn a_cut_text_keeps_every_whole_word_that_fits() {
    let e = Error::QueueNotFound {
        vhost: "/".into(),
        queue: format!("{} tail", "w ".repeat(150)),
    };
    let text = e.reply_text();
    assert!(text.len() <= 255 && text.len() >= 250, "{}", text.len());
    check(&e);
}
