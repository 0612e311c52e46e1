//! Issue 15 parts 4 and 5: the management HTTP API and `/metrics` of a Warren broker,
//! checked with the tools that use them and against the local RabbitMQ's own API.
//!
//! - `rabbitmqadmin` (the one RabbitMQ ships; found on `PATH`, in the management plugin's
//!   directory, or at `WARREN_RABBITMQADMIN`) lists, declares, publishes and gets against
//!   Warren's API.
//! - `/metrics` is parsed by a Prometheus text-format parser (`prometheus-parse`) and its
//!   values checked after known traffic.
//! - The JSON of queues, exchanges, bindings, vhosts and the overview, and the status codes
//!   and bodies of errors, are compared with what the local RabbitMQ's management plugin
//!   answers for the same requests, in a vhost of the same fresh name on both.
//!
//! Without python3, `rabbitmqadmin` or RabbitMQ's management plugin the tests that need
//! them are reported as ignored with the reason; under `CI=true` they run and fail.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::{Command, ExitCode};

use base64::Engine as _;
use std::convert::Infallible;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Bytes;
use hyper::body::Frame;
use serde_json::{json, Value};
use warren_interop::{trial, Need};
use warrenmq::{
    Broker, ConsumeOptions, FieldTable, ManagementOptions, ManagementServer, Message,
    QueueDeclareOptions, WireServer,
};

fn main() -> ExitCode {
    warren_interop::run(vec![
        trial("smoke", &[], smoke),
        trial(
            "metrics_parse_as_prometheus_text",
            &[],
            metrics_parse_as_prometheus_text,
        ),
        trial("logins_are_checked", &[], logins_are_checked),
        trial(
            "request_bodies_are_limited",
            &[],
            request_bodies_are_limited,
        ),
        trial(
            "publish_get_and_bindings_over_http",
            &[],
            publish_get_and_bindings_over_http,
        ),
        trial(
            "definitions_and_policies_over_http",
            &[],
            definitions_and_policies_over_http,
        ),
        trial(
            "rabbitmqadmin_exports_imports_and_declares_policies",
            &[Need::Rabbitmqadmin],
            rabbitmqadmin_exports_imports_and_declares_policies,
        ),
        trial(
            "rabbitmqadmin_lists_declares_publishes_and_gets",
            &[Need::Rabbitmqadmin],
            rabbitmqadmin_lists_declares_publishes_and_gets,
        ),
        trial(
            "rabbitmqadmin_declares_and_deletes_users_permissions_and_vhosts",
            &[Need::Rabbitmqadmin],
            rabbitmqadmin_declares_and_deletes_users_permissions_and_vhosts,
        ),
        trial(
            "users_and_permissions_match_rabbitmq",
            &[Need::RabbitMqManagement],
            users_and_permissions_match_rabbitmq,
        ),
        trial(
            "json_shapes_match_rabbitmq",
            &[Need::RabbitMqManagement],
            json_shapes_match_rabbitmq,
        ),
        trial(
            "errors_match_rabbitmq",
            &[Need::RabbitMqManagement],
            errors_match_rabbitmq,
        ),
        trial(
            "connections_channels_and_consumers_match_rabbitmq",
            &[Need::RabbitMqManagement],
            connections_channels_and_consumers_match_rabbitmq,
        ),
        trial(
            "deleting_a_connection_closes_it_as_rabbitmq_does",
            &[Need::RabbitMqManagement],
            deleting_a_connection_closes_it_as_rabbitmq_does,
        ),
        trial(
            "visibility_matches_rabbitmq",
            &[Need::RabbitMqManagement],
            visibility_matches_rabbitmq,
        ),
        trial(
            "rabbitmqadmin_lists_connections_channels_and_consumers",
            &[Need::Rabbitmqadmin],
            rabbitmqadmin_lists_connections_channels_and_consumers,
        ),
    ])
}

/// A broker with its AMQP listener and management API on free ports.
struct Served {
    broker: Broker,
    _wire: WireServer,
    management: ManagementServer,
}

fn served() -> Served {
    let broker = Broker::in_memory();
    let wire = broker.serve("127.0.0.1:0").expect("binds");
    let management = wire.serve_management("127.0.0.1:0").expect("binds");
    Served {
        broker,
        _wire: wire,
        management,
    }
}

/// An HTTP response: status and body.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: hyper::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request; `auth` is `user:password` for basic auth.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<&Value>,
) -> Reply {
    let body = body.map(|b| b.to_string().into_bytes());
    request_raw(addr, method, path, auth, body, false)
}

/// Sends one request with a JSON body given as bytes, its length declared, or `chunked`
/// (64 KiB chunks, no length).
fn request_raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<Vec<u8>>,
    chunked: bool,
) -> Reply {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connects");
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .expect("handshake");
        tokio::spawn(conn);
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", addr.to_string());
        if let Some(auth) = auth {
            let encoded = base64::engine::general_purpose::STANDARD.encode(auth);
            builder = builder.header("authorization", format!("Basic {encoded}"));
        }
        let body: BoxBody<Bytes, Infallible> = match body {
            Some(bytes) => {
                builder = builder.header("content-type", "application/json");
                if chunked {
                    let chunks: Vec<Result<Frame<Bytes>, Infallible>> = bytes
                        .chunks(64 * 1024)
                        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
                        .collect();
                    StreamBody::new(futures_lite::stream::iter(chunks)).boxed()
                } else {
                    Full::new(Bytes::from(bytes)).boxed()
                }
            }
            None => Full::new(Bytes::new()).boxed(),
        };
        let response = sender
            .send_request(builder.body(body).expect("a request"))
            .await
            .expect("a response");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes()
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    })
}

const GUEST: Option<&str> = Some("guest:guest");

fn get(addr: SocketAddr, path: &str) -> Value {
    let reply = request(addr, "GET", path, GUEST, None);
    assert_eq!(reply.status, 200, "GET {path}: {}", reply.text());
    reply.json()
}

fn smoke() {
    let s = served();
    let overview = get(s.management.local_addr(), "/api/overview");
    assert_eq!(overview["rabbitmq_version"], "3.10.8");
    assert_eq!(overview["object_totals"]["queues"], 0);
}

fn metrics_parse_as_prometheus_text() {
    let s = served();
    let ch = s
        .broker
        .connect("/")
        .expect("vhost")
        .open_channel()
        .expect("channel");
    ch.queue_declare("metered", QueueDeclareOptions::default(), FieldTable::new())
        .expect("declare");
    for i in 0..5 {
        ch.basic_publish("", "metered", Message::new(format!("m{i}")))
            .expect("publish");
    }
    let consumer = ch
        .basic_consume("metered", ConsumeOptions::default())
        .expect("consume");
    let first = consumer.recv().expect("a delivery");
    first.ack().expect("ack");
    let _held = consumer.recv().expect("a second delivery");
    // The three others wait in the consumer's inbox: delivered, unacknowledged.

    let addr = s.management.local_addr();
    let reply = request(addr, "GET", "/metrics", None, None);
    assert_eq!(reply.status, 200);
    let content_type = reply.headers["content-type"].to_str().expect("ascii");
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let lines = reply
        .text()
        .lines()
        .map(|l| Ok(l.to_owned()))
        .collect::<Vec<_>>();
    let scrape =
        prometheus_parse::Scrape::parse(lines.into_iter()).expect("parses as Prometheus text");
    let value = |name: &str| -> f64 {
        let sample = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get("queue").is_none())
            .unwrap_or_else(|| panic!("no {name} in the scrape"));
        match sample.value {
            prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{name}: {other:?}"),
        }
    };
    assert_eq!(value("rabbitmq_queue_messages_ready"), 0.0);
    assert_eq!(value("rabbitmq_queue_messages_unacked"), 4.0);
    assert_eq!(value("rabbitmq_queue_messages"), 4.0);
    assert_eq!(value("rabbitmq_queue_messages_published_total"), 5.0);
    assert_eq!(value("rabbitmq_global_messages_received_total"), 5.0);
    assert_eq!(value("rabbitmq_global_messages_delivered_total"), 5.0);
    assert_eq!(value("rabbitmq_global_messages_acknowledged_total"), 1.0);
    assert_eq!(value("rabbitmq_consumers"), 1.0);
    assert_eq!(value("rabbitmq_queues"), 1.0);
    assert_eq!(value("rabbitmq_connections"), 0.0);
    assert!(value("rabbitmq_process_resident_memory_bytes") > 1e6);
    assert_eq!(value("rabbitmq_alarms_memory_used_watermark"), 0.0);
    let stats = s.broker.stats();
    let watermark = stats.memory_high_watermark.expect("a default watermark") as f64;
    assert_eq!(value("rabbitmq_resident_memory_limit_bytes"), watermark);
    assert_eq!(
        value("rabbitmq_disk_space_available_limit_bytes"),
        stats.disk_free_limit as f64
    );
    assert!(
        scrape.docs.contains_key("rabbitmq_queue_messages_ready"),
        "HELP lines parse"
    );

    // Per object: one sample per queue, labelled with its vhost and name.
    let reply = request(addr, "GET", "/metrics/per-object", None, None);
    let lines = reply
        .text()
        .lines()
        .map(|l| Ok(l.to_owned()))
        .collect::<Vec<_>>();
    let scrape = prometheus_parse::Scrape::parse(lines.into_iter()).expect("parses");
    let ready = scrape
        .samples
        .iter()
        .find(|s| s.metric == "rabbitmq_queue_messages_unacked")
        .expect("a per-queue sample");
    assert_eq!(ready.labels.get("queue"), Some("metered"));
    assert_eq!(ready.labels.get("vhost"), Some("/"));
}

