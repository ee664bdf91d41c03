//! Elections (Raft §5.2), pre-vote (thesis §9.6), check-quorum and leadership transfer.

use super::config;
use crate::engine::testing::Cluster;
use crate::engine::{Input, Output, RoleKind};
use crate::message::{Message, RequestVoteResponse, TimeoutNow};
use crate::types::{HardState, LogIndex, NodeId, Term};

#[test]
fn single_node_elects_itself_and_commits_its_noop() {
    let mut cluster = Cluster::new(1, &config());
    cluster.step(1, Input::Tick { now_ms: 2000 });
    assert_eq!(cluster.role(1), RoleKind::Leader);
    assert_eq!(cluster.commit_of(1), LogIndex(1));
}

#[test]
fn three_nodes_elect_exactly_one_leader() {
    let mut cluster = Cluster::new(3, &config());
    cluster.elect(1, 2000);
    assert_eq!(cluster.role(2), RoleKind::Follower);
    assert_eq!(cluster.role(3), RoleKind::Follower);
    for id in 1..=3 {
        assert_eq!(cluster.engine(id).status().term, Term(1));
        assert_eq!(cluster.engine(id).status().leader, Some(NodeId(1)));
    }
    assert_eq!(cluster.commit_of(1), LogIndex(1), "the no-op commits");
}

/// A rule real implementations broke: persist term and vote before any message that reveals them.
#[test]
fn vote_reply_waits_for_durable_vote() {
    let mut config = config();
    config.pre_vote = false;
    let mut cluster = Cluster::new(3, &config);
    cluster.manual_persist.insert(NodeId(2));
    cluster.step(1, Input::Tick { now_ms: 2000 });
    let request = cluster.network.pop_front().expect("vote request to node 2");
    assert_eq!(request.to, NodeId(2));
    let outputs = cluster.deliver(request);
    let hard_state = HardState {
        term: Term(1),
        vote: Some(NodeId(1)),
        commit: LogIndex(0),
    };
    assert_eq!(outputs, vec![Output::PersistHardState(hard_state)]);
    let outputs = cluster.step(2, Input::HardStatePersisted { hard_state });
    let grant = Message::RequestVoteResponse(RequestVoteResponse {
        term: Term(1),
        granted: true,
        pre_vote: false,
    });
    assert_eq!(
        outputs,
        vec![Output::Send {
            to: NodeId(1),
            message: grant
        }]
    );
}

#[test]
fn candidate_counts_its_own_vote_only_once_durable() {
    let mut config = config();
    config.pre_vote = false;
    let mut cluster = Cluster::new(1, &config);
    cluster.manual_persist.insert(NodeId(1));
    cluster.step(1, Input::Tick { now_ms: 2000 });
    assert_eq!(cluster.role(1), RoleKind::Candidate);
    let hard_state = HardState {
        term: Term(1),
        vote: Some(NodeId(1)),
        commit: LogIndex(0),
    };
    cluster.step(1, Input::HardStatePersisted { hard_state });
    assert_eq!(cluster.role(1), RoleKind::Leader);
}

#[test]
fn pre_vote_changes_neither_term_nor_vote() {
    let mut cluster = Cluster::new(3, &config());
    cluster.step(1, Input::Tick { now_ms: 2000 });
    assert_eq!(cluster.role(1), RoleKind::PreCandidate);
    assert_eq!(cluster.engine(1).status().term, Term(0));
    let to_two = cluster.network.pop_front().expect("pre-vote to node 2");
    cluster.deliver(to_two);
    let status = cluster.engine(2).status();
    assert_eq!((status.term, status.vote), (Term(0), None));
    cluster.deliver_all();
    assert_eq!(cluster.role(1), RoleKind::Leader);
    assert_eq!(cluster.engine(1).status().term, Term(1));
}

/// A partitioned node's pre-vote is refused while the others hear from their leader, so it
/// cannot disturb them when it returns.
#[test]
fn follower_in_lease_refuses_pre_vote() {
    let mut cluster = Cluster::new(3, &config());
    cluster.elect(1, 2000);
    cluster.step(3, Input::Tick { now_ms: 5000 });
    assert_eq!(cluster.role(3), RoleKind::PreCandidate);
    cluster.step(2, Input::Tick { now_ms: 2100 });
    cluster
        .network
        .retain(|e| e.from == NodeId(3) && e.to == NodeId(2));
    cluster.deliver_all();
    assert_eq!(cluster.role(3), RoleKind::PreCandidate);
    assert_eq!(cluster.engine(2).status().term, Term(1));
}

