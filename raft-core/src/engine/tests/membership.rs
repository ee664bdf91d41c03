//! Membership change: configurations in force when appended, joint consensus for voter
//! changes, learners outside every quorum, one change at a time, a leader removing itself.

use crate::config::Config;
use crate::engine::testing::Cluster;
use crate::engine::{ChangeRejection, Engine, Input, Output, RestoredState, RoleKind};
use crate::membership::{Membership, MembershipChange};
use crate::message::{AppendEntries, Message};
use crate::snapshot::SnapshotMeta;
use crate::types::{Entry, HardState, LogId, LogIndex, NodeId, Payload, Term};

fn config() -> Config {
    Config {
        pre_vote: true,
        check_quorum: true,
        request_timeout_ms: 300,
        ..Config::default()
    }
}

fn accepted(outputs: &[Output]) -> LogId {
    outputs
        .iter()
        .find_map(|o| match o {
            Output::MembershipChangeAccepted { log_id, .. } => Some(*log_id),
            _ => None,
        })
        .unwrap_or_else(|| panic!("change not accepted: {outputs:?}"))
}

fn rejected(outputs: &[Output]) -> ChangeRejection {
    outputs
        .iter()
        .find_map(|o| match o {
            Output::MembershipChangeRejected { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("change not rejected: {outputs:?}"))
}

fn ids(values: &[u64]) -> Vec<NodeId> {
    values.iter().map(|&v| NodeId(v)).collect()
}

/// A three-voter cluster led by node 1 with learners `learners` added and caught up.
fn cluster_with_learners(learners: &[u64]) -> Cluster {
    let config = config();
    let mut cluster = Cluster::new(3, &config);
    cluster.elect(1, 1_000);
    for &learner in learners {
        cluster.add_empty_node(learner, &config);
        let outputs = cluster.change(1, MembershipChange::add_learner(NodeId(learner), "addr"));
        accepted(&outputs);
        cluster.deliver_all();
    }
    cluster
}

#[test]
fn a_learner_receives_the_log_and_learns_its_membership() {
    let mut cluster = cluster_with_learners(&[4]);
    cluster.propose(1, "x");
    cluster.deliver_all();
    let learner = cluster.engine(4);
    assert!(learner.membership().is_learner(NodeId(4)));
    assert_eq!(
        learner.status().last_log_id,
        cluster.engine(1).status().last_log_id
    );
    assert_eq!(cluster.logs[&NodeId(4)], cluster.logs[&NodeId(1)]);
    assert_eq!(cluster.role(4), RoleKind::Follower);
}

#[test]
fn promotion_goes_through_a_joint_configuration_the_leader_leaves_by_itself() {
    let mut cluster = cluster_with_learners(&[4]);
    let change = MembershipChange::default()
        .promote(NodeId(4))
        .remove(NodeId(3));
    let at = accepted(&cluster.change(1, change));
    assert!(
        cluster.engine(1).membership().is_joint(),
        "in force when appended"
    );
    cluster.deliver_all();
    let leader = cluster.engine(1);
    let (index, committed) = leader.committed_membership();
    assert!(
        index > at.index,
        "the final configuration follows the joint one"
    );
    assert!(!committed.is_joint());
    assert_eq!(committed.voters().collect::<Vec<_>>(), ids(&[1, 2, 4]));
    let kinds: Vec<bool> = cluster.logs[&NodeId(1)]
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::Membership(m) => Some(m.is_joint()),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, [false, true, false], "learner, joint, final");
    for id in [2, 4] {
        assert_eq!(cluster.engine(id).membership(), committed);
    }
}

#[test]
fn learners_never_count_toward_commit() {
    let mut cluster = cluster_with_learners(&[4, 5]);
    let before = cluster.commit_of(1);
    cluster.propose(1, "x");
    // Only the learners hear the leader.
    let to_learners = |cluster: &mut Cluster| {
        while let Some(envelope) = cluster.network.pop_front() {
            if [NodeId(2), NodeId(3)].contains(&envelope.to)
                || [NodeId(2), NodeId(3)].contains(&envelope.from)
            {
                continue;
            }
            cluster.deliver(envelope);
        }
    };
    to_learners(&mut cluster);
    assert_eq!(
        cluster.engine(4).status().last_log_id,
        cluster.engine(1).status().last_log_id
    );
    assert_eq!(
        cluster.commit_of(1),
        before,
        "two learners and the leader are no majority"
    );
}

#[test]
fn a_joint_configuration_commits_only_with_both_majorities() {
    let mut cluster = cluster_with_learners(&[4, 5]);
    let change = MembershipChange::default()
        .promote(NodeId(4))
        .promote(NodeId(5))
        .remove(NodeId(2))
        .remove(NodeId(3));
    let at = accepted(&cluster.change(1, change));
    // The new voters {1, 4, 5} all hold the joint entry; the old {1, 2, 3} only the leader.
    while let Some(envelope) = cluster.network.pop_front() {
        if [2, 3].contains(&envelope.to.0) || [2, 3].contains(&envelope.from.0) {
            continue;
        }
        cluster.deliver(envelope);
    }
    assert_eq!(cluster.engine(4).status().last_log_id, at);
    assert!(
        cluster.commit_of(1) < at.index,
        "a majority of the new voters is not enough"
    );
    // Once the old voters answer (the dropped requests time out and are sent again), both
    // majorities hold it and the leader leaves the joint phase.
    let config = config();
    let later = 1_000 + config.request_timeout_ms + config.heartbeat_interval_ms;
    for now_ms in [later, later + 150, later + 300] {
        cluster.set_clocks(now_ms);
        cluster.step(1, Input::Tick { now_ms });
        cluster.deliver_all();
    }
    assert!(cluster.commit_of(1) >= at.index);
    let (_, committed) = cluster.engine(1).committed_membership();
    assert_eq!(committed.voters().collect::<Vec<_>>(), ids(&[1, 4, 5]));
    assert!(!committed.is_joint());
}

#[test]
fn a_second_change_while_one_is_in_flight_is_refused() {
    let mut cluster = cluster_with_learners(&[4]);
    let change = MembershipChange::default().promote(NodeId(4));
    accepted(&cluster.change(1, change));
    let again = cluster.change(1, MembershipChange::default().remove(NodeId(2)));
    assert_eq!(rejected(&again), ChangeRejection::InProgress);
    cluster.deliver_all();
    // Finished (joint left, final committed): the next change is accepted.
    accepted(&cluster.change(1, MembershipChange::default().remove(NodeId(2))));
}

#[test]
fn invalid_changes_and_changes_sent_to_followers_are_refused() {
    let mut cluster = cluster_with_learners(&[]);
    let promote_stranger = MembershipChange::default().promote(NodeId(9));
    assert!(matches!(
        rejected(&cluster.change(1, promote_stranger)),
        ChangeRejection::Invalid(reason) if reason.contains("not a learner")
    ));
    let follower = cluster.change(2, MembershipChange::add_learner(NodeId(9), "x"));
    assert_eq!(
        rejected(&follower),
        ChangeRejection::NotLeader {
            leader: Some(NodeId(1))
        }
    );
}

#[test]
fn a_leader_that_removes_itself_leads_until_the_final_configuration_commits() {
    let mut cluster = cluster_with_learners(&[]);
    let at = accepted(&cluster.change(1, MembershipChange::default().remove(NodeId(1))));
    assert_eq!(
        cluster.role(1),
        RoleKind::Leader,
        "still leading in the joint phase"
    );
    cluster.deliver_all();
    assert_ne!(cluster.role(1), RoleKind::Leader);
    let (index, committed) = cluster.engine(1).committed_membership();
    assert!(index > at.index && !committed.is_voter(NodeId(1)));
    // It handed leadership over: one of the remaining voters leads at once.
    let leaders: Vec<u64> = [2, 3]
        .into_iter()
        .filter(|&id| cluster.role(id) == RoleKind::Leader)
        .collect();
    assert_eq!(leaders.len(), 1, "TimeoutNow elected a successor");
    // The removed node never campaigns again, however long it waits.
    let term = cluster.engine(1).status().term;
    for step in 1..=20 {
        let now_ms = 10_000 * step;
        cluster.step(1, Input::Tick { now_ms });
        assert!(cluster.network.iter().all(|e| e.from != NodeId(1)));
    }
    assert_eq!(cluster.engine(1).status().term, term);
}

#[test]
fn a_truncated_configuration_entry_reverts_to_the_previous_one() {
    let config = config();
    let mut follower = Engine::new(
        NodeId(2),
        Membership::new(ids(&[1, 2, 3])),
        config,
        RestoredState::default(),
        1,
    )
    .unwrap();
    let entry = |term: u64, index: u64, payload: Payload| Entry {
        log_id: LogId::new(term, index),
        payload,
    };
    let learner = Membership::new(ids(&[1, 2, 3])).with_address(NodeId(4), "x");
    let learner = learner
        .apply(&MembershipChange::add_learner(NodeId(4), "x"))
        .unwrap();
    let append = |term: u64, leader: u64, entries: Vec<Entry>| Input::Received {
        from: NodeId(leader),
        message: Message::AppendEntries(AppendEntries {
            term: Term(term),
            leader_id: NodeId(leader),
            seq: 1,
            prev_log_id: LogId::ZERO,
            entries,
            leader_commit: LogIndex::ZERO,
        }),
    };
    let _ = follower
        .step(append(
            1,
            1,
            vec![
                entry(1, 1, Payload::Blank),
                entry(1, 2, Payload::Membership(learner.clone())),
            ],
        ))
        .count();
    assert_eq!(follower.membership(), &learner, "in force when appended");
    // A leader of a later term never had entry 2: the follower truncates it.
    let _ = follower
        .step(append(
            2,
            3,
            vec![entry(1, 1, Payload::Blank), entry(2, 2, Payload::Blank)],
        ))
        .count();
    assert_eq!(follower.membership(), &Membership::new(ids(&[1, 2, 3])));
    assert_eq!(follower.status().membership_index, LogIndex::ZERO);
}

#[test]
fn a_restart_recovers_the_latest_configuration_committed_or_not() {
    let joint = Membership::new(ids(&[1, 2, 3]))
        .apply(&MembershipChange::add_learner(NodeId(4), "x"))
        .unwrap()
        .apply(&MembershipChange::default().promote(NodeId(4)))
        .unwrap();
    let entries = [(1, Payload::Blank), (2, Payload::Membership(joint.clone()))];
    let restored = RestoredState {
        hard_state: HardState {
            term: Term(1),
            vote: None,
            commit: LogIndex(1),
        },
        snapshot: None,
        entries: entries
            .iter()
            .map(|(index, payload)| crate::engine::LogEntryMeta {
                log_id: LogId::new(1, *index),
                payload_len: payload.len(),
            })
            .collect(),
        memberships: vec![(LogId::new(1, 2), joint.clone())],
    };
    let engine = Engine::new(
        NodeId(2),
        Membership::new(ids(&[1, 2, 3])),
        config(),
        restored,
        1,
    )
    .unwrap();
    assert_eq!(engine.membership(), &joint);
    assert_eq!(engine.status().membership_index, LogIndex(2));
    assert_eq!(
        engine.committed_membership().1,
        &Membership::new(ids(&[1, 2, 3]))
    );
}

#[test]
fn a_node_started_without_membership_never_campaigns() {
    let config = config();
    let mut cluster = Cluster::new(1, &config);
    cluster.add_empty_node(9, &config);
    for step in 1..=10 {
        cluster.step(
            9,
            Input::Tick {
                now_ms: 5_000 * step,
            },
        );
    }
    assert!(cluster.network.iter().all(|e| e.from != NodeId(9)));
    assert_eq!(cluster.engine(9).status().term, Term(0));
}

#[test]
fn snapshots_carry_the_configuration_and_reach_a_learner_added_after_compaction() {
    let config = Config {
        snapshot_entries: 3,
        snapshot_keep_entries: 0,
        ..config()
    };
    let mut cluster = Cluster::new(3, &config);
    cluster.elect(1, 1_000);
    let mut snapshots = Vec::new();
    for _ in 0..5 {
        cluster.propose(1, "x");
        cluster.deliver_all();
        // The leader's snapshots become durable at once.
        let created: Vec<(LogId, Membership)> = cluster
            .trace
            .drain(..)
            .filter_map(|(id, output)| match output {
                Output::CreateSnapshot {
                    last_log_id,
                    membership,
                } if id == NodeId(1) => Some((last_log_id, membership)),
                _ => None,
            })
            .collect();
        for (last_log_id, membership) in created {
            let meta = SnapshotMeta {
                last_log_id,
                membership: membership.clone(),
                size: 0,
                checksum: crc32c::crc32c(b""),
            };
            cluster.step(1, Input::SnapshotCreated { meta });
            snapshots.push(membership);
        }
    }
    assert!(!snapshots.is_empty());
    assert!(
        snapshots
            .iter()
            .all(|m| *m == Membership::new(ids(&[1, 2, 3])))
    );
    assert!(cluster.engine(1).status().log_base_index > LogIndex::ZERO);
    // The leader's log is compacted; a new learner gets a snapshot first (SendSnapshot).
    cluster.add_empty_node(4, &config);
    accepted(&cluster.change(1, MembershipChange::add_learner(NodeId(4), "x")));
    cluster.deliver_all();
    let sends_snapshot = cluster.trace.iter().any(|(id, output)| {
        *id == NodeId(1) && matches!(output, Output::SendSnapshot { to, .. } if *to == NodeId(4))
    });
    assert!(
        sends_snapshot,
        "a compacted log reaches a learner by snapshot"
    );
}

#[test]
fn a_removed_follower_receives_its_removal_and_stops_campaigning() {
    let mut cluster = cluster_with_learners(&[]);
    accepted(&cluster.change(1, MembershipChange::default().remove(NodeId(3))));
    cluster.deliver_all();
    assert!(
        !cluster
            .engine(1)
            .committed_membership()
            .1
            .is_member(NodeId(3))
    );
    assert!(
        !cluster.engine(3).membership().is_voter(NodeId(3)),
        "the leader replicated the final configuration to the node it removes"
    );
    // The leader's next heartbeat tells it that its removal committed.
    let heartbeat_ms = 1_000 + 2 * config().heartbeat_interval_ms;
    cluster.step(
        1,
        Input::Tick {
            now_ms: heartbeat_ms,
        },
    );
    cluster.deliver_all();
    let removal = cluster.engine(3).status().membership_index;
    assert!(cluster.engine(3).status().commit_index >= removal);
    cluster.step(
        1,
        Input::Tick {
            now_ms: 2 * heartbeat_ms,
        },
    );
    assert!(
        cluster.network.iter().all(|e| e.to != NodeId(3)),
        "once it knows, the leader stops replicating to it"
    );
    for step in 1..=5 {
        cluster.step(
            3,
            Input::Tick {
                now_ms: 100_000 * step,
            },
        );
    }
    assert!(cluster.network.iter().all(|e| e.from != NodeId(3)));
}

/// A removed node that never answers (it was shut down) is given up two election timeouts
/// after its removal committed: the leader does not keep sending to it.
#[test]
fn a_removed_node_that_never_answers_is_given_up() {
    let config = config();
    let mut cluster = cluster_with_learners(&[]);
    accepted(&cluster.change(1, MembershipChange::default().remove(NodeId(3))));
    let deliver_but_to_3 = |cluster: &mut Cluster| {
        while let Some(envelope) = cluster.network.pop_front() {
            if envelope.to != NodeId(3) {
                cluster.deliver(envelope);
            }
        }
    };
    deliver_but_to_3(&mut cluster);
    deliver_but_to_3(&mut cluster);
    assert!(
        !cluster
            .engine(1)
            .committed_membership()
            .1
            .is_member(NodeId(3))
    );
    let step_ms = config.heartbeat_interval_ms;
    let mut now_ms = 1_000;
    let mut sent_to_3 = Vec::new();
    while now_ms < 1_000 + 4 * config.election_timeout_ms {
        now_ms += step_ms;
        cluster.step(1, Input::Tick { now_ms });
        cluster.step(2, Input::Tick { now_ms });
        sent_to_3.push(cluster.network.iter().any(|e| e.to == NodeId(3)));
        deliver_but_to_3(&mut cluster);
    }
    assert!(
        sent_to_3.iter().any(|&sent| sent),
        "it was tried for a while"
    );
    assert!(
        !sent_to_3.iter().rev().take(5).any(|&sent| sent),
        "then given up: {sent_to_3:?}"
    );
    assert_eq!(cluster.role(1), RoleKind::Leader);
}

#[test]
fn a_transfer_to_a_voter_being_removed_is_refused() {
    let mut cluster = cluster_with_learners(&[]);
    accepted(&cluster.change(1, MembershipChange::default().remove(NodeId(3))));
    cluster.step(1, Input::TransferRequested { to: NodeId(3) });
    let outputs = cluster.propose(1, "x");
    assert!(
        outputs
            .iter()
            .any(|o| matches!(o, Output::ProposalAccepted { .. })),
        "no transfer started: {outputs:?}"
    );
}

#[test]
fn a_removed_leader_under_write_load_hands_over_before_stepping_down() {
    let mut cluster = cluster_with_learners(&[]);
    accepted(&cluster.change(1, MembershipChange::default().remove(NodeId(1))));
    let mut steps = 0;
    while let Some(envelope) = cluster.network.pop_front() {
        if cluster.role(1) == RoleKind::Leader {
            cluster.propose(1, "load");
        }
        cluster.deliver(envelope);
        steps += 1;
        assert!(steps < 10_000, "message storm");
    }
    let timeout_now_sent = cluster.trace.iter().any(|(id, output)| {
        *id == NodeId(1)
            && matches!(
                output,
                Output::Send {
                    message: Message::TimeoutNow(_),
                    ..
                }
            )
    });
    assert!(timeout_now_sent, "the removed leader handed over");
    assert_ne!(cluster.role(1), RoleKind::Leader);
    let leaders = [2, 3]
        .into_iter()
        .filter(|&id| cluster.role(id) == RoleKind::Leader)
        .count();
    assert_eq!(leaders, 1, "a successor leads at once");
}

#[test]
fn a_joining_node_takes_no_snapshot_before_it_knows_a_configuration() {
    let config = Config {
        snapshot_entries: 3,
        snapshot_keep_entries: 0,
        ..config()
    };
    let mut cluster = Cluster::new(3, &config);
    cluster.elect(1, 1_000);
    for _ in 0..8 {
        cluster.propose(1, "x");
        cluster.deliver_all();
    }
    cluster.add_empty_node(4, &config);
    accepted(&cluster.change(1, MembershipChange::add_learner(NodeId(4), "a4")));
    cluster.deliver_all();
    let snapshots: Vec<&Membership> = cluster
        .trace
        .iter()
        .filter_map(|(id, output)| match output {
            Output::CreateSnapshot { membership, .. } if *id == NodeId(4) => Some(membership),
            _ => None,
        })
        .collect();
    assert!(!snapshots.is_empty(), "node 4 caught up and took snapshots");
    assert!(snapshots.iter().all(|m| !m.is_empty()), "{snapshots:?}");
}

/// A node whose log ends with the final configuration that removes it, appended while it
/// led and not known to be committed, restarted with `commit`.
fn removed_with_final_configuration(config: Config, commit: u64) -> Engine {
    let old = Membership::new(ids(&[1, 2]));
    let joint = old
        .apply(&MembershipChange::default().remove(NodeId(2)))
        .unwrap();
    assert!(joint.is_joint());
    let last = joint.leave_joint();
    let payloads = [
        (1, Payload::Blank),
        (2, Payload::Membership(joint.clone())),
        (3, Payload::Membership(last.clone())),
    ];
    let restored = RestoredState {
        hard_state: HardState {
            term: Term(1),
            vote: Some(NodeId(2)),
            commit: LogIndex(commit),
        },
        snapshot: None,
        entries: payloads
            .iter()
            .map(|(index, payload)| crate::engine::LogEntryMeta {
                log_id: LogId::new(1, *index),
                payload_len: payload.len(),
            })
            .collect(),
        memberships: vec![(LogId::new(1, 2), joint), (LogId::new(1, 3), last)],
    };
    Engine::new(NodeId(2), old, config, restored, 7).unwrap()
}

/// Ticks `engine` well past its election timeout (making its hard state durable as it asks)
/// and returns what it sent.
fn sent_after_timeout(engine: &mut Engine) -> Vec<Message> {
    let mut sent = Vec::new();
    let mut inputs: Vec<Input> = (1..=5)
        .map(|step| Input::Tick {
            now_ms: 10_000 * step,
        })
        .rev()
        .collect();
    while let Some(input) = inputs.pop() {
        let outputs: Vec<Output> = engine.step(input).collect();
        for output in outputs {
            match output {
                Output::Send { message, .. } => sent.push(message),
                Output::PersistHardState(hard_state) => {
                    inputs.push(Input::HardStatePersisted { hard_state });
                }
                _ => {}
            }
        }
    }
    sent
}

/// The Raft thesis (§4.2.2): a node removed by its latest configuration may still be needed
/// to elect a leader until that configuration commits. Here node 2 led, appended the final
/// configuration (voters 1) that removes it and crashed before node 1 got it: node 1, still in
/// the joint configuration, needs node 2's vote, and node 2 refuses it (node 1's log is
/// shorter). So node 2 campaigns (with pre-vote), asking the voters of its configuration.
#[test]
fn a_node_removed_by_an_uncommitted_configuration_still_campaigns_with_pre_vote() {
    let mut engine = removed_with_final_configuration(config(), 2);
    assert!(!engine.membership().is_voter(NodeId(2)));
    let sent = sent_after_timeout(&mut engine);
    assert!(
        sent.iter()
            .any(|m| matches!(m, Message::RequestVote(r) if r.pre_vote)),
        "{sent:?}"
    );
}

/// Once its removal is known committed, or without pre-vote (which keeps a removed node that
/// never learned of the commit from raising the members' terms), it never campaigns.
#[test]
fn a_node_removed_by_a_committed_configuration_or_without_pre_vote_never_campaigns() {
    let mut committed = removed_with_final_configuration(config(), 3);
    assert_eq!(sent_after_timeout(&mut committed), vec![]);
    let without_pre_vote = Config {
        pre_vote: false,
        ..config()
    };
    let mut uncommitted = removed_with_final_configuration(without_pre_vote, 2);
    assert_eq!(sent_after_timeout(&mut uncommitted), vec![]);
}
