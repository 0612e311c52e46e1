//! Length limits (`x-max-length`, `x-max-length-bytes`) and `x-overflow` (`drop-head`,
//! `reject-publish`, `reject-publish-dlx`): which messages stay, which are dead-lettered
//! with reason `maxlen`, publisher nacks under confirms, unacked messages not counting, a
//! requeue into a full queue dropping from the head, and the validation texts of every
//! supported queue argument.
//!
//! Expectations were confirmed against RabbitMQ 3.10.8 (docs/rabbitmq-observations.md,
//! sections 1 "Argument validation", 10 "Unroutable" and 14 "x-max-length").

mod common;

use common::*;
use warrenmq::{ExchangeKind, FieldTable, FieldValue, GetOptions, QueueDeclareOptions};

fn max_len(n: i32) -> FieldTable {
    FieldTable::new().with("x-max-length", n)
}

#[test]
fn smoke() {
    let (_b, _c, ch) = setup();
    declare(&ch, "q", max_len(3));
    for i in 1..=5 {
        publish(&ch, "", "q", &format!("m{i}"));
    }
    assert_eq!(drain(&ch, "q"), ["m3", "m4", "m5"]);
}

#[test]
fn dropped_heads_are_dead_lettered_with_reason_maxlen() {
    let (_b, _c, ch) = setup();
    declare_exchange(&ch, "dlx", ExchangeKind::Fanout);
    declare_queue(&ch, "dlq");
    ch.queue_bind("dlq", "dlx", "", FieldTable::new()).unwrap();
    declare(&ch, "q", max_len(2).with("x-dead-letter-exchange", "dlx"));
    for i in 1..=4 {
        publish(&ch, "", "q", &format!("m{i}"));
    }
    assert_eq!(drain(&ch, "q"), ["m3", "m4"]);
    let d = ch.basic_get("dlq", GetOptions::no_ack()).unwrap().unwrap();
    assert_eq!(body(&d), "m1");
    let headers = d.properties().headers.clone().unwrap();
    let death = headers.get("x-death").unwrap().as_array().unwrap()[0]
        .as_table()
        .unwrap()
        .clone();
    assert_eq!(death.get("reason").unwrap().as_str(), Some("maxlen"));
    assert_eq!(
        headers.get("x-first-death-reason").unwrap().as_str(),
        Some("maxlen")
    );
    assert_eq!(drain(&ch, "dlq"), ["m2"]);
}

/// Runs one row of the observed table: `held` taken with `basic_get` (unacked), then
/// `published`, then the holder's channel closes. Returns (ready before close, queue after).
fn requeue_row(held: &[&str], published: &[&str]) -> (u32, Vec<String>) {
    let (broker, conn, ch) = setup();
    declare(&ch, "q", max_len(2));
    let holder = conn.open_channel().unwrap();
    let mut unacked = Vec::new();
    for m in held {
        publish(&ch, "", "q", m);
        unacked.push(holder.basic_get("q", GetOptions::default()).unwrap());
    }
    for m in published {
        publish(&ch, "", "q", m);
    }
    let ready = broker.queue_stats("/", "q").unwrap().messages_ready as u32;
    holder.close();
    drop(unacked);
    let mut after = Vec::new();
    while let Some(d) = ch.basic_get("q", GetOptions::no_ack()).unwrap() {
        after.push(if d.redelivered() {
            format!("{}(R)", body(&d))
        } else {
            body(&d)
        });
    }
    drop(broker);
    (ready, after)
}

#[test]
fn unacked_messages_do_not_count_and_a_requeue_into_a_full_queue_drops_from_the_head() {
    assert_eq!(
        requeue_row(&["u1"], &["u2", "u3"]),
        (2, vec!["u2".into(), "u3".into()])
    );
    assert_eq!(
        requeue_row(&["u1", "u2"], &["u3", "u4"]),
        (2, vec!["u3".into(), "u4".into()])
    );
    assert_eq!(
        requeue_row(&["u1"], &["u2"]),
        (1, vec!["u1(R)".into(), "u2".into()])
    );
    assert_eq!(
        requeue_row(&["u1", "u2"], &["u3"]),
        (1, vec!["u2(R)".into(), "u3".into()])
    );
    assert_eq!(
        requeue_row(&["u1"], &["u2", "u3", "u4"]),
        (2, vec!["u3".into(), "u4".into()])
    );
}

#[test]
fn max_length_bytes_counts_body_bytes() {
    let (_b, _c, ch) = setup();
    declare(&ch, "q", FieldTable::new().with("x-max-length-bytes", 10));
    for body in ["aaaa", "bbbb", "cccc", "dddddddddddd"] {
        publish(&ch, "", "q", body);
    }
    assert!(
        drain(&ch, "q").is_empty(),
        "the 12-byte message is dropped too"
    );
    publish(&ch, "", "q", "0123456789");
    assert_eq!(drain(&ch, "q"), ["0123456789"]);
}

#[test]
fn reject_publish_nacks_the_publisher() {
    let (_b, _c, ch) = setup();
    declare(&ch, "q", max_len(1).with("x-overflow", "reject-publish"));
    ch.confirm_select().unwrap();
    publish(&ch, "", "q", "p1");
    assert!(ch.wait_for_confirms().unwrap());
    publish(&ch, "", "q", "p2");
    publish(&ch, "", "q", "p3");
    assert!(!ch.wait_for_confirms().unwrap(), "p2 and p3 are nacked");
    assert_eq!(drain(&ch, "q"), ["p1"]);
    publish(&ch, "", "q", "p4");
    assert!(ch.wait_for_confirms().unwrap());
    assert_eq!(drain(&ch, "q"), ["p4"]);
}

