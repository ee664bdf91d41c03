//! The engine's dispatch (`engine/mod.rs`) and its read-only answers: each input goes to the
//! role that acts on it, messages of other terms are answered or dropped by the term rules, and
//! the accessors the runtime asks (`log_term`, ...) answer from the engine's state.

use bytes::Bytes;

use super::config;
use super::{entries, members};
use crate::config::Config;
use crate::engine::testing::Cluster;
use crate::engine::{Engine, Input, Output, PlantedBug, RestoredState, RoleKind};
use crate::message::{
    AppendEntries, AppendEntriesResponse, AppendOutcome, InstallSnapshot, InstallSnapshotResponse,
    Message, ReadIndex, ReadIndexResponse, RequestVote, RequestVoteResponse, SnapshotOutcome,
};
use crate::snapshot::SnapshotMeta;
use crate::types::{HardState, LogId, LogIndex, NodeId, Term};

/// Node 2 restarted from a snapshot ending at (2, 5) with the entries (2, 4) to (3, 7).
fn restarted_from_a_snapshot() -> Engine {
    let data = Bytes::from_static(b"state");
    let meta = SnapshotMeta {
        last_log_id: LogId::new(2, 5),
        membership: members(),
        size: data.len() as u64,
        checksum: crc32c::crc32c(&data),
    };
    let restored = RestoredState {
        memberships: Vec::new(),
        hard_state: HardState {
            term: Term(3),
            vote: None,
            commit: LogIndex(2),
        },
        snapshot: Some(meta),
        entries: entries(&[(2, 4), (2, 5), (3, 6), (3, 7)]),
    };
    let mut engine = Engine::new(NodeId(2), members(), config(), restored, 1).unwrap();
    engine.drain_outputs();
    engine
}

#[test]
fn the_log_term_is_known_for_entries_held_and_the_snapshots_end_only() {
    let engine = restarted_from_a_snapshot();
    assert_eq!(engine.log_term(LogIndex(2)), None, "compacted");
    assert_eq!(
        engine.log_term(LogIndex(3)),
        None,
        "the base's term was not restored"
    );
    assert_eq!(engine.log_term(LogIndex(4)), Some(Term(2)));
    assert_eq!(
        engine.log_term(LogIndex(5)),
        Some(Term(2)),
        "the snapshot's end"
    );
    assert_eq!(engine.log_term(LogIndex(6)), Some(Term(3)));
    assert_eq!(engine.log_term(LogIndex(7)), Some(Term(3)));
    assert_eq!(engine.log_term(LogIndex(8)), None, "past the log");
}

#[test]
fn the_engine_answers_with_the_config_it_was_built_with() {
    let config = Config {
        election_timeout_ms: 1234,
        ..config()
    };
    let cluster = Cluster::new(1, &config);
    assert_eq!(cluster.engine(1).config(), &config);
}

/// The vote requests `from` has in flight, removed from the network.
fn take_vote_requests(cluster: &mut Cluster, from: u64) -> Vec<RequestVote> {
    let requests = cluster
        .network
        .iter()
        .filter(|e| e.from == NodeId(from))
        .filter_map(|e| match &e.message {
            Message::RequestVote(request) => Some(request.clone()),
            _ => None,
        })
        .collect();
    cluster.drop_all();
    requests
}

