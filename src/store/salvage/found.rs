//! [`Found`]: the records salvage has read so far, table by table, and what it could not read.

use std::collections::BTreeMap;

use super::super::codec::{self, RecordKey};
use super::super::records::{
    AuthRecord, BindingRecord, EntryRecord, ExchangeRecord, MessageRecord, PolicyRecord,
    QueueRecord, VhostRecord, AUTH_PERMISSION, AUTH_USER,
};
use super::super::StoreError;
use super::SalvageCounts;

/// The key of a binding, every part owned: (vhost, source, destination, destination is an
/// exchange, routing key, encoded arguments).
pub(super) type BindingKey = (String, String, String, bool, String, Vec<u8>);

/// The data tables, to say which one a record or a problem belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Table {
    /// `vhosts`.
    Vhosts,
    /// `exchanges`.
    Exchanges,
    /// `queues`.
    Queues,
    /// `bindings`.
    Bindings,
    /// `policies` (format 3).
    Policies,
    /// `auth`: users, permissions and the defaults mark (format 4).
    Auth,
    /// `messages`.
    Messages,
    /// `queue_entries`.
    Entries,
}

impl Table {
    /// Every data table, in the order salvage reads them (entities first, then messages).
    pub(super) const ALL: [Table; 8] = [
        Table::Vhosts,
        Table::Exchanges,
        Table::Queues,
        Table::Bindings,
        Table::Policies,
        Table::Auth,
        Table::Messages,
        Table::Entries,
    ];

    /// The table's name in the database.
    pub(super) fn name(self) -> &'static str {
        match self {
            Table::Vhosts => "vhosts",
            Table::Exchanges => "exchanges",
            Table::Queues => "queues",
            Table::Bindings => "bindings",
            Table::Policies => "policies",
            Table::Auth => "auth",
            Table::Messages => "messages",
            Table::Entries => "queue_entries",
        }
    }
}

/// Records read from a damaged database, by key, and the count of those that could not be.
#[derive(Debug, Default)]
pub(super) struct Found {
    /// Vhosts by name.
    pub(super) vhosts: BTreeMap<String, VhostRecord>,
    /// Exchanges by (vhost, name).
    pub(super) exchanges: BTreeMap<(String, String), ExchangeRecord>,
    /// Queues by (vhost, name).
    pub(super) queues: BTreeMap<(String, String), QueueRecord>,
    /// Bindings by their key.
    pub(super) bindings: BTreeMap<BindingKey, BindingRecord>,
    /// Policies by (vhost, name).
    pub(super) policies: BTreeMap<(String, String), PolicyRecord>,
    /// Rows of the `auth` table by (kind, name, name): users, permissions, the defaults
    /// mark.
    pub(super) auth: BTreeMap<(String, String, String), AuthRecord>,
    /// Messages by id.
    pub(super) messages: BTreeMap<u64, MessageRecord>,
    /// Queue entries by (vhost, queue, seq).
    pub(super) entries: BTreeMap<(String, String, u64), EntryRecord>,
    /// Records seen whose checksum or encoding failed, per table.
    pub(super) unreadable: SalvageCounts,
}

impl Found {
    /// Adds one row of `table` (its key parts as stored, its value bytes) if its checksum and
    /// encoding hold; counts it unreadable otherwise. With `only_new`, a key already found is
    /// left as it is (a row from a page scan never replaces one read through the tree).
    /// Returns `true` if the row was readable.
    pub(super) fn add(&mut self, row: Row<'_>, value: &[u8], only_new: bool) -> bool {
        let added = self.decode_into(row, value, only_new);
        if added.is_err() {
            *self.unreadable.of_row_mut(row) += 1;
        }
        added.is_ok()
    }

