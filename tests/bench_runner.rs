//! `warren-bench` end to end: each subcommand on a tiny workload with `--json` prints one
//! JSON object whose figures are positive numbers, so a broken runner fails CI.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

#[path = "common/bench_cli.rs"]
mod bench_cli;

use bench_cli::assert_positive;

/// Runs this build's `warren-bench` with `args` and parses its standard output as JSON.
#[track_caller]
fn run_json(args: &[&str]) -> Value {
    bench_cli::run_json(Path::new(env!("CARGO_BIN_EXE_warren-bench")), args)
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
