//! Soak tests of `warren-server`, run in its own process so that its memory and file
//! descriptors can be read from `/proc`: many consumers on one AMQP connection, many idle
//! connections, and bursts of connections opened and closed.
//!
//! CI runs them with small numbers. The full numbers of issue #9 (200 channels × 100
//! consumers on one connection; 10,000 idle connections; 10 bursts of 2,000) run with
//!
//! ```text
//! WARREN_SOAK=full cargo test --release --all-features --test wire_soak -- --nocapture --test-threads 1
//! ```
//!
//! Each test prints what it measured (RSS per idle connection, RSS after each burst, time
//! to open the consumers); docs/wire.md and docs/benchmarks.md give the figures.
#![cfg(all(feature = "wire", target_os = "linux"))]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use amq_protocol::frame::{parse_frame, AMQPFrame};
use amq_protocol::protocol::{basic, channel, queue, AMQPClass};
use common::raw_client::{encode_frame, handshake_bytes, publish_frames};
use common::server_process::ServerProcess;

/// The sizes of one run.
#[derive(Clone, Copy, Debug)]
struct Sizes {
    /// Channels on the consuming connection.
    channels: u16,
    /// `basic.consume` per channel (one per queue).
    consumers_per_channel: usize,
    /// Idle connections held at once.
    idle: usize,
    /// Bursts of connections opened and closed.
    bursts: usize,
    /// Connections per burst.
    burst: usize,
}

fn sizes() -> Sizes {
    if std::env::var("WARREN_SOAK").is_ok_and(|v| v == "full") {
        Sizes {
            channels: 200,
            consumers_per_channel: 100,
            idle: 10_000,
            bursts: 10,
            burst: 2_000,
        }
    } else {
        Sizes {
            channels: 20,
            consumers_per_channel: 10,
            idle: 200,
            bursts: 3,
            burst: 100,
        }
    }
}

/// The resident set size of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// The number of open file descriptors of process `pid`.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .count()
}

/// The number of threads of process `pid`.
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("task dir")
        .count()
}

/// Waits until `condition` holds, for at most `limit`.
#[track_caller]
fn wait_until(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Raises this process's open-file limit so that it can hold `needed` sockets.
#[track_caller]
fn raise_file_limit(needed: usize) {
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0);
    assert!(
        limit >= needed as u64,
        "the open-file hard limit {limit} is below the {needed} this soak needs (ulimit -Hn)"
    );
}

/// A raw AMQP client reading whole frames.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    /// Connects, sends the handshake and `channel.open` for channels `1..=channels`, and
    /// waits for every `open-ok`.
    fn open(addr: SocketAddr, channels: u16) -> Client {
        let stream = TcpStream::connect(addr).expect("connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let mut client = Client {
            stream,
            buf: Vec::new(),
        };
        let mut bytes = handshake_bytes();
        for id in 1..=channels {
            bytes.extend(method(
                id,
                AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
            ));
        }
        client.stream.write_all(&bytes).expect("writes");
        let mut open = 0;
        while open < channels {
            if let (_, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))) = client.method() {
                open += 1;
            }
        }
        client
    }

    /// Reads one frame.
    fn frame(&mut self) -> AMQPFrame {
        loop {
            if let Ok((rest, frame)) = parse_frame(self.buf.as_slice()) {
                let used = self.buf.len() - rest.len();
                self.buf.drain(..used);
                return frame;
            }
            let mut chunk = [0; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("the server closed the connection"),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => panic!("reading from the server: {e}"),
            }
        }
    }

    /// Reads up to the next method frame.
    fn method(&mut self) -> (u16, AMQPClass) {
        loop {
            if let AMQPFrame::Method(id, m) = self.frame() {
                return (id, m);
            }
        }
    }
}

fn method(channel: u16, m: AMQPClass) -> Vec<u8> {
    encode_frame(&AMQPFrame::Method(channel, m))
}

/// A publish of a small body to `queue` through the default exchange.
fn publish(channel: u16, queue: &str) -> Vec<u8> {
    publish_frames(channel, queue, b"soak")
}

#[test]
fn smoke() {
    let server = ServerProcess::start(&[]);
    let mut client = Client::open(server.addr, 1);
    client
        .stream
        .write_all(&method(
            1,
            AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                queue: "soak-smoke".into(),
                ..queue::Declare::default()
            })),
        ))
        .expect("writes");
    assert!(matches!(
        client.method(),
        (1, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_)))
    ));
}

