//! The leader's own rules at their boundaries: when check-quorum makes it step down, when a
//! leadership transfer is given up, and what a removed leader does when its successor never
//! catches up.

use super::config;
use crate::config::Config;
use crate::engine::testing::Cluster;
use crate::engine::{ChangeRejection, Input, Output, PlantedBug, RoleKind};
use crate::membership::MembershipChange;
use crate::message::Message;
use crate::types::NodeId;

/// `config()` without check-quorum, so that only the rule under test ends a leadership.
fn without_check_quorum() -> Config {
    Config {
        check_quorum: false,
        ..config()
    }
}

fn tick_and_drop(cluster: &mut Cluster, id: u64, now_ms: u64) {
    cluster.step(id, Input::Tick { now_ms });
    cluster.drop_all();
}

fn deliver_but_timeout_now(cluster: &mut Cluster) {
    while let Some(envelope) = cluster.network.pop_front() {
        if !matches!(envelope.message, Message::TimeoutNow(_)) {
            cluster.deliver(envelope);
        }
    }
}

/// Leader 1 proposes removing node `removed`, and the change is accepted.
fn remove_accepted(cluster: &mut Cluster, removed: u64) {
    let outputs = cluster.change(1, MembershipChange::default().remove(NodeId(removed)));
    assert!(
        outputs
            .iter()
            .any(|o| matches!(o, Output::MembershipChangeAccepted { .. })),
        "{outputs:?}"
    );
}

fn proposal_accepted(outputs: &[Output]) -> bool {
    match outputs {
        [Output::ProposalAccepted { .. }, ..] => true,
        [Output::ProposalRejected { .. }] => false,
        other => panic!("neither accepted nor rejected: {other:?}"),
    }
}

/// Check-quorum (T = 1000 ms): a leader steps down at the first tick at which no quorum
/// answered within the last election timeout, exactly T after the last answer (or after its
/// election, if none came since), and not a tick earlier.
#[test]
fn a_leader_steps_down_exactly_an_election_timeout_after_the_last_quorum_answer() {
    // Nothing answered since the election at 1000 (its no-op's answers came at 1000).
    let mut cluster = Cluster::new(3, &config());
    cluster.elect(1, 1_000);
    tick_and_drop(&mut cluster, 1, 1_999);
    assert_eq!(cluster.role(1), RoleKind::Leader);
    tick_and_drop(&mut cluster, 1, 2_000);
    assert_eq!(cluster.role(1), RoleKind::Follower);

    // The followers answered a heartbeat at 1500: the leader leads until 2500.
    let mut cluster = Cluster::new(3, &config());
    cluster.elect(1, 1_000);
    cluster.step(1, Input::Tick { now_ms: 1_500 });
    cluster.deliver_all();
    for now_ms in [2_000, 2_499] {
        tick_and_drop(&mut cluster, 1, now_ms);
        assert_eq!(cluster.role(1), RoleKind::Leader, "at {now_ms}");
    }
    tick_and_drop(&mut cluster, 1, 2_500);
    assert_eq!(cluster.role(1), RoleKind::Follower);
}

/// A transfer to a follower that does not catch up is given up an election timeout after it
/// was asked for: proposals are refused (naming the target) until then, and accepted from the
/// first tick at the deadline on.
#[test]
fn a_transfer_the_target_does_not_finish_is_given_up_at_its_deadline() {
    let mut cluster = Cluster::new(3, &without_check_quorum());
    cluster.elect(1, 1_000);
    // Node 3 misses an entry, so it does not hold the whole log when the transfer starts.
    cluster.propose(1, "x");
    cluster.network.retain(|e| e.to != NodeId(3));
    cluster.deliver_all();
    cluster.step(1, Input::TransferRequested { to: NodeId(3) });
    cluster.drop_all();
    tick_and_drop(&mut cluster, 1, 1_999);
    let refused = cluster.propose(1, "y");
    assert_eq!(
        refused,
        vec![Output::ProposalRejected {
            id: 0,
            leader: Some(NodeId(3))
        }]
    );
    tick_and_drop(&mut cluster, 1, 2_000);
    assert!(proposal_accepted(&cluster.propose(1, "z")));
    assert_eq!(cluster.role(1), RoleKind::Leader);
}

