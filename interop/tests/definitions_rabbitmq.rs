//! Definitions against the real thing (issue 12 part 1): a topology built on the local
//! RabbitMQ in a test vhost — exchanges of each kind, an alternate exchange, queues with
//! arguments (a quorum one too), bindings with keys and headers, an exchange-to-exchange
//! binding, a policy — is exported with `rabbitmqctl export_definitions`, the vhost deleted,
//! and the file imported into Warren; the same messages published to both land in the same
//! queues. Then Warren's export is imported into RabbitMQ (`rabbitmqctl
//! import_definitions`, in a fresh test vhost) and routes the same way again. Both vhosts
//! are deleted at the end: RabbitMQ is left as it was found.
//!
//! The RabbitMQ side is driven with Warren's own API over the wire (`Connection::open`,
//! feature `remote`), the Warren side in process.
//!
//! Without RabbitMQ or `rabbitmqctl` the test is reported as ignored with the reason; under
//! `CI=true` it runs and fails.
//!
//! `cargo test --release -p warren-interop --test definitions_rabbitmq`

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::Value;
use warren_interop::{rabbitmqctl as ctl, trial, Need, RabbitVhost};
use warrenmq::{
    Broker, Channel, ExchangeDeclareOptions, ExchangeKind, FieldTable, GetOptions, Message,
    QueueDeclareOptions,
};

fn main() -> ExitCode {
    warren_interop::run(vec![trial(
        "definitions_round_trip_with_rabbitmq",
        &[Need::RabbitMq, Need::Rabbitmqctl],
        definitions_round_trip_with_rabbitmq,
    )])
}

/// The queues of the topology, where messages are looked for.
const QUEUES: &[&str] = &[
    "q-direct",
    "q-topic",
    "q-headers",
    "q-fanout",
    "q-quorum",
    "q-alternate",
    "q-e2e",
    "q-capped",
];

/// The bindings made (the probe waits for RabbitMQ's import to have made them all).
const BINDINGS: usize = 9;

/// Builds the topology with a client and `rabbitmqctl set_policy`.
fn build(ch: &Channel, vhost: &str) {
    let durable = ExchangeDeclareOptions::durable();
    let args = |pairs: &[(&str, warrenmq::FieldValue)]| {
        let mut t = FieldTable::new();
        for (k, v) in pairs {
            t.insert(*k, v.clone());
        }
        t
    };
    ch.exchange_declare("ae", ExchangeKind::Fanout, durable, FieldTable::new())
        .expect("ae");
    ch.exchange_declare("xd", ExchangeKind::Direct, durable, FieldTable::new())
        .expect("xd");
    ch.exchange_declare("xf", ExchangeKind::Fanout, durable, FieldTable::new())
        .expect("xf");
    ch.exchange_declare(
        "xt",
        ExchangeKind::Topic,
        durable,
        args(&[("alternate-exchange", "ae".into())]),
    )
    .expect("xt");
    ch.exchange_declare(
        "xh",
        ExchangeKind::Headers,
        ExchangeDeclareOptions::default(),
        FieldTable::new(),
    )
    .expect("xh");
    let q = |name: &str, arguments: FieldTable| {
        ch.queue_declare(name, QueueDeclareOptions::durable(), arguments)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    };
    q("q-direct", args(&[("x-max-length", 100i32.into())]));
    q("q-topic", args(&[("x-message-ttl", 600_000i32.into())]));
    q("q-headers", FieldTable::new());
    q("q-fanout", args(&[("x-max-priority", 5i32.into())]));
    q("q-quorum", args(&[("x-queue-type", "quorum".into())]));
    q("q-alternate", FieldTable::new());
    q("q-e2e", FieldTable::new());
    q("q-capped", FieldTable::new());
    let bind = |queue: &str, exchange: &str, key: &str, arguments: FieldTable| {
        ch.queue_bind(queue, exchange, key, arguments)
            .unwrap_or_else(|e| panic!("{queue} to {exchange}: {e}"));
    };
    bind("q-direct", "xd", "k1", FieldTable::new());
    bind("q-e2e", "xd", "e.1", FieldTable::new());
    bind("q-topic", "xt", "a.*.c", FieldTable::new());
    bind(
        "q-headers",
        "xh",
        "",
        args(&[("x-match", "all".into()), ("colour", "red".into())]),
    );
    bind("q-fanout", "xf", "", FieldTable::new());
    bind("q-quorum", "xf", "", FieldTable::new());
    bind("q-alternate", "ae", "", FieldTable::new());
    bind("q-capped", "xd", "cap", FieldTable::new());
    ch.exchange_bind("xd", "xt", "e.#", FieldTable::new())
        .expect("exchange-to-exchange");
    ctl(&[
        "set_policy",
        "-p",
        vhost,
        "--apply-to",
        "queues",
        "--priority",
        "1",
        "cap",
        "^q-capped$",
        r#"{"max-length": 2}"#,
    ]);
}

/// A message to publish: exchange, routing key, and a header if any.
type Send = (
    &'static str,
    &'static str,
    Option<(&'static str, &'static str)>,
);

