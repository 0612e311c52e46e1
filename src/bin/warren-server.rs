//! `warren-server`: serves an in-process Warren broker over AMQP 0-9-1, so that real
//! clients (pika, py-amqp, lapin, amqprs) can connect.
//!
//! ```text
//! warren-server [--listen 127.0.0.1:5672] [--user guest] [--password guest]
//!               [--data-dir DIR] [--allow-mixed-durability]
//! ```
//!
//! The first line printed is `warren-server listening on ADDR`, with the bound address
//! (useful with port 0). The server runs until the process is stopped (Ctrl-C, SIGTERM);
//! an in-memory broker has nothing to save on the way out.

use std::process::ExitCode;

use warrenmq::{Broker, WireOptions};

const USAGE: &str = "usage: warren-server [--listen ADDR] [--user NAME] [--password PASSWORD] \
                     [--data-dir DIR] [--allow-mixed-durability]";

/// The parsed command line.
#[derive(Debug)]
struct Args {
    listen: String,
    data_dir: Option<String>,
    allow_mixed_durability: bool,
    options: WireOptions,
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        listen: "127.0.0.1:5672".into(),
        data_dir: None,
        allow_mixed_durability: false,
        options: WireOptions::default(),
    };
    while let Some(flag) = argv.next() {
        let mut value = |name: &str| argv.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--listen" => args.listen = value("--listen")?,
            "--user" => args.options.user = value("--user")?,
            "--password" => args.options.password = value("--password")?,
            "--data-dir" => args.data_dir = Some(value("--data-dir")?),
            "--allow-mixed-durability" => args.allow_mixed_durability = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument '{other}'\n{USAGE}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    if let Some(dir) = &args.data_dir {
        eprintln!(
            "error: --data-dir {dir}: persistence is not compiled into this build of \
             warren-server yet; run without --data-dir for an in-memory broker"
        );
        return ExitCode::from(2);
    }
    let broker = match Broker::builder()
        .allow_mixed_durability_bindings(args.allow_mixed_durability)
        .build()
    {
        Ok(broker) => broker,
        Err(e) => {
            eprintln!("error: {e}");
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
    server.wait();
    ExitCode::SUCCESS
}