/// A leader removed from the voters hands leadership to the most caught-up voter; if that
/// voter does not catch up within an election timeout, the leader steps down anyway at the
/// deadline (a removed node must not go on leading).
#[test]
fn a_removed_leader_whose_successor_does_not_catch_up_steps_down_at_the_deadline() {
    let mut cluster = Cluster::new(3, &without_check_quorum());
    cluster.elect(1, 1_000);
    remove_accepted(&mut cluster, 1);
    // Deliver everything but the entry proposed once the final configuration (index 3, after
    // the no-op and the joint one) is appended: when that configuration commits, no voter
    // holds the whole log.
    let mut proposed = false;
    while let Some(envelope) = cluster.network.pop_front() {
        let carries_4 = matches!(&envelope.message,
            Message::AppendEntries(request) if request.entries.iter().any(|e| e.log_id.index.0 == 4));
        if !carries_4 {
            cluster.deliver(envelope);
        }
        if !proposed && cluster.engine(1).status().last_log_id.index.0 == 3 {
            assert!(proposal_accepted(&cluster.propose(1, "x")));
            proposed = true;
        }
    }
    assert!(proposed);
    let (_, committed) = cluster.engine(1).committed_membership();
    assert!(!committed.is_joint() && !committed.is_voter(NodeId(1)));
    assert_eq!(cluster.role(1), RoleKind::Leader, "handing over");
    let timeout_now_sent = cluster.trace.iter().any(|(_, o)| {
        matches!(
            o,
            Output::Send {
                message: Message::TimeoutNow(_),
                ..
            }
        )
    });
    assert!(!timeout_now_sent, "the successor is not caught up");
    tick_and_drop(&mut cluster, 1, 1_999);
    assert_eq!(cluster.role(1), RoleKind::Leader);
    tick_and_drop(&mut cluster, 1, 2_000);
    assert_eq!(cluster.role(1), RoleKind::Follower);
}

/// The planted bug `LeaseTooLong` (for the simulator's own tests) stretches the lease to two
/// election timeouts: a lease read is served at once until then, with no quorum heard since
/// the election. Without the bug the lease ends `max_clock_drift_ms` before one (see
/// `lease.rs`).
#[test]
fn the_planted_lease_too_long_bug_stretches_the_lease_to_two_election_timeouts() {
    let lease_config = Config {
        lease_reads: true,
        ..config()
    };
    let mut cluster = Cluster::new(3, &lease_config);
    cluster.elect(1, 1_000);
    let leader = cluster.engines.get_mut(&NodeId(1)).unwrap();
    leader.core.planted_bug = Some(PlantedBug::LeaseTooLong);
    let served = |outputs: &[Output]| {
        outputs
            .iter()
            .any(|o| matches!(o, Output::ReadReady { .. }))
    };
    // The clocks move without a tick: no heartbeat, and no check-quorum.
    cluster.set_clocks(2_999);
    assert!(served(
        &cluster.step(1, Input::LeaseReadRequested { id: 1 })
    ));
    cluster.set_clocks(3_000);
    assert!(!served(
        &cluster.step(1, Input::LeaseReadRequested { id: 2 })
    ));
}

/// No lease read while a transfer waits for its target to catch up (no TimeoutNow yet), nor
/// after a TimeoutNow went out, even once the transfer was given up: its target may still
/// campaign and win an election that ignores the followers' leases. Each alone ends them.
#[test]
fn a_pending_transfer_and_a_sent_timeout_now_each_end_lease_reads() {
    let lease_config = Config {
        lease_reads: true,
        ..config()
    };
    let served = |outputs: &[Output]| {
        outputs
            .iter()
            .any(|o| matches!(o, Output::ReadReady { .. }))
    };

    // A transfer to node 3, which misses an entry: no TimeoutNow goes out.
    let mut cluster = Cluster::new(3, &lease_config);
    cluster.elect(1, 1_000);
    cluster.propose(1, "x");
    cluster.network.retain(|e| e.to != NodeId(3));
    cluster.deliver_all();
    // Served before the transfer, with an entry past the no-op committed.
    assert!(cluster.commit_of(1).0 > 1);
    assert!(served(
        &cluster.step(1, Input::LeaseReadRequested { id: 1 })
    ));
    cluster.step(1, Input::TransferRequested { to: NodeId(3) });
    assert!(cluster.network.iter().all(|e| e.to != NodeId(3)));
    assert!(!served(
        &cluster.step(1, Input::LeaseReadRequested { id: 2 })
    ));

    // A transfer to node 2, caught up: every TimeoutNow (one goes out at each answer of node
    // 2 while the transfer lasts) is lost, the transfer is given up at 2000, and the followers
    // keep answering.
    let mut cluster = Cluster::new(3, &lease_config);
    cluster.elect(1, 1_000);
    cluster.step(1, Input::TransferRequested { to: NodeId(2) });
    assert!(
        cluster
            .network
            .iter()
            .any(|e| matches!(e.message, Message::TimeoutNow(_)))
    );
    deliver_but_timeout_now(&mut cluster);
    for now_ms in [1_500, 2_000] {
        cluster.step(1, Input::Tick { now_ms });
        deliver_but_timeout_now(&mut cluster);
    }
    assert_eq!(cluster.role(1), RoleKind::Leader);
    assert!(
        proposal_accepted(&cluster.propose(1, "y")),
        "the transfer was given up"
    );
    deliver_but_timeout_now(&mut cluster);
    assert!(!served(
        &cluster.step(1, Input::LeaseReadRequested { id: 3 })
    ));
}

