//! Definitions (feature `definitions`): a broker's topology in RabbitMQ's definitions format,
//! the JSON that `rabbitmqctl export_definitions` and the management API's
//! `GET /api/definitions` write, imported with [`Broker::import_definitions`] /
//! [`BrokerBuilder::definitions`](crate::BrokerBuilder::definitions) and written with
//! [`Broker::export_definitions`]. See `docs/definitions.md`.
//!
//! - `model`: the file's sections, read entry by entry.
//! - `apply`: applying them to a broker, in RabbitMQ's order.
//! - `export`: the broker's topology as the file.
//! - `json`: field tables (arguments, policy definitions) as JSON, shared with the
//!   management API.
//!
//! # All or nothing
//!
//! An import first runs in full on a scratch in-memory broker holding a copy of this broker's
//! topology; only if every entry succeeds there is it applied to the broker itself, so a bad
//! file changes nothing and its error names the entry. The real import's store writes go in
//! one transaction (a write group): if the store cannot write it, nothing of it is on disk
//! and what it applied in memory is undone (`undo`); an entry refused half-way (a
//! conflicting change made concurrently) is undone the same way, in the same transaction.
//!
//! - `undo`: putting the broker back as its definitions before the import describe it.

mod apply;
mod export;
pub(crate) mod json;
mod model;
mod undo;

use std::io::Read;

use crate::store::WriteGroup;
use crate::{Broker, Error, ManualClock, Result};
use apply::{apply, OnError};
use model::Definitions;
use undo::undo;

#[cfg(feature = "management")]
pub(crate) use export::policy_json;
#[cfg(feature = "management")]
pub(crate) use model::RABBITMQ_VERSION;

/// What [`Broker::import_definitions`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DefinitionsReport {
    /// Users added or replaced (password hash and tags).
    pub users: usize,
    /// Vhosts added (or there already).
    pub vhosts: usize,
    /// Permissions set (a user's configure, write and read patterns in a vhost).
    pub permissions: usize,
    /// Policies set.
    pub policies: usize,
    /// Queues declared (or there already, the same).
    pub queues: usize,
    /// Exchanges declared (or there already, the same).
    pub exchanges: usize,
    /// Bindings made (or there already).
    pub bindings: usize,
    /// What was not imported, and why: sections Warren has no use for (topic permissions,
    /// runtime parameters; users and permissions in a vhost's definitions), unknown keys, queues and exchanges that exist with other
    /// properties (kept as they are, as RabbitMQ keeps them), bindings whose source or
    /// destination is missing (RabbitMQ skips those too). Each is also logged as a
    /// `tracing` warning.
    pub warnings: Vec<String>,
}

impl Broker {
    /// Imports a definitions file in RabbitMQ's format (what `rabbitmqctl
    /// export_definitions` writes): users (with their password hashes and tags), vhosts,
    /// permissions, policies, queues with their arguments, exchanges and bindings
    /// (exchange-to-exchange included), in that order, as RabbitMQ's `rabbitmqctl
    /// import_definitions` and `load_definitions` apply them. A user that exists is
    /// replaced; a queue or exchange that exists already is kept as it is; sections Warren has no use for and
    /// unknown keys are warned about (see [`DefinitionsReport::warnings`]), not refused.
    ///
    /// # All or nothing
    ///
    /// The import first runs in full on a scratch copy of the broker's topology, so a bad
    /// file changes nothing (RabbitMQ applies the entries before the bad one). On a
    /// persistent broker its store writes go in one transaction: if the store cannot write
    /// it (a full disk, an I/O error), nothing of it is on disk and what it applied is
    /// undone.
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::Broker;
    ///
    /// # fn main() -> Result<(), warrenmq::Error> {
    /// let definitions = r#"{
    ///   "exchanges": [{"name": "sorting_room", "vhost": "/", "type": "direct",
    ///                  "durable": true, "auto_delete": false, "internal": false,
    ///                  "arguments": {}}],
    ///   "queues": [{"name": "po_box", "vhost": "/", "durable": true, "auto_delete": false,
    ///               "arguments": {"x-max-length": 100}}],
    ///   "bindings": [{"source": "sorting_room", "vhost": "/", "destination": "po_box",
    ///                 "destination_type": "queue", "routing_key": "1111", "arguments": {}}]
    /// }"#;
    /// let broker = Broker::in_memory();
    /// let report = broker.import_definitions(definitions.as_bytes())?;
    /// assert_eq!((report.queues, report.exchanges, report.bindings), (1, 1, 1));
    /// let ch = broker.connect("/")?.open_channel()?;
    /// let route = ch.route_preview("sorting_room", "1111", &Default::default())?;
    /// assert_eq!(route.queues, ["po_box"]);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidDefinitions`](crate::Error::InvalidDefinitions) (406) naming the file
    /// (not JSON) or the entry and why (`queue 'q' in vhost '/': PRECONDITION_FAILED -
    /// invalid arg 'x-message-ttl' ...`); [`Error::Storage`](crate::Error::Storage) (541)
    /// if the store could not write the import. Nothing is imported then.
    #[cfg_attr(docsrs, doc(cfg(feature = "definitions")))]
    pub fn import_definitions(&self, reader: impl Read) -> Result<DefinitionsReport> {
        self.import(reader, None)
    }

