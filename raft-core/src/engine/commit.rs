//! The leader's commit rule (Raft §5.3, §5.4.2; NuRaft's parallel log appending).
//!
//! The commit index is the largest N held by a quorum of *durable* logs whose entry is of the
//! current term. The leader counts itself at its own durable index, so its disk write runs in
//! parallel with replication: a quorum of followers can commit an entry before the leader's own
//! fsync finishes. Entries of earlier terms are never committed by counting replicas (Figure 8);
//! they commit together with an entry of the current term.

use std::collections::BTreeMap;

use super::core::{Core, PlantedBug};
use super::quorum::quorum_index;
use super::replication::Progress;
use crate::types::{LogIndex, NodeId};

/// Moves the commit index to the highest entry of the current term that a quorum of durable
/// logs holds. `scratch` is a reused buffer.
pub(crate) fn maybe_commit(
    core: &mut Core,
    progress: &BTreeMap<NodeId, Progress>,
    scratch: &mut Vec<LogIndex>,
) {
    scratch.clear();
    if core.membership.is_voter(core.id) {
        if core.bug(PlantedBug::CommitBeforeOwnSync) {
            scratch.push(core.log.last_index());
        } else {
            scratch.push(core.durable_index);
        }
    }
    for (peer, progress) in progress {
        if core.membership.is_voter(*peer) {
            scratch.push(progress.match_index);
        }
    }
    let candidate = quorum_index(scratch, core.quorum());
    let current_term = core.log.term_at(candidate) == Some(core.term);
    if candidate > core.commit_index && (current_term || core.bug(PlantedBug::CommitByCount)) {
        core.commit_to(candidate);
    }
}
