//! A durable Raft log on files for raft-core: checksummed segments, group commit on a dedicated
//! I/O thread, crash recovery that loses nothing reported durable.
//!
//! [`FsLogStore`] implements [`raft_core::LogStore`]. A data directory holds:
//! - segment files `<first index, 20 digits>.seg` of [`record`]s (a 32-byte header with two
//!   crc32c checksums, then the payload), preallocated with zeros so an `fdatasync` flushes
//!   data only;
//! - `hard_state` (term, vote, commit), replaced atomically: temp file, fsync, rename, fsync of
//!   the directory;
//! - `snapshot-<index, 20 digits>.snap`, the latest snapshot: the state machine's data followed
//!   by a checksummed trailer holding its [`SnapshotMeta`](raft_core::SnapshotMeta). A new one
//!   is written to a temporary file, fsynced, renamed into place and the directory fsynced
//!   before older ones are removed, so a crash at any point leaves one complete snapshot;
//! - `LOCK`, held with an exclusive `flock` while the log is open, so two processes never
//!   write one log. [`FsLogStore::close`] releases it once the I/O thread has stopped (every
//!   clone is closed with it); dropping the last clone does too.
//!
//! Compaction (below a durable snapshot only) removes whole segments; compacting past the last
//! entry removes them all and the log continues at the named index, in a segment named for it.
//! A compaction that covers most of the segment being written *retires* it: the next append
//! starts a new segment, so the next compaction removes the old one, and a log whose live part
//! fits in one segment still shrinks. How much disk the log takes therefore follows the segment
//! size: [`FsOptions::for_snapshot_threshold`] derives it from the snapshot policy's threshold
//! (an eighth of it), so that compaction after each snapshot keeps the files within about
//! twice the threshold; [`FsOptions::small`] sizes segments (1 MiB) for a small application;
//! the defaults (64 MiB) are for throughput.
//! So a log may start anywhere up to the snapshot's index plus one, and
//! [`LogStore::restore`](raft_core::LogStore::restore) returns the snapshot's meta beside the
//! entries, and the membership entries among them (found by the scan at open and kept in
//! memory, in step with appends, truncations and compactions: they are rare).
//!
//! [`LogStore::byte_count`](raft_core::LogStore::byte_count) (the runtime's `raft_log_bytes`)
//! counts the record bytes in the segment files: every entry appended and not yet removed
//! from disk, compacted entries included until compaction removes their segment, never the
//! snapshot file (the snapshot policy compares the count with a threshold: a snapshot larger
//! than it must not trigger the next one). Preallocated zeros are not counted: the files are
//! longer than the count by the unwritten tail of the segment being written and the segment
//! prepared ahead, at most two segments (full segments are cut to their records when the
//! next one starts). Counting the zeros would make the count, and so the snapshot policy,
//! move in steps of a whole segment and start at one segment for an empty log.
//!
//! Appends return once the entries are queued and readable (from an in-memory cache of the
//! newest entries); one I/O thread (a `std::thread`, never a tokio worker) takes every queued
//! job, writes them, issues one `fdatasync` for the group and then publishes the new durable
//! entry, so the runtime can replicate while its own disk write is in flight and many appends
//! share one sync. The metrics `raft_fsync_seconds` and `raft_group_commit_entries` show the
//! sync latency and the group sizes.
//!
//! On open every record is validated: a torn or zero-filled tail of the last segment (a crash
//! mid-write: never reported durable) is cut with a warning; damage anywhere else, a missing
//! segment, a log starting after the snapshot's index plus one ([`Error::Uncovered`]), a bad
//! hard-state file or a damaged snapshot (its trailer and the whole data's checksum are
//! checked) is refused with an error naming the file and offset. Leftover temporary files are
//! removed. A
//! failed write or fsync poisons the log: every later write fails, the durability watch closes
//! and the node stops, instead of acknowledging data the kernel may have dropped. A full disk
//! fails the same way with [`Error::DiskFull`].
//!
//! File access goes through the [`fs::Fs`] trait; [`testing::SimFs`] implements it in memory
//! with simulated power loss (torn sectors, lost directory entries) for crash tests.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use raft_core::LogStore;
//! use raft_storage_fs::{FsLogStore, FsOptions};
//!
//! let store = FsLogStore::open("./raft-data", FsOptions::small())?;
//! let restored = store.restore().await?; // hard state, snapshot and entry ids
//! println!("{} entries on disk after {:?}", restored.entries.len(), restored.snapshot);
//! // ... a node runs on the store; at the end: node.shutdown().await, then
//! store.close().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod error;
pub mod fs;
mod hard_state;
mod io;
mod options;
pub mod record;
mod recover;
mod segment;
mod shared;
mod snapshot;
mod state;
mod store;
pub mod testing;

pub use error::Error;
pub use options::FsOptions;
pub use state::FsStats;
pub use store::FsLogStore;