/// A (pre-)candidate that hears nothing back campaigns again at its next election timeout
/// (within two timeouts), in a new round: a pre-vote for the same next term, an election in
/// the term after.
#[test]
fn a_campaign_that_hears_nothing_is_retried_at_the_next_election_timeout() {
    for (pre_vote, role, terms) in [
        (true, RoleKind::PreCandidate, [Term(1), Term(1)]),
        (false, RoleKind::Candidate, [Term(1), Term(2)]),
    ] {
        let mut cluster = Cluster::new(
            3,
            &Config {
                pre_vote,
                ..config()
            },
        );
        cluster.time_out(1, 1000);
        let first = take_vote_requests(&mut cluster, 1);
        assert_eq!(first.len(), 2, "pre_vote {pre_vote}: {first:?}");
        assert!(
            first
                .iter()
                .all(|r| r.term == terms[0] && r.pre_vote == pre_vote)
        );
        assert_eq!(cluster.role(1), role);

        // An election timeout is less than twice the configured one.
        cluster.step(
            1,
            Input::Tick {
                now_ms: 1000 + 2000,
            },
        );
        let again = take_vote_requests(&mut cluster, 1);
        assert_eq!(again.len(), 2, "pre_vote {pre_vote}: no retry");
        assert!(
            again
                .iter()
                .all(|r| r.term == terms[1] && r.pre_vote == pre_vote)
        );
        assert_eq!(cluster.role(1), role);
    }
}

#[test]
fn a_follower_refuses_a_proposal_naming_its_leader() {
    let mut cluster = Cluster::new(3, &config());
    cluster.elect(1, 2000);
    let proposal = Input::Proposed {
        id: 9,
        payloads: vec![Bytes::from_static(b"x")],
    };
    assert_eq!(
        cluster.step(2, proposal),
        vec![Output::ProposalRejected {
            id: 9,
            leader: Some(NodeId(1))
        }]
    );
    assert_eq!(cluster.engine(2).status().last_log_id.index, LogIndex(1));
}

fn snapshot_meta(last: LogId, data: &[u8]) -> SnapshotMeta {
    SnapshotMeta {
        last_log_id: last,
        membership: members(),
        size: data.len() as u64,
        checksum: crc32c::crc32c(data),
    }
}

/// Leader 1 of term 1 with read 5 waiting for its heartbeat round (which is lost).
fn leader_with_a_read_waiting() -> Cluster {
    let mut cluster = Cluster::new(3, &config());
    cluster.elect(1, 2000);
    cluster.step(1, Input::ReadRequested { id: 5 });
    cluster.drop_all();
    cluster
}

/// A leader that learns of the next term's leader from its AppendEntries or its
/// InstallSnapshot steps down and refuses the reads it had waiting, naming the new leader (so
/// the callers can retry there at once).
#[test]
fn a_leader_told_of_a_newer_leader_refuses_its_waiting_reads_naming_it() {
    let append = Message::AppendEntries(AppendEntries {
        term: Term(2),
        leader_id: NodeId(2),
        seq: 1,
        prev_log_id: LogId::new(1, 1),
        entries: Vec::new(),
        leader_commit: LogIndex(1),
    });
    let data = b"state";
    let install = Message::InstallSnapshot(InstallSnapshot {
        term: Term(2),
        leader_id: NodeId(2),
        seq: 1,
        meta: snapshot_meta(LogId::new(1, 1), data),
        offset: 0,
        data: Bytes::from_static(data),
        chunk_crc: crc32c::crc32c(data),
        done: true,
    });
    for message in [append, install] {
        let mut cluster = leader_with_a_read_waiting();
        let from = NodeId(2);
        let outputs = cluster.step(1, Input::Received { from, message });
        let refused = Output::ReadRejected {
            id: 5,
            leader: Some(NodeId(2)),
        };
        assert!(outputs.contains(&refused), "{outputs:?}");
        assert_eq!(cluster.role(1), RoleKind::Follower);
        assert_eq!(cluster.engine(1).status().leader, Some(NodeId(2)));
    }
}

