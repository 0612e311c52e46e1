//! Exchanges: the named routers messages are published to, and their declare rules.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use compact_str::CompactString;
use crossbeam_utils::CachePadded;

use crate::arguments::{self, Entity, COMPARED_EXCHANGE_ARGUMENTS};
use crate::routing::{Binding, DestinationId, InvalidBinding, Router, RoutingInput};
use crate::sync::Mutex;
use crate::{Error, ExchangeDeclareOptions, FieldTable, Result};

/// The kind of an exchange: which [`Router`] decides where its messages go.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExchangeKind {
    /// Binding key equals routing key.
    Direct,
    /// Every bound queue.
    Fanout,
    /// Dot-separated words with `*` and `#` wildcards.
    Topic,
    /// Message headers against binding arguments (`x-match`).
    Headers,
    /// `x-delayed-message`, the delayed-message exchange of RabbitMQ's plugin: it routes as
    /// the kind named by its `x-delayed-type` argument (`direct`, `topic`, `fanout`,
    /// `headers` or a registered kind), and holds a message with an `x-delay` header (in
    /// milliseconds) until the broker's clock has moved that far, then routes it through the
    /// bindings it has at that moment.
    DelayedMessage,
    /// A kind registered by name with
    /// [`BrokerBuilder::exchange_kind`](crate::BrokerBuilder::exchange_kind).
    Custom(String),
}

impl ExchangeKind {
    /// Returns the AMQP type name, e.g. `"topic"`.
    pub fn as_str(&self) -> &str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
            ExchangeKind::DelayedMessage => "x-delayed-message",
            ExchangeKind::Custom(name) => name,
        }
    }

    /// Reads an AMQP type name; names other than the built-in ones are custom kinds.
    pub fn from_name(name: &str) -> Self {
        match name {
            "direct" => ExchangeKind::Direct,
            "fanout" => ExchangeKind::Fanout,
            "topic" => ExchangeKind::Topic,
            "headers" => ExchangeKind::Headers,
            "x-delayed-message" => ExchangeKind::DelayedMessage,
            other => ExchangeKind::Custom(other.to_owned()),
        }
    }
}

impl fmt::Display for ExchangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What identifies one binding of an exchange: where, with which key and arguments.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct BindingKey {
    /// The destination (queue or exchange).
    pub(crate) destination: DestinationId,
    /// The binding key.
    pub(crate) key: String,
    /// The arguments, in a canonical form that can be hashed.
    pub(crate) arguments: ArgumentsKey,
}

/// Binding arguments with a hashable identity (their debug form is canonical, since
/// [`FieldTable`] keeps its keys sorted).
#[derive(Clone, Debug)]
pub(crate) struct ArgumentsKey {
    table: FieldTable,
    canonical: String,
}

impl ArgumentsKey {
    pub(crate) fn new(table: &FieldTable) -> Self {
        ArgumentsKey {
            table: table.clone(),
            canonical: format!("{table:?}"),
        }
    }

    pub(crate) fn table(&self) -> &FieldTable {
        &self.table
    }
}

impl PartialEq for ArgumentsKey {
    fn eq(&self, other: &Self) -> bool {
        self.canonical == other.canonical
    }
}

impl Eq for ArgumentsKey {}

impl std::hash::Hash for ArgumentsKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.canonical.hash(state);
    }
}

/// Message counters of one exchange.
#[derive(Debug, Default)]
pub(crate) struct ExchangeCounters {
    /// Messages that reached at least one queue.
    pub(crate) routed: AtomicU64,
    /// Messages that reached no queue and were dropped (not returned).
    pub(crate) unroutable: AtomicU64,
    /// Unroutable mandatory messages returned to their publisher.
    pub(crate) returned: AtomicU64,
}

