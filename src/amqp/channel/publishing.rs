//! The publishing side of a channel: content assembly into messages, mandatory returns,
//! publisher confirms (batched, and on a persistent broker only once on disk) and
//! transactions, which hold publishes and acks back until commit.

use std::time::Duration;

use amq_protocol::protocol::{basic, confirm, tx, AMQPClass};

use super::{precondition, unexpected_method, WireChannel};
use crate::amqp::content::{self, Assembly, Route};
use crate::amqp::convert::{properties_to_wire, short_string};
use crate::amqp::failure::{Failure, MethodId};
use crate::amqp::frames;
use crate::amqp::tx::{self as held, Held, Transaction};
use crate::{Message, Properties, PublishOptions};

/// The confirms a channel owes.
#[derive(Debug)]
pub(crate) enum Confirms {
    /// None.
    None,
    /// This `basic.ack` or `basic.nack` frame.
    Frame(Vec<u8>),
    /// Some wait for the disk: ask again with `wait` off the runtime's workers.
    MustWait,
}

impl WireChannel {
    /// Handles `basic.publish` (read in place, or from `amq-protocol`'s method): starts
    /// assembling its content.
    ///
    /// # Errors
    ///
    /// 505 while another publish waits for its content; 540 for `immediate`.
    pub(crate) fn start_publish(&mut self, route: Route, immediate: bool) -> Result<(), Failure> {
        let id = MethodId {
            class: 60,
            method: 40,
        };
        if self.assembly.is_some() {
            // As for any method while content is due: no method id in the close.
            return Err(content::unexpected("content header"));
        }
        if immediate {
            return Err(super::not_implemented("immediate=true").at(id));
        }
        self.assembly = Some(Assembly::new(route, self.link.max_message_size));
        Ok(())
    }

    /// Handles a content header frame: its class, the body size it announces and its
    /// properties.
    ///
    /// # Errors
    ///
    /// 505 when no publish waits for content; soft errors of the publish.
    pub(crate) fn header(
        &mut self,
        class_id: u16,
        body_size: u64,
        properties: Properties,
    ) -> Result<(), Failure> {
        let assembly = self
            .assembly
            .as_mut()
            .ok_or_else(|| content::unexpected("method frame"))?;
        match assembly.header(class_id, body_size, properties, &self.link.alarms) {
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
        match assembly.body(chunk, &self.link.alarms) {
            Ok(Some(message)) => self.publish(message),
            Ok(None) => Ok(()),
            Err(e) => Err(self.abandon(e)),
        }
    }

    /// Returns the `basic.ack`s and `basic.nack`s of every publish not yet confirmed, if
    /// any: one `basic.ack` (`multiple` for several) when all were confirmed; otherwise one
    /// frame per run of publishes with the same outcome, so that exactly the publishes a
    /// queue refused or the store could not write are nacked. Without `wait`, answers
    /// [`Confirms::MustWait`] rather than wait for the disk.
    ///
    /// # Durability
    ///
    /// Waits for [`Channel::wait_for_confirms`] first, so that on a persistent broker a
    /// persistent message is confirmed only once it is on disk; called once per batch of
    /// publishes, it shares one group commit among them. A failed write is a nack: the
    /// channel and the connection stay open.
    ///
    /// # Errors
    ///
    /// The failure of the wait (the channel closed meanwhile).
    pub(crate) fn take_confirms(&mut self, wait: bool) -> Result<Confirms, Failure> {
        let Some(published) = self.published else {
            return Ok(Confirms::None);
        };
        if published == self.confirmed {
            return Ok(Confirms::None);
        }
        // Confirms of transient messages (and of persistent ones already on disk) are
        // ready at once; only a wait for the disk is left to the caller's blocking lane.
        let all_confirmed = if wait {
            self.channel.wait_for_confirms()?
        } else {
            match self.channel.wait_for_confirms_timeout(Duration::ZERO)? {
                Some(stored) => stored,
                None => return Ok(Confirms::MustWait),
            }
        };
        let first = self.confirmed + 1;
        self.confirmed = published;
        let receipts = std::mem::take(&mut self.receipts);
        if all_confirmed {
            return Ok(Confirms::Frame(self.confirm(first, published, false)));
        }
        // Runs of acks and nacks, in publish order; a publish without a receipt (there is
        // none) would be nacked, never falsely acked.
        let nacked: Vec<bool> = (0..=published - first)
            .map(|i| {
                usize::try_from(i)
                    .ok()
                    .and_then(|i| receipts.get(i))
                    .is_none_or(|r| self.channel.is_nacked(r))
            })
            .collect();
        let count = nacked.iter().filter(|&&n| n).count();
        tracing::warn!(
            channel = self.id,
            nacked = count,
            of = nacked.len(),
            "publisher confirms: basic.nack for publishes a queue refused or the store could \
             not write"
        );
        let mut frames = Vec::new();
        let mut start = first;
        for (tag, pair) in (first..).zip(nacked.windows(2)) {
            if pair[0] != pair[1] {
                frames.extend(self.confirm(start, tag, pair[0]));
                start = tag + 1;
            }
        }
        frames.extend(self.confirm(start, published, nacked[nacked.len() - 1]));
        Ok(Confirms::Frame(frames))
    }

    /// The `basic.ack` (or with `nack`, `basic.nack`) of publishes `first..=last`, every
    /// one before them being confirmed already.
    fn confirm(&self, first: u64, last: u64, nack: bool) -> Vec<u8> {
        let multiple = last > first;
        let method = if nack {
            basic::AMQPMethod::Nack(basic::Nack {
                delivery_tag: last,
                multiple,
                requeue: false,
            })
        } else {
            basic::AMQPMethod::Ack(basic::Ack {
                delivery_tag: last,
                multiple,
            })
        };
        frames::method(self.id, AMQPClass::Basic(method))
    }

    pub(super) fn abandon(&mut self, failure: Failure) -> Failure {
        let id = MethodId {
            class: 60,
            method: 40,
        };
        self.assembly = None;
        failure.at(id)
    }

    pub(super) fn confirm_select(&mut self, m: confirm::Select) -> Result<(), Failure> {
        if self.tx.is_some() {
            return Err(precondition(held::text::TX_TO_CONFIRM));
        }
        self.channel.confirm_select()?;
        self.published.get_or_insert(0);
        self.view
            .confirm
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if !m.nowait {
            let ok = confirm::SelectOk {};
            self.reply(AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(ok)));
        }
        Ok(())
    }

