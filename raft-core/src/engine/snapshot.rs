//! Snapshots on this node: when to take one, what to compact after, and how a restarting node
//! rebuilds its log view from a snapshot plus the log after it.
//!
//! Rules (PITFALLS, "Snapshots"):
//! - a snapshot covers exactly the committed prefix up to its index: `CreateSnapshot` follows
//!   the `Commit` of that index and precedes any later one;
//! - the log is compacted only after the snapshot is durable (`Input::SnapshotCreated`), keeping
//!   `snapshot_keep_entries` below it, and never past the durable log;
//! - a snapshot never moves the commit index back; an older one than the latest is ignored.

use tracing::{debug, info};

use super::log_ids::LogIds;
use super::{Core, Engine, LogEntryMeta, Output};
use crate::error::Error;
use crate::snapshot::SnapshotMeta;
use crate::types::{LogIndex, Term};

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
        let Some(last_log_id) = self.log.log_id_at(self.commit_index) else {
            return;
        };
        self.creating_snapshot = true;
        debug!(node = %self.id, %last_log_id, "creating a snapshot");
        self.outputs.push(Output::CreateSnapshot {
            last_log_id,
            membership: self.membership.clone(),
        });
    }

    /// Adopts a durable snapshot newer than the current one. Returns whether it was newer.
    pub(crate) fn adopt_snapshot(&mut self, meta: SnapshotMeta) -> bool {
        if meta.last_log_id.index <= self.snapshot_index() {
            return false;
        }
        self.log.set_snapshot(meta.last_log_id);
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
}

impl Engine {
    pub(super) fn on_snapshot_requested(&mut self) {
        self.core.create_snapshot();
    }

    pub(super) fn on_snapshot_created(&mut self, meta: SnapshotMeta) {
        self.core.creating_snapshot = false;
        let at = meta.last_log_id;
        let beyond_commit = at.index > self.core.commit_index;
        let not_in_log = at.index > self.core.log.base_index() && !self.core.log.contains(at);
        if beyond_commit || not_in_log {
            // Not a snapshot of this node's committed log: never compact after it.
            debug!(node = %self.core.id, %at, "ignoring a snapshot report that does not fit the log");
            return;
        }
        if self.core.adopt_snapshot(meta) {
            info!(node = %self.core.id, %at, "snapshot created");
            self.core.compact_log();
        }
    }

    pub(super) fn on_snapshot_failed(&mut self) {
        self.core.creating_snapshot = false;
    }
}

/// The engine's log view, commit index and start-up outputs rebuilt from a snapshot and the
/// log entries the store kept.
pub(super) struct RestoredLog {
    pub(super) log: LogIds,
    pub(super) commit_index: LogIndex,
    /// Outputs to run first: restore the state machine, and realign a store whose log the
    /// snapshot replaced (it crashed between saving the snapshot and cutting the log).
    pub(super) outputs: Vec<Output>,
}

/// Rebuilds the log view. Without a snapshot the log must start at index 1; with one it may
/// start anywhere up to the snapshot's index plus one, and a log that does not hold the
/// snapshot's last entry (or ends before it) is discarded for the snapshot.
pub(super) fn restore_log(
    snapshot: Option<&SnapshotMeta>,
    entries: &[LogEntryMeta],
    commit: LogIndex,
) -> Result<RestoredLog, Error> {
    let first = entries.first().map_or(LogIndex(1), |e| e.log_id.index);
    let Some(snapshot) = snapshot else {
        if first != LogIndex(1) {
            return Err(Error::Restore(format!(
                "the log starts at {first} but there is no snapshot before it"
            )));
        }
        let log = push_entries(LogIds::new(), entries)?;
        let commit_index = commit.min(log.last_index());
        return Ok(RestoredLog {
            log,
            commit_index,
            outputs: Vec::new(),
        });
    };
    let at = snapshot.last_log_id;
    if first > at.index.next() {
        return Err(Error::Restore(format!(
            "the log starts at {first}, after a gap following the {snapshot}"
        )));
    }
    let mut log = push_entries(LogIds::restored(first.prev()), entries)?;
    let mut outputs = vec![Output::RestoreSnapshot {
        meta: snapshot.clone(),
    }];
    let holds_snapshot_entry = at.index <= log.last_index()
        && entries
            .iter()
            .find(|e| e.log_id.index == at.index)
            .is_none_or(|e| e.log_id.term == at.term);
    if holds_snapshot_entry && !entries.is_empty() {
        log.set_snapshot(at);
        let commit_index = commit.min(log.last_index()).max(at.index);
        return Ok(RestoredLog {
            log,
            commit_index,
            outputs,
        });
    }
    // The log ends before the snapshot or disagrees with it: the snapshot replaces it.
    if !entries.is_empty() {
        outputs.push(Output::TruncateLog { from: first });
    }
    outputs.push(Output::CompactLog {
        before: at.index.next(),
    });
    Ok(RestoredLog {
        log: LogIds::starting_after(at),
        commit_index: at.index,
        outputs,
    })
}

fn push_entries(mut log: LogIds, entries: &[LogEntryMeta]) -> Result<LogIds, Error> {
    let mut last_term = Term(0);
    for entry in entries {
        let expected = log.last_index().next();
        if entry.log_id.index != expected {
            return Err(Error::Restore(format!(
                "log entry {} follows {} (expected {expected})",
                entry.log_id.index,
                log.last_index()
            )));
        }
        if entry.log_id.term < last_term {
            return Err(Error::Restore(format!(
                "entry {} has term {} after term {last_term}",
                entry.log_id.index, entry.log_id.term
            )));
        }
        last_term = entry.log_id.term;
        log.push(entry.log_id, entry.payload_len);
    }
    Ok(log)
}
