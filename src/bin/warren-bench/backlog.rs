//! `warren-bench persistence`, backlog part: a durable queue holding more persistent bytes
//! than the broker's memory budget, filled and drained in fresh processes.
//!
//! 1. A probe process opens a fresh store with `--budget-mib`, publishes
//!    `--backlog-messages` persistent `--backlog-size`-byte messages to one durable queue
//!    with confirms (awaited every 1,000), no consumer, and reports the publish rate and its
//!    resident set size (`VmRSS`) with everything queued; then it closes the broker.
//! 2. Another probe process opens the store with the same budget (a restart), reports the
//!    time until every message is ready and its RSS then, and drains the queue with one
//!    consumer (prefetch 1,000, each message acked), reporting the drain rate.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use warrenmq::{Broker, ConsumeOptions, FieldTable, Message, QueueDeclareOptions};

use crate::flow::body;
use crate::persistence::rss_bytes;

/// The backlog's queue.
const QUEUE: &str = "bench.backlog";

/// What the two probes measured.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct Backlog {
    /// RSS of the filling process before opening the store, in bytes.
    pub(crate) fill_rss_before: u64,
    /// RSS of the filling process with every message queued.
    pub(crate) fill_rss_queued: u64,
    /// Seconds to publish them all, confirmed.
    pub(crate) publish_seconds: f64,
    /// RSS of the restarted process before opening the store.
    pub(crate) restart_rss_before: u64,
    /// RSS of the restarted process with every message ready again.
    pub(crate) restart_rss_recovered: u64,
    /// Seconds from open to all ready.
    pub(crate) recovery_seconds: f64,
    /// Seconds to drain them all with one consumer acking each.
    pub(crate) drain_seconds: f64,
    /// Messages drained.
    pub(crate) drained: u64,
}

/// Opens the store at `path` with a budget of `budget_mib` MiB.
fn open(path: &Path, budget_mib: usize) -> Result<Broker, String> {
    Broker::builder()
        .data_path(path)
        .memory_budget(budget_mib << 20)
        .build()
        .map_err(|e| e.to_string())
}

/// The fill probe: prints its JSON half of [`Backlog`].
pub(crate) fn fill(path: &Path, n: u64, size: usize, budget_mib: usize) -> Result<(), String> {
    let rss_before = rss_bytes()?;
    let broker = open(path, budget_mib)?;
    let run = || -> Result<f64, warrenmq::Error> {
        let ch = broker.connect("/")?.open_channel()?;
        ch.queue_declare(QUEUE, QueueDeclareOptions::durable(), FieldTable::new())?;
        ch.confirm_select()?;
        let body = body(size);
        let began = Instant::now();
        for i in 0..n {
            ch.basic_publish("", QUEUE, Message::new(body.clone()).persistent())?;
            if (i + 1).is_multiple_of(1000) || i + 1 == n {
                ch.wait_for_confirms()?;
            }
        }
        Ok(began.elapsed().as_secs_f64().max(1e-9))
    };
    let seconds = run().map_err(|e| e.to_string())?;
    let rss_queued = rss_bytes()?;
    broker.close().map_err(|e| e.to_string())?;
    println!(
        "{}",
        json!({"fill_rss_before": rss_before, "fill_rss_queued": rss_queued,
               "publish_seconds": seconds})
    );
    Ok(())
}

/// The restart-and-drain probe: prints its JSON half of [`Backlog`].
pub(crate) fn drain(path: &Path, n: u64, budget_mib: usize) -> Result<(), String> {
    let rss_before = rss_bytes()?;
    let began = Instant::now();
    let broker = open(path, budget_mib)?;
    let ready = broker
        .queue_stats("/", QUEUE)
        .map_err(|e| e.to_string())?
        .messages_ready as u64;
    let recovery_seconds = began.elapsed().as_secs_f64();
    let rss_recovered = rss_bytes()?;
    if ready != n {
        return Err(format!("{ready} of {n} messages recovered"));
    }
    let run = || -> Result<(f64, u64), warrenmq::Error> {
        let ch = broker.connect("/")?.open_channel()?;
        ch.basic_qos(1000)?;
        let consumer = ch.basic_consume(QUEUE, ConsumeOptions::default())?;
        let began = Instant::now();
        let mut drained = 0;
        while drained < n {
            match consumer.recv_timeout(Duration::from_secs(30)) {
                Ok(d) => {
                    d.ack()?;
                    drained += 1;
                }
                Err(_) => break,
            }
        }
        Ok((began.elapsed().as_secs_f64().max(1e-9), drained))
    };
    let (drain_seconds, drained) = run().map_err(|e| e.to_string())?;
    broker.close().map_err(|e| e.to_string())?;
    println!(
        "{}",
        json!({"restart_rss_before": rss_before, "restart_rss_recovered": rss_recovered,
               "recovery_seconds": recovery_seconds, "drain_seconds": drain_seconds,
               "drained": drained})
    );
    Ok(())
}