    /// Decodes a row into its map.
    fn decode_into(
        &mut self,
        row: Row<'_>,
        value: &[u8],
        only_new: bool,
    ) -> Result<(), StoreError> {
        match row {
            Row::Vhost(name) => {
                let r: VhostRecord = codec::decode(RecordKey::Vhost(name), value)?;
                put(&mut self.vhosts, name.to_owned(), r, only_new);
            }
            Row::Exchange(vhost, name) => {
                let r: ExchangeRecord = codec::decode(RecordKey::Exchange(vhost, name), value)?;
                put(
                    &mut self.exchanges,
                    (vhost.into(), name.into()),
                    r,
                    only_new,
                );
            }
            Row::Queue(vhost, name) => {
                let r: QueueRecord = codec::decode(RecordKey::Queue(vhost, name), value)?;
                put(&mut self.queues, (vhost.into(), name.into()), r, only_new);
            }
            Row::Binding(v, s, d, x, k, a) => {
                let r: BindingRecord = codec::decode(RecordKey::Binding(v, s, d, x, k, a), value)?;
                let key = (v.into(), s.into(), d.into(), x, k.into(), a.to_vec());
                put(&mut self.bindings, key, r, only_new);
            }
            Row::Policy(vhost, name) => {
                let r: PolicyRecord = codec::decode(RecordKey::Policy(vhost, name), value)?;
                put(&mut self.policies, (vhost.into(), name.into()), r, only_new);
            }
            Row::Auth(kind, first, second) => {
                let r: AuthRecord = codec::decode(RecordKey::Auth(kind, first, second), value)?;
                let key = (kind.into(), first.into(), second.into());
                put(&mut self.auth, key, r, only_new);
            }
            Row::Message(id) => {
                let r: MessageRecord = codec::decode(RecordKey::Message(id), value)?;
                put(&mut self.messages, id, r, only_new);
            }
            Row::Entry(vhost, queue, seq) => {
                let r: EntryRecord = codec::decode(RecordKey::Entry(vhost, queue, seq), value)?;
                let key = (vhost.to_owned(), queue.to_owned(), seq);
                match self.entries.get_mut(&key) {
                    // Two versions of one entry from a page scan: one was delivered, and the
                    // message comes back redelivered.
                    Some(old) if only_new => old.delivered |= r.delivered,
                    _ => {
                        self.entries.insert(key, r);
                    }
                }
            }
        }
        Ok(())
    }

    /// How many records of each table were found readable.
    pub(super) fn counts(&self) -> SalvageCounts {
        SalvageCounts {
            vhosts: self.vhosts.len() as u64,
            exchanges: self.exchanges.len() as u64,
            queues: self.queues.len() as u64,
            bindings: self.bindings.len() as u64,
            messages: self.messages.len() as u64,
            entries: self.entries.len() as u64,
            policies: self.policies.len() as u64,
            users: self.auth_rows(AUTH_USER),
            permissions: self.auth_rows(AUTH_PERMISSION),
        }
    }

    /// How many rows of one kind the `auth` records found hold.
    fn auth_rows(&self, kind: &str) -> u64 {
        self.auth.keys().filter(|(k, ..)| k == kind).count() as u64
    }
}

/// Inserts unless `only_new` and the key is there.
fn put<K: Ord, V>(map: &mut BTreeMap<K, V>, key: K, value: V, only_new: bool) {
    if only_new {
        map.entry(key).or_insert(value);
    } else {
        map.insert(key, value);
    }
}

/// The key of one row, borrowed from wherever it was read.
#[derive(Clone, Copy, Debug)]
pub(super) enum Row<'a> {
    /// A vhost.
    Vhost(&'a str),
    /// An exchange: vhost, name.
    Exchange(&'a str, &'a str),
    /// A queue: vhost, name.
    Queue(&'a str, &'a str),
    /// A binding: vhost, source, destination, destination is an exchange, key, arguments.
    Binding(&'a str, &'a str, &'a str, bool, &'a str, &'a [u8]),
    /// A policy: vhost, name.
    Policy(&'a str, &'a str),
    /// An `auth` row: kind (`user`, `permission`, `defaults`) and two names.
    Auth(&'a str, &'a str, &'a str),
    /// A message id.
    Message(u64),
    /// A queue entry: vhost, queue, seq.
    Entry(&'a str, &'a str, u64),
}