/// A pre-vote refusal carrying a higher term (the voter moved on) makes the pre-candidate
/// adopt that term as a follower; only a pre-vote *grant* carries a term the node is not in
/// (the one it would campaign in) without changing its term.
#[test]
fn a_pre_vote_refusal_from_a_higher_term_makes_the_pre_candidate_a_follower_of_that_term() {
    let mut cluster = Cluster::new(3, &config());
    cluster.time_out(1, 1000);
    cluster.drop_all();
    assert_eq!(cluster.role(1), RoleKind::PreCandidate);
    let refusal = Message::RequestVoteResponse(RequestVoteResponse {
        term: Term(5),
        granted: false,
        pre_vote: true,
    });
    let from = NodeId(2);
    cluster.step(
        1,
        Input::Received {
            from,
            message: refusal,
        },
    );
    assert_eq!(cluster.role(1), RoleKind::Follower);
    assert_eq!(cluster.engine(1).status().term, Term(5));
}

/// Follower 2 of leader 1 (term 1), in touch with it, gets a vote answer of term 5 (to a
/// pre-vote it sent before). With lease reads it keeps its promise to ignore elections while it
/// hears from its leader: term and leader stay. Without lease reads it adopts the term. A
/// leader with lease reads adopts it too (its lease is its own, not a leader's it follows).
#[test]
fn a_vote_answer_of_a_higher_term_is_ignored_only_by_a_follower_in_its_leaders_lease() {
    let answer = || Input::Received {
        from: NodeId(3),
        message: Message::RequestVoteResponse(RequestVoteResponse {
            term: Term(5),
            granted: false,
            pre_vote: false,
        }),
    };
    for (lease_reads, node, term_after) in [(true, 2, 1), (false, 2, 5), (true, 1, 5)] {
        let mut cluster = Cluster::new(
            3,
            &Config {
                lease_reads,
                ..config()
            },
        );
        cluster.elect(1, 2000);
        cluster.step(node, answer());
        let status = cluster.engine(node).status();
        let case = format!("lease_reads {lease_reads}, node {node}");
        assert_eq!(status.term, Term(term_after), "{case}");
        let kept = term_after == 1;
        assert_eq!(status.leader, kept.then_some(NodeId(1)), "{case}");
    }
}

