//! No thread outlives a broker, and a program that returns from `main` without closing
//! anything exits.
//!
//! This test has no libtest harness (`harness = false` in Cargo.toml), for two reasons:
//! the thread counts read from `/proc/self/task` must not see other tests' brokers, and
//! the child processes must be real programs whose `main` returns. The binary runs its
//! checks one after the other; started with `WARREN_EXIT_SCENARIO=<name>` it is instead
//! the child of one scenario: it uses a broker and returns from `main` without calling
//! any `close`. Scenarios: in memory, persistent, a wire listener with a client, consumers
//! as Streams on a tokio runtime, and (feature `remote`) a remote connection.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use warrenmq::{
    Broker, ConsumeOptions, FieldTable, GetOptions, Message, PublishOptions, QueueDeclareOptions,
};

/// The variable that makes this binary a child running one scenario.
const SCENARIO: &str = "WARREN_EXIT_SCENARIO";

/// The line a child prints just before `main` returns.
const RETURNING: &str = "returning from main";

/// How long a child may take to exit once its `main` returns. The goal is well under 2 s
/// (the figure is printed); the limit is generous for a loaded machine, and a child that
/// hangs (a thread that keeps the process alive, a drop that waits forever) exceeds it.
const EXIT_LIMIT: Duration = Duration::from_secs(20);

fn main() {
    if let Ok(scenario) = std::env::var(SCENARIO) {
        // Everything the scenario used is dropped as `main` returns, after the line.
        let _kept = child(&scenario);
        println!("{RETURNING}");
        return;
    }
    // `cargo test -- --list` and filters: this binary has one test, named after it.
    if std::env::args().any(|a| a == "--list") {
        println!("process_exit: test");
        return;
    }
    let checks: [(&str, fn()); 7] = [
        ("close leaves no broker thread", close_leaves_no_thread),
        ("drop leaves no broker thread", drop_leaves_no_thread),
        ("in-memory child exits", || child_exits("in-memory")),
        ("persistent child exits", || child_exits("persistent")),
        ("wire child exits", || child_exits("wire")),
        ("async child exits", || child_exits("async")),
        ("remote child exits", || child_exits("remote")),
    ];
    for (name, check) in checks {
        print!("{name} ... ");
        check();
        println!("ok");
    }
    // The closing line libtest prints, which scripts/test counts.
    println!(
        "\ntest result: ok. {} passed; 0 failed; 0 ignored; 0 measured; 0 filtered out",
        checks.len()
    );
}

/// The names of this process's threads that the broker starts (`warren-timers`,
/// `warren-store-writer`, `warren-wire`, `warren-disk-monitor`; Linux keeps 15 bytes of a
/// name).
fn broker_threads() -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| name.starts_with("warren-"))
        .collect()
}

/// A broker using everything that starts a thread: a store, timers (a TTL queue, a delayed
/// queue) and a wire listener with a client; returns the broker and the other handles.
fn busy_broker(dir: &std::path::Path) -> (Broker, Kept) {
    let broker = Broker::open(dir.join("warren.redb")).unwrap();
    let conn = broker.connect("/").unwrap();
    let ch = conn.open_channel().unwrap();
    let mut args = FieldTable::new();
    args.insert("x-message-ttl", 60_000i32);
    ch.queue_declare("ttl", QueueDeclareOptions::durable(), args)
        .unwrap();
    ch.confirm_select().unwrap();
    ch.basic_publish("", "ttl", Message::new("m").persistent())
        .unwrap();
    assert!(ch.wait_for_confirms().unwrap());
    let consumer = ch.basic_consume("ttl", ConsumeOptions::default()).unwrap();
    let delivery = consumer.recv_timeout(Duration::from_secs(10)).unwrap();
    #[cfg(feature = "wire")]
    let wire = {
        let server = broker.serve("127.0.0.1:0").unwrap();
        let client = common::raw_client::RawClient::open(server.local_addr());
        (server, client)
    };
    #[cfg(not(feature = "wire"))]
    let wire = ();
    let threads = broker_threads();
    for expected in ["warren-timers", "warren-store-wr", "warren-disk-mon"] {
        assert!(
            threads.iter().any(|t| t == expected),
            "{expected} runs: {threads:?}"
        );
    }
    #[cfg(feature = "wire")]
    assert!(threads.iter().any(|t| t == "warren-wire"), "{threads:?}");
    (broker, Box::new((conn, ch, consumer, delivery, wire)))
}

fn close_leaves_no_thread() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, handles) = busy_broker(dir.path());
    broker.close().unwrap();
    // Everything was stopped and joined before close returned; the handles still live.
    assert_eq!(broker_threads(), Vec::<String>::new());
    drop((handles, broker));
}

fn drop_leaves_no_thread() {
    let dir = tempfile::tempdir().unwrap();
    let handles = busy_broker(dir.path());
    drop(handles);
    // Dropping the last handle joins the threads too.
    assert_eq!(broker_threads(), Vec::<String>::new());
}

/// Runs this binary as the child of `scenario` and checks that it exits, with status 0,
/// soon after its `main` returns.
fn child_exits(scenario: &str) {
    let began = Instant::now();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(SCENARIO, scenario)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line == RETURNING => break,
            Some(Ok(_)) => {}
            _ => {
                let status = child.wait().unwrap();
                panic!("the {scenario} child ended before returning from main: {status}");
            }
        }
    }
    let returned = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if returned.elapsed() > EXIT_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the {scenario} child still runs {EXIT_LIMIT:?} after main returned");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    print!(
        "(ran {:?}, exited {:?} after main returned) ",
        returned - began,
        returned.elapsed()
    );
    assert!(
        status.success(),
        "the {scenario} child exited with {status}"
    );
}

