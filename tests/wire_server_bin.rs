//! The `warren-server` binary: its address line, `--strict-binding-durability`, `--user` /
//! `--password`, and `--data-dir`: confirmed persistent messages survive a crash (or, built
//! without the `persistence` feature, the flag is refused with a clear message); a database
//! that cannot be shown complete needs `--allow-rollback`.
//!
//! The client is `warren-bench`'s blocking AMQP client (on `amq-protocol`, a dependency of the
//! `wire` feature), so these tests need no client library of their own.
#![cfg(feature = "wire")]

#[allow(dead_code, unreachable_pub)]
#[path = "../src/bin/warren-bench/amqp_client/mod.rs"]
mod amqp_client;
mod common;

use common::server_process::ServerProcess;

use std::process::Command;

use amqp_client::Client;

fn connect(server: &ServerProcess, user: &str, password: &str) -> std::io::Result<Client> {
    Client::connect_as(&server.addr.to_string(), user, password)
}

/// Binds a durable exchange to a non-durable queue; returns the error text, if any.
fn mixed_binding(server: &ServerProcess) -> Option<String> {
    mixed_binding_as(server, "guest", "guest")
}

/// [`mixed_binding`] as `user`.
fn mixed_binding_as(server: &ServerProcess, user: &str, password: &str) -> Option<String> {
    let mut client = connect(server, user, password).expect("connects");
    client
        .exchange_declare_with("d", "direct", true, false)
        .expect("exchange");
    client.queue_declare("t", false).expect("queue");
    client
        .queue_bind("t", "d", "k")
        .err()
        .map(|e| e.to_string())
}

#[test]
fn smoke() {
    let server = ServerProcess::start(&[]);
    assert!(server.addr.ip().is_loopback());
    assert_ne!(server.addr.port(), 0);
    connect(&server, "guest", "guest")
        .expect("connects")
        .close()
        .expect("closes");
}

/// The server runs with glibc's malloc limited to one arena (docs/benchmarks.md, bursts of
/// connections), and is the same process it was started as.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn runs_with_one_malloc_arena() {
    let server = ServerProcess::start(&[]);
    let environ = std::fs::read(format!("/proc/{}/environ", server.pid())).expect("environ");
    let vars: Vec<&[u8]> = environ.split(|&b| b == 0).collect();
    let expected = match std::env::var("MALLOC_ARENA_MAX") {
        // Set by whoever runs the tests: the server keeps it.
        Ok(value) => format!("MALLOC_ARENA_MAX={value}"),
        Err(_) => "MALLOC_ARENA_MAX=1".to_owned(),
    };
    assert!(vars.contains(&expected.as_bytes()), "{expected} is set");
    // Still serving, with its arguments.
    connect(&server, "guest", "guest").expect("connects");
}

#[test]
fn mixed_durability_binds_unless_strict() {
    let default = ServerProcess::start(&[]);
    assert_eq!(mixed_binding(&default), None);
    let strict = ServerProcess::start(&["--strict-binding-durability"]);
    let err = mixed_binding(&strict).expect("refused when strict");
    assert!(err.contains("strict binding durability is on"), "{err}");
}

#[test]
fn credentials_come_from_the_command_line() {
    let server = ServerProcess::start(&["--user", "app", "--password", "s3cret"]);
    assert!(connect(&server, "guest", "guest").is_err());
    connect(&server, "app", "s3cret").expect("the configured login works");
}

/// Writes `text` to `name` in `dir` (mode 600) and returns its path.
fn write_file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("writes");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    path.to_str().expect("a UTF-8 path").to_owned()
}

#[test]
fn config_file_sets_every_flag_and_the_command_line_wins() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // `listen` here would fail to bind: the command line's --listen 127.0.0.1:0 must win.
    let config = write_file(
        &dir,
        "warren.toml",
        "listen = \"203.0.113.1:1\"\n\
         user = \"app\"\n\
         password = \"from-file\"\n\
         strict_binding_durability = true\n\
         channel-max = 16\n",
    );
    let server = ServerProcess::start(&["--config", &config]);
    assert!(connect(&server, "guest", "guest").is_err());
    connect(&server, "app", "from-file").expect("the file's user and password");
    let err = mixed_binding_as(&server, "app", "from-file").expect("strict from the file");
    assert!(err.contains("strict binding durability is on"), "{err}");
    drop(server);
    // A flag beats the file.
    let server = ServerProcess::start(&["--config", &config, "--password", "from-flag"]);
    assert!(connect(&server, "app", "from-file").is_err());
    connect(&server, "app", "from-flag").expect("the flag's password");
}

