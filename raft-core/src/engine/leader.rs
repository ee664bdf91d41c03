//! The leader's state and everything only a leader does: replicate to each follower, count
//! their answers toward commit, confirm reads, hand leadership over, step down without a
//! quorum. The engine calls in here only while it leads, so nothing below asks for the role.
//!
//! Per-follower work is in `replication/`, the commit rule in `commit.rs`, ReadIndex in
//! `read_index.rs`.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use tracing::{info, warn};

use super::commit::maybe_commit;
use super::core::{Core, PlantedBug};
use super::output::{ChangeRejection, Output};
use super::read_index::{Origin, ReadQueue};
use super::replication::{self, Progress, replicate, snapshot_send};
use super::status::FollowerStatus;
use crate::error::Error;
use crate::membership::{Membership, MembershipChange};
use crate::message::{AppendEntriesResponse, InstallSnapshotResponse, Message, SnapshotOutcome};
use crate::message::{AppendOutcome, OpenStream, TimeoutNow};
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
    /// The indexes of the configuration in force and of the committed one that `progress`
    /// was built for.
    pub(crate) config_key: (LogIndex, LogIndex),
    /// The committed configuration in force has no place for this leader as a voter: it hands
    /// leadership to the most caught-up voter (a transfer), then steps down.
    pub(crate) stepping_down: bool,
    /// Leading is over (handed over, or the hand-over timed out): the engine steps down.
    pub(crate) removed: bool,
    /// A TimeoutNow went out in this term: its target may win an election that ignores the
    /// followers' leases, so this leader serves no lease read any more.
    pub(crate) handed_over: bool,
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
        let progress = replication_targets(core)
            .into_iter()
            .map(|peer| (peer, Progress::new(core, noop.index)))
            .collect();
        let mut leader = LeaderState {
            progress,
            noop_index: noop.index,
            reads: ReadQueue::default(),
            transfer: None,
            elected_ms: core.now_ms,
            config_key: (
                core.membership_index(),
                core.configs.index_at(core.commit_index),
            ),
            stepping_down: false,
            removed: false,
            handed_over: false,
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
        self.reads.reject_all(core, leader);
    }

    /// Heartbeats, request timeouts, transfer expiry and check-quorum. Returns false when a
    /// quorum has not answered within an election timeout: the leader must step down.
    pub(crate) fn on_tick(&mut self, core: &mut Core) -> bool {
        self.drop_informed_leavers(core);
        for (&peer, progress) in &mut self.progress {
            replication::on_tick(core, peer, progress);
        }
        if self.transfer.is_some_and(|t| core.now_ms >= t.deadline_ms) {
            self.transfer = None;
            // A removed leader whose successor did not catch up in time steps down anyway.
            self.removed |= self.stepping_down;
        }
        !self.lost_quorum(core)
    }

    /// Check-quorum: no answer from a quorum (of both voter sets, while joint) within the
    /// last election timeout.
    fn lost_quorum(&self, core: &Core) -> bool {
        let timeout_ms = core.config.election_timeout_ms;
        if !core.config.check_quorum || core.now_ms < self.elected_ms + timeout_ms {
            return false;
        }
        let heard = |id: NodeId| {
            id == core.id
                || self.progress.get(&id).is_some_and(|p| {
                    p.last_response_ms
                        .is_some_and(|at| core.now_ms.saturating_sub(at) < timeout_ms)
                })
        };
        !core.membership().is_quorum(heard)
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

    /// A follower opened its entry stream (streaming replication).
    pub(crate) fn on_stream_opened(&mut self, core: &mut Core, from: NodeId, open: &OpenStream) {
        if from != open.follower_id {
            warn!(node = %core.id, %from, "dropping an OpenStream sent in another's name");
            return;
        }
        let Some(progress) = self.progress.get_mut(&from) else {
            return;
        };
        replication::stream::on_opened(core, from, progress, open.seq, open.last_log_id);
        replicate(core, from, progress);
    }

    /// The runtime reports the end of a follower's entry stream.
    pub(crate) fn on_stream_closed(&mut self, core: &Core, peer: NodeId, seq: u64) {
        if let Some(progress) = self.progress.get_mut(&peer) {
            replication::stream::on_closed(core, peer, progress, seq);
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
        let origin = Origin::Local(id);
        self.reads
            .on_read_requested(core, &mut self.progress, self.noop_index, origin);
    }

    /// A follower asks for a read index for its reads (follower reads): confirmed like this
    /// node's own reads, then sent back.
    pub(crate) fn on_remote_read(&mut self, core: &mut Core, follower: NodeId, seq: u64) {
        let origin = Origin::Remote { follower, seq };
        self.reads
            .on_read_requested(core, &mut self.progress, self.noop_index, origin);
    }

    /// A lease read: answered at once at the commit index while the lease holds, otherwise a
    /// ReadIndex read.
    pub(crate) fn on_lease_read_requested(&mut self, core: &mut Core, id: u64) {
        if self.lease_holds(core) {
            let index = core.commit_index;
            core.outputs.push(Output::ReadReady { id, index });
        } else {
            self.on_read_requested(core, id);
        }
    }

    /// Whether no other leader can have been elected: a quorum (of every voter set) answered
    /// requests sent at or after `start`, so each of them ignores elections until `start` plus
    /// an election timeout on its own clock; the lease ends `max_clock_drift_ms` before that on
    /// this one. Never before this term's no-op committed (the commit index may lag until
    /// then), during a transfer, or after a TimeoutNow.
    pub(crate) fn lease_holds(&self, core: &Core) -> bool {
        let config = &core.config;
        if !config.lease_reads
            || self.transfer.is_some()
            || self.handed_over
            || core.commit_index < self.noop_index
        {
            return false;
        }
        let now = core.now_ms;
        let sent = |id: NodeId| {
            if id == core.id {
                Some(now)
            } else {
                self.progress.get(&id).and_then(|p| p.acked_sent_ms)
            }
        };
        let Some(start) = core.membership().quorum_value(sent) else {
            return false;
        };
        let lease_ms = if core.bug(PlantedBug::LeaseTooLong) {
            2 * config.election_timeout_ms
        } else {
            config.election_timeout_ms - config.max_clock_drift_ms
        };
        now < start.saturating_add(lease_ms)
    }

    /// Hands leadership to `to` once its log is caught up (thesis §3.10). New proposals are
    /// refused meanwhile; the attempt is abandoned after an election timeout.
    pub(crate) fn on_transfer_requested(&mut self, core: &mut Core, to: NodeId) {
        let deadline_ms = core.now_ms + core.config.election_timeout_ms;
        // The target must stay a voter once any change in progress ends. Every such voter but
        // this node is a member of the configuration in force, so it has a `progress`.
        let stays_voter = core.membership().leave_joint().is_voter(to);
        if to == core.id || !stays_voter || self.stepping_down {
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
            self.handed_over = true;
            core.send(transfer.to, message);
            // A removed leader's work is done once its successor was told to campaign.
            self.removed |= self.stepping_down;
        }
    }

    /// Stops replicating to the nodes a committed configuration left out once they learned
    /// that commit, or once their time ran out.
    fn drop_informed_leavers(&mut self, core: &Core) {
        let committed_config = core.configs.index_at(core.commit_index);
        self.progress.retain(|_, progress| {
            progress
                .leave_by_ms
                .is_none_or(|by| core.now_ms < by && progress.known_commit < committed_config)
        });
    }

    fn replicate_to_all(&mut self, core: &mut Core) {
        for (&peer, progress) in &mut self.progress {
            replicate(core, peer, progress);
        }
    }

    /// After match indexes or the durable index moved: commit, reads, transfer, more sends
    /// (to `peer` only, or to every follower).
    fn after_progress(&mut self, core: &mut Core, peer: Option<NodeId>) {
        maybe_commit(core, &self.progress);
        self.advance_membership(core);
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

    /// A membership change: checked against the configuration in force, appended (a joint
    /// configuration when the voters change), in force at once on this leader.
    pub(crate) fn on_membership_change(
        &mut self,
        core: &mut Core,
        id: u64,
        change: &MembershipChange,
    ) {
        let reason = if let Some(transfer) = &self.transfer {
            Some(ChangeRejection::NotLeader {
                leader: Some(transfer.to),
            })
        } else if core.commit_index < self.noop_index
            || core.configs.latest_index() > core.commit_index
        {
            // One change at a time, and none before this term's first commit (a new leader's
            // log may end with a configuration its predecessor never committed).
            Some(ChangeRejection::InProgress)
        } else {
            None
        };
        let next = match reason {
            Some(reason) => Err(reason),
            None => core
                .membership()
                .apply(change)
                .map_err(|error| match error {
                    Error::ChangeInProgress => ChangeRejection::InProgress,
                    Error::InvalidChange(reason) => ChangeRejection::Invalid(reason),
                    other => ChangeRejection::Invalid(other.to_string()),
                }),
        };
        match next {
            Ok(next) => {
                let next = if core.bug(PlantedBug::SkipJointPhase) {
                    next.skipping_joint_phase()
                } else {
                    next
                };
                info!(node = %core.id, ?next, "membership change");
                let log_id = self.append_membership(core, next.clone());
                core.outputs.push(Output::MembershipChangeAccepted {
                    id,
                    log_id,
                    membership: next,
                });
                self.after_progress(core, None);
            }
            Err(reason) => {
                core.outputs
                    .push(Output::MembershipChangeRejected { id, reason });
            }
        }
    }

    /// Appends a configuration entry; it is in force from now on.
    fn append_membership(&mut self, core: &mut Core, membership: Membership) -> LogId {
        let log_id = LogId {
            term: core.term,
            index: core.log.last_index().next(),
        };
        core.append_local(vec![Entry {
            log_id,
            payload: Payload::Membership(membership),
        }]);
        self.sync_progress(core);
        log_id
    }

    /// Follows the configurations: progress for every member of the configuration in force
    /// and of the committed one, none for the rest. A member being removed keeps getting the
    /// log until the configuration without it commits, so it appends that configuration and
    /// stops campaigning.
    fn sync_progress(&mut self, core: &Core) {
        let key = (
            core.membership_index(),
            core.configs.index_at(core.commit_index),
        );
        if key == self.config_key {
            return;
        }
        self.config_key = key;
        let peers = replication_targets(core);
        // A node the committed configuration left out stays a target until it learned that
        // commit (or for two election timeouts, should it be gone): one that never learns
        // may campaign, believing its removal uncommitted (see `Core::may_campaign`).
        let (committed_config, now) = (key.1, core.now_ms);
        let deadline = now + 2 * core.config.election_timeout_ms;
        self.progress.retain(|id, progress| {
            if peers.contains(id) {
                progress.leave_by_ms = None;
                return true;
            }
            let informed = progress.known_commit >= committed_config;
            let expired = progress.leave_by_ms.is_some_and(|by| now >= by);
            progress.leave_by_ms.get_or_insert(deadline);
            !informed && !expired
        });
        let next = core.log.last_index();
        for peer in peers {
            self.progress
                .entry(peer)
                .or_insert_with(|| Progress::new(core, next));
        }
        // A transfer's target stays a voter: it was one of the final voters when the transfer
        // began (`on_transfer_requested`), membership changes are refused while a transfer is
        // pending, and leaving a joint configuration does not change the final voters. Only a
        // removed leader's hand-over (`stepping_down`) may outlive its target's voting rights.
        debug_assert!(self.transfer.is_none_or(|t| {
            self.stepping_down || core.membership().leave_joint().is_voter(t.to)
        }));
    }

    /// Once the configuration in force has committed: leave a joint one (append the final
    /// configuration), or notice that this leader is no longer a voter (it hands leadership to
    /// the most caught-up voter and steps down; see `removed`).
    fn advance_membership(&mut self, core: &mut Core) {
        self.sync_progress(core);
        // (The configuration in force is the latest one: on a leader, `membership_index()` is
        // `latest_index()`, or at most the commit index under the planted `ConfigOnCommit`.)
        if core.configs.latest_index() > core.commit_index {
            return;
        }
        let membership = core.membership();
        if membership.is_joint() {
            let next = membership.leave_joint();
            info!(node = %core.id, ?next, "leaving the joint configuration");
            self.append_membership(core, next);
            self.replicate_to_all(core);
        } else if !membership.is_voter(core.id) && !self.stepping_down {
            self.hand_over_before_leaving(core);
        }
    }

    /// Removed from the voters by a committed configuration: hands leadership to the voter
    /// with the most of the log (a transfer: proposals are refused, TimeoutNow goes once it
    /// holds the whole log), then steps down; at the latest after an election timeout.
    fn hand_over_before_leaving(&mut self, core: &mut Core) {
        info!(node = %core.id, "removed from the voters: handing over");
        self.stepping_down = true;
        let successor = self
            .progress
            .iter()
            .filter(|&(&id, _)| core.membership().is_voter(id))
            .max_by_key(|&(&id, p)| (p.match_index, std::cmp::Reverse(id)))
            .map(|(&id, _)| id);
        match successor {
            Some(to) => {
                let deadline_ms = core.now_ms + core.config.election_timeout_ms;
                self.transfer = Some(Transfer { to, deadline_ms });
                self.maybe_finish_transfer(core);
            }
            None => self.removed = true,
        }
    }
}

/// The nodes a leader replicates to: every member of the configuration in force and of the
/// committed one but itself (a member being removed gets the log until its removal commits).
fn replication_targets(core: &Core) -> BTreeSet<NodeId> {
    let mut peers = core.membership().members();
    peers.extend(core.configs.at(core.commit_index).members());
    peers.remove(&core.id);
    peers
}
