//! Leader failover, partitions and catching up, on a 3-node cluster over the in-process network.

use std::time::Duration;

use bytes::Bytes;
use raft_core::testing::{Cluster, MemKv, test_config};
use raft_core::{Error, LogIndex};

mod common;

use common::PAUSE;

#[tokio::test(start_paused = true)]
async fn acknowledged_writes_survive_leader_crash_and_apply_once() {
    common::writes_survive_a_leader_crash(test_config()).await;
}

#[tokio::test(start_paused = true)]
async fn isolated_leader_is_replaced_and_its_uncommitted_entries_roll_back() {
    let cluster = Cluster::start(3, test_config()).await;
    let old = cluster.wait_for_leader().await;
    let old_node = cluster.node(old);
    cluster.network.isolate(old);
    // Still leader until check-quorum notices: the entry lands in its log only.
    let pending = old_node
        .append_async(vec![MemKv::put("lost", "1")])
        .await
        .expect("accepted by the isolated leader");
    let others = cluster.others(old);
    let new = cluster.wait_for_leader_among(&others).await;
    for i in 0..20 {
        let appended = cluster
            .node(new)
            .append(vec![MemKv::put(format!("k{i}"), "v")])
            .await
            .unwrap();
        assert_eq!(appended.results, vec![Bytes::new()]);
    }
    assert!(
        !old_node.is_leader(),
        "check-quorum steps the isolated leader down"
    );

    cluster.network.heal();
    let lost_index = pending.first.index;
    let result = tokio::time::timeout(Duration::from_secs(10), pending.result())
        .await
        .expect("the deposed leader answers");
    assert!(
        matches!(result, Err(Error::Discarded { index }) if index == lost_index),
        "{result:?}"
    );
    cluster.settle().await;
    assert_eq!(cluster.state_machines[&old].rolled_back(), vec![lost_index]);
    for kv in cluster.state_machines.values() {
        assert!(kv.get(b"lost").is_none(), "a rolled-back entry was applied");
        assert_eq!(kv.get(b"k19"), Some(Bytes::from("v")));
    }
    cluster.assert_replicas_agree();
}

#[tokio::test(start_paused = true)]
async fn async_replication_answers_pre_commit_and_rolls_back_on_conflict() {
    let mut config = test_config();
    config.async_replication = true;
    let cluster = Cluster::start(3, config).await;
    let old = cluster.wait_for_leader().await;
    let old_node = cluster.node(old);
    cluster.network.isolate(old);

    // Resolves at once with the pre-commit result, although nothing can commit.
    let command = MemKv::put("speculative", "1");
    let appended = tokio::time::timeout(
        Duration::from_millis(50),
        old_node.append(vec![command.clone()]),
    )
    .await
    .expect("async replication does not wait for the quorum")
    .unwrap();
    assert_eq!(appended.results, vec![command]);
    let index = appended.first.index;
    assert!(
        cluster.state_machines[&old]
            .pre_committed()
            .contains(&index)
    );

    let others = cluster.others(old);
    let new = cluster.wait_for_leader_among(&others).await;
    cluster
        .node(new)
        .append(vec![MemKv::put("winner", "1")])
        .await
        .unwrap();
    cluster.network.heal();
    cluster.settle().await;
    let winner_applied = cluster.node(new).applied_index();
    cluster.wait_applied(winner_applied).await;

    // The client was told the pre-commit result; the state machine saw the rollback.
    assert_eq!(cluster.state_machines[&old].rolled_back(), vec![index]);
    for kv in cluster.state_machines.values() {
        assert!(kv.get(b"speculative").is_none());
        assert_eq!(kv.get(b"winner"), Some(Bytes::from("1")));
    }
    cluster.assert_replicas_agree();
}

#[tokio::test(start_paused = true)]
async fn partitioned_minority_follower_catches_up_after_heal() {
    let cluster = Cluster::start(3, test_config()).await;
    let leader = cluster.wait_for_leader().await;
    let follower = cluster.others(leader)[0];
    cluster.network.isolate(follower);
    let node = cluster.node(leader);
    for batch in 0..100 {
        let commands = (0..20)
            .map(|i| MemKv::put(format!("k{batch}-{i}"), "v"))
            .collect();
        node.append(commands).await.unwrap();
    }
    let commit = node.commit_index();
    assert!(cluster.node(follower).applied_index() < LogIndex(10));
    cluster.network.heal();
    cluster.wait_applied(commit).await;
    assert_eq!(
        cluster.state_machines[&follower].get(b"k99-19"),
        Some(Bytes::from("v"))
    );
    cluster.assert_replicas_agree();
}

