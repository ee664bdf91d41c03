//! Linearizable reads by ReadIndex (Raft thesis §6.4).
//!
//! A read takes the commit index as its read index, then waits until a quorum has answered a
//! request sent *after* the read arrived, which proves this node was still the leader when the
//! read was registered. A leader serves reads only once an entry of its own term has committed
//! (its no-op), since before that its commit index may lag the cluster's.
//! Reads registered while others wait share the next heartbeat round, so a burst of reads costs
//! one round, not one each.

use std::collections::{BTreeMap, VecDeque};

use super::core::Core;
use super::output::Output;
use super::replication::{Progress, send_heartbeat};
use crate::message::{Message, ReadIndexResponse};
use crate::types::{LogIndex, NodeId};

/// Who asked for a read: a caller of this node, or a follower (a follower read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A read of this node's caller, by id.
    Local(u64),
    /// A follower's `ReadIndex` request.
    Remote { follower: NodeId, seq: u64 },
}

impl Origin {
    /// Answers the read at `index`, or refuses it (`None`).
    fn answer(self, core: &mut Core, index: Option<LogIndex>, leader: Option<NodeId>) {
        match (self, index) {
            (Origin::Local(id), Some(index)) => core.outputs.push(Output::ReadReady { id, index }),
            (Origin::Local(id), None) => core.outputs.push(Output::ReadRejected { id, leader }),
            (Origin::Remote { follower, seq }, index) => {
                let response = ReadIndexResponse {
                    term: core.term,
                    seq,
                    index,
                };
                core.send(follower, Message::ReadIndexResponse(response));
            }
        }
    }
}

#[derive(Clone, Debug)]
struct PendingRead {
    origin: Origin,
    index: LogIndex,
    /// For each follower: the first seq whose answer confirms this read.
    required: Vec<(NodeId, u64)>,
}

/// Reads waiting on a leader.
#[derive(Clone, Debug, Default)]
pub(crate) struct ReadQueue {
    /// Reads that arrived before this term's no-op committed.
    before_first_commit: Vec<Origin>,
    pending: VecDeque<PendingRead>,
}

impl ReadQueue {
    /// Refuses every waiting read (the node stopped leading).
    pub(crate) fn reject_all(&mut self, core: &mut Core, leader: Option<NodeId>) {
        let waiting = std::mem::take(&mut self.before_first_commit);
        let pending = self.pending.drain(..).map(|read| read.origin);
        for origin in waiting.into_iter().chain(pending.collect::<Vec<_>>()) {
            origin.answer(core, None, leader);
        }
    }

    /// A read arrived at the leader whose no-op is at `noop_index`.
    pub(crate) fn on_read_requested(
        &mut self,
        core: &mut Core,
        progress: &mut BTreeMap<NodeId, Progress>,
        noop_index: LogIndex,
        origin: Origin,
    ) {
        if let Origin::Remote { follower, .. } = origin {
            // A follower has one request in flight: an older one still waiting here was given
            // up (timed out) or comes from the follower's previous life, whose request numbers
            // the new one reuses; answered, it would be taken for the new request, at a read
            // index older than the new request.
            let from =
                |o: &Origin| matches!(o, Origin::Remote { follower: f, .. } if *f == follower);
            self.before_first_commit.retain(|o| !from(o));
            self.pending.retain(|read| !from(&read.origin));
        }
        if core.commit_index < noop_index {
            self.before_first_commit.push(origin);
            return;
        }
        self.register_read(core, progress, origin);
        self.confirm_reads(core, progress, noop_index);
    }

    fn register_read(
        &mut self,
        core: &mut Core,
        progress: &mut BTreeMap<NodeId, Progress>,
        origin: Origin,
    ) {
        let next_seq = core.next_seq;
        let required = progress.keys().map(|&peer| (peer, next_seq)).collect();
        let first_in_round = self.pending.is_empty();
        self.pending.push_back(PendingRead {
            origin,
            index: core.commit_index,
            required,
        });
        if first_in_round {
            heartbeat_all(core, progress);
        }
    }

    /// Answers every read a quorum has confirmed, in order; starts the next round if reads
    /// remain. Also registers reads that waited for the term's first commit.
    pub(crate) fn confirm_reads(
        &mut self,
        core: &mut Core,
        progress: &mut BTreeMap<NodeId, Progress>,
        noop_index: LogIndex,
    ) {
        if core.commit_index >= noop_index && !self.before_first_commit.is_empty() {
            let waiting = std::mem::take(&mut self.before_first_commit);
            for origin in waiting {
                self.register_read(core, progress, origin);
            }
        }
        let mut confirmed_any = false;
        while let Some(read) = self.pending.front() {
            // A quorum of the configuration in force (both voter sets while joint), this
            // leader included, answered a request sent after the read arrived.
            let confirmed = |id: NodeId| {
                id == core.id
                    || read.required.iter().any(|&(peer, seq)| {
                        peer == id && progress.get(&peer).is_some_and(|p| p.acked_seq >= seq)
                    })
            };
            if !core.membership().is_quorum(confirmed) {
                break;
            }
            let (origin, index) = (read.origin, read.index);
            self.pending.pop_front();
            origin.answer(core, Some(index), Some(core.id));
            confirmed_any = true;
        }
        if confirmed_any && !self.pending.is_empty() {
            heartbeat_all(core, progress);
        }
    }
}

/// A heartbeat round to every follower whose answers confirm the reads waiting. It leaves the
/// heartbeat timers alone: under Heartbeat pacing the timer is what sends new entries, and a
/// steady read load must not keep pushing it back.
fn heartbeat_all(core: &mut Core, progress: &mut BTreeMap<NodeId, Progress>) {
    for (&peer, progress) in progress.iter_mut() {
        send_heartbeat(core, peer, progress, false);
    }
}
