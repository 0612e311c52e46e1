//! `warren-server`: serves an in-process Warren broker over AMQP 0-9-1, so that real
//! clients (pika, py-amqp, lapin, amqprs) can connect.
//!
//! ```text
//! warren-server [--config FILE]
//!               [--listen 127.0.0.1:5672] [--user guest] [--password-file FILE]
//!               [--data-dir DIR] [--allow-rollback] [--memory-budget SIZE]
//!               [--strict-binding-durability]
//!               [--handshake-timeout SECS] [--max-message-size BYTES] [--channel-max N]
//!               [--connection-max N] [--consumer-max-per-channel N]
//!               [--consumer-max-per-connection N]
//!               [--vm-memory-high-watermark FRACTION|SIZE] [--disk-free-limit SIZE]
//!               [--management ADDR | --management-port PORT] [--management-max-body-size SIZE]
//!               [--definitions FILE]
//!               [--tls-listen ADDR --tls-cert FILE --tls-key FILE [--tls-ca FILE]
//!                [--tls-verify-peer]]
//! warren-server --salvage SRC DST
//! warren-server --help | --version
//! ```
//!
//! Every flag can also be set in a TOML file given with `--config FILE`, one key per long
//! flag (`data-dir = "/var/lib/warren"` or `data_dir`); a flag on the command line wins over
//! its environment variable, which wins over the file (see `config.rs`). The default user's
//! password comes from `WARREN_DEFAULT_PASS`, `WARREN_DEFAULT_PASS_FILE` / `--password-file`
//! or the file's `password` / `password-file`, so it need not be in argv, where every local
//! user can read it; `--password` still works, with a warning.
//!
//! Logs go to stderr through `tracing-subscriber`; `RUST_LOG` chooses what is logged
//! (`info` by default).
//!
//! The first line printed is `warren-server listening on ADDR`, with the bound address
//! (useful with port 0). With `--management ADDR` (or `--management-port PORT`, on the
//! listen address's IP) the management HTTP API and `/metrics` are served there too, and
//! the next line is `warren-server management on ADDR`. With `--tls-listen ADDR` AMQP over
//! TLS (`amqps`) is served there too, with the PEM certificate chain and key given, and a
//! line `warren-server amqps on ADDR` is printed (docs/tls.md). Without `--data-dir` the broker is in memory; with it, durable
//! exchanges, queues, bindings and persistent messages are kept in `DIR/warren.redb`, and a
//! publisher confirm means the message is on disk, so stopping the process at any moment
//! loses nothing confirmed. A database that opens at an older commit than the last one made
//! durable (its witness file `DIR/warren.redb.witness` says so) is refused;
//! `--allow-rollback` opens it anyway and serves what it holds.
//!
//! `--definitions FILE` imports a definitions file in RabbitMQ's format (what `rabbitmqctl
//! export_definitions` writes) at start, after the stored state is recovered, as RabbitMQ's
//! `load_definitions` does; a file that cannot be imported stops the server with the entry
//! at fault named, and nothing of it imported (docs/definitions.md).
//!
//! `--salvage SRC DST` serves nothing: it reads every still-readable record of the damaged
//! database file SRC (never writing to it) into a new database file DST, prints what it kept
//! and what it could not read, and exits (0 once DST is written, 1 if it could not be). Serve
//! the result with `--data-dir` after moving DST (and `DST.witness`) to `DIR/warren.redb`.
//!
//! On Linux with glibc the server runs with `MALLOC_ARENA_MAX=1` (it executes itself again
//! with it unless the variable is set), which keeps its memory flat under bursts of
//! connections (docs/benchmarks.md).
//!
//! At start the server raises its open-file soft limit to the hard limit (each client
//! connection is one file descriptor) and says so on stderr when the hard limit is low.
//! SIGTERM or SIGINT (Ctrl-C) stops it cleanly: it stops accepting, closes each connection
//! with `connection.close` 320 CONNECTION_FORCED, closes the broker with `Broker::close`
//! (the store is flushed and marked clean) and exits with status 0 (1, with the error on
//! stderr, if the store could not be written or closed).

use std::io;
use std::process::ExitCode;

use clap::Parser;

