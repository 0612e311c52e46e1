//! Delayed messages: the `x-delayed-message` exchange kind, as RabbitMQ's delayed-message
//! plugin has it (its README and source; the plugin is not installed on the local RabbitMQ,
//! docs/rabbitmq-observations.md §22). Time is a `ManualClock`: nothing arrives before the
//! delay, everything after, in due order; routing happens when the delay ends; persistent
//! delayed messages to a durable exchange survive a restart.

mod common;

use std::time::Duration;

use common::*;
use warrenmq::{
    Broker, Channel, ExchangeDeclareOptions, ExchangeDeleteOptions, ExchangeKind, FieldTable,
    FieldValue, GetOptions, ManualClock, Message, PublishOptions, QueueDeclareOptions,
};

const T0: u64 = 1_700_000_000_000;

fn broker(clock: &ManualClock) -> Broker {
    Broker::builder().clock(clock.clone()).build().unwrap()
}

fn delayed_exchange(ch: &Channel, name: &str, routing: &str, durable: bool) {
    let options = ExchangeDeclareOptions {
        durable,
        ..Default::default()
    };
    let args = FieldTable::new().with("x-delayed-type", routing);
    ch.exchange_declare(name, ExchangeKind::DelayedMessage, options, args)
        .unwrap();
}

