//! Shared set-up for the integration tests: a broker with a channel, declares, publishes,
//! draining queues, and waiting on a condition instead of sleeping. `wire` serves a broker on
//! a free port (also used by the interop crate's tests, through a `#[path]` module).
#![allow(dead_code, unreachable_pub)]

#[cfg(feature = "wire")]
pub mod raw_client;
// The binary exists only with the `cli` feature (required-features).
#[cfg(all(feature = "wire", feature = "cli"))]
pub mod server_process;
#[cfg(feature = "wire")]
pub mod wire;

use std::thread;
use std::time::{Duration, Instant};

use warrenmq::{
    Broker, Channel, Connection, Delivery, ExchangeDeclareOptions, ExchangeKind, FieldTable,
    GetOptions, Message, QueueDeclareOptions,
};

/// How long a test waits for something that should happen at once.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A broker with one connection and one channel on `/`.
pub fn setup() -> (Broker, Connection, Channel) {
    let broker = Broker::in_memory();
    let conn = broker.connect("/").unwrap();
    let ch = conn.open_channel().unwrap();
    (broker, conn, ch)
}

pub fn declare_queue(ch: &Channel, name: &str) -> String {
    ch.queue_declare(name, QueueDeclareOptions::default(), FieldTable::new())
        .unwrap()
        .queue
}

/// Declares a non-durable queue with `args`.
pub fn declare(ch: &Channel, name: &str, args: FieldTable) {
    ch.queue_declare(name, QueueDeclareOptions::default(), args)
        .unwrap();
}

pub fn declare_exchange(ch: &Channel, name: &str, kind: ExchangeKind) {
    ch.exchange_declare(
        name,
        kind,
        ExchangeDeclareOptions::default(),
        FieldTable::new(),
    )
    .unwrap();
}

/// `work` dead-letters to fanout `dlx`, which feeds `dlq`.
pub fn work_with_dlx(ch: &Channel) {
    declare_exchange(ch, "dlx", ExchangeKind::Fanout);
    declare_queue(ch, "dlq");
    ch.queue_bind("dlq", "dlx", "", FieldTable::new()).unwrap();
    declare(
        ch,
        "work",
        FieldTable::new().with("x-dead-letter-exchange", "dlx"),
    );
}

pub fn publish(ch: &Channel, exchange: &str, key: &str, body: &str) {
    ch.basic_publish(exchange, key, Message::new(body.to_owned()))
        .unwrap();
}

/// Fetches every ready message of a queue without ack; returns the bodies.
pub fn drain(ch: &Channel, queue: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    while let Some(d) = ch.basic_get(queue, GetOptions::no_ack()).unwrap() {
        bodies.push(body(&d));
    }
    bodies
}

/// Fetches every ready message without ack, as `body`, or `body(R)` when redelivered.
pub fn drain_marked(ch: &Channel, queue: &str) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(d) = ch.basic_get(queue, GetOptions::no_ack()).unwrap() {
        out.push(if d.redelivered() {
            format!("{}(R)", body(&d))
        } else {
            body(&d)
        });
    }
    out
}

pub fn body(d: &Delivery) -> String {
    String::from_utf8(d.body().to_vec()).unwrap()
}

pub fn code(e: &warrenmq::Error) -> u16 {
    e.reply_code().0
}

/// Waits until `condition` holds, polling; fails after [`PATIENCE`] naming `what`.
#[track_caller]
pub fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(2));
    }
}

/// The kernel's id of the calling thread (Linux), to watch it from another thread.
pub fn current_thread_id() -> Option<u32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// Waits until thread `tid` of this process sleeps in the kernel (blocked, for instance in
/// a `recv`); returns at once where /proc is not available.
#[track_caller]
pub fn wait_until_blocked(tid: Option<u32>) {
    let Some(tid) = tid else { return };
    let path = format!("/proc/self/task/{tid}/stat");
    eventually("the thread blocks", || {
        std::fs::read_to_string(&path).is_ok_and(|stat| {
            stat.rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next())
                == Some("S")
        })
    });
}