    /// Publishes assembled content; a `mandatory` message that reaches no queue comes back
    /// as `basic.return` first.
    pub(super) fn publish(&mut self, message: Message) -> Result<(), Failure> {
        let Some(assembly) = self.assembly.take() else {
            return Ok(());
        };
        match self.tx.as_mut() {
            Some(tx) => {
                tx.hold(Held::Publish(Box::new((assembly.route, message))));
                Ok(())
            }
            None => self.publish_now(&assembly.route, message),
        }
    }

    /// Applies an ack, nack or reject now, or at commit on a transactional channel.
    pub(super) fn settle(&mut self, op: Held) -> Result<(), Failure> {
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

    pub(super) fn transaction(&mut self, method: tx::AMQPMethod) -> Result<(), Failure> {
        use tx::AMQPMethod as M;
        let reply = match method {
            M::Select(_) if self.published.is_some() => {
                return Err(precondition(held::text::CONFIRM_TO_TX));
            }
            M::Select(_) => {
                self.tx.get_or_insert_with(Transaction::default);
                self.view
                    .transactional
                    .store(true, std::sync::atomic::Ordering::Relaxed);
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

    fn publish_now(&mut self, p: &Route, message: Message) -> Result<(), Failure> {
        let (exchange, key) = (p.exchange.as_str(), p.routing_key.as_str());
        let options = PublishOptions {
            mandatory: p.mandatory,
        };
        // Never blocks: the connection holds a blocked client back by not reading it.
        let result = self
            .channel
            .basic_publish_unheld(exchange, key, options, message);
        let receipt = result.map_err(|e| {
            Failure::from(e).at(MethodId {
                class: 60,
                method: 40,
            })
        })?;
        self.send_returns();
        if let Some(n) = self.published.as_mut() {
            *n += 1;
            self.receipts.push_back(receipt);
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
