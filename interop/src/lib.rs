//! Support for Warren's interop tests: the rule for tests that need something Cargo does not
//! build (a Python AMQP client, the local RabbitMQ), and a broker served on a free port.
//!
//! # Tests that need the outside world
//!
//! A test declares what it needs with [`Need`] and is made into a [`Trial`] by [`trial`]
//! (those test files use the `libtest-mimic` harness, `harness = false`). When something is
//! missing, the test runner reports the test as *ignored*, with the reason in brackets on its
//! line (`test [skipped: python3 cannot import pika] scenarios_match_rabbitmq ... ignored`)
//! and in the closing count; under `CI=true` the same test runs and fails with that reason,
//! because CI must test everything. `cargo test -- --include-ignored` also runs (and fails)
//! it.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

pub use libtest_mimic::{Arguments, Failed, Trial};

#[path = "../../tests/common/wire.rs"]
mod wire;

pub use wire::serve;

/// The address of the local RabbitMQ used as the oracle.
pub const RABBITMQ: &str = "127.0.0.1:5672";

/// A need and why it is not met (`None`: it is).
type Checked = (Need, Option<String>);

/// Something a test needs from outside Cargo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Need {
    /// `python3` that can import this module.
    Python(&'static str),
    /// A RabbitMQ accepting AMQP connections on [`RABBITMQ`].
    RabbitMq,
    /// `rabbitmqctl` able to talk to the local RabbitMQ node.
    Rabbitmqctl,
    /// `python3` and the `rabbitmqadmin` script RabbitMQ ships (see [`rabbitmqadmin`]).
    Rabbitmqadmin,
    /// The local RabbitMQ's management plugin answering on [`RABBITMQ_HTTP`] as guest.
    RabbitMqManagement,
    /// The `warren-bench` binary, built (see [`warren_bench`]).
    WarrenBench,
    /// The `warren-server` binary, built (see [`warren_server`]).
    WarrenServer,
}

/// Finds the `warren-bench` binary: `WARREN_BENCH`, else beside this test's own binary's
/// directory (`target/<profile>/warren-bench`), where `cargo test --workspace
/// --all-features` builds it (it is a binary of the `warrenmq` package, which Cargo cannot
/// build for this one). Run alone, build it first: `cargo build --release --features cli
/// --bin warren-bench`.
pub fn warren_bench() -> Option<PathBuf> {
    built_binary("warren-bench", "WARREN_BENCH")
}

/// Finds the `warren-server` binary as [`warren_bench`] finds its own: `WARREN_SERVER`,
/// else `target/<profile>/warren-server`. Run alone, build it first: `cargo build
/// --release --features cli --bin warren-server`.
pub fn warren_server() -> Option<PathBuf> {
    built_binary("warren-server", "WARREN_SERVER")
}

/// A binary of the `warrenmq` package: the file named by the environment variable `env`,
/// else `name` beside this test's own binary's directory.
fn built_binary(name: &str, env: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    let exe = std::env::current_exe().ok()?;
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let profile = exe.parent()?.parent()?;
    Some(profile.join(name)).filter(|p| p.is_file())
}

/// Runs `rabbitmqctl -q` with `args`; returns its standard output, panics with its output if
/// it fails.
pub fn rabbitmqctl(args: &[&str]) -> String {
    let out = Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .output()
        .expect("rabbitmqctl runs");
    assert!(out.status.success(), "rabbitmqctl {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A vhost on the local RabbitMQ that guest may use, deleted (with everything in it) on
/// drop.
#[derive(Debug)]
pub struct RabbitVhost(String);

impl RabbitVhost {
    /// Creates the vhost `name` and gives guest every permission in it.
    pub fn create(name: &str) -> RabbitVhost {
        rabbitmqctl(&["add_vhost", name]);
        let vhost = RabbitVhost(name.to_owned());
        rabbitmqctl(&["set_permissions", "-p", name, "guest", ".*", ".*", ".*"]);
        vhost
    }

    /// Returns the vhost's name.
    pub fn name(&self) -> &str {
        &self.0
    }

    /// Connects to the vhost on the local RabbitMQ as guest (a remote [`warrenmq::Connection`]).
    pub fn connect(&self) -> warrenmq::Connection {
        let url = format!("amqp://guest:guest@{RABBITMQ}/{}", self.0);
        warrenmq::Connection::open(&url).expect("connects to RabbitMQ")
    }
}

impl Drop for RabbitVhost {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["-q", "delete_vhost", &self.0])
            .output();
    }
}

/// Adds the vhost `name` to a Warren broker and gives guest every permission in it: what
/// [`RabbitVhost::create`] does on RabbitMQ (a new vhost grants nothing by itself, in both).
pub fn warren_vhost(broker: &warrenmq::Broker, name: &str) {
    broker.add_vhost(name).expect("a vhost");
    broker
        .set_permissions("guest", name, warrenmq::Permissions::new(".*", ".*", ".*"))
        .expect("guest's permissions");
}

/// Compares what a differential scenario script observed on Warren with what it observed
/// on RabbitMQ: an object of `sections` sections, each an object (a section that failed is
/// a string), equal key by key (each difference is named), then as a whole.
#[track_caller]
pub fn assert_same_observations(
    warren: &serde_json::Value,
    rabbit: &serde_json::Value,
    sections: usize,
) {
    let expected = rabbit.as_object().expect("an object of sections");
    assert_eq!(expected.len(), sections, "RabbitMQ's sections: {rabbit}");
    for (name, expected) in expected {
        assert!(
            expected.is_object(),
            "RabbitMQ's section '{name}' failed: {expected}"
        );
        let (Some(w), Some(r)) = (warren[name].as_object(), expected.as_object()) else {
            panic!("Warren's section '{name}' failed: {}", warren[name]);
        };
        for (key, value) in r {
            assert_eq!(
                w.get(key),
                Some(value),
                "{name}.{key} differs (left: Warren, right: RabbitMQ)"
            );
        }
    }
    assert_eq!(warren, rabbit);
}

