//! Definitions files (`Broker::import_definitions`, `export_definitions`,
//! `BrokerBuilder::definitions`): a file as RabbitMQ 3.10.8 exports it imports with its
//! exchanges, queues and arguments, bindings (exchange-to-exchange too) and policies; unknown
//! keys and sections are warnings; a bad entry is an error naming it and imports nothing;
//! existing entities are kept; the export reads back to the same topology.
//!
//! The differential test against the local RabbitMQ (its export imported here, Warren's
//! imported there, the same messages routed the same way) is
//! interop/tests/definitions_rabbitmq.rs.
#![cfg(feature = "definitions")]

mod common;

use common::*;
use serde_json::{json, Value};
use warrenmq::{
    Broker, Error, ExchangeKind, FieldTable, FieldValue, HashingAlgorithm, Message, PasswordHash,
    Permissions, QueueDeclareOptions,
};

/// A file as `rabbitmqctl export_definitions` (RabbitMQ 3.10.8) writes it, for a vhost
/// `defs` built with `rabbitmqctl` and a client (the `/` entries and the guest user are
/// RabbitMQ's own).
const RABBITMQ_EXPORT: &str = r#"{
  "bindings": [
    {"arguments": {}, "destination": "q2", "destination_type": "queue", "routing_key": "",
     "source": "ae", "vhost": "defs"},
    {"arguments": {"b": true, "f": 1.5, "k": 1, "s": "str", "x-match": "any"},
     "destination": "q3", "destination_type": "queue", "routing_key": "", "source": "xh",
     "vhost": "defs"},
    {"arguments": {}, "destination": "q1", "destination_type": "queue", "routing_key": "a.#",
     "source": "xt", "vhost": "defs"},
    {"arguments": {"x": 1}, "destination": "xh", "destination_type": "exchange",
     "routing_key": "b.*", "source": "xt", "vhost": "defs"}
  ],
  "exchanges": [
    {"arguments": {}, "auto_delete": true, "durable": false, "name": "xh", "type": "headers",
     "vhost": "defs"},
    {"arguments": {}, "auto_delete": false, "durable": true, "name": "ae", "type": "fanout",
     "vhost": "defs"},
    {"arguments": {"alternate-exchange": "ae"}, "auto_delete": false, "durable": true,
     "name": "xt", "type": "topic", "vhost": "defs"}
  ],
  "global_parameters": [],
  "parameters": [],
  "permissions": [
    {"configure": ".*", "read": ".*", "user": "guest", "vhost": "/", "write": ".*"},
    {"configure": ".*", "read": ".*", "user": "guest", "vhost": "defs", "write": ".*"}
  ],
  "policies": [
    {"apply-to": "queues", "definition": {"dead-letter-routing-key": "x", "max-length": 5},
     "name": "p1", "pattern": "^q", "priority": 1, "vhost": "defs"}
  ],
  "queues": [
    {"arguments": {"x-queue-type": "quorum"}, "auto_delete": false, "durable": true,
     "name": "q2", "type": "quorum", "vhost": "defs"},
    {"arguments": {}, "auto_delete": true, "durable": false, "name": "q3", "type": "classic",
     "vhost": "defs"},
    {"arguments": {"x-dead-letter-exchange": "ae", "x-max-length": 10, "x-message-ttl": 1000,
                   "x-overflow": "reject-publish"},
     "auto_delete": false, "durable": true, "name": "q1", "type": "classic", "vhost": "defs"}
  ],
  "rabbit_version": "3.10.8",
  "rabbitmq_version": "3.10.8",
  "topic_permissions": [],
  "users": [
    {"hashing_algorithm": "rabbit_password_hashing_sha256", "limits": {}, "name": "guest",
     "password_hash": "7oc7aYJSDwAQ6gYj3/vJnlhNH3bAWVS7X80/eZjQghOpCpEf",
     "tags": ["administrator"]}
  ],
  "vhosts": [
    {"limits": [], "metadata": {"description": "", "tags": []}, "name": "defs"},
    {"limits": [], "metadata": {"description": "Default virtual host", "tags": []},
     "name": "/"}
  ]
}"#;

