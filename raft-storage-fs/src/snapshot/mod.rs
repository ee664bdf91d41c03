//! Snapshot files beside the log: writing one, making it current, reading it, finding it at open.
//!
//! **Writing** ([`FsSnapshotWriter`], in [`writer`]): chunks go to a temporary file of their
//! own (`snapshot-<sequence>.tmp`) on tokio's blocking threads, and their CRC-32C is computed
//! as they go. [`finish`] then, on a blocking thread:
//! 1. checks the size and checksum against the meta (else [`Error::SnapshotMismatch`] and the
//!    file is removed);
//! 2. appends the trailer ([`format`]) and fsyncs the file;
//! 3. holding the open log's directory (`Handle::directory`: one install at a time, and
//!    `FsLogStore::close` waits for it before it releases the directory lock), fails with
//!    [`Error::Closed`] if the store was closed, or discards the file and answers `false` if
//!    the store already has a snapshot at the same or a higher index;
//! 4. renames the file to `snapshot-<index>.snap` and fsyncs the directory: from here on the
//!    snapshot is durable and current;
//! 5. removes older snapshot files and fsyncs the directory again.
//!
//! A crash before the rename is durable leaves a temporary file (removed at open) and the
//! previous snapshot current; a crash after it leaves the new one current and maybe older ones
//! beside it (removed at open). A failed directory fsync after the rename poisons the log, as a
//! failed log fsync does: what the directory holds is unknown. Other failures only fail the
//! snapshot (nothing was reported durable); leftovers of step 5 are only warned about.
//!
//! **Reading** ([`SnapshotFile`], in [`file`]): every reader holds its own open file, so it
//! goes on reading the same data after a newer snapshot replaced (unlinked) its file. Reads are
//! positional and run on blocking threads.
//!
//! **At open** ([`file::recover`]): temporary files are removed and the latest complete
//! snapshot is validated: its trailer and then the whole data's checksum, read in chunks. A
//! damaged one is refused with [`Error::Corrupt`] naming it, and the log is not opened.
//! Falling back to an older snapshot would be wrong: a renamed snapshot was fsynced before its
//! rename, so damage means the disk lost synced data; the older snapshots were removed once the
//! new one was durable, and the log may already be compacted past them.
//!
//! The submodules are layered: [`format`] (names and trailer) below [`file`] (reading and
//! recovery), below [`writer`], the only one that reaches the open log's shared state. This
//! module holds no items of its own.
//!
//! [`format`]: mod@format
//! [`file`]: mod@file
//! [`writer`]: mod@writer
//! [`FsSnapshotWriter`]: writer::FsSnapshotWriter
//! [`SnapshotFile`]: file::SnapshotFile
//! [`finish`]: raft_core::SnapshotWriter::finish
//! [`Error::SnapshotMismatch`]: crate::Error::SnapshotMismatch
//! [`Error::Corrupt`]: crate::Error::Corrupt
//! [`Error::Closed`]: crate::Error::Closed

pub(crate) mod file;
pub(crate) mod format;
pub(crate) mod writer;
