//! Lifetimes: exclusive queues, auto-delete queues and exchanges, and how far an error
//! reaches (channel or connection). Observed on RabbitMQ 3.10
//! (docs/rabbitmq-observations.md, sections 1 and 8).

mod common;

use common::*;
use warrenmq::{
    ConsumeOptions, ExchangeDeclareOptions, ExchangeKind, FieldTable, GetOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};

const LOCKED: &str = "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'mine' \
                      in vhost '/'. It could be originally declared on another connection or \
                      the exclusive property value does not match that of the original \
                      declaration.";

#[test]
fn smoke() {
    let (broker, conn, ch) = setup();
    ch.queue_declare("mine", QueueDeclareOptions::exclusive(), FieldTable::new())
        .unwrap();
    drop(ch);
    conn.close();
    assert_eq!(code(&broker.queue_stats("/", "mine").unwrap_err()), 404);
}

#[test]
fn exclusive_queues_belong_to_their_connection() {
    let (broker, owner, ch) = setup();
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    ch.queue_declare("mine", exclusive, FieldTable::new())
        .unwrap();
    let other = broker.connect("/").unwrap();
    type Attempt = fn(&warrenmq::Channel) -> warrenmq::Error;
    let attempts: [(&str, Attempt); 7] = [
        ("declare", |c| {
            c.queue_declare(
                "mine",
                QueueDeclareOptions {
                    exclusive: true,
                    ..Default::default()
                },
                FieldTable::new(),
            )
            .unwrap_err()
        }),
        ("passive declare", |c| {
            c.queue_declare("mine", QueueDeclareOptions::passive(), FieldTable::new())
                .unwrap_err()
        }),
        ("consume", |c| {
            c.basic_consume("mine", ConsumeOptions::default())
                .unwrap_err()
        }),
        ("get", |c| {
            c.basic_get("mine", GetOptions::default()).unwrap_err()
        }),
        ("bind", |c| {
            c.queue_bind("mine", "amq.fanout", "", FieldTable::new())
                .unwrap_err()
        }),
        ("purge", |c| c.queue_purge("mine").unwrap_err()),
        ("delete", |c| {
            c.queue_delete("mine", QueueDeleteOptions::default())
                .unwrap_err()
        }),
    ];
    for (what, attempt) in attempts {
        let c = other.open_channel().unwrap();
        let err = attempt(&c);
        assert_eq!(err.to_string(), LOCKED, "{what}");
        assert!(c.is_closed(), "{what} closes the channel");
        assert!(!other.is_closed(), "{what} leaves the connection open");
    }
    // Anyone may publish to it; another channel of the owner may use it.
    let c = other.open_channel().unwrap();
    publish(&c, "", "mine", "from another connection");
    let owner_ch2 = owner.open_channel().unwrap();
    assert_eq!(drain(&owner_ch2, "mine"), ["from another connection"]);
    // It outlives the declaring channel and dies with the connection.
    ch.close();
    assert!(broker.queue_stats("/", "mine").is_ok());
    drop(owner_ch2);
    owner.close();
    assert_eq!(code(&broker.queue_stats("/", "mine").unwrap_err()), 404);
    let c = other.open_channel().unwrap();
    c.queue_declare("mine", QueueDeclareOptions::default(), FieldTable::new())
        .unwrap();
}

#[test]
fn redeclaring_with_another_exclusive_flag_is_resource_locked() {
    let (_b, conn, ch) = setup();
    ch.queue_declare(
        "mine",
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::new(),
    )
    .unwrap();
    let err = ch
        .queue_declare("mine", QueueDeclareOptions::default(), FieldTable::new())
        .unwrap_err();
    assert_eq!(err.to_string(), LOCKED);
    let ch = conn.open_channel().unwrap();
    declare_queue(&ch, "shared");
    let err = ch
        .queue_declare(
            "shared",
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::new(),
        )
        .unwrap_err();
    assert_eq!(code(&err), 405);
}

