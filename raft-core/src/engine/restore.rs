//! How a restarting engine rebuilds its view of the log from what the store kept: the durable
//! hard state, the latest snapshot and the id of every entry after it ([`RestoredState`]).
//!
//! Without a snapshot the log must start at index 1; with one it may start anywhere up to the
//! snapshot's index plus one, and a log that does not hold the snapshot's last entry (or ends
//! before it) is discarded for the snapshot (the store crashed between saving the snapshot and
//! cutting its log).

use super::log_ids::LogIds;
use super::output::Output;
use crate::error::Error;
use crate::membership::Membership;
use crate::snapshot::SnapshotMeta;
use crate::types::{HardState, LogId, LogIndex, Term};

/// The id and payload size of one entry, as a log store reports them at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogEntryMeta {
    /// The entry's id.
    pub log_id: LogId,
    /// The entry's payload size in bytes.
    pub payload_len: u64,
}

/// Durable state handed to a (re)starting engine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoredState {
    /// The durable hard state.
    pub hard_state: HardState,
    /// The latest durable snapshot, if any.
    pub snapshot: Option<SnapshotMeta>,
    /// Every entry of the durable log, in index order from the first held: index 1 without a
    /// snapshot; with one, anywhere up to the snapshot's index plus one (entries the snapshot
    /// covers may still be there). An empty log with a snapshot continues after it.
    pub entries: Vec<LogEntryMeta>,
    /// Every membership entry among `entries` (at least those after the snapshot), in index
    /// order: the latest one is the configuration in force, committed or not.
    pub memberships: Vec<(LogId, Membership)>,
}

/// The engine's log view, commit index and start-up outputs rebuilt from a snapshot and the
/// log entries the store kept.
pub(crate) struct RestoredLog {
    pub(crate) log: LogIds,
    pub(crate) commit_index: LogIndex,
    /// Outputs to run first: restore the state machine, and realign a store whose log the
    /// snapshot replaced (it crashed between saving the snapshot and cutting the log).
    pub(crate) outputs: Vec<Output>,
}

/// Rebuilds the log view. Without a snapshot the log must start at index 1; with one it may
/// start anywhere up to the snapshot's index plus one, and a log that does not hold the
/// snapshot's last entry (or ends before it) is discarded for the snapshot.
pub(crate) fn restore_log(
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
