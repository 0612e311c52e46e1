//! Migrating a format-1 database to format 2, in one write transaction at open.
//!
//! Format 1 had no checksums, no commit record and no witness; its binding keys held the
//! arguments with a version byte, and its reference counts were bare `u32`s. The migration
//! decodes every record as format 1 and writes it again as format 2, then writes the first
//! commit record (keeping format 1's clean-shutdown flag) and a new witness. The witness is
//! written before the commit: if the migration stops half-way the file is still format 1 and
//! is migrated again at the next open.

use std::path::Path;

use redb::{Database, ReadableTable, Table, TableDefinition, WriteTransaction};
use serde::de::DeserializeOwned;

use super::codec::{self, RecordKey};
use super::commit::{self, CommitRecord};
use super::open::FORMAT_VERSION;
use super::records::{
    BindingRecord, EntryRecord, ExchangeRecord, MessageRecord, QueueRecord, VhostRecord,
};
use super::tables::{
    self, binding_key, BINDINGS, CLEAN_SHUTDOWN_KEY, EXCHANGES, FORMAT_VERSION_KEY, MESSAGES,
    MESSAGE_REFS, META, QUEUES, QUEUE_ENTRIES, VHOSTS,
};
use super::witness::{Witness, WitnessState};
use super::StoreError;

/// Format 1's reference counts: message id → bare `u32`.
const MESSAGE_REFS_V1: TableDefinition<'_, u64, u32> = TableDefinition::new("message_refs");

/// Rewrites a format-1 database as format 2 and witnesses it; returns what the witness says.
pub(crate) fn from_v1(db: &Database, witness_path: &Path) -> Result<WitnessState, StoreError> {
    let txn = db.begin_write()?;
    let clean = {
        let meta = txn.open_table(META)?;
        let flag = meta.get(CLEAN_SHUTDOWN_KEY)?.map(|v| v.value());
        flag == Some(1)
    };
    rewrite_entities(&txn)?;
    rewrite_messages(&txn)?;
    rewrite_bindings(&txn)?;
    rewrite_refs(&txn)?;
    {
        let mut meta = txn.open_table(META)?;
        meta.insert(FORMAT_VERSION_KEY, FORMAT_VERSION)?;
        meta.remove(CLEAN_SHUTDOWN_KEY)?;
    }
    let counts = tables::apply_batch(&txn, &[])?;
    let first = CommitRecord {
        clean,
        ..CommitRecord::first(counts)
    };
    commit::write(&txn, &first)?;
    let witnessed = WitnessState::from(&first);
    Witness::create(witness_path, &witnessed)?;
    txn.commit()?;
    Ok(witnessed)
}

/// Re-encodes vhosts, exchanges and queues (their keys stay).
fn rewrite_entities(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut vhosts = txn.open_table(VHOSTS)?;
    let rows: Vec<(String, VhostRecord)> = collect(&vhosts, |k: &str| k.to_owned())?;
    for (name, record) in rows {
        vhosts.insert(
            &*name,
            &codec::encode(RecordKey::Vhost(&name), &record)?[..],
        )?;
    }
    for (table, queues) in [(EXCHANGES, false), (QUEUES, true)] {
        let mut table = txn.open_table(table)?;
        let owned = |k: (&str, &str)| (k.0.to_owned(), k.1.to_owned());
        if queues {
            let rows: Vec<(_, QueueRecord)> = collect(&table, owned)?;
            for ((v, n), r) in rows {
                table.insert(
                    (&*v, &*n),
                    &codec::encode(RecordKey::Queue(&v, &n), &r)?[..],
                )?;
            }
        } else {
            let rows: Vec<(_, ExchangeRecord)> = collect(&table, owned)?;
            for ((v, n), r) in rows {
                let value = codec::encode(RecordKey::Exchange(&v, &n), &r)?;
                table.insert((&*v, &*n), &value[..])?;
            }
        }
    }
    Ok(())
}

/// Re-encodes messages and queue entries (their keys stay).
fn rewrite_messages(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut messages = txn.open_table(MESSAGES)?;
    let rows: Vec<(u64, MessageRecord)> = collect(&messages, |id: u64| id)?;
    for (id, record) in rows {
        messages.insert(id, &codec::encode(RecordKey::Message(id), &record)?[..])?;
    }
    let mut entries = txn.open_table(QUEUE_ENTRIES)?;
    let owned = |k: (&str, &str, u64)| (k.0.to_owned(), k.1.to_owned(), k.2);
    let rows: Vec<(_, EntryRecord)> = collect(&entries, owned)?;
    for ((v, q, seq), record) in rows {
        let value = codec::encode(RecordKey::Entry(&v, &q, seq), &record)?;
        entries.insert((&*v, &*q, seq), &value[..])?;
    }
    Ok(())
}

/// Rebuilds the bindings table: format 2 keys hold the arguments without a version byte.
fn rewrite_bindings(txn: &WriteTransaction) -> Result<(), StoreError> {
    let records: Vec<BindingRecord> = {
        let table = txn.open_table(BINDINGS)?;
        collect(&table, |_| ())?
            .into_iter()
            .map(|((), r)| r)
            .collect()
    };
    txn.delete_table(BINDINGS)?;
    let mut table = txn.open_table(BINDINGS)?;
    for r in records {
        let arguments = codec::encode_key_part(&r.arguments)?;
        let value = codec::encode(binding_key(&r, &arguments), &r)?;
        let key = (
            &*r.vhost,
            &*r.source,
            &*r.destination,
            r.destination_is_exchange,
            &*r.routing_key,
            &arguments[..],
        );
        table.insert(key, &value[..])?;
    }
    Ok(())
}

/// Rebuilds the reference counts: format 2 packs each with a checksum into a `u64`.
fn rewrite_refs(txn: &WriteTransaction) -> Result<(), StoreError> {
    let counts: Vec<(u64, u32)> = {
        let table = txn.open_table(MESSAGE_REFS_V1)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (id, count) = row?;
            out.push((id.value(), count.value()));
        }
        out
    };
    txn.delete_table(MESSAGE_REFS_V1)?;
    let mut table = txn.open_table(MESSAGE_REFS)?;
    for (id, count) in counts {
        table.insert(id, codec::pack_refs(id, count))?;
    }
    Ok(())
}

/// Decodes every value of a table as a format-1 record, with its key made owned by `own`.
fn collect<K, O, T>(
    table: &Table<'_, K, &'static [u8]>,
    own: impl Fn(K::SelfType<'_>) -> O,
) -> Result<Vec<(O, T)>, StoreError>
where
    K: redb::Key + 'static,
    T: DeserializeOwned,
{
    let mut rows = Vec::new();
    for row in table.iter()? {
        let (k, v) = row?;
        rows.push((own(k.value()), codec::decode_v1(v.value())?));
    }
    Ok(rows)
}
