//! The commit record: which commit a database is at, and what it held then.
//!
//! Every write transaction of the store ends by rewriting one record, under key `last` of
//! table `commit`: a sequence number that grows by one per commit, the database's random id,
//! whether the store was closed cleanly, and how many rows each data table held after the
//! commit. The same numbers go to the [witness](super::witness) file after each commit, and
//! are checked again when the records are read back:
//!
//! - a database whose commit record is older than its witness rolled back (redb fell back to
//!   an older commit, or an old copy of the file was put in place): refused, with what is
//!   missing;
//! - a table whose rows, read one by one, are fewer than its count lost rows that redb's own
//!   bookkeeping does not show: refused at load.

use std::fmt;

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::codec::{self, RecordKey};
use super::StoreError;

/// `"last"` → the encoded [`CommitRecord`].
pub(crate) const COMMIT: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("commit");
/// The one key of [`COMMIT`].
const LAST: &str = "last";

/// How many rows each data table holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Counts {
    /// Rows of `vhosts`.
    pub(crate) vhosts: u64,
    /// Rows of `exchanges`.
    pub(crate) exchanges: u64,
    /// Rows of `queues`.
    pub(crate) queues: u64,
    /// Rows of `bindings`.
    pub(crate) bindings: u64,
    /// Rows of `messages`.
    pub(crate) messages: u64,
    /// Rows of `queue_entries`.
    pub(crate) entries: u64,
}

impl Counts {
    /// The counts as (name, value) pairs, in a fixed order.
    fn named(&self) -> [(&'static str, u64); 6] {
        [
            ("vhosts", self.vhosts),
            ("exchanges", self.exchanges),
            ("queues", self.queues),
            ("bindings", self.bindings),
            ("messages", self.messages),
            ("queue entries", self.entries),
        ]
    }

    /// Describes every count of `self` that `found` falls short of, e.g. `"5000 messages
    /// (3914 found)"`; empty if none does.
    pub(crate) fn shortfall(&self, found: &Counts) -> String {
        let parts: Vec<String> = self
            .named()
            .iter()
            .zip(found.named())
            .filter(|((_, want), (_, got))| got != want)
            .map(|((name, want), (_, got))| format!("{want} {name} ({got} found)"))
            .collect();
        parts.join(", ")
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .named()
            .iter()
            .map(|(name, n)| format!("{n} {name}"))
            .collect();
        f.write_str(&parts.join(", "))
    }
}

/// The state of a database as of one commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CommitRecord {
    /// A random id given to the database when it was created (or migrated), so that a witness
    /// is never compared with another database.
    pub(crate) db_id: u64,
    /// The commit's number: 1 for the creating commit, one more for each commit after it.
    pub(crate) seq: u64,
    /// Set by the commit that closes the store cleanly, cleared by the first commit after open.
    pub(crate) clean: bool,
    /// The rows of each data table after the commit.
    pub(crate) counts: Counts,
}

impl CommitRecord {
    /// The record of a database just created (or migrated) with these counts.
    pub(crate) fn first(counts: Counts) -> Self {
        CommitRecord {
            db_id: rand::random(),
            seq: 1,
            clean: true,
            counts,
        }
    }

    /// The record of the commit after this one.
    pub(crate) fn next(&self, counts: Counts, clean: bool) -> Self {
        CommitRecord {
            db_id: self.db_id,
            seq: self.seq + 1,
            clean,
            counts,
        }
    }
}

/// Reads the commit record from a table of a read or write transaction.
///
/// # Errors
///
/// [`StoreError::Corrupt`] if it is missing or damaged.
pub(crate) fn read(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<CommitRecord, StoreError> {
    let value = table
        .get(LAST)?
        .ok_or_else(|| StoreError::corrupt("the commit record is missing"))?;
    codec::decode(RecordKey::Commit, value.value())
}

/// Writes the commit record inside `txn`.
pub(crate) fn write(txn: &WriteTransaction, record: &CommitRecord) -> Result<(), StoreError> {
    let value = codec::encode(RecordKey::Commit, record)?;
    txn.open_table(COMMIT)?.insert(LAST, &value[..])?;
    Ok(())
}