fn delayed(body: &str, ms: impl Into<FieldValue>) -> Message {
    Message::new(body.to_owned()).header("x-delay", ms)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn smoke() {
    let clock = ManualClock::starting_at(T0);
    let broker = broker(&clock);
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    delayed_exchange(&ch, "later", "direct", false);
    declare_queue(&ch, "q");
    ch.queue_bind("q", "later", "k", FieldTable::new()).unwrap();
    ch.basic_publish("later", "k", delayed("hello", 1000))
        .unwrap();
    assert!(drain(&ch, "q").is_empty());
    clock.advance(ms(1000));
    assert_eq!(drain(&ch, "q"), ["hello"]);
}

#[test]
fn declare_needs_an_existing_delayed_type() {
    let (broker, conn, _) = setup();
    for args in [
        FieldTable::new(),
        FieldTable::new().with("x-delayed-type", 1),
        FieldTable::new().with("x-delayed-type", "x-delayed-message"),
    ] {
        let ch = conn.open_channel().unwrap();
        let err = ch
            .exchange_declare(
                "d",
                ExchangeKind::DelayedMessage,
                ExchangeDeclareOptions::default(),
                args,
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must bean existing \
             exchnage type"
        );
        assert!(!conn.is_closed());
    }
    let conn = broker.connect("/").unwrap();
    let ch = conn.open_channel().unwrap();
    let args = FieldTable::new().with("x-delayed-type", "bogus");
    let err = ch
        .exchange_declare(
            "d",
            ExchangeKind::from_name("x-delayed-message"),
            ExchangeDeclareOptions::default(),
            args,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "COMMAND_INVALID - unknown exchange type 'bogus'"
    );
    assert!(conn.is_closed());
}

#[test]
fn nothing_arrives_before_the_delay_and_everything_after() {
    let clock = ManualClock::starting_at(T0);
    let broker = broker(&clock);
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    delayed_exchange(&ch, "later", "fanout", false);
    declare_queue(&ch, "q");
    ch.queue_bind("q", "later", "", FieldTable::new()).unwrap();
    for i in 0..50u64 {
        let delay = 100 + i * 10;
        ch.basic_publish("later", "", delayed(&format!("m{i}"), delay as i64))
            .unwrap();
    }
    assert_eq!(
        broker
            .exchange_stats("/", "later")
            .unwrap()
            .messages_delayed,
        50
    );
    clock.advance(ms(99));
    assert!(drain(&ch, "q").is_empty());
    clock.advance(ms(1)); // T0 + 100: the first is due
    assert_eq!(drain(&ch, "q"), ["m0"]);
    clock.advance(ms(245)); // T0 + 345: m1 (110) ... m24 (340)
    let expected: Vec<String> = (1..25).map(|i| format!("m{i}")).collect();
    assert_eq!(drain(&ch, "q"), expected);
    clock.advance(ms(10_000));
    let expected: Vec<String> = (25..50).map(|i| format!("m{i}")).collect();
    assert_eq!(drain(&ch, "q"), expected);
    let stats = broker.exchange_stats("/", "later").unwrap();
    assert_eq!((stats.messages_delayed, stats.routed), (0, 50));
}

#[test]
fn messages_are_released_in_due_order_ties_in_publish_order() {
    let clock = ManualClock::starting_at(T0);
    let broker = broker(&clock);
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    delayed_exchange(&ch, "later", "direct", false);
    declare_queue(&ch, "q");
    ch.queue_bind("q", "later", "k", FieldTable::new()).unwrap();
    ch.basic_publish("later", "k", delayed("c-300", 300))
        .unwrap();
    ch.basic_publish("later", "k", delayed("a-100", 100))
        .unwrap();
    clock.advance(ms(50));
    // Due at T0 + 150 and T0 + 100 (a tie with a-100, published later).
    ch.basic_publish("later", "k", delayed("b-150", "100"))
        .unwrap();
    ch.basic_publish("later", "k", delayed("a-100-too", 50.9f64))
        .unwrap();
    // No x-delay, or one the plugin does not delay: routed at once.
    ch.basic_publish("later", "k", Message::new("now")).unwrap();
    ch.basic_publish("later", "k", delayed("zero", 0)).unwrap();
    ch.basic_publish("later", "k", delayed("negative", -5))
        .unwrap();
    assert_eq!(drain(&ch, "q"), ["now", "zero", "negative"]);
    clock.advance(ms(1000));
    assert_eq!(drain(&ch, "q"), ["a-100", "a-100-too", "b-150", "c-300"]);
}

#[test]
fn routing_happens_when_the_delay_ends() {
    let clock = ManualClock::starting_at(T0);
    let broker = broker(&clock);
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    delayed_exchange(&ch, "later", "topic", false);
    for q in ["early", "late", "unbound"] {
        declare_queue(&ch, q);
    }
    ch.queue_bind("early", "later", "a.*", FieldTable::new())
        .unwrap();
    ch.queue_bind("unbound", "later", "a.#", FieldTable::new())
        .unwrap();
    ch.basic_publish("later", "a.b", delayed("m", 500)).unwrap();
    // Bound after the publish, before the delay ends: counts. Unbound meanwhile: does not.
    ch.queue_bind("late", "later", "#", FieldTable::new())
        .unwrap();
    ch.queue_unbind("unbound", "later", "a.#", FieldTable::new())
        .unwrap();
    clock.advance(ms(500));
    let got = ch
        .basic_get("early", GetOptions::no_ack())
        .unwrap()
        .unwrap();
    assert_eq!(body(&got), "m");
    assert_eq!(got.exchange(), "later");
    assert_eq!(got.routing_key(), "a.b");
    let headers = got.properties().headers.as_ref().unwrap();
    assert_eq!(headers.get("x-delay"), Some(&FieldValue::I32(-500)));
    assert_eq!(drain(&ch, "late"), ["m"]);
    assert!(drain(&ch, "unbound").is_empty());
    // An exchange deleted before the delay ends routes nothing.
    ch.basic_publish("later", "a.b", delayed("lost", 500))
        .unwrap();
    ch.exchange_delete("later", ExchangeDeleteOptions::default())
        .unwrap();
    clock.advance(ms(500));
    assert!(drain(&ch, "early").is_empty() && drain(&ch, "late").is_empty());
}

#[test]
fn headers_kind_mandatory_and_confirms() {
    let clock = ManualClock::starting_at(T0);
    let broker = broker(&clock);
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    delayed_exchange(&ch, "later", "headers", false);
    declare_queue(&ch, "q");
    let args = FieldTable::new().with("x-match", "any").with("kind", "job");
    ch.queue_bind("q", "later", "", args).unwrap();
    ch.confirm_select().unwrap();
    let returns = ch.returns();
    let m = delayed("job", 200).header("kind", "job");
    ch.basic_publish_with("later", "", PublishOptions::mandatory(), m)
        .unwrap();
    assert!(ch.wait_for_confirms().unwrap());
    // Routed nowhere when published: a mandatory message comes back at once...
    let returned = returns.try_recv().expect("returned at once");
    assert_eq!(returned.reply_text, "NO_ROUTE");
    assert!(drain(&ch, "q").is_empty());
    // ... and is still delivered when due, as with the plugin.
    clock.advance(ms(200));
    assert_eq!(drain(&ch, "q"), ["job"]);
}

#[cfg(feature = "persistence")]
#[test]
fn persistent_delayed_messages_to_a_durable_exchange_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warren.redb");
    let open = |clock: &ManualClock| {
        Broker::builder()
            .clock(clock.clone())
            .data_path(&path)
            .build()
            .unwrap()
    };
    {
        let clock = ManualClock::starting_at(T0);
        let broker = open(&clock);
        let ch = broker.connect("/").unwrap().open_channel().unwrap();
        delayed_exchange(&ch, "later", "direct", true);
        delayed_exchange(&ch, "transient", "direct", false);
        ch.queue_declare("q", QueueDeclareOptions::durable(), FieldTable::new())
            .unwrap();
        ch.queue_bind("q", "later", "k", FieldTable::new()).unwrap();
        ch.confirm_select().unwrap();
        for (body, delay) in [("third", 3000), ("first", 1000), ("second", 2000)] {
            ch.basic_publish("later", "k", delayed(body, delay).persistent())
                .unwrap();
        }
        ch.basic_publish("later", "k", delayed("not persistent", 1000))
            .unwrap();
        ch.basic_publish(
            "transient",
            "k",
            delayed("to a transient exchange", 1000).persistent(),
        )
        .unwrap();
        assert!(ch.wait_for_confirms().unwrap());
        clock.advance(ms(1500)); // "first" is released before the restart
        let first = ch.basic_get("q", GetOptions::default()).unwrap().unwrap();
        assert_eq!(body(&first), "first");
        assert_eq!(drain(&ch, "q"), ["not persistent"]);
        first.ack().unwrap();
    }
    // Restart at T0 + 1900: nothing more is due yet.
    let clock = ManualClock::starting_at(T0 + 1900);
    let broker = open(&clock);
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    assert!(drain(&ch, "q").is_empty());
    assert_eq!(
        broker
            .exchange_stats("/", "later")
            .unwrap()
            .messages_delayed,
        2
    );
    clock.advance(ms(100));
    assert_eq!(drain(&ch, "q"), ["second"]);
    drop((ch, broker));
    // Restart long after the last due time: released once the bindings are back.
    let clock = ManualClock::starting_at(T0 + 60_000);
    let broker = open(&clock);
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    clock.advance(ms(1));
    let third = ch.basic_get("q", GetOptions::no_ack()).unwrap().unwrap();
    assert_eq!(body(&third), "third");
    assert!(third.properties().is_persistent());
    assert!(drain(&ch, "q").is_empty());
    // The hidden store of delayed messages is no queue anyone sees.
    let names: Vec<String> = broker
        .list_queues("/")
        .unwrap()
        .into_iter()
        .map(|q| q.name)
        .collect();
    assert_eq!(names, ["q"]);
    drop((third, ch, broker));
    let broker = open(&ManualClock::starting_at(T0 + 120_000));
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    assert!(
        drain(&ch, "q").is_empty(),
        "released messages are not stored twice"
    );
}

#[test]
fn with_the_system_clock_the_timer_thread_releases_them() {
    let (_broker, _conn, ch) = setup();
    delayed_exchange(&ch, "later", "direct", false);
    declare_queue(&ch, "q");
    ch.queue_bind("q", "later", "k", FieldTable::new()).unwrap();
    let consumer = ch
        .basic_consume("q", warrenmq::ConsumeOptions::no_ack())
        .unwrap();
    ch.basic_publish("later", "k", delayed("in a second", 1000))
        .unwrap();
    assert!(consumer.try_recv().is_err(), "not before its delay");
    let d = consumer
        .recv_timeout(PATIENCE)
        .expect("released by the timer thread");
    assert_eq!(body(&d), "in a second");
}
