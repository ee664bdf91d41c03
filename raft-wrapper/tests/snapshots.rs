//! The session table travels in snapshots (restart and InstallSnapshot), and the log-size
//! trigger snapshots and compacts in the background.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Cluster, ReplicaCluster, Replicas, decode_value, test_config};
use raft_core::testing::wait_until;
use raft_core::{LogIndex, LogStore};
use raft_wrapper::{ClientId, ReplicaConfig, RequestId};

const C1: ClientId = ClientId(0xC1);

/// Compaction down to a short tail, small chunks.
fn snapshot_config() -> ReplicaConfig {
    let mut config = test_config();
    config.node.raft.snapshot_keep_entries = 2;
    config.node.raft.snapshot_chunk_bytes = 64;
    config
}

/// Snapshots every running replica at its applied index and waits until they are durable.
async fn snapshot_everywhere(cluster: &Cluster) {
    for replica in cluster.replicas() {
        let node = replica.node().clone();
        let applied = node.applied_index();
        node.request_snapshot().unwrap();
        wait_until("a snapshot", || node.status().snapshot_index >= applied).await;
    }
}

#[tokio::test(start_paused = true)]
async fn restarted_replicas_restore_the_dedup_table_from_their_snapshots() {
    let mut cluster = Cluster::start_with(Replicas, 3, snapshot_config()).await;
    cluster.wait_for_leader().await;
    let mut answers = Vec::new();
    for request in 1..=5 {
        answers.push(cluster.submit(C1, RequestId(request), "hits").await);
    }
    for i in 1..=20 {
        cluster.submit(ClientId(i), RequestId(1), "other").await;
    }
    cluster.wait_converged().await;
    snapshot_everywhere(&cluster).await;

    // Every replica restarts; the log before the snapshot is gone, so only the snapshot can
    // tell them about client C1.
    for id in cluster.ids.clone() {
        assert!(cluster.stores[&id].first_index() > answers[4].index);
        cluster.stop_node(id).await;
    }
    for id in cluster.ids.clone() {
        cluster.start_node(id).await;
    }
    cluster.wait_for_leader().await;
    for (id, counters) in &cluster.state_machines {
        assert_eq!(
            counters.restored_from().len(),
            1,
            "node {id} restored its snapshot"
        );
        assert_eq!(
            counters.increments(),
            0,
            "node {id} replayed nothing before it"
        );
        assert_eq!(counters.value("hits"), 5);
    }
    for replica in cluster.replicas() {
        assert_eq!(replica.latest_request(C1), Some(RequestId(5)));
        assert_eq!(replica.tracked_clients(), 21);
    }
    let retry = cluster.submit(C1, RequestId(5), "hits").await;
    assert!(retry.duplicate);
    assert_eq!(
        (retry.index, &retry.result),
        (answers[4].index, &answers[4].result)
    );
    cluster.wait_converged().await;
    for counters in cluster.state_machines.values() {
        assert_eq!(counters.value("hits"), 5);
    }
}

#[tokio::test(start_paused = true)]
async fn follower_installing_a_snapshot_recognises_retries_as_leader() {
    let cluster = Cluster::start_with(Replicas, 3, snapshot_config()).await;
    let leader = cluster.wait_for_leader().await;
    let behind = cluster.others(leader)[0];
    cluster.network.isolate(behind);

    let mut last = None;
    for request in 1..=30 {
        last = Some(cluster.submit(C1, RequestId(request), "hits").await);
    }
    let last = last.unwrap();
    for id in cluster.others(behind) {
        let node = cluster.replica(id).node().clone();
        wait_until("the last request applied", || {
            node.applied_index() >= last.index
        })
        .await;
        node.request_snapshot().unwrap();
        wait_until("a snapshot", || node.status().snapshot_index >= last.index).await;
    }
    cluster.network.heal();
    let behind_node = cluster.replica(behind).node().clone();
    wait_until("the follower to catch up", || {
        behind_node.applied_index() >= last.index
    })
    .await;
    assert!(
        !cluster.state_machines[&behind].restored_from().is_empty(),
        "the follower caught up by InstallSnapshot"
    );
    assert_eq!(
        cluster.replica(behind).latest_request(C1),
        Some(RequestId(30))
    );

    // The follower becomes leader and gets the retry of the last request.
    let current = cluster.wait_for_leader().await;
    cluster
        .replica(current)
        .node()
        .transfer_leadership(behind)
        .unwrap();
    wait_until("the transfer", || behind_node.is_leader()).await;
    let retry = cluster
        .replica(behind)
        .submit(C1, RequestId(30), bytes::Bytes::from_static(b"hits"))
        .await
        .unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.index, last.index);
    assert_eq!(decode_value(&retry.result), 30);
    cluster.wait_converged().await;
    for counters in cluster.state_machines.values() {
        assert_eq!(counters.value("hits"), 30);
    }
}

#[tokio::test(start_paused = true)]
async fn log_size_trigger_snapshots_in_the_background_and_shrinks_the_log() {
    let mut config = snapshot_config();
    config.node.snapshot_log_bytes = 32 << 10;
    config.node.raft.snapshot_keep_entries = 8;
    let cluster = Cluster::start_with(Replicas, 3, config).await;
    // Network latency lets the (paused) clock run, so the size check on each tick happens.
    cluster
        .network
        .set_delay(Duration::from_micros(500), Duration::from_millis(1));
    cluster.wait_for_leader().await;
    let name = "x".repeat(1000);
    let mut peak = 0;
    for request in 1..=300 {
        let answer = cluster.submit(C1, RequestId(request), &name).await;
        assert_eq!(decode_value(&answer.result), request);
        peak = peak.max(
            cluster
                .stores
                .values()
                .map(LogStore::byte_count)
                .max()
                .unwrap(),
        );
    }
    cluster.wait_converged().await;
    // ~300 KB went through each log; snapshots kept it near the threshold.
    assert!(peak < 3 * (32 << 10), "peak log {peak} bytes");
    for (id, store) in &cluster.stores {
        assert!(store.snapshots_finished() >= 3, "node {id} snapshotted");
        assert!(store.first_index() > LogIndex(200), "node {id} compacted");
        assert!(store.byte_count() < 2 * (32 << 10), "node {id}");
    }
    for replica in cluster.replicas() {
        assert!(replica.node().status().snapshot_index > LogIndex(200));
    }
}