#[test]
fn reject_publish_does_not_drop_on_requeue() {
    let (_b, _c, ch) = setup();
    declare(&ch, "q", max_len(1).with("x-overflow", "reject-publish"));
    publish(&ch, "", "q", "p1");
    let d = ch.basic_get("q", GetOptions::default()).unwrap().unwrap();
    publish(&ch, "", "q", "p2");
    d.nack(true).unwrap();
    assert_eq!(drain(&ch, "q"), ["p1", "p2"]);
}

#[test]
fn reject_publish_dlx_dead_letters_the_refused_message() {
    let (_b, _c, ch) = setup();
    declare_exchange(&ch, "dlx", ExchangeKind::Fanout);
    declare_queue(&ch, "dlq");
    ch.queue_bind("dlq", "dlx", "", FieldTable::new()).unwrap();
    declare(
        &ch,
        "q",
        max_len(1)
            .with("x-overflow", "reject-publish-dlx")
            .with("x-dead-letter-exchange", "dlx"),
    );
    ch.confirm_select().unwrap();
    publish(&ch, "", "q", "p1");
    publish(&ch, "", "q", "p2");
    assert!(!ch.wait_for_confirms().unwrap());
    assert_eq!(drain(&ch, "q"), ["p1"]);
    let d = ch.basic_get("dlq", GetOptions::no_ack()).unwrap().unwrap();
    assert_eq!(body(&d), "p2");
    let headers = d.properties().headers.clone().unwrap();
    assert_eq!(
        headers.get("x-first-death-reason").unwrap().as_str(),
        Some("maxlen")
    );
}

#[test]
fn a_refused_publish_is_still_routed_so_not_returned() {
    let (broker, _c, ch) = setup();
    declare(&ch, "q", max_len(0).with("x-overflow", "reject-publish"));
    let returns = ch.returns();
    ch.basic_publish_with(
        "",
        "q",
        warrenmq::PublishOptions::mandatory(),
        warrenmq::Message::new("x"),
    )
    .unwrap();
    assert!(returns.try_recv().is_err());
    assert_eq!(broker.exchange_stats("/", "").unwrap().returned, 0);
}

fn declare_error(args: FieldTable) -> String {
    let (_b, _c, ch) = setup();
    let err = ch
        .queue_declare("arg", QueueDeclareOptions::default(), args)
        .unwrap_err();
    assert_eq!(code(&err), 406);
    assert!(ch.is_closed());
    err.to_string()
}

#[test]
fn invalid_arguments_are_refused_with_rabbitmq_texts() {
    let invalid = |arg: &str, reason: &str| {
        format!("PRECONDITION_FAILED - invalid arg '{arg}' for queue 'arg' in vhost '/': {reason}")
    };
    assert_eq!(
        declare_error(max_len(-1)),
        invalid("x-max-length", "{value_negative,-1}")
    );
    assert_eq!(
        declare_error(FieldTable::new().with("x-max-length", "x")),
        invalid("x-max-length", "\"expected integer, got longstr\"")
    );
    assert_eq!(
        declare_error(FieldTable::new().with("x-max-length-bytes", -3)),
        invalid("x-max-length-bytes", "{value_negative,-3}")
    );
    assert_eq!(
        declare_error(FieldTable::new().with("x-overflow", "bogus")),
        invalid("x-overflow", "invalid_overflow")
    );
    assert_eq!(
        declare_error(FieldTable::new().with("x-dead-letter-routing-key", "k")),
        invalid(
            "x-dead-letter-routing-key",
            "routing_key_but_no_dlx_defined"
        )
    );
    assert_eq!(
        declare_error(FieldTable::new().with("x-queue-type", "bogus")),
        invalid("x-queue-type", "\"unsupported queue type 'bogus'\"")
    );
    let unacceptable = |arg: &str, v: FieldValue| {
        declare_error(
            FieldTable::new()
                .with("x-dead-letter-exchange", "dlx")
                .with(arg, v),
        )
    };
    assert_eq!(
        unacceptable("x-single-active-consumer", "yes".into()),
        invalid("x-single-active-consumer", "{unacceptable_type,longstr}")
    );
    assert_eq!(
        unacceptable("x-overflow", FieldValue::I32(1)),
        invalid("x-overflow", "{unacceptable_type,signedint}")
    );
    assert_eq!(
        unacceptable("x-queue-type", FieldValue::I32(1)),
        invalid("x-queue-type", "{unacceptable_type,signedint}")
    );
    assert_eq!(
        unacceptable("x-dead-letter-routing-key", FieldValue::I32(1)),
        invalid("x-dead-letter-routing-key", "{unacceptable_type,signedint}")
    );
    assert_eq!(
        declare_error(FieldTable::new().with("x-expires", "1")),
        invalid("x-expires", "\"expected integer, got longstr\"")
    );
    assert_eq!(
        declare_error(FieldTable::new().with("x-dead-letter-exchange", FieldValue::I32(1))),
        "PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' in \
         queue 'arg' in vhost '/'"
    );
}

#[test]
fn valid_arguments_are_accepted_and_unknown_ones_ignored() {
    let (_b, _c, ch) = setup();
    let args = FieldTable::new()
        .with("x-max-length", 0)
        .with("x-max-length-bytes", 1i64 << 40)
        .with("x-overflow", "drop-head")
        .with("x-queue-type", "classic")
        .with("x-foo", "anything");
    declare(&ch, "ok", args.clone());
    declare(&ch, "ok", args);
}
