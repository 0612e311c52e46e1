//! `warren-bench wire-probe`: one fixed run through Warren's listener in this process, for
//! counting instructions per message with callgrind (`scripts/wire-ipm`), which stays
//! deterministic where timings on a shared machine do not.
//!
//! The client ([`Client`]) runs on the main thread and the listener on its runtime's own
//! threads, so that a per-thread count (`--separate-threads=yes`) tells the server's
//! instructions from the client's. Every phase publishes `--messages` messages with
//! confirms as `warren-bench wire` does (window [`WINDOW`]); the consuming phases then
//! consume them all, with prefetch [`PREFETCH`] and acks with `multiple` every
//! [`ACK_EVERY`], or with `no_ack`. Counting a phase at N and at 2N messages and
//! subtracting cancels the setup (runtime, handshake, declares).

use clap::{Args, ValueEnum};
use warrenmq::Broker;

use crate::amqp_client::Client;
use crate::wire::{ACK_EVERY, PREFETCH, WINDOW};

/// What a probe run does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Phase {
    /// Publishes with confirms.
    Publish,
    /// Publishes, then consumes with manual acks (`multiple` every [`ACK_EVERY`]).
    ConsumeAck,
    /// Publishes, then consumes with `no_ack`.
    ConsumeNoack,
}

/// Arguments of `warren-bench wire-probe`.
#[derive(Debug, Args)]
pub(crate) struct ProbeArgs {
    /// What to run.
    #[arg(long, value_enum)]
    phase: Phase,
    /// Messages to publish (and consume).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    messages: u64,
    /// Body size in bytes.
    #[arg(long, default_value_t = 100)]
    size: usize,
}

/// Runs the subcommand.
pub(crate) fn run_probe(args: &ProbeArgs) -> Result<(), String> {
    let broker = Broker::in_memory();
    let server = broker
        .serve("127.0.0.1:0")
        .map_err(|e| format!("Warren cannot listen: {e}"))?;
    let addr = server.local_addr().to_string();
    let io = |e: std::io::Error| format!("{addr}: {e}");
    let queue = "warren-bench-wire-probe";
    let body = vec![b'x'; args.size];
    let mut publisher = Client::connect(&addr).map_err(io)?;
    publisher.queue_declare(queue, false).map_err(io)?;
    publisher.confirm_select().map_err(io)?;
    for i in 0..args.messages {
        publisher.publish(queue, &body, false).map_err(io)?;
        if (i + 1).is_multiple_of(WINDOW) || i + 1 == args.messages {
            publisher.wait_for_confirms().map_err(io)?;
        }
    }
    if args.phase != Phase::Publish {
        let mut consumer = Client::connect(&addr).map_err(io)?;
        consumer.basic_qos(PREFETCH).map_err(io)?;
        let ack_every = (args.phase == Phase::ConsumeAck).then_some(ACK_EVERY);
        consumer
            .consume(queue, args.messages, ack_every)
            .map_err(io)?;
        consumer.close().map_err(io)?;
    }
    publisher.queue_delete(queue).map_err(io)?;
    publisher.close().map_err(io)?;
    server.shutdown();
    Ok(())
}
