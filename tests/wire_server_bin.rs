//! The `warren-server` binary: its address line, `--strict-binding-durability`, `--user` /
//! `--password`, and `--data-dir`: confirmed persistent messages survive a crash (or, built
//! without the `persistence` feature, the flag is refused with a clear message); a database
//! that cannot be shown complete needs `--allow-rollback`.
#![cfg(feature = "wire")]

mod common;

use common::server_process::ServerProcess;

use std::process::Command;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};

async fn connect(server: &ServerProcess, user: &str, password: &str) -> lapin::Result<Connection> {
    let uri = format!("amqp://{user}:{password}@{}/%2f", server.addr);
    Connection::connect(&uri, ConnectionProperties::default()).await
}

/// Binds a durable exchange to a non-durable queue; returns the error text, if any.
async fn mixed_binding(server: &ServerProcess) -> Option<String> {
    let conn = connect(server, "guest", "guest").await.expect("connects");
    let ch = conn.create_channel().await.expect("a channel");
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.exchange_declare(
        "d".into(),
        ExchangeKind::Direct,
        durable,
        FieldTable::default(),
    )
    .await
    .expect("exchange");
    ch.queue_declare(
        "t".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("queue");
    ch.queue_bind(
        "t".into(),
        "d".into(),
        "k".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .err()
    .map(|e| e.to_string())
}

#[tokio::test]
async fn smoke() {
    let server = ServerProcess::start(&[]);
    assert!(server.addr.ip().is_loopback());
    assert_ne!(server.addr.port(), 0);
    let conn = connect(&server, "guest", "guest").await.expect("connects");
    assert!(conn.status().connected());
}

#[tokio::test]
async fn mixed_durability_binds_unless_strict() {
    let default = ServerProcess::start(&[]);
    assert_eq!(mixed_binding(&default).await, None);
    let strict = ServerProcess::start(&["--strict-binding-durability"]);
    let err = mixed_binding(&strict).await.expect("refused when strict");
    assert!(err.contains("strict binding durability is on"), "{err}");
}

#[tokio::test]
async fn credentials_come_from_the_command_line() {
    let server = ServerProcess::start(&["--user", "app", "--password", "s3cret"]);
    assert!(connect(&server, "guest", "guest").await.is_err());
    connect(&server, "app", "s3cret")
        .await
        .expect("the configured login works");
}

#[cfg(feature = "persistence")]
#[tokio::test]
async fn data_dir_keeps_confirmed_messages_across_a_crash() {
    use lapin::options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions};
    use lapin::{BasicProperties, Confirmation};

    let dir = tempfile::tempdir().expect("a temporary directory");
    let data_dir = dir.path().join("data");
    let data_dir = data_dir.to_str().expect("a UTF-8 path");
    let server = ServerProcess::start(&["--data-dir", data_dir]);
    let conn = connect(&server, "guest", "guest").await.expect("connects");
    let ch = conn.create_channel().await.expect("a channel");
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare("kept".into(), durable, FieldTable::default())
        .await
        .expect("queue");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    for i in 0..20 {
        let mode = if i == 7 { 1 } else { 2 };
        let confirm = ch
            .basic_publish(
                "".into(),
                "kept".into(),
                BasicPublishOptions::default(),
                format!("m{i}").as_bytes(),
                BasicProperties::default().with_delivery_mode(mode),
            )
            .await
            .expect("published")
            .await
            .expect("confirmed");
        assert_eq!(confirm, Confirmation::Ack(None));
    }
    // Killed (SIGKILL) with the connection open: only what is on disk survives.
    drop(server);

    let server = ServerProcess::start(&["--data-dir", data_dir]);
    let conn = connect(&server, "guest", "guest")
        .await
        .expect("reconnects");
    let ch = conn.create_channel().await.expect("a channel");
    let mut bodies = Vec::new();
    while let Some(msg) = ch
        .basic_get("kept".into(), BasicGetOptions { no_ack: true })
        .await
        .expect("get")
    {
        bodies.push(String::from_utf8(msg.delivery.data).expect("UTF-8"));
    }
    let expected: Vec<String> = (0..20)
        .filter(|i| *i != 7)
        .map(|i| format!("m{i}"))
        .collect();
    assert_eq!(
        bodies, expected,
        "persistent messages survive, the transient one does not"
    );
}

/// Publishes `n` persistent messages `m0..` to the durable queue `kept`, with confirms.
#[cfg(feature = "persistence")]
async fn publish_kept(ch: &lapin::Channel, n: usize) {
    use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
    use lapin::{BasicProperties, Confirmation};

    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare("kept".into(), durable, FieldTable::default())
        .await
        .expect("queue");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    for i in 0..n {
        let confirm = ch
            .basic_publish(
                "".into(),
                "kept".into(),
                BasicPublishOptions::default(),
                format!("m{i}").as_bytes(),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("published")
            .await
            .expect("confirmed");
        assert_eq!(confirm, Confirmation::Ack(None));
    }
}

/// SIGTERM: the server tells its clients (320 CONNECTION_FORCED), closes the store cleanly
/// and exits 0; on restart a message that was never delivered comes back with
/// `redelivered = false` (as after a clean RabbitMQ stop), one that was delivered and not
/// acked with `redelivered = true`.
#[cfg(all(unix, feature = "persistence"))]
#[tokio::test]
async fn sigterm_stops_cleanly_and_a_restart_serves_undelivered_messages_as_new() {
    use lapin::options::BasicGetOptions;

    let dir = tempfile::tempdir().expect("a temporary directory");
    let data_dir = dir.path().join("data");
    let data_dir = data_dir.to_str().expect("a UTF-8 path");
    let mut server = ServerProcess::start(&["--data-dir", data_dir]);
    let conn = connect(&server, "guest", "guest").await.expect("connects");
    // A second client, driven by hand, to see exactly what the server says when it stops.
    let mut raw = common::raw_client::RawClient::open(server.addr);
    let ch = conn.create_channel().await.expect("a channel");
    publish_kept(&ch, 10).await;
    // m0 is delivered and left unacknowledged when the server stops.
    let got = ch
        .basic_get("kept".into(), BasicGetOptions { no_ack: false })
        .await
        .expect("get")
        .expect("a message");
    assert_eq!(got.delivery.data, b"m0");

    assert_eq!(server.terminate(), Some(0), "SIGTERM exits with status 0");
    let (code, text) = raw.connection_close();
    assert_eq!(code, 320);
    assert_eq!(
        text,
        "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"
    );
    drop(conn);

    let server = ServerProcess::start(&["--data-dir", data_dir]);
    let conn = connect(&server, "guest", "guest")
        .await
        .expect("reconnects");
    let ch = conn.create_channel().await.expect("a channel");
    let mut got = Vec::new();
    while let Some(msg) = ch
        .basic_get("kept".into(), BasicGetOptions { no_ack: true })
        .await
        .expect("get")
    {
        let body = String::from_utf8(msg.delivery.data).expect("UTF-8");
        got.push((body, msg.delivery.redelivered));
    }
    let expected: Vec<(String, bool)> = (0..10).map(|i| (format!("m{i}"), i == 0)).collect();
    assert_eq!(
        got, expected,
        "every message is back; only the delivered one is marked redelivered"
    );
}

/// A database whose witness is gone cannot be shown complete: refused with the way out
/// named, and opened with `--allow-rollback`.
#[cfg(feature = "persistence")]
#[test]
fn a_database_that_cannot_be_shown_complete_needs_allow_rollback() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let data_dir = dir.path().join("data");
    std::fs::create_dir(&data_dir).expect("data dir");
    drop(warrenmq::Broker::open(data_dir.join("warren.redb")).expect("a database"));
    std::fs::remove_file(data_dir.join("warren.redb.witness")).expect("a witness");
    let data_dir = data_dir.to_str().expect("a UTF-8 path");
    let out = Command::new(env!("CARGO_BIN_EXE_warren-server"))
        .args(["--listen", "127.0.0.1:0", "--data-dir", data_dir])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("database rolled back") && stderr.contains("--allow-rollback"),
        "{stderr}"
    );
    let server = ServerProcess::start(&["--data-dir", data_dir, "--allow-rollback"]);
    assert_ne!(server.addr.port(), 0);
}

#[cfg(not(feature = "persistence"))]
#[test]
fn data_dir_needs_the_persistence_feature() {
    let out = Command::new(env!("CARGO_BIN_EXE_warren-server"))
        .args(["--listen", "127.0.0.1:0", "--data-dir", "/tmp/warren-data"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("without the `persistence` feature"),
        "{stderr}"
    );
}

#[test]
fn unknown_flags_are_refused_with_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_warren-server"))
        .arg("--bogus")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: warren-server"));
}