#[path = "warren-server/config.rs"]
mod config;
use tracing_subscriber::filter::{LevelFilter, Targets};
use warrenmq::{Broker, MemoryWatermark, WireOptions};

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "warren-server",
    version,
    about = "Serves an in-process Warren broker over AMQP 0-9-1 (RabbitMQ semantics).",
    after_help = "Settings: every flag can also be given in a TOML file named by --config, \
                  as `data-dir = \"/var/lib/warren\"` (flags win over the environment, \
                  which wins over the file).\n\
                  Secrets: the default user's password is best given in the config file \
                  (password or password-file), or the environment (WARREN_DEFAULT_PASS, or \
                  WARREN_DEFAULT_PASS_FILE naming a file that holds it); --password on the \
                  command line is visible to every local user.\n\
                  Logs go to stderr; RUST_LOG sets what is logged (for instance RUST_LOG=debug, \
                  or RUST_LOG=warrenmq=debug,info) [default: info].\n\
                  The first line on stdout is `warren-server listening on ADDR`.\n\
                  SIGTERM or SIGINT closes every connection with 320 CONNECTION_FORCED, \
                  closes the store cleanly and exits 0."
)]
struct Args {
    /// Read settings from this TOML file: one key per long flag (`listen = "0.0.0.0:5672"`,
    /// `data-dir = "/var/lib/warren"`, `strict-binding-durability = true`); the command line
    /// and the environment win over it.
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// Address to listen on for AMQP 0-9-1 clients; port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5672")]
    listen: String,
    /// The default user, created with full permissions on / when the broker is new (a
    /// persistent broker creates it once).
    #[arg(
        long,
        value_name = "NAME",
        env = "WARREN_DEFAULT_USER",
        default_value = "guest"
    )]
    user: String,
    /// The default user's password [default: guest]. On the command line every local user
    /// can read it (ps): prefer WARREN_DEFAULT_PASS, --password-file or the config file.
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "WARREN_DEFAULT_PASS",
        hide_env_values = true
    )]
    password: Option<String>,
    /// Read the default user's password from FILE (its first line).
    #[arg(long, value_name = "FILE", env = "WARREN_DEFAULT_PASS_FILE")]
    password_file: Option<std::path::PathBuf>,
    /// Keep durable exchanges, queues, bindings and persistent messages in DIR/warren.redb
    /// [default: none, the broker is in memory].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<String>,
    /// Open a database that cannot be shown complete (its witness of the last durable
    /// commit is missing or newer) and serve what it holds [default: off, such a database is
    /// refused].
    #[arg(long)]
    allow_rollback: bool,
    /// With --data-dir: the memory durable queues may use for persistent message bodies
    /// (bytes, or with K, M, G); beyond it they keep persistent messages on disk only and
    /// read them back as consumers drain [default: none, every queued message stays in
    /// memory].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory_budget: Option<usize>,
    /// Refuse bindings between a durable and a non-durable entity, the seed tutorial's rule
    /// [default: off, they bind as in RabbitMQ].
    #[arg(long)]
    strict_binding_durability: bool,
    /// Import this definitions file (RabbitMQ's JSON, as `rabbitmqctl export_definitions`
    /// writes it) at start, after the stored state is recovered (RabbitMQ's
    /// load_definitions) [default: none].
    #[arg(long, value_name = "FILE")]
    definitions: Option<String>,
    /// Read every readable record of the damaged database file SRC into a new database file
    /// DST, print what was kept and what could not be read, and exit.
    #[arg(long, num_args = 2, value_names = ["SRC", "DST"])]
    salvage: Option<Vec<String>>,
    /// Seconds a client may take for the whole opening handshake (RabbitMQ's
    /// handshake_timeout).
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    handshake_timeout: f64,
    /// The largest message body accepted, in bytes (RabbitMQ's max_message_size); larger
    /// ones are refused with 406.
    #[arg(long, value_name = "BYTES", default_value_t = WireOptions::default().max_message_size)]
    max_message_size: u64,
    /// The most channels a connection may have open at once (RabbitMQ's channel_max; 0 =
    /// no limit).
    #[arg(long, value_name = "N", default_value_t = WireOptions::default().channel_max)]
    channel_max: u16,
    /// The most client connections served at once (RabbitMQ's connection_max) [default: no
    /// limit].
    #[arg(long, value_name = "N")]
    connection_max: Option<usize>,
    /// The most consumers per channel (RabbitMQ's consumer_max_per_channel) [default: no
    /// limit].
    #[arg(long, value_name = "N")]
    consumer_max_per_channel: Option<u32>,
    /// The most consumers per connection, over all its channels [default: no limit].
    #[arg(long, value_name = "N")]
    consumer_max_per_connection: Option<u32>,
    /// The memory high watermark (RabbitMQ's vm_memory_high_watermark): a fraction of the
    /// memory available to the process ("0.4"), or an absolute size ("512MiB", "2GB",
    /// "1000000" bytes). Above it publishers are blocked until consumers drain the broker.
    #[arg(long, value_name = "FRACTION|SIZE", default_value = "0.4", value_parser = parse_watermark)]
    vm_memory_high_watermark: MemoryWatermark,
    /// Free disk space under --data-dir below which publishers of persistent messages are
    /// blocked (RabbitMQ's disk_free_limit), as a size ("50MB", "1GiB", bytes).
    #[arg(long, value_name = "SIZE", default_value = "50MB", value_parser = parse_rabbitmq_size)]
    disk_free_limit: u64,
    /// Serve RabbitMQ's management HTTP API (and Prometheus /metrics) on ADDR, e.g.
    /// 127.0.0.1:15672; the user and password are those of AMQP clients [default: off].
    #[arg(long, value_name = "ADDR", conflicts_with = "management_port")]
    management: Option<String>,
    /// Serve the management HTTP API on PORT (RabbitMQ uses 15672) of the --listen
    /// address's IP [default: off].
    #[arg(long, value_name = "PORT")]
    management_port: Option<u16>,
    /// The largest management API request body (a definitions file to import), in bytes or
    /// with a unit (20MB, 64MiB); a larger one is answered 400 `Exceeded HTTP request body
    /// size limit`, as RabbitMQ's `management.http.max_body_size` [default: 20000000].
    #[arg(long, value_name = "SIZE", value_parser = parse_rabbitmq_size)]
    management_max_body_size: Option<u64>,
    /// Also serve AMQP over TLS (amqps) on ADDR, e.g. 0.0.0.0:5671 (RabbitMQ's amqps port),
    /// with --tls-cert and --tls-key [default: off].
    #[arg(long, value_name = "ADDR", requires_all = ["tls_cert", "tls_key"])]
    tls_listen: Option<String>,
    /// The server's certificate chain in PEM (RabbitMQ's ssl_options.certfile).
    #[arg(long, value_name = "FILE", requires = "tls_listen")]
    tls_cert: Option<std::path::PathBuf>,
    /// The server's private key in PEM (RabbitMQ's ssl_options.keyfile).
    #[arg(long, value_name = "FILE", requires = "tls_listen")]
    tls_key: Option<std::path::PathBuf>,
    /// CA certificates in PEM that client certificates are verified against (RabbitMQ's
    /// cacertfile with verify_peer): clients are asked for a certificate, and one that does
    /// not verify is refused [default: none asked for].
    #[arg(long, value_name = "FILE", requires = "tls_listen")]
    tls_ca: Option<std::path::PathBuf>,
    /// With --tls-ca: also refuse clients that present no certificate (RabbitMQ's
    /// fail_if_no_peer_cert = true).
    #[arg(long, requires = "tls_ca")]
    tls_verify_peer: bool,
}

