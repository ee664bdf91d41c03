//! The crate's one error type.

use std::io;
use std::path::PathBuf;

use raft_core::SnapshotMeta;

/// Errors of raft-storage-fs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A record before the end of a segment, the hard-state file or a snapshot file is damaged: the log cannot
    /// be trusted past it and is not opened (never silently skipped).
    #[error("corrupt log record in {} at byte offset {offset}: {reason}", file.display())]
    Corrupt {
        /// The damaged file.
        file: PathBuf,
        /// Where the damage starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Entries are missing between two segments (a segment file was lost or renamed).
    #[error(
        "log segments do not join: {} should start at entry {expected} but starts at {found} (a segment is missing or out of order)",
        file.display()
    )]
    MissingEntries {
        /// The segment after the gap.
        file: PathBuf,
        /// The entry it should start with.
        expected: u64,
        /// The entry it starts with.
        found: u64,
    },
    /// The log's first entry is not covered: without a snapshot a log starts at entry 1, with
    /// one at most at the snapshot's index plus one. Entries in between are missing (a segment
    /// or the snapshot file was lost), so the log is not opened.
    #[error(
        "the log's first segment {} starts at entry {first}, but the latest snapshot covers entries only up to {snapshot_index} (0: no snapshot): the entries in between are missing",
        file.display()
    )]
    Uncovered {
        /// The first segment.
        file: PathBuf,
        /// Its first entry.
        first: u64,
        /// The index the latest snapshot covers (0 without one).
        snapshot_index: u64,
    },
    /// A snapshot's data does not match the meta it was finished with (its size or checksum):
    /// the new snapshot is discarded and the previous one stays current.
    #[error(
        "the snapshot data written to {} ({size} bytes, crc32c {checksum:08x}) does not match {expected}",
        file.display()
    )]
    SnapshotMismatch {
        /// The temporary file the data was written to (removed).
        file: PathBuf,
        /// The meta the snapshot was finished with.
        expected: Box<SnapshotMeta>,
        /// The size of the data written.
        size: u64,
        /// The CRC-32C of the data written.
        checksum: u32,
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
    /// Another open log (in this process or another) holds the data directory.
    #[error("the log directory {} is in use by another process (or another open log)", dir.display())]
    Locked {
        /// The data directory.
        dir: PathBuf,
    },
    /// The disk is full: the write failed and nothing after the last durable entry was
    /// acknowledged. The log accepts no more writes; free space and reopen it.
    #[error("disk full (ENOSPC) while {op} {}: the log is read-only until it is reopened", path.display())]
    DiskFull {
        /// What the store was doing.
        op: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// An I/O call failed.
    #[error("{op} {} failed: {source}", path.display())]
    Io {
        /// What the store was doing.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// An earlier write or fsync failed, so what is durable is unknown: the log refuses every
    /// later write (a failed fsync is never retried: Linux may have dropped the dirty pages).
    #[error("the log is poisoned by an earlier failure and accepts no writes: {0}")]
    Poisoned(String),
    /// The caller broke the log's contract (a non-consecutive append, a truncation of
    /// compacted entries).
    #[error("invalid log operation: {0}")]
    Invalid(String),
    /// The store was closed.
    #[error("the log store is closed")]
    Closed,
}

impl Error {
    /// Wraps an I/O error from `op` on `path`, recognising a full disk.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        let path = path.into();
        if source.kind() == io::ErrorKind::StorageFull {
            Error::DiskFull { op, path }
        } else {
            Error::Io { op, path, source }
        }
    }
}

impl From<Error> for raft_core::Error {
    fn from(err: Error) -> raft_core::Error {
        raft_core::Error::storage(err)
    }
}
