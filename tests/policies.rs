//! Policies (`Broker::set_policy` / `clear_policy` / `list_policies`): which policy applies
//! (pattern, apply-to, priority), the keys Warren acts on for classic and quorum queues and
//! exchanges, how a policy and a declare argument combine per key, policies set or changed
//! under live queues, validation texts, and policies surviving a restart.
//!
//! Expectations were confirmed against RabbitMQ 3.10.8 with `rabbitmqctl set_policy`
//! (docs/rabbitmq-observations.md §21; the differential test is
//! interop/tests/policies_rabbitmq.rs).

mod common;

use common::*;
use warrenmq::{
    Broker, ExchangeKind, FieldTable, GetOptions, ManualClock, Message, Policy, PolicyApplyTo,
    QueueDeclareOptions,
};

fn def(key: &str, value: impl Into<warrenmq::FieldValue>) -> FieldTable {
    FieldTable::new().with(key, value)
}

fn ready(broker: &Broker, queue: &str) -> usize {
    broker.queue_stats("/", queue).unwrap().messages_ready
}

fn policy_of(broker: &Broker, queue: &str) -> Option<String> {
    broker.queue_stats("/", queue).unwrap().policy
}

#[test]
fn smoke() {
    let (broker, _c, ch) = setup();
    broker
        .set_policy("/", Policy::new("cap", "^q$", def("max-length", 2)))
        .unwrap();
    declare_queue(&ch, "q");
    for i in 1..=4 {
        publish(&ch, "", "q", &format!("m{i}"));
    }
    assert_eq!(drain(&ch, "q"), ["m3", "m4"]);
    assert_eq!(policy_of(&broker, "q").as_deref(), Some("cap"));
}

#[test]
fn the_pattern_is_an_unanchored_regex() {
    let (broker, _c, ch) = setup();
    broker
        .set_policy("/", Policy::new("p", "p\\.a", def("max-length", 1)))
        .unwrap();
    for q in ["pp.a", "p.ab", "pxa", "other"] {
        declare_queue(&ch, q);
    }
    assert_eq!(policy_of(&broker, "pp.a").as_deref(), Some("p"));
    assert_eq!(policy_of(&broker, "p.ab").as_deref(), Some("p"));
    assert_eq!(policy_of(&broker, "pxa"), None);
    assert_eq!(policy_of(&broker, "other"), None);
    // `.*` matches server-named and exclusive queues too.
    broker
        .set_policy(
            "/",
            Policy::new("all", ".*", def("max-length", 1)).priority(-1),
        )
        .unwrap();
    let ok = ch
        .queue_declare("", QueueDeclareOptions::exclusive(), FieldTable::new())
        .unwrap();
    assert_eq!(policy_of(&broker, &ok.queue).as_deref(), Some("all"));
}

#[test]
fn the_highest_priority_applies_alone() {
    let (broker, _c, ch) = setup();
    declare_queue(&ch, "q");
    broker
        .set_policy("/", Policy::new("low", ".*", def("max-length", 1)))
        .unwrap();
    broker
        .set_policy(
            "/",
            Policy::new("high", ".*", def("message-ttl", 60_000)).priority(5),
        )
        .unwrap();
    // The high policy's keys do not merge with the low one's: no length limit.
    for i in 1..=3 {
        publish(&ch, "", "q", &format!("m{i}"));
    }
    assert_eq!(ready(&broker, "q"), 3);
    assert_eq!(policy_of(&broker, "q").as_deref(), Some("high"));
    // Raising the other one above switches the queue over, at once.
    broker
        .set_policy(
            "/",
            Policy::new("low", ".*", def("max-length", 1)).priority(9),
        )
        .unwrap();
    assert_eq!(policy_of(&broker, "q").as_deref(), Some("low"));
    assert_eq!(drain(&ch, "q"), ["m3"]);
}

#[test]
fn equal_priorities_pick_the_first_name() {
    let (broker, _c, ch) = setup();
    for name in ["b", "a", "c"] {
        broker
            .set_policy("/", Policy::new(name, ".*", def("max-length", 1)))
            .unwrap();
    }
    declare_queue(&ch, "q");
    assert_eq!(policy_of(&broker, "q").as_deref(), Some("a"));
}

#[test]
fn apply_to_chooses_queues_or_exchanges() {
    let (broker, _c, ch) = setup();
    declare_queue(&ch, "q");
    declare_exchange(&ch, "x", ExchangeKind::Direct);
    broker
        .set_policy(
            "/",
            Policy::new("ex", ".*", def("alternate-exchange", "ae"))
                .apply_to(PolicyApplyTo::Exchanges),
        )
        .unwrap();
    assert_eq!(policy_of(&broker, "q"), None);
    let x = broker.exchange_stats("/", "x").unwrap();
    assert_eq!(x.policy.as_deref(), Some("ex"));
    broker
        .set_policy(
            "/",
            Policy::new("qs", ".*", def("max-length", 1))
                .apply_to(PolicyApplyTo::Queues)
                .priority(3),
        )
        .unwrap();
    assert_eq!(policy_of(&broker, "q").as_deref(), Some("qs"));
    // The exchange still has its own: the queue policy does not apply to it.
    let x = broker.exchange_stats("/", "x").unwrap();
    assert_eq!(x.policy.as_deref(), Some("ex"));
}

