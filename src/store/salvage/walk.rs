//! Reading a damaged database through redb's own tree, table by table, as far as it goes.
//!
//! The walk runs on a copy of the file (redb repairs a file that was not closed cleanly when
//! it opens it, and salvage never writes to its source). Each table is walked on its own, so
//! a damaged page stops only the walk of its table; each row is checked against its record
//! checksum. A table is *complete* when its walk ended normally, every row was readable, and
//! it holds at least as many rows as the newest commit known (the commit record, or the
//! witness if that is newer) said it did.

use std::path::Path;

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition};

use super::super::commit::{self, Counts, COMMIT};
use super::super::tables::{
    AUTH, BINDINGS, EXCHANGES, MESSAGES, POLICIES, QUEUES, QUEUE_ENTRIES, VHOSTS,
};
use super::super::StoreError;
use super::found::{Found, Row, Table};
use super::SalvageCounts;

/// What the walk read besides the records.
#[derive(Debug, Default)]
pub(super) struct Walked {
    /// The commit record, if it was readable.
    pub(super) commit: Option<commit::CommitRecord>,
    /// The tables that were not read whole.
    pub(super) incomplete: Vec<Table>,
    /// What went wrong, in words.
    pub(super) notes: Vec<String>,
}

/// Walks the database file `copy` (a copy of the source, which redb may repair), adding
/// every readable row to `found`. `witnessed` is the witness's counts and commit number.
pub(super) fn walk(copy: &Path, witnessed: Option<(u64, Counts)>, found: &mut Found) -> Walked {
    let mut walked = Walked::default();
    let opened = StoreError::guard("opening the copy", || Ok(Database::open(copy)?));
    let db = match opened {
        Ok(db) => db,
        Err(e) => {
            walked.notes.push(format!(
                "redb could not open the database ({e}); every page was scanned"
            ));
            walked.incomplete = Table::ALL.to_vec();
            return walked;
        }
    };
    let txn = match StoreError::guard("reading", || Ok(db.begin_read()?)) {
        Ok(txn) => txn,
        Err(e) => {
            walked
                .notes
                .push(format!("no read transaction ({e}); every page was scanned"));
            walked.incomplete = Table::ALL.to_vec();
            return walked;
        }
    };
    walked.commit = StoreError::guard("reading the commit record", || {
        commit::read(&txn.open_table(COMMIT)?)
    })
    .map_err(|e| {
        walked
            .notes
            .push(format!("the commit record is unreadable: {e}"))
    })
    .ok();
    let mut expected = walked.commit.map(|c| (c.seq, c.counts));
    if let Some((seq, counts)) = witnessed {
        if expected.is_none_or(|(found_seq, _)| seq > found_seq) {
            if let Some((found_seq, _)) = expected {
                walked.notes.push(format!(
                    "the database opened at commit {found_seq}, but its witness records commit \
                     {seq}: tables short of the witness's counts were completed by a page scan"
                ));
            }
            expected = Some((seq, counts));
        }
    }
    for table in Table::ALL {
        let before = found.counts().of(table) + found.unreadable.of(table);
        let outcome = StoreError::guard("walking a table", || walk_table(&txn, table, found));
        let seen = found.counts().of(table) + found.unreadable.of(table) - before;
        let short = expected.map(|(_, counts)| SalvageCounts::from(counts).of(table));
        let problem = match outcome {
            Err(e) => Some(format!(
                "the walk of table {} stopped after {seen} rows: {e}",
                table.name()
            )),
            Ok(()) if found.unreadable.of(table) > 0 => Some(format!(
                "table {}: {} rows failed their checksum",
                table.name(),
                found.unreadable.of(table)
            )),
            Ok(()) => match short {
                Some(want) if seen < want => Some(format!(
                    "table {} has {seen} rows, the last commit counted {want}",
                    table.name()
                )),
                _ => None,
            },
        };
        if let Some(problem) = problem {
            walked.notes.push(problem);
            walked.incomplete.push(table);
        }
    }
    walked
}

/// Walks one table.
fn walk_table(txn: &ReadTransaction, table: Table, found: &mut Found) -> Result<(), StoreError> {
    match table {
        Table::Vhosts => rows(txn, VHOSTS, found, |f, k, v| f.add(Row::Vhost(k), v, false)),
        Table::Exchanges => rows(txn, EXCHANGES, found, |f, k, v| {
            f.add(Row::Exchange(k.0, k.1), v, false)
        }),
        Table::Queues => rows(txn, QUEUES, found, |f, k, v| {
            f.add(Row::Queue(k.0, k.1), v, false)
        }),
        Table::Bindings => rows(txn, BINDINGS, found, |f, k, v| {
            f.add(Row::Binding(k.0, k.1, k.2, k.3, k.4, k.5), v, false)
        }),
        Table::Policies => rows(txn, POLICIES, found, |f, k, v| {
            f.add(Row::Policy(k.0, k.1), v, false)
        }),
        Table::Auth => rows(txn, AUTH, found, |f, k, v| {
            f.add(Row::Auth(k.0, k.1, k.2), v, false)
        }),
        Table::Messages => rows(txn, MESSAGES, found, |f, k, v| {
            f.add(Row::Message(k), v, false)
        }),
        Table::Entries => rows(txn, QUEUE_ENTRIES, found, |f, k, v| {
            f.add(Row::Entry(k.0, k.1, k.2), v, false)
        }),
    }
}

/// Adds every row of one table to `found` with `add`; stops at the first error of the walk
/// itself.
fn rows<K: redb::Key + 'static>(
    txn: &ReadTransaction,
    definition: TableDefinition<'_, K, &'static [u8]>,
    found: &mut Found,
    add: impl for<'a> Fn(&mut Found, K::SelfType<'a>, &'a [u8]) -> bool,
) -> Result<(), StoreError> {
    let table = match txn.open_table(definition) {
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        other => other?,
    };
    for item in table.iter()? {
        let (key, value) = item?;
        add(found, key.value(), value.value());
    }
    Ok(())
}
