//! Log replication (Raft §5.3): durability-gated acks, parallel leader append, windows,
//! stale and out-of-order responses, conflict hints and the adaptive batch.

use super::{config, members};
use crate::engine::testing::Cluster;
use crate::engine::{Engine, Input, LogEntryMeta, Output, RestoredState};
use crate::message::{AppendEntries, AppendEntriesResponse, AppendOutcome, Message};
use crate::types::{HardState, LogId, LogIndex, Membership, NodeId, Term};

fn restored(term: u64, entry_terms: &[u64], commit: u64) -> RestoredState {
    RestoredState {
        memberships: Vec::new(),
        hard_state: HardState {
            term: Term(term),
            vote: None,
            commit: LogIndex(commit),
        },
        snapshot: None,
        entries: entry_terms
            .iter()
            .enumerate()
            .map(|(i, &t)| LogEntryMeta {
                log_id: LogId::new(t, i as u64 + 1),
                payload_len: 1,
            })
            .collect(),
    }
}

/// A follower acknowledges only durable entries (ARCHITECTURE.md, "Engine"; etcd msgsAfterAppend).
#[test]
fn follower_acks_only_durable_entries() {
    let mut cluster = Cluster::new(3, &config());
    cluster.elect(1, 2000);
    cluster.manual_persist.insert(NodeId(2));
    cluster.propose(1, "x");
    cluster.network.retain(|e| e.to == NodeId(2));
    let request = cluster.network.pop_front().expect("AppendEntries to 2");
    let outputs = cluster.deliver(request);
    assert!(
        matches!(
            outputs.as_slice(),
            [
                Output::AppendLog { .. },
                Output::PreCommit {
                    first: LogIndex(2),
                    last: LogIndex(2)
                },
                Output::Commit { upto: LogIndex(1) },
            ]
        ),
        "no reply before durability: {outputs:?}"
    );
    let outputs = cluster.step(
        2,
        Input::LogPersisted {
            upto: LogId::new(1, 2),
            epoch: 0,
        },
    );
    let Some(Output::Send {
        to,
        message: Message::AppendEntriesResponse(response),
    }) = outputs.first()
    else {
        panic!("expected the ack, got {outputs:?}");
    };
    assert_eq!(*to, NodeId(1));
    assert_eq!(
        response.outcome,
        AppendOutcome::Success {
            match_index: LogIndex(2)
        }
    );
}

/// NuRaft parallel log appending: a quorum of followers commits while the leader's own fsync
/// is still running.
#[test]
fn leader_commits_before_own_fsync_with_follower_quorum() {
    let mut cluster = Cluster::new(3, &config());
    cluster.elect(1, 2000);
    cluster.manual_persist.insert(NodeId(1));
    cluster.propose(1, "x");
    cluster.deliver_all();
    let status = cluster.engine(1).status();
    assert_eq!(
        status.durable_index,
        LogIndex(1),
        "the leader's write is not durable"
    );
    assert_eq!(status.commit_index, LogIndex(2));
}

/// The leader counts itself only up to its durable index.
#[test]
fn lone_leader_commits_only_after_its_log_is_durable() {
    let mut cluster = Cluster::new(1, &config());
    cluster.step(1, Input::Tick { now_ms: 2000 });
    cluster.manual_persist.insert(NodeId(1));
    cluster.propose(1, "x");
    assert_eq!(cluster.commit_of(1), LogIndex(1));
    let outputs = cluster.step(
        1,
        Input::LogPersisted {
            upto: LogId::new(1, 2),
            epoch: 0,
        },
    );
    assert_eq!(outputs, vec![Output::Commit { upto: LogIndex(2) }]);
}

/// A rule real implementations broke: an AppendEntries whose entries all match truncates nothing.
#[test]
fn duplicate_append_entries_does_not_truncate() {
    let mut cluster = Cluster::new(3, &config());
    cluster.elect(1, 2000);
    cluster.propose(1, "a");
    let old = cluster
        .network
        .iter()
        .find(|e| e.to == NodeId(2))
        .cloned()
        .expect("request to 2");
    cluster.deliver_all();
    cluster.propose(1, "b");
    cluster.deliver_all();
    assert_eq!(cluster.logs[&NodeId(2)].len(), 3);
    let outputs = cluster.deliver(old);
    assert!(
        !outputs
            .iter()
            .any(|o| matches!(o, Output::TruncateLog { .. })),
        "{outputs:?}"
    );
    assert_eq!(cluster.logs[&NodeId(2)].len(), 3);
}