fn logins_are_checked() {
    let s = served();
    let addr = s.management.local_addr();
    let none = request(addr, "GET", "/api/overview", None, None);
    assert_eq!(none.status, 401);
    assert_eq!(
        none.headers["www-authenticate"],
        "Basic realm=\"RabbitMQ Management\""
    );
    let wrong = request(addr, "GET", "/api/queues", Some("guest:nope"), None);
    assert_eq!(wrong.status, 401);
    assert_eq!(
        wrong.json(),
        json!({"error": "not_authorized", "reason": "Login failed"})
    );
    assert_eq!(
        get(addr, "/api/whoami"),
        json!({"name": "guest", "tags": ["administrator"]})
    );
    let page = request(addr, "GET", "/", GUEST, None);
    assert_eq!(page.status, 200);
    assert!(page.text().contains("<h2>vhost /</h2>"), "{}", page.text());
}

fn publish_get_and_bindings_over_http() {
    let s = served();
    let addr = s.management.local_addr();
    let put = |path: &str, body: Value| request(addr, "PUT", path, GUEST, Some(&body)).status;
    assert_eq!(put("/api/vhosts/shop", json!({})), 201);
    assert_eq!(put("/api/vhosts/shop", json!({})), 204);
    assert_eq!(
        put(
            "/api/exchanges/shop/orders",
            json!({"type": "topic", "durable": "true"})
        ),
        201
    );
    assert_eq!(
        put(
            "/api/queues/shop/eu",
            json!({"durable": true, "arguments": {"x-max-length": 10}})
        ),
        201
    );
    assert_eq!(
        put(
            "/api/queues/shop/eu",
            json!({"durable": true, "arguments": {"x-max-length": 10}})
        ),
        204
    );
    let bind = request(
        addr,
        "POST",
        "/api/bindings/shop/e/orders/q/eu",
        GUEST,
        Some(&json!({"routing_key": "eu.#"})),
    );
    assert_eq!(bind.status, 201);
    assert_eq!(bind.headers["location"], "eu.%23");

    let publish = |key: &str, payload: &str| {
        let body = json!({"routing_key": key, "payload": payload, "payload_encoding": "string", "properties": {"delivery_mode": 2, "headers": {"n": 1}}});
        request(
            addr,
            "POST",
            "/api/exchanges/shop/orders/publish",
            GUEST,
            Some(&body),
        )
        .json()
    };
    assert_eq!(publish("eu.fr", "bonjour"), json!({"routed": true}));
    assert_eq!(publish("us.ny", "hello"), json!({"routed": false}));
    assert_eq!(
        s.broker
            .queue_stats("shop", "eu")
            .expect("stats")
            .messages_ready,
        1
    );

    let queue = get(addr, "/api/queues/shop/eu");
    assert_eq!(queue["messages"], 1);
    assert_eq!(queue["arguments"], json!({"x-max-length": 10}));
    assert_eq!(queue["message_stats"]["publish"], 1);

    // ack_requeue_true leaves the message in the queue, marked redelivered.
    let get_body = json!({"count": "5", "ackmode": "ack_requeue_true", "encoding": "auto"});
    let got = request(
        addr,
        "POST",
        "/api/queues/shop/eu/get",
        GUEST,
        Some(&get_body),
    )
    .json();
    assert_eq!(got.as_array().map(Vec::len), Some(1));
    assert_eq!(got[0]["payload"], "bonjour");
    assert_eq!(got[0]["routing_key"], "eu.fr");
    assert_eq!(
        got[0]["properties"],
        json!({"delivery_mode": 2, "headers": {"n": 1}})
    );
    let got = request(
        addr,
        "POST",
        "/api/queues/shop/eu/get",
        GUEST,
        Some(&json!({"count": 1, "ackmode": "ack_requeue_false", "encoding": "base64"})),
    )
    .json();
    assert_eq!(got[0]["redelivered"], true);
    assert_eq!(got[0]["payload"], "Ym9uam91cg==");
    assert_eq!(got[0]["payload_encoding"], "base64");
    assert_eq!(
        s.broker
            .queue_stats("shop", "eu")
            .expect("stats")
            .messages(),
        0
    );

    let bindings = get(addr, "/api/bindings/shop/e/orders/q/eu");
    assert_eq!(bindings[0]["routing_key"], "eu.#");
    let all = get(addr, "/api/queues/shop/eu/bindings");
    assert_eq!(
        all.as_array().map(Vec::len),
        Some(2),
        "the default exchange's and ours: {all}"
    );
    assert_eq!(
        request(
            addr,
            "DELETE",
            "/api/bindings/shop/e/orders/q/eu/eu.%2523",
            GUEST,
            None
        )
        .status,
        204
    );
    assert_eq!(
        request(
            addr,
            "DELETE",
            "/api/bindings/shop/e/orders/q/eu/eu.%2523",
            GUEST,
            None
        )
        .status,
        404
    );
    assert!(s.broker.list_bindings("shop").expect("vhost").is_empty());
    assert_eq!(
        request(addr, "DELETE", "/api/queues/shop/eu", GUEST, None).status,
        204
    );
    assert_eq!(
        request(addr, "DELETE", "/api/exchanges/shop/orders", GUEST, None).status,
        204
    );
    assert!(s.broker.queue_stats("shop", "eu").is_err());
    assert_eq!(
        get(addr, "/api/aliveness-test/shop"),
        json!({"status": "ok"})
    );
}

/// The queues a message published to `exchange` with `key` would reach.
fn route(broker: &Broker, vhost: &str, exchange: &str, key: &str) -> Vec<String> {
    let ch = broker
        .connect(vhost)
        .expect("vhost")
        .open_channel()
        .expect("channel");
    ch.route_preview(exchange, key, &FieldTable::new())
        .expect("route")
        .queues
}

