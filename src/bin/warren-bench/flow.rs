//! The publish → route → queue → consume flow, through Warren and through a bare
//! crossbeam channel, one timed round at a time.
//!
//! Shared by `warren-bench throughput` and the criterion bench (`interop/benches/publish_consume.rs`
//! includes this file), so both time the same code.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use warrenmq::{
    Broker, Channel, Connection, ConsumeOptions, Consumer, Delivery, ExchangeDeclareOptions,
    ExchangeKind, FieldTable, Message, QueueDeclareOptions,
};

/// How long a consumer of a shared queue waits before looking whether the others finished.
const POLL: Duration = Duration::from_millis(2);

/// The exchange kind messages go through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// A direct exchange, one queue bound with the routing key.
    Direct,
    /// A topic exchange, one queue bound with `bench.#`.
    Topic,
    /// A fanout exchange, one queue per consumer: every consumer gets every message.
    Fanout,
}

/// How consumers acknowledge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ack {
    /// `no_ack` consumers.
    None,
    /// `Delivery::ack` for every delivery.
    Each,
    /// `Channel::basic_ack(tag, multiple = true)` every this many deliveries (and at the end).
    Multiple(u64),
}

/// One round's shape.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Flow {
    /// Exchange kind.
    pub(crate) route: Route,
    /// Publishing threads.
    pub(crate) producers: usize,
    /// Consuming threads.
    pub(crate) consumers: usize,
    /// Acknowledgement mode (Warren only: a channel has no acks).
    pub(crate) ack: Ack,
    /// Body size in bytes.
    pub(crate) size: usize,
    /// Messages published in the round (by all producers together).
    pub(crate) messages: u64,
}

impl Flow {
    /// Deliveries the consumers receive in a round: every message once, or once per
    /// consumer with fanout.
    pub(crate) fn deliveries(&self) -> u64 {
        match self.route {
            Route::Fanout => self.messages * self.consumers as u64,
            Route::Direct | Route::Topic => self.messages,
        }
    }

    /// Deliveries each consumer takes when they are known in advance: all of its own queue's
    /// with fanout, all of them for a lone consumer. `None` when consumers compete for one
    /// queue and count together.
    pub(crate) fn quota(&self) -> Option<u64> {
        (self.route == Route::Fanout || self.consumers == 1).then_some(self.messages)
    }

    /// Messages producer `i` publishes: an even share, the remainder to the first ones.
    fn share(&self, i: usize) -> u64 {
        let p = self.producers as u64;
        self.messages / p + u64::from((i as u64) < self.messages % p)
    }
}

/// The body every message carries (cloned, which shares it, per message).
pub(crate) fn body(size: usize) -> Bytes {
    Bytes::from(vec![b'x'; size])
}

/// Counts deliveries of a shared queue and tells each consumer when all have arrived.
#[derive(Debug)]
pub(crate) struct Tally {
    /// Deliveries received by all consumers.
    received: AtomicU64,
    /// Deliveries expected.
    target: u64,
}

impl Tally {
    /// Counts one delivery; true once the round is complete.
    pub(crate) fn count(&self) -> bool {
        self.received.fetch_add(1, Ordering::Relaxed) + 1 >= self.target
    }

    /// Whether the round is complete.
    pub(crate) fn done(&self) -> bool {
        self.received.load(Ordering::Relaxed) >= self.target
    }
}

/// One consuming thread of a Warren round: subscribes to the queue, waits at the barrier,
/// then receives (and acks) its share.
pub(crate) type ConsumerFn =
    fn(&Broker, &str, &Flow, &Tally, &Barrier) -> Result<(), warrenmq::Error>;

/// Runs one round through a fresh in-memory Warren broker and returns how long it took from
/// the first publish to the last delivery (acknowledged, with manual acks).
pub(crate) fn warren_round(flow: &Flow) -> Result<Duration, warrenmq::Error> {
    warren_round_with(flow, warren_consumer)
}

