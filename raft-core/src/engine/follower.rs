//! AppendEntries on a follower (Raft §5.3), with the rules real implementations broke:
//! - an AppendEntries whose entries all match truncates nothing (a delayed duplicate must not
//!   cut newer entries);
//! - a conflict rolls back every pre-committed entry it removes, in reverse order, *before* the
//!   truncation, and never truncates at or below the commit index;
//! - the commit index follows `min(leader_commit, last index this request verified)`;
//! - success is acknowledged only once the acknowledged entries are durable (etcd's
//!   `msgsAfterAppend`): acks wait in `FollowerState` for `Input::LogPersisted`.

use tracing::warn;

use super::core::Core;
use super::follower_reads::FollowerReads;
use super::output::Output;
use crate::message::{AppendEntries, AppendEntriesResponse, AppendOutcome, ConflictHint, Message};
use crate::types::{LogIndex, NodeId, Term};

/// A success reply waiting for its entries to become durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PendingAck {
    leader: NodeId,
    seq: u64,
    match_index: LogIndex,
}

/// The stream a follower opened (streaming replication).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FollowerStream {
    /// Its `OpenStream` seq.
    pub(crate) seq: u64,
    /// When it opened, or last brought entries or a snapshot chunk.
    pub(crate) traffic_ms: u64,
}

/// Follower-only state.
#[derive(Clone, Debug, Default)]
pub(crate) struct FollowerState {
    pending_acks: Vec<PendingAck>,
    /// Reads waiting for a read index from the leader.
    pub(crate) reads: FollowerReads,
    /// Streaming replication: the stream this follower opened to its leader.
    pub(crate) stream: Option<FollowerStream>,
}

impl FollowerState {
    /// Sends every held ack whose entries are now durable.
    pub(crate) fn flush_acks(&mut self, core: &mut Core) {
        let durable = core.durable_index;
        let term = core.term;
        self.pending_acks.retain(|ack| {
            if ack.match_index > durable {
                return true;
            }
            let response = success(term, ack.seq, ack.match_index);
            core.send(ack.leader, response);
            false
        });
    }
}

fn success(term: Term, seq: u64, match_index: LogIndex) -> Message {
    Message::AppendEntriesResponse(AppendEntriesResponse {
        term,
        seq,
        outcome: AppendOutcome::Success { match_index },
    })
}

/// Whether an AppendEntries is fit to handle: sent by the leader it names, its entries
/// consecutive. Peer input is checked, never trusted.
pub(crate) fn is_well_formed(core: &Core, from: NodeId, request: &AppendEntries) -> bool {
    if from != request.leader_id || !entries_are_consecutive(request) {
        warn!(node = %core.id, %from, "dropping malformed AppendEntries");
        return false;
    }
    true
}

impl FollowerState {
    /// Handles an AppendEntries of the current term from the leader this follower just
    /// accepted (checked by [`is_well_formed`] first).
    pub(crate) fn on_append_entries(
        &mut self,
        core: &mut Core,
        from: NodeId,
        mut request: AppendEntries,
    ) {
        let prev = request.prev_log_id;
        if let Some(hint) = conflict_hint(core, prev.index, prev.term) {
            let response = Message::AppendEntriesResponse(AppendEntriesResponse {
                term: core.term,
                seq: request.seq,
                outcome: AppendOutcome::Conflict { hint },
            });
            core.send(from, response);
            return;
        }
        let verified = prev.index.plus(request.entries.len() as u64);
        let Some(new_from) = first_new_entry(core, &request) else {
            warn!(node = %core.id, %from, "AppendEntries would truncate committed entries");
            return;
        };
        if new_from < request.entries.len() {
            let entries = request.entries.split_off(new_from);
            truncate_conflicting(core, entries.first().map(|e| e.log_id.index));
            core.append_local(entries);
        }
        let commit = request.leader_commit.min(verified);
        core.commit_to(commit);
        self.ack(core, from, request.seq, verified);
    }

    /// Acknowledges `match_index` now if durable, or once it is.
    fn ack(&mut self, core: &mut Core, leader: NodeId, seq: u64, match_index: LogIndex) {
        if match_index <= core.durable_index {
            let response = success(core.term, seq, match_index);
            core.send(leader, response);
            return;
        }
        self.pending_acks.push(PendingAck {
            leader,
            seq,
            match_index,
        });
    }
}

/// `None` if the log holds `prev`; otherwise where the leader should look next.
fn conflict_hint(core: &Core, prev_index: LogIndex, prev_term: Term) -> Option<ConflictHint> {
    let log = &core.log;
    if prev_index > log.last_index() {
        return Some(ConflictHint {
            term: None,
            index: log.last_index().next(),
        });
    }
    match log.term_at(prev_index) {
        Some(term) if term == prev_term => None,
        Some(term) => Some(ConflictHint {
            term: Some(term),
            index: log.first_index_of_run_at(prev_index),
        }),
        // Below the compacted prefix: everything there is committed and so matches.
        None => None,
    }
}

/// The position in `request.entries` of the first entry the log lacks or contradicts
/// (`entries.len()` when all match), or `None` if accepting it would remove a committed
/// entry (a leader never asks that; the request is bogus).
fn first_new_entry(core: &Core, request: &AppendEntries) -> Option<usize> {
    let log = &core.log;
    for (position, entry) in request.entries.iter().enumerate() {
        let index = entry.log_id.index;
        if index <= log.base_index() {
            // In the compacted prefix: covered by the snapshot, committed, so it matches.
            continue;
        }
        match log.term_at(index) {
            Some(term) if term == entry.log_id.term => continue,
            Some(_) if index <= core.commit_index => return None,
            _ => return Some(position),
        }
    }
    Some(request.entries.len())
}

/// Rolls back then truncates the log from `from`, if the log holds entries there.
fn truncate_conflicting(core: &mut Core, from: Option<LogIndex>) {
    let Some(from) = from else { return };
    let last = core.log.last_index();
    if from > last {
        return;
    }
    assert!(from > core.commit_index, "never truncate committed entries");
    core.outputs.push(Output::Rollback { first: from, last });
    core.outputs.push(Output::TruncateLog { from });
    core.log.truncate_from(from);
    core.configs.truncate_from(from);
    core.log_epoch += 1;
    core.durable_index = core.durable_index.min(from.prev());
}

/// Whether the entries follow `prev_log_id` one index at a time with terms that never decrease
/// and never exceed the request's term. Peer input is checked, never trusted.
fn entries_are_consecutive(request: &AppendEntries) -> bool {
    let mut expected = request.prev_log_id;
    for entry in &request.entries {
        if entry.log_id.index != expected.index.next()
            || entry.log_id.term < expected.term
            || entry.log_id.term > request.term
        {
            return false;
        }
        expected = entry.log_id;
    }
    true
}