/// A rule real implementations broke: the follower's commit is min(leader commit, last index this request verified).
#[test]
fn follower_commit_is_capped_by_verified_index() {
    let membership = Membership::new([NodeId(1), NodeId(2)]);
    let restore = restored(2, &[1, 1, 1, 1], 0);
    let mut engine = Engine::new(NodeId(2), membership, config(), restore, 1).unwrap();
    engine.drain_outputs();
    let request = AppendEntries {
        term: Term(2),
        leader_id: NodeId(1),
        seq: 1,
        prev_log_id: LogId::new(1, 2),
        entries: Vec::new(),
        leader_commit: LogIndex(10),
    };
    let message = Message::AppendEntries(request);
    let outputs: Vec<Output> = engine
        .step(Input::Received {
            from: NodeId(1),
            message,
        })
        .collect();
    assert!(
        outputs.contains(&Output::Commit { upto: LogIndex(2) }),
        "{outputs:?}"
    );
    assert_eq!(engine.status().commit_index, LogIndex(2));
}

/// The conflict hint moves the leader back one term per round trip, not one entry.
#[test]
fn conflict_hint_backs_up_one_term_per_round() {
    let mut config = config();
    config.pre_vote = false;
    config.batch_entries_initial = 64;
    let leader_log: &[u64] = &[1, 1, 3, 3, 3, 3, 3, 3, 3, 3];
    let follower_log: &[u64] = &[1, 1, 2, 2, 2, 2, 2, 2];
    let mut cluster = Cluster::restored(&config, &[(3, leader_log), (3, follower_log)], 2);
    cluster.elect(1, 5000);
    let rejections = cluster
        .trace
        .iter()
        .filter(|(from, output)| {
            *from == NodeId(2)
                && matches!(
                    output,
                    Output::Send {
                        message: Message::AppendEntriesResponse(AppendEntriesResponse {
                            outcome: AppendOutcome::Conflict { .. },
                            ..
                        }),
                        ..
                    }
                )
        })
        .count();
    assert_eq!(
        rejections, 2,
        "one for the short log, one for the whole term-2 run"
    );
    assert_eq!(cluster.logs[&NodeId(2)], cluster.logs[&NodeId(1)]);
    assert_eq!(cluster.commit_of(1), LogIndex(11));
}

/// A response to a request discarded by a failure never advances match_index.
#[test]
fn stale_response_does_not_advance_match_index() {
    let mut cluster = Cluster::new(3, &config());
    cluster.elect(1, 2000);
    cluster.propose(1, "x");
    let request = cluster
        .network
        .iter()
        .position(|e| e.to == NodeId(2))
        .and_then(|p| cluster.network.remove(p))
        .expect("request to 2");
    let Message::AppendEntries(sent) = &request.message else {
        panic!()
    };
    cluster.step(
        1,
        Input::SendFailed {
            to: NodeId(2),
            seq: sent.seq,
        },
    );
    let before = cluster.engine(1).followers()[0];
    // Deliver the request anyway (the failure report was wrong): the answer is stale.
    cluster.network.clear();
    cluster.deliver(request);
    let reply = cluster
        .network
        .iter()
        .find(|e| e.from == NodeId(2) && e.to == NodeId(1))
        .map(|e| e.message.clone())
        .expect("reply");
    cluster.network.clear();
    cluster.step(
        1,
        Input::Received {
            from: NodeId(2),
            message: reply,
        },
    );
    let after = cluster.engine(1).followers()[0];
    assert_eq!(before.match_index, after.match_index);
    assert_eq!(after.batch, 1, "the failure reset the batch");
}

