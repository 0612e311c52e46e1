//! Publishing: routing a message through an exchange to its queues, storing it first when
//! it is persistent and bound for durable queues.

use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use compact_str::CompactString;
use smallvec::SmallVec;

use super::{Destination, VHost, REPLY_TO};
use crate::envelope::{Envelope, Holding, QueuedMessage};
use crate::exchange::Exchange;
use crate::names;
use crate::queue::{parse_expiration, Enqueued, Queue};
use crate::routing::{DestinationId, RoutingInput};
use crate::store::{Durable, MessageRecord, StoreOp};
use crate::{Error, ExchangeKind, FieldTable, Message, Result};

/// The queues a message reaches, as routing computes them.
type Targets = SmallVec<[Arc<Queue>; 4]>;

thread_local! {
    /// Reused buffer for routing results, so that publishing does not allocate for them.
    static ROUTE_BUFFER: RefCell<Vec<DestinationId>> = const { RefCell::new(Vec::new()) };
}

/// What a publish did: how many queues took the message, whether a queue refused it, the
/// message itself if it must be returned, and (for a persistent message bound for durable
/// queues) the ticket that finishes when it is on disk.
#[derive(Debug, Default)]
pub(crate) struct Published {
    /// Queues that took the message (or refused it by a length limit: it was routed).
    pub(crate) queues: usize,
    /// Some queue refused the message (`x-overflow = reject-publish`): nack it.
    pub(crate) refused: bool,
    /// The message, if it was `mandatory` and reached no queue.
    pub(crate) returned: Option<Message>,
    /// The store write of the message, if it was stored.
    pub(crate) durable: Option<Durable>,
}

impl Published {
    /// Counts one queue's answer.
    fn count(&mut self, outcome: Enqueued) {
        match outcome {
            Enqueued::Accepted => self.queues += 1,
            Enqueued::Refused => {
                self.queues += 1;
                self.refused = true;
            }
            Enqueued::Gone => {}
        }
    }
}

/// A channel's memo of its last publish: the exchange, and the queues its routing key
/// reached while the vhost's topology stays as it was (its generation unchanged). A
/// publisher that sends to one exchange and key (the usual case) then skips the exchange
/// lookup, the routing and the reference counting of exchange and queues, so that its
/// publishes touch no cache line a consumer touches but the queue's and the inbox's.
///
/// Only routing that depends on the exchange, the key and the topology alone is memoised:
/// direct, fanout and topic exchanges (and the default one) without an alternate exchange
/// while the vhost has no exchange-to-exchange binding, and only when some queue was
/// reached (unroutable messages take the slow path, with its alternate exchanges and
/// returns). Direct reply-to addresses, which come and go outside the topology lock, are
/// never memoised.
#[derive(Debug, Default)]
pub(crate) struct RouteMemo {
    /// The exchange published to last.
    exchange: Option<Arc<Exchange>>,
    /// Where its last routing key went.
    routes: Routes,
}

/// The memoised routing of one key.
#[derive(Debug, Default)]
struct Routes {
    /// `queues` may be used for `key` while the topology generation is `generation`.
    valid: bool,
    /// The routing key.
    key: CompactString,
    /// The topology generation read before routing.
    generation: u64,
    /// The queues reached.
    queues: Targets,
}

impl RouteMemo {
    /// Forgets everything (the channel closed: let the queues and exchange go).
    pub(crate) fn clear(&mut self) {
        *self = RouteMemo::default();
    }
}

/// Where a message would go, as computed by [`Channel::route_preview`](crate::Channel::route_preview).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoutePreview {
    /// The queues reached, sorted by name, each once.
    pub queues: Vec<String>,
    /// The exchanges the message passes through, starting with the one published to.
    pub exchanges: Vec<String>,
}

impl VHost {
    /// Routes a message and enqueues it on every queue reached. An unroutable `mandatory`
    /// message is handed back for a return.
    pub(crate) fn publish(
        &self,
        source: &Arc<Exchange>,
        routing_key: &str,
        message: Message,
        mandatory: bool,
    ) -> Result<Published> {
        self.publish_via(source, None, routing_key, message, mandatory)
    }

    /// [`publish`](Self::publish) to the exchange named `exchange`, through a channel's
    /// memo of its last publish.
    ///
    /// # Errors
    ///
    /// As `publish`, and 404 for a missing exchange.
    pub(crate) fn publish_memo(
        &self,
        memo: &mut RouteMemo,
        exchange: &str,
        routing_key: &str,
        message: Message,
        mandatory: bool,
    ) -> Result<Published> {
        let known = memo
            .exchange
            .as_ref()
            .is_some_and(|e| &*e.name == exchange && !e.is_deleted());
        if !known {
            memo.routes.valid = false;
            memo.exchange = Some(self.exchange(exchange)?);
        }
        let source = memo.exchange.as_ref().expect("set above");
        self.publish_via(
            source,
            Some(&mut memo.routes),
            routing_key,
            message,
            mandatory,
        )
    }

