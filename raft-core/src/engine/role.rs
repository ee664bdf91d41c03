//! [`Role`]: the per-role state, and the role changes (Raft §5.2): stepping down to follower,
//! campaigning, winning an election. Each change runs the rules of the role it leaves and the
//! one it enters, in the order outputs must leave.

use tracing::{info, warn};

use super::core::Core;
use super::election::{self, VoteTally};
use super::follower::FollowerState;
use super::leader::LeaderState;
use super::status::RoleKind;
use crate::message::RequestVoteResponse;
use crate::types::{NodeId, Term};

/// Per-role state.
#[derive(Debug)]
pub(crate) enum Role {
    Follower(FollowerState),
    PreCandidate(VoteTally),
    Candidate(VoteTally),
    Leader(Box<LeaderState>),
}

impl Role {
    pub(crate) fn kind(&self) -> RoleKind {
        match self {
            Role::Follower(_) => RoleKind::Follower,
            Role::PreCandidate(_) => RoleKind::PreCandidate,
            Role::Candidate(_) => RoleKind::Candidate,
            Role::Leader(_) => RoleKind::Leader,
        }
    }

    /// Steps down (or stays) a follower in `term`. A higher term clears the vote.
    pub(crate) fn become_follower(&mut self, core: &mut Core, term: Term, leader: Option<NodeId>) {
        let was = self.kind();
        if term > core.term {
            core.set_term_vote(term, None);
        }
        match self {
            Role::Leader(state) => state.step_down(core, leader),
            Role::Follower(state) => {
                // The reads asked the previous leader (or none): refuse them, naming the new.
                core.leader_id = leader;
                state.reads.reject_all(core);
            }
            _ => {}
        }
        *self = Role::Follower(FollowerState::default());
        core.leader_id = leader;
        core.leader_contact_ms = leader.map(|_| core.now_ms);
        core.reset_election_timer();
        if was != RoleKind::Follower {
            info!(node = %core.id, term = %core.term, ?was, "became follower");
        }
    }

    /// A message from the leader of the current term (AppendEntries or InstallSnapshot): a
    /// (pre-)candidate steps down, the leader is noted and the election timer restarts. `None`
    /// if this node leads the same term itself (a safety bug elsewhere): the message is dropped.
    pub(crate) fn accept_leader(
        &mut self,
        core: &mut Core,
        from: NodeId,
    ) -> Option<&mut FollowerState> {
        match self {
            Role::Leader(_) => {
                warn!(node = %core.id, %from, term = %core.term, "two leaders in one term");
                return None;
            }
            Role::PreCandidate(_) | Role::Candidate(_) => {
                let term = core.term;
                self.become_follower(core, term, Some(from));
            }
            Role::Follower(state) => {
                if core.leader_id != Some(from) {
                    core.leader_id = Some(from);
                    state.reads.reject_all(core);
                }
            }
        }
        core.leader_id = Some(from);
        core.leader_contact_ms = Some(core.now_ms);
        core.reset_election_timer();
        match self {
            Role::Follower(follower) => Some(follower),
            _ => None,
        }
    }

    /// Starts a pre-vote round or an election, and wins it at once if it needs no other vote.
    pub(crate) fn campaign(&mut self, core: &mut Core, pre_vote: bool, leadership_transfer: bool) {
        if let Role::Follower(state) = self {
            core.leader_id = None;
            state.reads.reject_all(core);
        }
        let tally = election::start_campaign(core, pre_vote, leadership_transfer);
        if pre_vote {
            *self = Role::PreCandidate(tally);
            self.maybe_win_pre_vote(core);
        } else {
            *self = Role::Candidate(tally);
            self.maybe_win_election(core);
        }
    }

    /// Counts a granted vote or pre-vote of the round this node runs.
    pub(crate) fn on_vote_response(
        &mut self,
        core: &mut Core,
        from: NodeId,
        response: &RequestVoteResponse,
    ) {
        if !response.granted {
            return;
        }
        match self {
            Role::PreCandidate(tally) if response.pre_vote && response.term == core.term.next() => {
                tally.grant(from);
                self.maybe_win_pre_vote(core);
            }
            Role::Candidate(tally) if !response.pre_vote && response.term == core.term => {
                tally.grant(from);
                self.maybe_win_election(core);
            }
            _ => {}
        }
    }

    /// A pre-vote won by a quorum turns into a real election.
    fn maybe_win_pre_vote(&mut self, core: &mut Core) {
        if let Role::PreCandidate(tally) = self
            && tally.has_quorum(core)
        {
            self.campaign(core, false, false);
        }
    }

    /// Becomes leader once a quorum granted the vote, counting its own only when durable.
    pub(crate) fn maybe_win_election(&mut self, core: &mut Core) {
        if let Role::Candidate(tally) = self
            && core.term_vote_durable()
            && tally.has_quorum(core)
        {
            *self = Role::Leader(Box::new(LeaderState::start(core)));
        }
    }
}
