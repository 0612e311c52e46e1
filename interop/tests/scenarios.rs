//! One scenario suite, three backends (issue #14): the same application code, written once
//! against the public API, run
//!
//! - in process (`Broker::in_memory().connect("/")`),
//! - against `warren-server` (a broker served on a free port) through the remote connection
//!   (`Connection::open("amqp://…")`, feature `remote`),
//! - against the local RabbitMQ through the remote connection, in a vhost of its own
//!   (skipped with the reason outside CI when RabbitMQ or `rabbitmqctl` is missing).
//!
//! Every scenario asserts the same results on all three: declare rules and error texts,
//! routing of each exchange kind, ack / nack / requeue / redelivered, prefetch, publisher
//! confirms, returns, TTL and dead-lettering in real time.
//!
//! `cargo test --release --all-features -p warren-interop --test scenarios`

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use warren_interop::{rabbitmqctl, run, trial, Need, Trial, RABBITMQ};
use warrenmq::{
    Broker, Channel, Connection, ConsumeOptions, Error, ExchangeDeclareOptions, ExchangeKind,
    FieldTable, FieldValue, GetOptions, Message, PublishOptions, QueueDeclareOptions,
    QueueDeleteOptions, ReplyCode, TryRecvError, WireServer,
};

/// How long a scenario waits for something that should happen at once.
const PATIENCE: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug)]
enum Backend {
    InProcess,
    WarrenServer,
    RabbitMq,
}

impl Backend {
    fn label(self) -> &'static str {
        match self {
            Backend::InProcess => "in_process",
            Backend::WarrenServer => "warren_server",
            Backend::RabbitMq => "rabbitmq",
        }
    }

    fn needs(self) -> &'static [Need] {
        match self {
            Backend::RabbitMq => &[Need::RabbitMq, Need::Rabbitmqctl],
            _ => &[],
        }
    }
}

/// Set once the RabbitMQ vhost exists, so that it is deleted at the end.
static CREATED: AtomicBool = AtomicBool::new(false);

/// The vhost the RabbitMQ backend's scenarios run in, created once per run.
fn rabbit_vhost() -> &'static str {
    static VHOST: OnceLock<String> = OnceLock::new();
    VHOST.get_or_init(|| {
        let vhost = format!("warren-scenarios-{}", std::process::id());
        rabbitmqctl(&["add_vhost", &vhost]);
        rabbitmqctl(&["set_permissions", "-p", &vhost, "guest", ".*", ".*", ".*"]);
        CREATED.store(true, Ordering::Release);
        vhost
    })
}

/// A scenario's world: a connection to its backend, and names unique to the scenario.
struct Env {
    backend: Backend,
    conn: Connection,
    url: Option<String>,
    broker: Option<Broker>,
    _server: Option<WireServer>,
    suffix: String,
}

impl Env {
    fn new(backend: Backend) -> Env {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let suffix = format!("{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let (broker, server, url) = match backend {
            Backend::InProcess => (Some(Broker::in_memory()), None, None),
            Backend::WarrenServer => {
                let broker = Broker::in_memory();
                let server = broker.serve("127.0.0.1:0").expect("serves");
                let url = format!("amqp://guest:guest@{}/%2f", server.local_addr());
                (Some(broker), Some(server), Some(url))
            }
            Backend::RabbitMq => {
                let url = format!("amqp://guest:guest@{RABBITMQ}/{}", rabbit_vhost());
                (None, None, Some(url))
            }
        };
        let mut env = Env {
            backend,
            conn: match &broker {
                Some(b) if url.is_none() => b.connect("/").expect("connects"),
                _ => Connection::open(url.as_deref().expect("a URL")).expect("connects"),
            },
            url,
            broker,
            _server: server,
            suffix,
        };
        assert_eq!(env.conn.is_remote(), env.url.is_some());
        env.suffix = format!("{}-{}", env.backend.label(), env.suffix);
        env
    }

    /// Another connection to the same broker.
    fn connect(&self) -> Connection {
        match (&self.url, &self.broker) {
            (Some(url), _) => Connection::open(url).expect("connects"),
            (None, Some(broker)) => broker.connect("/").expect("connects"),
            (None, None) => unreachable!("every backend has a URL or a broker"),
        }
    }

    fn channel(&self) -> Channel {
        self.conn.open_channel().expect("a channel")
    }

