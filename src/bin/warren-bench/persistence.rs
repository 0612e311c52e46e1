//! `warren-bench persistence`: what the redb store costs and gives back.
//!
//! Three measurements, each on a fresh directory under `--dir` (the system temp dir by
//! default; put it on the disk you mean to measure, since a tmpfs makes `fsync` free):
//! - confirmed publishing: one producer publishes persistent messages to a durable queue
//!   with publisher confirms, waiting for them every [`BATCH`] messages, while a consumer on
//!   another thread acks each one; beside it the same flow with transient messages
//!   (`delivery_mode` 1), in interleaved rounds; and the persistent flow through RabbitMQ
//!   (`--rabbitmq`, skipped when it cannot be reached) with the same client as `wire`;
//! - recovery: the time from `Broker::open` on a store holding `--messages` persistent
//!   100-byte messages until `queue_stats` shows them all ready, in a fresh process (the
//!   runner starts itself with the hidden `persistence-probe` subcommand), as after a restart;
//! - memory: the resident set size (`VmRSS`) a fresh process gains by holding `--messages`
//!   queued 100-byte messages in an in-memory broker, and by recovering them from the store;
//! - a backlog larger than the memory budget (`backlog.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use serde_json::json;
use warrenmq::{Broker, ConsumeOptions, FieldTable, Message, QueueDeclareOptions, ReplyCode};

use crate::amqp_client::Client;
use crate::backlog::{self, Backlog};
use crate::flow::body;
use crate::table::{mebibytes, rate, ratio, Table};

/// Messages published between two waits for confirms.
const BATCH: u64 = 1000;
/// The queue the recovery and memory probes fill.
const QUEUE: &str = "bench.stored";
/// Body size of the recovery and memory probes.
const STORED_SIZE: usize = 100;
/// Longest wait for a recovery before giving up.
const RECOVERY_LIMIT: Duration = Duration::from_secs(600);

/// Arguments of `warren-bench persistence`.
#[derive(Debug, Args)]
pub(crate) struct PersistenceArgs {
    /// Messages stored for the recovery and memory measurements.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    messages: u64,
    /// Messages per round of confirmed publishing [default: --messages, at most 100,000].
    #[arg(long)]
    confirm_messages: Option<u64>,
    /// Body sizes for confirmed publishing, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [100_usize, 4096])]
    size: Vec<usize>,
    /// Rounds of confirmed publishing per size and mode.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Where to put the stores [default: the system temp dir].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
    /// RabbitMQ's address (guest/guest, vhost `/`) for the confirmed-publishing row;
    /// skipped if it cannot be reached, `none` to skip.
    #[arg(long, default_value = "127.0.0.1:5672")]
    rabbitmq: String,
    /// Messages of the backlog measurement (0 skips it).
    #[arg(long, default_value_t = 2_000_000)]
    backlog_messages: u64,
    /// Body size of the backlog messages.
    #[arg(long, default_value_t = 1024)]
    backlog_size: usize,
    /// The broker's memory budget for the backlog, in MiB.
    #[arg(long, default_value_t = 256)]
    budget_mib: usize,
}

/// Arguments of the hidden `persistence-probe`, run in a child process.
#[derive(Debug, Args)]
pub(crate) struct ProbeArgs {
    /// In-memory fill, or recovery of a filled store.
    #[arg(long, value_enum)]
    store: ProbeStore,
    /// The store to recover (with `--store disk`).
    #[arg(long)]
    path: Option<PathBuf>,
    /// Messages to hold.
    #[arg(long)]
    messages: u64,
    /// Body size (backlog probes).
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Memory budget in MiB (backlog probes).
    #[arg(long, default_value_t = 256)]
    budget_mib: usize,
}

/// `--store` of the probe.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum ProbeStore {
    /// Publish `--messages` transient messages into `Broker::in_memory`.
    Memory,
    /// `Broker::open` the store at `--path` and wait for its messages.
    Disk,
    /// Fill a fresh store at `--path` with a budget (backlog).
    BacklogFill,
    /// Reopen the backlog store and drain it.
    BacklogDrain,
}

/// Confirmed-publishing figures for one body size: median messages per second.
#[derive(Debug)]
struct Confirmed {
    /// Body size.
    size: usize,
    /// Persistent messages.
    persistent: f64,
    /// Transient messages, same flow.
    transient: f64,
    /// Persistent messages through RabbitMQ, same flow, if it was measured.
    rabbitmq: Option<f64>,
}

