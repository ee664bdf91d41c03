//! Follower reads: a follower asks its leader for a read index, one request per batch, and
//! answers its reads with it; refusals, timeouts and leader changes refuse the reads.

use super::config;
use crate::engine::testing::Cluster;
use crate::engine::{Input, Output};
use crate::message::Message;
use crate::types::{LogIndex, NodeId};

fn read_indexes_sent(cluster: &Cluster, from: u64) -> usize {
    cluster
        .network
        .iter()
        .filter(|e| e.from == NodeId(from) && matches!(e.message, Message::ReadIndex(_)))
        .count()
}

fn ready(cluster: &Cluster, node: u64, id: u64) -> Option<LogIndex> {
    cluster.trace.iter().find_map(|(at, output)| match output {
        Output::ReadReady { id: ready, index } if *at == NodeId(node) && *ready == id => {
            Some(*index)
        }
        _ => None,
    })
}

fn rejected(cluster: &Cluster, node: u64, id: u64) -> bool {
    cluster.trace.iter().any(|(at, output)| {
        *at == NodeId(node) && matches!(output, Output::ReadRejected { id: r, .. } if *r == id)
    })
}

#[test]
fn a_follower_read_gets_the_leaders_confirmed_commit_index_one_request_per_batch() {
    let mut cluster = Cluster::new(3, &config());
    cluster.elect(1, 1_000);
    cluster.propose(1, "x");
    cluster.deliver_all();
    let committed = cluster.commit_of(1);
    for id in 1..=3 {
        cluster.step(2, Input::FollowerReadRequested { id });
    }
    assert_eq!(
        read_indexes_sent(&cluster, 2),
        1,
        "three reads, one request"
    );
    cluster.deliver_all();
    for id in 1..=3 {
        assert_eq!(ready(&cluster, 2, id), Some(committed), "read {id}");
    }
}

#[test]
fn reads_arriving_while_a_request_is_in_flight_go_in_the_next_one() {
    let mut cluster = Cluster::new(3, &config());
    cluster.elect(1, 1_000);
    cluster.step(2, Input::FollowerReadRequested { id: 1 });
    cluster.step(2, Input::FollowerReadRequested { id: 2 });
    assert_eq!(read_indexes_sent(&cluster, 2), 1);
    cluster.deliver_all();
    assert!(ready(&cluster, 2, 1).is_some() && ready(&cluster, 2, 2).is_some());
}

#[test]
fn a_follower_without_a_leader_refuses_and_a_change_of_leader_refuses_waiting_reads() {
    let mut cluster = Cluster::new(3, &config());
    cluster.step(2, Input::FollowerReadRequested { id: 1 });
    assert!(rejected(&cluster, 2, 1), "no leader known");

    cluster.elect(1, 1_000);
    cluster.step(2, Input::FollowerReadRequested { id: 2 });
    // Node 3 takes over before node 1 answers; node 1 refuses node 2's request.
    let requests: Vec<_> = cluster.network.drain(..).collect();
    cluster.elect(3, 5_000);
    for envelope in requests {
        cluster.deliver(envelope);
    }
    cluster.deliver_all();
    assert!(
        rejected(&cluster, 2, 2),
        "refused, not answered with a stale index"
    );
    assert!(ready(&cluster, 2, 2).is_none());
}

#[test]
fn an_unanswered_request_refuses_its_reads_after_the_request_timeout() {
    let mut cluster = Cluster::new(3, &config());
    cluster.elect(1, 1_000);
    cluster.step(2, Input::FollowerReadRequested { id: 1 });
    cluster.drop_all();
    let later = 1_000 + config().request_timeout_ms;
    cluster.step(2, Input::Tick { now_ms: later });
    assert!(rejected(&cluster, 2, 1));
}

#[test]
fn a_follower_read_on_the_leader_is_a_read_index_read() {
    let mut cluster = Cluster::new(3, &config());
    cluster.elect(1, 1_000);
    cluster.step(1, Input::FollowerReadRequested { id: 9 });
    cluster.deliver_all();
    assert_eq!(ready(&cluster, 1, 9), Some(cluster.commit_of(1)));
}

/// A follower that restarts reuses its request numbers: the leader must not answer the old
/// request still waiting for a quorum, which the follower would take for its new one.
#[test]
fn a_newer_read_index_request_from_a_follower_replaces_its_waiting_one() {
    let mut cluster = Cluster::new(3, &config());
    cluster.elect(1, 1_000);
    cluster.propose(1, "x");
    cluster.deliver_all();
    let term = cluster.engine(1).status().term;
    let request = crate::message::ReadIndex {
        term,
        follower_id: NodeId(2),
        seq: 7,
    };
    let ask = |cluster: &mut Cluster| {
        cluster.step(
            1,
            Input::Received {
                from: NodeId(2),
                message: Message::ReadIndex(request.clone()),
            },
        );
    };
    ask(&mut cluster);
    // The heartbeat round confirming it is lost; the follower restarts and asks again.
    cluster.drop_all();
    ask(&mut cluster);
    let mut answers = 0;
    while let Some(envelope) = cluster.network.pop_front() {
        if matches!(&envelope.message, Message::ReadIndexResponse(r) if r.seq == 7) {
            answers += 1;
            continue;
        }
        cluster.deliver(envelope);
    }
    assert_eq!(answers, 1, "one answer, for the newer request");
}

