//! Channel methods for exchanges, queues and bindings.

use super::{local_or, Channel};
use crate::exchange::ExchangeSpec;
use crate::vhost::{QueueDeclareOk, RoutePreview};
use crate::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, ExchangeKind, FieldTable, QueueDeclareOptions,
    QueueDeleteOptions, Result,
};

impl Channel {
    /// Declares an exchange, or checks that an existing one has the same properties.
    ///
    /// # Errors
    ///
    /// 403 for names starting with `amq.`; 406 if the exchange exists with other
    /// properties; 404 for a passive declare of a missing exchange; 503 for an unknown kind.
    pub fn exchange_declare(
        &self,
        exchange: &str,
        kind: ExchangeKind,
        options: ExchangeDeclareOptions,
        arguments: FieldTable,
    ) -> Result<()> {
        let inner = local_or!(self, r => r.exchange_declare(exchange, &kind, options, arguments));
        inner.run(|| {
            inner.permit_exchange_declare(exchange, options, &arguments)?;
            let spec = ExchangeSpec {
                name: exchange,
                kind: &kind,
                options,
                arguments: &arguments,
            };
            inner.conn.vhost.declare_exchange(&spec)?;
            tracing::debug!(exchange, kind = ?kind, durable = options.durable, "exchange declared");
            Ok(())
        })
    }

    /// Deletes an exchange and its bindings. Deleting a missing exchange succeeds.
    ///
    /// # Errors
    ///
    /// 406 with `if_unused` when it has bindings; 403 for the predeclared exchanges.
    pub fn exchange_delete(&self, exchange: &str, options: ExchangeDeleteOptions) -> Result<()> {
        let inner = local_or!(self, r => r.exchange_delete(exchange, options));
        inner.run(|| {
            inner.permit_exchange_delete(exchange)?;
            inner
                .conn
                .vhost
                .delete_exchange(exchange, options.if_unused)?;
            tracing::debug!(exchange, "exchange deleted");
            Ok(())
        })
    }

    /// Declares a queue, or checks that an existing one has the same properties. An empty
    /// name asks for a server-named queue (`amq.gen-…`).
    ///
    /// # Errors
    ///
    /// 403 for names starting with `amq.`; 406 if the queue exists with other properties;
    /// 404 for a passive declare of a missing queue; 405 for another connection's exclusive
    /// queue.
    pub fn queue_declare(
        &self,
        queue: &str,
        options: QueueDeclareOptions,
        arguments: FieldTable,
    ) -> Result<QueueDeclareOk> {
        let inner = local_or!(self, r => r.queue_declare(queue, options, arguments));
        inner.run(|| {
            inner.permit_queue_declare(queue, options, &arguments)?;
            let conn = &inner.conn;
            let (ok, created) = conn
                .vhost
                .declare_queue(queue, options, &arguments, conn.id)?;
            if let Some(queue) = created.filter(|q| q.exclusive_owner.is_some()) {
                conn.own_exclusive(queue);
            }
            tracing::debug!(queue = %ok.queue, durable = options.durable, "queue declared");
            Ok(ok)
        })
    }

    /// Binds a queue to an exchange with a routing key (and arguments, for headers
    /// exchanges). Binding twice is one binding.
    ///
    /// # Errors
    ///
    /// 404 for a missing queue or exchange; 403 for the default exchange; 406 for a
    /// durable/non-durable pair (unless allowed) or invalid arguments.
    pub fn queue_bind(
        &self,
        queue: &str,
        exchange: &str,
        routing_key: &str,
        arguments: FieldTable,
    ) -> Result<()> {
        let inner = local_or!(self, r => r.queue_bind(queue, exchange, routing_key, arguments));
        inner.run(|| {
            inner.permit_queue_bind(queue, exchange)?;
            let conn = &inner.conn;
            conn.vhost
                .bind_queue(queue, exchange, routing_key, &arguments, conn.id)?;
            tracing::debug!(queue, exchange, routing_key, "queue bound");
            Ok(())
        })
    }

    /// Removes a binding. Removing one that does not exist succeeds.
    ///
    /// # Errors
    ///
    /// 404 for a missing queue or exchange.
    pub fn queue_unbind(
        &self,
        queue: &str,
        exchange: &str,
        routing_key: &str,
        arguments: FieldTable,
    ) -> Result<()> {
        let inner = local_or!(self, r => r.queue_unbind(queue, exchange, routing_key, arguments));
        inner.run(|| {
            inner.permit_queue_bind(queue, exchange)?;
            let conn = &inner.conn;
            conn.vhost
                .unbind_queue(queue, exchange, routing_key, &arguments, conn.id)?;
            tracing::debug!(queue, exchange, routing_key, "queue unbound");
            Ok(())
        })
    }

    /// Removes every ready message of a queue; returns how many. Unacknowledged messages
    /// stay.
    ///
    /// # Errors
    ///
    /// 404 for a missing queue; 405 for another connection's exclusive queue.
    pub fn queue_purge(&self, queue: &str) -> Result<u32> {
        let inner = local_or!(self, r => r.queue_purge(queue));
        inner.run(|| {
            inner.permit_queue_read(queue)?;
            let conn = &inner.conn;
            let n = conn.vhost.purge_queue(queue, conn.id)?;
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        })
    }

    /// Deletes a queue, its bindings and its messages; returns the number of ready messages
    /// it held. Its consumers are cancelled. Deleting a missing queue succeeds with 0.
    ///
    /// # Errors
    ///
    /// 406 with `if_unused` when it has consumers or `if_empty` when it has messages; 405
    /// for another connection's exclusive queue.
    pub fn queue_delete(&self, queue: &str, options: QueueDeleteOptions) -> Result<u32> {
        let inner = local_or!(self, r => r.queue_delete(queue, options));
        inner.run(|| {
            inner.permit_queue_delete(queue)?;
            let conn = &inner.conn;
            let n = conn
                .vhost
                .delete_queue(queue, options.if_unused, options.if_empty, conn.id)?;
            tracing::debug!(queue, messages = n, "queue deleted");
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        })
    }

    /// Computes which queues a message would reach, without publishing it. For unit tests of
    /// routing logic. Does not close the channel on error.
    ///
    /// # Errors
    ///
    /// 404 for a missing exchange;
    /// [`Error::NotSupportedRemotely`](crate::Error::NotSupportedRemotely) (540) on a remote
    /// connection, which has no broker in this process to ask.
    pub fn route_preview(
        &self,
        exchange: &str,
        routing_key: &str,
        headers: &FieldTable,
    ) -> Result<RoutePreview> {
        let inner = local_or!(self, r => Err(crate::Error::NotSupportedRemotely { operation: "route_preview" }));
        inner.check_open()?;
        let headers = (!headers.is_empty()).then_some(headers);
        inner
            .conn
            .vhost
            .route_preview(exchange, routing_key, headers)
    }
}
