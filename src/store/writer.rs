//! The group-commit writer: one background thread that turns queued ops into transactions.
//!
//! Submitters encode their op, take a sequence number and send it down an unbounded
//! crossbeam channel; they never touch the disk. The writer blocks for the first op, then
//! drains whatever else is queued (up to [`MAX_BATCH`]), applies the whole batch in one redb
//! write transaction, commits it (one fsync), and then finishes the batch's tickets in the
//! [`Tracker`]. While one commit is on its way to disk the next batch piles up in the
//! channel, so the number of fsyncs follows the disk's speed, not the number of writes.
//!
//! Each transaction ends by rewriting the [commit record](super::commit) (its number and the
//! tables' row counts); once the commit is on disk the same numbers go to the
//! [witness](super::witness) file.
//!
//! If a commit fails, every op of that batch fails with the same [`StoreError`], so nothing
//! of it is reported durable. redb refuses every later write after an I/O error (a full
//! disk, a read-only remount, EIO), so before the next batch the writer closes the database
//! and opens it again (checked against its witness as at start): once the cause is gone
//! the store carries on without a restart; while it is not, each batch fails the same way.
//! Before a failed batch's tickets finish, the [`LostListener`] is told which queue entries
//! its `Enqueue`s did not store, so the broker withdraws those messages before their
//! publishers hear of the failure (`basic.nack`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::{Mutex, RwLock};
use redb::Database;

use super::commit::{self, CommitRecord};
use super::durable::{Durable, Tracker};
use super::open::{self, StoreOptions};
use super::tables::{self, EncodedOp};
use super::witness::{Witness, WitnessState};
use super::{EntryKey, LostListener, StoreError};

/// The most ops applied in one transaction, which bounds a commit's size and latency.
const MAX_BATCH: usize = 16 * 1024;

/// What goes down the channel to the writer thread.
#[derive(Debug)]
enum Item {
    /// An op to write.
    Op(EncodedOp),
    /// Opens a write group: everything queued up to its [`Item::End`] is applied in one
    /// transaction, after what was queued before it was committed.
    Begin,
    /// Ends the innermost open group.
    End,
}

/// A queued item with its sequence number.
type Queued = (u64, Item);

/// The database as the store shares it with its readers; `None` while closed or reopening.
pub(crate) type Slot = Arc<RwLock<Option<Arc<Database>>>>;

/// What the writer needs to open the database again after a failed write.
#[derive(Debug)]
pub(crate) struct Reopen {
    /// Where the store's readers find the database.
    pub(crate) slot: Slot,
    /// The file.
    pub(crate) path: PathBuf,
    /// How it was opened.
    pub(crate) options: StoreOptions,
}

/// The submitting side of the writer.
#[derive(Debug)]
pub(crate) struct Writer {
    /// The channel to the thread and the next sequence number, `None` once closed. One lock
    /// for both keeps sequence numbers in channel order, which the watermark relies on.
    input: Mutex<Option<(Sender<Queued>, u64)>>,
    /// The writer thread, joined on close.
    thread: Mutex<Option<JoinHandle<Result<(), StoreError>>>>,
    /// Completion of submitted ops.
    tracker: Arc<Tracker>,
    /// Shared counters.
    stats: Arc<WriterStats>,
    /// Set by [`crash`](Self::crash): the thread ends without the clean-shutdown commit.
    crashed: Arc<AtomicBool>,
    /// What the broker hangs on the thread.
    hooks: Arc<Hooks>,
}

/// What the broker hangs on the writer thread.
#[derive(Default)]
struct Hooks {
    /// Told of the entries a failed batch did not store.
    lost: OnceLock<LostListener>,
    /// Fail every batch (an injected fault).
    fail: AtomicBool,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("lost", &self.lost.get().is_some())
            .field("fail", &self.fail)
            .finish()
    }
}

/// Counters the writer keeps, read by tests and statistics.
#[derive(Debug, Default)]
pub(crate) struct WriterStats {
    /// Transactions committed (successful or not).
    pub(crate) commits: AtomicU64,
    /// Ops applied.
    pub(crate) ops: AtomicU64,
}