fn route(
    broker: &Broker,
    vhost: &str,
    exchange: &str,
    key: &str,
    headers: FieldTable,
) -> Vec<String> {
    let ch = broker.connect(vhost).unwrap().open_channel().unwrap();
    ch.route_preview(exchange, key, &headers).unwrap().queues
}

fn import(broker: &Broker, json: &str) -> warrenmq::Result<warrenmq::DefinitionsReport> {
    broker.import_definitions(json.as_bytes())
}

fn export(broker: &Broker) -> Value {
    serde_json::from_str(&broker.export_definitions()).expect("the export is JSON")
}

#[test]
fn a_rabbitmq_export_imports_with_its_topology() {
    let broker = Broker::in_memory();
    let report = import(&broker, RABBITMQ_EXPORT).unwrap();
    assert_eq!(
        (
            report.vhosts,
            report.policies,
            report.queues,
            report.exchanges,
            report.bindings
        ),
        (2, 1, 3, 3, 4)
    );
    assert_eq!(broker.vhosts(), ["/", "defs"]);

    let q1 = broker.queue_stats("defs", "q1").unwrap();
    assert!(q1.durable && !q1.auto_delete);
    assert_eq!(q1.arguments.get("x-max-length"), Some(&FieldValue::I64(10)));
    assert_eq!(
        q1.arguments.get("x-overflow").and_then(|v| v.as_str()),
        Some("reject-publish")
    );
    assert_eq!(q1.policy.as_deref(), Some("p1"));
    let q2 = broker.queue_stats("defs", "q2").unwrap();
    assert_eq!(
        q2.arguments.get("x-queue-type").and_then(|v| v.as_str()),
        Some("quorum")
    );
    let q3 = broker.queue_stats("defs", "q3").unwrap();
    assert!(!q3.durable && q3.auto_delete);

    let xt = broker.exchange_stats("defs", "xt").unwrap();
    assert_eq!(xt.kind, ExchangeKind::Topic);
    assert_eq!(
        xt.arguments
            .get("alternate-exchange")
            .and_then(|v| v.as_str()),
        Some("ae")
    );
    let xh = broker.exchange_stats("defs", "xh").unwrap();
    assert_eq!(xh.kind, ExchangeKind::Headers);
    assert!(!xh.durable && xh.auto_delete);

    // Routing: topic binding, the exchange-to-exchange binding into the headers exchange,
    // and the alternate exchange for what xt routes nowhere (as in RabbitMQ, not for what
    // it hands to xh and xh drops).
    let none = FieldTable::new;
    assert_eq!(route(&broker, "defs", "xt", "a.b", none()), ["q1"]);
    let k1 = FieldTable::new().with("k", 1);
    assert_eq!(route(&broker, "defs", "xt", "b.c", k1), ["q3"]);
    assert!(route(&broker, "defs", "xt", "b.c", none()).is_empty());
    assert_eq!(route(&broker, "defs", "xt", "zzz", none()), ["q2"]);

    // The policy's max-length (5) wins over nothing on q2 and q3, and over 10 on q1.
    let ch = broker.connect("defs").unwrap().open_channel().unwrap();
    for i in 0..7 {
        publish(&ch, "", "q3", &format!("m{i}"));
    }
    assert_eq!(broker.queue_stats("defs", "q3").unwrap().messages_ready, 5);

    // The user with RabbitMQ's hash of guest's password, and its permissions.
    assert_eq!((report.users, report.permissions), (1, 2));
    broker
        .authenticate("guest", "guest")
        .expect("RabbitMQ's hash of 'guest' is read");
    assert!(broker.authenticate("guest", "wrong").is_err());
    assert!(broker.user("guest").unwrap().has_tag("administrator"));
    assert_eq!(
        broker.user_permissions("guest", "defs"),
        Some(Permissions::full())
    );
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
}

