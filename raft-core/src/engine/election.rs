//! Elections: randomized timeouts, pre-vote, votes, the up-to-date check and leadership
//! the follower's side of leadership transfer (Raft §5.2, §5.4.1; thesis §3.10 and §9.6). The
//! role changes themselves are made in `role.rs`.
//!
//! Rules kept here (each one some Raft implementation once broke):
//! - A vote is persisted before the reply that grants it leaves (the reply is held by
//!   `Core::send` until the hard state is durable); so is the candidate's own term and vote.
//! - Pre-vote changes neither term nor vote, and is granted only by a node that would grant the
//!   vote and has not heard from a live leader within the election timeout.
//! - A candidate counts its own vote only once it is durable.

use std::collections::BTreeSet;

use tracing::info;

use super::core::{Core, PlantedBug};
use super::output::Output;
use crate::message::{Message, RequestVote, RequestVoteResponse, TimeoutNow};
use crate::types::NodeId;

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

    /// Counts a grant from `from`.
    pub(crate) fn grant(&mut self, from: NodeId) {
        self.granted.insert(from);
    }

    /// Whether a quorum granted (the candidate's own vote included): a majority of every
    /// voter set of the candidate's configuration; learners' grants never count.
    pub(crate) fn has_quorum(&self, core: &Core) -> bool {
        core.membership().is_quorum(|id| self.granted.contains(&id))
    }
}

/// At a tick of a node that does not lead: whether its election timer fired and it should
/// campaign, and with a pre-vote or not. A node that may not campaign (see
/// `Core::may_campaign`) only restarts its timer.
pub(crate) fn campaign_due(core: &mut Core) -> Option<bool> {
    if core.now_ms < core.election_deadline_ms {
        return None;
    }
    if !core.may_campaign() {
        core.reset_election_timer();
        return None;
    }
    Some(core.config.pre_vote)
}

/// Starts a pre-vote round or an election: a real election takes the next term and votes for
/// itself; either way the vote requests go out (held until that vote is durable). Returns the
/// tally, holding this node's own vote.
pub(crate) fn start_campaign(
    core: &mut Core,
    pre_vote: bool,
    leadership_transfer: bool,
) -> VoteTally {
    core.leader_id = None;
    core.leader_contact_ms = None;
    core.reset_election_timer();
    let term = if pre_vote {
        core.term.next()
    } else {
        let term = core.term.next();
        core.set_term_vote(term, Some(core.id));
        term
    };
    info!(node = %core.id, %term, pre_vote, "campaigning");
    let request = RequestVote {
        term,
        candidate_id: core.id,
        last_log_id: core.log.last_log_id(),
        pre_vote,
        leadership_transfer,
    };
    for peer in core.voting_peers() {
        let message = Message::RequestVote(request.clone());
        if !pre_vote && core.bug(PlantedBug::VoteRequestBeforeSync) {
            core.outputs.push(Output::Send { to: peer, message });
        } else {
            core.send(peer, message);
        }
    }
    VoteTally::with_self(core.id)
}

/// Answers a vote or pre-vote request. Higher terms were handled by the caller: a real vote
/// request arrives here with `request.term == core.term`. A leader (`leading`) never grants.
pub(crate) fn on_request_vote(core: &mut Core, from: NodeId, request: &RequestVote, leading: bool) {
    let last = core.log.last_log_id();
    let up_to_date =
        (request.last_log_id.term, request.last_log_id.index) >= (last.term, last.index);
    let response = if request.pre_vote {
        let granted = request.term > core.term
            && up_to_date
            && (request.leadership_transfer || !core.heard_from_leader_recently());
        RequestVoteResponse {
            term: if granted { request.term } else { core.term },
            granted,
            pre_vote: true,
        }
    } else {
        debug_assert_eq!(request.term, core.term);
        let can_vote = core.vote == Some(request.candidate_id)
            || (core.vote.is_none() && core.leader_id.is_none())
            || (core.bug(PlantedBug::VoteTwice) && core.leader_id.is_none());
        let granted = can_vote && up_to_date && !leading;
        if granted {
            core.set_term_vote(core.term, Some(request.candidate_id));
            core.reset_election_timer();
        }
        RequestVoteResponse {
            term: core.term,
            granted,
            pre_vote: false,
        }
    };
    core.send(from, Message::RequestVoteResponse(response));
}

/// Whether a follower should campaign at once because its leader asked (leadership transfer).
pub(crate) fn timeout_now_applies(core: &Core, from: NodeId, message: &TimeoutNow) -> bool {
    message.term == core.term && core.leader_id == Some(from) && core.is_voter()
}
