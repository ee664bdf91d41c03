//! What a message reveals, checked against the simulated disk, and terms adopted on receipt:
//! - `reveal-after-durable`: no message leaves a node before the term it carries is durable on
//!   the node's disk (its `durable_hard_state`, what a restart finds), nor before the vote it
//!   reveals is: a RequestVote reveals the candidate's vote for itself, a granted
//!   RequestVoteResponse the voter's vote. A vote counts as durable once that term with that
//!   vote is, or once a later term is (the node can then never vote in that term again).
//!   Pre-vote changes neither term nor vote: a pre-vote request carries the term after the
//!   node's own, so only that own term (one less) must be durable; a granted pre-vote response
//!   carries the candidate's proposed term and is exempt. Checked where the world executes
//!   `Send`, `SendEntries` and `SendSnapshot`, whatever fills the message later.
//! - `higher-term-adopted`: a node that received a message of a higher term has adopted that
//!   term by the end of the step. Vote requests are exempt (a pre-vote never changes the term,
//!   and under check-quorum a node in a leader's lease ignores them), and so are granted pre-vote
//!   responses (they carry the candidate's proposed term). With lease reads, so are vote
//!   answers reaching a follower that knows its leader or is in its quiet period after a start
//!   (the engine keeps the lease it granted).

use raft_core::engine::{RoleKind, Status};
use raft_core::message::Message;
use raft_core::{NodeId, Term};

use super::Checker;
use crate::node::SimNode;

/// What a message reveals: the term that must be durable, and the vote (of the sender, in
/// that term) that must be, if any. `None`: nothing to check.
pub(crate) fn revealed(
    sender: NodeId,
    to: NodeId,
    message: &Message,
) -> Option<(Term, Option<NodeId>)> {
    match message {
        Message::RequestVote(request) if request.pre_vote => {
            Some((Term(request.term.0.saturating_sub(1)), None))
        }
        Message::RequestVote(request) => Some((request.term, Some(sender))),
        Message::RequestVoteResponse(response) if response.pre_vote && response.granted => None,
        Message::RequestVoteResponse(response) if response.granted && !response.pre_vote => {
            Some((response.term, Some(to)))
        }
        _ => Some((message.term(), None)),
    }
}

/// The term a received message makes its receiver adopt if higher, and the message's kind;
/// `None` for the messages exempt from `higher-term-adopted`.
pub(crate) fn received_term(message: &Message) -> Option<(Term, &'static str)> {
    let exempt = match message {
        Message::RequestVote(_) => true,
        Message::RequestVoteResponse(response) => response.pre_vote && response.granted,
        _ => false,
    };
    (!exempt).then(|| (message.term(), message_kind(message)))
}

impl Checker {
    /// `reveal-after-durable` for a message `node` sends to `to`.
    pub(crate) fn check_reveal(&mut self, node: &SimNode, to: NodeId, message: &Message) {
        if let Some((term, vote)) = revealed(node.id, to, message) {
            self.check_reveal_term(node, term, vote, message_kind(message));
        }
    }

    /// `reveal-after-durable`: `term` (and, if given, the vote for `vote` in it) is durable.
    pub(crate) fn check_reveal_term(
        &mut self,
        node: &SimNode,
        term: Term,
        vote: Option<NodeId>,
        kind: &str,
    ) {
        let durable = node.durable_hard_state;
        let ok = match vote {
            None => durable.term >= term,
            Some(vote) => {
                durable.term > term || (durable.term == term && durable.vote == Some(vote))
            }
        };
        if !ok {
            let revealed = match vote {
                Some(vote) => format!("term {term} and a vote for {vote}"),
                None => format!("term {term}"),
            };
            let detail = format!(
                "node {} sends a {kind} revealing {revealed} with durable {durable:?}",
                node.id
            );
            self.fail("reveal-after-durable", detail);
        }
    }