#[test]
fn a_policy_changed_under_a_live_queue_applies_at_once() {
    let (broker, _c, ch) = setup();
    declare_queue(&ch, "q");
    for i in 1..=5 {
        publish(&ch, "", "q", &format!("m{i}"));
    }
    broker
        .set_policy("/", Policy::new("cap", "^q$", def("max-length", 2)))
        .unwrap();
    assert_eq!(ready(&broker, "q"), 2, "dropped from the head");
    broker
        .set_policy("/", Policy::new("cap", "^q$", def("max-length", 4)))
        .unwrap();
    for i in 6..=9 {
        publish(&ch, "", "q", &format!("m{i}"));
    }
    assert_eq!(ready(&broker, "q"), 4, "grows to the raised limit");
    broker.clear_policy("/", "cap").unwrap();
    for i in 10..=12 {
        publish(&ch, "", "q", &format!("m{i}"));
    }
    assert_eq!(ready(&broker, "q"), 7, "no limit once cleared");
    assert_eq!(policy_of(&broker, "q"), None);
}

#[test]
fn a_lowered_limit_dead_letters_through_the_policy_exchange() {
    let (broker, _c, ch) = setup();
    declare_exchange(&ch, "dlx", ExchangeKind::Fanout);
    declare_queue(&ch, "dlq");
    ch.queue_bind("dlq", "dlx", "", FieldTable::new()).unwrap();
    declare_queue(&ch, "q");
    for i in 1..=3 {
        publish(&ch, "", "q", &format!("m{i}"));
    }
    let definition = def("max-length", 1).with("dead-letter-exchange", "dlx");
    broker
        .set_policy("/", Policy::new("p", "^q$", definition))
        .unwrap();
    assert_eq!(drain(&ch, "q"), ["m3"]);
    let d = ch.basic_get("dlq", GetOptions::no_ack()).unwrap().unwrap();
    let headers = d.properties().headers.clone().unwrap();
    let death = headers.get("x-death").unwrap().as_array().unwrap()[0]
        .as_table()
        .unwrap()
        .clone();
    assert_eq!(death.get("reason").unwrap().as_str(), Some("maxlen"));
    assert_eq!(body(&d), "m1");
    assert_eq!(drain(&ch, "dlq"), ["m2"]);
}

#[test]
fn a_dead_letter_exchange_set_while_a_message_is_held_applies_to_its_reject() {
    let (broker, _c, ch) = setup();
    declare_exchange(&ch, "dlx", ExchangeKind::Fanout);
    declare_queue(&ch, "dlq");
    ch.queue_bind("dlq", "dlx", "", FieldTable::new()).unwrap();
    declare_queue(&ch, "q");
    publish(&ch, "", "q", "held");
    let d = ch.basic_get("q", GetOptions::default()).unwrap().unwrap();
    broker
        .set_policy(
            "/",
            Policy::new("p", "^q$", def("dead-letter-exchange", "dlx")),
        )
        .unwrap();
    d.reject(false).unwrap();
    assert_eq!(drain(&ch, "dlq"), ["held"]);
}

#[test]
fn message_ttl_from_a_policy_applies_to_messages_that_enter_afterwards() {
    let clock = ManualClock::new();
    let broker = Broker::builder().clock(clock.clone()).build().unwrap();
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    declare_queue(&ch, "q");
    publish(&ch, "", "q", "before");
    broker
        .set_policy("/", Policy::new("ttl", "^q$", def("message-ttl", 1_000)))
        .unwrap();
    publish(&ch, "", "q", "after");
    clock.advance(std::time::Duration::from_millis(1_500));
    // `before` never expires; `after` did, and goes once it reaches the head.
    assert_eq!(drain(&ch, "q"), ["before"]);
    publish(&ch, "", "q", "alone");
    clock.advance(std::time::Duration::from_millis(1_500));
    assert_eq!(drain(&ch, "q"), Vec::<String>::new());
    assert_eq!(broker.queue_stats("/", "q").unwrap().messages_expired, 2);
}

