//! The log store plugin: where a node keeps its log and hard state.
//!
//! The runtime calls `append` and `truncate` from one task (the node's event loop), in order;
//! `save_hard_state` from another (the hard-state writer), so it may run concurrently with log
//! writes (no order between the two is needed: the engine copes at restart with a log that is
//! newer than the hard state); and `read` from the per-peer sender tasks and the apply task,
//! concurrently with everything else.

use async_trait::async_trait;
use tokio::sync::watch;

use crate::engine::RestoredState;
use crate::error::Error;
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
///
/// An error from any write stops the node (it cannot know what is durable any more); an error
/// from a read fails only that read.
#[async_trait]
pub trait LogStore: Send + Sync + 'static {
    /// The durable state to start from: the hard state and the id and size of every entry, in
    /// index order from the first. Called once when a node starts.
    async fn restore(&self) -> Result<RestoredState, Error>;

    /// Appends `entries` (consecutive, following the last entry). On return they are readable;
    /// they become durable later, in order, as [`durable`](LogStore::durable) reports.
    async fn append(&self, entries: &[Entry]) -> Result<(), Error>;

    /// Removes every entry at `from` and above. On return reads no longer see them and the
    /// durable id is below `from`. The runtime never truncates committed entries.
    async fn truncate(&self, from: LogIndex) -> Result<(), Error>;

    /// Reads entries `first..=last`. Fewer (or none) are returned if the range is not in the log
    /// any more; the caller checks. May run concurrently with writes.
    async fn read(&self, first: LogIndex, last: LogIndex) -> Result<Vec<Entry>, Error>;

    /// Makes `hard_state` (term, vote, commit index) durable, replacing the previous one
    /// atomically; returns once it is durable.
    async fn save_hard_state(&self, hard_state: HardState) -> Result<(), Error>;

    /// Drops entries below `before` (after a snapshot covers them). Reads of them return nothing.
    async fn compact(&self, before: LogIndex) -> Result<(), Error>;

    /// The last entry of the log such that it and every entry before it is durable, as a watch
    /// the runtime waits on. It starts at the last entry found at open (everything on disk then
    /// is durable).
    fn durable(&self) -> watch::Receiver<LogId>;

    /// The last entry of the log, durable or not ([`LogId::ZERO`] when empty).
    fn last_log_id(&self) -> LogId;

    /// The live size of the log in bytes (payloads plus the store's own overhead); the snapshot
    /// policy compares it with a threshold.
    fn byte_count(&self) -> u64;
}
