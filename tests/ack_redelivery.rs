//! Acknowledgements and redelivery: ack/nack/reject (single and multiple), requeue to the
//! original position with `redelivered`, unknown tags, and what a closing channel or
//! connection gives back. Expectations are RabbitMQ 3.10's classic-queue behaviour
//! (docs/rabbitmq-observations.md, sections 1, 3, 9, 11).

mod common;

use common::*;
use warrenmq::{ConsumeOptions, Delivery, GetOptions};

fn five(ch: &warrenmq::Channel) {
    declare_queue(ch, "q");
    for i in 1..=5 {
        publish(ch, "", "q", &format!("m{i}"));
    }
}

fn get(ch: &warrenmq::Channel) -> Delivery {
    ch.basic_get("q", GetOptions::default()).unwrap().unwrap()
}

#[test]
fn smoke() {
    let (_b, _c, ch) = setup();
    five(&ch);
    get(&ch).ack().unwrap();
    assert_eq!(drain(&ch, "q"), ["m2", "m3", "m4", "m5"]);
}

#[test]
fn requeued_messages_go_back_to_their_original_position() {
    let (_b, conn, ch) = setup();
    five(&ch);
    let (m1, m2, m3) = (get(&ch), get(&ch), get(&ch));
    let t = (m1.delivery_tag(), m2.delivery_tag(), m3.delivery_tag());
    assert_eq!(t, (1, 2, 3));
    m2.nack(true).unwrap();
    m1.nack(true).unwrap();
    m3.reject(true).unwrap();
    let other = conn.open_channel().unwrap();
    assert_eq!(
        drain_marked(&other, "q"),
        ["m1(R)", "m2(R)", "m3(R)", "m4", "m5"]
    );
}

#[test]
fn single_requeue_goes_to_the_head() {
    let (_b, conn, ch) = setup();
    five(&ch);
    let (_m1, m2, _m3) = (get(&ch), get(&ch), get(&ch));
    m2.nack(true).unwrap();
    let other = conn.open_channel().unwrap();
    assert_eq!(drain_marked(&other, "q"), ["m2(R)", "m4", "m5"]);
}

#[test]
fn multiple_acks_and_nacks() {
    let (broker, conn, ch) = setup();
    five(&ch);
    let held: Vec<Delivery> = (0..5).map(|_| get(&ch)).collect();
    ch.basic_ack(2, true).unwrap();
    assert_eq!(
        broker
            .queue_stats("/", "q")
            .unwrap()
            .messages_unacknowledged,
        3
    );
    ch.basic_nack(4, true, true).unwrap();
    let stats = broker.queue_stats("/", "q").unwrap();
    assert_eq!(
        (stats.messages_ready, stats.messages_unacknowledged),
        (2, 1)
    );
    ch.basic_nack(5, false, false).unwrap();
    drop(held);
    let other = conn.open_channel().unwrap();
    assert_eq!(drain_marked(&other, "q"), ["m3(R)", "m4(R)"]);
    assert_eq!(broker.queue_stats("/", "q").unwrap().messages(), 0);
}

#[test]
fn ack_zero_with_multiple_acks_everything() {
    let (broker, _c, ch) = setup();
    five(&ch);
    let _held: Vec<Delivery> = (0..3).map(|_| get(&ch)).collect();
    ch.basic_ack(0, true).unwrap();
    assert_eq!(
        broker
            .queue_stats("/", "q")
            .unwrap()
            .messages_unacknowledged,
        0
    );
    // With nothing outstanding it is still fine.
    ch.basic_ack(0, true).unwrap();
    assert!(!ch.is_closed());
}

#[test]
fn unknown_delivery_tags_close_the_channel_only() {
    let (_b, conn, ch) = setup();
    five(&ch);
    let err = ch.basic_ack(99, false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "PRECONDITION_FAILED - unknown delivery tag 99"
    );
    assert!(ch.is_closed());
    let closed = ch.basic_get("q", GetOptions::default()).unwrap_err();
    assert_eq!(code(&closed), 504);
    assert_eq!(closed.cause().map(|c| c.reply_code().0), Some(406));
    assert!(!conn.is_closed());

    let ch = conn.open_channel().unwrap();
    let m = get(&ch);
    let tag = m.delivery_tag();
    m.ack().unwrap();
    assert_eq!(
        code(&ch.basic_ack(tag, false).unwrap_err()),
        406,
        "double ack"
    );

    let ch = conn.open_channel().unwrap();
    let _m = get(&ch);
    // `multiple` needs the named tag itself to be outstanding.
    assert_eq!(code(&ch.basic_ack(5, true).unwrap_err()), 406);

    let ch = conn.open_channel().unwrap();
    let m = ch.basic_get("q", GetOptions::no_ack()).unwrap().unwrap();
    assert_eq!(code(&m.ack().unwrap_err()), 406, "acking a no-ack delivery");
    let ch = conn.open_channel().unwrap();
    assert_eq!(code(&ch.basic_reject(7, true).unwrap_err()), 406);
    let ch = conn.open_channel().unwrap();
    assert_eq!(code(&ch.basic_nack(7, false, true).unwrap_err()), 406);
}

