//! The leader's state and everything only a leader does: replicate to each follower, count
//! their answers toward commit, confirm reads, hand leadership over, step down without a
//! quorum. The engine calls in here only while it leads, so nothing below asks for the role.
//!
//! Per-follower work is in `replication/`, the commit rule in `commit.rs`, ReadIndex in
//! `read_index.rs`.

use std::collections::BTreeMap;

use bytes::Bytes;
use tracing::info;

use super::commit::maybe_commit;
use super::core::Core;
use super::output::Output;
use super::read_index::ReadQueue;
use super::replication::{self, Progress, replicate, snapshot_send};
use super::status::FollowerStatus;
use crate::message::{AppendEntriesResponse, InstallSnapshotResponse, Message, SnapshotOutcome};
use crate::message::{AppendOutcome, TimeoutNow};
use crate::types::{Entry, LogId, LogIndex, NodeId, Payload};

/// A leadership transfer in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Transfer {
    pub(crate) to: NodeId,
    pub(crate) deadline_ms: u64,
}

/// Leader-only state.
#[derive(Debug)]
pub(crate) struct LeaderState {
    pub(crate) progress: BTreeMap<NodeId, Progress>,
    /// The index of this term's no-op; reads wait until it commits.
    pub(crate) noop_index: LogIndex,
    pub(crate) reads: ReadQueue,
    pub(crate) transfer: Option<Transfer>,
    pub(crate) elected_ms: u64,
    /// Reused buffer for commit computation (no allocation per response).
    pub(crate) scratch: Vec<LogIndex>,
}

impl LeaderState {
    /// Takes leadership: fresh progress for every follower, then a no-op entry of the new term
    /// so that earlier entries can commit with it (Raft §5.4.2, Figure 8).
    pub(crate) fn start(core: &mut Core) -> LeaderState {
        let noop = LogId {
            term: core.term,
            index: core.log.last_index().next(),
        };
        info!(node = %core.id, term = %core.term, "became leader");
        let progress = core
            .peers()
            .map(|peer| (peer, Progress::new(core, noop.index)))
            .collect();
        let mut leader = LeaderState {
            progress,
            noop_index: noop.index,
            reads: ReadQueue::default(),
            transfer: None,
            elected_ms: core.now_ms,
            scratch: Vec::new(),
        };
        core.leader_id = Some(core.id);
        core.append_local(vec![Entry {
            log_id: noop,
            payload: Payload::Blank,
        }]);
        leader.replicate_to_all(core);
        leader.after_progress(core, None);
        leader
    }

    /// Replication state of each follower, for metrics.
    pub(crate) fn follower_statuses(&self) -> Vec<FollowerStatus> {
        self.progress
            .iter()
            .map(|(&peer, progress)| FollowerStatus {
                peer,
                next_index: progress.next_index,
                match_index: progress.match_index,
                inflight: progress.window.len(),
                batch: progress.batch.batch(),
                threshold: progress.batch.threshold(),
            })
            .collect()
    }

    /// Stops leading: every waiting read is refused, naming the new leader if known.
    pub(crate) fn step_down(&mut self, core: &mut Core, leader: Option<NodeId>) {
        self.reads.reject_all(&mut core.outputs, leader);
    }

    /// Heartbeats, request timeouts, transfer expiry and check-quorum. Returns false when a
    /// quorum has not answered within an election timeout: the leader must step down.
    pub(crate) fn on_tick(&mut self, core: &mut Core) -> bool {
        for (&peer, progress) in &mut self.progress {
            replication::on_tick(core, peer, progress);
        }
        if self.transfer.is_some_and(|t| core.now_ms >= t.deadline_ms) {
            self.transfer = None;
        }
        !self.lost_quorum(core)
    }

    /// Check-quorum: no answer from a quorum within the last election timeout.
    fn lost_quorum(&self, core: &Core) -> bool {
        let timeout_ms = core.config.election_timeout_ms;
        if !core.config.check_quorum || core.now_ms < self.elected_ms + timeout_ms {
            return false;
        }
        let heard = |p: &&Progress| {
            p.last_response_ms
                .is_some_and(|at| core.now_ms.saturating_sub(at) < timeout_ms)
        };
        let active = self.progress.values().filter(heard).count()
            + usize::from(core.membership.is_voter(core.id));
        active < core.quorum()
    }