#[test]
fn the_password_comes_from_the_environment_or_a_file_not_only_argv() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = ServerProcess::start_with_env(
        &[
            ("WARREN_DEFAULT_USER", "app"),
            ("WARREN_DEFAULT_PASS", "from-env"),
        ],
        &[],
    );
    connect(&server, "app", "from-env").expect("the environment's user and password");
    drop(server);
    let secret = write_file(&dir, "secret", "from-secret-file\n");
    let server =
        ServerProcess::start_with_env(&[("WARREN_DEFAULT_PASS_FILE", &secret)], &["--user", "app"]);
    connect(&server, "app", "from-secret-file").expect("the password file's first line");
    drop(server);
    // The environment beats the config file; the file may name a password file.
    let config = write_file(
        &dir,
        "warren.toml",
        "user = \"app\"\npassword = \"from-file\"\n",
    );
    let server = ServerProcess::start_with_env(
        &[("WARREN_DEFAULT_PASS", "from-env")],
        &["--config", &config],
    );
    assert!(connect(&server, "app", "from-file").is_err());
    connect(&server, "app", "from-env").expect("the environment wins");
    drop(server);
    let config = write_file(
        &dir,
        "by-file.toml",
        &format!("user = \"app\"\npassword-file = \"{secret}\"\n"),
    );
    let server = ServerProcess::start(&["--config", &config]);
    connect(&server, "app", "from-secret-file").expect("password-file in the config");
}

#[test]
fn bad_config_files_are_refused_with_their_reason() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let run = |config: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_warren-server"))
            .args(["--listen", "127.0.0.1:0", "--config", config])
            .output()
            .expect("runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let unknown = write_file(&dir, "unknown.toml", "lisen = \"127.0.0.1:0\"\n");
    let (code, stderr) = run(&unknown);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("unknown setting 'lisen'"), "{stderr}");
    let broken = write_file(&dir, "broken.toml", "listen = \n");
    let (code, stderr) = run(&broken);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("broken.toml"), "{stderr}");
    let bad_value = write_file(&dir, "value.toml", "channel-max = \"many\"\n");
    let (code, stderr) = run(&bad_value);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--channel-max") && stderr.contains("value.toml"),
        "{stderr}"
    );
    let twice = write_file(
        &dir,
        "twice.toml",
        "password = \"a\"\npassword-file = \"/x\"\n",
    );
    let (code, stderr) = run(&twice);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("the password is given twice"), "{stderr}");
    let missing = dir.path().join("missing.toml");
    let (code, stderr) = run(missing.to_str().expect("UTF-8"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("missing.toml"), "{stderr}");
}

/// Every message left in `queue`, fetched without ack: body and redelivered flag.
#[cfg(feature = "persistence")]
fn drain(client: &mut Client, queue: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    while let Some(got) = client.basic_get(queue, true).expect("get") {
        out.push((String::from_utf8(got.body).expect("UTF-8"), got.redelivered));
    }
    out
}

/// Publishes `m{i}` for each `i` in `range` to the durable queue `kept`, with confirms,
/// persistent unless `i == transient`.
#[cfg(feature = "persistence")]
fn publish_kept(client: &mut Client, range: std::ops::Range<usize>, transient: Option<usize>) {
    client.queue_declare("kept", true).expect("queue");
    client.confirm_select().expect("confirms");
    for i in range {
        let persistent = Some(i) != transient;
        client
            .publish("kept", format!("m{i}").as_bytes(), persistent)
            .expect("published");
        client.wait_for_confirms().expect("confirmed");
    }
}

#[cfg(feature = "persistence")]
#[test]
fn data_dir_keeps_confirmed_messages_across_a_crash() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let data_dir = dir.path().join("data");
    let data_dir = data_dir.to_str().expect("a UTF-8 path");
    let server = ServerProcess::start(&["--data-dir", data_dir]);
    let mut client = connect(&server, "guest", "guest").expect("connects");
    publish_kept(&mut client, 0..20, Some(7));
    // Killed (SIGKILL) with the connection open: only what is on disk survives.
    drop(server);

    let server = ServerProcess::start(&["--data-dir", data_dir]);
    let mut client = connect(&server, "guest", "guest").expect("reconnects");
    let bodies: Vec<String> = drain(&mut client, "kept")
        .into_iter()
        .map(|(body, _)| body)
        .collect();
    let expected: Vec<String> = (0..20)
        .filter(|i| *i != 7)
        .map(|i| format!("m{i}"))
        .collect();
    assert_eq!(
        bodies, expected,
        "persistent messages survive, the transient one does not"
    );
}

