//! Linearizable reads by ReadIndex (Raft thesis §6.4).
//!
//! A read takes the commit index as its read index, then waits until a quorum has answered a
//! request sent *after* the read arrived, which proves this node was still the leader when the
//! read was registered. A leader serves reads only once an entry of its own term has committed
//! (its no-op), since before that its commit index may lag the cluster's (PITFALLS).
//! Reads registered while others wait share the next heartbeat round, so a burst of reads costs
//! one round, not one each.

use std::collections::VecDeque;

use super::replication::send_heartbeat;
use super::{Engine, Output, Role};
use crate::types::{LogIndex, NodeId};

#[derive(Clone, Debug)]
struct PendingRead {
    id: u64,
    index: LogIndex,
    /// For each follower: the first seq whose answer confirms this read.
    required: Vec<(NodeId, u64)>,
}

/// Reads waiting on a leader.
#[derive(Clone, Debug, Default)]
pub(crate) struct ReadQueue {
    /// Reads that arrived before this term's no-op committed.
    before_first_commit: Vec<u64>,
    pending: VecDeque<PendingRead>,
}

impl ReadQueue {
    /// Refuses every waiting read (the node stopped leading).
    pub(crate) fn reject_all(&mut self, outputs: &mut Vec<Output>, leader: Option<NodeId>) {
        let waiting = self.before_first_commit.drain(..);
        let pending = self.pending.drain(..).map(|read| read.id);
        for id in waiting.chain(pending) {
            outputs.push(Output::ReadRejected { id, leader });
        }
    }
}

impl Engine {
    pub(super) fn on_read_requested(&mut self, id: u64) {
        let Role::Leader(leader) = &mut self.role else {
            let leader = self.core.leader_id;
            self.core.outputs.push(Output::ReadRejected { id, leader });
            return;
        };
        if self.core.commit_index < leader.noop_index {
            leader.reads.before_first_commit.push(id);
            return;
        }
        self.register_read(id);
        self.confirm_reads();
    }

    fn register_read(&mut self, id: u64) {
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        let next_seq = self.core.next_seq;
        let required = leader
            .progress
            .keys()
            .map(|&peer| (peer, next_seq))
            .collect();
        let first_in_round = leader.reads.pending.is_empty();
        leader.reads.pending.push_back(PendingRead {
            id,
            index: self.core.commit_index,
            required,
        });
        if first_in_round {
            for (&peer, progress) in &mut leader.progress {
                send_heartbeat(&mut self.core, peer, progress, false);
            }
        }
    }

    /// Answers every read a quorum has confirmed, in order; starts the next round if reads
    /// remain. Also registers reads that waited for the term's first commit.
    pub(super) fn confirm_reads(&mut self) {
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        if self.core.commit_index >= leader.noop_index
            && !leader.reads.before_first_commit.is_empty()
        {
            let waiting = std::mem::take(&mut leader.reads.before_first_commit);
            for id in waiting {
                self.register_read(id);
            }
        }
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        let self_vote = usize::from(self.core.membership.is_voter(self.core.id));
        let mut confirmed_any = false;
        while let Some(read) = leader.reads.pending.front() {
            let confirmations = read
                .required
                .iter()
                .filter(|(peer, seq)| {
                    leader
                        .progress
                        .get(peer)
                        .is_some_and(|progress| progress.acked_seq >= *seq)
                })
                .count();
            if confirmations + self_vote < self.core.quorum() {
                break;
            }
            let (id, index) = (read.id, read.index);
            leader.reads.pending.pop_front();
            self.core.outputs.push(Output::ReadReady { id, index });
            confirmed_any = true;
        }
        if confirmed_any && !leader.reads.pending.is_empty() {
            for (&peer, progress) in &mut leader.progress {
                send_heartbeat(&mut self.core, peer, progress, false);
            }
        }
    }
}
