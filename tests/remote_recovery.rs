//! Remote connections to a list of nodes (issue #14), against two `warren-server` listeners
//! in this process: when the node connected to stops (it closes with 320, as RabbitMQ does),
//! the connection reconnects to the next one, declares again what the application declared,
//! reopens its channels and consumers, reports the reconnect as events, and reports the
//! publishes whose confirms were outstanding as not confirmed.
#![cfg(feature = "remote")]

use std::collections::HashSet;
use std::time::Duration;

use warrenmq::{
    Broker, Connection, ConnectionEvent, ConsumeOptions, ExchangeDeclareOptions, ExchangeKind,
    FieldTable, GetOptions, Message, PublishOptions, QueueDeclareOptions, WireServer,
};

const PATIENCE: Duration = Duration::from_secs(10);

fn node() -> (Broker, WireServer, String) {
    let broker = Broker::in_memory();
    let server = broker.serve("127.0.0.1:0").expect("serves");
    let url = format!("amqp://guest:guest@{}/%2f", server.local_addr());
    (broker, server, url)
}

fn cluster(urls: &[&str]) -> Connection {
    Connection::builder()
        .nodes(urls.iter().copied())
        .backoff(Duration::from_millis(10), Duration::from_millis(200))
        .give_up_after(Duration::from_secs(10))
        .connect()
        .expect("connects")
}

#[test]
fn reconnects_to_the_next_node_with_topology_and_consumers() {
    let (_a_broker, a, a_url) = node();
    let (b_broker, b, b_url) = node();
    let conn = cluster(&[&a_url, &b_url]);
    let events = conn.events();
    let ch = conn.open_channel().expect("a channel");
    ch.exchange_declare(
        "jobs",
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        FieldTable::new(),
    )
    .expect("exchange");
    ch.queue_declare("work", QueueDeclareOptions::default(), FieldTable::new())
        .expect("queue");
    ch.queue_bind("work", "jobs", "k", FieldTable::new())
        .expect("bound");
    ch.basic_qos(10).expect("qos");
    let consumer = ch
        .basic_consume("work", ConsumeOptions::default().tag("worker"))
        .expect("consuming");
    ch.basic_publish("jobs", "k", Message::new("before"))
        .expect("published");
    let held = consumer.recv_timeout(PATIENCE).expect("a delivery before");
    assert_eq!(held.body().as_ref(), b"before");

    a.shutdown();

    let lost = events.recv_timeout(PATIENCE).expect("an event");
    assert!(matches!(lost, ConnectionEvent::Lost { .. }), "{lost:?}");
    let back = events.recv_timeout(PATIENCE).expect("an event");
    let ConnectionEvent::Reconnected { node, attempts, .. } = back else {
        panic!("expected a reconnect, got {back:?}");
    };
    assert!(node.contains(&b.local_addr().port().to_string()), "{node}");
    assert!(attempts >= 1);

    // Topology recovery: the exchange, queue and binding exist on the new node.
    assert!(b_broker.exchange_stats("/", "jobs").is_ok());
    assert_eq!(
        b_broker.queue_stats("/", "work").expect("queue").consumers,
        1
    );
    // A delivery of the lost link: acking it does nothing (its node requeued it).
    held.ack().expect("a stale ack is ignored");
    // The channel and the consumer go on, on the new node.
    ch.basic_publish("jobs", "k", Message::new("after"))
        .expect("published");
    let d = consumer.recv_timeout(PATIENCE).expect("a delivery after");
    assert_eq!(d.body().as_ref(), b"after");
    assert_eq!(d.consumer_tag(), Some("worker"));
    assert!(
        d.delivery_tag() > 1,
        "tags keep increasing across the reconnect"
    );
    d.ack().expect("acked");
    assert_eq!(ch.unacked_count(), 0);
    assert!(ch
        .basic_get("work", GetOptions::no_ack())
        .expect("get")
        .is_none());
    conn.close();
    assert!(conn.is_closed());
}

