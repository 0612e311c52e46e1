//! Real Python clients against `warren-server`: the seed tutorial's py-amqp programs, and
//! the differential scenario suite (tests/python/scenarios.py, pika) run against both
//! RabbitMQ on 127.0.0.1:5672 and Warren, whose observations must be identical.
//!
//! Without python3 (with `amqp` and `pika`) or RabbitMQ these tests print why and pass,
//! except under `CI=true`, where they fail.
#![cfg(feature = "wire")]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use support::{python_with, run_python, script, ServerProcess};

#[test]
fn smoke() {
    let server = ServerProcess::start(&[]);
    assert!(support::listening(&server.host_port()));
}

/// Waits until the queue has a consumer, asking over the wire with py-amqp.
fn wait_for_consumer(host: &str, queue: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let out = run_python("queue_info.py", &[host, queue]);
        let text = String::from_utf8_lossy(&out.stdout);
        if text.split_whitespace().nth(1).is_some_and(|c| c != "0") {
            return;
        }
        thread::sleep(Duration::from_millis(100));
    }
    panic!("no consumer appeared on '{queue}'");
}

#[test]
fn seed_programs_run_unchanged_over_the_wire() {
    if !python_with(&["amqp"]) {
        return;
    }
    let server = ServerProcess::start(&[]);
    let host = server.host_port();
    let mut consumer = Command::new("python3")
        .arg("-u")
        .arg(script("amqp_consumer.py"))
        .arg(&host)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the consumer starts");
    let (tx, rx) = mpsc::channel();
    let stdout = consumer.stdout.take().expect("piped stdout");
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    wait_for_consumer(&host, "po_box");

    let published = run_python("amqp_publisher.py", &[&host]);
    assert!(published.status.success(), "{published:?}");
    let sent: Vec<String> = String::from_utf8_lossy(&published.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(sent.len(), 10);

    let mut received = Vec::new();
    while received.len() < 10 {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => received.push(line),
            Err(_) => break,
        }
    }
    let _ = consumer.kill();
    let _ = consumer.wait();
    let expected: Vec<String> = sent
        .iter()
        .map(|body| format!("Received: {body} from channel #1"))
        .collect();
    assert_eq!(received, expected);
    assert!(sent[0].contains(r#""id": "0111""#));
}

#[test]
fn scenarios_match_rabbitmq() {
    if !python_with(&["pika"]) {
        return;
    }
    if !support::listening("127.0.0.1:5672") {
        support::skip("no RabbitMQ listens on 127.0.0.1:5672");
        return;
    }
    let server = ServerProcess::start(&[]);
    let port = server.addr.port().to_string();
    let rabbit = run_python("scenarios.py", &["127.0.0.1", "5672"]);
    assert!(rabbit.status.success(), "against RabbitMQ: {rabbit:?}");
    let warren = run_python("scenarios.py", &["127.0.0.1", &port]);
    assert!(warren.status.success(), "against Warren: {warren:?}");
    let rabbit: serde_json::Value = serde_json::from_slice(&rabbit.stdout).expect("JSON");
    let warren: serde_json::Value = serde_json::from_slice(&warren.stdout).expect("JSON");
    // Compare section by section for a readable failure.
    let sections = rabbit.as_object().expect("an object of sections");
    assert!(sections.len() >= 6);
    for (name, expected) in sections {
        assert_eq!(
            &warren[name], expected,
            "section '{name}' differs (left: Warren, right: RabbitMQ)"
        );
    }
    assert_eq!(warren, rabbit);
}
