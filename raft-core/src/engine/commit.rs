//! The leader's commit rule (Raft §5.3, §5.4.2; NuRaft's parallel log appending).
//!
//! The commit index is the largest N held by a quorum of *durable* logs whose entry is of the
//! current term. The leader counts itself at its own durable index, so its disk write runs in
//! parallel with replication: a quorum of followers can commit an entry before the leader's own
//! fsync finishes. Entries of earlier terms are never committed by counting replicas (Figure 8);
//! they commit together with an entry of the current term. While a configuration is joint, the
//! quorum is a majority of both voter sets (`Membership::committed_index`).

use std::collections::BTreeMap;

use super::core::{Core, PlantedBug};
use super::replication::Progress;
use crate::types::NodeId;

/// Moves the commit index to the highest entry of the current term that a quorum of durable
/// logs holds: a majority of every voter set of the configuration in force (both, while
/// joint). Learners never count.
pub(crate) fn maybe_commit(core: &mut Core, progress: &BTreeMap<NodeId, Progress>) {
    let own = if core.bug(PlantedBug::CommitBeforeOwnSync) {
        core.log.last_index()
    } else {
        core.durable_index
    };
    let index_of = |id: NodeId| {
        if id == core.id {
            Some(own)
        } else {
            progress.get(&id).map(|p| p.match_index)
        }
    };
    let candidate = if core.bug(PlantedBug::LearnerInQuorum) {
        core.membership()
            .counting_learners()
            .committed_index(index_of)
    } else {
        core.membership().committed_index(index_of)
    };
    // `commit_to` ignores an index at or below the commit index.
    let current_term = core.log.term_at(candidate) == Some(core.term);
    if current_term || core.bug(PlantedBug::CommitByCount) {
        core.commit_to(candidate);
    }
}
