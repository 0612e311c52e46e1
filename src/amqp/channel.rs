//! One AMQP channel: dispatches its methods to a session [`Channel`] and keeps what the
//! wire adds on top (its consumers' tags, content being assembled, confirm numbering).
//!
//! - `topology`: exchange and queue methods.
//! - `publishing`: content, publishes, returns, confirms and transactions.
//! - `consuming`: consume, cancel, and the frames of what consumers yield.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use amq_protocol::protocol::{basic, channel, confirm, AMQPClass};
use amq_protocol::types::ShortString;

use super::consumers::ConsumerKey;
use super::content::{self, Assembly, Route};
use super::convert::{properties_to_wire, short_string};
use super::failure::{Failure, MethodId};
use super::frames;
use super::outbox::Outbox;
use super::registry::ChannelView;
use super::tx::{Held, Transaction};
use crate::alarm::Alarms;
use crate::channel::Receipt;
use crate::sync::FastHash;
use crate::{Channel, Consumer, Delivery, Error, GetOptions, ReplyCode, Returns};

mod consuming;
mod publishing;
mod topology;

pub(crate) use publishing::Confirms;

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::from_error(&e, MethodId::default())
    }
}

/// What every channel of a connection shares.
#[derive(Clone, Debug)]
pub(crate) struct Link {
    /// The writer.
    pub(crate) outbox: Outbox,
    /// The negotiated frame size.
    pub(crate) frame_max: u32,
    /// The client wants `basic.cancel` when the server ends a consumer.
    pub(crate) notify_cancel: bool,
    /// Numbers the connection's consumers.
    pub(crate) consumer_keys: Arc<AtomicU64>,
    /// The largest message body accepted.
    pub(crate) max_message_size: u64,
    /// The broker's alarms, charged for bodies still arriving.
    pub(crate) alarms: Arc<Alarms>,
}

impl Link {
    /// Returns a key for a new consumer, unique on the connection.
    pub(crate) fn next_consumer_key(&self) -> ConsumerKey {
        self.consumer_keys.fetch_add(1, Ordering::Relaxed)
    }
}

/// An open channel.
#[derive(Debug)]
pub(crate) struct WireChannel {
    /// The channel number.
    id: u16,
    /// The session channel.
    channel: Arc<Channel>,
    /// The connection's writer and settings.
    link: Link,
    /// Consumers by tag.
    consumers: HashMap<String, ConsumerKey, FastHash>,
    /// Consumer tags by consumer.
    tags: HashMap<ConsumerKey, ShortString, FastHash>,
    /// Consumers started and not yet handed to the connection.
    started: Vec<(ConsumerKey, Consumer)>,
    /// Consumers the client cancelled, not yet taken by the connection.
    stopped: Vec<ConsumerKey>,
    /// A publish whose content is still arriving.
    assembly: Option<Assembly>,
    /// Publisher confirms: the sequence number of the last publish, once confirm mode is on.
    published: Option<u64>,
    /// The last publish confirmed to the client.
    confirmed: u64,
    /// What each publish after `confirmed` left to confirm it by, in publish order.
    receipts: VecDeque<Receipt>,
    /// The queue last declared, which an empty queue name refers to.
    last_queue: Option<String>,
    /// The open transaction, once `tx.select` made the channel transactional.
    tx: Option<Transaction>,
    /// Where the session channel hands back unroutable mandatory publishes.
    returns: Returns,
    /// What the management API shows of it.
    view: Arc<ChannelView>,
}

impl WireChannel {
    /// Wraps a freshly opened session channel.
    pub(crate) fn new(id: u16, channel: Channel, link: Link) -> Self {
        let returns = channel.returns();
        let channel = Arc::new(channel);
        WireChannel {
            id,
            view: Arc::new(ChannelView::new(id, Arc::clone(&channel))),
            channel,
            link,
            consumers: HashMap::default(),
            tags: HashMap::default(),
            started: Vec::new(),
            stopped: Vec::new(),
            assembly: None,
            published: None,
            confirmed: 0,
            receipts: VecDeque::new(),
            last_queue: None,
            tx: None,
            returns,
        }
    }

    /// Handles one method sent on this channel.
    ///
    /// # Errors
    ///
    /// A channel failure closes this channel; a connection failure the connection.
    pub(crate) fn method(&mut self, method: AMQPClass) -> Result<(), Failure> {
        if self.assembly.is_some() {
            return Err(content::unexpected("content header"));
        }
        let id = MethodId::of(&method);
        let result = match method {
            AMQPClass::Exchange(m) => self.exchange(m),
            AMQPClass::Queue(m) => self.queue(m),
            AMQPClass::Basic(m) => self.basic(m),
            AMQPClass::Confirm(confirm::AMQPMethod::Select(m)) => self.confirm_select(m),
            // As RabbitMQ 3: a channel cannot be paused, only confirmed active.
            AMQPClass::Channel(channel::AMQPMethod::Flow(m)) if !m.active => {
                Err(not_implemented("active=false"))
            }
            AMQPClass::Channel(channel::AMQPMethod::Flow(_)) => {
                let ok = channel::FlowOk { active: true };
                self.reply(AMQPClass::Channel(channel::AMQPMethod::FlowOk(ok)));
                Ok(())
            }
            AMQPClass::Access(_) => {
                let ok = amq_protocol::protocol::access::RequestOk {};
                let m = amq_protocol::protocol::access::AMQPMethod::RequestOk(ok);
                self.reply(AMQPClass::Access(m));
                Ok(())
            }
            AMQPClass::Tx(m) => self.transaction(m),
            _ => Err(Failure::hard(
                ReplyCode::COMMAND_INVALID,
                "unimplemented method",
            )),
        };
        result.map_err(|f| f.at(id))
    }

