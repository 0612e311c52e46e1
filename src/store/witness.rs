//! The witness: a small file beside the database recording its last durable commit.
//!
//! redb keeps the previous commit next to the newest one and falls back to it when the newest
//! fails its checksums; an old copy of the file put back in place looks just as healthy. In
//! both cases the database opens at an older commit and would serve less than was confirmed.
//! The witness is written after each commit, outside the database, so that such a database is
//! caught at open (see [`commit`](super::commit)).
//!
//! # Layout
//!
//! `<database>.witness`, 8 KiB: two slots of [`SLOT_BYTES`], at offsets 0 and 4096, each
//!
//! ```text
//! magic "WARRENW1" | db_id u64 | seq u64 | vhosts, exchanges, queues, bindings, messages,
//! entries: u64 each | CRC-32 of the 72 bytes before it: u32     (all little-endian)
//! ```
//!
//! Commits alternate between the slots, so a write torn by a crash damages one slot and leaves
//! the other; the valid slot with the highest `seq` is the witness.
//!
//! # Durability
//!
//! The witness is written after the commit it records is on disk and is not synced for each
//! commit: after a power loss it may lag behind the database, never run ahead of it, so it can
//! only under-report. It is synced when it is created and when the store closes.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::commit::{CommitRecord, Counts};
use super::StoreError;

/// The magic number at the start of each slot.
const MAGIC: &[u8; 8] = b"WARRENW1";
/// Bytes of one slot: magic, id, seq, six counts, checksum.
const SLOT_BYTES: usize = 8 + 8 + 8 + 6 * 8 + 4;
/// Where the second slot starts (a separate 4 KiB block, so one torn block spares the other).
const SECOND_SLOT: u64 = 4096;
/// The size of the file.
const FILE_BYTES: u64 = 2 * SECOND_SLOT;

/// What a witness says: the database it belongs to, its last durable commit and its counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WitnessState {
    /// The database's id.
    pub(crate) db_id: u64,
    /// The commit's number.
    pub(crate) seq: u64,
    /// The counts after it.
    pub(crate) counts: Counts,
}

impl From<&CommitRecord> for WitnessState {
    fn from(commit: &CommitRecord) -> Self {
        WitnessState {
            db_id: commit.db_id,
            seq: commit.seq,
            counts: commit.counts,
        }
    }
}

/// The witness file of one database, open for writing.
#[derive(Debug)]
pub(crate) struct Witness {
    /// The file.
    file: File,
    /// The slot the next write goes to (0 or 1).
    next_slot: u8,
}

/// Returns the witness path of the database at `db`: the same path with `.witness` appended.
pub(crate) fn path_for(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".witness");
    PathBuf::from(name)
}

/// Reads the witness at `path`: `None` if there is no such file.
///
/// # Errors
///
/// [`StoreError::Corrupt`] if the file exists but neither slot is valid; I/O errors as they come.
pub(crate) fn read(path: &Path) -> Result<Option<WitnessState>, StoreError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let slot = |at: usize| bytes.get(at..at + SLOT_BYTES).and_then(decode_slot);
    let best = [slot(0), slot(SECOND_SLOT as usize)]
        .into_iter()
        .flatten()
        .max_by_key(|s| s.seq);
    match best {
        Some(state) => Ok(Some(state)),
        None => Err(StoreError::corrupt(format!(
            "the witness file {} is unreadable ({} bytes, no valid slot)",
            path.display(),
            bytes.len()
        ))),
    }
}

impl Witness {
    /// Creates (or replaces) the witness at `path` with `state` in both slots, and syncs it.
    pub(crate) fn create(path: &Path, state: &WitnessState) -> Result<Self, StoreError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        file.set_len(FILE_BYTES)?;
        let mut witness = Witness { file, next_slot: 0 };
        witness.record(state)?;
        witness.record(state)?;
        witness.sync()?;
        sync_directory(path)?;
        Ok(witness)
    }

    /// Opens the existing witness at `path` for writing.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        if file.metadata()?.len() < FILE_BYTES {
            file.set_len(FILE_BYTES)?;
        }
        Ok(Witness { file, next_slot: 0 })
    }

    /// Writes `state` to the older slot. Not synced: see the module docs.
    pub(crate) fn record(&mut self, state: &WitnessState) -> io::Result<()> {
        let offset = u64::from(self.next_slot) * SECOND_SLOT;
        self.file.seek(SeekFrom::Start(offset))?;
        self.file.write_all(&encode_slot(state))?;
        self.next_slot ^= 1;
        Ok(())
    }

    /// Makes what was recorded durable.
    pub(crate) fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// Encodes one slot.
fn encode_slot(state: &WitnessState) -> [u8; SLOT_BYTES] {
    let c = &state.counts;
    let mut out = [0u8; SLOT_BYTES];
    out[..8].copy_from_slice(MAGIC);
    let numbers = [
        state.db_id,
        state.seq,
        c.vhosts,
        c.exchanges,
        c.queues,
        c.bindings,
        c.messages,
        c.entries,
    ];
    for (i, n) in numbers.iter().enumerate() {
        out[8 + 8 * i..16 + 8 * i].copy_from_slice(&n.to_le_bytes());
    }
    let crc = crc32fast::hash(&out[..SLOT_BYTES - 4]);
    out[SLOT_BYTES - 4..].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes one slot; `None` unless its magic and checksum are right.
fn decode_slot(bytes: &[u8]) -> Option<WitnessState> {
    let (body, crc) = bytes.split_at(SLOT_BYTES - 4);
    if &body[..8] != MAGIC || crc32fast::hash(body).to_le_bytes() != crc {
        return None;
    }
    let n = |i: usize| u64::from_le_bytes(body[8 + 8 * i..16 + 8 * i].try_into().expect("8 bytes"));
    Some(WitnessState {
        db_id: n(0),
        seq: n(1),
        counts: Counts {
            vhosts: n(2),
            exchanges: n(3),
            queues: n(4),
            bindings: n(5),
            messages: n(6),
            entries: n(7),
        },
    })
}

/// Syncs the directory holding `path`, so that a file created or renamed there stays.
pub(crate) fn sync_directory(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(seq: u64) -> WitnessState {
        WitnessState {
            db_id: 7,
            seq,
            counts: Counts {
                messages: seq * 10,
                ..Counts::default()
            },
        }
    }

    #[test]
    fn the_newest_valid_slot_wins_and_a_torn_slot_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.witness");
        assert_eq!(read(&path).unwrap(), None);
        let mut w = Witness::create(&path, &state(1)).unwrap();
        for seq in 2..=5 {
            w.record(&state(seq)).unwrap();
        }
        assert_eq!(read(&path).unwrap(), Some(state(5)));
        // Tear the newest slot (seq 5 went to the second): the other one, seq 4, is the witness.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[SECOND_SLOT as usize + 20] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read(&path).unwrap(), Some(state(4)));
        // Both slots damaged: an error, not a guess.
        bytes[30] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(read(&path), Err(StoreError::Corrupt { .. })));
        // Reopened for writing, it goes on.
        let mut w = Witness::open(&path).unwrap();
        w.record(&state(9)).unwrap();
        assert_eq!(read(&path).unwrap(), Some(state(9)));
    }

    #[test]
    fn path_appends_to_the_file_name() {
        assert_eq!(
            path_for(Path::new("/d/warren.redb")),
            Path::new("/d/warren.redb.witness")
        );
    }
}