/// With check-quorum, a real vote request of a higher term is ignored during the lease.
#[test]
fn follower_in_lease_ignores_vote_request() {
    let mut config = config();
    config.pre_vote = false;
    let mut cluster = Cluster::new(3, &config);
    cluster.elect(1, 2000);
    cluster.step(3, Input::Tick { now_ms: 5000 });
    assert_eq!(cluster.engine(3).status().term, Term(2));
    cluster.step(2, Input::Tick { now_ms: 2100 });
    cluster
        .network
        .retain(|e| e.from == NodeId(3) && e.to == NodeId(2));
    let request = cluster.network.pop_front().expect("vote request");
    let outputs = cluster.deliver(request);
    assert!(outputs.is_empty(), "ignored entirely: {outputs:?}");
    assert_eq!(cluster.engine(2).status().term, Term(1));
}

#[test]
fn leader_steps_down_without_quorum() {
    let mut cluster = Cluster::new(3, &config());
    cluster.elect(1, 2000);
    cluster.drop_all();
    cluster.step(1, Input::Tick { now_ms: 2500 });
    cluster.drop_all();
    assert_eq!(cluster.role(1), RoleKind::Leader);
    cluster.step(1, Input::Tick { now_ms: 3100 });
    assert_eq!(cluster.role(1), RoleKind::Follower);
}

/// Raft §5.4.1: a voter denies a candidate whose log is less up to date than its own.
#[test]
fn candidate_with_stale_log_is_denied_vote() {
    let mut config = config();
    config.pre_vote = false;
    config.check_quorum = false;
    let mut cluster = Cluster::new(3, &config);
    cluster.elect(1, 2000);
    cluster.propose(1, "x");
    cluster.network.retain(|e| e.to != NodeId(3));
    cluster.deliver_all();
    cluster.drop_all();
    cluster.step(3, Input::Tick { now_ms: 9000 });
    cluster.network.retain(|e| e.to == NodeId(2));
    cluster.deliver_all();
    assert_eq!(cluster.role(3), RoleKind::Candidate);
    assert_eq!(cluster.engine(2).status().vote, None);
}

/// A rule real implementations broke: a leader that learns of a higher term from a response steps down.
#[test]
fn higher_term_response_makes_leader_step_down() {
    let mut cluster = Cluster::new(3, &config());
    cluster.elect(1, 2000);
    let response = Message::RequestVoteResponse(RequestVoteResponse {
        term: Term(7),
        granted: false,
        pre_vote: false,
    });
    let outputs = cluster.step(
        1,
        Input::Received {
            from: NodeId(2),
            message: response,
        },
    );
    assert_eq!(cluster.role(1), RoleKind::Follower);
    assert_eq!(cluster.engine(1).status().term, Term(7));
    assert!(matches!(outputs.first(), Some(Output::PersistHardState(_))));
}

/// A follower campaigns on a TimeoutNow only if it comes from the leader it follows, in its
/// term: one from another node (a deposed leader's, delayed or duplicated, or a forged one)
/// must not make it disrupt the cluster.
#[test]
fn a_timeout_now_from_a_node_other_than_the_leader_is_ignored() {
    let mut cluster = Cluster::new(3, &config());
    cluster.elect(1, 2000);
    let not_from_the_leader = Input::Received {
        from: NodeId(2),
        message: Message::TimeoutNow(TimeoutNow {
            term: Term(1),
            leader_id: NodeId(2),
        }),
    };
    let outputs = cluster.step(3, not_from_the_leader);
    assert_eq!(outputs, vec![]);
    assert_eq!(cluster.role(3), RoleKind::Follower);
    assert_eq!(cluster.engine(3).status().term, Term(1));
    assert_eq!(cluster.engine(3).status().leader, Some(NodeId(1)));
    // The same message from the leader starts an election at once.
    let from_the_leader = Input::Received {
        from: NodeId(1),
        message: Message::TimeoutNow(TimeoutNow {
            term: Term(1),
            leader_id: NodeId(1),
        }),
    };
    cluster.step(3, from_the_leader);
    assert_eq!(cluster.role(3), RoleKind::Candidate);
    assert_eq!(cluster.engine(3).status().term, Term(2));
}

