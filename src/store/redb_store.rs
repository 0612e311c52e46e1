//! [`RedbStore`]: the [`Store`] kept in one redb database file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use redb::{Database, ReadableTable, ReadableTableMetadata};

use super::durable::Durable;
use super::op::StoreOp;
use super::records::MessageId;
use super::recovery::{self, RecoveredState};
use super::tables::{self, EncodedOp, CLEAN_SHUTDOWN_KEY, FORMAT_VERSION_KEY, MESSAGES, META};
use super::writer::Writer;
use super::{Store, StoreError};

/// The database format version this build writes, and the newest it opens. It names the set
/// of tables and their key types; each record also carries its own
/// [`RECORD_VERSION`](super::codec::RECORD_VERSION) byte.
pub(crate) const FORMAT_VERSION: u64 = 1;

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
    /// The database, shared with the writer thread.
    db: Arc<Database>,
    /// The group-commit writer.
    writer: Writer,
    /// The next message id to hand out.
    next_message_id: AtomicU64,
    /// Whether the previous session ended with a clean shutdown.
    was_clean: bool,
    /// Set by [`Store::close`].
    closed: AtomicBool,
}

impl RedbStore {
    /// Opens the database at `path`, creating it if the file is missing or empty.
    ///
    /// # Errors
    ///
    /// [`StoreError::Locked`] if it is already open, [`StoreError::UnsupportedFormat`] if it was
    /// written by a newer format, [`StoreError::Corrupt`] if it is not a (complete) warrenmq
    /// database, [`StoreError::Io`] for file-system errors. The file is never changed when
    /// opening fails.
    pub(crate) fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let db = Arc::new(Database::create(&path)?);
        let (was_clean, next_id) = prepare(&db)?;
        let writer = Writer::start(db.clone())?;
        Ok(RedbStore {
            path,
            db,
            writer,
            next_message_id: AtomicU64::new(next_id),
            was_clean,
            closed: AtomicBool::new(false),
        })
    }

    /// Returns how many transactions the writer has committed since open.
    pub(crate) fn commit_count(&self) -> u64 {
        self.writer.stats().commits.load(Ordering::Relaxed)
    }

    /// Returns how many ops the writer has applied since open.
    pub(crate) fn op_count(&self) -> u64 {
        self.writer.stats().ops.load(Ordering::Relaxed)
    }
}

/// Checks the format version of an opened database, initialises a fresh one, and clears the
/// clean-shutdown flag. Returns whether the last session shut down cleanly, and the next free
/// message id.
fn prepare(db: &Database) -> Result<(bool, u64), StoreError> {
    let (version, clean, has_tables) = read_meta(db)?;
    match version {
        Some(found) if found > FORMAT_VERSION => {
            return Err(StoreError::UnsupportedFormat {
                found,
                supported: FORMAT_VERSION,
            })
        }
        Some(found) if found < 1 => {
            return Err(StoreError::corrupt(format!(
                "invalid format version {found}"
            )))
        }
        Some(_) => {}
        None if has_tables => {
            return Err(StoreError::corrupt(
                "the file is a redb database without warrenmq metadata",
            ))
        }
        None => {}
    }
    let txn = db.begin_write()?;
    let next_id = {
        let mut meta = txn.open_table(META)?;
        meta.insert(FORMAT_VERSION_KEY, FORMAT_VERSION)?;
        meta.insert(CLEAN_SHUTDOWN_KEY, 0)?;
        // Create every table so that readers find them even before the first write.
        tables::apply_batch(&txn, &[])?;
        let messages = txn.open_table(MESSAGES)?;
        let last = messages.last()?.map(|(k, _)| k.value());
        last.map_or(1, |id| id + 1)
    };
    txn.commit()?;
    Ok((version.is_none() || clean == Some(1), next_id))
}

/// Reads the format version and clean flag, and whether the file holds any table at all.
fn read_meta(db: &Database) -> Result<(Option<u64>, Option<u64>, bool), StoreError> {
    let txn = db.begin_read()?;
    let has_tables = txn.list_tables()?.next().is_some();
    let meta = match txn.open_table(META) {
        Ok(meta) => meta,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok((None, None, has_tables)),
        Err(e) => return Err(e.into()),
    };
    let version = meta.get(FORMAT_VERSION_KEY)?.map(|v| v.value());
    let clean = meta.get(CLEAN_SHUTDOWN_KEY)?.map(|v| v.value());
    if version.is_none() && meta.len()? > 0 {
        return Err(StoreError::corrupt(
            "the metadata table has no format version",
        ));
    }
    Ok((version, clean, has_tables))
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

    fn next_message_id(&self) -> MessageId {
        MessageId(self.next_message_id.fetch_add(1, Ordering::Relaxed))
    }

    fn is_persistent(&self) -> bool {
        true
    }

    fn load(&self) -> Result<RecoveredState, StoreError> {
        recovery::load(&self.db, self.was_clean)
    }

    fn close(&self) -> Result<(), StoreError> {
        self.closed.store(true, Ordering::Release);
        self.writer.close()
    }
}

impl fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}
