//! Consumer forwarding: one thread per `basic.consume` receives from a [`Consumer`] and
//! queues `basic.deliver` frames for the writer.
//!
//! When the consumer ends without the client asking (its queue was deleted), the thread
//! tells a client that announced the `consumer_cancel_notify` capability with a
//! server-sent `basic.cancel`, as RabbitMQ does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use amq_protocol::protocol::{basic, AMQPClass};

use super::convert::{properties_to_wire, short_string};
use super::frames;
use super::outbox::Outbox;
use crate::{Channel, Consumer, Delivery};

/// What a forwarding thread needs besides its consumer.
#[derive(Clone, Debug)]
pub(crate) struct Route {
    /// The channel number deliveries go out on.
    pub(crate) channel_id: u16,
    /// The session channel the consumer lives on.
    pub(crate) channel: Arc<Channel>,
    /// The writer.
    pub(crate) outbox: Outbox,
    /// The negotiated frame size, for splitting bodies.
    pub(crate) frame_max: u32,
    /// The client wants a `basic.cancel` when the server ends a consumer.
    pub(crate) notify_cancel: bool,
}

/// A running forwarding thread.
#[derive(Debug)]
pub(crate) struct Forwarder {
    /// Set before the connection cancels the consumer itself, so that the thread does not
    /// report the end as a server-side cancel.
    stopping: Arc<AtomicBool>,
    /// The thread.
    thread: Option<JoinHandle<()>>,
    /// The outbox the thread writes to.
    outbox: Outbox,
}

impl Forwarder {
    /// Starts forwarding the deliveries of `consumer`.
    pub(crate) fn spawn(route: Route, consumer: Consumer) -> std::io::Result<Self> {
        let stopping = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stopping);
        let outbox = route.outbox.clone();
        let thread = thread::Builder::new()
            .name("warren-wire-consumer".into())
            .spawn(move || run(&route, &consumer, &flag))?;
        Ok(Forwarder {
            stopping,
            thread: Some(thread),
            outbox,
        })
    }

    /// Marks the end of this consumer as asked for by the client. From here on the thread
    /// queues what it holds without waiting for room in the outbox, so that the connection
    /// task, which stops flushing while it joins the thread, is not waited for.
    pub(crate) fn expect_stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.outbox.wake_senders();
    }

    /// Waits for the thread to end; call after the consumer was cancelled or its channel
    /// closed. Every delivery the thread took is queued for the writer by then.
    pub(crate) fn join(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(route: &Route, consumer: &Consumer, stopping: &AtomicBool) {
    for delivery in consumer {
        let bytes = deliver_frames(route, consumer.tag(), &delivery);
        // The delivery stays unacknowledged on its channel until the client acks its tag.
        drop_unacked(delivery);
        if !route.outbox.send_waiting(&bytes, stopping) {
            return;
        }
    }
    if route.notify_cancel && !stopping.load(Ordering::Acquire) && !route.channel.is_closed() {
        let cancel = AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
            consumer_tag: short_string(consumer.tag()),
            nowait: true,
        }));
        route
            .outbox
            .send_waiting(&frames::method(route.channel_id, cancel), stopping);
    }
}

/// Lets go of a delivery handle without settling it.
fn drop_unacked(delivery: Delivery) {
    drop(delivery);
}

fn deliver_frames(route: &Route, tag: &str, d: &Delivery) -> Vec<u8> {
    let deliver = AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
        consumer_tag: short_string(tag),
        delivery_tag: d.delivery_tag(),
        redelivered: d.redelivered(),
        exchange: short_string(d.exchange()),
        routing_key: short_string(d.routing_key()),
    }));
    frames::with_content(
        route.channel_id,
        deliver,
        properties_to_wire(d.properties()),
        d.body(),
        route.frame_max,
    )
}