    /// A name unique to this scenario run.
    fn name(&self, base: &str) -> String {
        format!("{base}-{}", self.suffix)
    }

    fn vhost(&self) -> String {
        self.conn.vhost().to_owned()
    }
}

// ---- helpers ----

fn queue(ch: &Channel, name: &str, arguments: FieldTable) {
    ch.queue_declare(name, QueueDeclareOptions::default(), arguments)
        .expect("queue declared");
}

fn exchange(ch: &Channel, name: &str, kind: ExchangeKind) {
    ch.exchange_declare(
        name,
        kind,
        ExchangeDeclareOptions::default(),
        FieldTable::new(),
    )
    .expect("exchange declared");
}

fn bodies(ch: &Channel, queue: &str) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(d) = ch.basic_get(queue, GetOptions::no_ack()).expect("get") {
        out.push(String::from_utf8_lossy(d.body()).into_owned());
    }
    out
}

fn ready(ch: &Channel, queue: &str) -> u32 {
    ch.queue_declare(queue, QueueDeclareOptions::passive(), FieldTable::new())
        .expect("passive declare")
        .message_count
}

/// The error a failed method reports, or what closed the channel (an asynchronous method
/// such as a publish reports its error on the channel's next call when remote).
fn root(error: &Error) -> &Error {
    error.cause().unwrap_or(error)
}

