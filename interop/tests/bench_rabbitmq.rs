//! `warren-bench wire` against the local RabbitMQ: one run measures Warren's listener and
//! RabbitMQ (127.0.0.1:5672, guest/guest) on the same workload, and reports both rows and
//! the Warren ÷ RabbitMQ ratio. The runner declares one queue named after its process id on
//! vhost `/` and deletes it after each round.
//!
//! Without RabbitMQ, or without a built `warren-bench` (`cargo test --workspace
//! --all-features` builds it; see `warren_interop::warren_bench`), the test is reported as
//! ignored with the reason; under `CI=true` it runs and fails.

use std::process::ExitCode;

use warren_interop::{trial, warren_bench, Need, RABBITMQ};

#[path = "../../tests/common/bench_cli.rs"]
mod bench_cli;

use bench_cli::{assert_positive, run_json};

fn main() -> ExitCode {
    warren_interop::run(vec![trial(
        "wire_measures_rabbitmq_in_the_same_run",
        &[Need::RabbitMq, Need::WarrenBench],
        wire_measures_rabbitmq_in_the_same_run,
    )])
}

fn wire_measures_rabbitmq_in_the_same_run() {
    let bin = warren_bench().expect("checked by the trial");
    let report = run_json(
        &bin,
        &[
            "wire",
            "--messages",
            "2000",
            "--rounds",
            "1",
            "--rabbitmq",
            RABBITMQ,
            "--json",
        ],
    );
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
