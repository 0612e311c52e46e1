//! Store write failures answered as RabbitMQ answers a message it failed to handle: the
//! publishes whose write failed are nacked (in process `wait_for_confirms` and the
//! per-publish ticket say `false`; on the wire `basic.nack` for exactly those delivery tags),
//! they are withdrawn from the queues that still hold them ready, and the channel and the
//! connection go on; once the fault clears, publishes are confirmed again and only what was
//! confirmed is there after a restart. The fault is `Broker::fail_store_writes`.
#![cfg(feature = "persistence")]

mod common;

use std::path::Path;

use common::{body, drain, PATIENCE};
use warrenmq::{Broker, ConsumeOptions, FieldTable, Message, PublishOptions, QueueDeclareOptions};

fn open(path: &Path) -> Broker {
    Broker::open(path).expect("opens")
}

/// A confirming channel with the durable queue `jobs`.
fn confirming(broker: &Broker) -> (warrenmq::Connection, warrenmq::Channel) {
    let conn = broker.connect("/").unwrap();
    let ch = conn.open_channel().unwrap();
    ch.queue_declare("jobs", QueueDeclareOptions::durable(), FieldTable::new())
        .unwrap();
    ch.confirm_select().unwrap();
    (conn, ch)
}

fn persistent(text: &str) -> Message {
    Message::new(text.to_owned()).persistent()
}

#[test]
fn a_failed_write_is_a_nack_the_message_is_withdrawn_and_the_channel_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warren.redb");
    let broker = open(&path);
    let (conn, ch) = confirming(&broker);
    ch.basic_publish("", "jobs", persistent("before")).unwrap();
    assert!(ch.wait_for_confirms().unwrap());

    broker.fail_store_writes(true).unwrap();
    ch.basic_publish("", "jobs", persistent("lost 1")).unwrap();
    ch.basic_publish("", "jobs", persistent("lost 2")).unwrap();
    assert!(!ch.wait_for_confirms().unwrap(), "nacked, not an error");
    let ticket = ch
        .basic_publish_with_confirm("", "jobs", PublishOptions::default(), persistent("lost 3"))
        .unwrap();
    assert!(!ticket.wait().unwrap(), "the ticket is a nack too");
    assert!(!ch.wait_for_confirms().unwrap());
    // A transient message writes nothing: confirmed while the disk fails.
    ch.basic_publish("", "jobs", Message::new("transient"))
        .unwrap();
    assert!(ch.wait_for_confirms().unwrap());
    assert!(!ch.is_closed() && !conn.is_closed());
    // Nothing nacked waits in the queue to be delivered as if accepted.
    let stats = broker.queue_stats("/", "jobs").unwrap();
    assert_eq!(stats.messages_ready, 2, "{stats:?}");

    broker.fail_store_writes(false).unwrap();
    ch.basic_publish("", "jobs", persistent("after")).unwrap();
    assert!(
        ch.wait_for_confirms().unwrap(),
        "confirmed once the fault clears"
    );
    let ticket = ch
        .basic_publish_with_confirm("", "jobs", PublishOptions::default(), persistent("after 2"))
        .unwrap();
    assert!(ticket.wait().unwrap());
    assert_eq!(
        drain(&ch, "jobs"),
        ["before", "transient", "after", "after 2"]
    );
    ch.basic_publish("", "jobs", persistent("kept")).unwrap();
    assert!(ch.wait_for_confirms().unwrap());
    drop((ch, conn));
    broker.close().unwrap();
    drop(broker);

    // After a restart: what was confirmed and not consumed, nothing nacked.
    let broker = open(&path);
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    assert_eq!(drain(&ch, "jobs"), ["kept"]);
}

#[test]
fn a_message_delivered_before_its_write_failed_stays_with_its_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warren.redb");
    let broker = open(&path);
    let (_conn, ch) = confirming(&broker);
    let consumer = ch.basic_consume("jobs", ConsumeOptions::default()).unwrap();
    broker.fail_store_writes(true).unwrap();
    ch.basic_publish("", "jobs", persistent("in flight"))
        .unwrap();
    assert!(!ch.wait_for_confirms().unwrap(), "nacked");
    // It reached the consumer before the commit failed: the consumer has it, and acks it.
    let d = consumer.recv_timeout(PATIENCE).unwrap();
    assert_eq!(body(&d), "in flight");
    d.ack().unwrap();
    broker.fail_store_writes(false).unwrap();
    ch.basic_publish("", "jobs", persistent("next")).unwrap();
    assert!(ch.wait_for_confirms().unwrap());
    assert_eq!(body(&consumer.recv_timeout(PATIENCE).unwrap()), "next");
}

#[test]
fn an_in_memory_broker_has_no_store_to_fail() {
    let err = Broker::in_memory().fail_store_writes(true).unwrap_err();
    assert_eq!(err.reply_code().0, 406);
}