    /// Closes the session channel (its consumers end, its unacknowledged messages go back
    /// to their queues); returns the keys of its consumers, for the connection to drop.
    pub(crate) fn shutdown(self) -> Vec<ConsumerKey> {
        self.channel.close();
        let mut keys = self.consumer_keys();
        keys.extend(self.started.iter().map(|(key, _)| *key));
        keys
    }

    /// Returns the channel number.
    pub(crate) fn number(&self) -> u16 {
        self.id
    }

    /// Returns what the management API shows of this channel.
    pub(crate) fn view(&self) -> Arc<ChannelView> {
        Arc::clone(&self.view)
    }

    fn reply(&self, method: AMQPClass) {
        self.link.outbox.send(frames::method(self.id, method));
    }

    /// Resolves a queue name: empty means the queue last declared on this channel.
    fn queue_name(&self, name: &ShortString) -> Result<String, Failure> {
        if !name.as_str().is_empty() {
            return Ok(name.as_str().to_owned());
        }
        self.last_queue.clone().ok_or_else(|| Failure::Channel {
            code: ReplyCode::NOT_FOUND,
            text: "NOT_FOUND - no previously declared queue".into(),
            method: MethodId::default(),
        })
    }

    fn basic(&mut self, method: basic::AMQPMethod) -> Result<(), Failure> {
        use basic::AMQPMethod as M;
        match method {
            M::Publish(m) => self.start_publish(Route::from(&m), m.immediate)?,
            M::Consume(m) => self.consume(m)?,
            M::Cancel(m) => self.cancel(&m)?,
            M::Get(m) => self.get(&m)?,
            M::Ack(m) => self.settle(Held::Ack {
                tag: m.delivery_tag,
                multiple: m.multiple,
            })?,
            M::Nack(m) => self.settle(Held::Nack {
                tag: m.delivery_tag,
                multiple: m.multiple,
                requeue: m.requeue,
            })?,
            M::Reject(m) => self.settle(Held::Nack {
                tag: m.delivery_tag,
                multiple: false,
                requeue: m.requeue,
            })?,
            M::Qos(m) => {
                self.channel.basic_qos(m.prefetch_count)?;
                self.view
                    .prefetch_count
                    .store(m.prefetch_count, Ordering::Relaxed);
                self.reply(AMQPClass::Basic(M::QosOk(basic::QosOk {})));
            }
            // RabbitMQ always requeues on recover, whatever the `requeue` flag says.
            M::Recover(_) => {
                self.channel.basic_recover()?;
                self.reply(AMQPClass::Basic(M::RecoverOk(basic::RecoverOk {})));
            }
            M::RecoverAsync(_) => self.channel.basic_recover()?,
            _ => return Err(unexpected_method()),
        }
        Ok(())
    }

    fn get(&mut self, m: &basic::Get) -> Result<(), Failure> {
        let queue = self.queue_name(&m.queue)?;
        let options = GetOptions { no_ack: m.no_ack };
        let frames = match self.channel.basic_get(&queue, options)? {
            Some(d) => self.get_ok(d),
            None => frames::method(
                self.id,
                AMQPClass::Basic(basic::AMQPMethod::GetEmpty(basic::GetEmpty {})),
            ),
        };
        self.link.outbox.send(frames);
        Ok(())
    }

    /// Encodes a fetched message. The delivery stays unacknowledged on the session channel
    /// until the client acks its tag.
    fn get_ok(&self, d: Delivery) -> Vec<u8> {
        let ok = basic::GetOk {
            delivery_tag: d.delivery_tag(),
            redelivered: d.redelivered(),
            exchange: short_string(d.exchange()),
            routing_key: short_string(d.routing_key()),
            message_count: d.message_count().unwrap_or(0),
        };
        frames::with_content(
            self.id,
            AMQPClass::Basic(basic::AMQPMethod::GetOk(ok)),
            properties_to_wire(d.properties()),
            d.body(),
            self.link.frame_max,
        )
    }
}

/// Returns `true` for the methods that may wait for the disk (declares, deletes, binds and
/// purges write durable entities and wait for their fsync): the connection runs them on
/// the runtime's blocking threads.
pub(crate) fn may_wait(method: &AMQPClass) -> bool {
    matches!(method, AMQPClass::Exchange(_) | AMQPClass::Queue(_))
}

fn not_implemented(what: &str) -> Failure {
    Failure::hard(ReplyCode::NOT_IMPLEMENTED, what)
}

fn precondition(reason: &str) -> Failure {
    Failure::Channel {
        code: ReplyCode::PRECONDITION_FAILED,
        text: format!("PRECONDITION_FAILED - {reason}"),
        method: MethodId::default(),
    }
}

fn unexpected_method() -> Failure {
    Failure::hard(
        ReplyCode::COMMAND_INVALID,
        "unexpected method from a client",
    )
}
