//! [`RedbStore`]: the [`Store`] kept in one redb database file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use redb::{Database, ReadableDatabase};

use super::codec::{self, RecordKey};
use super::durable::Durable;
use super::op::StoreOp;
use super::open::{self, StoreOptions};
use super::records::{MessageId, MessageRecord};
use super::recovery::{self, RecoveredState};
use super::tables::EncodedOp;
use super::tables::MESSAGES;
use super::writer::{Reopen, Slot, Writer};
use super::{LostListener, Store, StoreError};

/// The page cache redb may use unless told otherwise: enough to keep the hot pages of a
/// busy store, far below redb's own default of 1 GiB, which a message bus embedded in an
/// application should not claim by default.
pub(crate) const DEFAULT_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// A [`Store`] in a redb file, written by a group-commit [`Writer`].
///
/// # Close semantics
///
/// [`Store::close`] (or dropping the store) writes everything already submitted, marks the
/// file cleanly shut down and releases it. Without a clean shutdown (a crash, a kill) every
/// write whose ticket reported durable is still there, and every recovered message comes back
/// as redelivered, since its delivery may not have been recorded.
pub(crate) struct RedbStore {
    /// The file, for messages.
    path: PathBuf,
    /// The database, shared with the writer thread; `None` once closed, so that closing
    /// releases the file (and its lock) even while this handle lives on.
    db: Slot,
    /// The group-commit writer.
    writer: Writer,
    /// The next message id to hand out.
    next_message_id: AtomicU64,
    /// Whether the previous session ended with a clean shutdown.
    was_clean: bool,
    /// Whether redb repaired the file at open.
    repaired: bool,
    /// Set by [`Store::close`].
    closed: AtomicBool,
}

impl RedbStore {
    /// Opens the database at `path` with default options, creating it if the file is missing.
    ///
    /// # Errors
    ///
    /// See [`open_with`](Self::open_with).
    #[cfg(test)]
    pub(crate) fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(
            path,
            StoreOptions {
                cache_bytes: DEFAULT_CACHE_BYTES,
                allow_rollback: false,
            },
        )
    }

    /// Opens the database at `path`, creating it if the file is missing (see `open.rs` for
    /// every case).
    ///
    /// # Errors
    ///
    /// [`StoreError::Locked`] if it is already open, [`StoreError::UnsupportedFormat`] if it was
    /// written by a newer format, [`StoreError::Corrupt`] if it is not a (complete) warrenmq
    /// database, [`StoreError::RolledBack`] if it is behind its witness (unless
    /// `allow_rollback`), [`StoreError::Io`] for file-system errors. A refused file is left
    /// unchanged; nothing is ever reset.
    pub(crate) fn open_with(
        path: impl AsRef<Path>,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let opened = StoreError::guard("opening the database", || open::open(&path, &options))?;
        let db = Arc::new(opened.db);
        let slot: Slot = Arc::new(RwLock::new(Some(Arc::clone(&db))));
        let reopen = Reopen {
            slot: Arc::clone(&slot),
            path: path.clone(),
            options,
        };
        let writer = Writer::start(db, opened.commit, opened.witness, reopen)?;
        Ok(RedbStore {
            path,
            db: slot,
            writer,
            next_message_id: AtomicU64::new(opened.next_id),
            was_clean: opened.was_clean,
            repaired: opened.repaired,
            closed: AtomicBool::new(false),
        })
    }

    /// Returns the database, or [`StoreError::Closed`].
    fn database(&self) -> Result<Arc<Database>, StoreError> {
        self.db.read().clone().ok_or(StoreError::Closed)
    }

    /// Returns `true` if redb had to repair the file at open (it was not closed cleanly).
    #[cfg_attr(not(test), allow(dead_code, reason = "used by the store's tests"))]
    pub(crate) fn was_repaired(&self) -> bool {
        self.repaired
    }

    /// Returns how many transactions the writer has committed since open.
    #[cfg_attr(not(test), allow(dead_code, reason = "used by the store's tests"))]
    pub(crate) fn commit_count(&self) -> u64 {
        self.writer.stats().commits.load(Ordering::Relaxed)
    }
}

impl Store for RedbStore {
    fn submit(&self, op: StoreOp) -> Durable {
        if self.closed.load(Ordering::Acquire) {
            return Durable::failed(StoreError::Closed);
        }
        match EncodedOp::new(op) {
            Ok(op) => self.writer.submit(op),
            Err(e) => Durable::failed(e),
        }
    }

    fn submit_untracked(&self, op: StoreOp) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        if let Ok(op) = EncodedOp::new(op) {
            self.writer.submit_untracked(op);
        }
    }

    fn next_message_id(&self) -> MessageId {
        MessageId(self.next_message_id.fetch_add(1, Ordering::Relaxed))
    }

    fn is_persistent(&self) -> bool {
        true
    }

    fn load(&self) -> Result<RecoveredState, StoreError> {
        StoreError::guard("reading the database", || {
            recovery::load(&*self.database()?, self.was_clean)
        })
    }

    fn read_messages(&self, ids: &[MessageId]) -> Result<Vec<Option<MessageRecord>>, StoreError> {
        StoreError::guard("reading messages", || {
            let txn = self.database()?.begin_read()?;
            let table = txn.open_table(MESSAGES)?;
            ids.iter()
                .map(|id| match table.get(id.0)? {
                    Some(v) => Ok(Some(codec::decode(RecordKey::Message(id.0), v.value())?)),
                    None => Ok(None),
                })
                .collect()
        })
    }

    fn barrier(&self) -> Durable {
        self.writer.barrier()
    }

    fn close(&self) -> Result<(), StoreError> {
        self.closed.store(true, Ordering::Release);
        let result = self.writer.close();
        // The writer thread has let go of the database; closing it here (rather than letting
        // it drop) reports redb's own errors, and leaves the file needing no repair.
        let closed = match self.db.write().take().map(Arc::try_unwrap) {
            Some(Ok(db)) => StoreError::guard("closing the database", || Ok(db.close()?)),
            _ => Ok(()),
        };
        result.and(closed)
    }

    fn crash(&self) -> Result<(), StoreError> {
        self.closed.store(true, Ordering::Release);
        let result = self.writer.crash();
        // Dropped, not closed: redb's own close is part of a clean shutdown.
        drop(self.db.write().take());
        result
    }

    fn on_lost(&self, listener: LostListener) {
        self.writer.on_lost(listener);
    }

    fn fail_writes(&self, fail: bool) -> bool {
        self.writer.fail_writes(fail);
        true
    }

    fn begin_group(&self) -> bool {
        !self.closed.load(Ordering::Acquire) && self.writer.begin_group()
    }

    fn end_group(&self) -> Durable {
        self.writer.end_group()
    }
}

