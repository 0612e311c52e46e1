//! `warren-bench` end to end: each subcommand on a tiny workload with `--json` prints one
//! JSON object whose figures are positive numbers, so a broken runner fails CI.

use std::io::Read;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longest a tiny run may take (they take about a second in a debug build): a runner that
/// hangs fails the test instead of stalling CI.
const LIMIT: Duration = Duration::from_secs(120);

/// Runs `warren-bench` with `args` and parses its standard output as JSON.
#[track_caller]
fn run_json(args: &[&str]) -> Value {
    let mut child = Command::new(env!("CARGO_BIN_EXE_warren-bench"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("warren-bench starts");
    let began = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waits for warren-bench") {
            break status;
        }
        if began.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("warren-bench {args:?} still running after {LIMIT:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let (mut stdout, mut stderr) = (Vec::new(), String::new());
    if let Some(mut out) = child.stdout.take() {
        out.read_to_end(&mut stdout).expect("reads stdout");
    }
    if let Some(mut err) = child.stderr.take() {
        err.read_to_string(&mut stderr).expect("reads stderr");
    }
    assert!(status.success(), "warren-bench {args:?} failed: {stderr}");
    serde_json::from_slice(&stdout).unwrap_or_else(|e| {
        panic!(
            "warren-bench {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&stdout)
        )
    })
}

/// Checks that every key holds a positive number.
#[track_caller]
fn assert_positive(report: &Value, keys: &[&str]) {
    for key in keys {
        let value = report[key].as_f64();
        assert!(
            value.is_some_and(|v| v > 0.0 && v.is_finite()),
            "{key} = {} in {report}",
            report[key]
        );
    }
}

#[test]
fn smoke() {
    let report = run_json(&[
        "throughput",
        "--messages",
        "2000",
        "--rounds",
        "1",
        "--json",
    ]);
    assert_positive(
        &report,
        &["messages", "warren_msgs_per_s", "crossbeam_msgs_per_s"],
    );
}

#[test]
fn throughput_reports_every_figure() {
    for exchange in ["direct", "topic", "fanout"] {
        let report = run_json(&[
            "throughput",
            "--exchange",
            exchange,
            "--producers",
            "2",
            "--consumers",
            "2",
            "--ack",
            "manual",
            "--messages",
            "2000",
            "--rounds",
            "1",
            "--json",
        ]);
        assert_positive(
            &report,
            &[
                "messages",
                "warren_msgs_per_s",
                "warren_ack_multiple_msgs_per_s",
                "crossbeam_msgs_per_s",
                "ratio",
                "ratio_ack_multiple",
                "producers",
                "consumers",
                "size",
            ],
        );
        assert_eq!(report["exchange"], exchange);
        assert_eq!(report["ack"], "manual");
        let deliveries = if exchange == "fanout" { 4000 } else { 2000 };
        assert_eq!(report["deliveries"], deliveries);
    }
}

#[cfg(feature = "persistence")]
#[test]
fn persistence_reports_every_figure() {
    let report = run_json(&[
        "persistence",
        "--messages",
        "2000",
        "--rounds",
        "1",
        "--backlog-messages",
        "3000",
        "--budget-mib",
        "1",
        "--json",
    ]);
    assert_positive(
        &report,
        &[
            "messages",
            "persistent_confirmed_msgs_per_s_100b",
            "persistent_confirmed_msgs_per_s_4k",
            "transient_msgs_per_s_100b",
            "transient_msgs_per_s_4k",
            "fill_msgs_per_s",
            "recovery_seconds",
            "recovered_messages",
            "rss_bytes_in_memory",
            "rss_bytes_per_message",
            "backlog_publish_msgs_per_s",
            "backlog_rss_bytes_queued",
            "backlog_rss_bytes_after_restart",
            "backlog_drain_msgs_per_s",
        ],
    );
    assert_eq!(report["recovered_messages"], 2000);
    assert_eq!(report["backlog_drained"], 3000);
}

#[cfg(feature = "wire")]
#[test]
fn wire_reports_warren_and_skips_an_absent_rabbitmq() {
    // Port 1 is never a RabbitMQ: the runner must report Warren alone.
    let report = run_json(&[
        "wire",
        "--messages",
        "2000",
        "--rounds",
        "1",
        "--rabbitmq",
        "127.0.0.1:1",
        "--json",
    ]);
    assert_positive(
        &report,
        &[
            "messages",
            "warren_publish_msgs_per_s",
            "warren_consume_msgs_per_s",
            "warren_msgs_per_s",
        ],
    );
    assert!(report["rabbitmq_msgs_per_s"].is_null(), "{report}");
    assert!(report["note"].is_string(), "{report}");
}

#[cfg(feature = "wire")]
#[test]
fn wire_measures_rabbitmq_in_the_same_run() {
    // The RabbitMQ row needs a RabbitMQ at 127.0.0.1:5672 (guest/guest). Without one this test
    // says so and returns, except under `CI=true`, where nothing may be skipped (as
    // `warren_interop::trial` does for the interop tests). The runner declares one queue named
    // after its process id on vhost `/` and deletes it after each round.
    let addr = "127.0.0.1:5672";
    let reachable = std::net::TcpStream::connect_timeout(
        &addr.parse().expect("an address"),
        Duration::from_secs(1),
    )
    .is_ok();
    if !reachable {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "RabbitMQ is not listening on {addr}, and CI must test the RabbitMQ row"
        );
        eprintln!("skipped: RabbitMQ is not listening on {addr}");
        return;
    }
    let report = run_json(&[
        "wire",
        "--messages",
        "2000",
        "--rounds",
        "1",
        "--rabbitmq",
        addr,
        "--json",
    ]);
    assert_positive(
        &report,
        &[
            "warren_publish_msgs_per_s",
            "warren_consume_msgs_per_s",
            "warren_msgs_per_s",
            "rabbitmq_publish_msgs_per_s",
            "rabbitmq_consume_msgs_per_s",
            "rabbitmq_msgs_per_s",
            "warren_over_rabbitmq",
        ],
    );
    assert!(report["note"].is_null(), "{report}");
    let ratio = report["warren_over_rabbitmq"].as_f64().expect("a ratio");
    let expected = report["warren_msgs_per_s"].as_f64().expect("a rate")
        / report["rabbitmq_msgs_per_s"].as_f64().expect("a rate");
    assert!((ratio - expected).abs() <= 1e-9 * expected, "{report}");
}

/// Writes `text` to a new file in `dir` and returns its path as a string.
fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("writes a workload file");
    path.to_str().expect("a UTF-8 path").to_owned()
}