/// SIGTERM: the server tells its clients (320 CONNECTION_FORCED), closes the store cleanly
/// and exits 0; on restart a message that was never delivered comes back with
/// `redelivered = false` (as after a clean RabbitMQ stop), one that was delivered and not
/// acked with `redelivered = true`.
#[cfg(all(unix, feature = "persistence"))]
#[test]
fn sigterm_stops_cleanly_and_a_restart_serves_undelivered_messages_as_new() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let data_dir = dir.path().join("data");
    let data_dir = data_dir.to_str().expect("a UTF-8 path");
    let mut server = ServerProcess::start(&["--data-dir", data_dir]);
    let mut client = connect(&server, "guest", "guest").expect("connects");
    // A second client, driven by hand, to see exactly what the server says when it stops.
    let mut raw = common::raw_client::RawClient::open(server.addr);
    publish_kept(&mut client, 0..10, None);
    // m0 is delivered and left unacknowledged when the server stops.
    let got = client
        .basic_get("kept", false)
        .expect("get")
        .expect("a message");
    assert_eq!(got.body, b"m0");

    assert_eq!(server.terminate(), Some(0), "SIGTERM exits with status 0");
    let (code, text) = raw.connection_close();
    assert_eq!(code, 320);
    assert_eq!(
        text,
        "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"
    );
    drop(client);

    let server = ServerProcess::start(&["--data-dir", data_dir]);
    let mut client = connect(&server, "guest", "guest").expect("reconnects");
    let expected: Vec<(String, bool)> = (0..10).map(|i| (format!("m{i}"), i == 0)).collect();
    assert_eq!(
        drain(&mut client, "kept"),
        expected,
        "every message is back; only the delivered one is marked redelivered"
    );
}

/// A database whose witness is gone cannot be shown complete: refused with the way out
/// named, and opened with `--allow-rollback`.
#[cfg(feature = "persistence")]
#[test]
fn a_database_that_cannot_be_shown_complete_needs_allow_rollback() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let data_dir = dir.path().join("data");
    std::fs::create_dir(&data_dir).expect("data dir");
    drop(warrenmq::Broker::open(data_dir.join("warren.redb")).expect("a database"));
    std::fs::remove_file(data_dir.join("warren.redb.witness")).expect("a witness");
    let data_dir = data_dir.to_str().expect("a UTF-8 path");
    let out = Command::new(env!("CARGO_BIN_EXE_warren-server"))
        .args(["--listen", "127.0.0.1:0", "--data-dir", data_dir])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("database rolled back") && stderr.contains("--allow-rollback"),
        "{stderr}"
    );
    let server = ServerProcess::start(&["--data-dir", data_dir, "--allow-rollback"]);
    assert_ne!(server.addr.port(), 0);
}

/// `--salvage SRC DST` writes a new database from a damaged one, prints what it kept and
/// what it could not read, and the new one serves the messages.
#[cfg(feature = "persistence")]
#[test]
fn salvage_writes_a_new_database_and_reports_it() {
    use warrenmq::{FieldTable, GetOptions, Message, QueueDeclareOptions};
    let dir = tempfile::tempdir().expect("a temporary directory");
    let src = dir.path().join("damaged.redb");
    {
        let broker = warrenmq::Broker::open(&src).expect("a database");
        let ch = broker.connect("/").unwrap().open_channel().unwrap();
        ch.queue_declare("jobs", QueueDeclareOptions::durable(), FieldTable::new())
            .unwrap();
        for i in 0..20 {
            let body = format!("job {i:02}");
            ch.basic_publish("", "jobs", Message::new(body).persistent())
                .unwrap();
        }
    }
    // Its witness lost: the database is refused, but salvage reads it.
    std::fs::remove_file(dir.path().join("damaged.redb.witness")).expect("a witness");
    let dst = dir.path().join("data").join("warren.redb");
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_warren-server"))
        .arg("--salvage")
        .args([&src, &dst])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("kept: 0 vhosts, 0 exchanges, 1 queues, 0 bindings, 20 messages")
            && stdout.contains("queue 'jobs' in vhost '/': 20 messages")
            && stdout.contains("could not read: 0 vhosts"),
        "{stdout}"
    );
    // Again: the destination exists now.
    let out = Command::new(env!("CARGO_BIN_EXE_warren-server"))
        .arg("--salvage")
        .args([&src, &dst])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists"));
    let broker = warrenmq::Broker::open(&dst).expect("the salvaged database opens");
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    let first = ch.basic_get("jobs", GetOptions::no_ack()).unwrap().unwrap();
    assert_eq!(first.body().as_ref(), b"job 00");
    assert_eq!(broker.queue_stats("/", "jobs").unwrap().messages_ready, 19);
}

