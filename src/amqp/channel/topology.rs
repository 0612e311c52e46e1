//! Exchange and queue methods of a channel: `exchange.declare`/`delete`/`bind`/`unbind`
//! and `queue.declare`/`bind`/`unbind`/`purge`/`delete`, each mapped onto the session
//! channel's method of the same name.

use amq_protocol::protocol::{exchange, queue, AMQPClass};

use super::{unexpected_method, WireChannel};
use crate::amqp::convert::{short_string, table_from_wire};
use crate::amqp::failure::Failure;
use crate::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, ExchangeKind, QueueDeclareOptions,
    QueueDeleteOptions,
};

impl WireChannel {
    pub(super) fn exchange(&mut self, method: exchange::AMQPMethod) -> Result<(), Failure> {
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

    pub(super) fn queue(&mut self, method: queue::AMQPMethod) -> Result<(), Failure> {
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
}
