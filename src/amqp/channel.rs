//! One AMQP channel: dispatches its methods to a session [`Channel`] and keeps what the
//! wire adds on top (consumer threads, content being assembled, confirm numbering).

use std::collections::HashMap;
use std::sync::Arc;

use amq_protocol::frame::AMQPContentHeader;
use amq_protocol::protocol::{basic, channel, confirm, exchange, queue, tx, AMQPClass};
use amq_protocol::types::ShortString;

use super::content::{self, Assembly};
use super::convert::{properties_to_wire, short_string, table_from_wire};
use super::failure::{Failure, MethodId};
use super::forwarder::{Forwarder, Route};
use super::frames;
use super::tx::{self as held, Held, Transaction};
use super::writer::Outbox;
use crate::{
    Channel, ConsumeOptions, Delivery, Error, ExchangeDeclareOptions, ExchangeDeleteOptions,
    ExchangeKind, GetOptions, Message, PublishOptions, QueueDeclareOptions, QueueDeleteOptions,
    ReplyCode, Returns,
};

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
    /// Forwarding threads by consumer tag.
    consumers: HashMap<String, Forwarder>,
    /// A publish whose content is still arriving.
    assembly: Option<Assembly>,
    /// Publisher confirms: the sequence number of the last publish, once confirm mode is on.
    published: Option<u64>,
    /// The last publish confirmed to the client.
    confirmed: u64,
    /// The queue last declared, which an empty queue name refers to.
    last_queue: Option<String>,
    /// The open transaction, once `tx.select` made the channel transactional.
    tx: Option<Transaction>,
    /// Where the session channel hands back unroutable mandatory publishes.
    returns: Returns,
}