/// The `amqps` listener's settings from `--tls-*`, if `--tls-listen` was given.
fn tls_options(args: &Args) -> Result<Option<(String, warrenmq::TlsOptions)>, String> {
    let (Some(addr), Some(cert), Some(key)) = (&args.tls_listen, &args.tls_cert, &args.tls_key)
    else {
        return Ok(None);
    };
    let mut options = warrenmq::TlsOptions::from_pem_files(cert, key).map_err(|e| e.to_string())?;
    if let Some(ca) = &args.tls_ca {
        let ca_pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
        options = options.verify_peer(ca_pem, args.tls_verify_peer);
    }
    Ok(Some((addr.clone(), options)))
}

/// Reads a size as RabbitMQ's configuration does (`disk_free_limit.absolute = 50MB`):
/// bytes, or a number with a unit (kB, MB, GB, TB: powers of 1000; KiB, MiB, GiB, TiB:
/// powers of 1024).
fn parse_rabbitmq_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 50MB, 1GiB, 1000000)"))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" | "k" => 1000,
        "MB" | "M" => 1000_u64.pow(2),
        "GB" | "G" => 1000_u64.pow(3),
        "TB" | "T" => 1000_u64.pow(4),
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        other => return Err(format!("unknown unit {other:?} in {text:?}")),
    };
    Ok((number * scale as f64) as u64)
}

