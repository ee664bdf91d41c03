//! Elections: randomized timeouts, pre-vote, votes, the up-to-date check and leadership
//! transfer (Raft §5.2, §5.4.1; thesis §3.10 and §9.6).
//!
//! Rules kept here (PITFALLS: election and terms):
//! - A vote is persisted before the reply that grants it leaves (the reply is held by
//!   `Core::send` until the hard state is durable); so is the candidate's own term and vote.
//! - Pre-vote changes neither term nor vote, and is granted only by a node that would grant the
//!   vote and has not heard from a live leader within the election timeout.
//! - A candidate counts its own vote only once it is durable.

use std::collections::BTreeSet;

use tracing::info;

use super::replication::LeaderState;
use super::{Engine, PlantedBug, Role};
use crate::message::{Message, RequestVote, RequestVoteResponse, TimeoutNow};
use crate::types::{Entry, LogId, NodeId, Payload};

/// Votes collected in one (pre-)election.
#[derive(Clone, Debug, Default)]
pub(crate) struct VoteTally {
    granted: BTreeSet<NodeId>,
}

impl VoteTally {
    fn with_self(id: NodeId) -> VoteTally {
        VoteTally {
            granted: BTreeSet::from([id]),
        }
    }
}

impl Engine {
    pub(super) fn tick_election(&mut self) {
        if self.core.now_ms < self.core.election_deadline_ms {
            return;
        }
        if !self.core.membership.is_voter(self.core.id) {
            self.core.reset_election_timer();
            return;
        }
        let pre_vote = self.core.config.pre_vote;
        self.campaign(pre_vote, false);
    }

    /// Starts a pre-vote round or an election.
    fn campaign(&mut self, pre_vote: bool, leadership_transfer: bool) {
        self.core.leader_id = None;
        self.core.leader_contact_ms = None;
        self.core.reset_election_timer();
        let term = if pre_vote {
            self.role = Role::PreCandidate(VoteTally::with_self(self.core.id));
            self.core.term.next()
        } else {
            let term = self.core.term.next();
            self.core.set_term_vote(term, Some(self.core.id));
            self.role = Role::Candidate(VoteTally::with_self(self.core.id));
            term
        };
        info!(node = %self.core.id, %term, pre_vote, "campaigning");
        let request = RequestVote {
            term,
            candidate_id: self.core.id,
            last_log_id: self.core.log.last_log_id(),
            pre_vote,
            leadership_transfer,
        };
        let peers: Vec<NodeId> = self.core.peers().collect();
        for peer in peers {
            self.core.send(peer, Message::RequestVote(request.clone()));
        }
        if pre_vote {
            self.maybe_win_pre_vote();
        } else {
            self.maybe_win_election();
        }
    }

    /// Answers a vote or pre-vote request. Higher terms were handled by the caller: a real
    /// vote request arrives here with `request.term == self.core.term`.
    pub(super) fn on_request_vote(&mut self, from: NodeId, request: &RequestVote) {
        let last = self.core.log.last_log_id();
        let up_to_date =
            (request.last_log_id.term, request.last_log_id.index) >= (last.term, last.index);
        let response = if request.pre_vote {
            let granted = request.term > self.core.term
                && up_to_date
                && (request.leadership_transfer || !self.core.heard_from_leader_recently());
            RequestVoteResponse {
                term: if granted {
                    request.term
                } else {
                    self.core.term
                },
                granted,
                pre_vote: true,
            }
        } else {
            debug_assert_eq!(request.term, self.core.term);
            let can_vote = self.core.vote == Some(request.candidate_id)
                || (self.core.vote.is_none() && self.core.leader_id.is_none())
                || (self.core.bug(PlantedBug::VoteTwice) && self.core.leader_id.is_none());
            let granted = can_vote && up_to_date && !matches!(self.role, Role::Leader(_));
            if granted {
                self.core
                    .set_term_vote(self.core.term, Some(request.candidate_id));
                self.core.reset_election_timer();
            }
            RequestVoteResponse {
                term: self.core.term,
                granted,
                pre_vote: false,
            }
        };
        self.core.send(from, Message::RequestVoteResponse(response));
    }

    pub(super) fn on_vote_response(&mut self, from: NodeId, response: &RequestVoteResponse) {
        if !response.granted {
            return;
        }
        match &mut self.role {
            Role::PreCandidate(tally)
                if response.pre_vote && response.term == self.core.term.next() =>
            {
                tally.granted.insert(from);
                self.maybe_win_pre_vote();
            }
            Role::Candidate(tally) if !response.pre_vote && response.term == self.core.term => {
                tally.granted.insert(from);
                self.maybe_win_election();
            }
            _ => {}
        }
    }

    fn maybe_win_pre_vote(&mut self) {
        if let Role::PreCandidate(tally) = &self.role
            && tally.granted.len() >= self.core.quorum()
        {
            self.campaign(false, false);
        }
    }

    /// Becomes leader once a quorum granted the vote, counting its own only when durable.
    pub(super) fn maybe_win_election(&mut self) {
        let Role::Candidate(tally) = &self.role else {
            return;
        };
        if self.core.term_vote_durable() && tally.granted.len() >= self.core.quorum() {
            self.become_leader();
        }
    }

    /// Takes leadership: fresh progress for every follower, then a no-op entry of the new term
    /// so that earlier entries can commit with it (Raft §5.4.2, Figure 8).
    fn become_leader(&mut self) {
        let noop = LogId {
            term: self.core.term,
            index: self.core.log.last_index().next(),
        };
        info!(node = %self.core.id, term = %self.core.term, "became leader");
        self.role = Role::Leader(Box::new(LeaderState::new(&self.core, noop.index)));
        self.core.leader_id = Some(self.core.id);
        self.core.append_local(vec![Entry {
            log_id: noop,
            payload: Payload::Blank,
        }]);
        self.replicate_to_all();
        self.after_leader_progress(None);
    }

    /// The leader asks us to campaign at once (leadership transfer).
    pub(super) fn on_timeout_now(&mut self, from: NodeId, message: &TimeoutNow) {
        if message.term == self.core.term
            && self.core.leader_id == Some(from)
            && matches!(self.role, Role::Follower(_))
            && self.core.membership.is_voter(self.core.id)
        {
            self.campaign(false, true);
        }
    }

    /// Hands leadership to `to` once its log is caught up (thesis §3.10). New proposals are
    /// refused meanwhile; the attempt is abandoned after an election timeout.
    pub(super) fn on_transfer_requested(&mut self, to: NodeId) {
        let now_ms = self.core.now_ms;
        let deadline_ms = now_ms + self.core.config.election_timeout_ms;
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        if to == self.core.id || !leader.progress.contains_key(&to) {
            return;
        }
        leader.transfer = Some(super::replication::Transfer { to, deadline_ms });
        self.maybe_finish_transfer();
    }

    /// Sends TimeoutNow when the transfer target holds the whole log.
    pub(super) fn maybe_finish_transfer(&mut self) {
        let last = self.core.log.last_index();
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        let Some(transfer) = leader.transfer else {
            return;
        };
        let caught_up = leader
            .progress
            .get(&transfer.to)
            .is_some_and(|progress| progress.match_index == last);
        if caught_up {
            let message = Message::TimeoutNow(TimeoutNow {
                term: self.core.term,
                leader_id: self.core.id,
            });
            self.core.send(transfer.to, message);
        }
    }
}