#[test]
fn users_and_permissions_import_and_export() {
    let broker = Broker::in_memory();
    let hash = PasswordHash::with_algorithm(HashingAlgorithm::Sha512, "s3cret").to_base64();
    let file = json!({
        "users": [
            {"name": "app", "password_hash": hash,
             "hashing_algorithm": "rabbit_password_hashing_sha512", "tags": "monitoring,policymaker"},
            {"name": "nopass", "password_hash": "", "tags": []}
        ],
        "vhosts": [{"name": "apps"}],
        "permissions": [{"user": "app", "vhost": "apps", "configure": "^app\\.",
                         "write": ".*", "read": ""}]
    });
    let report = import(&broker, &file.to_string()).unwrap();
    assert_eq!((report.users, report.permissions), (2, 1));
    let app = broker.authenticate("app", "s3cret").unwrap();
    assert_eq!(app.tags, ["monitoring", "policymaker"]);
    assert!(broker.authenticate("nopass", "").is_err());
    assert_eq!(
        broker.user_permissions("app", "apps"),
        Some(Permissions::new("^app\\.", ".*", ""))
    );
    // The permissions are in force: app may not declare outside ^app\.
    let ch = broker
        .connect_as("app", "apps")
        .unwrap()
        .open_channel()
        .unwrap();
    let err = ch
        .queue_declare("other", QueueDeclareOptions::default(), FieldTable::new())
        .unwrap_err();
    assert_eq!(code(&err), 403);

    let exported = export(&broker);
    let users = exported["users"].as_array().unwrap();
    let app = users.iter().find(|u| u["name"] == "app").unwrap();
    assert_eq!(app["password_hash"], hash.as_str());
    assert_eq!(app["hashing_algorithm"], "rabbit_password_hashing_sha512");
    assert_eq!(app["tags"], json!(["monitoring", "policymaker"]));
    let nopass = users.iter().find(|u| u["name"] == "nopass").unwrap();
    assert_eq!(nopass["password_hash"], "");
    assert!(exported["permissions"].as_array().unwrap().contains(
        &json!({"user": "app", "vhost": "apps", "configure": "^app\\.",
                          "write": ".*", "read": ""})
    ));
    let copy = Broker::builder().build().unwrap();
    import(&copy, &broker.export_definitions()).unwrap();
    copy.authenticate("app", "s3cret").unwrap();
    assert_eq!(export(&copy)["users"], exported["users"]);
    assert_eq!(export(&copy)["permissions"], exported["permissions"]);
}

#[test]
fn unknown_keys_are_warnings_not_errors() {
    let broker = Broker::in_memory();
    let file = json!({
        "something_new": 1,
        "queues": [{"name": "q", "vhost": "/", "durable": true, "auto_delete": false,
                    "arguments": {}, "colour": "blue"}],
        "parameters": [{"component": "shovel", "name": "s", "vhost": "/", "value": {}}],
    });
    let report = import(&broker, &file.to_string()).unwrap();
    assert_eq!(report.queues, 1);
    let warnings = report.warnings.join("\n");
    assert!(
        warnings.contains("unknown key 'something_new' ignored"),
        "{warnings}"
    );
    assert!(
        warnings.contains("queues[0] ('q'): unknown key 'colour' ignored"),
        "{warnings}"
    );
    assert!(warnings.contains("1 runtime parameters"), "{warnings}");
    assert!(broker.queue_stats("/", "q").is_ok());
}

/// A broker with some topology, whose export must not change when a bad file is refused.
fn populated() -> Broker {
    let broker = Broker::in_memory();
    import(&broker, RABBITMQ_EXPORT).unwrap();
    broker
}

#[track_caller]
fn refused(file: Value, entry: &str, reason: &str) {
    let broker = populated();
    let before = export(&broker);
    let err = import(&broker, &file.to_string()).unwrap_err();
    assert!(matches!(err, Error::InvalidDefinitions { .. }), "{err:?}");
    assert_eq!(err.reply_code().0, 406);
    let text = err.to_string();
    assert!(text.contains(entry), "{text} names {entry}");
    assert!(text.contains(reason), "{text} says {reason}");
    assert_eq!(export(&broker), before, "nothing of {file} was imported");
    assert!(broker.queue_stats("/", "new").is_err());
    assert!(!broker.vhosts().contains(&"fresh".to_owned()));
    assert!(broker.user("newcomer").is_none());
}