#[test]
fn auto_delete_queues_go_with_their_last_consumer() {
    let (broker, conn, ch) = setup();
    let auto = QueueDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    ch.queue_declare("auto", auto, FieldTable::new()).unwrap();
    publish(&ch, "", "auto", "x");
    // Never consumed (basic_get does not count): it stays.
    let _ = ch.basic_get("auto", GetOptions::no_ack()).unwrap();
    assert!(broker.queue_stats("/", "auto").is_ok());
    let c1 = ch.basic_consume("auto", ConsumeOptions::default()).unwrap();
    let ch2 = conn.open_channel().unwrap();
    let c2 = ch2
        .basic_consume("auto", ConsumeOptions::default())
        .unwrap();
    drop(c1);
    assert_eq!(broker.queue_stats("/", "auto").unwrap().consumers, 1);
    // Closing the consumer's channel counts as its going.
    drop(c2);
    ch2.close();
    assert_eq!(code(&broker.queue_stats("/", "auto").unwrap_err()), 404);
}

#[test]
fn auto_delete_exchanges_go_with_their_last_binding() {
    let (broker, _c, ch) = setup();
    let auto = ExchangeDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    ch.exchange_declare("ax", ExchangeKind::Fanout, auto, FieldTable::new())
        .unwrap();
    declare_queue(&ch, "a");
    declare_queue(&ch, "b");
    // Never bound: it stays.
    assert!(broker.exchange_stats("/", "ax").is_ok());
    ch.queue_bind("a", "ax", "", FieldTable::new()).unwrap();
    ch.queue_bind("b", "ax", "", FieldTable::new()).unwrap();
    ch.queue_unbind("a", "ax", "", FieldTable::new()).unwrap();
    assert!(broker.exchange_stats("/", "ax").is_ok());
    // Deleting the last bound queue removes the last binding.
    ch.queue_delete("b", QueueDeleteOptions::default()).unwrap();
    assert_eq!(code(&broker.exchange_stats("/", "ax").unwrap_err()), 404);
}

#[test]
fn a_channel_error_leaves_the_connection_and_other_channels_working() {
    let (broker, conn, ch) = setup();
    let ch2 = conn.open_channel().unwrap();
    declare_queue(&ch2, "q");
    let err = ch.queue_declare("missing", QueueDeclareOptions::passive(), FieldTable::new());
    assert_eq!(code(&err.unwrap_err()), 404);
    assert!(ch.is_closed());
    let later = ch
        .queue_declare("q", QueueDeclareOptions::default(), FieldTable::new())
        .unwrap_err();
    assert_eq!(code(&later), 504);
    assert_eq!(
        later.to_string(),
        "CHANNEL_ERROR - channel is closed by NOT_FOUND - no queue 'missing' in vhost '/'"
    );
    publish(&ch2, "", "q", "still working");
    assert_eq!(drain(&ch2, "q"), ["still working"]);
    let other = broker.connect("/").unwrap().open_channel().unwrap();
    declare_queue(&other, "r");
}

#[test]
fn a_connection_error_closes_the_connection() {
    let (_b, conn, ch) = setup();
    let ch2 = conn.open_channel().unwrap();
    let err = ch
        .exchange_declare(
            "x",
            ExchangeKind::Custom("bogus".into()),
            ExchangeDeclareOptions::default(),
            FieldTable::new(),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "COMMAND_INVALID - unknown exchange type 'bogus'"
    );
    assert!(conn.is_closed());
    assert_eq!(
        code(&ch2.basic_get("q", GetOptions::default()).unwrap_err()),
        320
    );
}

#[test]
fn channels_can_be_shared_across_threads() {
    let (broker, conn, _ch) = setup();
    let ch = conn.open_channel().unwrap();
    declare_queue(&ch, "q");
    std::thread::scope(|s| {
        for t in 0..4 {
            let ch = &ch;
            s.spawn(move || {
                for i in 0..250 {
                    publish(ch, "", "q", &format!("{t}-{i}"));
                }
            });
        }
    });
    assert_eq!(broker.queue_stats("/", "q").unwrap().messages_ready, 1000);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let conn_ch = conn.open_channel().unwrap();
            std::thread::spawn(move || {
                let mut n = 0;
                while conn_ch
                    .basic_get("q", GetOptions::no_ack())
                    .unwrap()
                    .is_some()
                {
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(total, 1000);
}