/// A new leader holds follower reads until its no-op commits; one follower's newer request
/// replaces only that follower's waiting one, never another follower's.
#[test]
fn read_index_requests_of_two_followers_both_wait_for_the_first_commit() {
    let mut cluster = Cluster::new(3, &config());
    cluster.step(1, Input::Tick { now_ms: 2_000 });
    while cluster.role(1) != crate::engine::RoleKind::Leader {
        let envelope = cluster.network.pop_front().expect("the election goes on");
        cluster.deliver(envelope);
    }
    // The no-op has not reached anyone: nothing of this term is committed.
    cluster.drop_all();
    let term = cluster.engine(1).status().term;
    for (follower, seq) in [(2, 7), (3, 9)] {
        let request = crate::message::ReadIndex {
            term,
            follower_id: NodeId(follower),
            seq,
        };
        cluster.step(
            1,
            Input::Received {
                from: NodeId(follower),
                message: Message::ReadIndex(request),
            },
        );
    }
    assert!(
        !cluster
            .network
            .iter()
            .any(|e| matches!(e.message, Message::ReadIndexResponse(_))),
        "no answer before the first commit"
    );
    // The lost no-op is sent again after the request timeout (within the election timeout).
    let mut answered = Vec::new();
    for now_ms in (2_100..2_900).step_by(100) {
        cluster.step(1, Input::Tick { now_ms });
        while let Some(envelope) = cluster.network.pop_front() {
            if let Message::ReadIndexResponse(response) = &envelope.message {
                answered.push((envelope.to.0, response.seq, response.index.is_some()));
                continue;
            }
            cluster.deliver(envelope);
        }
    }
    answered.sort_unstable();
    assert_eq!(answered, vec![(2, 7, true), (3, 9, true)]);
}

/// The seq of the read-index request `from` has in flight.
fn read_index_seq(cluster: &Cluster, from: u64) -> u64 {
    cluster
        .network
        .iter()
        .find_map(|e| match &e.message {
            Message::ReadIndex(request) if e.from == NodeId(from) => Some(request.seq),
            _ => None,
        })
        .expect("a read-index request in flight")
}

#[test]
fn a_request_is_refused_at_its_timeout_and_not_a_tick_before() {
    let mut cluster = Cluster::new(3, &config());
    cluster.elect(1, 1_000);
    cluster.step(2, Input::FollowerReadRequested { id: 1 });
    cluster.drop_all();
    let timeout = config().request_timeout_ms;
    cluster.step(
        2,
        Input::Tick {
            now_ms: 1_000 + timeout - 1,
        },
    );
    assert!(
        !rejected(&cluster, 2, 1),
        "still within the request timeout"
    );
    cluster.step(
        2,
        Input::Tick {
            now_ms: 1_000 + timeout,
        },
    );
    assert!(rejected(&cluster, 2, 1));
}

/// A transport failure of the read-index request refuses its reads at once (their callers
/// retry); a failure reported for another request leaves them waiting for their answer.
#[test]
fn a_send_failure_of_the_read_index_request_refuses_its_reads_and_of_another_does_not() {
    let mut cluster = Cluster::new(3, &config());
    cluster.elect(1, 1_000);
    cluster.step(2, Input::FollowerReadRequested { id: 1 });
    let seq = read_index_seq(&cluster, 2);
    cluster.drop_all();
    cluster.step(
        2,
        Input::SendFailed {
            to: NodeId(1),
            seq: seq + 1,
        },
    );
    assert!(!rejected(&cluster, 2, 1), "another request failed");
    cluster.step(2, Input::SendFailed { to: NodeId(1), seq });
    assert!(
        rejected(&cluster, 2, 1),
        "refused without waiting for the timeout"
    );
}

/// Only the leader's answer to the request in flight serves the reads: an answer to an older
/// request (a previous life's, or one that timed out) or the same seq from another node is
/// ignored.
#[test]
fn only_the_leaders_answer_to_the_request_in_flight_serves_the_reads() {
    let mut cluster = Cluster::new(3, &config());
    cluster.elect(1, 1_000);
    cluster.step(2, Input::FollowerReadRequested { id: 1 });
    let seq = read_index_seq(&cluster, 2);
    let term = cluster.engine(2).status().term;
    let answer = |from: u64, seq: u64| Input::Received {
        from: NodeId(from),
        message: Message::ReadIndexResponse(crate::message::ReadIndexResponse {
            term,
            seq,
            index: Some(LogIndex(99)),
        }),
    };
    cluster.step(2, answer(1, seq - 1));
    cluster.step(2, answer(3, seq));
    assert_eq!(
        ready(&cluster, 2, 1),
        None,
        "neither answer is the leader's to it"
    );
    assert!(!rejected(&cluster, 2, 1));
    cluster.deliver_all();
    assert_eq!(ready(&cluster, 2, 1), Some(cluster.commit_of(1)));
}

/// A second leader of the same term (only a safety bug elsewhere, or a forged message, can make
/// one) is still a change of leader: the reads waiting on the first are refused, naming the
/// second.
#[test]
fn a_message_from_another_leader_of_the_term_refuses_the_waiting_reads() {
    let mut cluster = Cluster::new(3, &config());
    cluster.elect(1, 1_000);
    cluster.step(2, Input::FollowerReadRequested { id: 1 });
    cluster.drop_all();
    let term = cluster.engine(2).status().term;
    let heartbeat = crate::message::AppendEntries {
        term,
        leader_id: NodeId(3),
        seq: 1,
        prev_log_id: crate::types::LogId::ZERO,
        entries: Vec::new(),
        leader_commit: LogIndex::ZERO,
    };
    let outputs = cluster.deliver(crate::engine::testing::Envelope {
        from: NodeId(3),
        to: NodeId(2),
        message: Message::AppendEntries(heartbeat),
    });
    assert!(
        outputs.contains(&Output::ReadRejected {
            id: 1,
            leader: Some(NodeId(3))
        }),
        "{outputs:?}"
    );
}