#[cfg(feature = "wire")]
mod wire {
    use std::collections::BTreeMap;

    use amq_protocol::frame::{AMQPContentHeader, AMQPFrame};
    use amq_protocol::protocol::{basic, confirm, queue, AMQPClass, BasicProperties};
    use amq_protocol::types::FieldTable as WireTable;

    use super::common::raw_client::{encode_frame, RawClient};
    use super::*;

    /// The frames of a publish of `body` to `jobs` on channel 1, persistent or not.
    fn publish(body: &str, persistent: bool) -> Vec<u8> {
        let method = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "".into(),
            routing_key: "jobs".into(),
            ..basic::Publish::default()
        }));
        let properties = if persistent {
            BasicProperties::default().with_delivery_mode(2)
        } else {
            BasicProperties::default()
        };
        let mut out = encode_frame(&AMQPFrame::Method(1, method));
        out.extend(encode_frame(&AMQPFrame::Header(
            1,
            AMQPContentHeader {
                class_id: 60,
                body_size: body.len() as u64,
                properties,
            },
        )));
        out.extend(encode_frame(&AMQPFrame::Body(1, body.as_bytes().to_vec())));
        out
    }

    /// Reads confirms until every tag up to `last` is settled; returns each tag's outcome
    /// (`true` for an ack), checking that no tag is confirmed twice.
    fn confirms_through(client: &mut RawClient, outcomes: &mut BTreeMap<u64, bool>, last: u64) {
        while outcomes.len() < last as usize {
            let (tag, multiple, acked) = match client.next_method() {
                (1, AMQPClass::Basic(basic::AMQPMethod::Ack(a))) => {
                    (a.delivery_tag, a.multiple, true)
                }
                (1, AMQPClass::Basic(basic::AMQPMethod::Nack(n))) => {
                    (n.delivery_tag, n.multiple, false)
                }
                other => panic!("expected a confirm, got {other:?}"),
            };
            let first = if multiple {
                outcomes.keys().next_back().map_or(1, |t| t + 1)
            } else {
                tag
            };
            for t in first..=tag {
                assert!(
                    outcomes.insert(t, acked).is_none(),
                    "tag {t} confirmed twice"
                );
            }
        }
        assert_eq!(outcomes.len() as u64, last, "{outcomes:?}");
    }

    #[test]
    fn the_wire_nacks_exactly_the_publishes_whose_write_failed_and_stays_open() {
        let dir = tempfile::tempdir().unwrap();
        let broker = open(&dir.path().join("warren.redb"));
        let server = broker.serve("127.0.0.1:0").expect("binds");
        let mut client = RawClient::open(server.local_addr());
        client.expect_channel(1);
        client.send_method(
            1,
            AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                queue: "jobs".into(),
                durable: true,
                ..queue::Declare::default()
            })),
        );
        assert!(matches!(
            client.next_method(),
            (1, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_)))
        ));
        client.send_method(
            1,
            AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
                nowait: false,
            })),
        );
        assert!(matches!(
            client.next_method(),
            (1, AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_)))
        ));
        let mut outcomes = BTreeMap::new();
        client.send_bytes(&publish("1 stored", true));
        confirms_through(&mut client, &mut outcomes, 1);

        broker.fail_store_writes(true).unwrap();
        // Persistent, transient, persistent, transient in one write.
        let mut batch = publish("2 lost", true);
        batch.extend(publish("3 transient", false));
        batch.extend(publish("4 lost", true));
        batch.extend(publish("5 transient", false));
        client.send_bytes(&batch);
        confirms_through(&mut client, &mut outcomes, 5);

        broker.fail_store_writes(false).unwrap();
        client.send_bytes(&publish("6 stored", true));
        confirms_through(&mut client, &mut outcomes, 6);
        let expected: BTreeMap<u64, bool> = [
            (1, true),
            (2, false),
            (3, true),
            (4, false),
            (5, true),
            (6, true),
        ]
        .into();
        assert_eq!(outcomes, expected, "ack = true, nack = false");

        // The connection and channel are open; the nacked messages are not in the queue.
        client.send_method(
            1,
            AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                queue: "jobs".into(),
                passive: true,
                arguments: WireTable::default(),
                ..queue::Declare::default()
            })),
        );
        match client.next_method() {
            (1, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok))) => {
                assert_eq!(ok.message_count, 4, "1, 3, 5 and 6");
            }
            other => panic!("expected declare-ok, got {other:?}"),
        }
        drop(client);
        drop(server);
        let ch = broker.connect("/").unwrap().open_channel().unwrap();
        assert_eq!(
            drain(&ch, "jobs"),
            ["1 stored", "3 transient", "5 transient", "6 stored"]
        );
    }
}