/// A message of an older term changes nothing and is answered with the current term, so its
/// stale sender (a deposed leader, a late candidate) steps down: an AppendEntries or
/// InstallSnapshot with `StaleTerm`, a (pre-)vote request with a refusal, a ReadIndex with no
/// index. A stale answer is dropped unanswered.
#[test]
fn a_message_of_an_older_term_is_answered_with_the_current_term_and_changes_nothing() {
    let data = b"state";
    let cases = [
        (
            Message::AppendEntries(AppendEntries {
                term: Term(1),
                leader_id: NodeId(1),
                seq: 7,
                prev_log_id: LogId::new(1, 1),
                entries: Vec::new(),
                leader_commit: LogIndex(1),
            }),
            Some(Message::AppendEntriesResponse(AppendEntriesResponse {
                term: Term(2),
                seq: 7,
                outcome: AppendOutcome::StaleTerm,
            })),
        ),
        (
            Message::InstallSnapshot(InstallSnapshot {
                term: Term(1),
                leader_id: NodeId(1),
                seq: 8,
                meta: snapshot_meta(LogId::new(1, 1), data),
                offset: 0,
                data: Bytes::from_static(data),
                chunk_crc: crc32c::crc32c(data),
                done: true,
            }),
            Some(Message::InstallSnapshotResponse(InstallSnapshotResponse {
                term: Term(2),
                seq: 8,
                outcome: SnapshotOutcome::StaleTerm,
            })),
        ),
        (
            Message::RequestVote(RequestVote {
                term: Term(1),
                candidate_id: NodeId(1),
                last_log_id: LogId::new(1, 1),
                pre_vote: true,
                leadership_transfer: false,
            }),
            Some(Message::RequestVoteResponse(RequestVoteResponse {
                term: Term(2),
                granted: false,
                pre_vote: true,
            })),
        ),
        (
            Message::ReadIndex(ReadIndex {
                term: Term(1),
                follower_id: NodeId(1),
                seq: 9,
            }),
            Some(Message::ReadIndexResponse(ReadIndexResponse {
                term: Term(2),
                seq: 9,
                index: None,
            })),
        ),
        (
            Message::AppendEntriesResponse(AppendEntriesResponse {
                term: Term(1),
                seq: 10,
                outcome: AppendOutcome::StaleTerm,
            }),
            None,
        ),
    ];
    let mut wrong = Vec::new();
    for (message, answer) in cases {
        // Node 2 restarted in term 2 with entry (1, 1), no leader known yet.
        let mut cluster = Cluster::restored(&config(), &[(2, &[1]), (2, &[1]), (2, &[1])], 1);
        let before = cluster.engine(2).status();
        let input = Input::Received {
            from: NodeId(1),
            message: message.clone(),
        };
        let outputs = cluster.step(2, input);
        let expected: Vec<Output> = answer
            .into_iter()
            .map(|message| Output::Send {
                to: NodeId(1),
                message,
            })
            .collect();
        if outputs != expected || cluster.engine(2).status() != before {
            wrong.push(format!("{message:?}: {outputs:?}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// The planted bug `IgnoreHigherTermResponse` (for raft-sim's test that the simulator catches
/// it) breaks exactly one rule: a *leader* ignores the higher term of an answer. Answers of its
/// own term still count, and other roles still adopt higher terms.
#[test]
fn the_planted_ignore_higher_term_response_bug_affects_only_a_leaders_higher_term_answers() {
    let mut cluster = Cluster::new(3, &config());
    cluster.elect(1, 2000);
    for engine in cluster.engines.values_mut() {
        engine.core.planted_bug = Some(PlantedBug::IgnoreHigherTermResponse);
    }
    cluster.propose(1, "x");
    cluster.deliver_all();
    assert_eq!(
        cluster.commit_of(1),
        LogIndex(2),
        "its own term's answers count"
    );

    let answer = |message| Input::Received {
        from: NodeId(2),
        message,
    };
    let refusal = Message::AppendEntriesResponse(AppendEntriesResponse {
        term: Term(5),
        seq: 1,
        outcome: AppendOutcome::StaleTerm,
    });
    cluster.step(1, answer(refusal));
    assert_eq!(cluster.role(1), RoleKind::Leader, "the bug: term 5 ignored");
    assert_eq!(cluster.engine(1).status().term, Term(1));

    let vote_answer = Message::RequestVoteResponse(RequestVoteResponse {
        term: Term(5),
        granted: false,
        pre_vote: false,
    });
    cluster.step(3, answer(vote_answer));
    assert_eq!(
        cluster.engine(3).status().term,
        Term(5),
        "a follower adopts it"
    );
}

/// Check-quorum counts only answers to this term's requests: a `StaleTerm` refusal that
/// arrives in the leader's term (it answers a request the node sent in an older term, to a
/// follower already in this one) does not show that the follower follows this leader.
#[test]
fn a_stale_term_refusal_does_not_keep_a_leader_from_stepping_down_without_a_quorum() {
    for snapshot in [false, true] {
        let mut cluster = Cluster::new(3, &config());
        cluster.elect(1, 2000);
        cluster.step(1, Input::Tick { now_ms: 2900 });
        cluster.drop_all();
        let refusal = if snapshot {
            Message::InstallSnapshotResponse(InstallSnapshotResponse {
                term: Term(1),
                seq: 1,
                outcome: SnapshotOutcome::StaleTerm,
            })
        } else {
            Message::AppendEntriesResponse(AppendEntriesResponse {
                term: Term(1),
                seq: 1,
                outcome: AppendOutcome::StaleTerm,
            })
        };
        let from = NodeId(2);
        cluster.step(
            1,
            Input::Received {
                from,
                message: refusal,
            },
        );
        // Nothing else was heard from 2 or 3 since the election, an election timeout ago.
        cluster.step(1, Input::Tick { now_ms: 3100 });
        assert_eq!(cluster.role(1), RoleKind::Follower, "snapshot {snapshot}");
    }
}