/// What a scenario leaves for `main` to drop.
type Kept = Box<dyn std::any::Any>;

/// The child's work: uses a broker as a program would and returns its handles, which
/// `main` drops as it returns, without closing anything.
fn child(scenario: &str) -> Kept {
    match scenario {
        "in-memory" => in_memory(),
        "persistent" => persistent(),
        #[cfg(feature = "wire")]
        "wire" => wire(),
        #[cfg(not(feature = "wire"))]
        "wire" => Box::new(()),
        "async" => async_consumers(),
        #[cfg(feature = "remote")]
        "remote" => remote(),
        #[cfg(not(feature = "remote"))]
        "remote" => Box::new(()),
        other => panic!("unknown scenario {other}"),
    }
}

/// Publishes, consumes (a consumer and a delivery held unacknowledged), leaves a returned
/// message unread and a TTL queue's timers running.
fn in_memory() -> Kept {
    let broker = Broker::in_memory();
    let conn = broker.connect("/").unwrap();
    let ch = conn.open_channel().unwrap();
    let mut args = FieldTable::new();
    args.insert("x-message-ttl", 60_000i32);
    ch.queue_declare("work", QueueDeclareOptions::default(), args)
        .unwrap();
    let returns = ch.returns();
    for i in 0..1_000 {
        ch.basic_publish("", "work", Message::new(format!("m{i}")))
            .unwrap();
    }
    ch.basic_publish_with(
        "",
        "nowhere",
        PublishOptions::mandatory(),
        Message::new("x"),
    )
    .unwrap();
    let consumer = ch.basic_consume("work", ConsumeOptions::default()).unwrap();
    let held = consumer.recv().unwrap();
    Box::new((returns, held, consumer, ch, conn, broker))
}

/// A persistent broker with confirmed and unconfirmed messages, one held unacknowledged.
fn persistent() -> Kept {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path().join("warren.redb")).unwrap();
    let conn = broker.connect("/").unwrap();
    let ch = conn.open_channel().unwrap();
    ch.queue_declare("jobs", QueueDeclareOptions::durable(), FieldTable::new())
        .unwrap();
    ch.confirm_select().unwrap();
    for i in 0..1_000 {
        ch.basic_publish("", "jobs", Message::new(format!("m{i}")).persistent())
            .unwrap();
    }
    assert!(ch.wait_for_confirms().unwrap());
    for i in 0..1_000 {
        ch.basic_publish("", "jobs", Message::new(format!("late{i}")).persistent())
            .unwrap();
    }
    let held = ch.basic_get("jobs", GetOptions::default()).unwrap();
    // The directory goes last, once the broker has written and closed its file.
    Box::new((held, ch, conn, broker, dir))
}

/// A wire listener with a client connected (a channel and a consumer) when main returns.
#[cfg(feature = "wire")]
fn wire() -> Kept {
    use amq_protocol::frame::AMQPFrame;
    use amq_protocol::protocol::{basic, channel, queue, AMQPClass};
    use common::raw_client::{encode_frame, RawClient};

    let broker = Broker::in_memory();
    let server = broker.serve("127.0.0.1:0").unwrap();
    let mut client = RawClient::open(server.local_addr());
    let methods = [
        AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: "q".into(),
            ..Default::default()
        })),
        AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: "q".into(),
            consumer_tag: "c".into(),
            ..Default::default()
        })),
    ];
    let mut bytes = Vec::new();
    for m in methods {
        bytes.extend(encode_frame(&AMQPFrame::Method(1, m)));
    }
    client.send_bytes(&bytes);
    loop {
        match client.method() {
            Some((1, AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_)))) => break,
            Some(_) => {}
            None => panic!("the server hung up"),
        }
    }
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    for i in 0..100 {
        ch.basic_publish("", "q", Message::new(format!("m{i}")))
            .unwrap();
    }
    Box::new((client, ch, server, broker))
}

/// A remote connection (feature `remote`) to a wire listener of this process, with a
/// consumer holding a delivery.
#[cfg(feature = "remote")]
fn remote() -> Kept {
    let broker = Broker::in_memory();
    let server = broker.serve("127.0.0.1:0").unwrap();
    let url = format!("amqp://guest:guest@{}/%2f", server.local_addr());
    let conn = warrenmq::Connection::open(&url).unwrap();
    let ch = conn.open_channel().unwrap();
    ch.queue_declare("q", QueueDeclareOptions::default(), FieldTable::new())
        .unwrap();
    for i in 0..100 {
        ch.basic_publish("", "q", Message::new(format!("m{i}")))
            .unwrap();
    }
    let consumer = ch.basic_consume("q", ConsumeOptions::default()).unwrap();
    let held = consumer.recv_timeout(Duration::from_secs(10)).unwrap();
    Box::new((held, consumer, ch, conn, server, broker))
}

/// Consumers as Streams on a tokio runtime that is still running when main returns.
fn async_consumers() -> Kept {
    let broker = Broker::in_memory();
    let conn = broker.connect("/").unwrap();
    let ch = conn.open_channel().unwrap();
    ch.queue_declare("q", QueueDeclareOptions::default(), FieldTable::new())
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for _ in 0..2 {
        let ch = conn.open_channel().unwrap();
        let mut consumer = ch.basic_consume("q", ConsumeOptions::default()).unwrap();
        runtime.spawn(async move {
            let _ch = ch;
            while let Some(d) = consumer.next().await {
                d.ack().unwrap();
            }
        });
    }
    for i in 0..1_000 {
        ch.basic_publish("", "q", Message::new(format!("m{i}")))
            .unwrap();
    }
    // The runtime is dropped with main's locals, its tasks (and consumers) with it.
    Box::new((ch, conn, runtime, broker))
}