fn definitions_and_policies_over_http() {
    let s = served();
    let addr = s.management.local_addr();
    let send = |method: &str, path: &str, body: Option<Value>| {
        request(addr, method, path, GUEST, body.as_ref())
    };
    // Policies: RabbitMQ's shapes and status codes.
    let policy = json!({"pattern": "^jobs", "definition": {"max-length": 5}, "priority": 2,
                        "apply-to": "queues"});
    assert_eq!(
        send("PUT", "/api/policies/%2F/cap", Some(policy.clone())).status,
        201
    );
    assert_eq!(
        send("PUT", "/api/policies/%2F/cap", Some(policy)).status,
        204
    );
    let expected = json!({"vhost": "/", "name": "cap", "pattern": "^jobs", "apply-to": "queues",
                          "definition": {"max-length": 5}, "priority": 2});
    assert_eq!(get(addr, "/api/policies"), json!([expected.clone()]));
    assert_eq!(get(addr, "/api/policies/%2F"), json!([expected.clone()]));
    assert_eq!(get(addr, "/api/policies/%2F/cap"), expected);
    let bad = send(
        "PUT",
        "/api/policies/%2F/bad",
        Some(json!({"pattern": ".*", "definition": {"max-length": -1}})),
    );
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(
        bad.json()["reason"]
            .as_str()
            .is_some_and(|r| r.contains("-1 is not a valid maximum length")),
        "{}",
        bad.text()
    );
    let missing = send(
        "PUT",
        "/api/policies/%2F/bad",
        Some(json!({"definition": {}})),
    );
    assert_eq!(missing.status, 400, "{}", missing.text());
    assert_eq!(send("GET", "/api/policies/%2F/bad", None).status, 404);
    assert_eq!(send("GET", "/api/policies/nowhere", None).status, 404);
    let ch = s
        .broker
        .connect("/")
        .expect("vhost")
        .open_channel()
        .expect("channel");
    ch.queue_declare("jobs.a", QueueDeclareOptions::durable(), FieldTable::new())
        .expect("declare");
    ch.exchange_declare(
        "work",
        warrenmq::ExchangeKind::Topic,
        warrenmq::ExchangeDeclareOptions::durable(),
        FieldTable::new(),
    )
    .expect("exchange");
    ch.queue_bind("jobs.a", "work", "a.#", FieldTable::new())
        .expect("bind");
    let stats = s.broker.queue_stats("/", "jobs.a").expect("stats");
    assert_eq!(stats.policy.as_deref(), Some("cap"));

    // Definitions: the whole broker, one vhost (without vhost keys), imported elsewhere.
    let all = get(addr, "/api/definitions");
    assert_eq!(all["rabbitmq_version"], "3.10.8");
    assert!(all["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .any(|q| q["name"] == "jobs.a" && q["vhost"] == "/"));
    let one = get(addr, "/api/definitions/%2F");
    assert!(one.get("vhosts").is_none(), "{one}");
    let queue = &one["queues"][0];
    assert_eq!(queue["name"], "jobs.a");
    assert!(queue.get("vhost").is_none(), "{queue}");
    assert_eq!(send("GET", "/api/definitions/nowhere", None).status, 404);
    // Definitions carry password hashes: administrators only; policies: policymakers.
    s.broker
        .add_user("watcher", "pw", &["monitoring"])
        .expect("a user");
    let as_watcher = |path: &str| request(addr, "GET", path, Some("watcher:pw"), None).status;
    assert_eq!(as_watcher("/api/definitions"), 401);
    // Any management user lists the policies of the vhosts it has permissions in (none).
    assert_eq!(as_watcher("/api/policies"), 200);
    assert_eq!(as_watcher("/api/overview"), 200);

    let other = served();
    let other_addr = other.management.local_addr();
    let post = |path: &str, body: &Value| request(other_addr, "POST", path, GUEST, Some(body));
    assert_eq!(post("/api/definitions", &all).status, 204);
    assert_eq!(
        other
            .broker
            .queue_stats("/", "jobs.a")
            .expect("imported")
            .policy
            .as_deref(),
        Some("cap")
    );
    assert_eq!(
        request(other_addr, "PUT", "/api/vhosts/copy", GUEST, None).status,
        201
    );
    assert_eq!(post("/api/definitions/copy", &one).status, 204);
    assert_eq!(route(&other.broker, "copy", "work", "a.b"), ["jobs.a"]);
    // A bad file: 400 naming the entry, and nothing imported.
    let bad = json!({"queues": [
        {"name": "fine", "vhost": "/", "durable": true, "arguments": {}},
        {"name": "broken", "vhost": "/", "durable": true, "arguments": {"x-max-length": "x"}}
    ]});
    let refused = post("/api/definitions", &bad);
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(
        refused.text().contains("queue 'broken' in vhost '/'"),
        "{}",
        refused.text()
    );
    assert!(other.broker.queue_stats("/", "fine").is_err());

    assert_eq!(send("DELETE", "/api/policies/%2F/cap", None).status, 204);
    assert_eq!(send("DELETE", "/api/policies/%2F/cap", None).status, 404);
    assert_eq!(get(addr, "/api/policies"), json!([]));
}

fn rabbitmqadmin_exports_imports_and_declares_policies() {
    let s = served();
    let port = s.management.local_addr().port();
    rabbitmqadmin(
        port,
        &[
            "declare",
            "policy",
            "name=short",
            "pattern=^tmp\\.",
            r#"definition={"message-ttl": 60000}"#,
            "priority=3",
            "apply-to=queues",
        ],
    );
    let listed = rabbitmqadmin(port, &["-f", "tsv", "list", "policies", "name", "pattern"]);
    assert!(listed.lines().any(|l| l == "short\t^tmp\\."), "{listed}");
    let policies = s.broker.list_policies("/").expect("vhost");
    assert_eq!(policies.len(), 1);
    assert_eq!(policies[0].priority, 3);
    assert_eq!(policies[0].pattern, "^tmp\\.");
    rabbitmqadmin(port, &["declare", "queue", "name=tmp.x", "durable=true"]);
    rabbitmqadmin(port, &["declare", "exchange", "name=in", "type=direct"]);
    rabbitmqadmin(
        port,
        &[
            "declare",
            "binding",
            "source=in",
            "destination=tmp.x",
            "routing_key=k",
        ],
    );
    let dir = std::env::temp_dir().join(format!("warren-admin-defs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory");
    let file = dir.join("definitions.json");
    let path = file.to_str().expect("UTF-8");
    rabbitmqadmin(port, &["export", path]);

    let other = served();
    let other_port = other.management.local_addr().port();
    rabbitmqadmin(other_port, &["import", path]);
    let _ = std::fs::remove_dir_all(&dir);
    let stats = other.broker.queue_stats("/", "tmp.x").expect("imported");
    assert!(stats.durable);
    assert_eq!(stats.policy.as_deref(), Some("short"));
    assert_eq!(route(&other.broker, "/", "in", "k"), ["tmp.x"]);
    rabbitmqadmin(other_port, &["delete", "policy", "name=short"]);
    assert!(other.broker.list_policies("/").expect("vhost").is_empty());
}

/// Runs the `rabbitmqadmin` found by [`Need::Rabbitmqadmin`] against `port` as guest.
fn rabbitmqadmin(port: u16, args: &[&str]) -> String {
    rabbitmqadmin_as(port, ("guest", "guest"), args)
}

/// Runs `rabbitmqadmin` against `port` as `user` / `password`.
fn rabbitmqadmin_as(port: u16, (user, password): (&str, &str), args: &[&str]) -> String {
    let admin = warren_interop::rabbitmqadmin().expect("found");
    let out = Command::new("python3")
        .arg(admin)
        .args([
            "-H",
            "127.0.0.1",
            "-P",
            &port.to_string(),
            "-u",
            user,
            "-p",
            password,
        ])
        .args(args)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "rabbitmqadmin {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn rabbitmqadmin_lists_declares_publishes_and_gets() {
    let s = served();
    let port = s.management.local_addr().port();
    rabbitmqadmin(port, &["declare", "queue", "name=admin-q", "durable=false"]);
    rabbitmqadmin(
        port,
        &["declare", "exchange", "name=admin-x", "type=fanout"],
    );
    rabbitmqadmin(
        port,
        &[
            "declare",
            "binding",
            "source=admin-x",
            "destination=admin-q",
        ],
    );
    let published = rabbitmqadmin(
        port,
        &[
            "publish",
            "exchange=admin-x",
            "routing_key=any",
            "payload=from rabbitmqadmin",
        ],
    );
    assert!(published.contains("Message published"), "{published}");
    assert!(!published.contains("NOT routed"), "{published}");
    let listed = rabbitmqadmin(port, &["list", "queues"]);
    let row = listed
        .lines()
        .find(|l| l.contains("admin-q"))
        .unwrap_or_else(|| panic!("no admin-q in {listed}"));
    assert!(
        row.split('|').any(|cell| cell.trim() == "1"),
        "one message: {listed}"
    );
    let got = rabbitmqadmin(port, &["get", "queue=admin-q", "ackmode=ack_requeue_false"]);
    assert!(got.contains("from rabbitmqadmin"), "{got}");
    assert_eq!(
        s.broker
            .queue_stats("/", "admin-q")
            .expect("stats")
            .messages(),
        0
    );
    let bindings = rabbitmqadmin(
        port,
        &["-f", "tsv", "list", "bindings", "source", "destination"],
    );
    assert!(
        bindings.lines().any(|l| l == "admin-x\tadmin-q"),
        "{bindings}"
    );
    let overview = rabbitmqadmin(port, &["show", "overview"]);
    assert!(overview.contains("3.10.8"), "{overview}");
    rabbitmqadmin(
        port,
        &[
            "delete",
            "binding",
            "source=admin-x",
            "destination_type=queue",
            "destination=admin-q",
        ],
    );
    assert!(s.broker.list_bindings("/").expect("vhost").is_empty());
    rabbitmqadmin(port, &["delete", "queue", "name=admin-q"]);
    rabbitmqadmin(port, &["delete", "exchange", "name=admin-x"]);
    assert!(s.broker.queue_stats("/", "admin-q").is_err());
    for listing in ["exchanges", "vhosts", "users", "permissions", "nodes"] {
        rabbitmqadmin(port, &["list", listing]);
    }
}

fn rabbitmqadmin_declares_and_deletes_users_permissions_and_vhosts() {
    let s = served();
    let port = s.management.local_addr().port();
    rabbitmqadmin(port, &["declare", "vhost", "name=tenant"]);
    assert!(s.broker.vhosts().contains(&"tenant".to_owned()));
    rabbitmqadmin(
        port,
        &[
            "declare",
            "user",
            "name=ops",
            "password=s3cret",
            "tags=administrator,monitoring",
        ],
    );
    let ops = s.broker.user("ops").expect("declared");
    assert_eq!(ops.tags, ["administrator", "monitoring"]);
    assert!(s.broker.authenticate("ops", "s3cret").is_ok());
    assert!(s.broker.authenticate("ops", "guest").is_err());
    rabbitmqadmin(
        port,
        &[
            "declare",
            "permission",
            "vhost=tenant",
            "user=ops",
            "configure=^ops\\.",
            "write=.*",
            "read=.*",
        ],
    );
    assert_eq!(
        s.broker.user_permissions("ops", "tenant"),
        Some(warrenmq::Permissions::new("^ops\\.", ".*", ".*"))
    );
    // The new administrator works the API with its own password.
    let users = rabbitmqadmin_as(
        port,
        ("ops", "s3cret"),
        &["-f", "tsv", "list", "users", "name", "tags"],
    );
    // rabbitmqadmin prints a list of tags space-separated (as it does for RabbitMQ's).
    assert!(
        users.lines().any(|l| l == "ops\tadministrator monitoring"),
        "{users}"
    );
    let permissions = rabbitmqadmin(
        port,
        &[
            "-f",
            "tsv",
            "list",
            "permissions",
            "vhost",
            "user",
            "configure",
        ],
    );
    assert!(
        permissions.lines().any(|l| l == "tenant\tops\t^ops\\."),
        "{permissions}"
    );
    // Its connection is checked against those permissions.
    let ch = s
        .broker
        .connect_as("ops", "tenant")
        .expect("ops may use tenant")
        .open_channel()
        .expect("a channel");
    let refused = ch
        .queue_declare("jobs", QueueDeclareOptions::default(), FieldTable::new())
        .unwrap_err();
    assert_eq!(refused.reply_code().0, 403);
    rabbitmqadmin(port, &["delete", "permission", "vhost=tenant", "user=ops"]);
    assert_eq!(s.broker.user_permissions("ops", "tenant"), None);
    rabbitmqadmin(port, &["delete", "user", "name=ops"]);
    assert!(s.broker.user("ops").is_none());
    rabbitmqadmin(port, &["delete", "vhost", "name=tenant"]);
    assert!(!s.broker.vhosts().contains(&"tenant".to_owned()));
}

/// What a test created on RabbitMQ besides its [`Twin`] vhost (users, more vhosts), by API
/// path: deleted from RabbitMQ on drop.
struct RabbitLeftovers<'a> {
    twin: &'a Twin,
    paths: Vec<String>,
}

impl Drop for RabbitLeftovers<'_> {
    fn drop(&mut self) {
        for path in &self.paths {
            request(self.twin.rabbit, "DELETE", path, GUEST, None);
        }
    }
}

fn users_and_permissions_match_rabbitmq() {
    let s = served();
    let twin = Twin::new(&s, "users");
    let (admin, plain, untagged) = (
        format!("{}-admin", twin.name),
        format!("{}-plain", twin.name),
        format!("{}-untagged", twin.name),
    );
    let _users = RabbitLeftovers {
        twin: &twin,
        paths: [&admin, &plain, &untagged]
            .iter()
            .map(|name| format!("/api/users/{name}"))
            .collect(),
    };
    // RabbitMQ 3.10's own hash of "guest": both brokers take it as it is.
    let hash = "P0j0wOIKdZt4DAvd585hhL5aE8Eftx96ysBa7rDkr8EXazcs";
    let same = |method: &str, path: &str, body: Option<Value>| {
        let (r, w) = twin.both(method, path, body.as_ref());
        assert_eq!(
            r.status,
            w.status,
            "{method} {path}: rabbit {} / warren {}",
            r.text(),
            w.text()
        );
        if !r.body.is_empty() {
            assert_eq!(r.json(), w.json(), "{method} {path}");
        }
        r.status
    };
    let cases: Vec<(&str, String, Option<Value>, u16)> = vec![
        (
            "PUT",
            format!("/api/users/{admin}"),
            Some(json!({"password_hash": hash, "tags": "administrator"})),
            201,
        ),
        (
            "PUT",
            format!("/api/users/{admin}"),
            Some(
                json!({"password_hash": hash, "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["administrator"]}),
            ),
            204,
        ),
        (
            "PUT",
            format!("/api/users/{plain}"),
            Some(json!({"password": "pw", "tags": " management , monitoring"})),
            201,
        ),
        (
            "PUT",
            format!("/api/users/{untagged}"),
            Some(json!({"password": "pw", "tags": ""})),
            201,
        ),
        (
            "PUT",
            format!("/api/users/{plain}"),
            Some(json!({"password": "pw", "password_hash": hash, "tags": ""})),
            400,
        ),
        (
            "PUT",
            format!("/api/users/{plain}"),
            Some(json!({"password": "pw"})),
            400,
        ),
        ("GET", format!("/api/users/{admin}"), None, 200),
        ("GET", format!("/api/users/{}-nobody", twin.name), None, 404),
        (
            "DELETE",
            format!("/api/users/{}-nobody", twin.name),
            None,
            404,
        ),
        (
            "PUT",
            format!("/api/permissions/{{vhost}}/{plain}"),
            Some(json!({"configure": "^a", "write": ".*", "read": ".*"})),
            201,
        ),
        (
            "PUT",
            format!("/api/permissions/{{vhost}}/{plain}"),
            Some(json!({"configure": "^b", "write": ".*", "read": ""})),
            204,
        ),
        (
            "GET",
            format!("/api/permissions/{{vhost}}/{plain}"),
            None,
            200,
        ),
        (
            "PUT",
            format!("/api/permissions/{{vhost}}/{plain}"),
            Some(json!({"configure": ".*", "write": ".*"})),
            400,
        ),
        (
            "PUT",
            format!("/api/permissions/{{vhost}}/{}-nobody", twin.name),
            Some(json!({"configure": ".*", "write": ".*", "read": ".*"})),
            400,
        ),
        (
            "PUT",
            format!("/api/permissions/no-such-vhost-ops/{plain}"),
            Some(json!({"configure": ".*", "write": ".*", "read": ".*"})),
            400,
        ),
        (
            "DELETE",
            format!("/api/permissions/{{vhost}}/{plain}"),
            None,
            204,
        ),
        (
            "DELETE",
            format!("/api/permissions/{{vhost}}/{plain}"),
            None,
            404,
        ),
        (
            "DELETE",
            "/api/vhosts/no-such-vhost-ops".to_owned(),
            None,
            404,
        ),
    ];
    for (method, path, body, status) in cases {
        assert_eq!(same(method, &path, body), status, "{method} {path}");
    }
    // The user made from RabbitMQ's hash logs in with RabbitMQ's password on both.
    let path = format!("/api/users/{plain}");
    for addr in [twin.rabbit, twin.warren] {
        let me = request(
            addr,
            "GET",
            "/api/whoami",
            Some(&format!("{admin}:guest")),
            None,
        );
        assert_eq!(me.status, 200, "{}", me.text());
        // A management user is not an administrator; an untagged one is not a management
        // user at all (RabbitMQ's 401 texts).
        let refused = request(addr, "GET", &path, Some(&format!("{plain}:pw")), None);
        assert_eq!(refused.status, 401);
        assert_eq!(
            refused.json(),
            json!({"error": "not_authorised", "reason": "Not administrator user"})
        );
        let body = json!({"password": "x", "tags": ""});
        let put = request(
            addr,
            "PUT",
            &path,
            Some(&format!("{plain}:pw")),
            Some(&body),
        );
        assert_eq!(put.status, 401, "{}", put.text());
        let untagged_login = request(
            addr,
            "GET",
            "/api/overview",
            Some(&format!("{untagged}:pw")),
            None,
        );
        assert_eq!(untagged_login.status, 401);
        assert_eq!(
            untagged_login.json(),
            json!({"error": "not_authorised", "reason": "Not management user"})
        );
    }
    // A user listed by both: same keys, and the same hash, algorithm and tags.
    let (r, w) = twin.both("GET", &format!("/api/users/{admin}"), None);
    compare(
        "user",
        &r.json(),
        &w.json(),
        &["password_hash", "hashing_algorithm", "limits"],
        &["name", "password_hash", "hashing_algorithm", "tags"],
    );
    let (r, w) = twin.both("GET", &format!("/api/users/{plain}"), None);
    compare(
        "user",
        &r.json(),
        &w.json(),
        &[],
        &["name", "tags", "hashing_algorithm"],
    );
    for (method, path) in [
        ("DELETE", format!("/api/users/{plain}")),
        ("DELETE", format!("/api/users/{untagged}")),
        ("DELETE", format!("/api/users/{admin}")),
    ] {
        assert_eq!(same(method, &path, None), 204, "{method} {path}");
    }
}

/// The local RabbitMQ's management API.
const RABBIT_HTTP: &str = "127.0.0.1:15672";

/// A vhost of the same name on RabbitMQ (through its API) and on Warren.
struct Twin {
    name: String,
    rabbit: SocketAddr,
    warren: SocketAddr,
}

impl Twin {
    fn new(s: &Served, test: &str) -> Twin {
        let name = format!("ops-{test}-{}", std::process::id());
        let twin = Twin {
            rabbit: RABBIT_HTTP.parse().expect("an address"),
            warren: s.management.local_addr(),
            name,
        };
        for addr in [twin.rabbit, twin.warren] {
            let reply = request(
                addr,
                "PUT",
                &format!("/api/vhosts/{}", twin.name),
                GUEST,
                None,
            );
            assert!(matches!(reply.status, 201 | 204), "{reply:?}");
        }
        let permission = json!({"configure": ".*", "write": ".*", "read": ".*"});
        request(
            twin.rabbit,
            "PUT",
            &format!("/api/permissions/{}/guest", twin.name),
            GUEST,
            Some(&permission),
        );
        twin
    }

    /// The same request to both, with `{vhost}` replaced.
    fn both(&self, method: &str, path: &str, body: Option<&Value>) -> (Reply, Reply) {
        let path = path.replace("{vhost}", &self.name);
        (
            request(self.rabbit, method, &path, GUEST, body),
            request(self.warren, method, &path, GUEST, body),
        )
    }
}

impl Drop for Twin {
    fn drop(&mut self) {
        request(
            self.rabbit,
            "DELETE",
            &format!("/api/vhosts/{}", self.name),
            GUEST,
            None,
        );
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// The keys of Warren's object are RabbitMQ's (no invented names), every key in `required`
/// is in both, and the values at `same` are equal.
fn compare(what: &str, rabbit: &Value, warren: &Value, required: &[&str], same: &[&str]) {
    let extra: Vec<String> = keys(warren).difference(&keys(rabbit)).cloned().collect();
    assert!(
        extra.is_empty(),
        "{what}: keys RabbitMQ does not have: {extra:?}\nrabbit: {rabbit}\nwarren: {warren}"
    );
    for key in required {
        assert!(
            rabbit.get(key).is_some(),
            "{what}: RabbitMQ lacks {key}: {rabbit}"
        );
        assert!(
            warren.get(key).is_some(),
            "{what}: Warren lacks {key}: {warren}"
        );
    }
    for key in same {
        assert_eq!(
            rabbit.get(key),
            warren.get(key),
            "{what}: {key} differs\nrabbit: {rabbit}\nwarren: {warren}"
        );
    }
}

fn json_shapes_match_rabbitmq() {
    let s = served();
    let twin = Twin::new(&s, "shapes");
    let ok = |(r, w): (Reply, Reply)| {
        assert!(
            r.status < 300 && w.status < 300,
            "rabbit {r:?}\nwarren {w:?}"
        );
        assert_eq!(
            r.status,
            w.status,
            "rabbit {}\nwarren {}",
            r.text(),
            w.text()
        );
    };
    ok(twin.both("PUT", "/api/exchanges/{vhost}/logs", Some(&json!({"type": "topic", "durable": true, "arguments": {"alternate-exchange": "amq.fanout"}}))));
    ok(twin.both(
        "PUT",
        "/api/queues/{vhost}/kern",
        Some(&json!({"durable": true, "arguments": {"x-max-length": 10, "x-message-ttl": 60000}})),
    ));
    ok(twin.both(
        "POST",
        "/api/bindings/{vhost}/e/logs/q/kern",
        Some(&json!({"routing_key": "kern.#"})),
    ));
    ok(twin.both(
        "POST",
        "/api/bindings/{vhost}/e/logs/q/kern",
        Some(&json!({"routing_key": "", "arguments": {"x-any": 1}})),
    ));
    let publish = json!({"routing_key": "kern.disk", "payload": "full", "payload_encoding": "string", "properties": {"content_type": "text/plain"}});
    let (r, w) = twin.both(
        "POST",
        "/api/exchanges/{vhost}/logs/publish",
        Some(&publish),
    );
    assert_eq!(r.json(), w.json());

    // RabbitMQ updates its counts every few seconds.
    std::thread::sleep(std::time::Duration::from_secs(6));
    let (r, w) = twin.both("GET", "/api/queues/{vhost}/kern", None);
    compare(
        "queue",
        &r.json(),
        &w.json(),
        &[
            "messages",
            "messages_ready",
            "messages_unacknowledged",
            "consumers",
            "message_stats",
            "messages_details",
        ],
        &[
            "name",
            "vhost",
            "durable",
            "auto_delete",
            "exclusive",
            "arguments",
            "type",
            "messages",
            "messages_ready",
            "messages_unacknowledged",
            "consumers",
            "state",
        ],
    );
    let (r, w) = (r.json(), w.json());
    assert_eq!(r["message_stats"]["publish"], w["message_stats"]["publish"]);
    compare(
        "messages_details",
        &r["messages_details"],
        &w["messages_details"],
        &["rate"],
        &[],
    );

    let (r, w) = twin.both("GET", "/api/exchanges/{vhost}/logs", None);
    compare(
        "exchange",
        &r.json(),
        &w.json(),
        &["message_stats"],
        &[
            "name",
            "vhost",
            "type",
            "durable",
            "auto_delete",
            "internal",
            "arguments",
        ],
    );
    let (r, w) = twin.both("GET", "/api/exchanges/{vhost}", None);
    let names = |v: Value| -> Vec<String> {
        let mut n: Vec<String> = v
            .as_array()
            .expect("a list")
            .iter()
            .map(|e| e["name"].as_str().unwrap_or("").to_owned())
            .collect();
        n.sort();
        n
    };
    let (rabbit_names, warren_names) = (names(r.json()), names(w.json()));
    // RabbitMQ also predeclares amq.rabbitmq.trace; Warren has no tracing.
    let expected: Vec<String> = rabbit_names
        .into_iter()
        .filter(|n| n != "amq.rabbitmq.trace")
        .collect();
    assert_eq!(expected, warren_names);

    let (r, w) = twin.both("GET", "/api/bindings/{vhost}", None);
    let (r, w) = (r.json(), w.json());
    assert_eq!(
        r.as_array().map(Vec::len),
        w.as_array().map(Vec::len),
        "rabbit {r}\nwarren {w}"
    );
    for (rb, wb) in r
        .as_array()
        .expect("list")
        .iter()
        .zip(w.as_array().expect("list"))
    {
        let same: &[&str] = if rb["arguments"] == json!({}) {
            &[
                "source",
                "vhost",
                "destination",
                "destination_type",
                "routing_key",
                "arguments",
                "properties_key",
            ]
        } else {
            // With arguments, the properties key's digest is each broker's own.
            &[
                "source",
                "vhost",
                "destination",
                "destination_type",
                "routing_key",
                "arguments",
            ]
        };
        compare("binding", rb, wb, &["properties_key"], same);
    }

    let (r, w) = twin.both("GET", "/api/vhosts/{vhost}", None);
    compare(
        "vhost",
        &r.json(),
        &w.json(),
        &["messages", "message_stats"],
        &["name", "messages", "messages_ready", "tracing"],
    );

    let get_body = json!({"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"});
    let (r, w) = twin.both("POST", "/api/queues/{vhost}/kern/get", Some(&get_body));
    assert_eq!(r.json(), w.json());

    let (r, w) = twin.both("GET", "/api/overview", None);
    let (r, w) = (r.json(), w.json());
    compare(
        "overview",
        &r,
        &w,
        &[
            "object_totals",
            "queue_totals",
            "message_stats",
            "listeners",
            "rabbitmq_version",
            "cluster_name",
            "node",
        ],
        &["management_version", "rates_mode"],
    );
    compare(
        "object_totals",
        &r["object_totals"],
        &w["object_totals"],
        &["queues", "exchanges", "connections", "consumers"],
        &[],
    );
    let (r, w) = twin.both("GET", "/api/nodes", None);
    compare(
        "node",
        &r.json()[0],
        &w.json()[0],
        &[
            "name",
            "mem_used",
            "mem_limit",
            "fd_used",
            "uptime",
            "processors",
        ],
        &[],
    );
    // RabbitMQ's counts lag by up to its 5 s statistics interval: compare the columns.
    let (r, w) = twin.both("GET", "/api/queues/{vhost}?columns=name,messages", None);
    assert_eq!(keys(&r.json()[0]), keys(&w.json()[0]));
    assert_eq!(
        keys(&w.json()[0]),
        ["messages", "name"].map(String::from).into()
    );
    let (r, w) = twin.both("GET", "/api/aliveness-test/{vhost}", None);
    assert_eq!(r.json(), w.json());
}

fn errors_match_rabbitmq() {
    let s = served();
    let twin = Twin::new(&s, "errors");
    twin.both(
        "PUT",
        "/api/queues/{vhost}/q1",
        Some(&json!({"durable": true})),
    );
    let cases: Vec<(&str, &str, Option<Value>)> = vec![
        ("GET", "/api/queues/{vhost}/nope", None),
        ("GET", "/api/exchanges/{vhost}/nope", None),
        ("GET", "/api/queues/no-such-vhost-ops", None),
        (
            "PUT",
            "/api/queues/{vhost}/q1",
            Some(json!({"durable": false})),
        ),
        (
            "PUT",
            "/api/queues/{vhost}/q2",
            Some(json!({"durable": "maybe"})),
        ),
        (
            "PUT",
            "/api/exchanges/{vhost}/amq.foo",
            Some(json!({"type": "direct"})),
        ),
        (
            "PUT",
            "/api/exchanges/no-such-vhost-ops/x",
            Some(json!({"type": "direct"})),
        ),
        ("DELETE", "/api/queues/{vhost}/nope", None),
        ("DELETE", "/api/exchanges/{vhost}/amq.direct", None),
        (
            "POST",
            "/api/bindings/{vhost}/e/nope/q/q1",
            Some(json!({"routing_key": "x"})),
        ),
        (
            "POST",
            "/api/exchanges/{vhost}/amq.default/publish",
            Some(json!({"routing_key": "x", "payload": "a", "payload_encoding": "string"})),
        ),
        (
            "POST",
            "/api/queues/{vhost}/nope/get",
            Some(json!({"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"})),
        ),
    ];
    for (method, path, body) in cases {
        let (r, w) = twin.both(method, path, body.as_ref());
        assert_eq!(
            r.status,
            w.status,
            "{method} {path}: rabbit {} / warren {}",
            r.text(),
            w.text()
        );
        if !r.body.is_empty() {
            assert_eq!(r.json(), w.json(), "{method} {path}");
        }
    }
}

/// A lapin client of `amqp` in `vhost`, as the connection tests use it: channel 1 consumes
/// `work` (tag `ctag-1`, prefetch 10) and holds one delivery unacknowledged; channel 2 is in
/// confirm mode. [`Client::login`] does the same as another user, on a queue of its choice. Keeps its runtime, connection, channels and consumer alive; `errors` gets
/// the connection's error when the server closes it.
struct Client {
    runtime: tokio::runtime::Runtime,
    conn: lapin::Connection,
    _channels: (lapin::Channel, lapin::Channel),
    _consumer: lapin::Consumer,
    errors: std::sync::mpsc::Receiver<String>,
}

impl Client {
    fn new(amqp: SocketAddr, vhost: &str) -> Client {
        Client::login(amqp, "guest:guest", vhost, "work")
    }

    /// A client logged in as `credentials` (`user:password`), consuming `queue`.
    fn login(amqp: SocketAddr, credentials: &str, vhost: &str, queue: &str) -> Client {
        use futures_lite::StreamExt as _;
        use lapin::options::{
            BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
            QueueDeclareOptions,
        };
        use lapin::types::FieldTable as LapinTable;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let (tx, errors) = std::sync::mpsc::channel();
        let (conn, channels, consumer) = runtime.block_on(async {
            let uri = format!("amqp://{credentials}@{amqp}/{vhost}");
            let conn = lapin::Connection::connect(&uri, lapin::ConnectionProperties::default())
                .await
                .expect("lapin connects");
            let mut events = conn.events_listener();
            tokio::spawn(async move {
                while let Some(event) = events.next().await {
                    if let lapin::Event::Error(e) = event {
                        let _ = tx.send(e.to_string());
                    }
                }
            });
            let ch1 = conn.create_channel().await.expect("channel 1");
            ch1.basic_qos(10, BasicQosOptions::default())
                .await
                .expect("qos");
            ch1.queue_declare(
                queue.into(),
                QueueDeclareOptions::default(),
                LapinTable::default(),
            )
            .await
            .expect("queue");
            let mut consumer = ch1
                .basic_consume(
                    queue.into(),
                    "ctag-1".into(),
                    BasicConsumeOptions::default(),
                    LapinTable::default(),
                )
                .await
                .expect("consume");
            let ch2 = conn.create_channel().await.expect("channel 2");
            ch2.confirm_select(ConfirmSelectOptions::default())
                .await
                .expect("confirms");
            ch2.basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                b"held",
                lapin::BasicProperties::default(),
            )
            .await
            .expect("publish")
            .await
            .expect("confirmed");
            // Received, never acknowledged.
            let held = tokio::time::timeout(std::time::Duration::from_secs(10), consumer.next())
                .await
                .expect("a delivery within 10 s");
            assert!(held.is_some_and(|d| d.is_ok()));
            (conn, (ch1, ch2), consumer)
        });
        Client {
            runtime,
            conn,
            _channels: channels,
            _consumer: consumer,
            errors,
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.runtime.block_on(self.conn.close(200, "bye".into()));
    }
}

/// Polls `path` until `ready` holds for the answer (RabbitMQ publishes its connection
/// statistics every few seconds); fails after 30 s.
fn wait_for(addr: SocketAddr, path: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let value = get(addr, path);
        if ready(&value) {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "GET {path} never got ready: {value}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// The one item of a listing whose `key` is `value`.
fn item<'a>(list: &'a Value, key: &str, value: &Value) -> &'a Value {
    list.as_array()
        .and_then(|items| items.iter().find(|i| i.get(key) == Some(value)))
        .unwrap_or_else(|| panic!("no item with {key} = {value} in {list}"))
}

/// Checks that a connection's `name` is RabbitMQ's `peer -> local`.
fn check_connection_name(c: &Value) {
    let expected = format!(
        "{}:{} -> {}:{}",
        c["peer_host"].as_str().expect("peer_host"),
        c["peer_port"],
        c["host"].as_str().expect("host"),
        c["port"]
    );
    assert_eq!(c["name"], json!(expected), "{c}");
}

fn connections_channels_and_consumers_match_rabbitmq() {
    let s = served();
    let twin = Twin::new(&s, "clients");
    let vhost = twin.name.clone();
    let rabbit_amqp: SocketAddr = warren_interop::RABBITMQ.parse().expect("an address");
    let _rabbit_client = Client::new(rabbit_amqp, &vhost);
    let _warren_client = Client::new(s._wire.local_addr(), &vhost);
    // RabbitMQ lists a channel before its connection's stats have reached the management
    // database; its `connection_details` are `[]` until then.
    let ready = |channels: &Value| {
        channels.as_array().is_some_and(|list| {
            list.len() == 2
                && list
                    .iter()
                    .all(|c| c["connection_details"].get("name").is_some())
                && list.iter().any(|c| {
                    c["consumer_count"] == json!(1) && c["messages_unacknowledged"] == json!(1)
                })
        })
    };
    let channels_path = format!("/api/vhosts/{vhost}/channels");
    let r_channels = wait_for(twin.rabbit, &channels_path, ready);
    let w_channels = wait_for(twin.warren, &channels_path, ready);
    let connections_path = format!("/api/vhosts/{vhost}/connections");
    let two_channels = |list: &Value| list.get(0).is_some_and(|c| c["channels"] == json!(2));
    let r_connections = wait_for(twin.rabbit, &connections_path, two_channels);
    let w_connections = wait_for(twin.warren, &connections_path, two_channels);
    assert_eq!(w_connections.as_array().map(Vec::len), Some(1));
    let (r, w) = (&r_connections[0], &w_connections[0]);
    compare(
        "connection",
        r,
        w,
        &[
            "name",
            "user",
            "vhost",
            "channels",
            "peer_host",
            "peer_port",
            "host",
            "port",
            "connected_at",
            "recv_oct",
            "send_oct",
            "node",
        ],
        &[
            "auth_mechanism",
            "channel_max",
            "channels",
            "client_properties",
            "frame_max",
            "host",
            "peer_cert_subject",
            "peer_host",
            "protocol",
            "ssl",
            "ssl_protocol",
            "state",
            "timeout",
            "type",
            "user",
            "vhost",
        ],
    );
    check_connection_name(r);
    check_connection_name(w);
    assert!(
        w["recv_oct"].as_u64() > Some(0) && w["send_oct"].as_u64() > Some(0),
        "{w}"
    );
    let one = get(
        twin.warren,
        &format!(
            "/api/connections/{}",
            encode(w["name"].as_str().expect("a name"))
        ),
    );
    assert_eq!(&one, w);

    for number in [1, 2] {
        let (r, w) = (
            item(&r_channels, "number", &json!(number)),
            item(&w_channels, "number", &json!(number)),
        );
        compare(
            "channel",
            r,
            w,
            &["name", "connection_details", "node"],
            &[
                "acks_uncommitted",
                "confirm",
                "consumer_count",
                "global_prefetch_count",
                "messages_unacknowledged",
                "messages_uncommitted",
                "messages_unconfirmed",
                "number",
                "prefetch_count",
                "state",
                "transactional",
                "user",
                "vhost",
            ],
        );
        compare(
            "connection_details",
            &r["connection_details"],
            &w["connection_details"],
            &["name", "peer_host", "peer_port"],
            &["peer_host"],
        );
        let expected = format!(
            "{} ({number})",
            w_connections[0]["name"].as_str().expect("name")
        );
        assert_eq!(w["name"], json!(expected));
    }
    let all = get(twin.warren, "/api/channels");
    assert_eq!(all.as_array().map(Vec::len), Some(2), "{all}");
    let of_connection = get(
        twin.warren,
        &format!(
            "/api/connections/{}/channels",
            encode(w["name"].as_str().expect("a name"))
        ),
    );
    assert_eq!(of_connection, w_channels);

    let consumers_path = format!("/api/consumers/{vhost}");
    let r_consumers = wait_for(twin.rabbit, &consumers_path, |l| l.get(0).is_some());
    let w_consumers = get(twin.warren, &consumers_path);
    assert_eq!(
        w_consumers.as_array().map(Vec::len),
        Some(1),
        "{w_consumers}"
    );
    let (r, w) = (&r_consumers[0], &w_consumers[0]);
    compare(
        "consumer",
        r,
        w,
        &["channel_details", "queue"],
        &[
            "ack_required",
            "active",
            "activity_status",
            "arguments",
            "consumer_tag",
            "exclusive",
            "prefetch_count",
            "queue",
        ],
    );
    compare(
        "channel_details",
        &r["channel_details"],
        &w["channel_details"],
        &[
            "connection_name",
            "name",
            "number",
            "peer_host",
            "peer_port",
            "user",
        ],
        &["number", "peer_host", "user"],
    );
    assert_eq!(get(twin.warren, "/api/consumers"), w_consumers);
    for path in [
        "/api/vhosts/no-such-vhost/connections",
        "/api/vhosts/no-such-vhost/channels",
        "/api/consumers/no-such-vhost",
        "/api/connections/no-such-connection",
        "/api/channels/no-such-channel",
    ] {
        let (r, w) = (
            request(twin.rabbit, "GET", path, GUEST, None),
            request(twin.warren, "GET", path, GUEST, None),
        );
        assert_eq!((r.status, r.json()), (w.status, w.json()), "GET {path}");
    }
}

/// A path segment with `/`, spaces and `>` percent-encoded.
fn encode(segment: &str) -> String {
    segment
        .replace('%', "%25")
        .replace('/', "%2F")
        .replace(' ', "%20")
        .replace('>', "%3E")
}

fn deleting_a_connection_closes_it_as_rabbitmq_does() {
    let s = served();
    let twin = Twin::new(&s, "kill");
    let vhost = twin.name.clone();
    let rabbit_amqp: SocketAddr = warren_interop::RABBITMQ.parse().expect("an address");
    let mut texts = Vec::new();
    for (amqp, http) in [
        (rabbit_amqp, twin.rabbit),
        (s._wire.local_addr(), twin.warren),
    ] {
        let client = Client::new(amqp, &vhost);
        let path = format!("/api/vhosts/{vhost}/connections");
        let listed = wait_for(http, &path, |l| l.get(0).is_some());
        let name = encode(listed[0]["name"].as_str().expect("a name"));
        let deleted = request(
            http,
            "DELETE",
            &format!("/api/connections/{name}"),
            GUEST,
            None,
        );
        assert_eq!(deleted.status, 204, "{}", deleted.text());
        let text = client
            .errors
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the client is told why");
        texts.push(text);
        wait_for(http, &path, |l| l.as_array().is_some_and(Vec::is_empty));
        let gone = request(
            http,
            "DELETE",
            &format!("/api/connections/{name}"),
            GUEST,
            None,
        );
        assert_eq!(gone.status, 404);
    }
    assert!(texts[1].contains("CONNECTION_FORCED"), "{texts:?}");
    assert!(
        texts[1].contains("Closed via management plugin"),
        "{texts:?}"
    );
    assert_eq!(texts[0], texts[1]);
    assert_eq!(s._wire.connection_count(), 0);
}

fn rabbitmqadmin_lists_connections_channels_and_consumers() {
    let s = served();
    let port = s.management.local_addr().port();
    let _client = Client::new(s._wire.local_addr(), "%2f");
    let connections = rabbitmqadmin(port, &["list", "connections"]);
    let client_port = |text: &str| text.contains(&format!("-> {}", s._wire.local_addr()));
    assert!(client_port(&connections), "{connections}");
    assert!(connections.contains("guest"), "{connections}");
    let channels = rabbitmqadmin(port, &["list", "channels"]);
    assert!(
        channels.contains(" (1)") && channels.contains(" (2)"),
        "{channels}"
    );
    // Its scalar columns: ack_required, active, activity_status, consumer_tag, exclusive,
    // prefetch_count.
    let consumers = rabbitmqadmin(port, &["list", "consumers"]);
    let row = consumers
        .lines()
        .find(|l| l.contains("ctag-1"))
        .unwrap_or_else(|| panic!("no ctag-1 in {consumers}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    assert_eq!(
        cells,
        ["", "True", "True", "up", "ctag-1", "False", "10", ""],
        "{consumers}"
    );
}

/// Whether a listed item belongs to one of `vhosts` (a vhost itself by its name, a consumer
/// by its queue's vhost); items of other vhosts (RabbitMQ's own, other tests') are left out
/// of comparisons.
fn in_vhosts(path: &str, item: &Value, vhosts: &[&str]) -> bool {
    let vhost = if path == "/api/vhosts" {
        &item["name"]
    } else if item.get("vhost").is_some() {
        &item["vhost"]
    } else {
        &item["queue"]["vhost"]
    };
    vhost.as_str().is_some_and(|v| vhosts.contains(&v)) && item["name"] != "amq.rabbitmq.trace"
}

/// What identifies a listed item on either broker: connection and channel names hold
/// ports, which differ, so those are known by user, vhost and number.
fn identity(path: &str, item: &Value) -> String {
    let at = |keys: &[&str]| {
        keys.iter()
            .map(|k| k.split('.').fold(item, |v, part| &v[part]).to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    if path.contains("consumers") {
        at(&[
            "channel_details.user",
            "queue.vhost",
            "queue.name",
            "consumer_tag",
        ])
    } else if path.contains("channels") {
        at(&["user", "vhost", "number"])
    } else if path.contains("connections") {
        at(&["user", "vhost"])
    } else if path.contains("bindings") {
        at(&["vhost", "source", "destination", "routing_key"])
    } else {
        at(&["vhost", "name"])
    }
}

/// What a `management`, `policymaker`, `monitoring` and `administrator` user, and a
/// `management` user without permissions, each see and may touch, compared with RabbitMQ:
/// two vhosts with a queue, an exchange, a binding and a policy each; every tagged user has
/// permissions in the first only; clients of guest (second vhost) and of the `management`
/// and `monitoring` users (first) hold consumers. For each user, the listings give the same
/// objects of those vhosts, the URLs of the second vhost, another user's connection and
/// channel, the node and one policy answer the same status and error, and the overview has
/// the same parts and the same client and queue counts.
fn visibility_matches_rabbitmq() {
    let s = served();
    let twin = Twin::new(&s, "vis");
    let (a, b) = (twin.name.clone(), format!("{}-b", twin.name));
    let user = |tag: &str| format!("{}-{tag}", twin.name);
    let tags = ["management", "policymaker", "monitoring", "administrator"];
    let nobody = user("none");
    let mut leftovers = vec![format!("/api/vhosts/{b}"), format!("/api/users/{nobody}")];
    leftovers.extend(tags.iter().map(|t| format!("/api/users/{}", user(t))));
    let _leftovers = RabbitLeftovers {
        twin: &twin,
        paths: leftovers,
    };
    let ok = |method: &str, path: &str, body: Option<Value>| {
        let (r, w) = twin.both(method, path, body.as_ref());
        assert!(
            r.status < 300 && w.status < 300,
            "{method} {path}: rabbit {r:?}\nwarren {w:?}"
        );
    };
    ok("PUT", &format!("/api/vhosts/{b}"), None);
    let full = json!({"configure": ".*", "write": ".*", "read": ".*"});
    let path = format!("/api/permissions/{b}/guest");
    request(twin.rabbit, "PUT", &path, GUEST, Some(&full));
    for tag in tags {
        let body = json!({"password": "pw", "tags": tag});
        ok("PUT", &format!("/api/users/{}", user(tag)), Some(body));
        let path = format!("/api/permissions/{a}/{}", user(tag));
        ok("PUT", &path, Some(full.clone()));
    }
    let body = json!({"password": "pw", "tags": "management"});
    ok("PUT", &format!("/api/users/{nobody}"), Some(body));
    for v in [&a, &b] {
        ok("PUT", &format!("/api/queues/{v}/q"), Some(json!({})));
        let fanout = json!({"type": "fanout"});
        ok("PUT", &format!("/api/exchanges/{v}/x"), Some(fanout));
        let key = json!({"routing_key": "k"});
        ok("POST", &format!("/api/bindings/{v}/e/x/q/q"), Some(key));
        let policy = json!({"pattern": "^zz", "definition": {"max-length": 5}});
        ok("PUT", &format!("/api/policies/{v}/p"), Some(policy));
    }
    // Guest in the second vhost; the management and monitoring users in the first.
    let rabbit_amqp: SocketAddr = warren_interop::RABBITMQ.parse().expect("an address");
    let logins = [
        ("guest:guest".to_owned(), &b, "work"),
        (format!("{}:pw", user("management")), &a, "work-management"),
        (format!("{}:pw", user("monitoring")), &a, "work-monitoring"),
    ];
    let mut clients = Vec::new();
    for amqp in [rabbit_amqp, s._wire.local_addr()] {
        for (credentials, vhost, queue) in &logins {
            clients.push(Client::login(amqp, credentials, vhost, queue));
        }
    }
    let vhosts = [a.as_str(), b.as_str()];
    let ours = |path: &str, list: &Value| -> BTreeSet<String> {
        (list.as_array().into_iter().flatten())
            .filter(|item| in_vhosts(path, item, &vhosts))
            .map(|item| identity(path, item))
            .collect()
    };
    // RabbitMQ lists clients once their statistics reach its management database.
    let guest_connection = |http: SocketAddr| {
        let all_there = |path: &str, count: usize| {
            wait_for(http, path, |list| {
                ours(path, list).len() == count
                    && (list.as_array().into_iter().flatten())
                        .filter(|item| in_vhosts(path, item, &vhosts))
                        .all(|c| c.get("connection_details") != Some(&json!([])))
            })
        };
        all_there("/api/consumers", 3);
        all_there("/api/channels", 6);
        let connections = all_there("/api/connections", 3);
        let guest = item(&connections, "vhost", &json!(b));
        encode(guest["name"].as_str().expect("a name"))
    };
    let (rabbit_guest, warren_guest) =
        (guest_connection(twin.rabbit), guest_connection(twin.warren));

    let listings = [
        "/api/vhosts".to_owned(),
        "/api/queues".to_owned(),
        "/api/exchanges".to_owned(),
        "/api/bindings".to_owned(),
        "/api/policies".to_owned(),
        "/api/connections".to_owned(),
        "/api/channels".to_owned(),
        "/api/consumers".to_owned(),
        format!("/api/consumers/{a}"),
        format!("/api/consumers/{b}"),
        format!("/api/queues/{a}"),
        format!("/api/exchanges/{a}"),
        format!("/api/bindings/{a}"),
        format!("/api/policies/{a}"),
        format!("/api/vhosts/{a}/connections"),
        format!("/api/vhosts/{a}/channels"),
        format!("/api/queues/{b}"),
        format!("/api/exchanges/{b}"),
        format!("/api/bindings/{b}"),
        format!("/api/policies/{b}"),
        format!("/api/vhosts/{b}/connections"),
        format!("/api/vhosts/{b}/channels"),
        format!("/api/queues/{b}/q/bindings"),
        format!("/api/exchanges/{b}/x/bindings/source"),
        format!("/api/bindings/{b}/e/x/q/q"),
    ];
    let get_body = json!({"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"});
    let publish_body =
        json!({"routing_key": "q", "payload": "p", "payload_encoding": "string", "properties": {}});
    let policy = json!({"pattern": "^yy", "definition": {"max-length": 1}});
    let requests: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("/api/queues/{b}/q"), None),
        ("GET", format!("/api/exchanges/{b}/x"), None),
        ("GET", format!("/api/queues/{b}/missing"), None),
        ("GET", format!("/api/queues/{a}-missing/q"), None),
        ("GET", format!("/api/vhosts/{a}"), None),
        ("GET", "/api/nodes".to_owned(), None),
        ("GET", "/api/users".to_owned(), None),
        ("GET", format!("/api/policies/{a}/p"), None),
        ("GET", format!("/api/policies/{b}/p"), None),
        ("GET", format!("/api/aliveness-test/{b}"), None),
        ("PUT", format!("/api/queues/{b}/new"), Some(json!({}))),
        ("DELETE", format!("/api/queues/{b}/q"), None),
        ("DELETE", format!("/api/queues/{b}/q/contents"), None),
        ("POST", format!("/api/queues/{b}/q/get"), Some(get_body)),
        (
            "POST",
            format!("/api/exchanges/{b}/amq.default/publish"),
            Some(publish_body),
        ),
        ("PUT", format!("/api/policies/{b}/p2"), Some(policy)),
    ];
    let mut differences = Vec::new();
    // How many objects of the two vhosts RabbitMQ listed, by user and path.
    let mut seen = std::collections::HashMap::new();
    let mut differ = |what: String, rabbit: &dyn std::fmt::Debug, warren: &dyn std::fmt::Debug| {
        differences.push(format!("{what}\n  rabbit {rabbit:?}\n  warren {warren:?}"));
    };
    let all_users = tags.iter().map(|t| user(t)).chain([nobody.clone()]);
    for name in all_users {
        let credentials = format!("{name}:pw");
        let auth = Some(credentials.as_str());
        let send = |addr, method, path: &str, body: Option<&Value>| {
            request(addr, method, path, auth, body)
        };
        let both = |method, path: &str, body: Option<&Value>| {
            (
                send(twin.rabbit, method, path, body),
                send(twin.warren, method, path, body),
            )
        };
        let mut compare_replies = |what: String, r: Reply, w: Reply, list: bool| {
            if r.status != w.status {
                differ(what, &(r.status, r.text()), &(w.status, w.text()));
            } else if r.status == 200 && list {
                let path = what.rsplit(' ').next().unwrap_or("");
                let (r, w) = (ours(path, &r.json()), ours(path, &w.json()));
                seen.insert(what.clone(), r.len());
                if r != w {
                    differ(what, &r, &w);
                }
            } else if r.status >= 400 && r.json() != w.json() {
                differ(what, &r.text(), &w.text());
            }
        };
        for path in &listings {
            let (r, w) = both("GET", path, None);
            compare_replies(format!("{name}: GET {path}"), r, w, true);
        }
        for (method, path, body) in &requests {
            let (r, w) = both(method, path, body.as_ref());
            compare_replies(format!("{name}: {method} {path}"), r, w, false);
        }
        // Guest's connection and its first channel, by their names on each broker.
        let mut clients_paths = vec![
            ("GET", "/api/connections/{}"),
            ("GET", "/api/connections/{}/channels"),
            ("GET", "/api/channels/{}%20(1)"),
        ];
        if !name.ends_with("administrator") {
            clients_paths.push(("DELETE", "/api/connections/{}"));
        }
        for (method, path) in clients_paths {
            let r = send(
                twin.rabbit,
                method,
                &path.replace("{}", &rabbit_guest),
                None,
            );
            let w = send(
                twin.warren,
                method,
                &path.replace("{}", &warren_guest),
                None,
            );
            compare_replies(format!("{name}: {method} {path} (guest's)"), r, w, false);
        }
        // The overview: the same parts, and the same counts of the user's clients and
        // queues (the broker-wide counts of RabbitMQ include what other tests left).
        let (r, w) = both("GET", "/api/overview", None);
        let (r, w) = (r.json(), w.json());
        let parts = |o: &Value| {
            let totals = &o["object_totals"];
            let whole = o.get("listeners").is_some();
            let has = ["listeners", "node", "contexts"].map(|k| o.get(k).is_some());
            let mut parts = json!({
                "has": has,
                "counts consumers": totals.get("consumers").is_some(),
                "queue_totals empty": o["queue_totals"].as_object().is_some_and(|t| t.is_empty()),
            });
            if !whole {
                parts["counts"] =
                    json!([totals["connections"], totals["channels"], totals["queues"]]);
            }
            parts
        };
        if parts(&r) != parts(&w) {
            differ(format!("{name}: GET /api/overview"), &parts(&r), &parts(&w));
        }
    }
    drop(clients);
    // The comparisons were of something: RabbitMQ's listings hold what the test made.
    let count = |tag: &str, path: &str| seen.get(&format!("{}: GET {path}", user(tag))).copied();
    assert_eq!(count("management", "/api/connections"), Some(1));
    assert_eq!(count("management", "/api/consumers"), Some(1));
    assert_eq!(count("monitoring", "/api/connections"), Some(3));
    assert_eq!(count("monitoring", "/api/vhosts"), Some(2));
    assert_eq!(count("management", "/api/vhosts"), Some(1));
    // Queues q, work-management and work-monitoring in the first vhost; q, work in the
    // second.
    assert_eq!(count("administrator", "/api/queues"), Some(5));
    assert_eq!(count("policymaker", "/api/policies"), Some(1));
    assert!(
        differences.is_empty(),
        "{} differences:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

/// A definitions file of `limit` bytes (a queue, padded with spaces) is imported; one byte
/// more, with its length declared or chunked, is refused as RabbitMQ refuses it (400
/// `Exceeded HTTP request body size limit`) and nothing of it is imported; a `PUT` over the
/// limit likewise; the API goes on answering.
fn check_body_limit(addr: SocketAddr, limit: usize) {
    let file = |size: usize, queue: &str| {
        let queue = json!({"name": queue, "vhost": "/", "durable": true, "auto_delete": false, "arguments": {}});
        let mut body = json!({ "queues": [queue] }).to_string().into_bytes();
        body.resize(size, b' ');
        body
    };
    let at = request_raw(
        addr,
        "POST",
        "/api/definitions",
        GUEST,
        Some(file(limit, "at-limit")),
        false,
    );
    assert_eq!(at.status, 204, "{limit} bytes: {}", at.text());
    let imported = request(addr, "GET", "/api/queues/%2F/at-limit", GUEST, None);
    assert_eq!(imported.status, 200, "{}", imported.text());
    let too_large =
        json!({"error": "bad_request", "reason": "Exceeded HTTP request body size limit"});
    for chunked in [false, true] {
        let over = request_raw(
            addr,
            "POST",
            "/api/definitions",
            GUEST,
            Some(file(limit + 1, "over-limit")),
            chunked,
        );
        assert_eq!(over.status, 400, "chunked {chunked}: {}", over.text());
        assert_eq!(over.json(), too_large);
    }
    let missing = request(addr, "GET", "/api/queues/%2F/over-limit", GUEST, None);
    assert_eq!(missing.status, 404);
    let mut declare = br#"{"durable": true}"#.to_vec();
    declare.resize(limit + 1, b' ');
    let put = request_raw(
        addr,
        "PUT",
        "/api/queues/%2F/big",
        GUEST,
        Some(declare),
        false,
    );
    assert_eq!((put.status, put.json()), (400, too_large));
    // The API is fine afterwards.
    assert_eq!(
        request(addr, "GET", "/api/overview", GUEST, None).status,
        200
    );
    let after = request(
        addr,
        "PUT",
        "/api/queues/%2F/after",
        GUEST,
        Some(&json!({})),
    );
    assert_eq!(after.status, 201, "{}", after.text());
}

fn request_bodies_are_limited() {
    // A limit set in the options.
    let broker = Broker::in_memory();
    let wire = broker.serve("127.0.0.1:0").expect("binds");
    let options = ManagementOptions {
        max_body_size: 100_000,
    };
    let management = wire
        .serve_management_with("127.0.0.1:0", options)
        .expect("binds");
    check_body_limit(management.local_addr(), 100_000);
    // The default: RabbitMQ's 20,000,000 bytes.
    let s = served();
    check_body_limit(
        s.management.local_addr(),
        ManagementOptions::DEFAULT_MAX_BODY_SIZE,
    );
}
