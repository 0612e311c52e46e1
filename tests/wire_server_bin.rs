//! The `warren-server` binary: its address line, `--allow-mixed-durability`, `--user` /
//! `--password`, and the refusal of `--data-dir` while persistence is not compiled in.
#![cfg(feature = "wire")]

mod support;

use std::process::Command;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use support::ServerProcess;

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
async fn mixed_durability_is_refused_unless_allowed() {
    let strict = ServerProcess::start(&[]);
    let err = mixed_binding(&strict).await.expect("refused by default");
    assert!(err.contains("PRECONDITION_FAILED"), "{err}");
    let lenient = ServerProcess::start(&["--allow-mixed-durability"]);
    assert_eq!(mixed_binding(&lenient).await, None);
}

#[tokio::test]
async fn credentials_come_from_the_command_line() {
    let server = ServerProcess::start(&["--user", "app", "--password", "s3cret"]);
    assert!(connect(&server, "guest", "guest").await.is_err());
    connect(&server, "app", "s3cret")
        .await
        .expect("the configured login works");
}

#[test]
fn data_dir_is_refused_until_persistence_exists() {
    let out = Command::new(env!("CARGO_BIN_EXE_warren-server"))
        .args(["--listen", "127.0.0.1:0", "--data-dir", "/tmp/warren-data"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("persistence is not compiled"), "{stderr}");
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