/// A transfer goes only to another node that stays a voter: one to the leader itself, to a
/// node outside the configuration, or to a learner is ignored (proposals go on being
/// accepted, nothing is sent).
#[test]
fn a_transfer_to_the_leader_itself_a_stranger_or_a_learner_is_ignored() {
    let mut cluster = Cluster::new(3, &config());
    cluster.elect(1, 1_000);
    cluster.add_empty_node(4, &config());
    let outputs = cluster.change(1, MembershipChange::add_learner(NodeId(4), "a4"));
    assert!(
        outputs
            .iter()
            .any(|o| matches!(o, Output::MembershipChangeAccepted { .. }))
    );
    cluster.deliver_all();
    for to in [1, 9, 4] {
        let outputs = cluster.step(1, Input::TransferRequested { to: NodeId(to) });
        assert_eq!(outputs, vec![], "transfer to {to}");
        assert!(
            proposal_accepted(&cluster.propose(1, "x")),
            "transfer to {to}"
        );
        cluster.deliver_all();
    }
    assert!(!cluster.trace.iter().any(|(_, o)| matches!(
        o,
        Output::Send {
            message: Message::TimeoutNow(_),
            ..
        }
    )));
}

/// One membership change at a time, and none before the term's first commit: a change is
/// refused as in progress while the configuration last appended is uncommitted (here a
/// learner's addition, which is no joint configuration), and while the new leader's no-op is
/// uncommitted (its log may end with a configuration its predecessor never committed).
#[test]
fn a_membership_change_waits_for_the_previous_one_and_for_the_terms_first_commit() {
    let rejected_in_progress = |outputs: &[Output]| {
        outputs.iter().any(|o| {
            matches!(
                o,
                Output::MembershipChangeRejected {
                    reason: ChangeRejection::InProgress,
                    ..
                }
            )
        })
    };

    let mut cluster = Cluster::new(3, &config());
    cluster.elect(1, 1_000);
    let first = cluster.change(1, MembershipChange::add_learner(NodeId(4), "a4"));
    assert!(!rejected_in_progress(&first), "{first:?}");
    let second = cluster.change(1, MembershipChange::add_learner(NodeId(5), "a5"));
    assert!(rejected_in_progress(&second), "{second:?}");

    // Node 2 wins an election but hears no answer to its no-op.
    let mut cluster = Cluster::new(3, &config());
    cluster.time_out(2, 5_000);
    while let Some(envelope) = cluster.network.pop_front() {
        if !matches!(
            envelope.message,
            Message::AppendEntries(_) | Message::AppendEntriesResponse(_)
        ) {
            cluster.deliver(envelope);
        }
    }
    assert_eq!(cluster.role(2), RoleKind::Leader);
    let early = cluster.change(2, MembershipChange::add_learner(NodeId(4), "a4"));
    assert!(rejected_in_progress(&early), "{early:?}");
}

/// A node removed by a committed configuration that never learns of that commit (it does not
/// answer) gets the log for exactly two election timeouts after the commit: a heartbeat goes
/// to it at the last tick before, nothing from the tick at the deadline on.
#[test]
fn a_removed_node_that_never_answers_is_given_up_exactly_two_election_timeouts_after_the_commit() {
    let mut cluster = Cluster::new(3, &without_check_quorum());
    cluster.elect(1, 1_000);
    remove_accepted(&mut cluster, 3);
    let deliver_but_to_3 = |cluster: &mut Cluster| {
        while let Some(envelope) = cluster.network.pop_front() {
            if envelope.to != NodeId(3) {
                cluster.deliver(envelope);
            }
        }
    };
    deliver_but_to_3(&mut cluster);
    let (_, committed) = cluster.engine(1).committed_membership();
    assert!(!committed.is_joint() && !committed.is_member(NodeId(3)));
    // Committed at 1000: node 3 is given up at 1000 + 2 * 1000.
    cluster.step(1, Input::Tick { now_ms: 2_999 });
    assert!(cluster.network.iter().any(|e| e.to == NodeId(3)));
    deliver_but_to_3(&mut cluster);
    cluster.step(1, Input::Tick { now_ms: 3_000 });
    assert!(cluster.network.iter().all(|e| e.to != NodeId(3)));
    let followers = cluster.engine(1).followers();
    assert!(
        followers.iter().all(|f| f.peer != NodeId(3)),
        "{followers:?}"
    );
}

