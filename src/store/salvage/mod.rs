//! Salvage: reading what is still readable from a damaged database into a new one.
//!
//! A database that is refused at open (damaged pages, a rollback behind its witness, a
//! record that fails its checksum) is never repaired in place. [`salvage`] reads it — never
//! writing to it — and writes every readable record to a fresh database beside it:
//!
//! 1. `walk.rs`: a copy of the file is opened with redb and each table is walked on its own,
//!    every row checked against its record checksum;
//! 2. `scan.rs`: tables the walk could not read whole (redb refused the file, a walk stopped
//!    at a damaged page, rows failed their checksum, or fewer rows than the newest commit
//!    counted) are completed by parsing every page of the file;
//! 3. the records go to a new database — entities first, then each message with its queue
//!    entries — which is then read back: what the report calls kept is what the new database
//!    holds.
//!
//! - `found.rs`: the records read so far.

mod found;
mod scan;
mod walk;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::commit::Counts;
use super::op::StoreOp;
use super::open::StoreOptions;
use super::records::{AuthRecord, MessageId, QueueKey, QueueRecord, AUTH_PERMISSION};
use super::redb_store::{RedbStore, DEFAULT_CACHE_BYTES};
use super::{witness, Store, StoreError};
use crate::FieldTable;
use found::{Found, Row, Table};

/// How many records of each kind: the counts of a [`SalvageReport`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SalvageCounts {
    /// Vhosts.
    pub vhosts: u64,
    /// Durable exchanges.
    pub exchanges: u64,
    /// Durable queues.
    pub queues: u64,
    /// Durable bindings.
    pub bindings: u64,
    /// Persistent messages (each stored once, however many queues hold it).
    pub messages: u64,
    /// Queue entries: one per (queue, message) pair.
    pub entries: u64,
    /// Policies.
    pub policies: u64,
    /// Users (name, password hash, tags).
    pub users: u64,
    /// Permissions: one per (user, vhost).
    pub permissions: u64,
}

impl SalvageCounts {
    /// The count of one table (users and permissions together for `auth`).
    fn of(&self, table: Table) -> u64 {
        match table {
            Table::Vhosts => self.vhosts,
            Table::Exchanges => self.exchanges,
            Table::Queues => self.queues,
            Table::Bindings => self.bindings,
            Table::Policies => self.policies,
            Table::Auth => self.users + self.permissions,
            Table::Messages => self.messages,
            Table::Entries => self.entries,
        }
    }

    /// The count a row of this kind goes to, to change it. An `auth` row that is neither a
    /// user nor a permission (the mark that the default user was created) counts with the
    /// users.
    fn of_row_mut(&mut self, row: Row<'_>) -> &mut u64 {
        match row {
            Row::Vhost(..) => &mut self.vhosts,
            Row::Exchange(..) => &mut self.exchanges,
            Row::Queue(..) => &mut self.queues,
            Row::Binding(..) => &mut self.bindings,
            Row::Policy(..) => &mut self.policies,
            Row::Auth(kind, ..) if kind == AUTH_PERMISSION => &mut self.permissions,
            Row::Auth(..) => &mut self.users,
            Row::Message(..) => &mut self.messages,
            Row::Entry(..) => &mut self.entries,
        }
    }
}

impl From<Counts> for SalvageCounts {
    /// The commit record counts the entity and message tables only: policies, users and
    /// permissions are 0.
    fn from(c: Counts) -> Self {
        SalvageCounts {
            vhosts: c.vhosts,
            exchanges: c.exchanges,
            queues: c.queues,
            bindings: c.bindings,
            messages: c.messages,
            entries: c.entries,
            ..SalvageCounts::default()
        }
    }
}

impl fmt::Display for SalvageCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} vhosts, {} exchanges, {} queues, {} bindings, {} messages, {} queue entries, \
             {} policies, {} users, {} permissions",
            self.vhosts,
            self.exchanges,
            self.queues,
            self.bindings,
            self.messages,
            self.entries,
            self.policies,
            self.users,
            self.permissions
        )
    }
}

