//! Opening a database file: creating it atomically, refusing files that are not what they
//! should be, migrating format 1, and checking the commit record against the witness.
//!
//! | the file is | result |
//! |---|---|
//! | missing, and no witness records a commit after the creating one | created (in `<path>.new`, then renamed into place) |
//! | missing, but its witness records later commits | [`StoreError::RolledBack`] |
//! | empty, shorter than a redb header, or without redb's magic number | [`StoreError::Corrupt`] |
//! | of a newer format | [`StoreError::UnsupportedFormat`], file untouched |
//! | of format 1 | migrated to format 4 in one transaction |
//! | of format 2 or 3 | upgraded to format 4 (adds the policies table, then the auth table) in one transaction |
//! | at an older commit than its witness, without a witness, or with another database's witness | [`StoreError::RolledBack`] |
//!
//! Warren never leaves an empty or half-initialised file at the database path: a new database
//! is initialised under another name and renamed into place, so an empty file there is damage,
//! not a new database.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use redb::{Builder, Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::commit::{self, CommitRecord, COMMIT};
use super::migrate;
use super::tables::{self, FORMAT_VERSION_KEY, MESSAGES, META};
use super::witness::{self, Witness, WitnessState};
use super::StoreError;

/// The database format version this build writes, and the newest it opens. It names the set
/// of tables and their key types; each record also carries its own
/// [`RECORD_VERSION`](super::codec::RECORD_VERSION) byte.
pub(crate) const FORMAT_VERSION: u64 = 4;

/// redb's magic number, the first bytes of every redb file.
const REDB_MAGIC: &[u8; 9] = b"redb\x1a\x0a\xa9\x0d\x0a";

/// No redb file is shorter: its header alone is longer.
const MIN_FILE_BYTES: u64 = 512;

/// How to open a store.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StoreOptions {
    /// The most memory redb may use to cache pages.
    pub(crate) cache_bytes: usize,
    /// Open a database that is behind its witness (or has none) instead of refusing it.
    pub(crate) allow_rollback: bool,
}

/// An opened database, ready for its writer.
pub(crate) struct Opened {
    /// Whether redb had to repair the file at open (it was not closed cleanly).
    pub(crate) repaired: bool,
    /// The database.
    pub(crate) db: Database,
    /// The commit the open made (clean flag cleared).
    pub(crate) commit: CommitRecord,
    /// Whether the previous session closed the store cleanly.
    pub(crate) was_clean: bool,
    /// The first free message id.
    pub(crate) next_id: u64,
    /// The witness, open for writing.
    pub(crate) witness: Witness,
}

/// Opens (or creates) the database at `path`.
pub(crate) fn open(path: &Path, options: &StoreOptions) -> Result<Opened, StoreError> {
    let witness_path = witness::path_for(path);
    let repaired = Arc::new(AtomicBool::new(false));
    let noticed = repaired.clone();
    let mut builder = builder(options);
    builder.set_repair_callback(move |_| noticed.store(true, Ordering::Relaxed));
    let witnessed = match witness::read(&witness_path) {
        Err(e) if options.allow_rollback => {
            warn_rollback(&e.to_string());
            None
        }
        other => other?,
    };
    let (db, witnessed) = match fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(w) = witnessed.filter(|w| w.seq > 1) {
                refuse_unless(
                    options,
                    format!(
                        "the database file {} is missing, but its witness records commit {} \
                         holding {}",
                        path.display(),
                        w.seq,
                        w.counts
                    ),
                )?;
            }
            let (db, first) = create(path, &witness_path, options)?;
            (db, Some(first))
        }
        Err(e) => return Err(e.into()),
        Ok(meta) => {
            check_header(path, meta.len())?;
            (builder.open(path)?, witnessed)
        }
    };
    let (commit, migrated) = check_format(&db, &witness_path)?;
    let witnessed = migrated.or(witnessed);
    let witness = check_witness(path, &witness_path, &commit, witnessed, options)?;
    let mut opened = start_session(db, commit, witness)?;
    opened.repaired = repaired.load(Ordering::Relaxed);
    Ok(opened)
}

/// A redb builder with the store's settings.
fn builder(options: &StoreOptions) -> Builder {
    let mut builder = Database::builder();
    builder.set_cache_size(options.cache_bytes);
    builder
}