impl fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::thread;

    use bytes::Bytes;
    use redb::{ReadableDatabase, ReadableTableMetadata, TableDefinition};

    use super::*;
    use crate::store::open::FORMAT_VERSION;
    use crate::store::records::{
        BindingRecord, ExchangeRecord, MessageRecord, QueueKey, QueueRecord, VhostRecord,
    };
    use crate::store::tables::{
        self, FORMAT_VERSION_KEY, MESSAGES, MESSAGE_REFS, META, QUEUE_ENTRIES,
    };
    use crate::{FieldTable, Properties};

    /// A temporary directory and the database path in it.
    fn temp() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("warren.redb");
        (dir, path)
    }

    /// A persistent message with the given body.
    fn message(body: &str) -> MessageRecord {
        MessageRecord {
            exchange: "sorting_room".into(),
            routing_key: "jason".into(),
            properties: Properties::default(),
            body: Bytes::copy_from_slice(body.as_bytes()),
            expires_at_ms: None,
        }
    }

    /// A durable queue record.
    fn queue(name: &str) -> QueueRecord {
        QueueRecord {
            vhost: "/".into(),
            name: name.into(),
            durable: true,
            auto_delete: false,
            exclusive: false,
            arguments: FieldTable::new(),
        }
    }

    /// Declares a queue and waits for it.
    fn declare(store: &RedbStore, name: &str) -> QueueKey {
        let record = queue(name);
        let key = record.key();
        store.submit(StoreOp::PutQueue(record)).wait().unwrap();
        key
    }

    /// Enqueues `body` at `seq` of each queue, returning the ticket.
    fn enqueue(store: &RedbStore, body: &str, at: &[(&QueueKey, u64)]) -> Durable {
        let entries = at.iter().map(|(q, seq)| q.entry(*seq)).collect();
        let id = store.next_message_id();
        store.submit(StoreOp::Enqueue {
            id,
            message: message(body),
            entries,
        })
    }

    /// Bodies of a recovered queue, in order.
    fn bodies(state: &RecoveredState, name: &str) -> Vec<Bytes> {
        let q = state.queues.iter().find(|q| q.record.name == name).unwrap();
        q.messages.iter().map(|m| m.message.body.clone()).collect()
    }

    /// Number of rows of a table, read through the store's own handle.
    fn rows<K: redb::Key + 'static, V: redb::Value + 'static>(
        store: &RedbStore,
        table: TableDefinition<'_, K, V>,
    ) -> u64 {
        store
            .database()
            .unwrap()
            .begin_read()
            .unwrap()
            .open_table(table)
            .unwrap()
            .len()
            .unwrap()
    }

    #[test]
    fn entities_survive_a_restart() {
        let (_dir, path) = temp();
        let exchange = ExchangeRecord {
            vhost: "/".into(),
            name: "sorting_room".into(),
            kind: "direct".into(),
            durable: true,
            auto_delete: false,
            internal: false,
            arguments: FieldTable::new().with("alternate-exchange", "ae"),
        };
        let binding = |args: FieldTable| BindingRecord {
            vhost: "/".into(),
            source: "sorting_room".into(),
            destination: "po_box".into(),
            destination_is_exchange: false,
            routing_key: "jason".into(),
            arguments: args,
        };
        let any = binding(FieldTable::new().with("x-match", "any"));
        let all = binding(FieldTable::new().with("x-match", "all"));
        {
            let store = RedbStore::open(&path).unwrap();
            store
                .submit(StoreOp::PutVhost(VhostRecord { name: "/".into() }))
                .wait()
                .unwrap();
            store
                .submit(StoreOp::PutExchange(exchange.clone()))
                .wait()
                .unwrap();
            declare(&store, "po_box");
            store
                .submit(StoreOp::PutBinding(any.clone()))
                .wait()
                .unwrap();
            store
                .submit(StoreOp::PutBinding(all.clone()))
                .wait()
                .unwrap();
            store.close().unwrap();
        }
        let store = RedbStore::open(&path).unwrap();
        let state = store.load_all().unwrap();
        assert!(state.clean_shutdown);
        assert_eq!(state.vhosts, vec![VhostRecord { name: "/".into() }]);
        assert_eq!(state.exchanges, vec![exchange]);
        assert_eq!(state.queues.len(), 1);
        assert_eq!(state.queues[0].record, queue("po_box"));
        assert_eq!(state.bindings.len(), 2);
        assert!(state.bindings.contains(&any) && state.bindings.contains(&all));

        store.submit(StoreOp::DeleteBinding(any)).wait().unwrap();
        assert_eq!(store.load_all().unwrap().bindings, vec![all]);
        let _ = store.submit(StoreOp::DeleteExchange {
            vhost: "/".into(),
            name: "sorting_room".into(),
        });
        store
            .submit(StoreOp::DeleteVhost { vhost: "/".into() })
            .wait()
            .unwrap();
        let state = store.load_all().unwrap();
        assert!(state.exchanges.is_empty() && state.bindings.is_empty());
        assert!(state.vhosts.is_empty() && state.queues.is_empty());
    }

    #[test]
    fn restart_keeps_order_and_delivered_flags() {
        let (_dir, path) = temp();
        {
            let store = RedbStore::open(&path).unwrap();
            let q = declare(&store, "po_box");
            for seq in 0..10 {
                let _ = enqueue(&store, &format!("m{seq}"), &[(&q, seq)]);
            }
            let _ = store.submit(StoreOp::MarkDelivered(q.entry(2)));
            let _ = store.submit(StoreOp::MarkDelivered(q.entry(5)));
            let _ = store.submit(StoreOp::MarkDelivered(q.entry(3)));
            let _ = store.submit(StoreOp::Remove(q.entry(3)));
            store
                .submit(StoreOp::RemoveAll(vec![q.entry(8), q.entry(42)]))
                .wait()
                .unwrap();
            // Dropped without `close`: drop is an orderly close too.
        }
        let store = RedbStore::open(&path).unwrap();
        let state = store.load_all().unwrap();
        assert!(state.clean_shutdown);
        let q = &state.queues[0];
        let seqs: Vec<u64> = q.messages.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [0, 1, 2, 4, 5, 6, 7, 9]);
        let redelivered: Vec<u64> = q
            .messages
            .iter()
            .filter(|m| m.redelivered)
            .map(|m| m.seq)
            .collect();
        assert_eq!(redelivered, [2, 5]);
        assert_eq!(q.messages[3].message.body, "m4");
        assert_eq!(q.next_seq(), 10);
        // Ids continue after the largest stored one.
        assert!(store.next_message_id().0 > q.messages[7].id.0);
    }

    #[test]
    fn a_message_in_three_queues_is_stored_once() {
        let (_dir, path) = temp();
        let store = RedbStore::open(&path).unwrap();
        let qs: Vec<QueueKey> = ["a", "b", "c"].iter().map(|n| declare(&store, n)).collect();
        enqueue(&store, "shared", &[(&qs[0], 0), (&qs[1], 0), (&qs[2], 7)])
            .wait()
            .unwrap();
        assert_eq!(rows(&store, MESSAGES), 1);
        assert_eq!(rows(&store, QUEUE_ENTRIES), 3);
        let state = store.load_all().unwrap();
        let shared: Vec<_> = state
            .queues
            .iter()
            .map(|q| q.messages[0].message.clone())
            .collect();
        assert!(
            Arc::ptr_eq(&shared[0], &shared[2]),
            "recovery shares one decoded message"
        );

        store
            .submit(StoreOp::Remove(qs[0].entry(0)))
            .wait()
            .unwrap();
        store
            .submit(StoreOp::Remove(qs[0].entry(0)))
            .wait()
            .unwrap(); // twice: no effect
        store
            .submit(StoreOp::DeleteQueue(qs[1].clone()))
            .wait()
            .unwrap();
        assert_eq!(rows(&store, MESSAGES), 1);
        assert_eq!(store.load_all().unwrap().queues.len(), 2);
        store
            .submit(StoreOp::Remove(qs[2].entry(7)))
            .wait()
            .unwrap();
        assert_eq!(rows(&store, MESSAGES), 0);
        assert_eq!(rows(&store, MESSAGE_REFS), 0);
    }

    #[test]
    fn entries_enqueued_and_removed_in_one_batch_are_never_written() {
        let (_dir, path) = temp();
        let db = redb::Database::create(&path).unwrap();
        let (a, b) = (queue("a"), queue("b"));
        let (ka, kb) = (a.key(), b.key());
        let put = |op| tables::EncodedOp::new(op).unwrap();
        let stored = |id: u64, body: &str, entries: Vec<crate::store::EntryKey>| {
            put(StoreOp::Enqueue {
                id: crate::store::MessageId(id),
                message: message(body),
                entries,
            })
        };
        let ops = vec![
            put(StoreOp::PutQueue(a)),
            put(StoreOp::PutQueue(b)),
            // Acked in the same batch: never written.
            stored(1, "gone", vec![ka.entry(0)]),
            // In two queues, acked in one: stored once, held by the other entry only.
            stored(2, "half", vec![ka.entry(1), kb.entry(0)]),
            // Removed before it was enqueued (position reuse): the removal does not cancel it.
            put(StoreOp::Remove(ka.entry(2))),
            stored(3, "kept", vec![ka.entry(2)]),
            // A delivery mark of an entry acked later in the batch is skipped.
            put(StoreOp::MarkDelivered(kb.entry(0))),
            put(StoreOp::RemoveAll(vec![ka.entry(0), ka.entry(1)])),
            put(StoreOp::MarkDelivered(ka.entry(2))),
        ];
        let txn = db.begin_write().unwrap();
        let counts = tables::apply_batch(&txn, &ops).unwrap();
        txn.commit().unwrap();
        assert_eq!((counts.messages, counts.entries), (2, 2));
        let read = db.begin_read().unwrap();
        let messages = read.open_table(MESSAGES).unwrap();
        assert!(
            messages.get(1).unwrap().is_none(),
            "acked in the batch: not stored"
        );
        assert!(messages.get(2).unwrap().is_some() && messages.get(3).unwrap().is_some());
        assert_eq!(read.open_table(MESSAGE_REFS).unwrap().len().unwrap(), 0);
        let entries = read.open_table(QUEUE_ENTRIES).unwrap();
        let entry = |k: &QueueKey, seq: u64| {
            entries
                .get((&*k.vhost, &*k.name, seq))
                .unwrap()
                .map(|v| v.value().to_vec())
        };
        assert!(entry(&ka, 0).is_none() && entry(&ka, 1).is_none());
        let delivered = |k: &QueueKey, seq: u64| {
            let key = crate::store::codec::RecordKey::Entry(&k.vhost, &k.name, seq);
            let value = entry(k, seq).expect("entry kept");
            crate::store::codec::decode::<crate::store::records::EntryRecord>(key, &value)
                .unwrap()
                .delivered
        };
        assert!(
            delivered(&kb, 0),
            "a mark of an entry nothing removes is written"
        );
        assert!(delivered(&ka, 2));
    }

    #[test]
    fn entries_of_missing_queues_are_not_written() {
        let (_dir, path) = temp();
        let store = RedbStore::open(&path).unwrap();
        let q = declare(&store, "q");
        let gone = QueueKey::new("/", "gone");
        enqueue(&store, "to nowhere", &[(&gone, 0)]).wait().unwrap();
        assert_eq!(rows(&store, MESSAGES), 0);
        enqueue(&store, "m", &[(&q, 0), (&gone, 0)]).wait().unwrap();
        // The same position again replaces the entry and releases the old message.
        enqueue(&store, "n", &[(&q, 0)]).wait().unwrap();
        assert_eq!(rows(&store, MESSAGES), 1);
        assert_eq!(bodies(&store.load_all().unwrap(), "q"), ["n"]);
    }

    #[test]
    fn purge_releases_messages_and_keeps_the_queue() {
        let (_dir, path) = temp();
        let store = RedbStore::open(&path).unwrap();
        let (a, b) = (declare(&store, "a"), declare(&store, "b"));
        for seq in 0..5 {
            let _ = enqueue(&store, "x", &[(&a, seq), (&b, seq)]);
        }
        store.submit(StoreOp::PurgeQueue(a.clone())).wait().unwrap();
        assert_eq!(rows(&store, MESSAGES), 5);
        store.submit(StoreOp::PurgeQueue(b)).wait().unwrap();
        assert_eq!(rows(&store, MESSAGES), 0);
        let state = store.load_all().unwrap();
        assert_eq!(state.queues.len(), 2);
        assert!(bodies(&state, "a").is_empty());
    }

    #[test]
    fn concurrent_submitters_share_commits() {
        const THREADS: usize = 8;
        const PER_THREAD: usize = if cfg!(debug_assertions) { 250 } else { 2_500 };
        let (_dir, path) = temp();
        let store = Arc::new(RedbStore::open(&path).unwrap());
        let q = declare(&store, "q");
        let before = store.commit_count();
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (store, q) = (store.clone(), q.clone());
                thread::spawn(move || {
                    for i in 0..PER_THREAD {
                        let seq = (t * PER_THREAD + i) as u64;
                        let ticket = enqueue(&store, "m", &[(&q, seq)]);
                        // Confirm-style publishers wait now and then; others never do.
                        if i % 50 == 49 {
                            ticket.wait().unwrap();
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
        let _ = store.submit(StoreOp::PurgeQueue(q.clone()));
        let last = enqueue(&store, "last", &[(&q, u64::MAX)]);
        last.wait().unwrap();
        let ops = (THREADS * PER_THREAD + 2) as u64;
        let commits = store.commit_count() - before;
        assert!(commits * 10 <= ops, "{commits} commits for {ops} ops");
        assert_eq!(bodies(&store.load_all().unwrap(), "q"), ["last"]);
    }

    #[test]
    fn callbacks_run_after_the_commit() {
        let (_dir, path) = temp();
        let store = RedbStore::open(&path).unwrap();
        let q = declare(&store, "q");
        let (tx, rx) = crossbeam_channel::unbounded();
        enqueue(&store, "m", &[(&q, 0)]).on_finished(move |r| tx.send(r).unwrap());
        assert!(rx.recv().unwrap().is_ok());
        assert_eq!(rows(&store, MESSAGES), 1);
    }

    #[test]
    fn a_failed_batch_reaches_its_waiters() {
        let (_dir, path) = temp();
        let store = RedbStore::open(&path).unwrap();
        let q = declare(&store, "q");
        let txn = store.database().unwrap().begin_write().unwrap();
        txn.open_table(QUEUE_ENTRIES)
            .unwrap()
            .insert(("/", "q", 0), &b"\x01\xff"[..])
            .unwrap();
        txn.commit().unwrap();
        let err = store
            .submit(StoreOp::Remove(q.entry(0)))
            .wait()
            .unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        // The store goes on with later writes.
        enqueue(&store, "m", &[(&q, 1)]).wait().unwrap();
        assert!(matches!(store.load_all(), Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn closed_store_refuses_writes() {
        let (_dir, path) = temp();
        let store = RedbStore::open(&path).unwrap();
        store.close().unwrap();
        store.close().unwrap();
        let err = store
            .submit(StoreOp::PutQueue(queue("q")))
            .wait()
            .unwrap_err();
        assert!(matches!(err, StoreError::Closed));
    }

    #[test]
    fn opening_twice_is_locked() {
        let (_dir, path) = temp();
        let _store = RedbStore::open(&path).unwrap();
        assert!(matches!(RedbStore::open(&path), Err(StoreError::Locked)));
    }

    #[test]
    fn newer_format_version_is_refused() {
        let (_dir, path) = temp();
        RedbStore::open(&path).unwrap().close().unwrap();
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert(FORMAT_VERSION_KEY, FORMAT_VERSION + 1)
                .unwrap();
            txn.commit().unwrap();
        }
        let err = RedbStore::open(&path).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::UnsupportedFormat {
                    found: 5,
                    supported: 4
                }
            ),
            "{err}"
        );
        // The refused file is left as it was.
        let db = Database::create(&path).unwrap();
        let meta = db.begin_read().unwrap().open_table(META).unwrap();
        assert_eq!(meta.get(FORMAT_VERSION_KEY).unwrap().unwrap().value(), 5);
    }

    #[test]
    fn a_format_2_database_is_upgraded_and_keeps_policies_and_users_afterwards() {
        upgraded_from(2);
    }

    #[test]
    fn a_format_3_database_is_upgraded_and_keeps_policies_and_users_afterwards() {
        upgraded_from(3);
    }

    /// Makes a database what format `old` wrote (format 2: no policies and no auth table;
    /// format 3: no auth table), opens it, and checks that policies and users written
    /// afterwards survive a reopen and that the file says format 4.
    fn upgraded_from(old: u64) {
        let (_dir, path) = temp();
        {
            let store = RedbStore::open(&path).unwrap();
            store.submit(StoreOp::PutQueue(queue("q"))).wait().unwrap();
            store.close().unwrap();
        }
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert(FORMAT_VERSION_KEY, old)
                .unwrap();
            if old < 3 {
                assert!(txn.delete_table(tables::POLICIES).unwrap());
            }
            assert!(txn.delete_table(tables::AUTH).unwrap());
            txn.commit().unwrap();
        }
        let store = RedbStore::open(&path).unwrap();
        let state = store.load().unwrap();
        assert_eq!(state.queues.len(), 1);
        assert!(state.policies.is_empty());
        assert!(state.auth.is_empty());
        let policy = crate::store::PolicyRecord {
            vhost: "/".into(),
            name: "p".into(),
            pattern: "^q$".into(),
            apply_to: "queues".into(),
            priority: 2,
            definition: FieldTable::new().with("max-length", 3),
        };
        let user = crate::store::AuthRecord::User(crate::store::UserRecord {
            name: "u".into(),
            password_hash: Some("aGFzaA==".into()),
            hashing_algorithm: "rabbit_password_hashing_sha256".into(),
            tags: vec!["management".into()],
        });
        store
            .submit(StoreOp::PutPolicy(policy.clone()))
            .wait()
            .unwrap();
        store.submit(StoreOp::PutAuth(user.clone())).wait().unwrap();
        store.close().unwrap();
        drop(store);
        let store = RedbStore::open(&path).unwrap();
        let state = store.load().unwrap();
        assert_eq!(state.policies, vec![policy]);
        assert_eq!(state.auth, vec![user]);
        let db_version = {
            store.close().unwrap();
            drop(store);
            let db = Database::create(&path).unwrap();
            let meta = db.begin_read().unwrap().open_table(META).unwrap();
            meta.get(FORMAT_VERSION_KEY).unwrap().unwrap().value()
        };
        assert_eq!(db_version, FORMAT_VERSION);
        assert_eq!(FORMAT_VERSION, 4);
    }

    #[test]
    fn a_newer_record_version_is_refused_at_load() {
        let (_dir, path) = temp();
        let store = RedbStore::open(&path).unwrap();
        declare(&store, "q");
        let txn = store.database().unwrap().begin_write().unwrap();
        txn.open_table(tables::QUEUES)
            .unwrap()
            .insert(("/", "q"), &b"\x07rest"[..])
            .unwrap();
        txn.commit().unwrap();
        assert!(matches!(
            store.load_all(),
            Err(StoreError::UnsupportedFormat { found: 7, .. })
        ));
    }

    /// Options with `allow_rollback` set.
    fn rollback_allowed() -> StoreOptions {
        StoreOptions {
            cache_bytes: DEFAULT_CACHE_BYTES,
            allow_rollback: true,
        }
    }

    #[test]
    fn empty_short_and_foreign_files_are_refused_untouched() {
        let (_dir, path) = temp();
        for (bytes, says) in [
            (&b""[..], "is empty (0 bytes)"),
            (
                &b"redb\x1a\x0a\xa9\x0d\x0a"[..],
                "shorter than a database header",
            ),
            (&[b'x'; 4096][..], "not a redb database"),
        ] {
            std::fs::write(&path, bytes).unwrap();
            let err = RedbStore::open(&path).unwrap_err();
            assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
            assert!(err.to_string().contains(says), "{err}");
            assert_eq!(std::fs::read(&path).unwrap(), bytes);
        }
        // Even the override does not turn an empty file into a new database.
        std::fs::write(&path, b"").unwrap();
        assert!(RedbStore::open_with(&path, rollback_allowed()).is_err());
    }

    #[test]
    fn a_new_database_is_never_left_empty_at_its_path() {
        let (dir, path) = temp();
        // A creation that stopped half-way leaves only the staging file, which is redone.
        std::fs::write(dir.path().join("warren.redb.new"), b"half").unwrap();
        let store = RedbStore::open(&path).unwrap();
        declare(&store, "q");
        store.close().unwrap();
        assert!(!dir.path().join("warren.redb.new").exists());
        assert_eq!(
            RedbStore::open(&path)
                .unwrap()
                .load_all()
                .unwrap()
                .queues
                .len(),
            1
        );
    }

    #[test]
    fn an_older_copy_of_the_file_is_refused_naming_what_is_missing() {
        let (dir, path) = temp();
        let old = dir.path().join("old.redb");
        {
            let store = RedbStore::open(&path).unwrap();
            let q = declare(&store, "q");
            enqueue(&store, "first", &[(&q, 0)]).wait().unwrap();
            store.close().unwrap();
            std::fs::copy(&path, &old).unwrap();
            let store = RedbStore::open(&path).unwrap();
            for seq in 1..=3 {
                enqueue(&store, "later", &[(&q, seq)]).wait().unwrap();
            }
            store.close().unwrap();
        }
        std::fs::copy(&old, &path).unwrap();
        let err = RedbStore::open(&path).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, StoreError::RolledBack { .. }), "{text}");
        assert!(text.contains("commits are missing"), "{text}");
        assert!(
            text.contains("4 messages (1 found), 4 queue entries (1 found)"),
            "{text}"
        );
        assert!(text.contains("--allow-rollback"), "{text}");
        // The operator's override opens it, and from then on its witness follows it.
        let store = RedbStore::open_with(&path, rollback_allowed()).unwrap();
        assert_eq!(bodies(&store.load_all().unwrap(), "q"), ["first"]);
        store.close().unwrap();
        RedbStore::open(&path).unwrap().close().unwrap();
    }

    #[test]
    fn a_missing_or_foreign_witness_is_refused() {
        let (dir, path) = temp();
        let witness = crate::store::witness::path_for(&path);
        RedbStore::open(&path).unwrap().close().unwrap();
        std::fs::remove_file(&witness).unwrap();
        let err = RedbStore::open(&path).unwrap_err();
        assert!(err.to_string().contains("has no witness file"), "{err}");
        // Another database's witness.
        let other = dir.path().join("other.redb");
        RedbStore::open(&other).unwrap().close().unwrap();
        std::fs::copy(crate::store::witness::path_for(&other), &witness).unwrap();
        let err = RedbStore::open(&path).unwrap_err();
        assert!(
            err.to_string().contains("belongs to another database"),
            "{err}"
        );
        // A deleted database whose witness saw commits is not silently recreated empty.
        let store = RedbStore::open(&other).unwrap();
        declare(&store, "q");
        store.close().unwrap();
        std::fs::remove_file(&other).unwrap();
        let err = RedbStore::open(&other).unwrap_err();
        assert!(
            err.to_string().contains("is missing, but its witness"),
            "{err}"
        );
        assert!(err.to_string().contains("1 queues"), "{err}");
        let store = RedbStore::open_with(&other, rollback_allowed()).unwrap();
        assert!(store.load_all().unwrap().queues.is_empty());
    }

    #[test]
    fn rows_lost_behind_the_commit_record_are_found_at_load() {
        let (_dir, path) = temp();
        let store = RedbStore::open(&path).unwrap();
        let q = declare(&store, "q");
        for seq in 0..5 {
            enqueue(&store, "m", &[(&q, seq)]).wait().unwrap();
        }
        // Rows vanish without a commit of the store (as a damaged page would lose them).
        let txn = store.database().unwrap().begin_write().unwrap();
        txn.open_table(QUEUE_ENTRIES)
            .unwrap()
            .remove(("/", "q", 2))
            .unwrap();
        txn.commit().unwrap();
        let err = store.load_all().unwrap_err();
        assert!(
            err.to_string().contains("5 queue entries (4 found)"),
            "{err}"
        );
    }

    #[test]
    fn a_format_1_database_is_migrated() {
        let (_dir, path) = temp();
        let v1 = |record: &dyn erased::Encode| {
            let mut bytes = vec![1u8];
            bytes.extend(record.encode());
            bytes
        };
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut meta = txn.open_table(META).unwrap();
                meta.insert(FORMAT_VERSION_KEY, 1).unwrap();
                meta.insert(tables::CLEAN_SHUTDOWN_KEY, 0).unwrap();
                let mut vhosts = txn.open_table(tables::VHOSTS).unwrap();
                vhosts
                    .insert("/", &v1(&VhostRecord { name: "/".into() })[..])
                    .unwrap();
                let mut queues = txn.open_table(tables::QUEUES).unwrap();
                queues.insert(("/", "q"), &v1(&queue("q"))[..]).unwrap();
                let binding = BindingRecord {
                    vhost: "/".into(),
                    source: "amq.direct".into(),
                    destination: "q".into(),
                    destination_is_exchange: false,
                    routing_key: "k".into(),
                    arguments: crate::FieldTable::new().with("x", 1),
                };
                let args = v1(&binding.arguments);
                let mut bindings = txn.open_table(tables::BINDINGS).unwrap();
                bindings
                    .insert(
                        ("/", "amq.direct", "q", false, "k", &args[..]),
                        &v1(&binding)[..],
                    )
                    .unwrap();
                let mut messages = txn.open_table(MESSAGES).unwrap();
                messages.insert(5, &v1(&message("old"))[..]).unwrap();
                let refs: TableDefinition<'_, u64, u32> = TableDefinition::new("message_refs");
                txn.open_table(refs).unwrap().insert(5, 1).unwrap();
                let entry = crate::store::records::EntryRecord {
                    message_id: MessageId(5),
                    delivered: true,
                };
                let mut entries = txn.open_table(QUEUE_ENTRIES).unwrap();
                entries.insert(("/", "q", 3), &v1(&entry)[..]).unwrap();
            }
            txn.commit().unwrap();
        }
        let store = RedbStore::open(&path).unwrap();
        let state = store.load_all().unwrap();
        assert!(!state.clean_shutdown);
        assert_eq!(bodies(&state, "q"), ["old"]);
        assert_eq!(state.queues[0].messages[0].seq, 3);
        assert_eq!(state.bindings.len(), 1);
        assert_eq!(
            state.bindings[0].arguments,
            crate::FieldTable::new().with("x", 1)
        );
        // The migrated store works on: the ack releases the message through its new count.
        store
            .submit(StoreOp::Remove(QueueKey::new("/", "q").entry(3)))
            .wait()
            .unwrap();
        assert_eq!(rows(&store, MESSAGES), 0);
        store.close().unwrap();
        let store = RedbStore::open(&path).unwrap();
        assert!(store.load_all().unwrap().clean_shutdown);
    }

    /// Format-1 encoding of any record, for the migration test.
    mod erased {
        /// A record that can be bincode-encoded.
        pub(super) trait Encode {
            /// The bincode bytes.
            fn encode(&self) -> Vec<u8>;
        }

        impl<T: serde::Serialize> Encode for T {
            fn encode(&self) -> Vec<u8> {
                bincode::serde::encode_to_vec(self, bincode::config::standard()).unwrap()
            }
        }
    }

    #[test]
    fn damaged_files_are_errors_not_panics() {
        let (dir, path) = temp();
        {
            let store = RedbStore::open(&path).unwrap();
            let q = declare(&store, "q");
            for seq in 0..200 {
                let _ = enqueue(&store, &"x".repeat(500), &[(&q, seq)]);
            }
        }
        let good = std::fs::read(&path).unwrap();
        let damaged = dir.path().join("damaged.redb");
        let open_and_load = |bytes: &[u8]| {
            std::fs::write(&damaged, bytes).unwrap();
            RedbStore::open(&damaged).and_then(|s| s.load_all().map(drop))
        };
        let truncated = open_and_load(&good[..good.len() / 3]);
        assert!(truncated.is_err(), "{truncated:?}");
        let not_redb = open_and_load(b"{\"this is\": \"not a database\"} padding padding padding");
        assert!(
            matches!(not_redb, Err(StoreError::Corrupt { .. })),
            "{not_redb:?}"
        );
        for start in (0..good.len()).step_by(good.len() / 16) {
            let mut garbled = good.clone();
            let end = (start + 4096).min(garbled.len());
            garbled[start..end].iter_mut().for_each(|b| *b = !*b);
            // Whatever the damage, the answer is a value; redb's own panics on some damaged
            // pages come back as `Corrupt`.
            if let Err(err) = open_and_load(&garbled) {
                assert!(!err.to_string().is_empty());
            }
        }
    }

    #[test]
    fn a_clean_close_skips_repair_and_keeps_delivered_flags_exact() {
        let (dir, path) = temp();
        let store = RedbStore::open(&path).unwrap();
        let q = declare(&store, "q");
        for seq in 0..4 {
            let _ = enqueue(&store, "m", &[(&q, seq)]);
        }
        store
            .submit(StoreOp::MarkDelivered(q.entry(1)))
            .wait()
            .unwrap();
        // A crash image: taken while the store is open (witness first).
        let image = dir.path().join("crash.redb");
        std::fs::copy(
            crate::store::witness::path_for(&path),
            crate::store::witness::path_for(&image),
        )
        .unwrap();
        std::fs::copy(&path, &image).unwrap();
        store.close().unwrap();

        let clean = RedbStore::open(&path).unwrap();
        assert!(
            !clean.was_repaired(),
            "a cleanly closed file needs no repair"
        );
        let state = clean.load_all().unwrap();
        assert!(state.clean_shutdown);
        let flags: Vec<bool> = state.queues[0]
            .messages
            .iter()
            .map(|m| m.redelivered)
            .collect();
        assert_eq!(flags, [false, true, false, false]);

        let crashed = RedbStore::open(&image).unwrap();
        assert!(crashed.was_repaired(), "a crashed file is repaired by redb");
        let state = crashed.load_all().unwrap();
        assert!(!state.clean_shutdown);
        assert!(state.queues[0].messages.iter().all(|m| m.redelivered));
    }

    #[test]
    fn a_crash_loses_nothing_reported_durable() {
        let (dir, path) = temp();
        let store = Arc::new(RedbStore::open(&path).unwrap());
        let q = declare(&store, "q");
        let writer = {
            let (store, q) = (store.clone(), q.clone());
            thread::spawn(move || {
                let mut confirmed = 0;
                for seq in 0..2_000u64 {
                    let ticket = enqueue(&store, &seq.to_string(), &[(&q, seq)]);
                    if seq % 10 == 0 {
                        ticket.wait().unwrap();
                        confirmed = seq + 1;
                    }
                    if seq == 1_000 {
                        let _ = store.submit(StoreOp::MarkDelivered(q.entry(0)));
                    }
                }
                confirmed
            })
        };
        // Take the file as a crash would leave it, while writes are in flight.
        thread::sleep(std::time::Duration::from_millis(20));
        let durable_before_copy: Vec<u64> = {
            enqueue(&store, "probe", &[(&q, u64::MAX)]).wait().unwrap();
            store.load_all().unwrap().queues[0]
                .messages
                .iter()
                .map(|m| m.seq)
                .collect()
        };
        // The witness first, as it is written after each commit: a crash leaves it at or
        // behind the database, never ahead.
        let image = dir.path().join("crash.redb");
        std::fs::copy(
            crate::store::witness::path_for(&path),
            crate::store::witness::path_for(&image),
        )
        .unwrap();
        std::fs::copy(&path, &image).unwrap();
        writer.join().unwrap();

        let recovered = RedbStore::open(&image).unwrap().load_all().unwrap();
        assert!(!recovered.clean_shutdown);
        let messages = &recovered.queues[0].messages;
        let seqs: Vec<u64> = messages.iter().map(|m| m.seq).collect();
        let lost: Vec<_> = durable_before_copy
            .iter()
            .filter(|s| !seqs.contains(s))
            .collect();
        assert!(lost.is_empty(), "lost durable messages {lost:?}");
        assert!(
            messages.iter().all(|m| m.redelivered),
            "after a crash all are redelivered"
        );
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    }

    /// One step of the model test.
    #[derive(Clone, Debug)]
    enum Step {
        /// Declares queue `q` (a no-op if it exists).
        Declare(usize),
        /// Deletes queue `q`.
        Delete(usize),
        /// Purges queue `q`.
        Purge(usize),
        /// Publishes to the queues in the bit mask (missing ones included).
        Publish(u8),
        /// Marks the n-th entry of `q` delivered.
        Deliver(usize, usize),
        /// Acks the n-th entry of `q`.
        Ack(usize, usize),
        /// Closes and reopens the store.
        Restart,
    }

    /// Generates steps.
    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            1 => (0..3usize).prop_map(Step::Declare),
            1 => (0..3usize).prop_map(Step::Delete),
            1 => (0..3usize).prop_map(Step::Purge),
            3 => (1..8u8).prop_map(Step::Publish),
            2 => (0..3usize, 0..8usize).prop_map(|(q, n)| Step::Deliver(q, n)),
            2 => (0..3usize, 0..8usize).prop_map(|(q, n)| Step::Ack(q, n)),
            1 => Just(Step::Restart),
        ]
    }

    /// What each queue should hold: `None` if it does not exist, else seq → (body, delivered).
    type Model = [Option<std::collections::BTreeMap<u64, (String, bool)>>; 3];

    /// Applies one step to both the store and the model.
    fn run_step(store: &mut RedbStore, path: &PathBuf, model: &mut Model, n: u64, step: &Step) {
        let names = ["a", "b", "c"];
        let key = |q: usize| QueueKey::new("/", names[q]);
        let nth = |model: &Model, q: usize, i: usize| {
            let entries = model[q].as_ref()?;
            entries.keys().nth(i % entries.len().max(1)).copied()
        };
        match *step {
            Step::Declare(q) => {
                let _ = store.submit(StoreOp::PutQueue(queue(names[q])));
                model[q].get_or_insert_with(Default::default);
            }
            Step::Delete(q) => {
                let _ = store.submit(StoreOp::DeleteQueue(key(q)));
                model[q] = None;
            }
            Step::Purge(q) => {
                let _ = store.submit(StoreOp::PurgeQueue(key(q)));
                if let Some(entries) = &mut model[q] {
                    entries.clear();
                }
            }
            Step::Publish(mask) => {
                let keys: Vec<QueueKey> =
                    (0..3).filter(|q| mask & (1 << q) != 0).map(key).collect();
                let at: Vec<(&QueueKey, u64)> = keys.iter().map(|k| (k, n)).collect();
                let _ = enqueue(store, &n.to_string(), &at);
                for q in (0..3).filter(|q| mask & (1 << q) != 0) {
                    if let Some(entries) = &mut model[q] {
                        entries.insert(n, (n.to_string(), false));
                    }
                }
            }
            Step::Deliver(q, i) => {
                if let Some(seq) = nth(model, q, i) {
                    let _ = store.submit(StoreOp::MarkDelivered(key(q).entry(seq)));
                    model[q].as_mut().unwrap().get_mut(&seq).unwrap().1 = true;
                }
            }
            Step::Ack(q, i) => {
                if let Some(seq) = nth(model, q, i) {
                    let _ = store.submit(StoreOp::Remove(key(q).entry(seq)));
                    model[q].as_mut().unwrap().remove(&seq);
                }
            }
            Step::Restart => {
                store.close().unwrap();
                // `close` released the file: it opens again while the old handle lives.
                *store = RedbStore::open(path).unwrap();
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

        /// Random declare/delete/purge/publish/deliver/ack/restart sequences leave exactly the
        /// model's messages, in order, with their flags, and no unreferenced message.
        #[test]
        fn store_matches_a_model(steps in proptest::collection::vec(step(), 1..40)) {
            let (_dir, path) = temp();
            let mut store = RedbStore::open(&path).unwrap();
            let mut model: Model = Default::default();
            for (n, step) in steps.iter().enumerate() {
                run_step(&mut store, &path, &mut model, n as u64, step);
            }
            store.close().unwrap();
            drop(store);
            let store = RedbStore::open(&path).unwrap();
            let state = store.load_all().unwrap();
            for (q, name) in ["a", "b", "c"].iter().enumerate() {
                let found = state.queues.iter().find(|r| r.record.name == *name);
                let found = found.map(|r| {
                    let m = r.messages.iter();
                    m.map(|m| {
                        let body = String::from_utf8(m.message.body.to_vec()).unwrap();
                        (m.seq, (body, m.redelivered))
                    })
                    .collect()
                });
                proptest::prop_assert_eq!(&found, &model[q], "queue {}", name);
            }
            let live: std::collections::HashSet<&String> =
                model.iter().flatten().flat_map(|e| e.values().map(|(b, _)| b)).collect();
            proptest::prop_assert_eq!(rows(&store, MESSAGES), live.len() as u64);
            // Only messages held by several queues have a count row.
            let mut holders: std::collections::HashMap<&String, u64> = Default::default();
            for body in model.iter().flatten().flat_map(|e| e.values().map(|(b, _)| b)) {
                *holders.entry(body).or_default() += 1;
            }
            let shared = holders.values().filter(|n| **n > 1).count() as u64;
            proptest::prop_assert_eq!(rows(&store, MESSAGE_REFS), shared);
        }
    }
}