#[test]
fn expires_from_a_policy_deletes_an_unused_queue() {
    let clock = ManualClock::new();
    let broker = Broker::builder().clock(clock.clone()).build().unwrap();
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    declare_queue(&ch, "q");
    clock.advance(std::time::Duration::from_secs(60));
    broker
        .set_policy("/", Policy::new("exp", "^q$", def("expires", 1_000)))
        .unwrap();
    // It counts from when the policy applied, not from the declare.
    assert!(broker.queue_stats("/", "q").is_ok());
    clock.advance(std::time::Duration::from_millis(1_500));
    assert_eq!(code(&broker.queue_stats("/", "q").unwrap_err()), 404);
}

#[test]
fn numeric_limits_take_the_smaller_of_argument_and_policy() {
    let (broker, _c, ch) = setup();
    declare(&ch, "arg3", FieldTable::new().with("x-max-length", 3));
    declare(&ch, "arg1", FieldTable::new().with("x-max-length", 1));
    broker
        .set_policy("/", Policy::new("p3", "^arg1$", def("max-length", 3)))
        .unwrap();
    broker
        .set_policy("/", Policy::new("p1", "^arg3$", def("max-length", 1)))
        .unwrap();
    for q in ["arg3", "arg1"] {
        for i in 1..=4 {
            publish(&ch, "", q, &format!("m{i}"));
        }
        assert_eq!(drain(&ch, q), ["m4"], "{q}");
    }
    // Bytes too.
    declare(&ch, "b", FieldTable::new().with("x-max-length-bytes", 10));
    broker
        .set_policy("/", Policy::new("pb", "^b$", def("max-length-bytes", 4)))
        .unwrap();
    for m in ["aa", "bb", "cc"] {
        publish(&ch, "", "b", m);
    }
    assert_eq!(drain(&ch, "b"), ["bb", "cc"]);
}

#[test]
fn overflow_and_dead_letter_keys_defer_to_the_argument() {
    let (broker, _c, ch) = setup();
    declare_exchange(&ch, "arg-dlx", ExchangeKind::Fanout);
    declare_exchange(&ch, "pol-dlx", ExchangeKind::Fanout);
    declare_queue(&ch, "arg-dlq");
    declare_queue(&ch, "pol-dlq");
    ch.queue_bind("arg-dlq", "arg-dlx", "", FieldTable::new())
        .unwrap();
    ch.queue_bind("pol-dlq", "pol-dlx", "", FieldTable::new())
        .unwrap();
    let args = FieldTable::new()
        .with("x-max-length", 1)
        .with("x-overflow", "drop-head")
        .with("x-dead-letter-exchange", "arg-dlx");
    declare(&ch, "q", args);
    let definition = def("overflow", "reject-publish").with("dead-letter-exchange", "pol-dlx");
    broker
        .set_policy("/", Policy::new("p", "^q$", definition))
        .unwrap();
    for m in ["m1", "m2"] {
        publish(&ch, "", "q", m);
    }
    // drop-head (the argument), dead-lettered to the argument's exchange.
    assert_eq!(drain(&ch, "q"), ["m2"]);
    assert_eq!(drain(&ch, "arg-dlq"), ["m1"]);
    assert!(drain(&ch, "pol-dlq").is_empty());
}

#[test]
fn overflow_from_a_policy_refuses_publishes() {
    let (broker, _c, ch) = setup();
    declare_queue(&ch, "q");
    let definition = def("max-length", 1).with("overflow", "reject-publish");
    broker
        .set_policy("/", Policy::new("p", "^q$", definition))
        .unwrap();
    ch.confirm_select().unwrap();
    publish(&ch, "", "q", "m1");
    publish(&ch, "", "q", "m2");
    assert!(
        !ch.wait_for_confirms().unwrap(),
        "the second publish is nacked"
    );
    assert_eq!(drain(&ch, "q"), ["m1"]);
}

#[test]
fn delivery_limit_applies_to_quorum_queues_only() {
    let (broker, _c, ch) = setup();
    let quorum = FieldTable::new().with("x-queue-type", "quorum");
    ch.queue_declare("qq", QueueDeclareOptions::durable(), quorum)
        .unwrap();
    declare_queue(&ch, "cq");
    broker
        .set_policy("/", Policy::new("dl", "q$", def("delivery-limit", 1)))
        .unwrap();
    for q in ["qq", "cq"] {
        publish(&ch, "", q, "poison");
    }
    // Limit 1: one return is allowed, the second dead-letters (here: drops) the message.
    for _ in 0..2 {
        let d = ch.basic_get("qq", GetOptions::default()).unwrap().unwrap();
        d.nack(true).unwrap();
    }
    assert_eq!(ready(&broker, "qq"), 0);
    // The classic queue ignores the key.
    for _ in 0..3 {
        let d = ch.basic_get("cq", GetOptions::default()).unwrap().unwrap();
        assert!(d.properties().headers.is_none());
        d.nack(true).unwrap();
    }
    assert_eq!(ready(&broker, "cq"), 1);
}

