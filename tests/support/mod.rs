//! Helpers shared by the wire tests: a `warren-server` child process on a free port, and
//! the rule for tests that need tools outside Cargo (Python clients, a RabbitMQ): skip with
//! a reason, unless `CI=true`, where a missing tool is a failure.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// Returns `true` when running in CI, where nothing may be skipped.
pub(crate) fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips the calling test with `reason`, or fails it under `CI=true`.
#[track_caller]
pub(crate) fn skip(reason: &str) {
    assert!(!in_ci(), "CI=true and this test cannot run: {reason}");
    eprintln!("skipped: {reason}");
}

/// Returns `true` if `python3` can import every module named, else skips (or fails in CI).
#[track_caller]
pub(crate) fn python_with(modules: &[&str]) -> bool {
    let code = format!("import {}", modules.join(", "));
    let ok = Command::new("python3")
        .args(["-c", &code])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        skip(&format!(
            "python3 with {modules:?} is not available (pip install amqp pika)"
        ));
    }
    ok
}

/// The path of a script in tests/python/.
pub(crate) fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}

/// Runs a Python script to completion with a time limit.
pub(crate) fn run_python(name: &str, args: &[&str]) -> Output {
    let mut child = Command::new("timeout")
        .arg("120")
        .arg("python3")
        .arg(script(name))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 starts");
    let _ = child.stdin.take();
    child.wait_with_output().expect("python3 runs")
}

/// A `warren-server` process serving on a free loopback port; killed on drop.
pub(crate) struct ServerProcess {
    child: Child,
    /// The address it listens on.
    pub(crate) addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `warren-server --listen 127.0.0.1:0` with extra arguments and reads the
    /// address it bound from its first line.
    pub(crate) fn start(extra: &[&str]) -> ServerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_warren-server"))
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("warren-server starts");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("warren-server prints its address");
        let addr = line
            .trim()
            .rsplit(' ')
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        ServerProcess { child, addr }
    }

    /// `host:port`, as py-amqp takes it.
    pub(crate) fn host_port(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Returns `true` if something accepts TCP connections on `addr`.
pub(crate) fn listening(addr: &str) -> bool {
    addr.parse()
        .ok()
        .and_then(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).ok())
        .is_some()
}