/// What a probe process measured.
#[derive(Debug, Default, serde::Deserialize)]
struct Probe {
    /// `VmRSS` before filling or opening, in bytes.
    rss_before: u64,
    /// `VmRSS` with every message queued, in bytes.
    rss_after: u64,
    /// Seconds from `Broker::open` to all messages ready (disk), or to fill (memory).
    seconds: f64,
    /// Messages ready at the end.
    ready: u64,
}

/// Runs the subcommand.
pub(crate) fn run_persistence(args: &PersistenceArgs) -> Result<(), String> {
    let root = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let scratch = root.join(format!("warren-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let result = measure(args, &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    let (confirmed, fill_per_s, recovery, memory, backlog) = result?;
    if args.json {
        let mut report = to_json(args, &confirmed, fill_per_s, &recovery, &memory);
        if let Some(b) = &backlog {
            backlog_json(args, b, &mut report);
        }
        println!("{report}");
    } else {
        print_tables(args, &confirmed, fill_per_s, &recovery, &memory);
        if let Some(b) = &backlog {
            print_backlog(args, b);
        }
    }
    Ok(())
}

/// All three measurements.
/// Everything `persistence` measures.
type Measured = (Vec<Confirmed>, f64, Probe, Probe, Option<Backlog>);

/// Why RabbitMQ is not measured, if it is not.
fn rabbitmq_note(addr: &str) -> Option<String> {
    if addr == "none" {
        return Some("RabbitMQ not measured (--rabbitmq none)".into());
    }
    match Client::connect(addr).and_then(Client::close) {
        Ok(()) => None,
        Err(e) => Some(format!("RabbitMQ at {addr} not measured: {e}")),
    }
}

fn measure(args: &PersistenceArgs, scratch: &Path) -> Result<Measured, String> {
    let n = args
        .confirm_messages
        .unwrap_or(args.messages.min(100_000))
        .max(1);
    let mut confirmed = Vec::new();
    let note = rabbitmq_note(&args.rabbitmq);
    if let Some(note) = &note {
        eprintln!("{note}");
    }
    for &size in &args.size {
        let (mut persistent, mut transient, mut rabbit) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..args.rounds {
            let path = scratch.join(format!("confirm-{size}-{round}.redb"));
            persistent.push(n as f64 / confirmed_round(&path, n, size, true)?);
            transient.push(n as f64 / confirmed_round(&path, n, size, false)?);
            if note.is_none() {
                let seconds = rabbitmq_round(&args.rabbitmq, n, size)
                    .map_err(|e| format!("RabbitMQ at {}: {e}", args.rabbitmq))?;
                rabbit.push(n as f64 / seconds);
            }
        }
        confirmed.push(Confirmed {
            size,
            persistent: median(persistent),
            transient: median(transient),
            rabbitmq: (!rabbit.is_empty()).then(|| median(rabbit)),
        });
    }
    let stored = scratch.join("stored.redb");
    let fill_per_s = fill(&stored, args.messages).map_err(|e| e.to_string())?;
    let recovery = probe(ProbeStore::Disk, Some(&stored), args.messages)?;
    let memory = probe(ProbeStore::Memory, None, args.messages)?;
    remove_database(&stored);
    let backlog = if args.backlog_messages > 0 {
        Some(measure_backlog(args, &scratch.join("backlog.redb"))?)
    } else {
        None
    };
    Ok((confirmed, fill_per_s, recovery, memory, backlog))
}

/// One round of confirmed publishing on a fresh store; returns its seconds.
fn confirmed_round(path: &Path, n: u64, size: usize, persistent: bool) -> Result<f64, String> {
    remove_database(path);
    let seconds = confirmed_flow(path, n, size, persistent).map_err(|e| e.to_string())?;
    remove_database(path);
    Ok(seconds)
}

/// Deletes a database and its witness (a database deleted without its witness is refused as
/// rolled back, rather than recreated empty).
fn remove_database(path: &Path) {
    let mut witness = path.as_os_str().to_owned();
    witness.push(".witness");
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(witness);
}

/// Publishes `n` messages with confirms while a consumer acks them; returns the seconds from
/// the first publish to the last ack.
fn confirmed_flow(
    path: &Path,
    n: u64,
    size: usize,
    persistent: bool,
) -> Result<f64, warrenmq::Error> {
    let broker = Broker::open(path)?;
    let ch = broker.connect("/")?.open_channel()?;
    ch.queue_declare(QUEUE, QueueDeclareOptions::durable(), FieldTable::new())?;
    ch.confirm_select()?;
    let consumer_ch = broker.connect("/")?.open_channel()?;
    let consumer = consumer_ch.basic_consume(QUEUE, ConsumeOptions::default())?;
    let body = body(size);
    let began = Instant::now();
    thread::scope(|s| {
        let acker = s.spawn(|| {
            for _ in 0..n {
                consumer.recv().map_err(|_| closed())?.ack()?;
            }
            Ok::<_, warrenmq::Error>(())
        });
        for i in 0..n {
            let message = Message::new(body.clone());
            let message = if persistent {
                message.persistent()
            } else {
                message
            };
            ch.basic_publish("", QUEUE, message)?;
            if (i + 1).is_multiple_of(BATCH) || i + 1 == n {
                ch.wait_for_confirms()?;
            }
        }
        acker.join().expect("consumer thread panicked")
    })?;
    Ok(began.elapsed().as_secs_f64().max(1e-9))
}

/// The persistent flow of [`confirmed_flow`] through RabbitMQ: a durable queue, persistent
/// messages published with confirms awaited every [`BATCH`], a consumer on its own
/// connection and thread acking each delivery (no prefetch limit, as in Warren's flow);
/// returns the seconds from the first publish to the last ack.
fn rabbitmq_round(addr: &str, n: u64, size: usize) -> std::io::Result<f64> {
    let queue = format!("warren-bench.persistence.{}", std::process::id());
    let mut publisher = Client::connect(addr)?;
    publisher.queue_declare(&queue, true)?;
    publisher.confirm_select()?;
    let mut consumer = Client::connect(addr)?;
    let body = vec![b'x'; size];
    let began = Instant::now();
    thread::scope(|s| {
        let acker = s.spawn(|| consumer.consume(&queue, n, Some(1)));
        for i in 0..n {
            publisher.publish(&queue, &body, true)?;
            if (i + 1).is_multiple_of(BATCH) || i + 1 == n {
                publisher.wait_for_confirms()?;
            }
        }
        acker.join().expect("consumer thread panicked")
    })?;
    let seconds = began.elapsed().as_secs_f64().max(1e-9);
    consumer.close()?;
    publisher.queue_delete(&queue)?;
    publisher.close()?;
    Ok(seconds)
}

/// Fills a fresh store with `n` persistent 100-byte messages; returns messages per second.
fn fill(path: &Path, n: u64) -> Result<f64, warrenmq::Error> {
    let broker = Broker::open(path)?;
    let ch = broker.connect("/")?.open_channel()?;
    ch.queue_declare(QUEUE, QueueDeclareOptions::durable(), FieldTable::new())?;
    ch.confirm_select()?;
    let body = body(STORED_SIZE);
    let began = Instant::now();
    for i in 0..n {
        ch.basic_publish("", QUEUE, Message::new(body.clone()).persistent())?;
        if (i + 1).is_multiple_of(10 * BATCH) || i + 1 == n {
            ch.wait_for_confirms()?;
        }
    }
    Ok(n as f64 / began.elapsed().as_secs_f64().max(1e-9))
}

/// Runs the probe in a fresh process and reads its report.
fn probe(store: ProbeStore, path: Option<&Path>, messages: u64) -> Result<Probe, String> {
    let mut command = probe_command(messages)?;
    match (store, path) {
        (ProbeStore::Disk, Some(path)) => command.arg("--store=disk").arg("--path").arg(path),
        _ => command.arg("--store=memory"),
    };
    run_probe_command(command)
}

/// The command of a probe process.
fn probe_command(messages: u64) -> Result<Command, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
    let mut command = Command::new(exe);
    command.args(["persistence-probe", "--messages", &messages.to_string()]);
    Ok(command)
}

/// Runs a probe process and reads its JSON report.
fn run_probe_command<T: serde::de::DeserializeOwned>(mut command: Command) -> Result<T, String> {
    let output = command.output().map_err(|e| format!("probe: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "probe failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("probe output: {e}"))
}

/// Fills the backlog store in one probe process and drains it in another.
fn measure_backlog(args: &PersistenceArgs, path: &Path) -> Result<Backlog, String> {
    remove_database(path);
    let mut halves = serde_json::Map::new();
    for store in ["--store=backlog-fill", "--store=backlog-drain"] {
        let mut command = probe_command(args.backlog_messages)?;
        command
            .arg(store)
            .arg("--path")
            .arg(path)
            .args(["--size", &args.backlog_size.to_string()])
            .args(["--budget-mib", &args.budget_mib.to_string()]);
        let half: serde_json::Map<String, serde_json::Value> = run_probe_command(command)?;
        halves.extend(half);
    }
    remove_database(path);
    serde_json::from_value(serde_json::Value::Object(halves))
        .map_err(|e| format!("backlog probes: {e}"))
}

/// The hidden `persistence-probe` subcommand: prints one [`Probe`] as JSON.
pub(crate) fn run_probe(args: &ProbeArgs) -> Result<(), String> {
    match (args.store, &args.path) {
        (ProbeStore::BacklogFill, Some(path)) => {
            return backlog::fill(path, args.messages, args.size, args.budget_mib)
        }
        (ProbeStore::BacklogDrain, Some(path)) => {
            return backlog::drain(path, args.messages, args.budget_mib)
        }
        (ProbeStore::BacklogFill | ProbeStore::BacklogDrain, None) => {
            return Err("the backlog probes need --path".into())
        }
        _ => {}
    }
    let rss_before = rss_bytes()?;
    let began = Instant::now();
    let (broker, ready) = match (args.store, &args.path) {
        (ProbeStore::Memory, _) => {
            let broker = Broker::in_memory();
            fill_in_memory(&broker, args.messages).map_err(|e| e.to_string())?;
            let ready = ready(&broker)?;
            (broker, ready)
        }
        (ProbeStore::Disk, Some(path)) => {
            let broker = Broker::open(path).map_err(|e| e.to_string())?;
            loop {
                let ready = ready(&broker)?;
                if ready >= args.messages || began.elapsed() > RECOVERY_LIMIT {
                    break (broker, ready);
                }
                thread::sleep(Duration::from_millis(1));
            }
        }
        (ProbeStore::Disk, None) => return Err("--store disk needs --path".into()),
        (ProbeStore::BacklogFill | ProbeStore::BacklogDrain, _) => unreachable!("handled above"),
    };
    let seconds = began.elapsed().as_secs_f64();
    let rss_after = rss_bytes()?;
    drop(broker);
    let report = json!({
        "rss_before": rss_before,
        "rss_after": rss_after,
        "seconds": seconds,
        "ready": ready,
    });
    println!("{report}");
    Ok(())
}

/// Publishes `n` 100-byte messages to a fresh queue of an in-memory broker.
fn fill_in_memory(broker: &Broker, n: u64) -> Result<(), warrenmq::Error> {
    let ch = broker.connect("/")?.open_channel()?;
    ch.queue_declare(QUEUE, QueueDeclareOptions::default(), FieldTable::new())?;
    let body = body(STORED_SIZE);
    for _ in 0..n {
        ch.basic_publish("", QUEUE, Message::new(body.clone()))?;
    }
    Ok(())
}

/// Messages ready in the probes' queue (0 while it is not there yet).
fn ready(broker: &Broker) -> Result<u64, String> {
    match broker.queue_stats("/", QUEUE) {
        Ok(stats) => Ok(stats.messages_ready as u64),
        Err(e) if e.reply_code() == ReplyCode::NOT_FOUND => Ok(0),
        Err(e) => Err(e.to_string()),
    }
}

/// This process's resident set size, from `/proc/self/status`.
pub(crate) fn rss_bytes() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("reading /proc/self/status: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| "no VmRSS in /proc/self/status".into())
}

/// The error for a consumer whose channel closed under it.
fn closed() -> warrenmq::Error {
    warrenmq::Error::ChannelClosed { cause: None }
}

/// The median of some rates.
fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

/// A body size as a key suffix: `100b`, `4k`.
fn size_label(size: usize) -> String {
    if size >= 1024 && size.is_multiple_of(1024) {
        format!("{}k", size / 1024)
    } else {
        format!("{size}b")
    }
}

/// Resident bytes a probe gained per message.
fn per_message(p: &Probe, messages: u64) -> f64 {
    p.rss_after.saturating_sub(p.rss_before) as f64 / messages as f64
}

/// Prints the three tables.
fn print_tables(
    args: &PersistenceArgs,
    confirmed: &[Confirmed],
    fill_per_s: f64,
    recovery: &Probe,
    memory: &Probe,
) {
    println!(
        "confirmed publishing: confirms awaited every {BATCH} messages, a consumer acking \
         each; median of {} interleaved rounds",
        args.rounds
    );
    println!();
    let mut table = Table::new(&[
        "body",
        "persistent",
        "transient",
        "persistent ÷ transient",
        "RabbitMQ persistent",
        "persistent ÷ RabbitMQ",
    ]);
    for c in confirmed {
        table.row(vec![
            format!("{} bytes", c.size),
            rate(Some(c.persistent)),
            rate(Some(c.transient)),
            ratio(Some(c.persistent / c.transient)),
            rate(c.rabbitmq),
            ratio(c.rabbitmq.map(|r| c.persistent / r)),
        ]);
    }
    print!("{}", table.render());
    println!();
    let n = args.messages;
    println!("{n} queued persistent {STORED_SIZE}-byte messages");
    println!();
    let mut table = Table::new(&["measurement", "value"]);
    let row = |t: &mut Table, what: &str, value: String| t.row(vec![what.into(), value]);
    row(
        &mut table,
        "fill (confirmed, no consumer)",
        rate(Some(fill_per_s)),
    );
    row(
        &mut table,
        "recovery: open → all ready",
        format!("{:.2} s", recovery.seconds),
    );
    row(&mut table, "recovered messages", recovery.ready.to_string());
    let gained = |p: &Probe| mebibytes(p.rss_after.saturating_sub(p.rss_before) as usize);
    row(&mut table, "RSS gained, in-memory broker", gained(memory));
    row(
        &mut table,
        "  per message",
        format!("{:.0} B", per_message(memory, n)),
    );
    row(&mut table, "RSS gained, recovered store", gained(recovery));
    row(
        &mut table,
        "  per message",
        format!("{:.0} B", per_message(recovery, n)),
    );
    print!("{}", table.render());
}

/// The JSON report.
fn to_json(
    args: &PersistenceArgs,
    confirmed: &[Confirmed],
    fill_per_s: f64,
    recovery: &Probe,
    memory: &Probe,
) -> serde_json::Value {
    let n = args.messages;
    let mut report = json!({
        "messages": n,
        "confirm_batch": BATCH,
        "rounds": args.rounds,
        "fill_msgs_per_s": fill_per_s,
        "recovery_seconds": recovery.seconds,
        "recovered_messages": recovery.ready,
        "rss_bytes_in_memory": memory.rss_after.saturating_sub(memory.rss_before),
        "rss_bytes_per_message": per_message(memory, n),
        "rss_bytes_recovered": recovery.rss_after.saturating_sub(recovery.rss_before),
        "rss_bytes_per_message_recovered": per_message(recovery, n),
    });
    if n == 1_000_000 {
        report["rss_bytes_1m_in_memory"] = json!(report["rss_bytes_in_memory"]);
    }
    for c in confirmed {
        let label = size_label(c.size);
        report[format!("persistent_confirmed_msgs_per_s_{label}")] = json!(c.persistent);
        report[format!("transient_msgs_per_s_{label}")] = json!(c.transient);
        report[format!("rabbitmq_persistent_confirmed_msgs_per_s_{label}")] = json!(c.rabbitmq);
    }
    report
}

/// Prints the backlog table.
fn print_backlog(args: &PersistenceArgs, b: &Backlog) {
    let n = args.backlog_messages;
    println!();
    println!(
        "backlog: {n} persistent {}-byte messages in one durable queue, memory budget {} MiB",
        args.backlog_size, args.budget_mib
    );
    println!();
    let mut table = Table::new(&["measurement", "value"]);
    let row = |t: &mut Table, what: &str, value: String| t.row(vec![what.into(), value]);
    let rss = |bytes: u64| mebibytes(bytes as usize);
    row(
        &mut table,
        "publish (confirmed, no consumer)",
        rate(Some(n as f64 / b.publish_seconds)),
    );
    row(&mut table, "RSS with all queued", rss(b.fill_rss_queued));
    row(
        &mut table,
        "restart: open → all ready",
        format!("{:.2} s", b.recovery_seconds),
    );
    row(
        &mut table,
        "RSS after the restart",
        rss(b.restart_rss_recovered),
    );
    row(
        &mut table,
        "drain (one consumer, prefetch 1000)",
        rate(Some(b.drained as f64 / b.drain_seconds)),
    );
    row(&mut table, "drained", b.drained.to_string());
    print!("{}", table.render());
}

/// Adds the backlog figures to the JSON report.
fn backlog_json(args: &PersistenceArgs, b: &Backlog, report: &mut serde_json::Value) {
    let n = args.backlog_messages;
    report["backlog_messages"] = json!(n);
    report["backlog_size"] = json!(args.backlog_size);
    report["backlog_budget_mib"] = json!(args.budget_mib);
    report["backlog_publish_msgs_per_s"] = json!(n as f64 / b.publish_seconds);
    report["backlog_rss_bytes_queued"] = json!(b.fill_rss_queued);
    report["backlog_rss_bytes_before_fill"] = json!(b.fill_rss_before);
    report["backlog_rss_bytes_before_restart"] = json!(b.restart_rss_before);
    report["backlog_recovery_seconds"] = json!(b.recovery_seconds);
    report["backlog_rss_bytes_after_restart"] = json!(b.restart_rss_recovered);
    report["backlog_drain_msgs_per_s"] = json!(b.drained as f64 / b.drain_seconds);
    report["backlog_drained"] = json!(b.drained);
}