#[test]
fn outstanding_confirms_are_reported_not_confirmed() {
    let (a_broker, a, a_url) = node();
    let (b_broker, _b, b_url) = node();
    let conn = cluster(&[&a_url, &b_url]);
    let events = conn.events();
    let ch = conn.open_channel().expect("a channel");
    ch.queue_declare("jobs", QueueDeclareOptions::default(), FieldTable::new())
        .expect("queue");
    ch.confirm_select().expect("confirms");
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        a.shutdown();
    });
    let mut confirms = Vec::new();
    for i in 0..3000 {
        let body = format!("{i}");
        let confirm = ch
            .basic_publish_with_confirm(
                "",
                "jobs",
                PublishOptions::default(),
                Message::new(body.clone()),
            )
            .expect("published (retried on the new node if the link was down)");
        confirms.push((body, confirm));
    }
    stopper.join().expect("stopped");
    let mut confirmed = HashSet::new();
    for (body, confirm) in &confirms {
        let outcome = confirm
            .wait_timeout(PATIENCE)
            .expect("no error")
            .expect("every confirm resolves");
        if outcome {
            confirmed.insert(body.clone());
        }
    }
    let mut stored = HashSet::new();
    for broker in [&a_broker, &b_broker] {
        let ch = broker
            .connect("/")
            .expect("connects")
            .open_channel()
            .expect("a channel");
        while let Some(d) = ch.basic_get("jobs", GetOptions::no_ack()).expect("get") {
            stored.insert(String::from_utf8_lossy(d.body()).into_owned());
        }
    }
    let missing: Vec<_> = confirmed.difference(&stored).collect();
    assert!(missing.is_empty(), "confirmed but not stored: {missing:?}");
    assert!(
        matches!(events.try_recv(), Ok(ConnectionEvent::Lost { .. })),
        "the loss was reported"
    );
}

#[test]
fn an_unreachable_cluster_is_an_error() {
    let (_broker, server, url) = node();
    server.shutdown();
    let err = Connection::builder()
        .node(url)
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .expect_err("nobody answers");
    assert_eq!(err.reply_code().0, 320);
    assert!(
        err.to_string()
            .starts_with("CONNECTION_FORCED - no node answered"),
        "{err}"
    );
    let err = Connection::open("not a url").expect_err("a bad URL");
    assert_eq!(err.reply_code().0, 402);
}

#[test]
fn server_named_queues_and_callback_consumers_come_back() {
    let (_a_broker, a, a_url) = node();
    let (b_broker, _b, b_url) = node();
    let conn = cluster(&[&a_url, &b_url]);
    let events = conn.events();
    let ch = conn.open_channel().expect("a channel");
    let old = ch
        .queue_declare("", QueueDeclareOptions::exclusive(), FieldTable::new())
        .expect("a server-named queue")
        .queue;
    ch.queue_bind(&old, "amq.fanout", "", FieldTable::new())
        .expect("bound");
    let (tx, rx) = std::sync::mpsc::channel();
    ch.basic_consume_with(&old, ConsumeOptions::no_ack(), move |d| {
        let _ = tx.send(String::from_utf8_lossy(d.body()).into_owned());
    })
    .expect("consuming");

    a.shutdown();
    for _ in 0..2 {
        let event = events.recv_timeout(PATIENCE).expect("an event");
        assert!(
            matches!(
                event,
                ConnectionEvent::Lost { .. } | ConnectionEvent::Reconnected { .. }
            ),
            "{event:?}"
        );
    }
    let renamed: Vec<_> = b_broker
        .list_queues("/")
        .expect("queues")
        .into_iter()
        .filter(|q| q.name.starts_with("amq.gen-"))
        .collect();
    assert_eq!(renamed.len(), 1, "declared again under a new name");
    assert_ne!(renamed[0].name, old);
    assert_eq!(renamed[0].consumers, 1);
    ch.basic_publish("amq.fanout", "", Message::new("hello"))
        .expect("published");
    assert!(
        ch.wait_timeout(PATIENCE).expect("waited"),
        "the callback ran"
    );
    assert_eq!(rx.try_recv().expect("delivered"), "hello");
}

#[test]
fn dropping_a_remote_connection_closes_it_on_the_server() {
    let (broker, server, url) = node();
    let conn = Connection::open(&url).expect("connects");
    let ch = conn.open_channel().expect("a channel");
    ch.queue_declare(
        "gone-with-it",
        QueueDeclareOptions::exclusive(),
        FieldTable::new(),
    )
    .expect("declared");
    assert_eq!(server.connection_count(), 1);
    drop(ch);
    drop(conn);
    let deadline = std::time::Instant::now() + PATIENCE;
    while server.connection_count() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the server still has the connection"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        broker.queue_stats("/", "gone-with-it").is_err(),
        "its exclusive queue went"
    );
}
