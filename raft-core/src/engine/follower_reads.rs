//! Follower reads (Raft thesis §6.4): a follower asks its leader for a read index, one
//! request for every read that arrived before it left, and answers each read once it has
//! applied that index. The leader confirms the index as for its own reads (ReadIndex), so a
//! follower read is linearizable and costs the leader one small request per batch instead of
//! serving the read itself.
//!
//! One request is in flight at a time; reads arriving meanwhile wait for the next. A request
//! without an answer within the request timeout, a transport failure, a change of leader or of
//! role refuse the reads waiting (their callers retry).

use super::core::{Core, PlantedBug};
use super::output::Output;
use crate::message::{Message, ReadIndex, ReadIndexResponse};
use crate::types::NodeId;

/// The request in flight and the reads it serves.
#[derive(Clone, Debug)]
struct Batch {
    leader: NodeId,
    seq: u64,
    sent_ms: u64,
    ids: Vec<u64>,
}

/// A follower's reads waiting for a read index.
#[derive(Clone, Debug, Default)]
pub(crate) struct FollowerReads {
    /// Reads for the next request.
    waiting: Vec<u64>,
    inflight: Option<Batch>,
}

impl FollowerReads {
    /// A read asked of this follower.
    pub(crate) fn on_requested(&mut self, core: &mut Core, id: u64) {
        if core.bug(PlantedBug::FollowerReadEarly) {
            let index = core.commit_index;
            core.outputs.push(Output::ReadReady { id, index });
            return;
        }
        if core.leader_id.is_none() {
            core.outputs.push(Output::ReadRejected { id, leader: None });
            return;
        }
        self.waiting.push(id);
        self.maybe_send(core);
    }

    /// Sends the next request if none is in flight and reads wait.
    fn maybe_send(&mut self, core: &mut Core) {
        let Some(leader) = core.leader_id else {
            self.reject_all(core);
            return;
        };
        if self.inflight.is_some() || self.waiting.is_empty() {
            return;
        }
        let seq = core.take_seq();
        let request = ReadIndex {
            term: core.term,
            follower_id: core.id,
            seq,
        };
        core.send(leader, Message::ReadIndex(request));
        self.inflight = Some(Batch {
            leader,
            seq,
            sent_ms: core.now_ms,
            ids: std::mem::take(&mut self.waiting),
        });
    }

    /// The leader answered request `response.seq`.
    pub(crate) fn on_response(
        &mut self,
        core: &mut Core,
        from: NodeId,
        response: &ReadIndexResponse,
    ) {
        let ours = self
            .inflight
            .as_ref()
            .is_some_and(|batch| batch.seq == response.seq && batch.leader == from);
        if !ours {
            return;
        }
        if let Some(batch) = self.inflight.take() {
            for id in batch.ids {
                let output = match response.index {
                    Some(index) => Output::ReadReady { id, index },
                    None => Output::ReadRejected {
                        id,
                        leader: core.leader_id,
                    },
                };
                core.outputs.push(output);
            }
        }
        self.maybe_send(core);
    }

    /// At a tick: a request unanswered for the request timeout fails its reads.
    pub(crate) fn on_tick(&mut self, core: &mut Core) {
        let timeout_ms = core.config.request_timeout_ms;
        if self
            .inflight
            .as_ref()
            .is_some_and(|batch| batch.sent_ms + timeout_ms <= core.now_ms)
        {
            self.fail_inflight(core);
        }
    }

    /// The transport could not deliver request `seq`.
    pub(crate) fn on_send_failed(&mut self, core: &mut Core, seq: u64) {
        if self.inflight.as_ref().is_some_and(|batch| batch.seq == seq) {
            self.fail_inflight(core);
        }
    }

    fn fail_inflight(&mut self, core: &mut Core) {
        if let Some(batch) = self.inflight.take() {
            for id in batch.ids {
                let leader = core.leader_id;
                core.outputs.push(Output::ReadRejected { id, leader });
            }
        }
        self.maybe_send(core);
    }

    /// Refuses every read (the leader or the role changed), naming the leader if known.
    pub(crate) fn reject_all(&mut self, core: &mut Core) {
        let inflight = self
            .inflight
            .take()
            .map(|batch| batch.ids)
            .unwrap_or_default();
        let leader = core.leader_id;
        for id in inflight.into_iter().chain(self.waiting.drain(..)) {
            core.outputs.push(Output::ReadRejected { id, leader });
        }
    }
}