impl Writer {
    /// Starts the writer thread on `db`, whose last commit is `commit`, recording each
    /// commit in `witness`.
    pub(crate) fn start(
        db: Arc<Database>,
        commit: CommitRecord,
        witness: Witness,
        reopen: Reopen,
    ) -> Result<Self, StoreError> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let tracker = Arc::new(Tracker::default());
        let stats = Arc::new(WriterStats::default());
        let crashed = Arc::new(AtomicBool::new(false));
        let hooks = Arc::new(Hooks::default());
        let worker = Worker {
            crashed: Arc::clone(&crashed),
            hooks: Arc::clone(&hooks),
            db: Some(db),
            reopen,
            broken: false,
            rx,
            tracker: tracker.clone(),
            stats: stats.clone(),
            commit,
            witness,
        };
        let thread = thread::Builder::new()
            .name("warren-store-writer".into())
            .spawn(move || worker.run())?;
        Ok(Writer {
            input: Mutex::new(Some((tx, 1))),
            thread: Mutex::new(Some(thread)),
            tracker,
            stats,
            crashed,
            hooks,
        })
    }

    /// Sets who is told of the entries a failed batch did not store (once; later calls are
    /// ignored).
    pub(crate) fn on_lost(&self, listener: LostListener) {
        let _ = self.hooks.lost.set(listener);
    }

    /// Makes every later batch fail (or stops doing so), as a disk refusing writes would.
    pub(crate) fn fail_writes(&self, fail: bool) {
        self.hooks.fail.store(fail, Ordering::Release);
    }

    /// Queues an op and returns its ticket. Never blocks on the disk.
    pub(crate) fn submit(&self, op: EncodedOp) -> Durable {
        match self.send(op) {
            Some(seq) => Durable::pending(self.tracker.clone(), seq),
            None => Durable::failed(StoreError::Closed),
        }
    }

    /// Queues an op no one waits for (a removal): as [`submit`](Self::submit), without
    /// making a ticket.
    pub(crate) fn submit_untracked(&self, op: EncodedOp) {
        let _ = self.send(op);
    }

    /// Queues an op; returns its sequence number, or `None` once closed.
    fn send(&self, op: EncodedOp) -> Option<u64> {
        self.send_item(Item::Op(op))
    }

    /// Queues an item; returns its sequence number, or `None` once closed.
    fn send_item(&self, item: Item) -> Option<u64> {
        let mut input = self.input.lock();
        let (tx, next) = input.as_mut()?;
        let seq = *next;
        tx.send((seq, item)).ok()?;
        *next += 1;
        Some(seq)
    }

    /// Opens a write group for this thread (see `group.rs`); `false` once closed.
    pub(crate) fn begin_group(&self) -> bool {
        match self.send_item(Item::Begin) {
            Some(seq) => {
                super::group::enter(&self.tracker, seq);
                true
            }
            None => false,
        }
    }

    /// Ends this thread's write group; returns the ticket of its transaction.
    pub(crate) fn end_group(&self) -> Durable {
        super::group::leave();
        match self.send_item(Item::End) {
            Some(seq) => Durable::pending(self.tracker.clone(), seq),
            None => Durable::failed(StoreError::Closed),
        }
    }

    /// Returns a ticket that finishes once every op queued so far has.
    pub(crate) fn barrier(&self) -> Durable {
        match self.input.lock().as_ref() {
            Some((_, next)) if *next > 1 => Durable::pending(self.tracker.clone(), next - 1),
            Some(_) => Durable::done(),
            None => Durable::failed(StoreError::Closed),
        }
    }

    /// Returns the counters.
    pub(crate) fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Stops taking ops, lets the thread write everything already queued, marks the database
    /// cleanly shut down, and waits for the thread. Later calls return `Ok(())`.
    pub(crate) fn close(&self) -> Result<(), StoreError> {
        drop(self.input.lock().take());
        let Some(thread) = self.thread.lock().take() else {
            return Ok(());
        };
        thread.join().unwrap_or_else(|_| {
            Err(StoreError::Backend(Arc::new(std::io::Error::other(
                "the store writer panicked",
            ))))
        })
    }
}

