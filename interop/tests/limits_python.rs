//! Issue 10 against the real thing: tests/python/limits_scenarios.py (update-secret, the
//! server properties and capabilities, the channel count limit, consumers, the message size
//! limit, and the close handshake with a client still writing) runs unchanged against the
//! local RabbitMQ and against Warren, whose observations must be identical; the cases of
//! pika's own `TestUpdateSecret` and `TestConnectionProperties` are among them.
//!
//! Without python3 (with `pika`) or RabbitMQ these tests are reported as ignored with the
//! reason; under `CI=true` they run and fail.

use std::path::PathBuf;
use std::process::{Command, ExitCode, Output, Stdio};

use warren_interop::{serve, trial, Need};

fn main() -> ExitCode {
    warren_interop::run(vec![trial(
        "limits_match_rabbitmq",
        &[Need::Python("pika"), Need::RabbitMq],
        limits_match_rabbitmq,
    )])
}

/// Runs tests/python/limits_scenarios.py against `port` on the loopback address.
fn run_scenarios(port: &str) -> Output {
    Command::new("timeout")
        .arg("180")
        .arg("python3")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/limits_scenarios.py"))
        .args(["127.0.0.1", port])
        .stdin(Stdio::null())
        .output()
        .expect("python3 runs")
}

fn limits_match_rabbitmq() {
    let (_broker, server) = serve();
    let port = server.local_addr().port().to_string();
    let rabbit = run_scenarios("5672");
    assert!(rabbit.status.success(), "against RabbitMQ: {rabbit:?}");
    let warren = run_scenarios(&port);
    assert!(warren.status.success(), "against Warren: {warren:?}");
    let rabbit: serde_json::Value = serde_json::from_slice(&rabbit.stdout).expect("JSON");
    let warren: serde_json::Value = serde_json::from_slice(&warren.stdout).expect("JSON");
    // pika's TestConnectionProperties and TestUpdateSecret, whatever RabbitMQ says.
    let all_true = serde_json::json!([true, true, true, true]);
    assert_eq!(warren["properties"]["supported"], all_true);
    assert_eq!(
        warren["update_secret"]["after"],
        serde_json::json!([true, true])
    );
    let sections = rabbit.as_object().expect("an object of sections");
    assert!(sections.len() >= 6);
    for (name, expected) in sections {
        assert_eq!(
            &warren[name], expected,
            "section '{name}' differs (left: Warren, right: RabbitMQ)"
        );
    }
}