#[test]
fn topic_reads_the_users_bindings_and_keys() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // Six bindings to five destinations: `q_nyse` is bound twice, `#` and `logs.error` have
    // no name and get a destination each.
    let patterns = write(
        dir.path(),
        "patterns.txt",
        "stock.*.nyse q_nyse\nstock.#  q_all\n*.usd.*\tq_usd\nstock.eur.nyse q_nyse\n\n#\nlogs.error\n",
    );
    let keys = write(
        dir.path(),
        "keys.txt",
        "stock.usd.nyse\nstock.eur.nyse\nlogs.error\nother\nstock\n",
    );
    let report = run_json(&[
        "topic",
        "--patterns",
        &patterns,
        "--keys",
        &keys,
        "--seconds",
        "0.3",
        "--rabbitmq",
        "127.0.0.1:1",
        "--json",
    ]);
    assert_eq!(report["bindings"], 6);
    assert_eq!(report["destinations"], 5);
    assert_eq!(report["routing_keys"], 5);
    // Destinations reached: 4 (nyse, all, usd, #), 3 (nyse once, all, #), 2, 1 (#), 2
    // (`stock.#` matches `stock`, and #): 12 over 5 keys.
    assert_eq!(report["destinations_per_key"], 2.4);
    assert_positive(
        &report,
        &[
            "matches_per_s_uncached",
            "matches_per_s_cached",
            "naive_matches_per_s",
            "floor_lookups_per_s",
            "binds_per_s",
        ],
    );
    for lookup in ["uncached", "cached", "naive", "floor"] {
        let (p50, p99) = (
            &report[format!("p50_ns_{lookup}")],
            &report[format!("p99_ns_{lookup}")],
        );
        assert!(
            p50.is_u64() && p99.as_u64() >= p50.as_u64(),
            "{lookup}: {report}"
        );
    }
    assert!(report["rabbitmq_publishes_per_s"].is_null(), "{report}");
    assert!(report["rabbitmq_note"].is_string(), "{report}");
    assert_eq!(report["patterns_file"], patterns.as_str());
}

#[test]
fn topic_files_come_in_pairs_and_missing_ones_are_named() {
    let out = Command::new(env!("CARGO_BIN_EXE_warren-bench"))
        .args(["topic", "--patterns", "p.txt"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--keys"),
        "{out:?}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_warren-bench"))
        .args([
            "topic",
            "--patterns",
            "/nonexistent/p.txt",
            "--keys",
            "/nonexistent/k.txt",
        ])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/p.txt"), "{stderr}");
}

#[test]
fn topic_generates_a_table_by_default() {
    let report = run_json(&[
        "topic",
        "--bindings",
        "2000",
        "--key-distribution",
        "skewed",
        "--seconds",
        "0.3",
        "--json",
    ]);
    assert_eq!(report["bindings"], 2000);
    assert_eq!(report["destinations"], 2000);
    assert_eq!(report["key_distribution"], "skewed");
    assert_positive(
        &report,
        &[
            "matches_per_s_uncached",
            "matches_per_s_cached",
            "naive_matches_per_s",
            "floor_lookups_per_s",
            "table_bytes",
        ],
    );
    assert!(report["rabbitmq_note"].is_null(), "{report}");
}