/// One connection opens `channels × consumers_per_channel` consumers (each channel
/// consumes every one of `consumers_per_channel` queues); then a second connection
/// publishes one message per consumer, and every one is delivered. The server stays up
/// and keeps a bounded number of threads.
#[test]
fn many_consumers_on_one_connection() {
    let sizes = sizes();
    let server = ServerProcess::start(&[]);
    let pid = server.pid();
    let queues: Vec<String> = (0..sizes.consumers_per_channel)
        .map(|i| format!("soak-q{i}"))
        .collect();
    let began = Instant::now();
    let mut consumer = Client::open(server.addr, sizes.channels);
    let mut bytes = Vec::new();
    for q in &queues {
        bytes.extend(method(
            1,
            AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                queue: q.as_str().into(),
                nowait: true,
                ..queue::Declare::default()
            })),
        ));
    }
    for id in 1..=sizes.channels {
        for q in &queues {
            bytes.extend(method(
                id,
                AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                    queue: q.as_str().into(),
                    no_ack: true,
                    ..basic::Consume::default()
                })),
            ));
        }
    }
    let total = usize::from(sizes.channels) * queues.len();
    let mut consuming = 0;
    // Written from another thread while this one reads the replies: a client that sends
    // megabytes without reading would be held back by the server (see outbox.rs).
    thread::scope(|scope| {
        let mut writer = consumer.stream.try_clone().expect("clones");
        scope.spawn(move || writer.write_all(&bytes).expect("writes"));
        while consuming < total {
            if let (_, AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_))) = consumer.method() {
                consuming += 1;
            }
        }
    });
    let opened = began.elapsed();
    let threads_consuming = threads(pid);

    let publisher = Client::open(server.addr, 1);
    let mut bytes = Vec::new();
    for i in 0..total {
        bytes.extend(publish(1, &queues[i % queues.len()]));
    }
    let began = Instant::now();
    let mut delivered = 0;
    thread::scope(|scope| {
        let mut writer = publisher.stream.try_clone().expect("clones");
        scope.spawn(move || writer.write_all(&bytes).expect("publishes"));
        while delivered < total {
            if let (_, AMQPClass::Basic(basic::AMQPMethod::Deliver(_))) = consumer.method() {
                delivered += 1;
            }
        }
    });
    let delivering = began.elapsed();
    println!(
        "{total} consumers on one connection ({} channels × {}): consume-ok for all in \
         {opened:?}; {total} messages delivered in {delivering:?}; server RSS {} KiB, \
         {} threads, {} file descriptors",
        sizes.channels,
        queues.len(),
        rss_kib(pid),
        threads_consuming,
        fds(pid),
    );
    // Still serving: a new connection opens.
    drop(Client::open(server.addr, 1));
}

/// Opens `n` connections, each with an open channel, and returns them.
fn open_many(addr: SocketAddr, n: usize) -> Vec<Client> {
    (0..n).map(|_| Client::open(addr, 1)).collect()
}

/// Starts a server and warms it up (its runtime's threads and the broker's first
/// connections); returns it with its file descriptor count at rest.
fn warm_server() -> (ServerProcess, usize) {
    let server = ServerProcess::start(&[]);
    let pid = server.pid();
    let base_fds = fds(pid);
    drop(open_many(server.addr, 10));
    wait_until(
        "the warm-up connections close",
        Duration::from_secs(30),
        || fds(pid) <= base_fds,
    );
    (server, base_fds)
}

/// Idle connections: what each costs the server in memory, file descriptors and threads.
#[test]
fn idle_connections() {
    let sizes = sizes();
    raise_file_limit(sizes.idle + 100);
    let (server, base_fds) = warm_server();
    let pid = server.pid();
    let base_rss = rss_kib(pid);
    let began = Instant::now();
    let idle = open_many(server.addr, sizes.idle);
    let opened = began.elapsed();
    wait_until(
        "the server holds every connection",
        Duration::from_secs(30),
        || fds(pid) >= base_fds + sizes.idle,
    );
    thread::sleep(Duration::from_millis(500));
    let idle_rss = rss_kib(pid);
    let per_connection = idle_rss.saturating_sub(base_rss) as f64 / sizes.idle as f64;
    let held_fds = fds(pid) - base_fds;
    let held_threads = threads(pid);
    println!(
        "{} idle connections opened in {opened:?}: server RSS {base_rss} KiB -> {idle_rss} KiB, \
         {per_connection:.1} KiB per connection; {held_fds} more file descriptors; \
         {held_threads} threads",
        sizes.idle,
    );
    assert_eq!(held_fds, sizes.idle, "one file descriptor per connection");
    drop(idle);
    wait_until(
        "the idle connections close",
        Duration::from_secs(60),
        || fds(pid) <= base_fds,
    );
    // Still serving.
    drop(Client::open(server.addr, 1));
}

/// Bursts of connections opened and closed leave nothing behind: file descriptors come
/// back, and the server's memory levels off.
#[test]
fn bursts_of_connections() {
    let sizes = sizes();
    raise_file_limit(sizes.burst + 100);
    let (server, base_fds) = warm_server();
    let pid = server.pid();
    let mut after = Vec::new();
    for _ in 0..sizes.bursts {
        drop(open_many(server.addr, sizes.burst));
        wait_until(
            "the burst's connections close",
            Duration::from_secs(60),
            || fds(pid) <= base_fds,
        );
        thread::sleep(Duration::from_millis(200));
        after.push(rss_kib(pid));
    }
    println!(
        "RSS after each of {} bursts of {} connections (KiB): {after:?}; last / first = {:.3}; \
         {} threads",
        sizes.bursts,
        sizes.burst,
        *after.last().expect("a burst") as f64 / after[0] as f64,
        threads(pid),
    );
    // Still serving.
    drop(Client::open(server.addr, 1));
}
