//! InstallSnapshot on a follower (Raft §7): chunks arrive one at a time, in order, each checked
//! (term, leader, chunk checksum); the follower answers where the next chunk should start, so a
//! lost or damaged chunk is just sent again. The last chunk is accepted only if the whole
//! data's checksum matches; then the snapshot is saved durably and installed:
//! - a log that holds the snapshot's last entry keeps the entries after it (a rule real implementations broke: never
//!   throw away entries the snapshot does not cover when the logs agree);
//! - otherwise the whole log goes and continues after the snapshot. Only the entries *above*
//!   the snapshot's index are known to be discarded (by Log Matching, nothing after a mismatch
//!   at the snapshot's index can match): those pre-committed are rolled back first. Entries
//!   between the commit index and the snapshot's index may well have committed on the leader;
//!   they are not rolled back: the restore replaces the state, and their callers learn the
//!   outcome is unknown;
//! - the commit index moves up to the snapshot's index, never down; a snapshot the commit index
//!   already covers is not transferred at all (`Covered`).

use tracing::{info, warn};

use super::core::{Core, Receiving};
use super::follower::FollowerState;
use super::log_ids::LogIds;
use super::output::Output;
use crate::message::{InstallSnapshot, InstallSnapshotResponse, Message, SnapshotOutcome};
use crate::snapshot::SnapshotMeta;
use crate::types::NodeId;

/// Handles an InstallSnapshot chunk of the current term from the leader this follower just
/// accepted (the sender was checked by [`is_from_its_leader`]).
pub(crate) fn on_install_snapshot(
    core: &mut Core,
    follower: &mut FollowerState,
    request: InstallSnapshot,
) {
    let from = request.leader_id;
    let seq = request.seq;
    let outcome = receive_chunk(core, follower, request);
    let response = Message::InstallSnapshotResponse(InstallSnapshotResponse {
        term: core.term,
        seq,
        outcome,
    });
    core.send(from, response);
}

/// Whether a chunk comes from the leader it names (one relayed for another is dropped).
pub(crate) fn is_from_its_leader(core: &Core, from: NodeId, request: &InstallSnapshot) -> bool {
    if from != request.leader_id {
        warn!(node = %core.id, %from, "dropping InstallSnapshot relayed for another leader");
        return false;
    }
    true
}

fn receive_chunk(
    core: &mut Core,
    follower: &mut FollowerState,
    request: InstallSnapshot,
) -> SnapshotOutcome {
    let commit_index = core.commit_index;
    let (term, leader) = (core.term, request.leader_id);
    if core
        .receiving
        .as_ref()
        .is_some_and(|r| (r.term, r.leader) != (term, leader))
    {
        core.receiving = None;
    }
    if request.meta.last_log_id.index <= commit_index {
        core.receiving = None;
        return SnapshotOutcome::Covered { commit_index };
    }
    let len = request.data.len() as u64;
    let end = request.offset.saturating_add(len);
    let well_formed = end <= request.meta.size
        && request.done == (end == request.meta.size)
        && crc32c::crc32c(&request.data) == request.chunk_crc
        && request.meta.last_log_id.term <= request.term;
    let expected = match &core.receiving {
        Some(receiving) if receiving.meta == request.meta => receiving.next_offset,
        _ => 0,
    };
    if !well_formed {
        warn!(node = %core.id, offset = request.offset, "damaged snapshot chunk");
        return SnapshotOutcome::Continue { offset: expected };
    }
    if request.offset != expected {
        return SnapshotOutcome::Continue { offset: expected };
    }
    let crc = match &core.receiving {
        Some(receiving) if expected > 0 => receiving.crc,
        _ => 0,
    };
    let crc = crc32c::crc32c_append(crc, &request.data);
    if request.done && crc != request.meta.checksum {
        warn!(node = %core.id, meta = %request.meta, "snapshot data failed its checksum");
        core.receiving = None;
        return SnapshotOutcome::Continue { offset: 0 };
    }
    core.receiving = Some(Receiving {
        term,
        leader,
        meta: request.meta.clone(),
        next_offset: end,
        crc,
    });
    core.outputs.push(Output::SaveSnapshotChunk {
        meta: request.meta.clone(),
        offset: request.offset,
        data: request.data,
        done: request.done,
    });
    if !request.done {
        return SnapshotOutcome::Continue { offset: end };
    }
    core.receiving = None;
    install_snapshot(core, follower, request.meta);
    SnapshotOutcome::Installed
}

/// The snapshot is durable: make the log and the state machine continue after it.
fn install_snapshot(core: &mut Core, follower: &mut FollowerState, meta: SnapshotMeta) {
    let at = meta.last_log_id;
    info!(node = %core.id, %meta, "installing a snapshot from the leader");
    if core.log.contains(at) && at.index <= core.log.last_index() {
        // The logs agree up to the snapshot: keep what follows it.
        core.adopt_snapshot(meta.clone());
        core.durable_index = core.durable_index.max(at.index);
        core.commit_index = core.commit_index.max(at.index);
        core.outputs.push(Output::RestoreSnapshot { meta });
        core.compact_log();
        follower.flush_acks(core);
        return;
    }
    let last = core.log.last_index();
    let first_held = core.log.base_index().next();
    let discarded = core.commit_index.max(at.index).next().max(first_held);
    if last >= discarded {
        core.outputs.push(Output::Rollback {
            first: discarded,
            last,
        });
    }
    if last >= first_held {
        core.outputs.push(Output::TruncateLog { from: first_held });
    }
    core.outputs.push(Output::CompactLog {
        before: at.index.next(),
    });
    core.log = LogIds::starting_after(at);
    core.configs.reset(at.index, meta.membership.clone());
    core.log_epoch += 1;
    core.durable_index = at.index;
    core.commit_index = at.index;
    core.snapshot = Some(meta.clone());
    core.outputs.push(Output::RestoreSnapshot { meta });
    follower.flush_acks(core);
}