/// The address of the local RabbitMQ's management HTTP API.
pub const RABBITMQ_HTTP: &str = "127.0.0.1:15672";

/// Finds RabbitMQ's `rabbitmqadmin` script: `WARREN_RABBITMQADMIN`, then `PATH`, then the
/// management plugin's directory of an installed RabbitMQ (`rabbitmq-server` package).
pub fn rabbitmqadmin() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("WARREN_RABBITMQADMIN") {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("rabbitmqadmin"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let lib = std::fs::read_dir("/usr/lib/rabbitmq/lib").ok()?;
        lib.filter_map(Result::ok).find_map(|server| {
            let plugins = std::fs::read_dir(server.path().join("plugins")).ok()?;
            plugins.filter_map(Result::ok).find_map(|plugin| {
                let script = plugin.path().join("priv/www/cli/rabbitmqadmin");
                script.is_file().then_some(script)
            })
        })
    })
}

/// Sends `GET path` with HTTP/1.0 and guest's basic auth to `addr`; returns the status line
/// and the body, or `None` if the server cannot be reached or does not answer in 5 s.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(String, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    // guest:guest in base64.
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    let (head, body) = reply.split_once("\r\n\r\n")?;
    let status = head.lines().next()?.to_owned();
    Some((status, body.to_owned()))
}

/// `true` if the management API at [`RABBITMQ_HTTP`] answers `GET /api/overview` for
/// guest/guest with 200.
fn management_answers() -> bool {
    RABBITMQ_HTTP
        .parse::<SocketAddr>()
        .ok()
        .and_then(|addr| http_get(addr, "/api/overview"))
        .is_some_and(|(status, _)| status.starts_with("HTTP/1.1 200"))
}

impl Need {
    /// Returns why this need is not met, or `None` when it is. Checked once per process.
    pub fn missing(self) -> Option<String> {
        static SEEN: OnceLock<Mutex<Vec<Checked>>> = OnceLock::new();
        let seen = SEEN.get_or_init(Mutex::default);
        let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, answer)) = seen.iter().find(|(need, _)| *need == self) {
            return answer.clone();
        }
        let answer = self.check();
        seen.push((self, answer.clone()));
        answer
    }

    fn check(self) -> Option<String> {
        match self {
            Need::Python(module) => {
                let ok = quiet(Command::new("python3").args(["-c", &format!("import {module}")]));
                (!ok).then(|| format!("python3 cannot import {module} (pip install {module})"))
            }
            Need::RabbitMq => (!listening(RABBITMQ))
                .then(|| format!("no RabbitMQ listens on {RABBITMQ} (rabbitmq-server -detached)")),
            Need::Rabbitmqctl => {
                let ok = quiet(Command::new("rabbitmqctl").args(["-q", "status"]));
                (!ok).then(|| "rabbitmqctl cannot reach the local RabbitMQ node".to_owned())
            }
            Need::Rabbitmqadmin => match rabbitmqadmin() {
                None => Some(
                    "no rabbitmqadmin (install the rabbitmq-server package, or set \
                     WARREN_RABBITMQADMIN)"
                        .to_owned(),
                ),
                Some(_) => {
                    let ok = quiet(Command::new("python3").arg("--version"));
                    (!ok).then(|| "no python3 to run rabbitmqadmin".to_owned())
                }
            },
            Need::WarrenBench => warren_bench().is_none().then(|| {
                "warren-bench is not built (cargo build --release --features cli --bin \
                 warren-bench, or set WARREN_BENCH)"
                    .to_owned()
            }),
            Need::WarrenServer => warren_server().is_none().then(|| {
                "warren-server is not built (cargo build --release --features cli --bin \
                 warren-server, or set WARREN_SERVER)"
                    .to_owned()
            }),
            Need::RabbitMqManagement => (!management_answers()).then(|| {
                format!(
                    "RabbitMQ's management API does not answer on {RABBITMQ_HTTP} \
                     (rabbitmq-plugins enable rabbitmq_management)"
                )
            }),
        }
    }
}

/// Runs a command with its output discarded; `true` if it ran and succeeded.
fn quiet(command: &mut Command) -> bool {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Returns `true` when running in CI (`CI=true`), where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Returns `true` if something accepts TCP connections on `addr`.
pub fn listening(addr: &str) -> bool {
    addr.parse::<SocketAddr>()
        .ok()
        .and_then(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).ok())
        .is_some()
}

/// A test named `name` that needs `needs`. When all are met it runs `test` (a panic fails
/// it). When one is missing it fails with the reason; outside CI it is also marked ignored,
/// so a plain run reports it as skipped with the reason instead of running it.
pub fn trial(name: &str, needs: &[Need], test: impl FnOnce() + Send + 'static) -> Trial {
    let missing: Vec<String> = needs.iter().filter_map(|n| n.missing()).collect();
    if missing.is_empty() {
        return Trial::test(name, move || {
            test();
            Ok(())
        });
    }
    let reason = missing.join("; ");
    let failure = format!("cannot run: {reason}");
    let trial = Trial::test(name, move || Err(Failed::from(failure)));
    if in_ci() {
        trial
    } else {
        trial
            .with_ignored_flag(true)
            .with_kind(format!("skipped: {reason}"))
    }
}

/// Runs `trials` with the command line's arguments and exits with the harness's code.
pub fn run(trials: Vec<Trial>) -> std::process::ExitCode {
    libtest_mimic::run(&Arguments::from_args(), trials).exit_code()
}