#[test]
fn closing_a_channel_requeues_its_unacked_messages_in_order() {
    let (_b, conn, _ch) = setup();
    let ch1 = conn.open_channel().unwrap();
    let ch2 = conn.open_channel().unwrap();
    five(&ch1);
    let _held1: Vec<Delivery> = (0..3).map(|_| get(&ch1)).collect();
    let _held2 = get(&ch2);
    ch1.close();
    let other = conn.open_channel().unwrap();
    assert_eq!(drain_marked(&other, "q"), ["m1(R)", "m2(R)", "m3(R)", "m5"]);
    ch2.close();
    assert_eq!(drain_marked(&other, "q"), ["m4(R)"]);
}

#[test]
fn acked_messages_are_not_returned_on_close() {
    let (_b, conn, ch) = setup();
    five(&ch);
    let (n1, n2, n3) = (get(&ch), get(&ch), get(&ch));
    n2.ack().unwrap();
    drop((n1, n3));
    ch.close();
    let other = conn.open_channel().unwrap();
    assert_eq!(drain_marked(&other, "q"), ["m1(R)", "m3(R)", "m4", "m5"]);
}

#[test]
fn consumer_deliveries_return_on_channel_close_and_connection_drop() {
    let (broker, _c, _ch) = setup();
    let conn = broker.connect("/").unwrap();
    let ch = conn.open_channel().unwrap();
    five(&ch);
    let consumer = ch.basic_consume("q", ConsumeOptions::default()).unwrap();
    let first = consumer.recv().unwrap();
    let second = consumer.recv().unwrap();
    first.ack().unwrap();
    drop((second, consumer, ch, conn));
    let check = broker.connect("/").unwrap().open_channel().unwrap();
    assert_eq!(drain_marked(&check, "q"), ["m2(R)", "m3", "m4", "m5"]);
}

#[test]
fn closing_the_connection_closes_its_channels() {
    let (broker, conn, ch) = setup();
    five(&ch);
    let held = get(&ch);
    conn.close();
    assert!(ch.is_closed());
    assert_eq!(code(&held.ack().unwrap_err()), 320);
    assert_eq!(code(&conn.open_channel().unwrap_err()), 320);
    assert_eq!(broker.queue_stats("/", "q").unwrap().messages_ready, 5);
}

#[test]
fn basic_recover_requeues_everything_unacked_and_invalidates_old_tags() {
    let (_b, conn, ch) = setup();
    five(&ch);
    let held: Vec<Delivery> = (0..3).map(|_| get(&ch)).collect();
    ch.basic_recover().unwrap();
    let other = conn.open_channel().unwrap();
    assert_eq!(
        drain_marked(&other, "q"),
        ["m1(R)", "m2(R)", "m3(R)", "m4", "m5"]
    );
    assert_eq!(
        code(&ch.basic_ack(held[0].delivery_tag(), false).unwrap_err()),
        406
    );
}

#[test]
fn redelivered_messages_reach_consumers_marked() {
    let (_b, _c, ch) = setup();
    five(&ch);
    let consumer = ch.basic_consume("q", ConsumeOptions::default()).unwrap();
    let first = consumer.recv().unwrap();
    assert!(!first.redelivered());
    first.reject(true).unwrap();
    // The unlimited consumer already holds m2..m5; the requeued m1 comes after them.
    let order: Vec<(String, bool)> = (0..5)
        .map(|_| consumer.recv().unwrap())
        .map(|d| (body(&d), d.redelivered()))
        .collect();
    assert_eq!(order.last().unwrap(), &("m1".to_owned(), true));
}

#[test]
fn with_prefetch_one_a_requeued_message_comes_straight_back() {
    let (_b, _c, ch) = setup();
    five(&ch);
    ch.basic_qos(1).unwrap();
    let consumer = ch.basic_consume("q", ConsumeOptions::default()).unwrap();
    consumer.recv().unwrap().reject(true).unwrap();
    let mut seen = Vec::new();
    for _ in 0..5 {
        let d = consumer.recv_timeout(PATIENCE).unwrap();
        seen.push(if d.redelivered() {
            format!("{}(R)", body(&d))
        } else {
            body(&d)
        });
        d.ack().unwrap();
    }
    assert_eq!(seen, ["m1(R)", "m2", "m3", "m4", "m5"]);
}

#[test]
fn acking_after_the_queue_is_deleted_is_fine() {
    let (_b, _c, ch) = setup();
    five(&ch);
    let held = get(&ch);
    assert_eq!(ch.queue_delete("q", Default::default()).unwrap(), 4);
    held.ack().unwrap();
    assert!(!ch.is_closed());
}