    /// Appends a client's commands (refused while leadership is being handed over).
    pub(crate) fn on_proposed(&mut self, core: &mut Core, id: u64, payloads: Vec<Bytes>) {
        if let Some(transfer) = &self.transfer {
            let leader = Some(transfer.to);
            core.outputs.push(Output::ProposalRejected { id, leader });
            return;
        }
        let term = core.term;
        let first = core.log.last_index().next();
        let count = payloads.len() as u64;
        core.outputs.push(Output::ProposalAccepted {
            id,
            first: LogId { term, index: first },
            count,
        });
        if count == 0 {
            return;
        }
        let entries = payloads
            .into_iter()
            .enumerate()
            .map(|(offset, bytes)| Entry {
                log_id: LogId {
                    term,
                    index: first.plus(offset as u64),
                },
                payload: Payload::Command(bytes),
            })
            .collect();
        core.append_local(entries);
        self.replicate_to_all(core);
    }

    /// The leader's own log became durable further.
    pub(crate) fn on_log_persisted(&mut self, core: &mut Core) {
        self.after_progress(core, None);
    }

    pub(crate) fn on_send_failed(&mut self, core: &Core, to: NodeId, seq: u64) {
        if let Some(progress) = self.progress.get_mut(&to) {
            replication::on_send_failed(core, progress, seq);
        }
    }

    pub(crate) fn on_append_response(
        &mut self,
        core: &mut Core,
        from: NodeId,
        response: &AppendEntriesResponse,
    ) {
        let stale = matches!(response.outcome, AppendOutcome::StaleTerm);
        let Some(progress) = self.answered(core, from, response.seq, stale) else {
            return;
        };
        replication::on_append_response(core, progress, response);
        self.after_progress(core, Some(from));
    }

    pub(crate) fn on_snapshot_response(
        &mut self,
        core: &mut Core,
        from: NodeId,
        response: &InstallSnapshotResponse,
    ) {
        let stale = matches!(response.outcome, SnapshotOutcome::StaleTerm);
        let Some(progress) = self.answered(core, from, response.seq, stale) else {
            return;
        };
        if snapshot_send::is_inflight(progress, response.seq) {
            snapshot_send::apply_snapshot_response(core, progress, response);
        }
        self.after_progress(core, Some(from));
    }

    /// The progress of `from`, which answered request `seq`, if the answer is one to use (see
    /// `replication::note_answer`).
    fn answered(
        &mut self,
        core: &Core,
        from: NodeId,
        seq: u64,
        stale: bool,
    ) -> Option<&mut Progress> {
        let progress = self.progress.get_mut(&from)?;
        replication::note_answer(core, from, progress, seq, stale).then_some(progress)
    }

    /// A client's linearizable read (ReadIndex; see `read_index.rs`).
    pub(crate) fn on_read_requested(&mut self, core: &mut Core, id: u64) {
        self.reads
            .on_read_requested(core, &mut self.progress, self.noop_index, id);
    }

    /// Hands leadership to `to` once its log is caught up (thesis §3.10). New proposals are
    /// refused meanwhile; the attempt is abandoned after an election timeout.
    pub(crate) fn on_transfer_requested(&mut self, core: &mut Core, to: NodeId) {
        let deadline_ms = core.now_ms + core.config.election_timeout_ms;
        if to == core.id || !self.progress.contains_key(&to) {
            return;
        }
        self.transfer = Some(Transfer { to, deadline_ms });
        self.maybe_finish_transfer(core);
    }

    /// Sends TimeoutNow when the transfer target holds the whole log.
    fn maybe_finish_transfer(&mut self, core: &mut Core) {
        let last = core.log.last_index();
        let Some(transfer) = self.transfer else {
            return;
        };
        let caught_up = self
            .progress
            .get(&transfer.to)
            .is_some_and(|progress| progress.match_index == last);
        if caught_up {
            let message = Message::TimeoutNow(TimeoutNow {
                term: core.term,
                leader_id: core.id,
            });
            core.send(transfer.to, message);
        }
    }

    fn replicate_to_all(&mut self, core: &mut Core) {
        for (&peer, progress) in &mut self.progress {
            replicate(core, peer, progress);
        }
    }

    /// After match indexes or the durable index moved: commit, reads, transfer, more sends
    /// (to `peer` only, or to every follower).
    fn after_progress(&mut self, core: &mut Core, peer: Option<NodeId>) {
        maybe_commit(core, &self.progress, &mut self.scratch);
        self.reads
            .confirm_reads(core, &mut self.progress, self.noop_index);
        self.maybe_finish_transfer(core);
        match peer {
            Some(peer) => {
                if let Some(progress) = self.progress.get_mut(&peer) {
                    replicate(core, peer, progress);
                }
            }
            None => self.replicate_to_all(core),
        }
    }
}
