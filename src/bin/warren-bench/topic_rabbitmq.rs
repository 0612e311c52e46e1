//! `warren-bench topic --rabbitmq ADDR`: the same bindings and routing keys through a topic
//! exchange on RabbitMQ, as one more row of the table.
//!
//! The exchange (`warren-bench-topic-<pid>`, auto-delete) gets one exclusive queue per
//! destination, each with `x-max-length = 0` so that routed messages are dropped as soon as
//! they are enqueued, and every binding of the table. Then empty messages are published with
//! each routing key in turn, with publisher confirms: the rate is confirmed publishes per
//! second (windows of [`WINDOW`]), the latency one publish's round trip to its confirm. Both
//! include the network, the AMQP codec and the enqueueing into every matched queue, so the
//! row shows what an application sees, not the matcher alone. Binding over AMQP is slow (a
//! few thousand per second), so tables above `--rabbitmq-max-bindings` are not measured.

#[cfg(feature = "wire")]
use std::time::{Duration, Instant};

#[cfg(feature = "wire")]
use crate::amqp_client::Client;
use crate::latency::Latency;
use crate::workload::Workload;

#[cfg(feature = "wire")]
/// Publishes between two waits for confirms when measuring the rate.
const WINDOW: usize = 1000;
#[cfg(feature = "wire")]
/// Longest time spent timing single publishes for the percentiles.
const LATENCY_TIME: Duration = Duration::from_secs(2);
#[cfg(feature = "wire")]
/// Most single publishes timed for the percentiles.
const LATENCY_SAMPLES: usize = 5000;

/// RabbitMQ's row.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RabbitRow {
    /// Confirmed publishes per second.
    pub(crate) per_s: f64,
    /// Publish-to-confirm round trips of single publishes.
    pub(crate) latency: Option<Latency>,
    /// Bindings added per second (pipelined over one channel).
    pub(crate) binds_per_s: f64,
}

/// Measures RabbitMQ at `addr` on `workload` for about `seconds`; an error says why not.
#[cfg_attr(not(feature = "wire"), allow(unused_variables))]
pub(crate) fn measure(
    addr: &str,
    workload: &Workload,
    max_bindings: usize,
    seconds: f64,
) -> Result<RabbitRow, String> {
    if workload.patterns.len() > max_bindings {
        return Err(format!(
            "RabbitMQ at {addr} not measured: {} bindings is more than --rabbitmq-max-bindings \
             {max_bindings} (binding over AMQP runs at a few thousand per second)",
            workload.patterns.len()
        ));
    }
    #[cfg(not(feature = "wire"))]
    return Err(format!(
        "RabbitMQ at {addr} not measured: warren-bench was built without the `wire` feature"
    ));
    #[cfg(feature = "wire")]
    over_amqp(addr, workload, seconds)
}

/// Measures RabbitMQ at `addr` with the runner's AMQP client.
#[cfg(feature = "wire")]
fn over_amqp(addr: &str, workload: &Workload, seconds: f64) -> Result<RabbitRow, String> {
    let fail = |e: std::io::Error| format!("RabbitMQ at {addr}: {e}");
    let mut client =
        Client::connect(addr).map_err(|e| format!("RabbitMQ at {addr} not measured: {e}"))?;
    let exchange = format!("warren-bench-topic-{}", std::process::id());
    client.exchange_declare(&exchange, "topic").map_err(fail)?;
    let queue = |d: u64| format!("{exchange}-{d}");
    let mut declared = std::collections::HashSet::new();
    for &d in &workload.destinations {
        if declared.insert(d) {
            client.queue_declare_sink(&queue(d)).map_err(fail)?;
        }
    }
    let bindings: Vec<(String, String)> = workload
        .patterns
        .iter()
        .zip(&workload.destinations)
        .map(|(p, &d)| (queue(d), p.clone()))
        .collect();
    let began = Instant::now();
    client.queue_bind_all(&exchange, &bindings).map_err(fail)?;
    let binds_per_s = bindings.len() as f64 / began.elapsed().as_secs_f64().max(1e-9);
    client.confirm_select().map_err(fail)?;

    let mut keys = workload.keys.iter().cycle();
    let (began, mut published) = (Instant::now(), 0_usize);
    while published == 0 || began.elapsed().as_secs_f64() < seconds {
        for key in keys.by_ref().take(WINDOW) {
            client
                .publish_to(&exchange, key, b"", false)
                .map_err(fail)?;
        }
        client.wait_for_confirms().map_err(fail)?;
        published += WINDOW;
    }
    let per_s = published as f64 / began.elapsed().as_secs_f64();

    let mut samples = Vec::new();
    let began = Instant::now();
    for key in keys.take(LATENCY_SAMPLES) {
        let start = Instant::now();
        client
            .publish_to(&exchange, key, b"", false)
            .map_err(fail)?;
        client.wait_for_confirms().map_err(fail)?;
        samples.push(start.elapsed());
        if began.elapsed() > LATENCY_TIME {
            break;
        }
    }
    client.exchange_delete(&exchange).map_err(fail)?;
    // Closing deletes the exclusive queues.
    client.close().map_err(fail)?;
    Ok(RabbitRow {
        per_s,
        latency: Latency::of(samples),
        binds_per_s,
    })
}