impl WireChannel {
    /// Wraps a freshly opened session channel.
    pub(crate) fn new(id: u16, channel: Channel, link: Link) -> Self {
        let returns = channel.returns();
        WireChannel {
            id,
            channel: Arc::new(channel),
            link,
            consumers: HashMap::new(),
            assembly: None,
            published: None,
            confirmed: 0,
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
                "unexpected method on an open channel",
            )),
        };
        result.map_err(|f| f.at(id))
    }

    /// Handles a content header frame.
    ///
    /// # Errors
    ///
    /// 505 when no publish waits for content; soft errors of the publish.
    pub(crate) fn header(&mut self, header: AMQPContentHeader) -> Result<(), Failure> {
        let assembly = self
            .assembly
            .as_mut()
            .ok_or_else(|| content::unexpected("method frame"))?;
        match assembly.header(header) {
            Ok(Some(message)) => self.publish(message),
            Ok(None) => Ok(()),
            Err(e) => Err(self.abandon(e)),
        }
    }

    /// Handles a content body frame.
    ///
    /// # Errors
    ///
    /// 505 when no publish waits for content; soft errors of the publish.
    pub(crate) fn body(&mut self, chunk: Vec<u8>) -> Result<(), Failure> {
        let assembly = self
            .assembly
            .as_mut()
            .ok_or_else(|| content::unexpected("method frame"))?;
        match assembly.body(chunk) {
            Ok(Some(message)) => self.publish(message),
            Ok(None) => Ok(()),
            Err(e) => Err(self.abandon(e)),
        }
    }

    /// Returns a `basic.ack` (or, if the broker refused any, a `basic.nack`) covering every
    /// publish not yet confirmed, if any.
    ///
    /// # Durability
    ///
    /// Waits for [`Channel::wait_for_confirms`] first, so that on a persistent broker a
    /// persistent message is confirmed only once it is on disk; called once per batch of
    /// publishes, it shares one group commit among them.
    ///
    /// # Errors
    ///
    /// The failure of the wait (a storage error).
    pub(crate) fn take_confirms(&mut self) -> Result<Option<Vec<u8>>, Failure> {
        let Some(published) = self.published else {
            return Ok(None);
        };
        if published == self.confirmed {
            return Ok(None);
        }
        let stored = self.channel.wait_for_confirms()?;
        let multiple = published - self.confirmed > 1;
        self.confirmed = published;
        let method = if stored {
            basic::AMQPMethod::Ack(basic::Ack {
                delivery_tag: published,
                multiple,
            })
        } else {
            basic::AMQPMethod::Nack(basic::Nack {
                delivery_tag: published,
                multiple,
                requeue: false,
            })
        };
        Ok(Some(frames::method(self.id, AMQPClass::Basic(method))))
    }

    /// Closes the session channel (its unacknowledged messages go back to their queues)
    /// and waits for the forwarding threads.
    pub(crate) fn shutdown(self) {
        for forwarder in self.consumers.values() {
            forwarder.expect_stop();
        }
        self.channel.close();
        for (_, forwarder) in self.consumers {
            forwarder.join();
        }
    }

    fn reply(&self, method: AMQPClass) {
        self.link.outbox.send(frames::method(self.id, method));
    }

    fn abandon(&mut self, failure: Failure) -> Failure {
        let id = MethodId {
            class: 60,
            method: 40,
        };
        self.assembly = None;
        failure.at(id)
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

    fn exchange(&mut self, method: exchange::AMQPMethod) -> Result<(), Failure> {
        use exchange::AMQPMethod as M;
        match method {
            M::Declare(m) => {
                let options = ExchangeDeclareOptions {
                    passive: m.passive,
                    durable: m.durable,
                    auto_delete: m.auto_delete,
                    internal: m.internal,
                };
                let kind = ExchangeKind::from_name(m.kind.as_str());
                let arguments = table_from_wire(&m.arguments);
                self.channel
                    .exchange_declare(m.exchange.as_str(), kind, options, arguments)?;
                if !m.nowait {
                    self.reply(AMQPClass::Exchange(M::DeclareOk(exchange::DeclareOk {})));
                }
            }
            M::Delete(m) => {
                let options = ExchangeDeleteOptions {
                    if_unused: m.if_unused,
                };
                self.channel.exchange_delete(m.exchange.as_str(), options)?;
                if !m.nowait {
                    self.reply(AMQPClass::Exchange(M::DeleteOk(exchange::DeleteOk {})));
                }
            }
            M::Bind(m) => {
                let arguments = table_from_wire(&m.arguments);
                self.channel.exchange_bind(
                    m.destination.as_str(),
                    m.source.as_str(),
                    m.routing_key.as_str(),
                    arguments,
                )?;
                if !m.nowait {
                    self.reply(AMQPClass::Exchange(M::BindOk(exchange::BindOk {})));
                }
            }
            M::Unbind(m) => {
                let arguments = table_from_wire(&m.arguments);
                self.channel.exchange_unbind(
                    m.destination.as_str(),
                    m.source.as_str(),
                    m.routing_key.as_str(),
                    arguments,
                )?;
                if !m.nowait {
                    self.reply(AMQPClass::Exchange(M::UnbindOk(exchange::UnbindOk {})));
                }
            }
            _ => return Err(unexpected_method()),
        }
        Ok(())
    }

    fn queue(&mut self, method: queue::AMQPMethod) -> Result<(), Failure> {
        use queue::AMQPMethod as M;
        match method {
            M::Declare(m) => {
                let options = QueueDeclareOptions {
                    passive: m.passive,
                    durable: m.durable,
                    exclusive: m.exclusive,
                    auto_delete: m.auto_delete,
                };
                let arguments = table_from_wire(&m.arguments);
                let ok = self
                    .channel
                    .queue_declare(m.queue.as_str(), options, arguments)?;
                self.last_queue = Some(ok.queue.clone());
                if !m.nowait {
                    let ok = queue::DeclareOk {
                        queue: short_string(&ok.queue),
                        message_count: ok.message_count,
                        consumer_count: ok.consumer_count,
                    };
                    self.reply(AMQPClass::Queue(M::DeclareOk(ok)));
                }
            }
            M::Bind(m) => {
                let queue = self.queue_name(&m.queue)?;
                let arguments = table_from_wire(&m.arguments);
                self.channel.queue_bind(
                    &queue,
                    m.exchange.as_str(),
                    m.routing_key.as_str(),
                    arguments,
                )?;
                if !m.nowait {
                    self.reply(AMQPClass::Queue(M::BindOk(queue::BindOk {})));
                }
            }
            M::Unbind(m) => {
                let queue = self.queue_name(&m.queue)?;
                let arguments = table_from_wire(&m.arguments);
                self.channel.queue_unbind(
                    &queue,
                    m.exchange.as_str(),
                    m.routing_key.as_str(),
                    arguments,
                )?;
                self.reply(AMQPClass::Queue(M::UnbindOk(queue::UnbindOk {})));
            }
            M::Purge(m) => {
                let queue = self.queue_name(&m.queue)?;
                let message_count = self.channel.queue_purge(&queue)?;
                if !m.nowait {
                    self.reply(AMQPClass::Queue(M::PurgeOk(queue::PurgeOk {
                        message_count,
                    })));
                }
            }
            M::Delete(m) => {
                let queue = self.queue_name(&m.queue)?;
                let options = QueueDeleteOptions {
                    if_unused: m.if_unused,
                    if_empty: m.if_empty,
                };
                let message_count = self.channel.queue_delete(&queue, options)?;
                if !m.nowait {
                    let ok = queue::DeleteOk { message_count };
                    self.reply(AMQPClass::Queue(M::DeleteOk(ok)));
                }
            }
            _ => return Err(unexpected_method()),
        }
        Ok(())
    }

    fn basic(&mut self, method: basic::AMQPMethod) -> Result<(), Failure> {
        use basic::AMQPMethod as M;
        match method {
            M::Publish(m) => {
                if m.immediate {
                    return Err(not_implemented("immediate=true"));
                }
                self.assembly = Some(Assembly::new(m));
            }
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

    fn consume(&mut self, m: basic::Consume) -> Result<(), Failure> {
        let queue = self.queue_name(&m.queue)?;
        let tag = m.consumer_tag.as_str();
        let options = ConsumeOptions {
            consumer_tag: (!tag.is_empty()).then(|| tag.to_owned()),
            no_ack: m.no_ack,
            exclusive: m.exclusive,
            arguments: table_from_wire(&m.arguments),
        };
        let consumer = self.channel.basic_consume(&queue, options)?;
        let tag = consumer.tag().to_owned();
        if !m.nowait {
            let ok = basic::ConsumeOk {
                consumer_tag: short_string(&tag),
            };
            self.reply(AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(ok)));
        }
        let route = Route {
            channel_id: self.id,
            channel: Arc::clone(&self.channel),
            outbox: self.link.outbox.clone(),
            frame_max: self.link.frame_max,
            notify_cancel: self.link.notify_cancel,
        };
        let forwarder = Forwarder::spawn(route, consumer)
            .map_err(|e| Failure::hard(ReplyCode::INTERNAL_ERROR, e))?;
        self.consumers.insert(tag, forwarder);
        Ok(())
    }

    fn cancel(&mut self, m: &basic::Cancel) -> Result<(), Failure> {
        let tag = m.consumer_tag.as_str();
        if let Some(forwarder) = self.consumers.remove(tag) {
            forwarder.expect_stop();
            let cancelled = self.channel.basic_cancel(tag);
            forwarder.join();
            cancelled?;
        }
        if !m.nowait {
            let ok = basic::CancelOk {
                consumer_tag: m.consumer_tag.clone(),
            };
            self.reply(AMQPClass::Basic(basic::AMQPMethod::CancelOk(ok)));
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

    fn confirm_select(&mut self, m: confirm::Select) -> Result<(), Failure> {
        if self.tx.is_some() {
            return Err(precondition(held::text::TX_TO_CONFIRM));
        }
        self.channel.confirm_select()?;
        self.published.get_or_insert(0);
        if !m.nowait {
            let ok = confirm::SelectOk {};
            self.reply(AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(ok)));
        }
        Ok(())
    }

    /// Publishes assembled content; a `mandatory` message that reaches no queue comes back
    /// as `basic.return` first.
    fn publish(&mut self, message: Message) -> Result<(), Failure> {
        let Some(assembly) = self.assembly.take() else {
            return Ok(());
        };
        match self.tx.as_mut() {
            Some(tx) => {
                tx.hold(Held::Publish(Box::new((assembly.publish, message))));
                Ok(())
            }
            None => self.publish_now(&assembly.publish, message),
        }
    }

    /// Applies an ack, nack or reject now, or at commit on a transactional channel.
    fn settle(&mut self, op: Held) -> Result<(), Failure> {
        match self.tx.as_mut() {
            Some(tx) => {
                tx.hold(op);
                Ok(())
            }
            None => self.apply(op),
        }
    }

    fn apply(&mut self, op: Held) -> Result<(), Failure> {
        match op {
            Held::Publish(publish) => {
                let (publish, message) = *publish;
                self.publish_now(&publish, message)?;
            }
            Held::Ack { tag, multiple } => self.channel.basic_ack(tag, multiple)?,
            Held::Nack {
                tag,
                multiple,
                requeue,
            } => self.channel.basic_nack(tag, multiple, requeue)?,
        }
        Ok(())
    }

    fn transaction(&mut self, method: tx::AMQPMethod) -> Result<(), Failure> {
        use tx::AMQPMethod as M;
        let reply = match method {
            M::Select(_) if self.published.is_some() => {
                return Err(precondition(held::text::CONFIRM_TO_TX));
            }
            M::Select(_) => {
                self.tx.get_or_insert_with(Transaction::default);
                M::SelectOk(tx::SelectOk {})
            }
            M::Commit(_) | M::Rollback(_) if self.tx.is_none() => {
                return Err(precondition(held::text::NOT_TRANSACTIONAL));
            }
            M::Commit(_) => {
                let ops = self.tx.as_mut().map(Transaction::take).unwrap_or_default();
                for op in ops {
                    self.apply(op)?;
                }
                M::CommitOk(tx::CommitOk {})
            }
            M::Rollback(_) => {
                if let Some(tx) = self.tx.as_mut() {
                    tx.take();
                }
                M::RollbackOk(tx::RollbackOk {})
            }
            _ => return Err(unexpected_method()),
        };
        self.reply(AMQPClass::Tx(reply));
        Ok(())
    }

    fn publish_now(&mut self, p: &basic::Publish, message: Message) -> Result<(), Failure> {
        let (exchange, key) = (p.exchange.as_str(), p.routing_key.as_str());
        let options = PublishOptions {
            mandatory: p.mandatory,
        };
        let result = self
            .channel
            .basic_publish_with(exchange, key, options, message);
        result.map_err(|e| {
            Failure::from(e).at(MethodId {
                class: 60,
                method: 40,
            })
        })?;
        self.send_returns();
        if let Some(n) = self.published.as_mut() {
            *n += 1;
        }
        Ok(())
    }

    /// Sends `basic.return` for every mandatory publish that reached no queue; they are
    /// in the inbox by the time the publish returns, so they precede its confirm.
    fn send_returns(&self) {
        for returned in self.returns.try_iter() {
            let ret = basic::Return {
                reply_code: returned.reply_code.0,
                reply_text: short_string(&returned.reply_text),
                exchange: short_string(&returned.exchange),
                routing_key: short_string(&returned.routing_key),
            };
            let message = &returned.message;
            self.link.outbox.send(frames::with_content(
                self.id,
                AMQPClass::Basic(basic::AMQPMethod::Return(ret)),
                properties_to_wire(message.properties()),
                message.body(),
                self.link.frame_max,
            ));
        }
    }
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