/// Good entries in every section, then `bad` appended to `section`.
fn with_bad(section: &str, bad: Value) -> Value {
    let mut file = json!({
        "users": [{"name": "newcomer", "password_hash": "", "tags": []}],
        "vhosts": [{"name": "fresh"}],
        "permissions": [{"user": "newcomer", "vhost": "fresh", "configure": ".*",
                         "write": ".*", "read": ".*"}],
        "policies": [{"vhost": "fresh", "name": "p", "pattern": ".*", "apply-to": "all",
                      "definition": {"max-length": 1}, "priority": 0}],
        "queues": [{"name": "new", "vhost": "/", "durable": true, "auto_delete": false,
                    "arguments": {}}],
        "exchanges": [{"name": "newx", "vhost": "/", "type": "fanout", "durable": true,
                       "auto_delete": false, "internal": false, "arguments": {}}],
        "bindings": [{"source": "newx", "vhost": "/", "destination": "new",
                      "destination_type": "queue", "routing_key": "", "arguments": {}}],
    });
    file[section].as_array_mut().unwrap().push(bad);
    file
}

#[test]
fn a_bad_entry_is_named_and_nothing_is_imported() {
    refused(
        with_bad(
            "queues",
            json!({"name": "ttl", "vhost": "/", "durable": true, "auto_delete": false,
                   "arguments": {"x-message-ttl": -1}}),
        ),
        "queue 'ttl' in vhost '/'",
        "invalid arg 'x-message-ttl'",
    );
    refused(
        with_bad(
            "policies",
            json!({"vhost": "/", "name": "bad", "pattern": ".*", "definition": {"max-length": -1}}),
        ),
        "policy 'bad' in vhost '/'",
        "-1 is not a valid maximum length",
    );
    refused(
        with_bad(
            "exchanges",
            json!({"name": "odd", "vhost": "/", "type": "no-such-kind", "durable": true}),
        ),
        "exchange 'odd' in vhost '/'",
        "no-such-kind",
    );
    refused(
        with_bad(
            "bindings",
            json!({"source": "newx", "vhost": "/", "destination": "new",
                   "destination_type": "table"}),
        ),
        "binding of table 'new' to exchange 'newx'",
        "neither 'queue' nor 'exchange'",
    );
    refused(
        with_bad("queues", json!({"name": "elsewhere", "vhost": "nowhere"})),
        "queue 'elsewhere' in vhost 'nowhere'",
        "nowhere",
    );
    refused(
        with_bad("queues", json!({"vhost": "/", "durable": true})),
        "queues[1]",
        "missing field `name`",
    );
    refused(
        with_bad("queues", json!({"name": "novhost"})),
        "queues[1] ('novhost')",
        "missing field `vhost`",
    );
    refused(
        with_bad(
            "exchanges",
            json!({"name": "x", "vhost": "/", "type": "direct", "durable": "yes"}),
        ),
        "exchanges[1] ('x')",
        "invalid type",
    );
    refused(
        json!({"queues": {"name": "q"}}),
        "'queues'",
        "an array was expected",
    );
    refused(json!([1, 2]), "the file", "a JSON object was expected");
    let broker = populated();
    let err = import(&broker, "{\"queues\": [").unwrap_err();
    assert!(err.to_string().contains("the file"), "{err}");
}