#[test]
fn alternate_exchange_from_a_policy_and_the_argument_winning() {
    let (broker, _c, ch) = setup();
    for x in ["ae-pol", "ae-arg"] {
        declare_exchange(&ch, x, ExchangeKind::Fanout);
        declare_queue(&ch, &format!("{x}-q"));
        ch.queue_bind(&format!("{x}-q"), x, "", FieldTable::new())
            .unwrap();
    }
    declare_exchange(&ch, "plain", ExchangeKind::Direct);
    let args = FieldTable::new().with("alternate-exchange", "ae-arg");
    ch.exchange_declare("with-arg", ExchangeKind::Direct, Default::default(), args)
        .unwrap();
    broker
        .set_policy(
            "/",
            Policy::new(
                "ae",
                "^(plain|with-arg)$",
                def("alternate-exchange", "ae-pol"),
            ),
        )
        .unwrap();
    publish(&ch, "plain", "nowhere", "m1");
    publish(&ch, "with-arg", "nowhere", "m2");
    assert_eq!(drain(&ch, "ae-pol-q"), ["m1"]);
    assert_eq!(drain(&ch, "ae-arg-q"), ["m2"]);
    // A queue policy's alternate-exchange does nothing.
    broker.clear_policy("/", "ae").unwrap();
    broker
        .set_policy(
            "/",
            Policy::new("ae", "^plain$", def("alternate-exchange", "ae-pol"))
                .apply_to(PolicyApplyTo::Queues),
        )
        .unwrap();
    publish(&ch, "plain", "nowhere", "m3");
    assert!(drain(&ch, "ae-pol-q").is_empty());
}

#[test]
fn validation_texts_and_errors() {
    let broker = Broker::in_memory();
    let err = |p: Policy| broker.set_policy("/", p).unwrap_err();
    let e = err(Policy::new("p", ".*", def("message-ttl", -1)));
    assert_eq!(code(&e), 406);
    assert_eq!(
        e.to_string(),
        "PRECONDITION_FAILED - Validation failed: -1 is not a valid message TTL"
    );
    let e = err(Policy::new("p", ".*", def("max-priority", 3)));
    assert_eq!(
        e.to_string(),
        "PRECONDITION_FAILED - Validation failed: [{<<\"max-priority\">>,3}] are not \
         recognised policy settings"
    );
    assert_eq!(code(&err(Policy::new("p", "(", def("max-length", 1)))), 406);
    assert_eq!(
        code(
            &broker
                .set_policy("nope", Policy::new("p", ".*", def("max-length", 1)))
                .unwrap_err()
        ),
        530
    );
    let e = broker.clear_policy("/", "missing").unwrap_err();
    assert_eq!(code(&e), 404);
    // Nothing was set by the refused calls.
    assert!(broker.list_policies("/").unwrap().is_empty());
    // Accepted keys that change nothing here are kept and listed.
    broker
        .set_policy("/", Policy::new("ha", ".*", def("ha-mode", "all")))
        .unwrap();
    let listed = broker.list_policies("/").unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].definition, def("ha-mode", "all"));
    assert_eq!(listed[0].apply_to, PolicyApplyTo::All);
}

#[test]
fn policies_survive_a_restart_and_apply_to_recovered_queues() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warren.redb");
    {
        let broker = Broker::open(&path).unwrap();
        broker.add_vhost("v").unwrap();
        let ch = broker.connect("v").unwrap().open_channel().unwrap();
        ch.queue_declare("q", QueueDeclareOptions::durable(), FieldTable::new())
            .unwrap();
        broker
            .set_policy(
                "v",
                Policy::new("cap", "^q$", def("max-length", 2))
                    .apply_to(PolicyApplyTo::Queues)
                    .priority(7),
            )
            .unwrap();
        broker
            .set_policy("v", Policy::new("gone", "^x$", def("max-length", 1)))
            .unwrap();
        broker.clear_policy("v", "gone").unwrap();
        ch.confirm_select().unwrap();
        for i in 1..=4 {
            ch.basic_publish("", "q", Message::new(format!("m{i}")).persistent())
                .unwrap();
        }
        assert!(ch.wait_for_confirms().unwrap());
    }
    let broker = Broker::open(&path).unwrap();
    let listed = broker.list_policies("v").unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0],
        Policy::new("cap", "^q$", def("max-length", 2))
            .apply_to(PolicyApplyTo::Queues)
            .priority(7)
    );
    assert_eq!(
        broker.queue_stats("v", "q").unwrap().policy.as_deref(),
        Some("cap")
    );
    let ch = broker.connect("v").unwrap().open_channel().unwrap();
    ch.basic_publish("", "q", Message::new("m5").persistent())
        .unwrap();
    assert_eq!(drain(&ch, "q"), ["m4", "m5"]);
}