/// A node removed by a committed configuration stays a replication target until it learned
/// that commit or its two election timeouts ran out, also across a later configuration
/// change: one appended while it is uninformed and in time keeps it (it is still sent to
/// until its deadline); one appended after it learned of its removal drops it at once.
#[test]
fn a_later_change_keeps_a_removed_node_only_while_it_is_uninformed_and_in_time() {
    let config = without_check_quorum();
    let sent_to_3 = |cluster: &Cluster| cluster.network.iter().any(|e| e.to == NodeId(3));
    let targets_3 = |cluster: &Cluster| {
        cluster
            .engine(1)
            .followers()
            .iter()
            .any(|f| f.peer == NodeId(3))
    };
    let remove_3 = |cluster: &mut Cluster| {
        cluster.elect(1, 1_000);
        cluster.add_empty_node(4, &config);
        remove_accepted(cluster, 3);
    };
    let add_learner_4 = |cluster: &mut Cluster| {
        let outputs = cluster.change(1, MembershipChange::add_learner(NodeId(4), "a4"));
        assert!(
            outputs
                .iter()
                .any(|o| matches!(o, Output::MembershipChangeAccepted { .. }))
        );
    };

    // Node 3 hears nothing: at 1000 its removal committed, it is given up at 3000.
    let mut cluster = Cluster::new(3, &config);
    remove_3(&mut cluster);
    cluster.network.retain(|e| e.to != NodeId(3));
    while let Some(envelope) = cluster.network.pop_front() {
        if envelope.to != NodeId(3) {
            cluster.deliver(envelope);
        }
    }
    assert!(
        !cluster
            .engine(1)
            .committed_membership()
            .1
            .is_member(NodeId(3))
    );
    add_learner_4(&mut cluster);
    assert!(targets_3(&cluster), "uninformed and in time");
    cluster.step(1, Input::Tick { now_ms: 2_999 });
    assert!(sent_to_3(&cluster), "still sent to before its deadline");

    // Node 3 learns of its removal from the heartbeat at 1200.
    let mut cluster = Cluster::new(3, &config);
    remove_3(&mut cluster);
    cluster.deliver_all();
    cluster.step(1, Input::Tick { now_ms: 1_200 });
    cluster.deliver_all();
    let removal = cluster.engine(3).status().membership_index;
    assert!(cluster.engine(3).status().commit_index >= removal);
    add_learner_4(&mut cluster);
    assert!(!targets_3(&cluster), "informed");
    assert!(!sent_to_3(&cluster), "informed");
}

/// A joint configuration is left also when its commit comes with a later entry in one step
/// (the commit index passes the configuration's index instead of landing on it).
#[test]
fn a_joint_configuration_is_left_when_the_commit_passes_it_in_one_step() {
    let mut cluster = Cluster::new(3, &without_check_quorum());
    cluster.elect(1, 1_000);
    remove_accepted(&mut cluster, 3);
    let joint_index = cluster.engine(1).core.configs.latest_index();
    assert!(cluster.engine(1).core.membership().is_joint());
    // The joint configuration's first sending is lost; an entry follows it, and both reach the
    // followers together once the leader resends.
    cluster.drop_all();
    assert!(proposal_accepted(&cluster.propose(1, "x")));
    for now_ms in (1_050..=1_950).step_by(50) {
        cluster.step(1, Input::Tick { now_ms });
        cluster.deliver_all();
    }
    assert!(
        cluster.commit_of(1) > joint_index,
        "commit {:?}, joint at {joint_index:?}",
        cluster.commit_of(1)
    );
    let leader = &cluster.engine(1).core;
    assert!(!leader.membership().is_joint(), "still joint");
    assert!(!leader.membership().is_voter(NodeId(3)));
}