/// One queue of the salvaged database.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SalvagedQueue {
    /// Its vhost.
    pub vhost: String,
    /// Its name.
    pub name: String,
    /// The messages it holds in the new database.
    pub messages: u64,
    /// `true` if its own record was unreadable and it was recreated (durable, without
    /// arguments) because readable messages named it.
    pub recreated: bool,
}

/// What [`salvage`] kept and what it could not read.
///
/// `kept` is read back from the new database after it was written, so every record counted
/// there is in it. `Display` prints the report for an operator.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct SalvageReport {
    /// What the new database holds.
    pub kept: SalvageCounts,
    /// Rows found in the damaged file whose checksum or encoding failed (rows inside pages
    /// too damaged to be parsed at all are not counted here; see `expected`).
    pub unreadable: SalvageCounts,
    /// The rows of the newest commit the source is known to have made (its commit record, or
    /// its witness if that is newer), if either could be read.
    pub expected: Option<SalvageCounts>,
    /// Each queue of the new database, with its messages.
    pub queues: Vec<SalvagedQueue>,
    /// Readable queue entries whose message could not be read: those messages are lost.
    pub entries_without_message: u64,
    /// Readable messages that no readable queue entry holds: they are not kept (no queue is
    /// known to hold them).
    pub messages_without_entry: u64,
    /// The tables completed by a scan of every page of the file (the walk through redb's
    /// tree could not read them whole). Such a scan can bring back records removed shortly
    /// before the damage (acked messages come back, as redelivered).
    pub page_scanned: Vec<String>,
    /// What went wrong while reading, in words.
    pub notes: Vec<String>,
}

impl fmt::Display for SalvageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "kept: {}", self.kept)?;
        for q in &self.queues {
            let recreated = if q.recreated {
                " (its record was unreadable: recreated durable, without arguments)"
            } else {
                ""
            };
            writeln!(
                f,
                "  queue '{}' in vhost '{}': {} messages{recreated}",
                q.name, q.vhost, q.messages
            )?;
        }
        writeln!(f, "could not read: {}", self.unreadable)?;
        if self.entries_without_message > 0 {
            writeln!(
                f,
                "lost: {} queue entries whose message could not be read",
                self.entries_without_message
            )?;
        }
        if self.messages_without_entry > 0 {
            writeln!(
                f,
                "not kept: {} readable messages that no readable queue entry holds",
                self.messages_without_entry
            )?;
        }
        if let Some(e) = &self.expected {
            // The commit record does not count policies, users and permissions.
            writeln!(
                f,
                "the last known commit held: {} vhosts, {} exchanges, {} queues, {} bindings, \
                 {} messages, {} queue entries",
                e.vhosts, e.exchanges, e.queues, e.bindings, e.messages, e.entries
            )?;
        }
        if !self.page_scanned.is_empty() {
            writeln!(
                f,
                "completed by scanning every page (may bring back recently removed records): {}",
                self.page_scanned.join(", ")
            )?;
        }
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        Ok(())
    }
}