    /// Imports the definitions of one vhost (the management API's
    /// `POST /api/definitions/{vhost}`): every entry goes to `vhost`.
    #[cfg_attr(not(feature = "management"), allow(dead_code))]
    pub(crate) fn import_vhost_definitions(
        &self,
        vhost: &str,
        reader: impl Read,
    ) -> Result<DefinitionsReport> {
        self.vhost(vhost)?;
        self.import(reader, Some(vhost))
    }

    fn import(&self, reader: impl Read, vhost: Option<&str>) -> Result<DefinitionsReport> {
        let defs = Definitions::parse(reader, vhost)?;
        let mine = Definitions::parse(self.export_definitions().as_bytes(), None)?;
        // The trial on the scratch broker logs nothing: its "user added", "queue declared"
        // would read as changes to this broker.
        let quiet = tracing::subscriber::NoSubscriber::default();
        tracing::subscriber::with_default(quiet, || {
            let scratch = self.scratch();
            apply(&scratch, &mine, OnError::Skip)?;
            let tried = apply(&scratch, &defs, OnError::Fail);
            let _ = scratch.close();
            tried.map(drop)
        })?;
        let mut report = self.apply_all_or_nothing(&mine, &defs)?;
        let mut warnings = defs.warnings;
        warnings.append(&mut report.warnings);
        for warning in &warnings {
            tracing::warn!(%warning, "definitions import");
        }
        report.warnings = warnings;
        tracing::info!(
            users = report.users,
            vhosts = report.vhosts,
            permissions = report.permissions,
            policies = report.policies,
            queues = report.queues,
            exchanges = report.exchanges,
            bindings = report.bindings,
            warnings = report.warnings.len(),
            "definitions imported"
        );
        Ok(report)
    }

    /// Applies `defs` to this broker, whose definitions were `mine`, all or nothing: the
    /// store writes of the import go in one transaction (a [`WriteGroup`]); if an entry is
    /// refused half-way (a conflicting change made meanwhile) what was applied is undone in
    /// that same transaction, and if the transaction fails (a store write error) nothing of
    /// it is on disk and what was applied in memory is undone.
    fn apply_all_or_nothing(
        &self,
        mine: &Definitions,
        defs: &Definitions,
    ) -> Result<DefinitionsReport> {
        let store = &self.settings().store;
        let group = WriteGroup::begin(&**store);
        let applied = apply(self, defs, OnError::Fail);
        if applied.is_err() {
            undo(self, mine, defs);
        }
        let written = group.map_or(Ok(()), |group| group.end().wait());
        let report = applied?;
        if let Err(e) = written {
            tracing::error!(error = %e, "definitions import: the store could not write it; undone");
            // Nothing of the import is on disk: undo it in memory, in a group of its own so
            // that a store still failing does not stop the undo half-way.
            let group = WriteGroup::begin(&**store);
            undo(self, mine, defs);
            drop(group.map(WriteGroup::end));
            return Err(Error::Storage(e));
        }
        Ok(report)
    }

    /// Exports the broker's topology in RabbitMQ's definitions format, which `rabbitmqctl
    /// import_definitions`, the management API's `POST /api/definitions` and
    /// [`import_definitions`](Self::import_definitions) read: users (name, password hash
    /// and algorithm, tags), vhosts, permissions, policies, queues with
    /// their arguments (exclusive ones excepted: they die with their connection), exchanges
    /// (the predeclared `amq.*` ones excepted; internal ones included, which RabbitMQ 3.10
    /// leaves out) and the bindings between them, durable or not. Messages are not part of
    /// it.
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::{Broker, FieldTable, QueueDeclareOptions};
    ///
    /// # fn main() -> Result<(), warrenmq::Error> {
    /// let broker = Broker::in_memory();
    /// let ch = broker.connect("/")?.open_channel()?;
    /// let arguments = FieldTable::new().with("x-max-length", 10);
    /// ch.queue_declare("jobs", QueueDeclareOptions::durable(), arguments)?;
    /// let json = broker.export_definitions();
    /// let copy = Broker::in_memory();
    /// copy.import_definitions(json.as_bytes())?;
    /// assert!(copy.queue_stats("/", "jobs")?.durable);
    /// # Ok(())
    /// # }
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "definitions")))]
    pub fn export_definitions(&self) -> String {
        pretty(&export::broker(self))
    }

    /// The definitions as JSON: of the whole broker, or of one vhost (the management API's
    /// `GET /api/definitions/{vhost}`: its policies, queues, exchanges and bindings, without
    /// their `vhost` keys).
    ///
    /// # Errors
    ///
    /// 530 for an unknown vhost.
    #[cfg_attr(not(feature = "management"), allow(dead_code))]
    pub(crate) fn definitions_json(&self, vhost: Option<&str>) -> Result<serde_json::Value> {
        match vhost {
            None => Ok(export::broker(self)),
            Some(vhost) => export::vhost(self, vhost),
        }
    }

    /// Returns an empty in-memory broker with the same exchange kinds and binding rule, to
    /// try an import on (its manual clock starts no timer thread).
    fn scratch(&self) -> Broker {
        let settings = self.settings();
        let mut builder = Broker::builder();
        builder
            .strict_binding_durability(settings.strict_binding_durability)
            .clock(ManualClock::new())
            .memory_high_watermark(crate::MemoryWatermark::Unlimited);
        for (name, factory) in settings.custom_kinds() {
            builder.exchange_kind_arc(name, factory.clone());
        }
        builder.build_in_memory()
    }
}

/// Writes JSON indented, as `rabbitmqctl export_definitions` does.
fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}
