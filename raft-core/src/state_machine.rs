//! The state machine plugin: the application's replicated state (NuRaft's lifecycle).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::Error;
use crate::snapshot::{SnapshotReader, SnapshotSource};
use crate::types::Entry;

/// The application state every node applies the committed log to.
///
/// The lifecycle (NuRaft's) and its guarantees:
/// - [`pre_commit`](StateMachine::pre_commit) sees every entry right after it is appended to
///   this node's log (leader and followers), in index order. It must not change the replicated
///   state; it may prepare, validate or compute a speculative answer. In async replication mode
///   the proposer gets this answer and no later one.
/// - [`rollback`](StateMachine::rollback) undoes a pre-commit: a newer leader's log replaced
///   the entries. It is called highest index first, before any replacing entry is pre-committed,
///   and never for a committed entry.
/// - [`commit`](StateMachine::commit) applies committed entries, in index order, each index
///   exactly once per process lifetime, starting after the latest snapshot (or from the first
///   entry when there is none).
/// - [`snapshot`](StateMachine::snapshot) captures the state after the last committed entry
///   (it happens-before the next `commit`); the data is produced later, while commits go on.
/// - [`restore`](StateMachine::restore) replaces the whole state with a snapshot's: at start
///   (the state machine a node starts with is empty; the node restores its latest snapshot, then
///   commits the log after it) and when the leader sent a snapshot.
///
/// These methods are called from one task, one call at a time, never concurrently with each
/// other (a [`SnapshotSource`] runs on its own task). Each gets a batch of consecutive entries (the leader's no-op entries included, with
/// [`Payload::Blank`](crate::Payload::Blank)) and returns exactly one result per entry, in
/// order (a different count stops the node: results would reach the wrong callers). An error from
/// `commit` stops the node: replicas must apply the same log to the same state, so a command the
/// application cannot apply should produce a result describing the failure instead.
#[async_trait]
pub trait StateMachine: Send + Sync + 'static {
    /// Called after `entries` were appended to the local log; one result per entry.
    async fn pre_commit(&self, entries: &[Entry]) -> Result<Vec<Bytes>, Error> {
        Ok(vec![Bytes::new(); entries.len()])
    }

    /// Applies committed `entries`; one result per entry, handed to the proposer.
    async fn commit(&self, entries: &[Entry]) -> Result<Vec<Bytes>, Error>;

    /// Undoes the pre-commit of `entries`, given highest index first.
    async fn rollback(&self, entries: &[Entry]) -> Result<(), Error> {
        let _ = entries;
        Ok(())
    }

    /// Captures the state as it is now, after the last entry `commit` applied, and returns the
    /// source of its data. Nothing is committed while this runs, so it should only *fix a view*
    /// (clone a persistent map, take a copy-on-write reference, note a storage engine's
    /// sequence number) and leave the serialisation to the source, which the runtime drains on
    /// another task while commits continue. An error abandons this snapshot (the node goes on
    /// and tries again later).
    async fn snapshot(&self) -> Result<Box<dyn SnapshotSource>, Error>;

    /// Replaces the whole state with the snapshot's, reading its data in chunks. After it
    /// returns, `commit` continues with the entry after `snapshot.meta().last_log_id`. An error
    /// stops the node.
    async fn restore(&self, snapshot: Arc<dyn SnapshotReader>) -> Result<(), Error>;
}