#[tokio::test(start_paused = true)]
async fn restarted_follower_far_behind_rejoins_and_reapplies_its_log() {
    let mut cluster = Cluster::start(3, test_config()).await;
    let leader = cluster.wait_for_leader().await;
    let follower = cluster.others(leader)[0];
    cluster
        .node(leader)
        .append(vec![MemKv::put("before", "1")])
        .await
        .unwrap();
    cluster.settle().await;
    cluster.stop_node(follower).await;
    for i in 0..300 {
        cluster
            .node(leader)
            .append(vec![MemKv::put(format!("k{i}"), "v")])
            .await
            .unwrap();
    }
    cluster.start_node(follower).await;
    cluster.settle().await;
    let kv = &cluster.state_machines[&follower];
    assert_eq!(kv.get(b"before"), Some(Bytes::from("1")));
    assert_eq!(kv.get(b"k299"), Some(Bytes::from("v")));
    cluster.assert_replicas_agree();
}

#[tokio::test(start_paused = true)]
async fn whole_cluster_restart_recovers_every_committed_write() {
    let mut cluster = Cluster::start(3, test_config()).await;
    let leader = cluster.wait_for_leader().await;
    for i in 0..50 {
        cluster
            .node(leader)
            .append(vec![MemKv::put(format!("k{i}"), format!("{i}"))])
            .await
            .unwrap();
    }
    cluster.restart_all().await;
    cluster.settle().await;
    for kv in cluster.state_machines.values() {
        assert_eq!(kv.get(b"k49"), Some(Bytes::from("49")));
    }
    cluster.assert_replicas_agree();
}

