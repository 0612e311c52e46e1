//! Real Python clients against Warren's wire listener: the seed tutorial's py-amqp programs,
//! and the differential scenario suite (tests/python/scenarios.py, pika) run against both
//! RabbitMQ on 127.0.0.1:5672 and Warren, whose observations must be identical.
//!
//! Without python3 (with `amqp` and `pika`) or RabbitMQ these tests are reported as ignored
//! with the reason; under `CI=true` they run and fail (see `warren_interop::trial`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use warren_interop::{listening, serve, trial, Need};

fn main() -> ExitCode {
    warren_interop::run(vec![
        trial("smoke", &[], smoke),
        trial(
            "seed_programs_run_unchanged_over_the_wire",
            &[Need::Python("amqp")],
            seed_programs_run_unchanged_over_the_wire,
        ),
        trial(
            "scenarios_match_rabbitmq",
            &[Need::Python("pika"), Need::RabbitMq],
            scenarios_match_rabbitmq,
        ),
    ])
}

/// The path of a script in tests/python/.
fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}

/// Runs a Python script to completion with a time limit.
fn run_python(name: &str, args: &[&str]) -> Output {
    Command::new("timeout")
        .arg("120")
        .arg("python3")
        .arg(script(name))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("python3 runs")
}

fn smoke() {
    let (_broker, server) = serve();
    assert!(listening(&server.local_addr().to_string()));
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

fn seed_programs_run_unchanged_over_the_wire() {
    let (_broker, server) = serve();
    let host = server.local_addr().to_string();
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

fn scenarios_match_rabbitmq() {
    let (_broker, server) = serve();
    let port = server.local_addr().port().to_string();
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
