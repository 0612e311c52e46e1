//! Issue 11 against the real thing: the differential scenarios of
//! tests/python/features_scenarios.py (binding durability, direct reply-to, quorum declare
//! errors, the delivery limit and `x-delivery-count`) run unchanged against the local
//! RabbitMQ and against Warren, each in a vhost of the same fresh name that the test creates
//! and deletes; and a stock Celery worker (pyamqp transport, default settings, events on,
//! the `rpc://` result backend) runs tasks against Warren's listener with its default
//! options.
//!
//! Without python3 (with `pika`, `celery`), RabbitMQ or `rabbitmqctl` these tests are
//! reported as ignored with the reason; under `CI=true` they run and fail.

use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Output, Stdio};
use std::time::{Duration, Instant};

use warren_interop::{assert_same_observations, serve, trial, warren_vhost, Need, RabbitVhost};
use warrenmq::Broker;

fn main() -> ExitCode {
    warren_interop::run(vec![
        trial(
            "features_match_rabbitmq",
            &[Need::Python("pika"), Need::RabbitMq, Need::Rabbitmqctl],
            features_match_rabbitmq,
        ),
        trial(
            "a_celery_worker_runs_tasks_against_warren",
            &[Need::Python("celery")],
            a_celery_worker_runs_tasks_against_warren,
        ),
    ])
}

fn python_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python")
}

/// Runs a Python script of tests/python to completion with a time limit.
fn run_python(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new("timeout")
        .arg("180")
        .arg("python3")
        .arg(python_dir().join(name))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(python_dir())
        .stdin(Stdio::null())
        .output()
        .expect("python3 runs")
}

fn features_match_rabbitmq() {
    let vhost = format!("warren-features-{}", std::process::id());
    let _rabbit = RabbitVhost::create(&vhost);
    let (broker, server) = serve();
    warren_vhost(&broker, &vhost);
    let port = server.local_addr().port().to_string();
    let rabbit = run_python("features_scenarios.py", &["127.0.0.1", "5672", &vhost], &[]);
    assert!(rabbit.status.success(), "against RabbitMQ: {rabbit:?}");
    let warren = run_python("features_scenarios.py", &["127.0.0.1", &port, &vhost], &[]);
    assert!(warren.status.success(), "against Warren: {warren:?}");
    let rabbit: serde_json::Value = serde_json::from_slice(&rabbit.stdout).expect("JSON");
    let warren: serde_json::Value = serde_json::from_slice(&warren.stdout).expect("JSON");
    assert_same_observations(&warren, &rabbit, 4);
}

/// A Celery worker process, stopped (warm shutdown, then killed) on drop.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn a_celery_worker_runs_tasks_against_warren() {
    let broker = Broker::in_memory();
    let server = broker.serve("127.0.0.1:0").expect("binds");
    let url = format!("amqp://guest:guest@{}//", server.local_addr());
    let worker = Command::new("python3")
        .args([
            "-m",
            "celery",
            "-A",
            "celery_tasks",
            "worker",
            "-E",
            "-c",
            "2",
        ])
        .args(["--loglevel=WARNING", "--without-mingle", "--without-gossip"])
        .env("CELERY_BROKER", &url)
        .current_dir(python_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("the celery worker starts");
    let _worker = Worker(worker);
    let out = run_python("celery_driver.py", &[], &[("CELERY_BROKER", &url)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the Celery driver failed: {out:?}");
    let result: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(result["delay_get"], 5, "{text}");
    assert_eq!(
        result["group"],
        serde_json::json!([0, 2, 4, 6, 8]),
        "{text}"
    );
    assert_eq!(result["retry"], "ok after 2 retries", "{text}");
    assert_eq!(result["countdown"], 2, "{text}");
    assert!(
        result["countdown_waited"].as_f64().unwrap() >= 0.9,
        "{text}"
    );
    let pings = result["ping"]
        .as_object()
        .expect("an answer to inspect ping");
    assert_eq!(pings.len(), 1, "{text}");
    assert!(pings.values().all(|p| p["ok"] == "pong"), "{text}");
    // Events are on: the worker's event exchange exists and heartbeats flow to it.
    let events = broker
        .exchange_stats("/", "celeryev")
        .expect("celeryev exists");
    assert!(events.published > 0, "{events:?}");
}
