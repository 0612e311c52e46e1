//! The on-disk schema: the redb tables, their keys, and how each [`StoreOp`] changes them.
//!
//! Every value is a record encoded by [`codec`] (version byte + bincode + checksum of key and
//! value), except the raw integers of [`META`] and the packed counts of [`MESSAGE_REFS`].
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | `&str` name | `u64` (`format_version`) |
//! | `commit` | `"last"` | `CommitRecord` (see `commit.rs`) |
//! | `vhosts` | vhost | `VhostRecord` |
//! | `exchanges` | (vhost, name) | `ExchangeRecord` |
//! | `queues` | (vhost, name) | `QueueRecord` |
//! | `bindings` | (vhost, source, destination, destination is exchange, routing key, encoded arguments) | `BindingRecord` |
//! | `messages` | message id | `MessageRecord`, written once |
//! | `message_refs` | message id | `u64`: number of entries that hold it (low 32 bits) and a checksum of id and number (high 32 bits); only for messages held by more than one entry |
//! | `queue_entries` | (vhost, queue, seq) | `EntryRecord` (message id, delivered) |
//! | `policies` | (vhost, name) | `PolicyRecord` (format 3) |
//! | `auth` | (`"user"`, name, `""`) / (`"permission"`, vhost, user) / (`"defaults"`, `""`, `""`) | `AuthRecord` (format 4) |
//!
//! The reference count lives apart from the message so that an ack of one of several queues
//! rewrites four bytes, not the body.

use std::collections::HashMap;

use redb::{ReadableTable, ReadableTableMetadata, Table, TableDefinition, WriteTransaction};
use smallvec::SmallVec;

use super::codec::{self, RecordKey};
use super::commit::Counts;
use super::op::StoreOp;
use super::records::{
    BindingRecord, EntryKey, EntryRecord, MessageId, QueueKey, AUTH_PERMISSION, AUTH_USER,
};
use super::StoreError;

/// Database-wide settings: the format version.
pub(crate) const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
/// Key in [`META`] of the database format version.
pub(crate) const FORMAT_VERSION_KEY: &str = "format_version";
/// Key in [`META`] of the clean-shutdown flag of format 1 (format 2 keeps it in the commit
/// record).
pub(crate) const CLEAN_SHUTDOWN_KEY: &str = "clean_shutdown";
/// Vhost name → `VhostRecord`.
pub(crate) const VHOSTS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("vhosts");
/// (vhost, exchange) → `ExchangeRecord`.
pub(crate) const EXCHANGES: TableDefinition<'_, (&str, &str), &[u8]> =
    TableDefinition::new("exchanges");
/// (vhost, queue) → `QueueRecord`.
pub(crate) const QUEUES: TableDefinition<'_, (&str, &str), &[u8]> = TableDefinition::new("queues");
/// The key of a binding: every field of it, arguments encoded.
pub(crate) type BindingKey<'a> = (&'a str, &'a str, &'a str, bool, &'a str, &'a [u8]);
/// Binding identity → `BindingRecord`.
pub(crate) const BINDINGS: TableDefinition<'_, BindingKey<'static>, &[u8]> =
    TableDefinition::new("bindings");
/// Message id → `MessageRecord`.
pub(crate) const MESSAGES: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("messages");
/// Message id → number of queue entries holding it, packed with a checksum
/// ([`codec::pack_refs`]).
pub(crate) const MESSAGE_REFS: TableDefinition<'_, u64, u64> = TableDefinition::new("message_refs");
/// (vhost, policy) → `PolicyRecord`. Not among the commit record's row counts.
pub(crate) const POLICIES: TableDefinition<'_, (&str, &str), &[u8]> =
    TableDefinition::new("policies");
/// (vhost, queue, seq) → `EntryRecord`.
pub(crate) const QUEUE_ENTRIES: TableDefinition<'_, (&str, &str, u64), &[u8]> =
    TableDefinition::new("queue_entries");

