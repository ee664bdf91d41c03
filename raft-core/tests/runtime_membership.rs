//! Membership changes on running nodes, with writes running throughout: grow 3 -> 5, shrink
//! 5 -> 3 removing the leader, replace a dead node by an empty one. Every acknowledged write
//! is applied exactly once on every replica, and removed nodes are refused.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use std::collections::BTreeSet;
use std::time::Duration;

use raft_core::testing::{Cluster, test_config};
use raft_core::{Error, MembershipChange, NodeId, message::RequestVote};
use raft_core::{LogId, ServiceHandler, Term};

const PAUSE: Duration = Duration::from_millis(2);
const CATCH_UP: Duration = Duration::from_secs(10);

fn ids(values: &[u64]) -> BTreeSet<NodeId> {
    values.iter().map(|&v| NodeId(v)).collect()
}

async fn add_learners(cluster: &mut Cluster, learners: &[u64]) {
    for &learner in learners {
        let id = NodeId(learner);
        // The joining node knows no leader until it is added: find the leader first.
        let leader = cluster.leader_node().await;
        cluster.add_joining_node(id).await;
        let address = format!("mem://node-{id}");
        let members = leader.add_learner(id, address.clone()).await.unwrap();
        assert!(members.is_learner(id));
        assert_eq!(members.address(id), Some(address.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_grows_from_three_to_five_voters_while_writes_run() {
    let mut cluster = Cluster::start(3, test_config()).await;
    cluster.wait_for_leader().await;
    let writers = cluster.spawn_writers(4, 60, PAUSE);
    add_learners(&mut cluster, &[4, 5]).await;
    let leader = cluster.leader_node().await;
    for learner in [4, 5] {
        leader
            .wait_for_learner(NodeId(learner), 10, CATCH_UP)
            .await
            .unwrap();
    }
    let change = MembershipChange::default()
        .promote(NodeId(4))
        .promote(NodeId(5));
    let members = leader.change_membership(change).await.unwrap();
    assert!(!members.is_joint());
    assert_eq!(
        members.voters().collect::<BTreeSet<_>>(),
        ids(&[1, 2, 3, 4, 5])
    );
    let outcomes = writers.join().await;
    cluster.settle().await;
    cluster.wait_converged().await;
    cluster.assert_replicas_agree();
    cluster.assert_exactly_once(&outcomes);
    for node in cluster.running() {
        let status = node.membership();
        assert_eq!(status.committed, members, "node {} agrees", node.id());
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_shrinks_from_five_to_three_removing_its_leader() {
    let cluster = Cluster::start(5, test_config()).await;
    let old_leader = cluster.wait_for_leader().await;
    let writers = cluster.spawn_writers(4, 60, PAUSE);
    let other = cluster.others(old_leader)[0];
    let change = MembershipChange::default().remove(old_leader).remove(other);
    let members = cluster
        .node(old_leader)
        .change_membership(change)
        .await
        .unwrap();
    assert!(!members.is_member(old_leader) && !members.is_member(other));
    let remaining: Vec<NodeId> = members.voters().collect();
    let new_leader = cluster.wait_for_leader_among(&remaining).await;
    assert_ne!(new_leader, old_leader);
    assert!(
        !cluster.node(old_leader).is_leader(),
        "the removed leader stepped down"
    );
    let outcomes = writers.join().await;
    // The removed nodes are stopped, as an operator would; the rest agree.
    cluster.stop_node(old_leader).await;
    cluster.stop_node(other).await;
    cluster.settle().await;
    cluster.wait_converged().await;
    cluster.assert_replicas_agree();
    cluster.assert_exactly_once(&outcomes);
    // A request from a removed node is refused with a clear error, not served.
    let vote = RequestVote {
        term: Term(1_000),
        candidate_id: old_leader,
        last_log_id: LogId::new(1_000, 1_000),
        pre_vote: false,
        leadership_transfer: false,
    };
    let refused = cluster.node(new_leader).request_vote(vote).await;
    assert!(
        matches!(&refused, Err(Error::Config(message)) if message.contains("not a member")),
        "{refused:?}"
    );
    let term = cluster.node(new_leader).term();
    assert!(
        term < Term(1_000),
        "the removed node's term was not adopted"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_is_replaced_by_an_empty_one() {
    let mut cluster = Cluster::start(3, test_config()).await;
    let leader = cluster.wait_for_leader().await;
    let dead = cluster.others(leader)[0];
    cluster.stop_node(dead).await;
    let writers = cluster.spawn_writers(4, 40, PAUSE);
    add_learners(&mut cluster, &[6]).await;
    let leader = cluster.leader_node().await;
    leader
        .wait_for_learner(NodeId(6), 10, CATCH_UP)
        .await
        .unwrap();
    let change = MembershipChange::default().promote(NodeId(6)).remove(dead);
    let members = leader.change_membership(change).await.unwrap();
    assert!(members.is_voter(NodeId(6)) && !members.is_member(dead));
    let outcomes = writers.join().await;
    cluster.settle().await;
    cluster.wait_converged().await;
    cluster.assert_replicas_agree();
    cluster.assert_exactly_once(&outcomes);
    // The new node restarts from its own disk and is still a member.
    cluster.restart_node(NodeId(6)).await;
    cluster.settle().await;
    assert!(
        cluster
            .node(NodeId(6))
            .membership()
            .membership
            .is_voter(NodeId(6))
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_refused_on_followers_and_while_another_is_in_flight() {
    let cluster = Cluster::start(3, test_config()).await;
    let leader = cluster.wait_for_leader().await;
    let follower = cluster.others(leader)[0];
    let refused = cluster
        .node(follower)
        .add_learner(NodeId(9), "mem://node-9")
        .await;
    assert!(
        matches!(&refused, Err(Error::NotLeader { leader: Some(hint) }) if hint.id == leader),
        "{refused:?}"
    );
    let invalid = cluster
        .node(leader)
        .change_membership(MembershipChange::default().promote(NodeId(9)))
        .await;
    assert!(
        matches!(&invalid, Err(Error::InvalidChange(reason)) if reason == "node 9 is not a learner; add it as one first"),
        "{invalid:?}"
    );
    let message = invalid.unwrap_err().to_string();
    assert_eq!(
        message.matches("invalid membership change").count(),
        1,
        "{message}"
    );
    // Promoting the leader itself: refused as no learner (not as an unknown node).
    let leader_node = cluster.node(leader);
    let itself = leader_node
        .promote_learner(leader, 0, Duration::from_secs(1))
        .await;
    assert!(
        matches!(&itself, Err(Error::InvalidChange(reason)) if reason.contains("not a learner")),
        "{itself:?}"
    );
    // Two changes sent at once: the second is refused while the first is in flight (unless
    // the first finished before it arrived).
    let node = cluster.node(leader);
    let (first, second) = tokio::join!(
        node.add_learner(NodeId(9), "mem://node-9"),
        node.add_learner(NodeId(10), "mem://node-10"),
    );
    let results = [&first, &second];
    assert!(results.iter().any(|r| r.is_ok()), "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(_) | Err(Error::ChangeInProgress))),
        "{results:?}"
    );
    cluster.shutdown().await;
}