#[cfg(not(feature = "persistence"))]
#[test]
fn data_dir_needs_the_persistence_feature() {
    let out = Command::new(env!("CARGO_BIN_EXE_warren-server"))
        .args(["--listen", "127.0.0.1:0", "--data-dir", "/tmp/warren-data"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("without the `persistence` feature"),
        "{stderr}"
    );
}

#[test]
fn unknown_flags_are_refused_with_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_warren-server"))
        .arg("--bogus")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("'--bogus'") && stderr.contains("Usage: warren-server"),
        "{stderr}"
    );
}

#[test]
fn help_lists_every_flag_with_its_default_and_version_is_known() {
    let out = Command::new(env!("CARGO_BIN_EXE_warren-server"))
        .arg("--help")
        .output()
        .expect("runs");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for (flag, default) in [
        ("--listen <ADDR>", "[default: 127.0.0.1:5672]"),
        ("--user <NAME>", "[default: guest]"),
        ("--password <PASSWORD>", "[default: guest]"),
        ("--config <FILE>", "TOML file"),
        ("--password-file <FILE>", "[env: WARREN_DEFAULT_PASS_FILE"),
        (
            "--data-dir <DIR>",
            "[default: none, the broker is in memory]",
        ),
        (
            "--allow-rollback",
            "[default: off, such a database is refused]",
        ),
        (
            "--strict-binding-durability",
            "[default: off, they bind as in RabbitMQ]",
        ),
    ] {
        // Each flag is described on its line, or on the next one when long flags make
        // clap put every description under its flag.
        let lines: Vec<&str> = help.lines().collect();
        let at = lines
            .iter()
            .position(|line| line.trim_start().starts_with(flag))
            .unwrap_or_else(|| panic!("{flag} missing from --help:\n{help}"));
        let entry = lines[at..(at + 2).min(lines.len())].join(" ");
        assert!(entry.contains(default), "{flag}: {entry:?}");
    }
    assert!(help.contains("RUST_LOG"), "{help}");
    // Secrets need not be in argv, and --help says so.
    assert!(
        help.contains("WARREN_DEFAULT_PASS,") && help.contains("visible to every local user"),
        "{help}"
    );
    assert!(
        help.contains("[env: WARREN_DEFAULT_PASS]"),
        "the value is hidden: {help}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_warren-server"))
        .arg("--version")
        .output()
        .expect("runs");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("warren-server {}", env!("CARGO_PKG_VERSION"))
    );
}

/// `--definitions FILE` imports a RabbitMQ definitions file at start (RabbitMQ's
/// `load_definitions`); a file that cannot be imported stops the server with the entry named.
#[test]
fn definitions_are_loaded_at_start_and_a_bad_file_is_refused() {
    let dir = tempfile::tempdir().expect("a directory");
    let good = dir.path().join("definitions.json");
    std::fs::write(
        &good,
        r#"{"exchanges": [{"name": "in", "vhost": "/", "type": "direct", "durable": true}],
            "queues": [{"name": "from-file", "vhost": "/", "durable": true, "arguments": {}}],
            "bindings": [{"source": "in", "vhost": "/", "destination": "from-file",
                          "destination_type": "queue", "routing_key": "k"}]}"#,
    )
    .expect("written");
    let server = ServerProcess::start(&["--definitions", good.to_str().expect("UTF-8")]);
    let mut client = connect(&server, "guest", "guest").expect("connects");
    client
        .publish_to("in", "k", b"routed by the file's binding", false)
        .expect("published");
    let got = client
        .basic_get("from-file", true)
        .expect("the queue exists")
        .expect("the message was routed");
    assert_eq!(got.body, b"routed by the file's binding");

    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"queues": [{"name": "q", "vhost": "/", "arguments": {"x-message-ttl": -1}}]}"#,
    )
    .expect("written");
    let out = Command::new(env!("CARGO_BIN_EXE_warren-server"))
        .args(["--listen", "127.0.0.1:0", "--definitions"])
        .arg(&bad)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("queue 'q' in vhost '/'"), "{stderr}");
}