    fn publish_via(
        &self,
        source: &Arc<Exchange>,
        routes: Option<&mut Routes>,
        routing_key: &str,
        message: Message,
        mandatory: bool,
    ) -> Result<Published> {
        names::check_length("routing key", routing_key)?;
        if let Some(expiration) = &message.properties().expiration {
            parse_expiration(expiration)?;
        }
        let exchange = &source.name;
        if source.internal {
            return Err(Error::access_refused(format!(
                "cannot publish to internal exchange '{exchange}' in vhost '{}'",
                self.name
            )));
        }
        let message = if source.delayed {
            match self.try_delay(source, routing_key, message, mandatory) {
                Ok(delayed) => return Ok(delayed),
                Err(now) => now,
            }
        } else {
            message
        };
        let headers = message.properties().headers.as_ref();
        let fresh: Targets;
        let (queues, memo_key): (&[Arc<Queue>], _) = match routes {
            Some(routes) => self.memoised_targets(source, routes, routing_key, headers),
            None => {
                fresh = self.target_queues(source, routing_key, headers);
                (&fresh, None)
            }
        };
        // A mandatory message may have to come back; the copy shares the body.
        let kept = mandatory.then(|| message.clone());
        let weight = Envelope::weight(&message, &source.name, routing_key);
        let envelope = Envelope {
            message,
            exchange: source.envelope_name.clone(),
            routing_key: memo_key.map_or_else(|| routing_key.into(), CompactString::clone),
            _charge: self.settings.alarms.charge(weight),
        };
        let mut published = self.enqueue(envelope, queues);
        let returned = published.queues == 0 && mandatory;
        let counter = if published.queues > 0 {
            &source.counters.routed
        } else if returned {
            &source.counters.returned
        } else {
            &source.counters.unroutable
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if returned {
            published.returned = kept;
        }
        Ok(published)
    }

    /// Returns the queues `routing_key` reaches through `source`, from `routes` when they
    /// still hold, or routed afresh (and memoised when they may be); with the memoised
    /// copy of the key, if it is memoised (the envelope copies it from there).
    fn memoised_targets<'r>(
        &self,
        source: &Exchange,
        routes: &'r mut Routes,
        routing_key: &str,
        headers: Option<&FieldTable>,
    ) -> (&'r [Arc<Queue>], Option<&'r CompactString>) {
        // Read before routing, so that a change made meanwhile makes the memo stale.
        let generation = self.topology.generation();
        if routes.valid && routes.generation == generation && routes.key == routing_key {
            return (&routes.queues, Some(&routes.key));
        }
        routes.queues = self.target_queues(source, routing_key, headers);
        // Only routing by exchange, key and topology alone (see `RouteMemo`).
        let routes_alone = !(source.has_alternate() || source.delayed);
        let memoisable = matches!(
            source.kind,
            ExchangeKind::Direct | ExchangeKind::Fanout | ExchangeKind::Topic
        ) && routes_alone
            && !self.e2e_used.load(Ordering::Relaxed)
            && !(source.name.is_empty() && routing_key.starts_with(REPLY_TO));
        routes.valid = memoisable && !routes.queues.is_empty();
        if !routes.valid {
            return (&routes.queues, None);
        }
        routes.generation = generation;
        routes.key = routing_key.into();
        (&routes.queues, Some(&routes.key))
    }

    /// Puts a routed message into its queues: one owns the envelope, several share it.
    pub(super) fn enqueue(&self, envelope: Envelope, queues: &[Arc<Queue>]) -> Published {
        if queues.iter().any(|q| q.stores(&envelope.message)) {
            return self.enqueue_stored(envelope, queues);
        }
        let mut published = Published::default();
        let [queue] = queues else {
            let envelope = Arc::new(envelope);
            for queue in queues {
                let msg = QueuedMessage::new(queue.next_seq(), Arc::clone(&envelope), false);
                let (outcome, fallout) = queue.publish(msg);
                self.absorb(queue, fallout);
                published.count(outcome);
            }
            return published;
        };
        let (outcome, fallout) =
            queue.publish(QueuedMessage::new(queue.next_seq(), envelope, false));
        self.absorb(queue, fallout);
        published.count(outcome);
        published
    }

