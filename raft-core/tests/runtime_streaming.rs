//! Streaming replication through the runtime, over the in-process network: followers open
//! their streams, batches travel on them and heartbeats apart, and the streams survive what
//! breaks connections: a leader crash, an isolated follower, lost messages, a follower
//! restart, a follower so far behind that it needs a snapshot.

use std::time::Duration;

use raft_core::runtime::NodeConfig;
use raft_core::testing::{Cluster, MemKv, test_config};
use raft_core::{LogIndex, Replication};

mod common;

use common::PAUSE;

fn streaming() -> NodeConfig {
    let mut config = test_config();
    config.raft.replication = Replication::Streaming;
    config
}

#[tokio::test(start_paused = true)]
async fn a_streaming_cluster_replicates_every_write_once_through_a_leader_crash() {
    let cluster = common::writes_survive_a_leader_crash(streaming()).await;
    cluster.assert_replicas_identical();
}

#[tokio::test(start_paused = true)]
async fn an_isolated_follower_reopens_its_stream_and_catches_up_after_the_heal() {
    let cluster = Cluster::start(3, streaming()).await;
    let leader = cluster.wait_for_leader().await;
    let follower = cluster.others(leader)[0];
    cluster.network.isolate(follower);
    let node = cluster.node(leader);
    for batch in 0..50 {
        let commands = (0..20)
            .map(|i| MemKv::put(format!("k{batch}-{i}"), "v"))
            .collect();
        node.append(commands).await.unwrap();
    }
    assert!(cluster.node(follower).applied_index() < node.applied_index());
    cluster.network.heal();
    cluster.settle().await;
    assert_eq!(cluster.node(follower).applied_index(), node.applied_index());
    cluster.assert_replicas_identical();
}

#[tokio::test(start_paused = true)]
async fn streams_cut_by_lost_messages_are_reopened_and_lose_no_write() {
    let cluster = Cluster::start(3, streaming()).await;
    cluster.wait_for_leader().await;
    // Every message (a batch or an answer on a stream too) is lost with this probability: a
    // loss on a stream ends it, as a broken connection would.
    cluster.network.set_drop_probability(0.05);
    let writers = cluster.spawn_writers(4, 50, PAUSE);
    let outcomes = writers.join().await;
    cluster.network.set_drop_probability(0.0);
    cluster.settle().await;
    cluster.assert_exactly_once(&outcomes);
    cluster.assert_replicas_agree();
}

#[tokio::test(start_paused = true)]
async fn a_follower_restarted_behind_a_snapshot_catches_up_over_its_stream() {
    let mut config = streaming();
    config.raft.snapshot_entries = 50;
    config.raft.snapshot_keep_entries = 10;
    let mut cluster = Cluster::start(3, config).await;
    let leader = cluster.wait_for_leader().await;
    let follower = cluster.others(leader)[0];
    cluster.stop_node(follower).await;
    let node = cluster.node(leader);
    for i in 0..300 {
        node.append(vec![MemKv::put(format!("k{i}"), "v")])
            .await
            .unwrap();
    }
    cluster.start_node(follower).await;
    cluster.settle().await;
    let applied = cluster.node(leader).applied_index();
    assert!(applied >= LogIndex(300));
    assert_eq!(cluster.node(follower).applied_index(), applied);
    cluster.assert_states_equal();
}

/// The stream counters of ARCHITECTURE.md ("Metrics") move: followers open streams, the
/// leader sends batches on them, and a cut stream's end is counted.
#[tokio::test(start_paused = true)]
async fn streams_are_counted_in_the_documented_metrics() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    ::metrics::set_global_recorder(recorder).expect("first recorder in this binary");

    let cluster = Cluster::start(3, streaming()).await;
    let leader = cluster.wait_for_leader().await;
    let follower = cluster.others(leader)[0];
    let node = cluster.node(leader);
    for i in 0..20 {
        node.append(vec![MemKv::put(format!("k{i}"), "v")])
            .await
            .unwrap();
    }
    cluster.network.isolate(follower);
    node.append(vec![MemKv::put("cut", "v")]).await.unwrap();
    // The isolated follower's stream must meet the cut before the network heals (the commit
    // above needed only the other follower).
    tokio::time::sleep(Duration::from_millis(100)).await;
    cluster.network.heal();
    cluster.settle().await;

    let text = handle.render();
    let count = |name: &str, node: raft_core::NodeId, peer: raft_core::NodeId| -> u64 {
        let prefix = format!("{name}{{node=\"{node}\",peer=\"{peer}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0)
    };
    use raft_core::metrics::{STREAM_BATCHES, STREAM_ENDS, STREAM_OPENS};
    assert!(
        count(STREAM_OPENS, follower, leader) >= 2,
        "reopened after the cut:\n{text}"
    );
    assert!(count(STREAM_BATCHES, leader, follower) >= 20, "{text}");
    assert!(count(STREAM_ENDS, leader, follower) >= 1, "{text}");
}

/// A follower whose log lags the change that added its new leader does not know that leader
/// as a member, so it cannot open a stream to it: the leader's batches reach it as requests,
/// one at a time, until it has caught up on the change; then it streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_cannot_reach_its_new_leader_still_catches_up() {
    let mut cluster = Cluster::start(3, streaming()).await;
    let first = cluster.wait_for_leader().await;
    let lagging = cluster.others(first)[0];
    cluster.stop_node(lagging).await;

    // Node 4 joins, becomes a voter and takes over while `lagging` is down.
    let leader = cluster.leader_node().await;
    let new = raft_core::NodeId(4);
    cluster.add_joining_node(new).await;
    leader.add_learner(new, "mem://node-4").await.unwrap();
    leader
        .wait_for_learner(new, 0, Duration::from_secs(10))
        .await
        .unwrap();
    leader
        .promote_learner(new, 0, Duration::from_secs(10))
        .await
        .unwrap();
    leader.transfer_leadership(new).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cluster.node(new).is_leader() {
        assert!(tokio::time::Instant::now() < deadline, "node 4 never led");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let node = cluster.node(new);
    for i in 0..50 {
        node.append(vec![MemKv::put(format!("k{i}"), "v")])
            .await
            .unwrap();
    }

    cluster.start_node(lagging).await;
    let applied = node.applied_index();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while cluster.node(lagging).applied_index() < applied {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lagging node never caught up"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(cluster.node(lagging).membership().committed.is_voter(new));
    cluster.shutdown().await;
}