/// [`warren_round`] with another consuming thread.
pub(crate) fn warren_round_with(
    flow: &Flow,
    consumer: ConsumerFn,
) -> Result<Duration, warrenmq::Error> {
    let broker = Broker::in_memory();
    let setup = broker.connect("/")?.open_channel()?;
    let (exchange, kind, key) = match flow.route {
        Route::Direct => ("bench.direct", ExchangeKind::Direct, "bench.key"),
        Route::Topic => ("bench.topic", ExchangeKind::Topic, "bench.#"),
        Route::Fanout => ("bench.fanout", ExchangeKind::Fanout, ""),
    };
    let options = ExchangeDeclareOptions::default();
    setup.exchange_declare(exchange, kind, options, FieldTable::new())?;
    let queues = match flow.route {
        Route::Fanout => flow.consumers,
        Route::Direct | Route::Topic => 1,
    };
    for q in 0..queues {
        let name = format!("bench.q{q}");
        setup.queue_declare(&name, QueueDeclareOptions::default(), FieldTable::new())?;
        setup.queue_bind(&name, exchange, key, FieldTable::new())?;
    }
    let tally = Tally {
        received: AtomicU64::new(0),
        target: flow.deliveries(),
    };
    let start = Barrier::new(flow.producers + flow.consumers + 1);
    let body = body(flow.size);
    thread::scope(|s| {
        let consumers: Vec<_> = (0..flow.consumers)
            .map(|c| {
                let queue = format!("bench.q{}", c % queues);
                let (broker, tally, start) = (&broker, &tally, &start);
                s.spawn(move || consumer(broker, &queue, flow, tally, start))
            })
            .collect();
        let producers: Vec<_> = (0..flow.producers)
            .map(|p| {
                let (broker, start, body) = (&broker, &start, body.clone());
                s.spawn(move || {
                    let ch = broker.connect("/")?.open_channel();
                    start.wait();
                    let ch = ch?;
                    for _ in 0..flow.share(p) {
                        ch.basic_publish(exchange, "bench.key", Message::new(body.clone()))?;
                    }
                    Ok::<_, warrenmq::Error>(())
                })
            })
            .collect();
        start.wait();
        let began = Instant::now();
        for handle in consumers.into_iter().chain(producers) {
            handle.join().expect("benchmark thread panicked")?;
        }
        Ok(began.elapsed())
    })
}

/// One consuming thread: subscribes, waits for the start, then receives (and acks) until
/// its queue's share of the round has arrived.
fn warren_consumer(
    broker: &Broker,
    queue: &str,
    flow: &Flow,
    tally: &Tally,
    start: &Barrier,
) -> Result<(), warrenmq::Error> {
    let subscribed = subscribe(broker, queue, flow);
    start.wait();
    let (_conn, ch, consumer) = subscribed?;
    let quota = flow.quota();
    let mut settler = Settler::new(&ch, flow.ack);
    loop {
        let delivery = if let Some(quota) = quota {
            if settler.received() == quota {
                break;
            }
            consumer.recv().map_err(|_| closed())?
        } else {
            match consumer.recv_timeout(POLL) {
                Ok(delivery) => delivery,
                Err(e) if e.is_timeout() && tally.done() => break,
                Err(e) if e.is_timeout() => continue,
                Err(_) => return Err(closed()),
            }
        };
        settler.settle(delivery)?;
        if quota.is_none() && tally.count() {
            break;
        }
    }
    settler.finish()
}

/// Subscribes a round's consumer to `queue`, with `no_ack` unless the flow acks.
pub(crate) fn subscribe(
    broker: &Broker,
    queue: &str,
    flow: &Flow,
) -> Result<(Connection, Channel, Consumer), warrenmq::Error> {
    let conn = broker.connect("/")?;
    let ch = conn.open_channel()?;
    let options = ConsumeOptions {
        no_ack: flow.ack == Ack::None,
        ..ConsumeOptions::default()
    };
    let consumer = ch.basic_consume(queue, options)?;
    Ok((conn, ch, consumer))
}