/// Reads every readable record of the (damaged) database `src` and writes them to a new
/// database at `dst`; returns what was kept and what could not be read.
///
/// `src` is only read, never written (redb's own crash repair runs on a temporary copy
/// beside `dst`). Entities come first, then each readable message with its readable queue
/// entries, in their order; a message whose every entry is unreadable, or an entry whose
/// message is, is reported and not kept. A queue whose record is unreadable but whose
/// messages are readable is recreated, durable and without arguments. Delivered flags are
/// kept; if the source was not closed cleanly (or that cannot be read) every message comes
/// back redelivered, as after any crash. The new database is closed cleanly, with its own
/// witness, and opens with [`Broker::open`](crate::Broker::open).
///
/// # Errors
///
/// [`StoreError::Io`] if `src` cannot be read, or if `dst` (or its witness) already exists;
/// any error writing or reading back the new database.
///
/// # Examples
///
/// ```
/// use warrenmq::{salvage, Broker, FieldTable, Message, QueueDeclareOptions};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let damaged = dir.path().join("warren.redb");
/// {
///     let broker = Broker::open(&damaged)?;
///     let ch = broker.connect("/")?.open_channel()?;
///     ch.queue_declare("jobs", QueueDeclareOptions::durable(), FieldTable::new())?;
///     ch.basic_publish("", "jobs", Message::new("kept").persistent())?;
/// }
/// let report = salvage(&damaged, dir.path().join("salvaged.redb"))?;
/// assert_eq!(report.kept.messages, 1);
/// println!("{report}");
/// # Ok(())
/// # }
/// ```
pub fn salvage(src: impl AsRef<Path>, dst: impl AsRef<Path>) -> Result<SalvageReport, StoreError> {
    let (src, dst) = (src.as_ref(), dst.as_ref());
    std::fs::metadata(src)?;
    for path in [dst.to_path_buf(), witness::path_for(dst)] {
        if path.exists() {
            return Err(StoreError::from(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists; salvage writes a new database", path.display()),
            )));
        }
    }
    let mut found = Found::default();
    let witnessed = witness::read(&witness::path_for(src))
        .ok()
        .flatten()
        .map(|w| (w.seq, w.counts));
    let copy = sibling(dst, ".salvage-copy");
    std::fs::copy(src, &copy)?;
    let walked = walk::walk(&copy, witnessed, &mut found);
    let _ = std::fs::remove_file(&copy);
    let mut report = SalvageReport {
        expected: walked
            .commit
            .map(|c| (c.seq, c.counts))
            .into_iter()
            .chain(witnessed)
            .max_by_key(|(seq, _)| *seq)
            .map(|(_, counts)| counts.into()),
        notes: walked.notes,
        ..SalvageReport::default()
    };
    if !walked.incomplete.is_empty() {
        let scanned = scan::scan(src, &walked.incomplete, &mut found)?;
        report.page_scanned = walked
            .incomplete
            .iter()
            .map(|t| t.name().to_owned())
            .collect();
        report.notes.push(format!(
            "the page scan read {} leaf pages and added {} records",
            scanned.leaves, scanned.added
        ));
    }
    report.unreadable = found.unreadable;
    let clean = walked.commit.is_some_and(|c| c.clean) && walked.incomplete.is_empty();
    let recreated = write(dst, found, clean, &mut report)?;
    read_back(dst, &recreated, &mut report)?;
    Ok(report)
}