/// Reads a memory watermark: a fraction ("0.4", "1.0") or an absolute size.
fn parse_watermark(text: &str) -> Result<MemoryWatermark, String> {
    let text = text.trim();
    if text.contains('.') && !text.ends_with(char::is_alphabetic) {
        let fraction: f64 = text
            .parse()
            .map_err(|_| format!("{text:?} is not a fraction"))?;
        return Ok(MemoryWatermark::Relative(fraction));
    }
    parse_rabbitmq_size(text).map(MemoryWatermark::Absolute)
}

/// Where the management API listens, if anywhere: `--management ADDR`, or
/// `--management-port PORT` on the AMQP listener's IP.
fn management_addr(args: &Args, amqp: std::net::SocketAddr) -> Option<String> {
    match (&args.management, args.management_port) {
        (Some(addr), _) => Some(addr.clone()),
        (None, Some(port)) => Some(std::net::SocketAddr::new(amqp.ip(), port).to_string()),
        (None, None) => None,
    }
}

/// The management API's settings from `--management-max-body-size`.
fn management_options(args: &Args) -> warrenmq::ManagementOptions {
    let mut options = warrenmq::ManagementOptions::default();
    if let Some(size) = args.management_max_body_size {
        options.max_body_size = usize::try_from(size).unwrap_or(usize::MAX);
    }
    options
}

/// Logs to stderr, filtered by `RUST_LOG` (`info` when unset or unreadable).
fn init_logging() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|spec| match spec.parse::<Targets>() {
            Ok(targets) => Some(targets),
            Err(e) => {
                eprintln!("warren-server: RUST_LOG={spec:?} is not understood ({e}); using info");
                None
            }
        })
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO));
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(io::stderr))
        .with(filter)
        .init();
}

/// The default user's password: `--password` (or `WARREN_DEFAULT_PASS`, or the config
/// file's `password`), or the first line of `--password-file` (likewise), or `guest`.
fn default_password(args: &Args) -> Result<String, String> {
    match (&args.password, &args.password_file) {
        (Some(_), Some(_)) => Err(
            "the password is given twice: give --password / WARREN_DEFAULT_PASS / password, \
             or --password-file / WARREN_DEFAULT_PASS_FILE / password-file, not both"
                .to_owned(),
        ),
        (Some(password), None) => Ok(password.clone()),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--password-file {}: {e}", path.display()))?;
            Ok(text.lines().next().unwrap_or_default().to_owned())
        }
        (None, None) => Ok("guest".to_owned()),
    }
}