/// Counts a consumer's deliveries and acknowledges them as the flow asks.
pub(crate) struct Settler<'a> {
    ch: &'a Channel,
    ack: Ack,
    received: u64,
    /// The last delivery not yet covered by an ack with `multiple`.
    last_tag: Option<u64>,
}

impl<'a> Settler<'a> {
    /// Acks on `ch` in `ack`'s way.
    pub(crate) fn new(ch: &'a Channel, ack: Ack) -> Self {
        Settler {
            ch,
            ack,
            received: 0,
            last_tag: None,
        }
    }

    /// Deliveries received so far.
    pub(crate) fn received(&self) -> u64 {
        self.received
    }

    /// Counts `delivery` and acks it (or, every N, all so far) as the flow asks.
    pub(crate) fn settle(&mut self, delivery: Delivery) -> Result<(), warrenmq::Error> {
        self.received += 1;
        self.last_tag = Some(delivery.delivery_tag());
        match self.ack {
            Ack::None => drop(delivery),
            Ack::Each => delivery.ack()?,
            Ack::Multiple(every) => {
                drop(delivery);
                if self.received.is_multiple_of(every) {
                    let tag = self.last_tag.take().unwrap_or_default();
                    self.ch.basic_ack(tag, true)?;
                }
            }
        }
        Ok(())
    }

    /// Acks what the last `multiple` ack did not cover.
    pub(crate) fn finish(self) -> Result<(), warrenmq::Error> {
        if let (Ack::Multiple(_), Some(tag)) = (self.ack, self.last_tag) {
            self.ch.basic_ack(tag, true)?;
        }
        Ok(())
    }
}

/// The error for a consumer whose channel closed under it.
pub(crate) fn closed() -> warrenmq::Error {
    warrenmq::Error::ChannelClosed { cause: None }
}

/// Runs one round through unbounded crossbeam channels and returns how long it took: one
/// channel shared by all consumers, or with fanout one per consumer, each producer sending
/// every consumer a copy.
pub(crate) fn crossbeam_round(flow: &Flow) -> Duration {
    let channels = match flow.route {
        Route::Fanout => flow.consumers,
        Route::Direct | Route::Topic => 1,
    };
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..channels)
        .map(|_| crossbeam_channel::unbounded::<Message>())
        .unzip();
    let tally = Tally {
        received: AtomicU64::new(0),
        target: flow.deliveries(),
    };
    let start = Barrier::new(flow.producers + flow.consumers + 1);
    let body = body(flow.size);
    let quota = flow.quota();
    thread::scope(|s| {
        let mut handles = Vec::new();
        for c in 0..flow.consumers {
            let (rx, tally, start) = (receivers[c % channels].clone(), &tally, &start);
            handles.push(s.spawn(move || {
                start.wait();
                let mut received = 0_u64;
                while quota != Some(received) {
                    let message = match quota {
                        Some(_) => rx.recv().ok(),
                        None => rx.recv_timeout(POLL).ok(),
                    };
                    match message {
                        Some(message) => drop(message),
                        None if quota.is_some() || tally.done() => break,
                        None => continue,
                    }
                    received += 1;
                    if quota.is_none() && tally.count() {
                        break;
                    }
                }
            }));
        }
        for p in 0..flow.producers {
            let (senders, start, body) = (senders.clone(), &start, body.clone());
            handles.push(s.spawn(move || {
                start.wait();
                for _ in 0..flow.share(p) {
                    for tx in &senders {
                        let _ = tx.send(Message::new(body.clone()));
                    }
                }
            }));
        }
        start.wait();
        let began = Instant::now();
        for handle in handles {
            handle.join().expect("benchmark thread panicked");
        }
        began.elapsed()
    })
}
