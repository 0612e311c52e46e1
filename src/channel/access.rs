//! Permission checks of a connection opened as a user: which resource each operation needs
//! which access to, in RabbitMQ's order (observed: `docs/permissions-probe-output.txt`).
//! Trusted connections (`identity` is `None`) skip them all.

use super::ChannelInner;
use crate::auth::{Access, Resource};
use crate::vhost::REPLY_TO;
use crate::{names, ExchangeDeclareOptions, FieldTable, Message, QueueDeclareOptions, Result};

impl ChannelInner {
    /// Checks one access; RabbitMQ's 403 when refused.
    fn permit(&self, access: Access, resource: Resource, name: &str) -> Result<()> {
        match &self.conn.identity {
            None => Ok(()),
            Some(id) => id.check(&self.conn.vhost.name, access, resource, name),
        }
    }

    fn checked(&self) -> bool {
        self.conn.identity.is_some()
    }

    /// `exchange.declare`: configure on the exchange (not for passive declares, nor for the
    /// default exchange, whose own 403 comes first); when the exchange is new, its name must
    /// not be reserved, and an alternate exchange needs read on the new exchange and write
    /// on the alternate.
    pub(super) fn permit_exchange_declare(
        &self,
        name: &str,
        options: ExchangeDeclareOptions,
        arguments: &FieldTable,
    ) -> Result<()> {
        if !self.checked() || options.passive || name.is_empty() {
            return Ok(());
        }
        self.permit(Access::Configure, Resource::Exchange, name)?;
        if self.conn.vhost.exchange(name).is_err() {
            names::check_not_reserved("exchange", name)?;
            if let Some(ae) = arguments.get("alternate-exchange").and_then(|v| v.as_str()) {
                self.permit(Access::Read, Resource::Exchange, name)?;
                self.permit(Access::Write, Resource::Exchange, ae)?;
            }
        }
        Ok(())
    }

    /// `exchange.delete`: configure on the exchange, even a missing one; the default and
    /// `amq.*` exchanges get their own 403 first.
    pub(super) fn permit_exchange_delete(&self, name: &str) -> Result<()> {
        if !self.checked() || name.is_empty() {
            return Ok(());
        }
        if self.conn.vhost.exchange(name).is_ok_and(|e| e.builtin) {
            return Ok(());
        }
        self.permit(Access::Configure, Resource::Exchange, name)
    }

    /// `queue.declare`: configure on the queue (for a server-named one, on a name of the
    /// shape the server gives); none for passive declares. A reserved name is refused as
    /// such first. A new queue with a dead-letter exchange needs read on the queue and write
    /// on that exchange.
    pub(super) fn permit_queue_declare(
        &self,
        name: &str,
        options: QueueDeclareOptions,
        arguments: &FieldTable,
    ) -> Result<()> {
        if !self.checked() || options.passive || name == REPLY_TO {
            return Ok(());
        }
        let checked_name = if name.is_empty() {
            names::generate("amq.gen-")
        } else {
            name.to_owned()
        };
        if let Err(refused) = self.permit(Access::Configure, Resource::Queue, &checked_name) {
            if !name.is_empty() {
                names::check_not_reserved("queue", name)?;
            }
            return Err(refused);
        }
        let exists = !name.is_empty() && self.conn.vhost.queue(name, self.conn.id).is_ok();
        if !exists {
            let dlx = arguments
                .get("x-dead-letter-exchange")
                .and_then(|v| v.as_str());
            if let Some(dlx) = dlx {
                self.permit(Access::Read, Resource::Queue, &checked_name)?;
                self.permit(Access::Write, Resource::Exchange, dlx)?;
            }
        }
        Ok(())
    }

    /// `queue.delete`: configure on the queue, even a missing one.
    pub(super) fn permit_queue_delete(&self, name: &str) -> Result<()> {
        self.permit(Access::Configure, Resource::Queue, name)
    }

    /// `queue.purge`, `basic.get`, `basic.consume`: read on the queue (not on the direct
    /// reply-to pseudo-queue).
    pub(super) fn permit_queue_read(&self, name: &str) -> Result<()> {
        if name == REPLY_TO {
            return Ok(());
        }
        self.permit(Access::Read, Resource::Queue, name)
    }

    /// `queue.bind` / `queue.unbind`: write on the queue, then (unless the exchange is the
    /// default one, refused as such) read on the exchange.
    pub(super) fn permit_queue_bind(&self, queue: &str, exchange: &str) -> Result<()> {
        self.permit(Access::Write, Resource::Queue, queue)?;
        if exchange.is_empty() {
            return Ok(());
        }
        self.permit(Access::Read, Resource::Exchange, exchange)
    }

    /// `exchange.bind` / `exchange.unbind`: write on the destination, read on the source.
    pub(super) fn permit_exchange_bind(&self, destination: &str, source: &str) -> Result<()> {
        self.permit(Access::Write, Resource::Exchange, destination)?;
        if destination.is_empty() || source.is_empty() {
            return Ok(());
        }
        self.permit(Access::Read, Resource::Exchange, source)
    }

    /// `basic.publish`: write on the exchange (the default one is checked as
    /// `amq.default`), then the `user_id` property must name the user.
    pub(super) fn permit_publish(&self, exchange: &str, message: &Message) -> Result<()> {
        let Some(identity) = &self.conn.identity else {
            return Ok(());
        };
        identity.check(
            &self.conn.vhost.name,
            Access::Write,
            Resource::Exchange,
            exchange,
        )?;
        match message.properties().user_id.as_deref() {
            Some(user_id) => identity.check_user_id(user_id),
            None => Ok(()),
        }
    }
}