/// One exchange of a vhost.
#[derive(Debug)]
pub(crate) struct Exchange {
    /// The exchange name (`""` for the default exchange).
    pub(crate) name: Arc<str>,
    /// The name as each message's envelope carries it: copied per publish, which for a
    /// short name is a 24-byte copy rather than a byte copy into a new string (and
    /// touches no reference count a consumer thread touches).
    pub(crate) envelope_name: CompactString,
    /// Its id as a binding destination (for exchange-to-exchange bindings).
    pub(crate) id: DestinationId,
    /// Its kind.
    pub(crate) kind: ExchangeKind,
    /// Declared durable.
    pub(crate) durable: bool,
    /// Deleted when its last binding goes.
    pub(crate) auto_delete: bool,
    /// Refuses direct publishes.
    pub(crate) internal: bool,
    /// Declare arguments.
    pub(crate) arguments: FieldTable,
    /// Predeclared by the broker (`""` and `amq.*`): cannot be deleted or redeclared.
    pub(crate) builtin: bool,
    /// The `alternate-exchange` argument: where messages this exchange cannot route go.
    declared_alternate: Option<Arc<str>>,
    /// The alternate exchange in force: the argument's, else the policy's.
    alternate: Mutex<Option<Arc<str>>>,
    /// `alternate` is set: publishing checks this flag, not the lock.
    has_alternate: AtomicBool,
    /// The name of the policy that applies to the exchange, if one does.
    policy: Mutex<Option<Arc<str>>>,
    /// An `x-delayed-message` exchange: messages with an `x-delay` header wait before they
    /// are routed.
    pub(crate) delayed: bool,
    /// The routing table.
    router: Box<dyn Router>,
    /// Every binding whose source is this exchange, for unbinding when a destination goes,
    /// `if_unused` and auto-delete.
    bindings: Mutex<HashSet<BindingKey>>,
    /// Message counters: written by every publish, so kept off the cache line of the
    /// read-only fields that publishers on other threads read.
    pub(crate) counters: CachePadded<ExchangeCounters>,
    /// Set when the exchange is deleted, so that handles cached by channels notice.
    deleted: AtomicBool,
}

/// What an exchange is declared with, checked for equivalence on redeclare.
#[derive(Debug)]
pub(crate) struct ExchangeSpec<'a> {
    pub(crate) name: &'a str,
    pub(crate) kind: &'a ExchangeKind,
    pub(crate) options: ExchangeDeclareOptions,
    pub(crate) arguments: &'a FieldTable,
}

impl Exchange {
    pub(crate) fn new(
        spec: &ExchangeSpec<'_>,
        id: DestinationId,
        router: Box<dyn Router>,
        builtin: bool,
    ) -> Self {
        let declared_alternate: Option<Arc<str>> = spec
            .arguments
            .get("alternate-exchange")
            .and_then(|v| v.as_str())
            .map(Into::into);
        Exchange {
            name: spec.name.into(),
            envelope_name: spec.name.into(),
            id,
            kind: spec.kind.clone(),
            durable: spec.options.durable,
            auto_delete: spec.options.auto_delete,
            internal: spec.options.internal,
            arguments: spec.arguments.clone(),
            builtin,
            declared_alternate: declared_alternate.clone(),
            has_alternate: AtomicBool::new(declared_alternate.is_some()),
            alternate: Mutex::new(declared_alternate),
            policy: Mutex::new(None),
            delayed: *spec.kind == ExchangeKind::DelayedMessage,
            router,
            bindings: Mutex::new(HashSet::new()),
            counters: CachePadded::default(),
            deleted: AtomicBool::new(false),
        }
    }

    /// Returns `true` if the exchange has an alternate exchange (argument or policy).
    pub(crate) fn has_alternate(&self) -> bool {
        self.has_alternate.load(Ordering::Acquire)
    }

    /// Returns the alternate exchange in force, if any.
    pub(crate) fn alternate(&self) -> Option<Arc<str>> {
        self.alternate.lock().clone()
    }

