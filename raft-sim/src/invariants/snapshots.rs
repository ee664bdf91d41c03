//! Checks on snapshots (ARCHITECTURE.md, "Engine"; Raft §7):
//! - `snapshot-state`: a snapshot created at `s`, and a node's state right after restoring one
//!   at `s`, equal the state of applying the committed entries `1..=s` in order (compared by
//!   digest with the [`Reference`](super::reference::Reference)); a restored snapshot's last
//!   id is the committed entry at its index.
//! - `snapshot-monotonic`: a node's durable snapshot index never decreases (a wipe aside), and
//!   neither does the engine's (checked per step) or the applied index through a restore
//!   (checked where the restore runs).
//! - `snapshot-durable`: the snapshot the engine believes in is durable (it compacts the log
//!   and answers followers after it).
//! - `compact-after-snapshot`: the log is compacted only below a durable snapshot's index.

use raft_core::{LogIndex, SnapshotMeta};

use super::Checker;
use crate::node::SimNode;

impl Checker {
    /// A node captured its state for a snapshot at `meta`'s index.
    pub(crate) fn on_snapshot_created(&mut self, node: &SimNode, meta: &SnapshotMeta, digest: u64) {
        self.check_state(node, "creates", meta, digest);
        self.check_snapshot_membership(node, meta);
    }

    /// A node's state machine was replaced by the snapshot `meta`.
    pub(crate) fn on_restore(&mut self, node: &SimNode, meta: &SnapshotMeta, digest: u64) {
        let at = meta.last_log_id;
        if self.committed_at(at.index) != Some(at) {
            let detail = format!(
                "node {} restores the {meta}; committed there: {:?}",
                node.id,
                self.committed_at(at.index)
            );
            self.fail("snapshot-state", detail);
            return;
        }
        self.check_state(node, "restores", meta, digest);
        self.check_snapshot_membership(node, meta);
    }

    fn check_state(&mut self, node: &SimNode, what: &str, meta: &SnapshotMeta, digest: u64) {
        let at = meta.last_log_id.index;
        match self.reference.digest_at(at) {
            Some(expected) if expected == digest => {}
            Some(_) => {
                let detail = format!(
                    "node {} {what} the {meta} with a state other than the committed one",
                    node.id
                );
                self.fail("snapshot-state", detail);
            }
            None => {
                let detail = format!(
                    "node {} {what} the {meta} before the entries up to it were applied anywhere",
                    node.id
                );
                self.fail("snapshot-state", detail);
            }
        }
    }

    /// The log is compacted below `before`: a durable snapshot must cover what goes.
    pub(crate) fn on_compact(&mut self, node: &SimNode, before: LogIndex) {
        if before > node.snapshot_index().next() {
            let detail = format!(
                "node {} compacts before {before} with a durable snapshot at {}",
                node.id,
                node.snapshot_index()
            );
            self.fail("compact-after-snapshot", detail);
        }
    }

    /// After a batch of outputs: the engine's snapshot is durable, and the durable snapshot
    /// never went back.
    pub(crate) fn after_outputs(&mut self, node: &SimNode) {
        let durable = node.snapshot_index();
        let seen = self.durable_snapshots.entry(node.id).or_default();
        if durable < *seen {
            let detail = format!(
                "node {}'s durable snapshot went from {seen} back to {durable}",
                node.id
            );
            self.fail("snapshot-monotonic", detail);
            return;
        }
        *seen = durable;
        let Some(believed) = node.engine.as_ref().and_then(|engine| engine.snapshot()) else {
            return;
        };
        let is_durable = match node.snapshot_meta() {
            Some(meta) if meta == believed => true,
            // The engine may ignore a snapshot it did not ask for; an older one stays safe.
            Some(meta) => meta.last_log_id.index > believed.last_log_id.index,
            None => false,
        };
        if !is_durable {
            let detail = format!(
                "node {} believes in the {believed}; durable: {:?}",
                node.id,
                node.snapshot_meta().map(ToString::to_string)
            );
            self.fail("snapshot-durable", detail);
        }
    }

    /// A node lost its disk: its durable snapshot starts over.
    pub(crate) fn on_wipe(&mut self, node: &SimNode) {
        self.durable_snapshots.remove(&node.id);
    }
}