#[test]
fn leadership_transfer_hands_over_to_caught_up_follower() {
    let mut cluster = Cluster::new(3, &config());
    cluster.elect(1, 2000);
    cluster.step(1, Input::TransferRequested { to: NodeId(3) });
    let refused = cluster.propose(1, "during transfer");
    assert!(matches!(
        refused.as_slice(),
        [Output::ProposalRejected { .. }]
    ));
    cluster.deliver_all();
    assert_eq!(cluster.role(3), RoleKind::Leader);
    assert_eq!(cluster.role(1), RoleKind::Follower);
    assert_eq!(cluster.engine(3).status().term, Term(2));
}

/// A candidate that steps down to the leader of its own term keeps its vote (for itself): one
/// vote per term (Raft §5.2), so another candidate of that term gets none from it.
#[test]
fn a_candidate_that_steps_down_to_the_leader_of_its_term_keeps_its_vote() {
    let mut config = config();
    config.pre_vote = false;
    let mut cluster = Cluster::new(3, &config);
    // Both time out; node 3 votes for node 1, whose request reaches it first.
    cluster.step(1, Input::Tick { now_ms: 2000 });
    cluster.step(2, Input::Tick { now_ms: 2000 });
    cluster.deliver_all();
    assert_eq!(cluster.role(1), RoleKind::Leader);
    let status = cluster.engine(2).status();
    assert_eq!(
        (status.role, status.term, status.leader),
        (RoleKind::Follower, Term(1), Some(NodeId(1)))
    );
    assert_eq!(status.vote, Some(NodeId(2)), "its vote of term 1 stays");
}

/// Node 1 of three, delivered `grants` from node `from` one after the other; returns its role.
fn role_after_grants(cluster: &mut Cluster, from: u64, grants: &[(bool, u64)]) -> RoleKind {
    for &(pre_vote, term) in grants {
        let grant = Message::RequestVoteResponse(RequestVoteResponse {
            term: Term(term),
            granted: true,
            pre_vote,
        });
        cluster.step(
            1,
            Input::Received {
                from: NodeId(from),
                message: grant,
            },
        );
    }
    cluster.role(1)
}

/// A pre-candidate counts only pre-vote grants for the term it would run in: a real vote, or a
/// pre-vote grant of another round (for its own term, or one past the next), does not make it
/// a candidate.
#[test]
fn a_pre_candidate_counts_only_pre_vote_grants_for_its_next_term() {
    let mut cluster = Cluster::new(3, &config());
    cluster.step(1, Input::Tick { now_ms: 2000 });
    assert_eq!(cluster.role(1), RoleKind::PreCandidate);
    let others = [(false, 0), (true, 0), (true, 2)];
    assert_eq!(
        role_after_grants(&mut cluster, 2, &others),
        RoleKind::PreCandidate
    );
    assert_eq!(
        role_after_grants(&mut cluster, 2, &[(true, 1)]),
        RoleKind::Candidate
    );
}

/// A candidate counts only real votes of its term: a pre-vote grant (one of its own pre-vote
/// round arriving late, for the same term number, or one for the next term) does not make it
/// leader.
#[test]
fn a_candidate_counts_only_votes_of_its_term() {
    let mut cluster = Cluster::new(3, &config());
    cluster.step(1, Input::Tick { now_ms: 2000 });
    assert_eq!(
        role_after_grants(&mut cluster, 2, &[(true, 1)]),
        RoleKind::Candidate
    );
    assert_eq!(cluster.engine(1).status().term, Term(1));
    let others = [(true, 1), (true, 2)];
    assert_eq!(
        role_after_grants(&mut cluster, 3, &others),
        RoleKind::Candidate
    );
    assert_eq!(
        role_after_grants(&mut cluster, 3, &[(false, 1)]),
        RoleKind::Leader
    );
}