#[test]
fn existing_entities_are_kept_and_bindings_without_an_end_skipped() {
    let (broker, _c, ch) = setup();
    let limited = FieldTable::new().with("x-max-length", 10);
    ch.queue_declare("jobs", QueueDeclareOptions::durable(), limited)
        .unwrap();
    declare_exchange(&ch, "events", ExchangeKind::Topic);
    let file = json!({
        "queues": [
            {"name": "jobs", "vhost": "/", "durable": true, "arguments": {"x-max-length": 20}},
            {"name": "other", "vhost": "/", "durable": false, "arguments": {}}
        ],
        "exchanges": [{"name": "events", "vhost": "/", "type": "fanout", "durable": false}],
        "bindings": [
            {"source": "missing", "vhost": "/", "destination": "other",
             "destination_type": "queue", "routing_key": "k"},
            {"source": "events", "vhost": "/", "destination": "gone",
             "destination_type": "queue", "routing_key": "k"},
            {"source": "events", "vhost": "/", "destination": "other",
             "destination_type": "queue", "routing_key": "k.#"}
        ]
    });
    let report = import(&broker, &file.to_string()).unwrap();
    assert_eq!(
        (report.queues, report.exchanges, report.bindings),
        (1, 0, 1)
    );
    let warnings = report.warnings.join("\n");
    assert!(
        warnings.contains("queue 'jobs' in vhost '/': exists and differs"),
        "{warnings}"
    );
    assert!(
        warnings.contains("exchange 'events' in vhost '/': exists and differs"),
        "{warnings}"
    );
    assert_eq!(warnings.matches("does not exist").count(), 2, "{warnings}");
    // As RabbitMQ: the existing ones are as they were.
    let jobs = broker.queue_stats("/", "jobs").unwrap();
    let max = jobs.arguments.get("x-max-length").and_then(|v| v.as_i64());
    assert_eq!(max, Some(10));
    assert_eq!(
        broker.exchange_stats("/", "events").unwrap().kind,
        ExchangeKind::Topic
    );
    assert_eq!(
        route(&broker, "/", "events", "k.1", FieldTable::new()),
        ["other"]
    );
    // An import of the same file again changes nothing and fails nothing.
    import(&broker, &file.to_string()).unwrap();
    assert_eq!(broker.list_bindings("/").unwrap().len(), 1);
}

#[test]
fn the_export_reads_back_to_the_same_topology() {
    let broker = populated();
    let ch = broker.connect("defs").unwrap().open_channel().unwrap();
    // Internal and delayed exchanges, and an exclusive queue with a binding: the exclusive
    // queue and its binding are not exported (they die with their connection).
    ch.exchange_declare(
        "hidden",
        ExchangeKind::Direct,
        warrenmq::ExchangeDeclareOptions {
            internal: true,
            durable: true,
            ..Default::default()
        },
        FieldTable::new(),
    )
    .unwrap();
    ch.exchange_bind("hidden", "xt", "h.#", FieldTable::new())
        .unwrap();
    ch.queue_declare(
        "mine",
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::new(),
    )
    .unwrap();
    ch.queue_bind("mine", "xt", "#", FieldTable::new()).unwrap();

    let exported = export(&broker);
    assert_eq!(exported["rabbitmq_version"], "3.10.8");
    assert_eq!(exported["product_name"], "Warren");
    let names = |section: &str| -> Vec<String> {
        exported[section]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names("queues"), ["q1", "q2", "q3"]);
    assert_eq!(names("exchanges"), ["ae", "hidden", "xh", "xt"]);
    assert_eq!(names("vhosts"), ["/", "defs"]);
    assert_eq!(names("policies"), ["p1"]);
    assert!(exported["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|b| b["destination"] != "mine"));
    let q1 = exported["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "q1")
        .unwrap();
    assert_eq!(
        q1,
        &json!({"name": "q1", "vhost": "defs", "durable": true, "auto_delete": false,
                "type": "classic",
                "arguments": {"x-dead-letter-exchange": "ae", "x-max-length": 10,
                              "x-message-ttl": 1000, "x-overflow": "reject-publish"}})
    );
    let e2e = exported["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["destination"] == "xh")
        .unwrap();
    assert_eq!(
        e2e,
        &json!({"source": "xt", "vhost": "defs", "destination": "xh",
                "destination_type": "exchange", "routing_key": "b.*", "arguments": {"x": 1}})
    );

    let copy = Broker::in_memory();
    let report = import(&copy, &broker.export_definitions()).unwrap();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let mut again = export(&copy);
    let mut first = exported.clone();
    for v in [&mut again, &mut first] {
        v["bindings"]
            .as_array_mut()
            .unwrap()
            .retain(|b| b["destination"] != "mine");
    }
    assert_eq!(again, first);
    assert!(copy.exchange_stats("defs", "hidden").unwrap().internal);
    assert_eq!(route(&copy, "defs", "xt", "a.1", FieldTable::new()), ["q1"]);
}

#[test]
fn an_empty_broker_exports_rabbitmqs_sections() {
    let exported = export(&Broker::in_memory());
    for section in [
        "users",
        "vhosts",
        "permissions",
        "topic_permissions",
        "parameters",
        "global_parameters",
        "policies",
        "queues",
        "exchanges",
        "bindings",
    ] {
        assert!(exported[section].is_array(), "{section} in {exported}");
    }
    assert_eq!(exported["vhosts"][0]["name"], "/");
}

#[cfg(feature = "persistence")]
#[test]
fn the_builder_imports_a_file_after_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("definitions.json");
    std::fs::write(&file, RABBITMQ_EXPORT).unwrap();
    let data = dir.path().join("warren.redb");
    {
        let broker = Broker::builder()
            .data_path(&data)
            .definitions(&file)
            .build()
            .unwrap();
        let ch = broker.connect("defs").unwrap().open_channel().unwrap();
        ch.confirm_select().unwrap();
        ch.basic_publish("xt", "a.1", Message::new("kept").persistent())
            .unwrap();
        assert!(ch.wait_for_confirms().unwrap());
        broker.close().unwrap();
    }
    // Durable entities were stored; importing again at the next start keeps the message.
    let broker = Broker::builder()
        .data_path(&data)
        .definitions(&file)
        .build()
        .unwrap();
    assert_eq!(broker.queue_stats("defs", "q1").unwrap().messages_ready, 1);
    assert_eq!(broker.list_policies("defs").unwrap().len(), 1);
    broker.close().unwrap();
    drop(broker);
    let recovered = Broker::open(&data).unwrap();
    assert!(recovered.exchange_stats("defs", "xt").unwrap().durable);
    // The non-durable ones were not stored.
    assert!(recovered.queue_stats("defs", "q3").is_err());
}

#[test]
fn the_builder_refuses_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let err = Broker::builder().definitions(&missing).build().unwrap_err();
    assert!(err.to_string().contains("missing.json"), "{err}");
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"queues": [{"name": "q", "vhost": "/", "arguments": {"x-max-length": "many"}}]}"#,
    )
    .unwrap();
    let err = Broker::builder().definitions(&bad).build().unwrap_err();
    assert!(err.to_string().contains("queue 'q' in vhost '/'"), "{err}");
}