#[test]
fn out_of_order_responses_advance_match_to_the_highest() {
    let mut config = config();
    config.batch_entries_initial = 1;
    // Partial batches pipelined, so that two requests are in flight.
    config.max_inflight_partial_requests = 2;
    let mut cluster = Cluster::new(2, &config);
    cluster.elect(1, 2000);
    cluster.propose(1, "a");
    cluster.propose(1, "b");
    // Two requests in flight to node 2: [2] and [3]; answer them in reverse order.
    let first = cluster.network.pop_front().unwrap();
    let second = cluster.network.pop_front().unwrap();
    cluster.deliver(first);
    cluster.deliver(second);
    let reply_first = cluster.network.pop_front().unwrap();
    let reply_second = cluster.network.pop_front().unwrap();
    cluster.deliver(reply_second);
    assert_eq!(cluster.engine(1).followers()[0].match_index, LogIndex(3));
    cluster.deliver(reply_first);
    assert_eq!(cluster.engine(1).followers()[0].match_index, LogIndex(3));
    assert_eq!(cluster.commit_of(1), LogIndex(3));
}

/// Eager pacing, Nagle's rule: with a request in flight, entries that do not fill a batch wait
/// and leave together when the answer comes; an idle follower gets a new entry at once.
#[test]
fn partial_batch_waits_for_the_request_in_flight() {
    let mut cluster = Cluster::new(2, &config());
    cluster.elect(1, 2000);
    cluster.propose(1, "a");
    assert_eq!(
        cluster.network.len(),
        1,
        "an idle follower gets the entry at once"
    );
    for payload in ["b", "c", "d"] {
        cluster.propose(1, payload);
    }
    assert_eq!(cluster.network.len(), 1, "b, c and d wait for the answer");
    let request = cluster.network.pop_front().unwrap();
    cluster.deliver(request);
    let answer = cluster.network.pop_front().unwrap();
    cluster.deliver(answer);
    let sent: Vec<(u64, u64)> = cluster
        .network
        .iter()
        .filter_map(|e| match &e.message {
            Message::AppendEntries(r) => Some((
                r.prev_log_id.index.0,
                r.prev_log_id.index.0 + r.entries.len() as u64,
            )),
            _ => None,
        })
        .collect();
    assert_eq!(sent, [(2, 5)], "one request carries b, c and d");
    cluster.deliver_all();
    assert_eq!(cluster.commit_of(1), LogIndex(5));
}

/// Entries that fill a batch go out although a request is in flight (a follower catching up
/// is pipelined up to `max_inflight_requests`).
#[test]
fn full_batches_go_out_while_a_request_is_in_flight() {
    let mut config = config();
    config.batch_entries_initial = 2;
    config.batch_entries_max = 2;
    let mut cluster = Cluster::new(2, &config);
    cluster.elect(1, 2000);
    cluster.propose(1, "a");
    assert_eq!(cluster.network.len(), 1);
    cluster.propose(1, "b");
    assert_eq!(cluster.network.len(), 1, "one entry is not a full batch");
    cluster.propose(1, "c");
    assert_eq!(cluster.network.len(), 2, "b and c fill one");
    cluster.deliver_all();
    assert_eq!(cluster.commit_of(1), LogIndex(4));
}

/// A request that overtakes an earlier one is refused by the follower (its log is short of the
/// request's predecessor), but nothing failed: the leader keeps its batch size, does not probe,
/// and resends the refused entries behind the earlier request.
#[test]
fn a_request_that_overtook_an_earlier_one_is_resent_without_penalty() {
    let mut config = config();
    config.batch_entries_initial = 2;
    config.batch_entries_max = 2;
    let mut cluster = Cluster::new(2, &config);
    cluster.elect(1, 2000);
    for payload in ["a", "b", "c", "d"] {
        cluster.propose(1, payload);
    }
    // [2] (alone: nothing was in flight) and [3, 4] (a full batch) in flight; the second
    // arrives first.
    assert_eq!(cluster.network.len(), 2);
    let first = cluster.network.pop_front().unwrap();
    let second = cluster.network.pop_front().unwrap();
    cluster.deliver(second);
    let refusal = cluster.network.pop_front().unwrap();
    assert!(matches!(
        &refusal.message,
        Message::AppendEntriesResponse(AppendEntriesResponse {
            outcome: AppendOutcome::Conflict { .. },
            ..
        })
    ));
    cluster.deliver(refusal);
    let status = cluster.engine(1).followers()[0];
    assert_eq!(status.batch, 2, "no failure: the batch stays");
    assert_eq!(status.inflight, 2, "[2] still awaited, [3, 4] resent");
    let resent: Vec<(u64, u64)> = cluster
        .network
        .iter()
        .filter_map(|e| match &e.message {
            Message::AppendEntries(r) => Some((
                r.prev_log_id.index.0,
                r.prev_log_id.index.0 + r.entries.len() as u64,
            )),
            _ => None,
        })
        .collect();
    assert_eq!(resent, [(2, 4)]);
    cluster.deliver(first);
    cluster.deliver_all();
    let status = cluster.engine(1).followers()[0];
    assert_eq!((status.batch, status.match_index), (2, LogIndex(5)));
    assert_eq!(cluster.commit_of(1), LogIndex(5));
}