/// Publishes the same messages (each body names its route) and returns where each landed.
fn probe(ch: &Channel) -> BTreeMap<String, Vec<String>> {
    let sends: &[Send] = &[
        ("xd", "k1", None),
        ("xd", "nothing", None),
        ("xt", "a.b.c", None),
        ("xt", "a.b.c.d", None),
        ("xt", "e.1", None),
        ("xt", "e.2", None),
        ("xf", "any", None),
        ("xh", "", Some(("colour", "red"))),
        ("xh", "", Some(("colour", "blue"))),
        ("xd", "cap", None),
        ("xd", "cap", None),
        ("xd", "cap", None),
        ("xd", "cap", None),
    ];
    ch.confirm_select().expect("confirms");
    for (i, (exchange, key, header)) in sends.iter().enumerate() {
        let mut message = Message::new(format!("{i}:{exchange}/{key}"));
        if let Some((name, value)) = header {
            message = message.header(*name, *value);
        }
        ch.basic_publish(exchange, key, message)
            .unwrap_or_else(|e| panic!("publish to {exchange}: {e}"));
    }
    assert!(ch.wait_for_confirms().expect("confirmed"), "all confirmed");
    let mut landed = BTreeMap::new();
    for queue in QUEUES {
        let mut bodies = Vec::new();
        while let Some(d) = ch.basic_get(queue, GetOptions::no_ack()).expect("get") {
            bodies.push(String::from_utf8_lossy(d.body()).into_owned());
        }
        landed.insert((*queue).to_owned(), bodies);
    }
    landed
}

/// Keeps the entries of `vhost` only, renamed to `rename` (and the vhost's own entry):
/// the file holds the whole node (or broker), other vhosts included.
fn only_vhost(definitions: &str, vhost: &str, rename: &str) -> String {
    let mut file: Value = serde_json::from_str(definitions).expect("definitions are JSON");
    let top = file.as_object_mut().expect("an object");
    for (key, section) in top.iter_mut() {
        let Some(entries) = section.as_array_mut() else {
            continue;
        };
        if key == "users" {
            // Users are the node's, not the vhost's: RabbitMQ's guest is left alone.
            entries.clear();
            continue;
        }
        let field = if key == "vhosts" { "name" } else { "vhost" };
        entries.retain(|e| e.get(field).and_then(Value::as_str) == Some(vhost));
        for e in entries.iter_mut() {
            e[field] = Value::from(rename);
        }
    }
    file.to_string()
}

fn definitions_round_trip_with_rabbitmq() {
    let id = std::process::id();
    let first = format!("warren-defs-{id}");
    let second = format!("warren-defs-back-{id}");

    // 1. The topology on RabbitMQ, exported, the messages probed, the vhost deleted.
    let (exported, rabbit_landed) = {
        let vhost = RabbitVhost::create(&first);
        let conn = vhost.connect();
        let ch = conn.open_channel().expect("a channel");
        build(&ch, vhost.name());
        let exported = ctl(&["export_definitions", "-"]);
        let landed = probe(&ch);
        conn.close();
        (exported, landed)
    };
    // Each route was taken: the test shows something.
    assert_eq!(rabbit_landed["q-capped"].len(), 2, "{rabbit_landed:?}");
    assert_eq!(rabbit_landed["q-quorum"].len(), 1, "{rabbit_landed:?}");
    assert_eq!(rabbit_landed["q-e2e"].len(), 1, "{rabbit_landed:?}");
    assert!(
        !rabbit_landed["q-alternate"].is_empty(),
        "{rabbit_landed:?}"
    );
    assert_eq!(rabbit_landed["q-headers"].len(), 1, "{rabbit_landed:?}");

    // 2. RabbitMQ's file into Warren: the same messages land in the same queues.
    let broker = Broker::in_memory();
    let file = only_vhost(&exported, &first, &first);
    let report = broker
        .import_definitions(file.as_bytes())
        .expect("RabbitMQ's export imports");
    assert_eq!(
        (
            report.queues,
            report.exchanges,
            report.bindings,
            report.policies
        ),
        (QUEUES.len(), 5, BINDINGS, 1),
        "{report:?}"
    );
    let conn = broker.connect(&first).expect("the vhost was imported");
    let warren_landed = probe(&conn.open_channel().expect("a channel"));
    assert_eq!(warren_landed, rabbit_landed);

    // 3. Warren's export into RabbitMQ, in a fresh vhost: routed the same way again.
    let back = RabbitVhost::create(&second);
    let file = only_vhost(&broker.export_definitions(), &first, &second);
    let path = std::env::temp_dir().join(format!("warren-defs-{id}.json"));
    std::fs::write(&path, &file).expect("written");
    ctl(&["import_definitions", path.to_str().expect("UTF-8")]);
    let _ = std::fs::remove_file(&path);
    // The import is asynchronous: wait until every binding is there.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = ctl(&[
            "list_bindings",
            "-p",
            &second,
            "--no-table-headers",
            "source_name",
            "destination_name",
        ]);
        let made = listed.lines().filter(|l| !l.is_empty()).count();
        // Each queue's default-exchange binding is listed too (source "").
        if made >= BINDINGS + QUEUES.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "RabbitMQ imported {made} bindings of {}: {listed}",
            BINDINGS + QUEUES.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let policies = ctl(&["list_policies", "-p", &second]);
    assert!(policies.contains("^q-capped$"), "{policies}");
    let conn = back.connect();
    let again = probe(&conn.open_channel().expect("a channel"));
    conn.close();
    assert_eq!(again, rabbit_landed);
}