#[cfg(feature = "persistence")]
#[test]
fn a_store_write_failure_imports_nothing_in_memory_or_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("warren.redb");
    let broker = Broker::open(&data).unwrap();
    // What the file would replace: a policy of the same name, and guest (another hash).
    broker.add_vhost("defs").unwrap();
    let mine = warrenmq::Policy::new("p1", "^mine$", FieldTable::new().with("max-length", 1));
    broker.set_policy("defs", mine).unwrap();
    let before = export(&broker);

    broker.fail_store_writes(true).unwrap();
    let err = import(&broker, RABBITMQ_EXPORT).unwrap_err();
    assert_eq!(code(&err), 541, "{err}");
    assert!(matches!(err, Error::Storage(_)), "{err:?}");
    assert_eq!(export(&broker), before, "undone in memory");
    assert!(broker.exchange_stats("defs", "xt").is_err());
    broker.fail_store_writes(false).unwrap();
    broker.close().unwrap();
    drop(broker);

    // Nothing of it reached the disk.
    let broker = Broker::open(&data).unwrap();
    assert_eq!(export(&broker), before, "nothing on disk");
    // Once the disk takes writes, the same file imports whole and is stored.
    import(&broker, RABBITMQ_EXPORT).unwrap();
    broker.close().unwrap();
    drop(broker);
    let broker = Broker::open(&data).unwrap();
    assert!(broker.exchange_stats("defs", "xt").unwrap().durable);
    assert!(broker.queue_stats("defs", "q1").unwrap().durable);
    let policies = broker.list_policies("defs").unwrap();
    assert_eq!(policies.len(), 1);
    assert_eq!(policies[0].pattern, "^q");
    assert_eq!(
        route(&broker, "defs", "xt", "a.b", FieldTable::new()),
        ["q1"]
    );
}