    /// Puts a persistent message into its queues, some durable. The message is submitted to
    /// the store (once, with an entry per durable queue) before any queue holds it, so that
    /// no ack can reach the store before the message does.
    pub(super) fn enqueue_stored(&self, envelope: Envelope, queues: &[Arc<Queue>]) -> Published {
        let placed: Vec<(u64, bool)> = queues
            .iter()
            .map(|q| (q.next_seq(), q.stores(&envelope.message)))
            .collect();
        let stored_in = || {
            queues
                .iter()
                .zip(&placed)
                .filter(|(_, (_, stored))| *stored)
        };
        let entries = stored_in()
            .filter_map(|(q, (seq, _))| q.persistence.as_ref().map(|p| p.key.entry(*seq)))
            .collect();
        // One record serves every queue: it expires when the last of its queues would let
        // it go (None if one of them never would).
        let expiries: Option<Vec<u64>> = stored_in()
            .map(|(q, _)| q.expiry_of(&envelope).map(|at| at.get()))
            .collect();
        let store = &self.settings.store;
        let record = MessageRecord {
            exchange: envelope.exchange.clone(),
            routing_key: envelope.routing_key.clone(),
            properties: envelope.message.properties().clone(),
            body: envelope.message.body().clone(),
            expires_at_ms: expiries.and_then(|all| all.into_iter().max()),
        };
        let id = store.next_message_id();
        let durable = store.submit(StoreOp::Enqueue {
            id,
            message: record,
            entries,
        });
        let mut published = Published {
            durable: Some(durable),
            ..Published::default()
        };
        // The last queue takes the envelope; those before it share it.
        let mut envelope = Holding::Own(envelope);
        let last = queues.len().saturating_sub(1);
        for (i, (queue, (seq, persisted))) in queues.iter().zip(placed).enumerate() {
            let held = if i < last {
                Holding::Shared(envelope.share())
            } else {
                std::mem::take(&mut envelope)
            };
            let msg = QueuedMessage::new(seq, held, persisted);
            let (outcome, fallout) = if persisted {
                queue.publish_stored(msg, id)
            } else {
                queue.publish(msg)
            };
            self.absorb(queue, fallout);
            if outcome == Enqueued::Refused && persisted {
                // Refused by a length limit after the store took it: forget it there.
                queue.forget_entry(seq);
            }
            published.count(outcome);
        }
        published
    }

    /// Withdraws from queue `queue` the messages at positions `seqs`, whose store write
    /// failed (see [`Store::on_lost`](crate::store::Store::on_lost)); returns how many were
    /// still ready there.
    pub(crate) fn withdraw(&self, queue: &str, seqs: &[u64]) -> usize {
        let Some(queue) = self.queues.get(queue).map(|q| Arc::clone(&q)) else {
            return 0;
        };
        queue.withdraw(seqs)
    }

    /// Returns the distinct queues a message published to `source` reaches.
    pub(super) fn target_queues(
        &self,
        source: &Exchange,
        routing_key: &str,
        headers: Option<&FieldTable>,
    ) -> SmallVec<[Arc<Queue>; 4]> {
        if source.name.is_empty() {
            // The default exchange: one lookup by queue name (or reply address), no router.
            return self
                .queues
                .get(routing_key)
                .map(|q| Arc::clone(&q))
                .or_else(|| self.reply_queue(routing_key))
                .into_iter()
                .collect();
        }
        let mut buffer = ROUTE_BUFFER.with(RefCell::take);
        buffer.clear();
        self.route(source, routing_key, headers, &mut buffer);
        let queues = buffer
            .iter()
            .filter_map(|id| {
                self.destinations.get(id).and_then(|d| match &*d {
                    Destination::Queue(queue) => Some(Arc::clone(queue)),
                    Destination::Exchange(_) => None,
                })
            })
            .collect();
        ROUTE_BUFFER.with(|b| b.replace(buffer));
        queues
    }

    /// Fills `out` with the distinct destinations of a message published to `source`.
    pub(super) fn route(
        &self,
        source: &Exchange,
        routing_key: &str,
        headers: Option<&FieldTable>,
        out: &mut Vec<DestinationId>,
    ) {
        if source.name.is_empty() {
            if let Some(queue) = self.queues.get(routing_key) {
                out.push(queue.id);
            }
            return;
        }
        let input = RoutingInput {
            routing_key,
            headers,
        };
        if source.has_alternate() || self.e2e_used.load(Ordering::Relaxed) {
            return self.route_graph(source, input, out, None);
        }
        source.route(input, out);
        if out.len() > 1 {
            out.sort_unstable();
            out.dedup();
        }
    }

    /// Computes where a message would go, without publishing it.
    pub(crate) fn route_preview(
        &self,
        exchange: &str,
        routing_key: &str,
        headers: Option<&FieldTable>,
    ) -> Result<RoutePreview> {
        let source = self.exchange(exchange)?;
        let mut ids = Vec::new();
        let mut exchanges = vec![source.name.to_string()];
        if !source.name.is_empty() {
            exchanges.clear();
            let input = RoutingInput {
                routing_key,
                headers,
            };
            self.route_graph(&source, input, &mut ids, Some(&mut exchanges));
        } else {
            self.route(&source, routing_key, headers, &mut ids);
        }
        let mut queues: Vec<String> = ids
            .iter()
            .filter_map(|id| {
                self.destinations.get(id).and_then(|d| match &*d {
                    Destination::Queue(q) => Some(q.name.to_string()),
                    Destination::Exchange(_) => None,
                })
            })
            .collect();
        queues.sort();
        Ok(RoutePreview { queues, exchanges })
    }
}