/// Polls `get` until it returns something or the patience runs out.
fn eventually<T>(what: &str, mut get: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = get() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

// ---- scenarios ----

fn declare_equivalence(env: &Env) {
    let ch = env.channel();
    let q = env.name("decl");
    let ok = ch
        .queue_declare(&q, QueueDeclareOptions::default(), FieldTable::new())
        .expect("declared");
    assert_eq!(
        (ok.queue.as_str(), ok.message_count, ok.consumer_count),
        (q.as_str(), 0, 0)
    );
    ch.queue_declare(&q, QueueDeclareOptions::default(), FieldTable::new())
        .expect("the same declare again");
    let err = ch
        .queue_declare(&q, QueueDeclareOptions::durable(), FieldTable::new())
        .expect_err("inequivalent");
    assert_eq!(err.reply_code(), ReplyCode::PRECONDITION_FAILED);
    assert_eq!(
        err.to_string(),
        format!(
            "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{q}' in vhost '{}': received 'true' but current is 'false'",
            env.vhost()
        )
    );
    let next = ch.queue_purge(&q).expect_err("the channel is closed");
    assert!(matches!(next, Error::ChannelClosed { .. }), "{next:?}");
    assert_eq!(
        next.cause().map(Error::reply_code),
        Some(ReplyCode::PRECONDITION_FAILED)
    );
    assert!(ch.is_closed());
    // The connection goes on.
    let ch = env.channel();
    assert_eq!(ready(&ch, &q), 0);
    ch.queue_delete(&q, QueueDeleteOptions::default())
        .expect("deleted");
}

fn declare_errors(env: &Env) {
    let missing = env.name("missing");
    let err = env
        .channel()
        .queue_declare(&missing, QueueDeclareOptions::passive(), FieldTable::new())
        .expect_err("no such queue");
    assert!(matches!(err, Error::QueueNotFound { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "NOT_FOUND - no queue '{missing}' in vhost '{}'",
            env.vhost()
        )
    );
    let err = env
        .channel()
        .exchange_declare(
            &missing,
            ExchangeKind::Direct,
            ExchangeDeclareOptions::passive(),
            FieldTable::new(),
        )
        .expect_err("no such exchange");
    assert!(matches!(err, Error::ExchangeNotFound { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "NOT_FOUND - no exchange '{missing}' in vhost '{}'",
            env.vhost()
        )
    );
    let reserved = format!("amq.{missing}");
    let err = env
        .channel()
        .queue_declare(&reserved, QueueDeclareOptions::default(), FieldTable::new())
        .expect_err("reserved prefix");
    assert_eq!(err.reply_code(), ReplyCode::ACCESS_REFUSED);
    assert_eq!(
        err.to_string(),
        format!("ACCESS_REFUSED - queue name '{reserved}' contains reserved prefix 'amq.*'")
    );
    let err = env
        .channel()
        .queue_bind(&missing, "amq.direct", "k", FieldTable::new())
        .expect_err("binding a missing queue");
    assert_eq!(err.reply_code(), ReplyCode::NOT_FOUND);
    assert!(!env.conn.is_closed());
}

fn exclusive_queue_is_locked(env: &Env) {
    let q = env.name("mine");
    let ch = env.channel();
    ch.queue_declare(&q, QueueDeclareOptions::exclusive(), FieldTable::new())
        .expect("declared");
    let other = env.connect();
    let err = other
        .open_channel()
        .expect("a channel")
        .queue_declare(&q, QueueDeclareOptions::exclusive(), FieldTable::new())
        .expect_err("locked");
    assert_eq!(err.reply_code(), ReplyCode::RESOURCE_LOCKED);
    other.close();
    env.conn.close();
    assert!(env.conn.is_closed());
    // Closing the owner deletes it.
    let third = env.connect();
    let err = third
        .open_channel()
        .expect("a channel")
        .queue_declare(&q, QueueDeclareOptions::passive(), FieldTable::new())
        .expect_err("deleted with its connection");
    assert_eq!(err.reply_code(), ReplyCode::NOT_FOUND);
}

fn routing_direct_and_default(env: &Env) {
    let ch = env.channel();
    let (x, a, b) = (env.name("direct"), env.name("a"), env.name("b"));
    exchange(&ch, &x, ExchangeKind::Direct);
    queue(&ch, &a, FieldTable::new());
    queue(&ch, &b, FieldTable::new());
    ch.queue_bind(&a, &x, "k1", FieldTable::new())
        .expect("bound");
    ch.queue_bind(&a, &x, "k2", FieldTable::new())
        .expect("bound");
    ch.queue_bind(&b, &x, "k2", FieldTable::new())
        .expect("bound");
    for key in ["k1", "k2", "k3"] {
        ch.basic_publish(&x, key, Message::new(key))
            .expect("published");
    }
    ch.basic_publish("", &b, Message::new("direct to b"))
        .expect("published");
    assert_eq!(bodies(&ch, &a), ["k1", "k2"]);
    assert_eq!(bodies(&ch, &b), ["k2", "direct to b"]);
    ch.queue_unbind(&a, &x, "k1", FieldTable::new())
        .expect("unbound");
    ch.basic_publish(&x, "k1", Message::new("k1"))
        .expect("published");
    assert!(bodies(&ch, &a).is_empty());
}

fn routing_fanout(env: &Env) {
    let ch = env.channel();
    let (x, a, b) = (env.name("fan"), env.name("fa"), env.name("fb"));
    exchange(&ch, &x, ExchangeKind::Fanout);
    for q in [&a, &b] {
        queue(&ch, q, FieldTable::new());
        ch.queue_bind(q, &x, "ignored", FieldTable::new())
            .expect("bound");
    }
    ch.basic_publish(&x, "any", Message::new("all"))
        .expect("published");
    assert_eq!(bodies(&ch, &a), ["all"]);
    assert_eq!(bodies(&ch, &b), ["all"]);
}

fn routing_topic(env: &Env) {
    let ch = env.channel();
    let (x, q1, q2) = (env.name("topic"), env.name("t1"), env.name("t2"));
    exchange(&ch, &x, ExchangeKind::Topic);
    queue(&ch, &q1, FieldTable::new());
    queue(&ch, &q2, FieldTable::new());
    ch.queue_bind(&q1, &x, "*.orange.*", FieldTable::new())
        .expect("bound");
    ch.queue_bind(&q2, &x, "*.*.rabbit", FieldTable::new())
        .expect("bound");
    ch.queue_bind(&q2, &x, "lazy.#", FieldTable::new())
        .expect("bound");
    for key in [
        "quick.orange.rabbit",
        "lazy.orange.elephant",
        "quick.orange.fox",
        "lazy.brown.fox",
        "lazy.pink.rabbit",
        "quick.brown.fox",
        "orange",
        "lazy",
    ] {
        ch.basic_publish(&x, key, Message::new(key))
            .expect("published");
    }
    assert_eq!(
        bodies(&ch, &q1),
        [
            "quick.orange.rabbit",
            "lazy.orange.elephant",
            "quick.orange.fox"
        ]
    );
    assert_eq!(
        bodies(&ch, &q2),
        [
            "quick.orange.rabbit",
            "lazy.orange.elephant",
            "lazy.brown.fox",
            "lazy.pink.rabbit",
            "lazy"
        ]
    );
}

fn routing_headers(env: &Env) {
    let ch = env.channel();
    let (x, all, any) = (env.name("hdr"), env.name("all"), env.name("any"));
    exchange(&ch, &x, ExchangeKind::Headers);
    queue(&ch, &all, FieldTable::new());
    queue(&ch, &any, FieldTable::new());
    let both = FieldTable::new()
        .with("format", "pdf")
        .with("type", "report");
    ch.queue_bind(&all, &x, "", both.clone().with("x-match", "all"))
        .expect("bound");
    ch.queue_bind(&any, &x, "", both.with("x-match", "any"))
        .expect("bound");
    let publish = |body: &str, headers: FieldTable| {
        ch.basic_publish(&x, "", Message::new(body).headers(headers))
            .expect("published");
    };
    publish(
        "both",
        FieldTable::new()
            .with("format", "pdf")
            .with("type", "report"),
    );
    publish("one", FieldTable::new().with("format", "pdf"));
    publish("none", FieldTable::new().with("format", "zip"));
    assert_eq!(bodies(&ch, &all), ["both"]);
    assert_eq!(bodies(&ch, &any), ["both", "one"]);
}

fn get_ack_nack_requeue(env: &Env) {
    let ch = env.channel();
    let q = env.name("acks");
    queue(&ch, &q, FieldTable::new());
    for body in ["m1", "m2", "m3"] {
        ch.basic_publish("", &q, Message::new(body))
            .expect("published");
    }
    let d = ch
        .basic_get(&q, GetOptions::default())
        .expect("get")
        .expect("m1");
    assert_eq!(
        (d.body().as_ref(), d.redelivered(), d.message_count()),
        (&b"m1"[..], false, Some(2))
    );
    assert_eq!(ch.unacked_count(), 1);
    d.nack(true).expect("requeued");
    let d = ch
        .basic_get(&q, GetOptions::default())
        .expect("get")
        .expect("m1 again");
    assert_eq!((d.body().as_ref(), d.redelivered()), (&b"m1"[..], true));
    d.reject(false).expect("dropped");
    let d = ch
        .basic_get(&q, GetOptions::default())
        .expect("get")
        .expect("m2");
    assert_eq!(d.body().as_ref(), b"m2");
    d.ack().expect("acked");
    assert_eq!(ch.unacked_count(), 0);
    assert_eq!(bodies(&ch, &q), ["m3"]);
    assert!(ch
        .basic_get(&q, GetOptions::default())
        .expect("get")
        .is_none());
}

fn unknown_delivery_tag_closes_the_channel(env: &Env) {
    let ch = env.channel();
    let err = ch.basic_ack(99, false).expect_err("unknown tag");
    assert!(
        matches!(err, Error::UnknownDeliveryTag { delivery_tag: 99 }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "PRECONDITION_FAILED - unknown delivery tag 99"
    );
    let next = ch.basic_qos(1).expect_err("closed");
    assert_eq!(
        next.cause().map(Error::reply_code),
        Some(ReplyCode::PRECONDITION_FAILED)
    );
}

fn publish_to_a_missing_exchange(env: &Env) {
    let ch = env.channel();
    let missing = env.name("nowhere");
    // In process the publish fails; remotely its error closes the channel and the next call
    // reports it as the cause.
    let err = match ch.basic_publish(&missing, "k", Message::new("lost")) {
        Err(e) => e,
        Ok(()) => ch
            .queue_declare("", QueueDeclareOptions::exclusive(), FieldTable::new())
            .expect_err("the channel was closed by the publish"),
    };
    let cause = root(&err);
    assert!(matches!(cause, Error::ExchangeNotFound { .. }), "{err:?}");
    assert_eq!(
        cause.to_string(),
        format!(
            "NOT_FOUND - no exchange '{missing}' in vhost '{}'",
            env.vhost()
        )
    );
    assert!(ch.is_closed());
}

fn consume_in_order_and_cancel(env: &Env) {
    let ch = env.channel();
    let q = env.name("consume");
    queue(&ch, &q, FieldTable::new());
    let consumer = ch
        .basic_consume(&q, ConsumeOptions::default().tag("c1"))
        .expect("consuming");
    assert_eq!((consumer.tag(), consumer.queue()), ("c1", q.as_str()));
    for i in 0..5 {
        ch.basic_publish("", &q, Message::new(format!("{i}")))
            .expect("published");
    }
    for i in 0..5 {
        let d = consumer.recv_timeout(PATIENCE).expect("a delivery");
        assert_eq!(d.body().as_ref(), format!("{i}").as_bytes());
        assert_eq!(d.consumer_tag(), Some("c1"));
        assert!(!d.redelivered());
        d.ack().expect("acked");
    }
    consumer.cancel().expect("cancelled");
    ch.basic_publish("", &q, Message::new("after"))
        .expect("published");
    assert_eq!(bodies(&ch, &q), ["after"]);
}

fn deleting_the_queue_disconnects_its_consumer(env: &Env) {
    let ch = env.channel();
    let q = env.name("doomed");
    queue(&ch, &q, FieldTable::new());
    let consumer = ch
        .basic_consume(&q, ConsumeOptions::default())
        .expect("consuming");
    env.channel()
        .queue_delete(&q, QueueDeleteOptions::default())
        .expect("deleted");
    eventually("the consumer to be cancelled", || {
        matches!(consumer.try_recv(), Err(TryRecvError::Disconnected)).then_some(())
    });
    assert!(!ch.is_closed());
}

fn prefetch_bounds_unacked(env: &Env) {
    let ch = env.channel();
    let q = env.name("prefetch");
    queue(&ch, &q, FieldTable::new());
    ch.basic_qos(2).expect("qos");
    for i in 0..5 {
        ch.basic_publish("", &q, Message::new(format!("{i}")))
            .expect("published");
    }
    let consumer = ch
        .basic_consume(&q, ConsumeOptions::default())
        .expect("consuming");
    let first = consumer.recv_timeout(PATIENCE).expect("first");
    let second = consumer.recv_timeout(PATIENCE).expect("second");
    thread::sleep(Duration::from_millis(300));
    assert!(consumer.try_recv().is_err(), "a third beyond the prefetch");
    assert_eq!(ch.unacked_count(), 2);
    first.ack().expect("acked");
    let third = consumer.recv_timeout(PATIENCE).expect("third after an ack");
    assert_eq!(third.body().as_ref(), b"2");
    second.ack().expect("acked");
    third.ack().expect("acked");
}

fn callbacks_run_in_wait(env: &Env) {
    let ch = env.channel();
    let q = env.name("callbacks");
    queue(&ch, &q, FieldTable::new());
    let (tx, rx) = std::sync::mpsc::channel();
    ch.basic_consume_with(&q, ConsumeOptions::default(), move |d| {
        tx.send(d.body().clone()).expect("sent");
        d.ack().expect("acked");
    })
    .expect("consuming");
    ch.basic_publish("", &q, Message::new("cb"))
        .expect("published");
    assert!(ch.wait_timeout(PATIENCE).expect("waited"));
    assert_eq!(rx.try_recv().expect("ran").as_ref(), b"cb");
}

fn publisher_confirms(env: &Env) {
    let ch = env.channel();
    let q = env.name("confirms");
    queue(&ch, &q, FieldTable::new());
    let err = env
        .channel()
        .wait_for_confirms()
        .expect_err("not in confirm mode");
    assert_eq!(
        err.to_string(),
        "PRECONDITION_FAILED - channel is not in confirm mode"
    );
    ch.confirm_select().expect("confirms on");
    for i in 0..50 {
        ch.basic_publish("", &q, Message::new(format!("{i}")).persistent())
            .expect("published");
    }
    assert!(ch.wait_for_confirms().expect("confirmed"));
    let confirm = ch
        .basic_publish_with_confirm("", &q, PublishOptions::default(), Message::new("one"))
        .expect("published");
    assert!(confirm.wait().expect("confirmed"));
    assert_eq!(ready(&ch, &q), 51);
}

fn mandatory_returns(env: &Env) {
    let ch = env.channel();
    let q = env.name("routable");
    queue(&ch, &q, FieldTable::new());
    let returns = ch.returns();
    ch.basic_publish_with(
        "amq.direct",
        "nobody",
        PublishOptions::mandatory(),
        Message::new("back"),
    )
    .expect("published");
    let returned = returns.recv_timeout(PATIENCE).expect("returned");
    assert_eq!(returned.reply_code, ReplyCode::NO_ROUTE);
    assert_eq!(returned.reply_text, "NO_ROUTE");
    assert_eq!(
        (returned.exchange.as_str(), returned.routing_key.as_str()),
        ("amq.direct", "nobody")
    );
    assert_eq!(returned.message.body().as_ref(), b"back");
    ch.basic_publish_with("", &q, PublishOptions::mandatory(), Message::new("kept"))
        .expect("published");
    assert_eq!(bodies(&ch, &q), ["kept"]);
    assert!(
        returns.try_recv().is_err(),
        "a routed message does not come back"
    );
}

fn message_ttl(env: &Env) {
    let ch = env.channel();
    let (q, per_message) = (env.name("ttl"), env.name("ttl-msg"));
    queue(&ch, &q, FieldTable::new().with("x-message-ttl", 100i32));
    queue(&ch, &per_message, FieldTable::new());
    ch.basic_publish("", &q, Message::new("expires"))
        .expect("published");
    ch.basic_publish("", &per_message, Message::new("expires").expiration_ms(100))
        .expect("published");
    ch.basic_publish("", &per_message, Message::new("stays"))
        .expect("published");
    thread::sleep(Duration::from_millis(400));
    assert!(bodies(&ch, &q).is_empty());
    assert_eq!(bodies(&ch, &per_message), ["stays"]);
}

fn x_death(d: &warrenmq::Delivery) -> (String, String, i64) {
    let deaths = d
        .properties()
        .headers
        .as_ref()
        .and_then(|h| h.get("x-death"))
        .and_then(FieldValue::as_array)
        .expect("x-death");
    let first = deaths[0].as_table().expect("a table");
    let text = |k: &str| {
        first
            .get(k)
            .and_then(FieldValue::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let count = first
        .get("count")
        .and_then(FieldValue::as_i64)
        .unwrap_or(-1);
    (text("reason"), text("queue"), count)
}

fn dead_lettering(env: &Env) {
    let ch = env.channel();
    let (work, expiring, dlq) = (env.name("work"), env.name("expiring"), env.name("dlq"));
    queue(&ch, &dlq, FieldTable::new());
    let dlx = FieldTable::new()
        .with("x-dead-letter-exchange", "")
        .with("x-dead-letter-routing-key", dlq.as_str());
    queue(&ch, &work, dlx.clone());
    queue(&ch, &expiring, dlx.with("x-message-ttl", 100i32));
    ch.basic_publish("", &work, Message::new("rejected"))
        .expect("published");
    let d = ch
        .basic_get(&work, GetOptions::default())
        .expect("get")
        .expect("a message");
    d.reject(false).expect("rejected");
    let dead = eventually("the rejected message", || {
        ch.basic_get(&dlq, GetOptions::no_ack()).expect("get")
    });
    assert_eq!(dead.body().as_ref(), b"rejected");
    assert_eq!(x_death(&dead), ("rejected".to_owned(), work.clone(), 1));
    ch.basic_publish("", &expiring, Message::new("expired"))
        .expect("published");
    let dead = eventually("the expired message", || {
        ch.basic_get(&dlq, GetOptions::no_ack()).expect("get")
    });
    assert_eq!(dead.body().as_ref(), b"expired");
    assert_eq!(x_death(&dead), ("expired".to_owned(), expiring.clone(), 1));
}

fn purge_and_delete_counts(env: &Env) {
    let ch = env.channel();
    let q = env.name("counts");
    queue(&ch, &q, FieldTable::new());
    for _ in 0..3 {
        ch.basic_publish("", &q, Message::new("x"))
            .expect("published");
    }
    assert_eq!(ch.queue_purge(&q).expect("purged"), 3);
    ch.basic_publish("", &q, Message::new("x"))
        .expect("published");
    let err = ch
        .queue_delete(
            &q,
            QueueDeleteOptions {
                if_empty: true,
                ..Default::default()
            },
        )
        .expect_err("not empty");
    assert_eq!(err.reply_code(), ReplyCode::PRECONDITION_FAILED);
    let ch = env.channel();
    assert_eq!(
        ch.queue_delete(&q, QueueDeleteOptions::default())
            .expect("deleted"),
        1
    );
}

fn exchange_to_exchange(env: &Env) {
    let ch = env.channel();
    let (src, dst, q) = (env.name("src"), env.name("dst"), env.name("e2e"));
    exchange(&ch, &src, ExchangeKind::Topic);
    exchange(&ch, &dst, ExchangeKind::Direct);
    queue(&ch, &q, FieldTable::new());
    ch.exchange_bind(&dst, &src, "a.*", FieldTable::new())
        .expect("bound");
    ch.queue_bind(&q, &dst, "a.b", FieldTable::new())
        .expect("bound");
    ch.basic_publish(&src, "a.b", Message::new("hop"))
        .expect("published");
    ch.basic_publish(&src, "a.c", Message::new("stops"))
        .expect("published");
    assert_eq!(bodies(&ch, &q), ["hop"]);
    ch.exchange_unbind(&dst, &src, "a.*", FieldTable::new())
        .expect("unbound");
    ch.basic_publish(&src, "a.b", Message::new("gone"))
        .expect("published");
    assert!(bodies(&ch, &q).is_empty());
}

fn route_preview_is_in_process_only(env: &Env) {
    let ch = env.channel();
    let result = ch.route_preview("amq.direct", "k", &FieldTable::new());
    match env.backend {
        Backend::InProcess => assert!(result.expect("a preview").queues.is_empty()),
        _ => {
            let err = result.expect_err("not supported remotely");
            assert_eq!(err.reply_code(), ReplyCode::NOT_IMPLEMENTED);
            assert_eq!(
                err.to_string(),
                "NOT_IMPLEMENTED - route_preview is not supported on a remote connection"
            );
        }
    }
}

fn async_faces(env: &Env) {
    use futures_lite::StreamExt;
    let ch = env.channel();
    let q = env.name("async");
    queue(&ch, &q, FieldTable::new());
    ch.confirm_select().expect("confirms on");
    let mut consumer = ch
        .basic_consume(&q, ConsumeOptions::default())
        .expect("consuming");
    futures_lite::future::block_on(async {
        let confirm = ch
            .basic_publish_with_confirm("", &q, PublishOptions::default(), Message::new("a"))
            .expect("published");
        assert!(confirm.await.expect("confirmed"));
        ch.basic_publish("", &q, Message::new("b"))
            .expect("published");
        assert!(ch.wait_for_confirms_async().await.expect("confirmed"));
        let first = consumer.recv_async().await.expect("a delivery");
        assert_eq!(first.body().as_ref(), b"a");
        first.ack().expect("acked");
        let second = consumer.next().await.expect("a delivery");
        assert_eq!(second.body().as_ref(), b"b");
        second.ack().expect("acked");
    });
}

type Scenario = fn(&Env);

const SCENARIOS: &[(&str, Scenario)] = &[
    ("declare_equivalence", declare_equivalence),
    ("declare_errors", declare_errors),
    ("exclusive_queue_is_locked", exclusive_queue_is_locked),
    ("routing_direct_and_default", routing_direct_and_default),
    ("routing_fanout", routing_fanout),
    ("routing_topic", routing_topic),
    ("routing_headers", routing_headers),
    ("exchange_to_exchange", exchange_to_exchange),
    ("get_ack_nack_requeue", get_ack_nack_requeue),
    (
        "unknown_delivery_tag_closes_the_channel",
        unknown_delivery_tag_closes_the_channel,
    ),
    (
        "publish_to_a_missing_exchange",
        publish_to_a_missing_exchange,
    ),
    ("consume_in_order_and_cancel", consume_in_order_and_cancel),
    (
        "deleting_the_queue_disconnects_its_consumer",
        deleting_the_queue_disconnects_its_consumer,
    ),
    ("prefetch_bounds_unacked", prefetch_bounds_unacked),
    ("callbacks_run_in_wait", callbacks_run_in_wait),
    ("publisher_confirms", publisher_confirms),
    ("mandatory_returns", mandatory_returns),
    ("message_ttl", message_ttl),
    ("dead_lettering", dead_lettering),
    ("purge_and_delete_counts", purge_and_delete_counts),
    (
        "route_preview_is_in_process_only",
        route_preview_is_in_process_only,
    ),
    ("async_faces", async_faces),
];

fn main() -> std::process::ExitCode {
    let mut trials: Vec<Trial> = Vec::new();
    for backend in [Backend::InProcess, Backend::WarrenServer, Backend::RabbitMq] {
        for &(name, scenario) in SCENARIOS {
            trials.push(trial(
                &format!("{}::{name}", backend.label()),
                backend.needs(),
                move || scenario(&Env::new(backend)),
            ));
        }
    }
    let code = run(trials);
    if CREATED.load(Ordering::Acquire) {
        rabbitmqctl(&["delete_vhost", rabbit_vhost()]);
    }
    code
}