#[test]
fn rejection_resets_batch_and_halves_threshold() {
    let mut config = config();
    config.batch_entries_initial = 8;
    let membership = Membership::new([NodeId(1), NodeId(2)]);
    let mut leader =
        Engine::new(NodeId(1), membership, config, restored(1, &[1, 1, 1], 3), 1).unwrap();
    leader.drain_outputs();
    leader.step(Input::Tick { now_ms: 0 }).for_each(drop);
    leader.step(Input::Tick { now_ms: 5000 }).for_each(drop);
    let grant = |term| {
        Message::RequestVoteResponse(crate::message::RequestVoteResponse {
            term,
            granted: true,
            pre_vote: true,
        })
    };
    leader
        .step(Input::Received {
            from: NodeId(2),
            message: grant(Term(2)),
        })
        .for_each(drop);
    let hard_state = HardState {
        term: Term(2),
        vote: Some(NodeId(1)),
        commit: LogIndex(3),
    };
    leader
        .step(Input::HardStatePersisted { hard_state })
        .for_each(drop);
    let vote = Message::RequestVoteResponse(crate::message::RequestVoteResponse {
        term: Term(2),
        granted: true,
        pre_vote: false,
    });
    let outputs: Vec<Output> = leader
        .step(Input::Received {
            from: NodeId(2),
            message: vote,
        })
        .collect();
    let seq = outputs
        .iter()
        .find_map(|o| match o {
            Output::SendEntries { request, .. } => Some(request.seq),
            _ => None,
        })
        .expect("first AppendEntries");
    let reject = Message::AppendEntriesResponse(AppendEntriesResponse {
        term: Term(2),
        seq,
        outcome: AppendOutcome::Conflict {
            hint: crate::message::ConflictHint {
                term: None,
                index: LogIndex(2),
            },
        },
    });
    leader
        .step(Input::Received {
            from: NodeId(2),
            message: reject,
        })
        .for_each(drop);
    let status = leader.followers()[0];
    assert_eq!((status.batch, status.threshold), (1, 4));
    assert_eq!(
        status.next_index,
        LogIndex(3),
        "resent from the hint after the window"
    );
}

#[test]
fn batch_doubles_with_each_success() {
    let mut config = config();
    config.batch_entries_initial = 1;
    let mut cluster = Cluster::new(2, &config);
    cluster.elect(1, 2000);
    assert_eq!(
        cluster.engine(1).followers()[0].batch,
        2,
        "the no-op's success doubled it"
    );
    for _ in 0..3 {
        cluster.propose(1, "x");
        cluster.deliver_all();
    }
    assert_eq!(cluster.engine(1).followers()[0].batch, 16);
}

/// A request without an answer within `request_timeout_ms` is a failure: the window is
/// dropped, the batch shrinks and replication resumes from `match_index + 1`.
#[test]
fn unanswered_request_times_out_and_resets_the_window() {
    let mut config = config();
    config.batch_entries_initial = 8;
    let mut cluster = Cluster::new(2, &config);
    cluster.elect(1, 2000);
    let before = cluster.engine(1).followers()[0];
    assert_eq!(before.batch, 16);
    cluster.propose(1, "lost");
    cluster.drop_all();
    assert_eq!(cluster.engine(1).followers()[0].next_index, LogIndex(3));
    cluster.step(1, Input::Tick { now_ms: 2000 + 499 });
    assert_eq!(
        cluster.engine(1).followers()[0].batch,
        16,
        "not yet timed out"
    );
    cluster.drop_all();
    cluster.step(1, Input::Tick { now_ms: 2000 + 500 });
    let after = cluster.engine(1).followers()[0];
    assert_eq!((after.batch, after.threshold), (1, 8));
    assert_eq!(after.match_index, LogIndex(1));
    cluster.drop_all();
    // The next batch goes out one heartbeat interval later (no busy retry of a dead peer).
    cluster.step(1, Input::Tick { now_ms: 2000 + 600 });
    cluster.deliver_all();
    assert_eq!(cluster.commit_of(1), LogIndex(2));
}

