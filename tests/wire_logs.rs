//! Issue 15 part 5: the structured `tracing` events operators read, captured by a subscriber
//! layer: a wire connection opened and closed (with user and vhost; the peer is on the
//! connection's span), a refused login (with user and peer), a connection closed for an
//! error, and the memory alarm set and cleared.
#![cfg(all(feature = "wire", feature = "cli"))]

mod common;

use std::fmt::{Debug, Write as _};
use std::sync::{Arc, Mutex};

use common::eventually;
use common::raw_client::{start_ok, RawClient as Raw};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;
use warrenmq::{
    Broker, FieldTable, GetOptions, MemoryWatermark, Message, PublishOptions, QueueDeclareOptions,
};

/// Every event, as `message=... field=value ...`.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<String>>>);

impl Captured {
    /// Returns `true` once an event has every one of `parts`.
    fn has(&self, parts: &[&str]) -> bool {
        let lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().any(|l| parts.iter().all(|p| l.contains(p)))
    }
}

/// Writes an event's fields.
struct Line<'a>(&'a mut String);

impl Visit for Line<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, " {}={value}", field.name());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl<S: Subscriber> Layer<S> for Captured {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut line = String::new();
        event.record(&mut Line(&mut line));
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }
}

#[test]
fn operators_see_connections_logins_and_alarms() {
    let captured = Captured::default();
    tracing_subscriber::registry().with(captured.clone()).init();

    let broker = Broker::builder()
        .memory_high_watermark(MemoryWatermark::Absolute(100_000))
        .build()
        .expect("a broker");
    let server = broker.serve("127.0.0.1:0").expect("binds");
    let addr = server.local_addr();

    // A connection opened and ended by its client.
    let client = Raw::open(addr);
    eventually("connection opened is logged", || {
        captured.has(&["message=connection opened", "user=guest", "vhost=/"])
    });
    // The client hangs up.
    drop(client);
    eventually("connection closed is logged", || {
        captured.has(&["message=connection closed", "user=guest", "vhost=/"])
    });

    // A refused login.
    let mut refused = Raw::connect(addr);
    refused.send_bytes(b"AMQP\x00\x00\x09\x01");
    refused.send_connection(start_ok("guest", "wrong", &[]));
    let (code, _) = refused.connection_close();
    assert_eq!(code, 403);
    eventually("login refused is logged", || {
        captured.has(&["message=login refused", "user=guest", "peer=127.0.0.1:"])
    });
    eventually("the refused handshake is logged", || {
        captured.has(&["message=handshake refused"])
    });

    // The memory alarm on and cleared.
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    ch.queue_declare("q", QueueDeclareOptions::default(), FieldTable::new())
        .unwrap();
    let big = Message::new(vec![0; 200_000]);
    ch.try_basic_publish("", "q", PublishOptions::default(), big)
        .unwrap();
    eventually("the memory alarm is logged", || {
        captured.has(&["message=memory alarm on", "watermark=100000"])
    });
    let d = ch.basic_get("q", GetOptions::default()).unwrap().unwrap();
    d.ack().unwrap();
    eventually("the memory alarm's end is logged", || {
        captured.has(&["message=memory alarm cleared", "watermark=100000"])
    });
}
