//! [`StoreError`]: everything that can go wrong in the storage layer.

use std::error::Error as StdError;
use std::io;
use std::sync::Arc;

/// An error of the storage layer: opening, reading or writing the database file.
///
/// The error is cheap to clone (its sources sit behind [`Arc`]), because one failed
/// group commit is reported to every publisher and deleter that waited on it.
///
/// None of these errors resets or repairs the database behind the caller's back: a file that
/// cannot be used as it is stays untouched, and the error says why.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database file is already open, by another process or by another handle in this one.
    #[error("database is locked: it is already open in another process or handle")]
    Locked,
    /// The database file, or a record in it, cannot be read: truncated, garbled or inconsistent.
    #[error("database is corrupt: {reason}")]
    Corrupt {
        /// What was found to be wrong.
        reason: String,
    },
    /// The database or a record was written in a format this build does not know, usually by a
    /// newer version of warrenmq.
    #[error("unsupported storage format version {found} (this build supports up to {supported})")]
    UnsupportedFormat {
        /// The format version found on disk.
        found: u64,
        /// The newest format version this build reads and writes.
        supported: u64,
    },
    /// The database is older than the last commit it is known to have made durable, or that
    /// cannot be checked: its witness file (beside it, `<file>.witness`) records a later
    /// commit, is missing, or belongs to another database. Serving it would serve less than
    /// was confirmed. An operator who accepts that (a restored backup, a damaged file that
    /// opens only at an older commit) opens it with `BrokerBuilder::allow_rollback`
    /// (`warren-server --allow-rollback`).
    #[error(
        "database rolled back: {reason}; to open it anyway and serve what it holds, set \
         allow_rollback (warren-server --allow-rollback)"
    )]
    RolledBack {
        /// What was found, and what is missing.
        reason: String,
    },
    /// An operating-system I/O error, such as a full disk or a missing permission.
    #[error("storage i/o error: {0}")]
    Io(#[source] Arc<io::Error>),
    /// Any other error of the storage engine (redb), kept as its source.
    #[error("storage engine error: {0}")]
    Backend(#[source] Arc<dyn StdError + Send + Sync>),
    /// The store was closed; nothing more can be written.
    #[error("the store is closed")]
    Closed,
}

impl StoreError {
    /// Builds a [`StoreError::Corrupt`] from anything that describes the damage.
    pub(crate) fn corrupt(reason: impl Into<String>) -> Self {
        StoreError::Corrupt {
            reason: reason.into(),
        }
    }

    /// Runs a call into the storage engine and turns a panic inside it into
    /// [`StoreError::Corrupt`].
    ///
    /// redb answers some damaged files with a panic (a failed assertion deep in a B-tree)
    /// rather than an error. The broker must not go down with it, so every entry into redb
    /// that reads file contents goes through here. With `panic = "abort"` this cannot help.
    #[cfg(feature = "persistence")]
    pub(crate) fn guard<T>(
        doing: &str,
        call: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).unwrap_or_else(|payload| {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(StoreError::corrupt(format!(
                "the storage engine failed while {doing}: {message}"
            )))
        })
    }
}

impl From<io::Error> for StoreError {
    fn from(err: io::Error) -> Self {
        StoreError::Io(Arc::new(err))
    }
}

/// Conversions from redb's per-operation errors, folded the way redb folds them into its own
/// `redb::Error`. They are written by hand rather than with `#[from]` because redb's errors are
/// not `Clone` and because the engine's types must not show in the public API.
#[cfg(feature = "persistence")]
mod from_redb {
    use std::sync::Arc;

    use super::StoreError;

    impl From<redb::Error> for StoreError {
        fn from(err: redb::Error) -> Self {
            match err {
                redb::Error::DatabaseAlreadyOpen => StoreError::Locked,
                redb::Error::Corrupted(reason) => StoreError::Corrupt { reason },
                // redb reports a file that is not (or no longer) a database as invalid data.
                redb::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
                    StoreError::Corrupt {
                        reason: io.to_string(),
                    }
                }
                redb::Error::Io(io) => StoreError::from(io),
                redb::Error::UpgradeRequired(found) => StoreError::Corrupt {
                    reason: format!(
                        "the file uses redb file format {found}, which must be upgraded manually"
                    ),
                },
                other => StoreError::Backend(Arc::new(other)),
            }
        }
    }

    /// Implements `From<$t> for StoreError` through `redb::Error`.
    macro_rules! via_redb_error {
        ($($t:ty),* $(,)?) => {
            $(impl From<$t> for StoreError {
                fn from(err: $t) -> Self {
                    StoreError::from(redb::Error::from(err))
                }
            })*
        };
    }

    via_redb_error!(
        redb::DatabaseError,
        redb::TransactionError,
        redb::TableError,
        redb::StorageError,
        redb::CommitError,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_lowercase_without_trailing_period() {
        let errors = [
            StoreError::Locked,
            StoreError::corrupt("bad page"),
            StoreError::UnsupportedFormat {
                found: 9,
                supported: 1,
            },
            StoreError::from(io::Error::other("disk full")),
            StoreError::Closed,
        ];
        for err in errors {
            let text = err.to_string();
            assert!(text.starts_with(|c: char| c.is_lowercase()), "{text}");
            assert!(!text.ends_with('.'), "{text}");
        }
    }

    #[test]
    fn is_clone_send_sync() {
        fn check<T: Clone + Send + Sync + 'static>() {}
        check::<StoreError>();
    }
}