/// A heartbeat sent while requests are in flight is anchored at the follower's match index
/// (known to match, so a heartbeat that overtakes the requests is not refused); with none in
/// flight it probes `next_index - 1`.
#[test]
fn a_heartbeat_with_requests_in_flight_is_anchored_at_the_match() {
    let mut cluster = Cluster::new(2, &config());
    cluster.elect(1, 2000);
    let heartbeat_prev = |cluster: &mut Cluster, now_ms| {
        cluster.set_clocks(now_ms);
        cluster.step(1, Input::Tick { now_ms });
        let prev: Vec<u64> = cluster
            .network
            .iter()
            .filter_map(|e| match &e.message {
                Message::AppendEntries(r) if r.entries.is_empty() => Some(r.prev_log_id.index.0),
                _ => None,
            })
            .collect();
        prev
    };
    cluster.propose(1, "a");
    assert_eq!(heartbeat_prev(&mut cluster, 2100), [1], "[2] in flight");
    cluster.deliver_all();
    assert_eq!(heartbeat_prev(&mut cluster, 2200), [2], "nothing in flight");
}

/// A follower of term 2 with entries 1-1, 1-2 (nothing committed), and an AppendEntries of
/// leader 1 in term 2 after 1-2 carrying `entries` (term, index), sent by `from`.
fn append_from(from: u64, entries: &[(u64, u64)]) -> (Engine, Input) {
    let membership = Membership::new([NodeId(1), NodeId(2), NodeId(3)]);
    let mut engine = Engine::new(NodeId(2), membership, config(), restored(2, &[1, 1], 0), 1)
        .expect("a valid restored state");
    engine.drain_outputs();
    let request = AppendEntries {
        term: Term(2),
        leader_id: NodeId(1),
        seq: 1,
        prev_log_id: LogId::new(1, 2),
        entries: entries
            .iter()
            .map(|&(term, index)| crate::types::Entry {
                log_id: LogId::new(term, index),
                payload: crate::types::Payload::Blank,
            })
            .collect(),
        leader_commit: LogIndex::ZERO,
    };
    let input = Input::Received {
        from: NodeId(from),
        message: Message::AppendEntries(request),
    };
    (engine, input)
}

/// Peer input is checked, never trusted: an AppendEntries whose sender is not the leader it
/// names, or whose entries do not follow its previous entry one index at a time with terms
/// that never decrease and never pass the request's term, is dropped whole (nothing appended,
/// nothing answered), and the follower's log is untouched.
#[test]
fn a_malformed_append_entries_is_dropped_whole() {
    type Case = (u64, &'static [(u64, u64)], &'static str);
    let malformed: [Case; 4] = [
        (3, &[(2, 3)], "sent by node 3 in leader 1's name"),
        (1, &[(2, 4)], "a gap after the previous entry"),
        (1, &[(2, 3), (1, 4)], "a term going back"),
        (1, &[(3, 3)], "a term past the request's"),
    ];
    for (from, entries, what) in malformed {
        let (mut engine, input) = append_from(from, entries);
        let outputs: Vec<Output> = engine.step(input).collect();
        assert!(
            !outputs.iter().any(|o| matches!(
                o,
                Output::AppendLog { .. } | Output::TruncateLog { .. } | Output::Send { .. }
            )),
            "{what}: {outputs:?}"
        );
        assert_eq!(engine.status().last_log_id, LogId::new(1, 2), "{what}");
    }
    // The same request, well formed, is taken.
    let (mut engine, input) = append_from(1, &[(2, 3), (2, 4)]);
    let outputs: Vec<Output> = engine.step(input).collect();
    assert!(
        outputs
            .iter()
            .any(|o| matches!(o, Output::AppendLog { .. })),
        "{outputs:?}"
    );
    assert_eq!(engine.status().last_log_id, LogId::new(2, 4));
}