    /// `higher-term-adopted`: `node` received a `kind` message of term `term` (one that must
    /// make it adopt a higher term, see [`received_term`]) and went from `before` to `after`.
    pub(crate) fn on_received(
        &mut self,
        node: &SimNode,
        term: Term,
        kind: &str,
        before: &Status,
        after: &Status,
    ) {
        // With lease reads a follower that hears from its leader keeps its promise to ignore
        // elections: the term of a vote answer (to a pre-vote it sent before) is not adopted.
        // So does a node in its quiet period after a start (the answer was sent to its
        // previous life), which keeps a promise it may have made before the crash.
        let quiet = !node.ticked || node.engine_now_ms < node.quiet_until_ms;
        let vote_answer_in_lease = matches!(kind, "pre-vote response" | "RequestVoteResponse")
            && before.role == RoleKind::Follower
            && (before.leader.is_some() || quiet)
            && self.lease_reads;
        if term > before.term && after.term < term && !vote_answer_in_lease {
            let detail = format!(
                "node {} ({:?}, term {}) received a {kind} of term {term} and is still in term {}",
                node.id, after.role, before.term, after.term
            );
            self.fail("higher-term-adopted", detail);
        }
    }
}

fn message_kind(message: &Message) -> &'static str {
    match message {
        Message::AppendEntries(_) => "AppendEntries",
        Message::AppendEntriesResponse(_) => "AppendEntriesResponse",
        Message::RequestVote(request) if request.pre_vote => "pre-vote RequestVote",
        Message::RequestVote(_) => "RequestVote",
        Message::RequestVoteResponse(response) if response.pre_vote => "pre-vote response",
        Message::RequestVoteResponse(_) => "RequestVoteResponse",
        Message::TimeoutNow(_) => "TimeoutNow",
        Message::InstallSnapshot(_) => "InstallSnapshot",
        Message::InstallSnapshotResponse(_) => "InstallSnapshotResponse",
        Message::ReadIndex(_) => "ReadIndex",
        Message::ReadIndexResponse(_) => "ReadIndexResponse",
        Message::OpenStream(_) => "OpenStream",
    }
}

#[cfg(test)]
mod tests {
    use raft_core::message::{RequestVote, RequestVoteResponse};
    use raft_core::{HardState, LogId, LogIndex};

    use super::*;

    fn node_with_durable(term: u64, vote: Option<u64>) -> SimNode {
        let mut node = SimNode::new(NodeId(1), raft_core::Membership::default());
        node.durable_hard_state = HardState {
            term: Term(term),
            vote: vote.map(NodeId),
            commit: LogIndex::ZERO,
        };
        node
    }

    fn vote_request(term: u64, pre_vote: bool) -> Message {
        Message::RequestVote(RequestVote {
            term: Term(term),
            candidate_id: NodeId(1),
            last_log_id: LogId::new(0, 0),
            pre_vote,
            leadership_transfer: false,
        })
    }

    fn check(node: &SimNode, message: &Message) -> Option<&'static str> {
        let mut checker = Checker::default();
        checker.check_reveal(node, NodeId(2), message);
        checker.violation.map(|v| v.invariant)
    }

    #[test]
    fn a_vote_request_needs_its_term_and_self_vote_durable() {
        let request = vote_request(3, false);
        assert_eq!(check(&node_with_durable(3, Some(1)), &request), None);
        assert_eq!(check(&node_with_durable(4, None), &request), None);
        let early = Some("reveal-after-durable");
        assert_eq!(check(&node_with_durable(2, None), &request), early);
        assert_eq!(check(&node_with_durable(3, None), &request), early);
    }

    #[test]
    fn a_pre_vote_request_needs_only_the_current_term_durable() {
        assert_eq!(
            check(&node_with_durable(2, None), &vote_request(3, true)),
            None
        );
        let early = Some("reveal-after-durable");
        assert_eq!(
            check(&node_with_durable(1, None), &vote_request(3, true)),
            early
        );
    }

    #[test]
    fn a_granted_pre_vote_response_is_exempt() {
        let response = |granted| {
            Message::RequestVoteResponse(RequestVoteResponse {
                term: Term(5),
                granted,
                pre_vote: true,
            })
        };
        assert_eq!(check(&node_with_durable(2, None), &response(true)), None);
        let early = Some("reveal-after-durable");
        assert_eq!(check(&node_with_durable(2, None), &response(false)), early);
    }
}
