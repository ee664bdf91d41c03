//! The crate's one error type.

use std::path::PathBuf;

/// Errors of raft-storage-fs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A record before the end of a segment is damaged: the log cannot be trusted past it and
    /// is not opened (never silently skipped).
    #[error("corrupt log record in {} at byte offset {offset}: {reason}", file.display())]
    Corrupt {
        /// The segment file.
        file: PathBuf,
        /// Where the damaged record starts.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A record too large to write (over [`record::MAX_PAYLOAD_BYTES`](crate::record::MAX_PAYLOAD_BYTES)).
    #[error("entry {index} has {len} payload bytes, more than the {max} a record holds")]
    TooLarge {
        /// The entry's index.
        index: u64,
        /// Its payload size.
        len: usize,
        /// The limit.
        max: usize,
    },
}