/// The AppendEntries requests with entries in flight, as (prev index, last index).
fn batches_in_flight(cluster: &Cluster) -> Vec<(u64, u64)> {
    cluster
        .network
        .iter()
        .filter_map(|e| match &e.message {
            Message::AppendEntries(r) if !r.entries.is_empty() => Some((
                r.prev_log_id.index.0,
                r.prev_log_id.index.0 + r.entries.len() as u64,
            )),
            _ => None,
        })
        .collect()
}

/// After a failure the leader probes one request at a time; with nothing new to send the probe
/// is an empty heartbeat at `next_index - 1`, and its success shows where the logs match as
/// well as a batch's would: pipelining resumes at once, not only after a batch succeeded.
#[test]
fn a_successful_probe_heartbeat_ends_probing() {
    let mut cluster = Cluster::new(2, &config());
    cluster.elect(1, 2000);
    // The heartbeat of 2100 is lost and times out at 2600 (window dropped, batch 1, probing).
    cluster.set_clocks(2100);
    cluster.step(1, Input::Tick { now_ms: 2100 });
    cluster.drop_all();
    cluster.set_clocks(2600);
    cluster.step(1, Input::Tick { now_ms: 2600 });
    let probes: Vec<u64> = cluster
        .network
        .iter()
        .filter_map(|e| match &e.message {
            Message::AppendEntries(r) => Some(r.prev_log_id.index.0),
            _ => None,
        })
        .collect();
    assert_eq!(probes, [1], "the probe: a heartbeat at next_index - 1");
    cluster.deliver_all();
    let status = cluster.engine(1).followers()[0];
    assert_eq!((status.batch, status.match_index), (1, LogIndex(1)));
    // Past the retry time, three entries: each fills a batch of 1, and up to 4 go at once.
    cluster.set_clocks(2700);
    for payload in ["a", "b", "c"] {
        cluster.propose(1, payload);
    }
    assert_eq!(
        batches_in_flight(&cluster),
        [(1, 2), (2, 3), (3, 4)],
        "pipelined, not one at a time"
    );
    cluster.deliver_all();
    assert_eq!(cluster.commit_of(1), LogIndex(4));
}

/// Node `id` of a three-node cluster restarts with an empty disk (a replaced one).
fn restart_with_an_empty_disk(cluster: &mut Cluster, id: u64) {
    let restored = RestoredState::default();
    let mut wiped =
        Engine::new(NodeId(id), members(), config(), restored, 42).expect("valid test config");
    wiped.core.clock_started = true;
    wiped.core.quiet_until_ms = 0;
    cluster.engines.insert(NodeId(id), wiped);
    cluster.logs.insert(NodeId(id), Vec::new());
}

/// The lost-data rule: a follower that lost entries it acknowledged as durable (a replaced
/// disk) refuses a current request at or below its match index; the leader lowers the match
/// index to what the refusal shows and resends the entries from there.
#[test]
fn a_follower_that_lost_acknowledged_entries_gets_them_resent() {
    let mut cluster = Cluster::new(3, &config());
    cluster.elect(1, 2000);
    cluster.propose(1, "a");
    cluster.propose(1, "b");
    cluster.deliver_all();
    assert_eq!(cluster.engine(1).followers()[0].match_index, LogIndex(3));
    restart_with_an_empty_disk(&mut cluster, 2);
    cluster.set_clocks(2100);
    // The heartbeat after entry 3 (nothing in flight) is refused: node 2's log is empty.
    cluster.step(1, Input::Tick { now_ms: 2100 });
    cluster.network.retain(|e| e.to == NodeId(2));
    let heartbeat = cluster.network.pop_front().expect("heartbeat to 2");
    cluster.deliver(heartbeat);
    let refusal = cluster.network.pop_front().expect("node 2's answer");
    assert!(
        matches!(
            &refusal.message,
            Message::AppendEntriesResponse(AppendEntriesResponse {
                outcome: AppendOutcome::Conflict { .. },
                ..
            })
        ),
        "{refusal:?}"
    );
    cluster.deliver(refusal);
    assert_lost_entries_resent_to_node_2(&mut cluster);
    assert_eq!(cluster.engine(1).followers()[0].match_index, LogIndex(3));
}