/// Returns `base` with `suffix` appended to its file name.
fn sibling(base: &Path, suffix: &str) -> PathBuf {
    let mut name = base.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Writes the found records to a new database at `dst` and closes it; returns the queues it
/// had to recreate.
fn write(
    dst: &Path,
    found: Found,
    clean: bool,
    report: &mut SalvageReport,
) -> Result<BTreeSet<(String, String)>, StoreError> {
    let options = StoreOptions {
        cache_bytes: DEFAULT_CACHE_BYTES,
        allow_rollback: false,
    };
    let store = RedbStore::open_with(dst, options)?;
    let Found {
        vhosts,
        exchanges,
        mut queues,
        bindings,
        policies,
        auth,
        messages,
        entries,
        ..
    } = found;
    // Queues named by readable entries whose own record is unreadable.
    let mut recreated = BTreeSet::new();
    for (vhost, name, _) in entries.keys() {
        let key = (vhost.clone(), name.clone());
        if !queues.contains_key(&key) {
            queues.insert(
                key.clone(),
                QueueRecord {
                    vhost: vhost.clone(),
                    name: name.clone(),
                    durable: true,
                    auto_delete: false,
                    exclusive: false,
                    arguments: FieldTable::new(),
                },
            );
            recreated.insert(key);
        }
    }
    let mut last = None;
    for record in vhosts.into_values() {
        last = Some(store.submit(StoreOp::PutVhost(record)));
    }
    for record in exchanges.into_values() {
        last = Some(store.submit(StoreOp::PutExchange(record)));
    }
    for record in queues.into_values() {
        last = Some(store.submit(StoreOp::PutQueue(record)));
    }
    for record in bindings.into_values() {
        last = Some(store.submit(StoreOp::PutBinding(record)));
    }
    for record in policies.into_values() {
        last = Some(store.submit(StoreOp::PutPolicy(record)));
    }
    // Users before their permissions (and the defaults mark), as the broker writes them.
    let (users, others): (Vec<AuthRecord>, Vec<AuthRecord>) = auth
        .into_values()
        .partition(|r| matches!(r, AuthRecord::User(_)));
    for record in users.into_iter().chain(others) {
        last = Some(store.submit(StoreOp::PutAuth(record)));
    }
    // Each message once, with every readable entry that holds it.
    let mut holders: BTreeMap<u64, Vec<(String, String, u64, bool)>> = BTreeMap::new();
    for ((vhost, name, seq), entry) in entries {
        if messages.contains_key(&entry.message_id.0) {
            let delivered = entry.delivered || !clean;
            holders
                .entry(entry.message_id.0)
                .or_default()
                .push((vhost, name, seq, delivered));
        } else {
            report.entries_without_message += 1;
        }
    }
    for (id, message) in messages {
        let Some(held) = holders.remove(&id) else {
            report.messages_without_entry += 1;
            continue;
        };
        let keys: Vec<_> = held
            .iter()
            .map(|(v, n, seq, _)| QueueKey::new(v.as_str(), n.as_str()).entry(*seq))
            .collect();
        last = Some(store.submit(StoreOp::Enqueue {
            id: MessageId(id),
            message,
            entries: keys.clone(),
        }));
        for (key, (.., delivered)) in keys.into_iter().zip(held) {
            if delivered {
                last = Some(store.submit(StoreOp::MarkDelivered(key)));
            }
        }
    }
    if let Some(last) = last {
        last.wait()?;
    }
    store.close()?;
    Ok(recreated)
}

/// Reads the new database back and fills in what it holds.
fn read_back(
    dst: &Path,
    recreated: &BTreeSet<(String, String)>,
    report: &mut SalvageReport,
) -> Result<(), StoreError> {
    let store = RedbStore::open_with(
        dst,
        StoreOptions {
            cache_bytes: DEFAULT_CACHE_BYTES,
            allow_rollback: false,
        },
    )?;
    let state = store.load_all()?;
    let ids: BTreeSet<MessageId> = state
        .queues
        .iter()
        .flat_map(|q| q.messages.iter().map(|m| m.id))
        .collect();
    report.kept = SalvageCounts {
        vhosts: state.vhosts.len() as u64,
        exchanges: state.exchanges.len() as u64,
        queues: state.queues.len() as u64,
        bindings: state.bindings.len() as u64,
        messages: ids.len() as u64,
        entries: state.queues.iter().map(|q| q.messages.len() as u64).sum(),
        policies: state.policies.len() as u64,
        users: state
            .auth
            .iter()
            .filter(|r| matches!(r, AuthRecord::User(_)))
            .count() as u64,
        permissions: state
            .auth
            .iter()
            .filter(|r| matches!(r, AuthRecord::Permission(_)))
            .count() as u64,
    };
    report.queues = state
        .queues
        .iter()
        .map(|q| SalvagedQueue {
            vhost: q.record.vhost.clone(),
            name: q.record.name.clone(),
            messages: q.messages.len() as u64,
            recreated: recreated.contains(&(q.record.vhost.clone(), q.record.name.clone())),
        })
        .collect();
    store.close()
}