#[tokio::test(start_paused = true)]
async fn lossy_delayed_network_still_applies_acknowledged_writes_once() {
    let cluster = Cluster::start(3, test_config()).await;
    cluster.wait_for_leader().await;
    cluster.network.set_drop_probability(0.05);
    cluster
        .network
        .set_delay(Duration::from_millis(1), Duration::from_millis(8));
    let outcomes = cluster.spawn_writers(4, 30, PAUSE).join().await;
    cluster.network.set_drop_probability(0.0);
    cluster.settle().await;
    cluster.assert_exactly_once(&outcomes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_on_a_multi_threaded_runtime_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start(3, test_config()).await;
    let first_leader = cluster.wait_for_leader().await;
    let writers = cluster.spawn_writers(4, 30, PAUSE);
    tokio::time::sleep(Duration::from_millis(20)).await;
    cluster.stop_node(first_leader).await;
    cluster.wait_for_leader().await;
    cluster.start_node(first_leader).await;
    let outcomes = writers.join().await;
    cluster.settle().await;
    cluster.assert_exactly_once(&outcomes);
}

/// Raft commits a prefix of a batch, not all of it: when a rollback cuts a call's tail after its
/// head reached a quorum, the caller learns exactly where the discarded part begins (review
/// finding: the whole call used to be reported discarded, inviting a double apply on retry).
#[tokio::test(start_paused = true)]
async fn batch_cut_by_a_rollback_reports_where_its_discarded_tail_begins() {
    let mut config = test_config();
    // The scenario needs a batch cut by the rollback (asserted below); fixed seeds give the
    // same election timings every run (each engine still mixes in its node id).
    config.seed = 0x5EED;
    config.raft.batch_entries_initial = 1;
    config.raft.batch_entries_max = 1;
    config.raft.max_inflight_requests = 1;
    let cluster = Cluster::start(3, config).await;
    let old = cluster.wait_for_leader().await;
    let others = cluster.others(old);
    // Only one follower hears the old leader, one entry per round trip.
    cluster.network.cut(old, others[1]);
    cluster.network.cut(others[1], old);
    cluster
        .network
        .set_delay(Duration::from_millis(10), Duration::from_millis(10));
    let commands: Vec<Bytes> = (0..10).map(|i| MemKv::put(format!("b{i}"), "v")).collect();
    let pending = cluster.node(old).append_async(commands).await.unwrap();
    let first = pending.first.index;
    tokio::time::sleep(Duration::from_millis(75)).await;
    cluster.network.isolate(old);
    let new = cluster.wait_for_leader_among(&others).await;
    cluster
        .node(new)
        .append(vec![MemKv::put("x", "1")])
        .await
        .unwrap();
    cluster.network.heal();
    let result = tokio::time::timeout(Duration::from_secs(10), pending.result())
        .await
        .expect("answered");
    cluster.settle().await;
    let applied: Vec<u64> = (0..10)
        .filter(|i| {
            cluster.state_machines[&new]
                .get(format!("b{i}").as_bytes())
                .is_some()
        })
        .collect();
    assert!(
        !applied.is_empty() && applied.len() < 10,
        "the scenario needs a cut batch"
    );
    match result {
        Err(Error::Discarded { index }) => {
            let committed = index.0 - first.0;
            assert_eq!(applied, (0..committed).collect::<Vec<_>>());
        }
        other => panic!("expected Discarded, got {other:?}"),
    }
    cluster.assert_replicas_agree();
}

/// An entry rolled back on the leader that proposed it can still commit from the copy another
/// node holds, under a later leader: its caller must not be told `Discarded` (not applied)
/// at the rollback, and gets the entry's result once it commits.
#[tokio::test(start_paused = true)]
async fn an_entry_rolled_back_on_its_proposer_but_committed_elsewhere_is_reported_applied() {
    let ms = Duration::from_millis;
    // The scenario needs the first candidate of step 2 to win its election before the cuts
    // land; with seeds drawn by the OS two voters sometimes time out together and split the
    // vote, and the cuts then leave no node able to win. A fixed seed (each engine still mixes
    // in its node id) gives the timeouts this scenario was written against.
    let mut config = test_config();
    config.seed = 0x5EED;
    let cluster = Cluster::start(5, config).await;
    let a = cluster.wait_for_leader().await;
    let others = cluster.others(a);
    let (b, rest) = (others[0], others[1..].to_vec());

    // 1. Leader a reaches only b: its entry E lands on a and b (2 of 5, not committed).
    for &x in &rest {
        cluster.network.cut(a, x);
        cluster.network.cut(x, a);
    }
    let pending = cluster
        .node(a)
        .append_async(vec![MemKv::put("E", "1")])
        .await
        .unwrap();
    let e = pending.first;
    raft_core::testing::wait_until("b holds E", || {
        cluster.stores[&b].last_log_id().index >= e.index
    })
    .await;

    // 2. b goes away; the other three hold an election. The candidate l2 reaches a (which
    //    takes its entry at E's index, rolling E back) but, once elected, none of the voters.
    cluster.network.set_delay(ms(10), ms(10));
    cluster.network.isolate(b);
    let l2 = loop {
        if let Some(&x) = rest
            .iter()
            .find(|&&x| cluster.node(x).status().role == raft_core::engine::RoleKind::Candidate)
        {
            break x;
        }
        tokio::time::sleep(ms(1)).await;
    };
    let voters: Vec<_> = rest.iter().copied().filter(|&x| x != l2).collect();
    cluster.network.heal();
    cluster.network.isolate(b);
    for &x in &voters {
        cluster.network.cut(l2, x);
        cluster.network.cut(a, x);
        cluster.network.cut(x, a);
    }
    raft_core::testing::wait_until("a's copy of E replaced", || {
        cluster.stores[&a]
            .entries()
            .iter()
            .any(|entry| entry.log_id.index == e.index && entry.log_id.term != e.term)
    })
    .await;
    let mut result = Box::pin(pending.result());
    assert!(
        tokio::time::timeout(ms(500), &mut result).await.is_err(),
        "the rollback alone must not answer the caller"
    );

    // 3. l2 and a go away; b (holding E) is elected by the voters and commits E.
    cluster.network.heal();
    cluster.network.isolate(l2);
    cluster.network.isolate(a);
    raft_core::testing::wait_until("E applied on b", || {
        cluster.state_machines[&b].get(b"E") == Some(Bytes::from("1"))
    })
    .await;
    cluster.network.heal();
    let result = tokio::time::timeout(Duration::from_secs(10), result)
        .await
        .expect("answered once E's index commits on a");
    assert!(result.is_ok(), "E committed, yet its caller got {result:?}");
    cluster.settle().await;
    cluster.assert_replicas_agree();
}