/// (kind, name, name) → `AuthRecord`: users, permissions and the defaults mark. Not counted in
/// the commit record (its rows are few and rewritten whole).
pub(crate) const AUTH: TableDefinition<'_, (&str, &str, &str), &[u8]> =
    TableDefinition::new("auth");

/// A [`StoreOp`] with its records already encoded, so the writer thread only touches redb.
#[derive(Debug)]
pub(crate) enum EncodedOp {
    /// [`StoreOp::DeleteVhost`].
    DeleteVhost(String),
    /// [`StoreOp::DeleteExchange`]: vhost and name.
    DeleteExchange(String, String),
    /// [`StoreOp::DeleteQueue`].
    DeleteQueue(QueueKey),
    /// [`StoreOp::PurgeQueue`].
    PurgeQueue(QueueKey),
    /// [`StoreOp::DeletePolicy`]: vhost and name.
    DeletePolicy(String, String),
    /// [`StoreOp::MarkDelivered`] and [`StoreOp::MarkAllDelivered`].
    MarkDelivered(Vec<EntryKey>),
    /// [`StoreOp::Remove`] and [`StoreOp::RemoveAll`] (one entry, the usual ack, inline).
    Remove(SmallVec<[EntryKey; 1]>),
    /// A vhost, exchange or queue record to insert.
    Put {
        /// Which entity.
        kind: PutKind,
        /// Its vhost.
        vhost: String,
        /// Its name (unused for vhosts).
        name: String,
        /// The encoded record.
        value: Vec<u8>,
    },
    /// A binding to insert or delete.
    Binding {
        /// The binding.
        record: BindingRecord,
        /// Its encoded arguments (part of its key).
        arguments: Vec<u8>,
        /// The encoded record, or `None` to delete.
        value: Option<Vec<u8>>,
    },
    /// An `auth` row to insert (`Some`) or delete (`None`).
    Auth {
        /// Kind and two names.
        key: (&'static str, String, String),
        /// The encoded [`AuthRecord`], or `None` to delete.
        value: Option<Vec<u8>>,
    },
    /// A message to store with its entries.
    Enqueue {
        /// The message id.
        id: MessageId,
        /// The encoded `MessageRecord`.
        message: Vec<u8>,
        /// Where it goes.
        entries: Vec<EntryKey>,
    },
}

/// Which table an [`EncodedOp::Put`] goes to.
#[derive(Clone, Copy, Debug)]
pub(crate) enum PutKind {
    /// [`VHOSTS`].
    Vhost,
    /// [`EXCHANGES`].
    Exchange,
    /// [`QUEUES`].
    Queue,
    /// [`POLICIES`].
    Policy,
}

impl EncodedOp {
    /// Encodes the records an op carries. Runs on the submitting thread.
    pub(crate) fn new(op: StoreOp) -> Result<Self, StoreError> {
        Ok(match op {
            StoreOp::PutVhost(r) => {
                let value = codec::encode(RecordKey::Vhost(&r.name), &r)?;
                EncodedOp::Put {
                    kind: PutKind::Vhost,
                    vhost: r.name,
                    name: String::new(),
                    value,
                }
            }
            StoreOp::PutExchange(r) => {
                let value = codec::encode(RecordKey::Exchange(&r.vhost, &r.name), &r)?;
                EncodedOp::Put {
                    kind: PutKind::Exchange,
                    vhost: r.vhost,
                    name: r.name,
                    value,
                }
            }
            StoreOp::PutQueue(r) => {
                let value = codec::encode(RecordKey::Queue(&r.vhost, &r.name), &r)?;
                EncodedOp::Put {
                    kind: PutKind::Queue,
                    vhost: r.vhost,
                    name: r.name,
                    value,
                }
            }
            StoreOp::PutPolicy(r) => {
                let value = codec::encode(RecordKey::Policy(&r.vhost, &r.name), &r)?;
                EncodedOp::Put {
                    kind: PutKind::Policy,
                    vhost: r.vhost,
                    name: r.name,
                    value,
                }
            }
            StoreOp::DeletePolicy { vhost, name } => EncodedOp::DeletePolicy(vhost, name),
            StoreOp::PutBinding(record) => {
                let arguments = codec::encode_key_part(&record.arguments)?;
                let value = Some(codec::encode(binding_key(&record, &arguments), &record)?);
                EncodedOp::Binding {
                    arguments,
                    record,
                    value,
                }
            }
            StoreOp::DeleteBinding(record) => EncodedOp::Binding {
                arguments: codec::encode_key_part(&record.arguments)?,
                record,
                value: None,
            },
            StoreOp::Enqueue {
                id,
                message,
                entries,
            } => {
                // Room for the body, the strings and the properties (headers aside).
                let size =
                    message.body.len() + message.exchange.len() + message.routing_key.len() + 96;
                EncodedOp::Enqueue {
                    id,
                    message: codec::encode_sized(RecordKey::Message(id.0), &message, size)?,
                    entries,
                }
            }
            StoreOp::PutAuth(record) => {
                let (kind, first, second) = record.key();
                let value = codec::encode(RecordKey::Auth(kind, first, second), &record)?;
                let key = (kind, first.to_owned(), second.to_owned());
                EncodedOp::Auth {
                    key,
                    value: Some(value),
                }
            }
            StoreOp::DeleteAuth {
                kind,
                first,
                second,
            } => EncodedOp::Auth {
                key: (kind, first, second),
                value: None,
            },
            StoreOp::DeleteVhost { vhost } => EncodedOp::DeleteVhost(vhost),
            StoreOp::DeleteExchange { vhost, name } => EncodedOp::DeleteExchange(vhost, name),
            StoreOp::DeleteQueue(queue) => EncodedOp::DeleteQueue(queue),
            StoreOp::PurgeQueue(queue) => EncodedOp::PurgeQueue(queue),
            StoreOp::MarkDelivered(entry) => EncodedOp::MarkDelivered(vec![entry]),
            StoreOp::MarkAllDelivered(entries) => EncodedOp::MarkDelivered(entries),
            StoreOp::Remove(entry) => EncodedOp::Remove(smallvec::smallvec![entry]),
            StoreOp::RemoveAll(entries) => EncodedOp::Remove(entries.into()),
        })
    }
}

/// The checksum key of a binding record whose arguments encode to `arguments`.
pub(crate) fn binding_key<'a>(r: &'a BindingRecord, arguments: &'a [u8]) -> RecordKey<'a> {
    RecordKey::Binding(
        &r.vhost,
        &r.source,
        &r.destination,
        r.destination_is_exchange,
        &r.routing_key,
        arguments,
    )
}

/// Applies a batch of ops, in order, inside one write transaction, and returns the number of
/// rows of each table afterwards.
///
/// What a later op of the same batch removes is not written first:
/// - a delivery mark for an entry that a later op removes is skipped;
/// - an entry enqueued and removed again within the batch (a fast consumer acked the message
///   before its group commit) is never written, and a message none of whose entries is left
///   is not stored at all. The batch commits as one transaction, so what is on disk after it
///   is the same; the publisher's confirm still waits for this commit.
///
/// The later removal itself still runs: it finds no entry (or one that an older message
/// left at a reused position, which it removes as it would have).
pub(crate) fn apply_batch(txn: &WriteTransaction, ops: &[EncodedOp]) -> Result<Counts, StoreError> {
    // Every entry a removal names, with the index of the last op that removes it.
    let mut removed: HashMap<&EntryKey, usize> = HashMap::new();
    for (at, op) in ops.iter().enumerate() {
        if let EncodedOp::Remove(entries) = op {
            removed.extend(entries.iter().map(|e| (e, at)));
        }
    }
    let removed_after = |e: &EntryKey, at: usize| removed.get(e).is_some_and(|&r| r > at);
    let mut t = Tables::open(txn)?;
    for (at, op) in ops.iter().enumerate() {
        match op {
            EncodedOp::MarkDelivered(entries) => entries
                .iter()
                .filter(|e| !removed_after(e, at))
                .try_for_each(|e| t.mark_delivered(e))?,
            EncodedOp::Enqueue {
                id,
                message,
                entries,
            } if entries.iter().any(|e| removed_after(e, at)) => {
                let kept: Vec<EntryKey> = entries
                    .iter()
                    .filter(|e| !removed_after(e, at))
                    .cloned()
                    .collect();
                t.enqueue(*id, message, &kept)?;
            }
            op => t.apply(op)?,
        }
    }
    t.counts()
}

/// The open tables of one write transaction.
struct Tables<'txn> {
    /// [`VHOSTS`].
    vhosts: Table<'txn, &'static str, &'static [u8]>,
    /// [`EXCHANGES`].
    exchanges: Table<'txn, (&'static str, &'static str), &'static [u8]>,
    /// [`QUEUES`].
    queues: Table<'txn, (&'static str, &'static str), &'static [u8]>,
    /// [`BINDINGS`].
    bindings: Table<'txn, BindingKey<'static>, &'static [u8]>,
    /// [`MESSAGES`].
    messages: Table<'txn, u64, &'static [u8]>,
    /// [`MESSAGE_REFS`].
    refs: Table<'txn, u64, u64>,
    /// [`QUEUE_ENTRIES`].
    entries: Table<'txn, (&'static str, &'static str, u64), &'static [u8]>,
    /// [`POLICIES`].
    policies: Table<'txn, (&'static str, &'static str), &'static [u8]>,
    /// [`AUTH`].
    auth: Table<'txn, (&'static str, &'static str, &'static str), &'static [u8]>,
}

