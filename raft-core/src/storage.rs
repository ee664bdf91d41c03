//! The log store plugin: where a node keeps its log, its hard state and its snapshots.
//!
//! The runtime calls `append` and `truncate` from one task (the node's event loop), in order;
//! `save_hard_state` from another (the hard-state writer), so it may run concurrently with log
//! writes (no order between the two is needed: the engine copes at restart with a log that is
//! newer than the hard state); and `read` from the per-peer sender tasks and the apply task,
//! concurrently with everything else.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use tokio::sync::watch;

use crate::engine::RestoredState;
use crate::error::Error;
use crate::snapshot::{SnapshotReader, SnapshotWriter};
use crate::types::{Entry, HardState, LogId, LogIndex};

/// A node's durable log and hard state.
///
/// The contract, method by method, is what keeps acknowledged writes safe:
/// - [`append`](LogStore::append) makes entries *readable* before it returns, but need not make
///   them durable: durability is reported later through [`durable`](LogStore::durable). This is
///   what lets the leader replicate while its own disk write is in flight (NuRaft's parallel log
///   appending), so `append` should return quickly (queue the write; never wait for an fsync).
/// - Durability advances in the order writes were issued, and only ever describes entries that
///   are still in the log: after `truncate(from)` returns, the durable id is below `from` until
///   a later append becomes durable.
/// - [`save_hard_state`](LogStore::save_hard_state) returns only once the hard state is durable.
/// - Snapshots live beside the log: [`begin_snapshot`](LogStore::begin_snapshot) writes a new
///   one that becomes current atomically and durably when finished (a crash while writing leaves
///   the previous one usable); [`open_snapshot`](LogStore::open_snapshot) reads the current one.
///   The log may then be compacted below the snapshot, so after a restart its first entry can
///   be anywhere up to the snapshot's index plus one.
///
/// An error from any write stops the node (it cannot know what is durable any more); an error
/// from a read fails only that read.
#[async_trait]
pub trait LogStore: Send + Sync + 'static {
    /// The durable state to start from: the hard state, the latest snapshot's description and
    /// the id and size of every entry, in index order from the first held. Called once when a
    /// node starts.
    async fn restore(&self) -> Result<RestoredState, Error>;

    /// Appends `entries` (consecutive, following the last entry; into an empty log, at the
    /// index the last `truncate` or `compact` named). On return they are readable; they become
    /// durable later, in order, as [`durable`](LogStore::durable) reports.
    async fn append(&self, entries: &[Entry]) -> Result<(), Error>;

    /// Removes every entry at `from` and above; `from` may be the first entry held, leaving the
    /// log empty with `from` as its next index. On return reads no longer see them and the
    /// durable id is below `from`. The runtime truncates committed entries only when a snapshot
    /// from the leader replaces a log that disagrees with it.
    async fn truncate(&self, from: LogIndex) -> Result<(), Error>;

    /// Reads entries `first..=last`. Fewer (or none) are returned if the range is not in the log
    /// any more; the caller checks. May run concurrently with writes.
    async fn read(&self, first: LogIndex, last: LogIndex) -> Result<Vec<Entry>, Error>;

    /// Makes `hard_state` (term, vote, commit index) durable, replacing the previous one
    /// atomically; returns once it is durable.
    async fn save_hard_state(&self, hard_state: HardState) -> Result<(), Error>;

    /// Drops entries below `before`, which a durable snapshot covers. A store may keep some of
    /// them for a while (a file store drops whole segments); reads of them may return them or
    /// nothing. When `before` is past the last entry, the log becomes empty and `before` is its
    /// next index (a follower that installed a snapshot continues after it).
    async fn compact(&self, before: LogIndex) -> Result<(), Error>;

    /// Starts writing a new snapshot. Any number may be in progress; see [`SnapshotWriter`].
    async fn begin_snapshot(&self) -> Result<Box<dyn SnapshotWriter>, Error>;

    /// The latest durable snapshot, `None` if there is none yet. The reader stays valid (reads
    /// the same data) after a newer snapshot replaces it, for as long as it is held.
    async fn open_snapshot(&self) -> Result<Option<Arc<dyn SnapshotReader>>, Error>;

    /// The last entry of the log such that it and every entry before it is durable, as a watch
    /// the runtime waits on. It starts at the last entry found at open (everything on disk then
    /// is durable).
    fn durable(&self) -> watch::Receiver<LogId>;

    /// The live size of the log in bytes (payloads plus the store's own overhead); the snapshot
    /// policy compares it with a threshold.
    fn byte_count(&self) -> u64;

    /// The claim of the node this store backs, shared by every clone of the store (keep one
    /// [`StoreClaim`] in the state the clones share). A store backs one running node at a time:
    /// `Node::start` takes the claim before reading the store and a second start fails with
    /// [`Error::StoreInUse`]; the claim is released when the node has stopped.
    fn claim(&self) -> &StoreClaim;
}

/// Whether a log store backs a running node. See [`LogStore::claim`].
///
/// ```
/// use raft_core::storage::StoreClaim;
///
/// let claim = StoreClaim::default();
/// assert!(claim.acquire().is_ok());
/// assert!(claim.acquire().is_err()); // a second node is refused
/// claim.release();
/// assert!(claim.acquire().is_ok()); // free again once the first stopped
/// ```
#[derive(Debug, Default)]
pub struct StoreClaim {
    held: AtomicBool,
}

impl StoreClaim {
    /// Takes the claim.
    ///
    /// # Errors
    /// [`Error::StoreInUse`] if it is held already.
    pub fn acquire(&self) -> Result<(), Error> {
        self.held
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
            .map_err(|_| Error::StoreInUse)
    }

    /// Gives the claim back.
    pub fn release(&self) {
        self.held.store(false, Ordering::Release);
    }

    /// Whether a node holds the claim.
    #[must_use]
    pub fn is_held(&self) -> bool {
        self.held.load(Ordering::Acquire)
    }
}
