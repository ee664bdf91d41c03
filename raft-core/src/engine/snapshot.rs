//! Snapshots on this node: when to take one and what to compact after (a restarting node's
//! log view is rebuilt in `restore.rs`).
//!
//! Rules (ARCHITECTURE.md, "Engine"; each one some Raft implementation once broke):
//! - a snapshot covers exactly the committed prefix up to its index: `CreateSnapshot` follows
//!   the `Commit` of that index and precedes any later one;
//! - the log is compacted only after the snapshot is durable (`Input::SnapshotCreated`), keeping
//!   `snapshot_keep_entries` below it, and never past the durable log;
//! - a snapshot never moves the commit index back; an older one than the latest is ignored.

use tracing::{debug, info};

use super::core::Core;
use super::output::Output;
use crate::snapshot::SnapshotMeta;
use crate::types::LogIndex;

impl Core {
    /// The index the latest snapshot covers (zero without one).
    pub(crate) fn snapshot_index(&self) -> LogIndex {
        self.log.snapshot_id().index
    }

    /// Asks for a snapshot of the committed state, unless one is being made or nothing was
    /// committed since the last.
    pub(crate) fn create_snapshot(&mut self) {
        if self.creating_snapshot || self.commit_index <= self.snapshot_index() {
            return;
        }
        if self.configs.at(self.commit_index).is_empty() {
            // A node that joined knows no configuration below the entry that added it (the
            // cluster's first one is not in the log): a snapshot there would carry none.
            debug!(node = %self.id, "no configuration known at the commit index yet: no snapshot");
            return;
        }
        let Some(last_log_id) = self.log.log_id_at(self.commit_index) else {
            return;
        };
        self.creating_snapshot = true;
        debug!(node = %self.id, %last_log_id, "creating a snapshot");
        self.outputs.push(Output::CreateSnapshot {
            last_log_id,
            membership: self.configs.at(self.commit_index).clone(),
        });
    }

    /// Adopts a durable snapshot newer than the current one. Returns whether it was newer.
    pub(crate) fn adopt_snapshot(&mut self, meta: SnapshotMeta) -> bool {
        if meta.last_log_id.index <= self.snapshot_index() {
            return false;
        }
        self.log.set_snapshot(meta.last_log_id);
        self.configs.compact(meta.last_log_id.index);
        self.snapshot = Some(meta);
        true
    }

    /// Compacts the log below the snapshot, keeping the configured tail and every entry not
    /// yet durable.
    pub(crate) fn compact_log(&mut self) {
        let keep = self.config.snapshot_keep_entries;
        let before = LogIndex(
            self.snapshot_index()
                .0
                .saturating_add(1)
                .saturating_sub(keep),
        )
        .min(self.durable_index.next());
        if before <= self.log.base_index().next() {
            return;
        }
        self.log.compact_before(before);
        self.outputs.push(Output::CompactLog { before });
    }

    /// A snapshot this node asked for is durable: adopt it and compact the log after it.
    pub(crate) fn on_snapshot_created(&mut self, meta: SnapshotMeta) {
        self.creating_snapshot = false;
        let at = meta.last_log_id;
        let beyond_commit = at.index > self.commit_index;
        let not_in_log = at.index > self.log.base_index() && !self.log.contains(at);
        if beyond_commit || not_in_log {
            // Not a snapshot of this node's committed log: never compact after it.
            debug!(node = %self.id, %at, "ignoring a snapshot report that does not fit the log");
            return;
        }
        if self.adopt_snapshot(meta) {
            info!(node = %self.id, %at, "snapshot created");
            self.compact_log();
        }
    }

    /// The snapshot this node asked for could not be made; a later request may try again.
    pub(crate) fn on_snapshot_failed(&mut self) {
        self.creating_snapshot = false;
    }
}