impl<'txn> Tables<'txn> {
    /// Opens (creating if needed) every data table.
    fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(Tables {
            vhosts: txn.open_table(VHOSTS)?,
            exchanges: txn.open_table(EXCHANGES)?,
            queues: txn.open_table(QUEUES)?,
            bindings: txn.open_table(BINDINGS)?,
            messages: txn.open_table(MESSAGES)?,
            refs: txn.open_table(MESSAGE_REFS)?,
            entries: txn.open_table(QUEUE_ENTRIES)?,
            policies: txn.open_table(POLICIES)?,
            auth: txn.open_table(AUTH)?,
        })
    }

    /// Returns the number of rows of each table (redb keeps them; no table is walked).
    fn counts(&self) -> Result<Counts, StoreError> {
        Ok(Counts {
            vhosts: self.vhosts.len()?,
            exchanges: self.exchanges.len()?,
            queues: self.queues.len()?,
            bindings: self.bindings.len()?,
            messages: self.messages.len()?,
            entries: self.entries.len()?,
        })
    }

    /// Applies one op.
    fn apply(&mut self, op: &EncodedOp) -> Result<(), StoreError> {
        match op {
            EncodedOp::Put {
                kind,
                vhost,
                name,
                value,
            } => self.put(*kind, vhost, name, value),
            EncodedOp::Binding {
                record: r,
                arguments,
                value,
            } => {
                let key = (
                    &*r.vhost,
                    &*r.source,
                    &*r.destination,
                    r.destination_is_exchange,
                    &*r.routing_key,
                    &arguments[..],
                );
                match value {
                    Some(value) => self.bindings.insert(key, &value[..]).map(drop),
                    None => self.bindings.remove(key).map(drop),
                }?;
                Ok(())
            }
            EncodedOp::Enqueue {
                id,
                message,
                entries,
            } => self.enqueue(*id, message, entries),
            EncodedOp::Auth { key, value } => self.auth(key, value.as_deref()),
            EncodedOp::DeleteVhost(vhost) => self.delete_vhost(vhost),
            EncodedOp::DeleteExchange(vhost, name) => self.delete_exchange(vhost, name),
            EncodedOp::DeleteQueue(queue) => self.delete_queue(queue),
            EncodedOp::PurgeQueue(queue) => self.purge(&queue.vhost, Some(&queue.name)),
            EncodedOp::DeletePolicy(vhost, name) => {
                self.policies.remove((&**vhost, &**name)).map(drop)?;
                Ok(())
            }
            EncodedOp::MarkDelivered(entries) => {
                entries.iter().try_for_each(|e| self.mark_delivered(e))
            }
            EncodedOp::Remove(entries) => entries.iter().try_for_each(|e| self.remove(e)),
        }
    }

    /// Inserts a vhost, exchange or queue record.
    fn put(
        &mut self,
        kind: PutKind,
        vhost: &str,
        name: &str,
        value: &[u8],
    ) -> Result<(), StoreError> {
        match kind {
            PutKind::Vhost => self.vhosts.insert(vhost, value).map(drop),
            PutKind::Exchange => self.exchanges.insert((vhost, name), value).map(drop),
            PutKind::Queue => self.queues.insert((vhost, name), value).map(drop),
            PutKind::Policy => self.policies.insert((vhost, name), value).map(drop),
        }?;
        Ok(())
    }

    /// Stores a message once and one entry per queue that still exists.
    fn enqueue(
        &mut self,
        id: MessageId,
        message: &[u8],
        entries: &[EntryKey],
    ) -> Result<(), StoreError> {
        let record = EntryRecord {
            message_id: id,
            delivered: false,
        };
        let mut count = 0u32;
        for e in entries {
            let (vhost, name) = (&*e.queue.vhost, &*e.queue.name);
            // The queue may have been deleted while the message was being routed: an entry
            // then would outlive its queue, so it is not written.
            if self.queues.get((vhost, name))?.is_none() {
                continue;
            }
            let key = RecordKey::Entry(vhost, name, e.seq);
            let value = codec::encode(key, &record)?;
            let replaced = match self.entries.insert((vhost, name, e.seq), &value[..])? {
                Some(old) => Some(codec::decode::<EntryRecord>(key, old.value())?),
                None => None,
            };
            // A reused position must not leak the message that was there.
            if let Some(old) = replaced {
                self.release(old.message_id)?;
            }
            count = count.checked_add(1).ok_or_else(|| {
                StoreError::corrupt("a message routed to more than u32::MAX queues")
            })?;
        }
        if count > 0 {
            self.messages.insert(id.0, message)?;
            // A message held by one entry has no count row: a missing count is one.
            if count > 1 {
                self.refs.insert(id.0, codec::pack_refs(id.0, count))?;
            }
        }
        Ok(())
    }

    /// Sets the delivered flag of an entry, if it still exists.
    fn mark_delivered(&mut self, e: &EntryKey) -> Result<(), StoreError> {
        let key = (&*e.queue.vhost, &*e.queue.name, e.seq);
        let Some(mut entry) = self.entry(key)? else {
            return Ok(());
        };
        if !entry.delivered {
            entry.delivered = true;
            let value = codec::encode(RecordKey::Entry(key.0, key.1, key.2), &entry)?;
            self.entries.insert(key, &value[..])?;
        }
        Ok(())
    }

    /// Removes an entry, if it still exists, and releases its message.
    fn remove(&mut self, e: &EntryKey) -> Result<(), StoreError> {
        let (vhost, name) = (&*e.queue.vhost, &*e.queue.name);
        let entry = match self.entries.remove((vhost, name, e.seq))? {
            Some(value) => {
                codec::decode::<EntryRecord>(RecordKey::Entry(vhost, name, e.seq), value.value())?
            }
            None => return Ok(()),
        };
        self.release(entry.message_id)
    }

    /// Reads an entry.
    fn entry(&self, key: (&str, &str, u64)) -> Result<Option<EntryRecord>, StoreError> {
        match self.entries.get(key)? {
            Some(value) => {
                let record_key = RecordKey::Entry(key.0, key.1, key.2);
                Ok(Some(codec::decode(record_key, value.value())?))
            }
            None => Ok(None),
        }
    }

    /// Drops one reference to a message, deleting it with its last one.
    ///
    /// A missing count means one reference (a message stored for one queue has no count
    /// row).
    fn release(&mut self, id: MessageId) -> Result<(), StoreError> {
        let count = match self.refs.get(id.0)? {
            Some(packed) => codec::unpack_refs(id.0, packed.value())?,
            None => 0,
        };
        match count {
            3.. => {
                self.refs.insert(id.0, codec::pack_refs(id.0, count - 1))?;
            }
            // One holder left: no row.
            2 => {
                self.refs.remove(id.0)?;
            }
            _ => {
                self.refs.remove(id.0)?;
                self.messages.remove(id.0)?;
            }
        }
        Ok(())
    }

    /// Removes every entry of one queue (`Some`) or of every queue of a vhost (`None`), and
    /// releases their messages.
    fn purge(&mut self, vhost: &str, queue: Option<&str>) -> Result<(), StoreError> {
        let mut released = Vec::new();
        let mut bad = None;
        let mut take = |k: (&str, &str, u64), value: &[u8]| {
            match codec::decode::<EntryRecord>(RecordKey::Entry(k.0, k.1, k.2), value) {
                Ok(entry) => released.push(entry.message_id),
                Err(e) => bad = Some(e),
            }
            false
        };
        match queue {
            Some(q) => self
                .entries
                .retain_in((vhost, q, 0)..=(vhost, q, u64::MAX), |k, v| take(k, v))?,
            None => self.entries.retain(|k, v| k.0 != vhost || take(k, v))?,
        }
        if let Some(e) = bad {
            return Err(e);
        }
        released.into_iter().try_for_each(|id| self.release(id))
    }

    /// Deletes a queue, its entries and the bindings to it.
    fn delete_queue(&mut self, q: &QueueKey) -> Result<(), StoreError> {
        self.queues.remove((&*q.vhost, &*q.name))?;
        self.purge(&q.vhost, Some(&q.name))?;
        self.bindings
            .retain(|k, _| !(k.0 == &*q.vhost && !k.3 && k.2 == &*q.name))?;
        Ok(())
    }

    /// Deletes an exchange and every binding from or to it.
    fn delete_exchange(&mut self, vhost: &str, name: &str) -> Result<(), StoreError> {
        self.exchanges.remove((vhost, name))?;
        self.bindings
            .retain(|k, _| !(k.0 == vhost && (k.1 == name || (k.3 && k.2 == name))))?;
        Ok(())
    }

    /// Inserts or deletes an `auth` row; deleting a user deletes its permissions.
    fn auth(
        &mut self,
        key: &(&'static str, String, String),
        value: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let (kind, first, second) = (key.0, key.1.as_str(), key.2.as_str());
        match value {
            Some(value) => self.auth.insert((kind, first, second), value).map(drop)?,
            None => {
                self.auth.remove((kind, first, second))?;
                if kind == AUTH_USER {
                    self.auth
                        .retain(|k, _| !(k.0 == AUTH_PERMISSION && k.2 == first))?;
                }
            }
        }
        Ok(())
    }

    /// Deletes a vhost and everything in it.
    fn delete_vhost(&mut self, vhost: &str) -> Result<(), StoreError> {
        self.vhosts.remove(vhost)?;
        self.auth
            .retain(|k, _| !(k.0 == AUTH_PERMISSION && k.1 == vhost))?;
        self.purge(vhost, None)?;
        self.exchanges.retain(|k, _| k.0 != vhost)?;
        self.queues.retain(|k, _| k.0 != vhost)?;
        self.bindings.retain(|k, _| k.0 != vhost)?;
        self.policies.retain(|k, _| k.0 != vhost)?;
        Ok(())
    }
}