impl Writer {
    /// Stops as a crash right after the last commit would leave the file: the thread writes
    /// what was submitted, but not the clean-shutdown commit, so the next open treats every
    /// recovered message as possibly delivered. For
    /// [`Broker::crash_and_reopen`](crate::Broker::crash_and_reopen).
    pub(crate) fn crash(&self) -> Result<(), StoreError> {
        self.crashed.store(true, Ordering::Release);
        self.close()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Errors cannot be reported from drop; `close` is the way to see them.
        let _ = self.close();
    }
}

/// The thread's side of the writer.
struct Worker {
    /// The database; `None` after a failed reopen.
    db: Option<Arc<Database>>,
    /// How to open it again.
    reopen: Reopen,
    /// A write failed: open the database again before the next one.
    broken: bool,
    /// Queued ops.
    rx: Receiver<Queued>,
    /// Where outcomes go.
    tracker: Arc<Tracker>,
    /// Counters.
    stats: Arc<WriterStats>,
    /// The last commit.
    commit: CommitRecord,
    /// Where each commit is witnessed.
    witness: Witness,
    /// Set when the store crashes on purpose: end without the clean-shutdown commit.
    crashed: Arc<AtomicBool>,
    /// The lost-entries listener and the injected fault.
    hooks: Arc<Hooks>,
}

/// The error of a batch failed on purpose ([`Writer::fail_writes`]).
fn injected_failure() -> StoreError {
    StoreError::Io(Arc::new(std::io::Error::other(
        "injected write failure (Broker::fail_store_writes)",
    )))
}

