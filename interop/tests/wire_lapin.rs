//! A Rust client, lapin, against the wire listener: publisher confirms, consuming with
//! prefetch and acks, bodies larger than a frame, mandatory returns, channel errors, the
//! server-side cancel when a consumed queue is deleted, and a publish whose store write
//! failed nacked on a connection that stays open.

use std::time::{Duration, Instant};

use futures_lite::stream::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
    BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties, ExchangeKind};
use warren_interop::serve;
use warrenmq::WireServer;

/// Waits until `condition` holds, polling without blocking the runtime; fails after 10 s.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn connect(server: &WireServer) -> Connection {
    let uri = format!("amqp://guest:guest@{}/%2f", server.local_addr());
    Connection::connect(&uri, ConnectionProperties::default())
        .await
        .expect("lapin connects")
}

#[tokio::test]
async fn smoke() {
    let (_broker, server) = serve();
    let conn = connect(&server).await;
    let ch = conn.create_channel().await.expect("a channel");
    ch.close(200, "bye".into()).await.expect("closes");
    conn.close(200, "bye".into()).await.expect("closes");
}

#[tokio::test]
async fn confirmed_publishes_are_consumed_in_order_with_prefetch() {
    let (broker, server) = serve();
    let conn = connect(&server).await;
    let publisher = conn.create_channel().await.expect("a channel");
    let consumer_ch = conn.create_channel().await.expect("a channel");
    publisher
        .exchange_declare(
            "logs".into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("exchange");
    publisher
        .queue_declare(
            "errors".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("queue");
    publisher
        .queue_bind(
            "errors".into(),
            "logs".into(),
            "*.error".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");

    // One body far larger than a frame, split and joined on both paths.
    let sizes: Vec<usize> = (0..50)
        .map(|i| if i == 7 { 400_000 } else { i * 10 })
        .collect();
    for (i, size) in sizes.iter().enumerate() {
        let key = if i % 2 == 0 { "app.error" } else { "app.info" };
        let mut body = vec![b'x'; *size];
        body.extend_from_slice(format!("#{i}").as_bytes());
        let confirm = publisher
            .basic_publish(
                "logs".into(),
                key.into(),
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("published")
            .await
            .expect("confirmed");
        assert_eq!(confirm, Confirmation::Ack(None));
    }
    assert_eq!(
        broker
            .queue_stats("/", "errors")
            .expect("stats")
            .messages_ready,
        25
    );

    consumer_ch
        .basic_qos(5, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = consumer_ch
        .basic_consume(
            "errors".into(),
            "reader".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let unacked = || {
        broker
            .queue_stats("/", "errors")
            .expect("stats")
            .messages_unacknowledged
    };
    eventually("the consumer holds its prefetch", || unacked() >= 5).await;
    assert_eq!(
        unacked(),
        5,
        "prefetch holds the consumer to five unacked messages"
    );
    for i in (0..50).step_by(2) {
        let d = consumer
            .next()
            .await
            .expect("a delivery")
            .expect("no error");
        assert_eq!(d.routing_key.as_str(), "app.error");
        assert_eq!(d.data.len(), sizes[i] + format!("#{i}").len());
        assert!(d.data.ends_with(format!("#{i}").as_bytes()));
        assert_eq!(d.properties.delivery_mode(), &Some(2));
        d.ack(BasicAckOptions::default()).await.expect("acked");
    }
    eventually("every ack has reached the queue", || {
        broker.queue_stats("/", "errors").expect("stats").messages() == 0
    })
    .await;
}

#[tokio::test]
async fn get_nack_and_redelivery() {
    let (_broker, server) = serve();
    let conn = connect(&server).await;
    let ch = conn.create_channel().await.expect("a channel");
    ch.queue_declare(
        "jobs".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("queue");
    ch.basic_publish(
        "".into(),
        "jobs".into(),
        BasicPublishOptions::default(),
        b"job-1",
        BasicProperties::default(),
    )
    .await
    .expect("published");
    let first = ch
        .basic_get("jobs".into(), BasicGetOptions::default())
        .await
        .expect("get")
        .expect("a message");
    assert!(!first.delivery.redelivered);
    first
        .delivery
        .nack(BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await
        .expect("nacked");
    let again = ch
        .basic_get("jobs".into(), BasicGetOptions { no_ack: true })
        .await
        .expect("get")
        .expect("the message again");
    assert!(again.delivery.redelivered);
    assert_eq!(again.delivery.data, b"job-1");
    assert!(ch
        .basic_get("jobs".into(), BasicGetOptions::default())
        .await
        .expect("get")
        .is_none());
}

#[tokio::test]
async fn mandatory_unroutable_comes_back_before_its_confirm() {
    let (_broker, server) = serve();
    let conn = connect(&server).await;
    let ch = conn.create_channel().await.expect("a channel");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let confirm = ch
        .basic_publish(
            "".into(),
            "nobody-home".into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"lost",
            BasicProperties::default(),
        )
        .await
        .expect("published")
        .await
        .expect("confirmed");
    let returned = confirm.take_message().expect("returned");
    assert_eq!(returned.reply_code, 312);
    assert_eq!(returned.reply_text.as_str(), "NO_ROUTE");
    assert_eq!(returned.delivery.data, b"lost");
}

#[tokio::test]
async fn channel_errors_carry_rabbitmq_codes_and_spare_the_connection() {
    let (_broker, server) = serve();
    let conn = connect(&server).await;
    let ch = conn.create_channel().await.expect("a channel");
    let err = ch
        .queue_declare(
            "missing".into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect_err("a 404");
    let text = err.to_string();
    assert!(
        text.contains("NOT_FOUND - no queue 'missing' in vhost '/'"),
        "{text}"
    );
    assert!(err.is_amqp_soft_error());
    let ch2 = conn
        .create_channel()
        .await
        .expect("the connection lives on");
    ch2.queue_declare(
        "fine".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("declared");
}

#[tokio::test]
async fn deleting_a_consumed_queue_cancels_the_consumer() {
    let (broker, server) = serve();
    let conn = connect(&server).await;
    let ch = conn.create_channel().await.expect("a channel");
    ch.queue_declare(
        "doomed".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("queue");
    let mut consumer = ch
        .basic_consume(
            "doomed".into(),
            "watcher".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let admin = broker.connect("/").expect("connects");
    admin
        .open_channel()
        .and_then(|c| c.queue_delete("doomed", Default::default()))
        .expect("deleted");
    let end = tokio::time::timeout(Duration::from_secs(5), consumer.next()).await;
    assert!(matches!(end, Ok(None)), "the stream ends: {end:?}");
    // The channel stays usable.
    ch.queue_declare(
        "next".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("declared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_connections_publish_and_consume_at_once() {
    const CONNECTIONS: usize = 16;
    const EACH: usize = if cfg!(debug_assertions) { 200 } else { 2000 };
    let (broker, server) = serve();
    let setup = connect(&server).await;
    let ch = setup.create_channel().await.expect("a channel");
    ch.queue_declare(
        "shared".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("queue");
    let mut consumers = Vec::new();
    for c in 0..2 {
        let conn = connect(&server).await;
        consumers.push(tokio::spawn(async move {
            let ch = conn.create_channel().await.expect("a channel");
            ch.basic_qos(50, BasicQosOptions::default())
                .await
                .expect("qos");
            let mut consumer = ch
                .basic_consume(
                    "shared".into(),
                    format!("c{c}").as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .expect("consume");
            let mut got = 0usize;
            while let Ok(Some(Ok(d))) =
                tokio::time::timeout(Duration::from_secs(2), consumer.next()).await
            {
                d.ack(BasicAckOptions::default()).await.expect("acked");
                got += 1;
            }
            got
        }));
    }
    let mut publishers = Vec::new();
    for p in 0..CONNECTIONS {
        let conn = connect(&server).await;
        publishers.push(tokio::spawn(async move {
            let ch = conn.create_channel().await.expect("a channel");
            ch.confirm_select(ConfirmSelectOptions::default())
                .await
                .expect("confirms");
            for i in 0..EACH {
                ch.basic_publish(
                    "".into(),
                    "shared".into(),
                    BasicPublishOptions::default(),
                    format!("{p}-{i}").as_bytes(),
                    BasicProperties::default(),
                )
                .await
                .expect("published");
            }
            ch.wait_for_confirms().await.expect("all confirmed");
            conn.close(200, "done".into()).await.expect("closes");
        }));
    }
    for p in publishers {
        p.await.expect("publisher");
    }
    let mut total = 0;
    for c in consumers {
        total += c.await.expect("consumer");
    }
    assert_eq!(
        total,
        CONNECTIONS * EACH,
        "every message consumed exactly once"
    );
    let stats = broker.queue_stats("/", "shared").expect("stats");
    assert_eq!(stats.messages(), 0);
}

#[tokio::test]
async fn a_failed_store_write_is_nacked_and_the_connection_stays_open() {
    let dir = std::env::temp_dir().join(format!(
        "warren-lapin-nack-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
    ));
    std::fs::create_dir_all(&dir).expect("a directory");
    let broker = warrenmq::Broker::open(dir.join("warren.redb")).expect("opens");
    let server = broker.serve("127.0.0.1:0").expect("binds");
    let conn = connect(&server).await;
    let ch = conn.create_channel().await.expect("a channel");
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    ch.queue_declare("jobs".into(), durable, FieldTable::default())
        .await
        .expect("queue");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let publish = |body: &'static [u8]| {
        let ch = ch.clone();
        async move {
            ch.basic_publish(
                "".into(),
                "jobs".into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("published")
            .await
            .expect("a confirm")
        }
    };
    broker.fail_store_writes(true).expect("a persistent broker");
    assert!(publish(b"lost").await.is_nack(), "a failed write is a nack");
    broker
        .fail_store_writes(false)
        .expect("a persistent broker");
    assert_eq!(publish(b"kept").await, Confirmation::Ack(None));
    assert!(conn.status().connected() && ch.status().connected());
    let got = ch
        .basic_get("jobs".into(), BasicGetOptions { no_ack: true })
        .await
        .expect("get")
        .expect("a message");
    assert_eq!(got.delivery.data, b"kept");
    assert!(ch
        .basic_get("jobs".into(), BasicGetOptions { no_ack: true })
        .await
        .expect("get")
        .is_none());
    conn.close(200, "bye".into()).await.expect("closes");
    drop(server);
    broker.close().expect("closes");
    let _ = std::fs::remove_dir_all(&dir);
}
