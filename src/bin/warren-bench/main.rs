//! `warren-bench`: Warren's benchmark runner. It prints comparison tables (or JSON).
//!
//! ```text
//! cargo run --release --features cli --bin warren-bench -- topic --bindings 100000 --wildcards 30 --seconds 3
//! cargo run --release --features cli --bin warren-bench -- topic --patterns p.txt --keys k.txt --rabbitmq 127.0.0.1:5672
//! cargo run --release --features cli --bin warren-bench -- throughput --exchange direct --ack manual
//! cargo run --release --features cli --bin warren-bench -- persistence --messages 1000000
//! cargo run --release --features cli --bin warren-bench -- wire --rabbitmq 127.0.0.1:5672
//! ```
//!
//! `persistence` needs the `persistence` feature, and `wire` and `topic --rabbitmq` the `wire`
//! feature (both on by default). `docs/benchmarks.md` explains every subcommand and its figures.
//!
//! Each subcommand lives in its own module and prints with the shared [`table`] helpers;
//! the runner uses only Warren's public API, like any application.

#[cfg(feature = "wire")]
mod amqp_client;
#[cfg(feature = "persistence")]
mod backlog;
mod flow;
#[cfg(feature = "wire")]
mod flow_async;
mod latency;
mod measure;
#[cfg(feature = "persistence")]
mod persistence;
mod table;
mod throughput;
mod topic;
mod topic_files;
mod topic_rabbitmq;
mod topic_report;
#[cfg(feature = "wire")]
mod wire;
#[cfg(feature = "wire")]
mod wire_probe;
mod workload;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(name = "warren-bench", version, about = "Warren's benchmark runner")]
struct Cli {
    /// What to measure.
    #[command(subcommand)]
    command: Command,
}

/// The benchmarks.
#[derive(Debug, Subcommand)]
enum Command {
    /// Topic matching: the trie router against a naive matcher and a hash-lookup floor.
    Topic(topic::TopicArgs),
    /// End-to-end messages per second through an in-memory broker, beside crossbeam.
    Throughput(throughput::ThroughputArgs),
    /// Confirmed persistent publishing, recovery time and memory per queued message.
    #[cfg(feature = "persistence")]
    Persistence(persistence::PersistenceArgs),
    /// Measures one store in a fresh process, for `persistence`.
    #[cfg(feature = "persistence")]
    #[command(hide = true)]
    PersistenceProbe(persistence::ProbeArgs),
    /// Publish and consume rates over AMQP: warren-server against RabbitMQ.
    #[cfg(feature = "wire")]
    Wire(wire::WireArgs),
    /// One fixed run through Warren's listener, for counting instructions per message
    /// (`scripts/wire-ipm`).
    #[cfg(feature = "wire")]
    #[command(hide = true)]
    WireProbe(wire_probe::ProbeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Topic(args) => topic::run_topic(args),
        Command::Throughput(args) => throughput::run_throughput(args),
        #[cfg(feature = "persistence")]
        Command::Persistence(args) => persistence::run_persistence(args),
        #[cfg(feature = "persistence")]
        Command::PersistenceProbe(args) => persistence::run_probe(args),
        #[cfg(feature = "wire")]
        Command::Wire(args) => wire::run_wire(args),
        #[cfg(feature = "wire")]
        Command::WireProbe(args) => wire_probe::run_probe(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("warren-bench: {message}");
            ExitCode::FAILURE
        }
    }
}
