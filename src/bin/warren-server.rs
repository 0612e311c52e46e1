//! `warren-server`: serves an in-process Warren broker over AMQP 0-9-1, so that real
//! clients (pika, py-amqp, lapin, amqprs) can connect.
//!
//! ```text
//! warren-server [--listen 127.0.0.1:5672] [--user guest] [--password guest]
//!               [--data-dir DIR] [--allow-rollback] [--strict-binding-durability]
//! ```
//!
//! The first line printed is `warren-server listening on ADDR`, with the bound address
//! (useful with port 0). Without `--data-dir` the broker is in memory; with it, durable
//! exchanges, queues, bindings and persistent messages are kept in `DIR/warren.redb`, and a
//! publisher confirm means the message is on disk, so stopping the process at any moment
//! loses nothing confirmed. A database that opens at an older commit than the last one made
//! durable (its witness file `DIR/warren.redb.witness` says so) is refused;
//! `--allow-rollback` opens it anyway and serves what it holds.
//!
//! At start the server raises its open-file soft limit to the hard limit (each client
//! connection is one file descriptor) and says so on stderr when the hard limit is low.
//! SIGTERM or SIGINT (Ctrl-C) stops it cleanly: it stops accepting, closes each connection
//! with `connection.close` 320 CONNECTION_FORCED, closes the broker (the store is flushed
//! and marked clean) and exits with status 0.

use std::io;
use std::process::ExitCode;

use warrenmq::{Broker, WireOptions};

const USAGE: &str = "usage: warren-server [--listen ADDR] [--user NAME] [--password PASSWORD] \
                     [--data-dir DIR] [--allow-rollback] [--strict-binding-durability]";

/// The parsed command line.
#[derive(Debug)]
struct Args {
    listen: String,
    data_dir: Option<String>,
    allow_rollback: bool,
    strict_binding_durability: bool,
    options: WireOptions,
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        listen: "127.0.0.1:5672".into(),
        data_dir: None,
        allow_rollback: false,
        strict_binding_durability: false,
        options: WireOptions::default(),
    };
    while let Some(flag) = argv.next() {
        let mut value = |name: &str| argv.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--listen" => args.listen = value("--listen")?,
            "--user" => args.options.user = value("--user")?,
            "--password" => args.options.password = value("--password")?,
            "--data-dir" => args.data_dir = Some(value("--data-dir")?),
            "--allow-rollback" => args.allow_rollback = true,
            "--strict-binding-durability" => args.strict_binding_durability = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument '{other}'\n{USAGE}")),
        }
    }
    Ok(args)
}

/// Builds the broker: in memory, or kept in `DIR/warren.redb` with `--data-dir DIR`.
fn build_broker(args: &Args) -> Result<Broker, String> {
    let mut builder = Broker::builder();
    builder.strict_binding_durability(args.strict_binding_durability);
    if let Some(dir) = &args.data_dir {
        data_path(&mut builder, dir, args.allow_rollback)?;
    }
    builder.build().map_err(|e| e.to_string())
}

#[cfg(feature = "persistence")]
fn data_path(
    builder: &mut warrenmq::BrokerBuilder,
    dir: &str,
    allow_rollback: bool,
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("--data-dir {dir}: {e}"))?;
    builder.data_path(std::path::Path::new(dir).join("warren.redb"));
    builder.allow_rollback(allow_rollback);
    Ok(())
}

#[cfg(not(feature = "persistence"))]
fn data_path(_: &mut warrenmq::BrokerBuilder, dir: &str, _: bool) -> Result<(), String> {
    Err(format!(
        "--data-dir {dir}: this warren-server was built without the `persistence` feature; \
         rebuild with it, or run without --data-dir for an in-memory broker"
    ))
}

/// Below this many open files, the server says how many clients it can take.
const LOW_FILE_LIMIT: u64 = 65_536;

/// Raises the open-file soft limit to the hard limit.
fn raise_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < LOW_FILE_LIMIT => eprintln!(
            "warren-server: the open-file limit is {limit} (the hard limit): at most about \
             {limit} client connections; raise the hard limit (ulimit -Hn) for more"
        ),
        Ok(_) => {}
        Err(e) => eprintln!("warren-server: cannot raise the open-file limit: {e}"),
    }
}

/// Waits for SIGTERM or SIGINT and returns its name.
struct Signals {
    /// A runtime for the signal streams only (the listener has its own).
    runtime: tokio::runtime::Runtime,
    #[cfg(unix)]
    streams: (tokio::signal::unix::Signal, tokio::signal::unix::Signal),
}

impl Signals {
    /// Installs the handlers; from here on SIGTERM and SIGINT no longer kill the process.
    fn install() -> io::Result<Signals> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        #[cfg(unix)]
        let streams = {
            use tokio::signal::unix::{signal, SignalKind};
            let _entered = runtime.enter();
            (
                signal(SignalKind::terminate())?,
                signal(SignalKind::interrupt())?,
            )
        };
        Ok(Signals {
            runtime,
            #[cfg(unix)]
            streams,
        })
    }

    /// Blocks until a signal arrives.
    #[cfg(unix)]
    fn wait(mut self) -> &'static str {
        let (term, int) = &mut self.streams;
        self.runtime.block_on(async {
            tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            }
        })
    }

    /// Blocks until Ctrl-C.
    #[cfg(not(unix))]
    fn wait(self) -> &'static str {
        let _ = self.runtime.block_on(tokio::signal::ctrl_c());
        "Ctrl-C"
    }
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let broker = match build_broker(&args) {
        Ok(broker) => broker,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    raise_file_limit();
    let signals = match Signals::install() {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("error: cannot handle signals: {e}");
            return ExitCode::FAILURE;
        }
    };
    let server = match broker.serve_with(args.listen.as_str(), args.options) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    println!("warren-server listening on {}", server.local_addr());
    let signal = signals.wait();
    eprintln!("warren-server: {signal}: closing connections and the broker");
    server.shutdown();
    // The last handle: the store writes what was submitted and is marked clean.
    drop(broker);
    eprintln!("warren-server: stopped");
    ExitCode::SUCCESS
}