/// The queue entries of the messages `ops` would have stored.
fn lost_entries(ops: &[EncodedOp]) -> Vec<EntryKey> {
    ops.iter()
        .filter_map(|op| match op {
            EncodedOp::Enqueue { entries, .. } => Some(entries.iter().cloned()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Stops the tracker when the thread ends, however it ends, so no waiter hangs.
struct StopOnDrop(Arc<Tracker>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

impl Worker {
    /// Runs until every sender is gone and the channel is empty, then marks a clean shutdown.
    fn run(mut self) -> Result<(), StoreError> {
        let _stop = StopOnDrop(self.tracker.clone());
        let mut batch = Vec::new();
        let mut all_written = true;
        let mut carried = None;
        loop {
            let first = match carried.take() {
                Some(item) => item,
                None => match self.rx.recv() {
                    Ok(item) => item,
                    Err(_) => break,
                },
            };
            let group = matches!(first.1, Item::Begin);
            batch.push(first);
            let whole = if group {
                self.fill_group(&mut batch)
            } else {
                carried = self.fill(&mut batch);
                true
            };
            all_written &= self.commit(&mut batch, whole);
        }
        // After a failed batch the delivered flags on disk may be behind: leave the flag
        // unset so the next open treats every recovered message as redelivered.
        if all_written && !self.crashed.load(Ordering::Acquire) {
            self.write_clean_shutdown()
        } else {
            Ok(())
        }
    }

    /// Adds to `batch` what else is queued, up to [`MAX_BATCH`], stopping before a group's
    /// beginning: returns it, to start the next batch.
    fn fill(&self, batch: &mut Vec<Queued>) -> Option<Queued> {
        while batch.len() < MAX_BATCH {
            match self.rx.try_recv() {
                Ok(item) if matches!(item.1, Item::Begin) => return Some(item),
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        None
    }

    /// Adds to `batch` (which starts with a group's beginning) everything queued up to the
    /// group's end, waiting for it; `false` if the store closed first (the group is cut
    /// short and must not be written).
    fn fill_group(&self, batch: &mut Vec<Queued>) -> bool {
        let mut open = 1usize;
        while let Ok(item) = self.rx.recv() {
            match item.1 {
                Item::Begin => open += 1,
                Item::End => open -= 1,
                Item::Op(_) => {}
            }
            batch.push(item);
            if open == 0 {
                return true;
            }
        }
        false
    }

    /// Applies and commits one batch, then finishes its tickets; `false` if it failed. A
    /// batch that is not `whole` (a group the store closed in the middle of) fails unwritten.
    fn commit(&mut self, batch: &mut Vec<Queued>, whole: bool) -> bool {
        let (first, last) = (batch[0].0, batch[batch.len() - 1].0);
        let ops: Vec<EncodedOp> = batch
            .drain(..)
            .filter_map(|(_, item)| match item {
                Item::Op(op) => Some(op),
                Item::Begin | Item::End => None,
            })
            .collect();
        let result = if !whole {
            Err(StoreError::Closed)
        } else if self.hooks.fail.load(Ordering::Acquire) {
            Err(injected_failure())
        } else {
            match self.reopen_if_broken() {
                Ok(()) => StoreError::guard("writing", || self.write(&ops)).map(|done| {
                    self.witness(done);
                }),
                Err(e) => Err(e),
            }
        };
        if let Err(e) = &result {
            let lost = lost_entries(&ops);
            tracing::error!(
                error = %e,
                ops = ops.len(),
                messages = lost.len(),
                "a store write failed: nothing of it is confirmed; its persistent messages are \
                 withdrawn from their queues and nacked to publishers in confirm mode"
            );
            if let (Some(listener), false) = (self.hooks.lost.get(), lost.is_empty()) {
                listener(&lost);
            }
            self.broken = true;
        }
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        self.stats
            .ops
            .fetch_add(ops.len() as u64, Ordering::Relaxed);
        let ok = result.is_ok();
        self.tracker.finish(first, last, result);
        ok
    }

    /// The database, unless it could not be opened again.
    fn db(&self) -> Result<&Database, StoreError> {
        self.db.as_deref().ok_or(StoreError::Closed)
    }

    /// After a failed write, closes the database (once its readers let go of it) and opens
    /// it again, as at start.
    fn reopen_if_broken(&mut self) -> Result<(), StoreError> {
        if !self.broken {
            return Ok(());
        }
        // Readers stop getting the broken database; those that have it finish.
        drop(self.reopen.slot.write().take());
        if let Some(mut db) = self.db.take() {
            let mut tries = 0;
            loop {
                match Arc::try_unwrap(db) {
                    Ok(db) => {
                        drop(db);
                        break;
                    }
                    Err(shared) if tries < 200 => {
                        db = shared;
                        tries += 1;
                        thread::sleep(Duration::from_millis(5));
                    }
                    Err(shared) => {
                        self.db = Some(shared);
                        return Err(StoreError::Backend(Arc::new(std::io::Error::other(
                            "the database is still in use; it is opened again at the next write",
                        ))));
                    }
                }
            }
        }
        let opened = StoreError::guard("opening the database again", || {
            open::open(&self.reopen.path, &self.reopen.options)
        })?;
        let db = Arc::new(opened.db);
        *self.reopen.slot.write() = Some(Arc::clone(&db));
        self.db = Some(db);
        self.commit = opened.commit;
        self.witness = opened.witness;
        self.broken = false;
        tracing::info!("the store was opened again after a failed write; writes go on");
        Ok(())
    }

    /// Runs one durable write transaction; returns its commit record.
    fn write(&self, ops: &[EncodedOp]) -> Result<CommitRecord, StoreError> {
        let txn = self.db()?.begin_write()?;
        let counts = tables::apply_batch(&txn, ops)?;
        let done = self.commit.next(counts, false);
        commit::write(&txn, &done)?;
        txn.commit()?;
        Ok(done)
    }

    /// Takes `done` as the last commit and writes it to the witness. A failed witness write
    /// only leaves the witness behind, which is safe: it can then catch less, never refuse a
    /// complete database.
    fn witness(&mut self, done: CommitRecord) {
        self.commit = done;
        let _ = self.witness.record(&WitnessState::from(&done));
    }

    /// Commits the clean-shutdown flag, so the next open trusts the delivered flags, and syncs
    /// the witness.
    fn write_clean_shutdown(&mut self) -> Result<(), StoreError> {
        let done = StoreError::guard("closing", || {
            let txn = self.db()?.begin_write()?;
            let done = self.commit.next(self.commit.counts, true);
            commit::write(&txn, &done)?;
            txn.commit()?;
            Ok(done)
        })?;
        self.witness(done);
        self.witness.sync()?;
        Ok(())
    }
}
