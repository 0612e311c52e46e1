//! Who receives: single active consumer queues (`x-single-active-consumer`: every message
//! to the first consumer, the next one taking over when it goes, declare-ok counting all
//! consumers) and consumer priorities (`x-priority`: higher priorities receive while they
//! have prefetch credit, round-robin among equals).
//!
//! Expectations were confirmed against RabbitMQ 3.10.8 (docs/rabbitmq-observations.md,
//! sections 7 "Round-robin and prefetch" and 14 "Single active consumer"; RabbitMQ
//! advertises the `consumer_priorities` capability).

mod common;

use common::*;
use warrenmq::{Channel, ConsumeOptions, Consumer, FieldTable, QueueDeclareOptions};

fn sac_queue(ch: &Channel) {
    ch.queue_declare(
        "q",
        QueueDeclareOptions::default(),
        FieldTable::new().with("x-single-active-consumer", true),
    )
    .unwrap();
}

fn bodies(consumer: &Consumer) -> Vec<String> {
    consumer
        .try_iter()
        .map(|d| {
            let b = body(&d);
            d.ack().unwrap();
            b
        })
        .collect()
}

#[test]
fn smoke() {
    let (_b, _c, ch) = setup();
    sac_queue(&ch);
    let s1 = ch.basic_consume("q", ConsumeOptions::default()).unwrap();
    let s2 = ch.basic_consume("q", ConsumeOptions::default()).unwrap();
    for i in 1..=4 {
        publish(&ch, "", "q", &format!("m{i}"));
    }
    assert_eq!(bodies(&s1), ["m1", "m2", "m3", "m4"]);
    assert!(bodies(&s2).is_empty());
}

#[test]
fn single_active_consumer_hands_over_when_the_active_one_goes() {
    let (_b, conn, ch) = setup();
    sac_queue(&ch);
    let ch1 = conn.open_channel().unwrap();
    ch1.basic_qos(1).unwrap();
    let s1 = ch1.basic_consume("q", ConsumeOptions::default()).unwrap();
    let s2 = ch.basic_consume("q", ConsumeOptions::default()).unwrap();
    let ok = ch
        .queue_declare("q", QueueDeclareOptions::passive(), FieldTable::new())
        .unwrap();
    assert_eq!(ok.consumer_count, 2, "declare-ok counts every consumer");
    publish(&ch, "", "q", "a");
    publish(&ch, "", "q", "b");
    let held = s1.recv_timeout(PATIENCE).unwrap();
    assert_eq!(body(&held), "a");
    assert!(
        s2.try_recv().is_err(),
        "b waits for the active consumer's credit"
    );
    s1.cancel().unwrap();
    // The active consumer went: its unacked message stays on its channel; b goes to s2.
    assert_eq!(bodies(&s2), ["b"]);
    ch1.close();
    drop(held);
    assert_eq!(body(&s2.try_recv().unwrap()), "a");
}

#[test]
fn invalid_single_active_consumer_type_is_refused() {
    let (_b, _c, ch) = setup();
    let err = ch
        .queue_declare(
            "q",
            QueueDeclareOptions::default(),
            FieldTable::new().with("x-single-active-consumer", "yes"),
        )
        .unwrap_err();
    assert_eq!(code(&err), 406);
}

#[test]
fn higher_priority_consumers_receive_while_they_have_credit() {
    let (_b, conn, ch) = setup();
    declare_queue(&ch, "q");
    let high_ch = conn.open_channel().unwrap();
    high_ch.basic_qos(2).unwrap();
    let low = ch
        .basic_consume("q", ConsumeOptions::default().priority(1))
        .unwrap();
    let high = high_ch
        .basic_consume("q", ConsumeOptions::default().priority(10))
        .unwrap();
    for i in 1..=5 {
        publish(&ch, "", "q", &format!("m{i}"));
    }
    let high_got: Vec<_> = high.try_iter().collect();
    assert_eq!(
        high_got.iter().map(body).collect::<Vec<_>>(),
        ["m1", "m2"],
        "until its prefetch of 2 is used"
    );
    assert_eq!(bodies(&low), ["m3", "m4", "m5"]);
    for d in high_got {
        d.ack().unwrap();
    }
    publish(&ch, "", "q", "m6");
    assert_eq!(bodies(&high), ["m6"], "credit back: high first again");
}

#[test]
fn a_non_integer_priority_is_refused() {
    let (_b, _c, ch) = setup();
    declare_queue(&ch, "cq");
    let mut options = ConsumeOptions::default();
    options.arguments.insert("x-priority", "high");
    let err = ch.basic_consume("cq", options).unwrap_err();
    assert_eq!(code(&err), 406);
    assert_eq!(
        err.to_string(),
        "PRECONDITION_FAILED - invalid arg 'x-priority' for queue 'cq' in vhost '/': \
         \"expected integer, got longstr\""
    );
}

#[test]
fn equal_priorities_share_round_robin() {
    let (_b, _c, ch) = setup();
    declare_queue(&ch, "q");
    let mut args = FieldTable::new();
    args.insert("x-priority", 5);
    let a = ch
        .basic_consume(
            "q",
            ConsumeOptions {
                arguments: args.clone(),
                ..Default::default()
            },
        )
        .unwrap();
    let b = ch
        .basic_consume(
            "q",
            ConsumeOptions {
                arguments: args,
                ..Default::default()
            },
        )
        .unwrap();
    let low = ch.basic_consume("q", ConsumeOptions::default()).unwrap();
    for i in 1..=4 {
        publish(&ch, "", "q", &format!("m{i}"));
    }
    assert_eq!(bodies(&a), ["m1", "m3"]);
    assert_eq!(bodies(&b), ["m2", "m4"]);
    assert!(bodies(&low).is_empty());
}
