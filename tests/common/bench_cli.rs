//! Running `warren-bench` with `--json` and checking its figures: shared by
//! tests/bench_runner.rs and the interop crate's tests/bench_rabbitmq.rs (through `#[path]`
//! modules).
#![allow(dead_code, unreachable_pub)]

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longest a tiny run may take (they take about a second in a debug build): a runner that
/// hangs fails the test instead of stalling CI.
const LIMIT: Duration = Duration::from_secs(120);

/// Runs the `warren-bench` binary `bin` with `args` and parses its standard output as JSON.
#[track_caller]
pub fn run_json(bin: &Path, args: &[&str]) -> Value {
    let mut child = Command::new(bin)
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
pub fn assert_positive(report: &Value, keys: &[&str]) {
    for key in keys {
        let value = report[key].as_f64();
        assert!(
            value.is_some_and(|v| v > 0.0 && v.is_finite()),
            "{key} = {} in {report}",
            report[key]
        );
    }
}