/// A refusal of a request at the match index is never taken for a request that overtook an
/// earlier one (the follower acknowledged that entry, so no earlier request is needed for it):
/// with a batch in flight, a heartbeat anchored at the match that a follower with a new disk
/// refuses shows the lost entries at once, not after the batch is refused or times out.
#[test]
fn a_refusal_at_the_match_shows_lost_entries_although_a_batch_is_in_flight() {
    let mut cluster = Cluster::new(3, &config());
    cluster.elect(1, 2000);
    cluster.propose(1, "a");
    cluster.deliver_all();
    assert_eq!(cluster.engine(1).followers()[0].match_index, LogIndex(2));
    restart_with_an_empty_disk(&mut cluster, 2);
    cluster.set_clocks(2050);
    cluster.propose(1, "b");
    cluster.set_clocks(2150);
    cluster.step(1, Input::Tick { now_ms: 2150 });
    cluster.network.retain(|e| e.to == NodeId(2));
    assert_eq!(batches_in_flight(&cluster), [(2, 3)], "the batch [3]");
    // The batch to node 2 is lost; node 2 gets the heartbeat, anchored at the match (2).
    let batch = cluster.network.pop_front().expect("batch to 2");
    assert!(
        matches!(&batch.message, Message::AppendEntries(r) if !r.entries.is_empty()),
        "{batch:?}"
    );
    let Message::AppendEntries(heartbeat) = &cluster.network[0].message else {
        panic!("{:?}", cluster.network);
    };
    assert_eq!(
        (heartbeat.prev_log_id.index, heartbeat.entries.len()),
        (LogIndex(2), 0)
    );
    let heartbeat = cluster.network.pop_front().expect("heartbeat to 2");
    cluster.deliver(heartbeat);
    let refusal = cluster.network.pop_front().expect("node 2's answer");
    cluster.deliver(refusal);
    assert_lost_entries_resent_to_node_2(&mut cluster);
}

/// After node 2's refusal of entries it had acknowledged: the leader forgets its match, resends
/// from the start of the log, and node 2's log becomes the leader's again.
fn assert_lost_entries_resent_to_node_2(cluster: &mut Cluster) {
    assert_eq!(
        cluster.engine(1).followers()[0].match_index,
        LogIndex(0),
        "the match node 2 lost is forgotten"
    );
    cluster.network.retain(|e| e.to == NodeId(2));
    assert_eq!(
        batches_in_flight(cluster),
        [(0, 1)],
        "resent from the start"
    );
    cluster.deliver_all();
    assert_eq!(cluster.logs[&NodeId(2)], cluster.logs[&NodeId(1)]);
}

/// One step sends every batch the follower's window has room for: entries proposed together
/// that fill four batches leave together, not one per answer.
#[test]
fn a_leader_sends_as_many_batches_as_the_window_holds_at_once() {
    let mut config = config();
    config.batch_entries_initial = 2;
    config.batch_entries_max = 2;
    let mut cluster = Cluster::new(2, &config);
    cluster.elect(1, 2000);
    let payloads = (0..10).map(|_| bytes::Bytes::from_static(b"x")).collect();
    cluster.step(1, Input::Proposed { id: 0, payloads });
    assert_eq!(
        batches_in_flight(&cluster),
        [(1, 3), (3, 5), (5, 7), (7, 9)],
        "max_inflight_requests batches of 2; entries 10 and 11 wait"
    );
    cluster.deliver_all();
    assert_eq!(cluster.commit_of(1), LogIndex(11));
}

/// Nagle's rule by bytes: with a request in flight, waiting entries go once they hold more
/// than `batch_bytes_max` bytes (a request of at most that many goes, the rest waits), not
/// when they hold exactly that many.
#[test]
fn waiting_entries_go_once_they_hold_more_than_the_byte_limit() {
    let mut config = config();
    config.batch_bytes_max = 4;
    let mut cluster = Cluster::new(2, &config);
    cluster.elect(1, 2000);
    cluster.propose(1, "a");
    assert_eq!(
        batches_in_flight(&cluster),
        [(1, 2)],
        "to an idle follower at once"
    );
    cluster.propose(1, "bb");
    cluster.propose(1, "cc");
    assert_eq!(batches_in_flight(&cluster), [(1, 2)], "4 bytes wait");
    cluster.propose(1, "d");
    assert_eq!(
        batches_in_flight(&cluster),
        [(1, 2), (2, 4)],
        "5 bytes waiting: 4 of them go, 1 waits"
    );
    cluster.deliver_all();
    assert_eq!(cluster.commit_of(1), LogIndex(5));
}