/// Returns `base` with `suffix` appended to its file name.
fn sibling(base: &Path, suffix: &str) -> PathBuf {
    let mut name = base.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Creates a new database: initialised under `<path>.new`, witnessed, then renamed into place.
/// Returns it with what its witness now says.
fn create(
    path: &Path,
    witness_path: &Path,
    options: &StoreOptions,
) -> Result<(Database, WitnessState), StoreError> {
    let staging = sibling(path, ".new");
    match fs::remove_file(&staging) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    let db = builder(options).create(&staging)?;
    let txn = db.begin_write()?;
    txn.open_table(META)?
        .insert(FORMAT_VERSION_KEY, FORMAT_VERSION)?;
    let counts = tables::apply_batch(&txn, &[])?;
    let first = CommitRecord::first(counts);
    commit::write(&txn, &first)?;
    txn.commit()?;
    db.close()?;
    let witnessed = WitnessState::from(&first);
    Witness::create(witness_path, &witnessed)?;
    fs::rename(&staging, path)?;
    witness::sync_directory(path)?;
    Ok((builder(options).open(path)?, witnessed))
}

/// Refuses a file that cannot be a database before redb sees it: redb would initialise an
/// empty file as a new database.
fn check_header(path: &Path, len: u64) -> Result<(), StoreError> {
    let shown = path.display();
    if len == 0 {
        return Err(StoreError::corrupt(format!(
            "the database file {shown} is empty (0 bytes); warrenmq never leaves an empty \
             database file, so it was truncated or replaced"
        )));
    }
    if len < MIN_FILE_BYTES {
        return Err(StoreError::corrupt(format!(
            "the database file {shown} is {len} bytes, shorter than a database header"
        )));
    }
    let mut magic = [0u8; 9];
    fs::File::open(path)?.read_exact(&mut magic)?;
    if &magic != REDB_MAGIC {
        return Err(StoreError::corrupt(format!(
            "the file {shown} is not a redb database (no redb magic number)"
        )));
    }
    Ok(())
}

/// Checks the format version, migrates format 1, and reads the commit record. Returns it, and
/// the new witness if the database was migrated.
fn check_format(
    db: &Database,
    witness_path: &Path,
) -> Result<(CommitRecord, Option<WitnessState>), StoreError> {
    let (version, has_tables) = {
        let txn = db.begin_read()?;
        let has_tables = txn.list_tables()?.next().is_some();
        let version = match txn.open_table(META) {
            Ok(meta) => {
                let version = meta.get(FORMAT_VERSION_KEY)?.map(|v| v.value());
                if version.is_none() && meta.len()? > 0 {
                    return Err(StoreError::corrupt(
                        "the metadata table has no format version",
                    ));
                }
                version
            }
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.into()),
        };
        (version, has_tables)
    };
    let mut migrated = None;
    match version {
        Some(found) if found > FORMAT_VERSION => {
            return Err(StoreError::UnsupportedFormat {
                found,
                supported: FORMAT_VERSION,
            })
        }
        Some(FORMAT_VERSION) => {}
        Some(found @ (2 | 3)) => add_tables(db, found)?,
        Some(1) => migrated = Some(migrate::from_v1(db, witness_path)?),
        Some(found) => {
            return Err(StoreError::corrupt(format!(
                "invalid format version {found}"
            )))
        }
        None if has_tables => {
            return Err(StoreError::corrupt(
                "the file is a redb database without warrenmq metadata",
            ))
        }
        None => {
            return Err(StoreError::corrupt(
                "the file is an empty redb database that warrenmq did not create",
            ))
        }
    }
    let found = commit::read(&db.begin_read()?.open_table(COMMIT)?)?;
    Ok((found, migrated))
}

/// Upgrades a format-2 or format-3 database to format 4. Each of those formats only added an
/// (empty) table — format 3 the policies table, format 4 the auth table — so the upgrade
/// creates the missing ones in one transaction that leaves the commit record, and so the
/// witness, as they were.
fn add_tables(db: &Database, found: u64) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    if found < 3 {
        txn.open_table(tables::POLICIES)?;
    }
    txn.open_table(tables::AUTH)?;
    txn.open_table(META)?
        .insert(FORMAT_VERSION_KEY, FORMAT_VERSION)?;
    txn.commit()?;
    Ok(())
}

/// Compares the database's last commit with its witness; returns the witness to write to.
fn check_witness(
    path: &Path,
    witness_path: &Path,
    found: &CommitRecord,
    witnessed: Option<WitnessState>,
    options: &StoreOptions,
) -> Result<Witness, StoreError> {
    let (db, wp) = (path.display(), witness_path.display());
    let problem = match witnessed {
        None => Some(format!(
            "{db} has no witness file ({wp}), so it cannot be shown to hold every commit made \
             durable (it is at commit {}, holding {})",
            found.seq, found.counts
        )),
        Some(w) if w.db_id != found.db_id => Some(format!(
            "the witness {wp} belongs to another database (id {:016x}; {db} has id {:016x})",
            w.db_id, found.db_id
        )),
        Some(w) if w.seq > found.seq => Some(format!(
            "{db} is at commit {} but commit {} was made durable (witness {wp}): {} commits \
             are missing; the witness counted {}",
            found.seq,
            w.seq,
            w.seq - found.seq,
            w.counts.shortfall(&found.counts)
        )),
        Some(_) => None,
    };
    match problem {
        Some(reason) => {
            refuse_unless(options, reason)?;
            Witness::create(witness_path, &WitnessState::from(found))
        }
        None => Witness::open(witness_path),
    }
}

/// Fails with [`StoreError::RolledBack`] unless the options allow a rollback; then warns.
fn refuse_unless(options: &StoreOptions, reason: String) -> Result<(), StoreError> {
    if !options.allow_rollback {
        return Err(StoreError::RolledBack { reason });
    }
    warn_rollback(&reason);
    Ok(())
}

/// Tells the operator what an allowed rollback accepted: this happens only on their explicit
/// request, and must not pass unseen.
fn warn_rollback(reason: &str) {
    eprintln!("warrenmq: allow_rollback: opening the database anyway: {reason}");
}

/// Commits the start of a session: the clean flag cleared, the witness updated. Returns the
/// opened database with the first free message id.
fn start_session(
    db: Database,
    found: CommitRecord,
    mut witness: Witness,
) -> Result<Opened, StoreError> {
    let txn = db.begin_write()?;
    let commit = found.next(found.counts, false);
    commit::write(&txn, &commit)?;
    let next_id = {
        let messages = txn.open_table(MESSAGES)?;
        let last = messages.last()?.map(|(k, _)| k.value());
        last.map_or(1, |id| id + 1)
    };
    txn.commit()?;
    witness.record(&WitnessState::from(&commit))?;
    witness.sync()?;
    Ok(Opened {
        repaired: false,
        db,
        commit,
        was_clean: found.clean,
        next_id,
        witness,
    })
}