/// Builds the broker: in memory, or kept in `DIR/warren.redb` with `--data-dir DIR`.
fn build_broker(args: &Args) -> Result<Broker, String> {
    let mut builder = Broker::builder();
    builder.strict_binding_durability(args.strict_binding_durability);
    let password = default_password(args)?;
    builder.default_user(Some((&args.user, &password)));
    builder.memory_high_watermark(args.vm_memory_high_watermark);
    builder.disk_free_limit(args.disk_free_limit);
    if let Some(file) = &args.definitions {
        builder.definitions(file);
    }
    if let Some(dir) = &args.data_dir {
        data_path(&mut builder, dir, args.allow_rollback)?;
        if let Some(bytes) = args.memory_budget {
            memory_budget(&mut builder, bytes);
        }
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

#[cfg(feature = "persistence")]
fn memory_budget(builder: &mut warrenmq::BrokerBuilder, bytes: usize) {
    builder.memory_budget(bytes);
}

#[cfg(not(feature = "persistence"))]
fn memory_budget(_: &mut warrenmq::BrokerBuilder, _: usize) {}

/// Reads a size: bytes, or a number with `K`, `M`, `G` (or `KiB`, `MiB`, `GiB`: powers of
/// 1024).
fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" | "kb" => 10,
        "m" | "mib" | "mb" => 20,
        "g" | "gib" | "gb" => 30,
        _ => return Err(format!("unknown unit in {text:?} (use K, M or G)")),
    };
    let n: usize = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
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

/// `--salvage SRC DST`: writes the new database and prints the report.
#[cfg(feature = "persistence")]
fn salvage(paths: &[String]) -> ExitCode {
    let [src, dst] = paths else {
        eprintln!("error: --salvage takes two paths: SRC DST");
        return ExitCode::from(2);
    };
    match warrenmq::salvage(src, dst) {
        Ok(report) => {
            println!("warren-server: salvaged {src} into {dst}");
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: salvage of {src} into {dst} failed: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(feature = "persistence"))]
fn salvage(_: &[String]) -> ExitCode {
    eprintln!("error: --salvage needs a warren-server built with the `persistence` feature");
    ExitCode::from(2)
}

/// The malloc setting the server runs with (glibc): one arena.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENA_MAX: (&str, &str) = ("MALLOC_ARENA_MAX", "1");

/// Makes glibc's malloc use one arena, by executing the server again with
/// `MALLOC_ARENA_MAX=1` unless the variable is set already (glibc reads it only when a
/// process starts; the process id stays the same). With the default, one arena per runtime
/// thread each kept the high-water mark of a burst of connections, so RSS after bursts
/// ended 1.6× above the first burst's level; with one arena it stays within a few per cent
/// (docs/benchmarks.md). Setting the variable (to any value) keeps the server from
/// re-executing and uses that value.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn use_one_malloc_arena() {
    use std::os::unix::process::CommandExt as _;
    let (name, value) = ARENA_MAX;
    if std::env::var_os(name).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(name, value)
        .exec();
    eprintln!("warren-server: cannot re-execute with {name}={value} ({err}); going on without");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn use_one_malloc_arena() {}

fn main() -> ExitCode {
    let config::Parsed { args, given } = config::parse::<Args>();
    use_one_malloc_arena();
    init_logging();
    if given.value_source("password") == Some(clap::parser::ValueSource::CommandLine) {
        eprintln!(
            "warren-server: warning: --password on the command line is visible to every local \
             user; prefer WARREN_DEFAULT_PASS, --password-file or the config file"
        );
    }
    if let Some(paths) = &args.salvage {
        return salvage(paths);
    }
    let tls = match tls_options(&args) {
        Ok(tls) => tls,
        Err(message) => {
            eprintln!("error: {message}");
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
    let Ok(handshake_timeout) = std::time::Duration::try_from_secs_f64(args.handshake_timeout)
    else {
        eprintln!(
            "error: --handshake-timeout {}: not a number of seconds",
            args.handshake_timeout
        );
        return ExitCode::from(2);
    };
    let options = WireOptions {
        handshake_timeout,
        max_message_size: args.max_message_size,
        channel_max: args.channel_max,
        connection_max: args.connection_max,
        consumer_max_per_channel: args.consumer_max_per_channel,
        consumer_max_per_connection: args.consumer_max_per_connection,
        ..WireOptions::default()
    };
    let server = match broker.serve_with(args.listen.as_str(), options) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    println!("warren-server listening on {}", server.local_addr());
    let stats = broker.stats();
    match stats.memory_high_watermark {
        Some(watermark) => eprintln!(
            "warren-server: memory high watermark {watermark} bytes; disk free limit {} bytes",
            stats.disk_free_limit
        ),
        None => eprintln!("warren-server: no memory high watermark"),
    }
    if let Some((addr, tls)) = &tls {
        match server.listen_tls(addr.as_str(), tls) {
            Ok(bound) => println!("warren-server amqps on {bound}"),
            Err(e) => {
                eprintln!("error: cannot serve amqps on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let management = match management_addr(&args, server.local_addr()) {
        None => None,
        Some(addr) => {
            match server.serve_management_with(addr.as_str(), management_options(&args)) {
                Ok(management) => {
                    println!("warren-server management on {}", management.local_addr());
                    Some(management)
                }
                Err(e) => {
                    eprintln!("error: cannot serve the management API on {addr}: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    let signal = signals.wait();
    eprintln!("warren-server: {signal}: closing connections and the broker");
    drop(management);
    // Stops the listener (320 CONNECTION_FORCED to each client), then the store writes
    // what was submitted and is marked clean.
    let closed = broker.close();
    drop(server);
    match closed {
        Ok(()) => {
            eprintln!("warren-server: stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: closing the broker: {e}");
            ExitCode::FAILURE
        }
    }
}
