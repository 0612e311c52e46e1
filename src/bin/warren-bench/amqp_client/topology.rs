//! Declaring and deleting exchanges, exclusive queues and many bindings at once, for
//! `warren-bench topic --rabbitmq`.

use std::io;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{exchange, queue, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable};

use super::{unexpected, Client, CHANNEL};

/// Bindings sent before their `bind-ok`s are read.
const BIND_WINDOW: usize = 500;

impl Client {
    /// Declares a non-durable, auto-delete exchange of `kind`.
    pub(crate) fn exchange_declare(&mut self, name: &str, kind: &str) -> io::Result<()> {
        self.exchange_declare_with(name, kind, false, true)
    }

    /// Declares an exchange of `kind`, durable or not, auto-delete or not.
    pub(crate) fn exchange_declare_with(
        &mut self,
        name: &str,
        kind: &str,
        durable: bool,
        auto_delete: bool,
    ) -> io::Result<()> {
        let declare = exchange::Declare {
            exchange: name.into(),
            kind: kind.into(),
            durable,
            auto_delete,
            ..exchange::Declare::default()
        };
        self.method(AMQPClass::Exchange(exchange::AMQPMethod::Declare(declare)))?;
        self.expect(|m| matches!(m, AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(_))))
    }

    /// Deletes an exchange.
    pub(crate) fn exchange_delete(&mut self, name: &str) -> io::Result<()> {
        let delete = exchange::Delete {
            exchange: name.into(),
            ..exchange::Delete::default()
        };
        self.method(AMQPClass::Exchange(exchange::AMQPMethod::Delete(delete)))?;
        self.expect(|m| matches!(m, AMQPClass::Exchange(exchange::AMQPMethod::DeleteOk(_))))
    }

    /// Declares an exclusive queue (gone when this connection closes) that keeps no message:
    /// `x-max-length = 0` drops each one as soon as it is enqueued.
    pub(crate) fn queue_declare_sink(&mut self, name: &str) -> io::Result<()> {
        let mut arguments = FieldTable::default();
        arguments.insert("x-max-length".into(), AMQPValue::LongInt(0));
        let declare = queue::Declare {
            queue: name.into(),
            exclusive: true,
            arguments,
            ..queue::Declare::default()
        };
        self.method(AMQPClass::Queue(queue::AMQPMethod::Declare(declare)))?;
        self.expect(|m| matches!(m, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_))))
    }

    /// Binds `queue` to `exchange` with `key` (for tests/wire_server_bin.rs).
    #[allow(dead_code)]
    pub(crate) fn queue_bind(&mut self, queue: &str, exchange: &str, key: &str) -> io::Result<()> {
        self.queue_bind_all(exchange, &[(queue.to_owned(), key.to_owned())])
    }

    /// Binds each `(queue, binding key)` to `exchange`, a window of binds in flight at a
    /// time.
    pub(crate) fn queue_bind_all(
        &mut self,
        exchange: &str,
        bindings: &[(String, String)],
    ) -> io::Result<()> {
        for window in bindings.chunks(BIND_WINDOW) {
            for (queue, key) in window {
                let bind = queue::Bind {
                    queue: queue.as_str().into(),
                    exchange: exchange.into(),
                    routing_key: key.as_str().into(),
                    ..queue::Bind::default()
                };
                self.encode(&AMQPFrame::Method(
                    CHANNEL,
                    AMQPClass::Queue(queue::AMQPMethod::Bind(bind)),
                ))?;
            }
            for _ in window {
                match self.next_method()? {
                    AMQPClass::Queue(queue::AMQPMethod::BindOk(_)) => {}
                    other => return Err(unexpected("queue.bind-ok", &other)),
                }
            }
        }
        Ok(())
    }
}