    /// Applies a policy (its name and definition), or none: its `alternate-exchange` is used
    /// when the exchange has no `alternate-exchange` argument (the argument wins, as in
    /// RabbitMQ).
    pub(crate) fn apply_policy(&self, policy: Option<(&str, &FieldTable)>) {
        let from_policy = policy
            .and_then(|(_, d)| d.get("alternate-exchange"))
            .and_then(|v| v.as_str())
            .map(Arc::from);
        let alternate = self.declared_alternate.clone().or(from_policy);
        self.has_alternate
            .store(alternate.is_some(), Ordering::Release);
        *self.alternate.lock() = alternate;
        *self.policy.lock() = policy.map(|(name, _)| name.into());
    }

    /// Returns the name of the policy that applies to the exchange, if one does.
    pub(crate) fn policy(&self) -> Option<Arc<str>> {
        self.policy.lock().clone()
    }

    /// Marks the exchange deleted.
    pub(crate) fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
    }

    /// Returns `true` once the exchange is deleted.
    pub(crate) fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Checks that a redeclare asks for the same exchange (406 otherwise), as RabbitMQ does.
    pub(crate) fn check_equivalent(&self, spec: &ExchangeSpec<'_>, vhost: &str) -> Result<()> {
        let mismatch = |arg: &str, received: String, current: String| {
            Err(Error::precondition(format!(
                "inequivalent arg '{arg}' for exchange '{}' in vhost '{vhost}': \
                 received '{received}' but current is '{current}'",
                self.name
            )))
        };
        if &self.kind != spec.kind {
            return mismatch("type", spec.kind.to_string(), self.kind.to_string());
        }
        if self.durable != spec.options.durable {
            return mismatch(
                "durable",
                spec.options.durable.to_string(),
                self.durable.to_string(),
            );
        }
        if self.auto_delete != spec.options.auto_delete {
            let (r, c) = (spec.options.auto_delete, self.auto_delete);
            return mismatch("auto_delete", r.to_string(), c.to_string());
        }
        if self.internal != spec.options.internal {
            let (r, c) = (spec.options.internal, self.internal);
            return mismatch("internal", r.to_string(), c.to_string());
        }
        let entity = Entity {
            kind: "exchange",
            name: &self.name,
            vhost,
        };
        arguments::check_equivalent(
            entity,
            COMPARED_EXCHANGE_ARGUMENTS,
            &self.arguments,
            spec.arguments,
        )
    }

    /// Adds a binding. Returns `Ok(false)` if it existed.
    pub(crate) fn bind(&self, key: BindingKey) -> std::result::Result<bool, InvalidBinding> {
        let mut bindings = self.bindings.lock();
        if bindings.contains(&key) {
            return Ok(false);
        }
        self.router.bind(Binding {
            destination: key.destination,
            key: &key.key,
            arguments: key.arguments.table(),
        })?;
        bindings.insert(key);
        Ok(true)
    }

    /// Removes a binding. Returns `false` if it did not exist.
    pub(crate) fn unbind(&self, key: &BindingKey) -> bool {
        let mut bindings = self.bindings.lock();
        if !bindings.remove(key) {
            return false;
        }
        self.router.unbind(Binding {
            destination: key.destination,
            key: &key.key,
            arguments: key.arguments.table(),
        });
        true
    }

    /// Returns the number of bindings whose source is this exchange.
    pub(crate) fn binding_count(&self) -> usize {
        self.bindings.lock().len()
    }

    /// Returns a copy of every binding whose source is this exchange.
    pub(crate) fn bindings(&self) -> Vec<BindingKey> {
        self.bindings.lock().iter().cloned().collect()
    }

    /// Appends the destinations a message reaches.
    pub(crate) fn route(&self, input: RoutingInput<'_>, out: &mut Vec<DestinationId>) {
        self.router.route(input, out);
    }

    /// Returns the routing table's memory estimate.
    pub(crate) fn table_bytes(&self) -> usize {
        self.router.memory_bytes()
    }
}
