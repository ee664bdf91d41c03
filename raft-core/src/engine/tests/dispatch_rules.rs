//! The engine's dispatch (`engine/mod.rs`) and its read-only answers: each input goes to the
//! role that acts on it, messages of other terms are answered or dropped by the term rules, and
//! the accessors the runtime asks (`log_term`, ...) answer from the engine's state.

use bytes::Bytes;

use super::config;
use crate::config::Config;
use crate::engine::testing::Cluster;
use crate::engine::{Engine, Input, LogEntryMeta, Output, RestoredState, RoleKind};
use crate::message::{Message, RequestVote};
use crate::snapshot::SnapshotMeta;
use crate::types::{HardState, LogId, LogIndex, Membership, NodeId, Term};

fn members() -> Membership {
    Membership::new([NodeId(1), NodeId(2), NodeId(3)])
}

fn entries(ids: &[(u64, u64)]) -> Vec<LogEntryMeta> {
    ids.iter()
        .map(|&(term, index)| LogEntryMeta {
            log_id: LogId::new(term, index),
            payload_len: 1,
        })
        .collect()
}

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
        cluster.set_clocks(1000);
        cluster
            .engines
            .get_mut(&NodeId(1))
            .unwrap()
            .core
            .election_deadline_ms = 1000;
        cluster.step(1, Input::Tick { now_ms: 1000 });
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
