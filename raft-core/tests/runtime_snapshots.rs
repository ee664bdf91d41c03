//! Snapshots end to end on the runtime: creation and compaction, restart from a snapshot,
//! InstallSnapshot to a follower that lags behind the compacted log or lost its data, resumed
//! after lost chunks, and the log-size policy keeping the log bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use raft_core::runtime::NodeConfig;
use raft_core::testing::{Cluster, MemKv, MemLogStore, test_config, wait_until};
use raft_core::{LogIndex, LogStore};

/// Small chunks and a short tail, so a few hundred writes need several chunks and compaction.
fn snapshot_config() -> NodeConfig {
    let mut config = test_config();
    config.raft.snapshot_keep_entries = 10;
    config.raft.snapshot_chunk_bytes = 256;
    config.snapshot_log_bytes = 0;
    config
}

/// Writes `count` puts `key{i} = value{i}` through the leader; returns the last index.
async fn write_keys(cluster: &Cluster, range: std::ops::Range<u32>) -> LogIndex {
    let mut last = LogIndex::ZERO;
    for i in range {
        let appended = cluster
            .leader_node()
            .await
            .append(vec![MemKv::put(format!("key{i}"), format!("value{i}"))])
            .await
            .expect("write commits");
        last = appended.first.index;
    }
    last
}

#[tokio::test(start_paused = true)]
async fn requested_snapshot_compacts_the_log_and_a_restart_restores_it_then_replays() {
    let mut cluster = Cluster::start(3, snapshot_config()).await;
    let leader = cluster.wait_for_leader().await;
    let last = write_keys(&cluster, 0..50).await;
    cluster.wait_applied(last).await;

    let node = cluster.node(leader);
    node.request_snapshot().unwrap();
    wait_until("the leader's snapshot", || {
        node.status().snapshot_index >= last
    })
    .await;
    let store = cluster.stores[&leader].clone();
    let meta = store.snapshot_meta().expect("a stored snapshot");
    assert_eq!(meta.last_log_id.index, node.status().snapshot_index);
    // Compaction kept the configured tail of 10 entries below the snapshot.
    assert_eq!(store.first_index(), LogIndex(meta.last_log_id.index.0 - 9));
    assert_eq!(node.status().log_base_index.next(), store.first_index());

    let after = write_keys(&cluster, 50..60).await;
    cluster.wait_applied(after).await;
    cluster.restart_node(leader).await;
    cluster.wait_applied(after).await;
    let kv = &cluster.state_machines[&leader];
    assert_eq!(kv.restored_from(), [meta.last_log_id.index]);
    assert_eq!(kv.get(b"key59").as_deref(), Some(&b"value59"[..]));
    assert!(kv.out_of_order_commits().is_empty());
    cluster.assert_states_equal();
}

#[tokio::test(start_paused = true)]
async fn partitioned_follower_catches_up_by_install_snapshot_after_the_leader_compacts() {
    let mut config = snapshot_config();
    config.raft.snapshot_entries = 40;
    let cluster = Cluster::start(3, config).await;
    let leader = cluster.wait_for_leader().await;
    let lagging = cluster.others(leader)[0];
    cluster.network.isolate(lagging);

    let last = write_keys(&cluster, 0..200).await;
    let leader_node = cluster.node(leader);
    wait_until("compaction past the lagging follower", || {
        leader_node.status().log_base_index > cluster.node(lagging).status().last_log_index
    })
    .await;

    cluster.network.heal();
    cluster.wait_applied(last).await;
    let follower = cluster.node(lagging);
    let installed = cluster.state_machines[&lagging].restored_from();
    assert!(!installed.is_empty(), "the follower installed a snapshot");
    assert!(follower.status().snapshot_index >= installed[0]);
    assert_eq!(
        cluster.stores[&lagging]
            .snapshot_meta()
            .map(|m| m.last_log_id.index),
        Some(follower.status().snapshot_index)
    );
    // Normal replication resumed after the snapshot.
    let more = write_keys(&cluster, 200..210).await;
    cluster.wait_applied(more).await;
    cluster.assert_states_equal();
}

#[tokio::test(start_paused = true)]
async fn follower_wiped_of_its_data_rejoins_from_a_snapshot_and_converges() {
    let mut config = snapshot_config();
    config.raft.snapshot_entries = 30;
    let mut cluster = Cluster::start(3, config).await;
    let leader = cluster.wait_for_leader().await;
    let last = write_keys(&cluster, 0..100).await;
    cluster.wait_applied(last).await;

    let wiped = cluster.others(leader)[1];
    cluster.stop_node(wiped).await;
    cluster.stores.insert(wiped, MemLogStore::new());
    cluster.start_node(wiped).await;
    let more = write_keys(&cluster, 100..120).await;
    cluster.wait_applied(more).await;
    assert!(!cluster.state_machines[&wiped].restored_from().is_empty());
    assert!(cluster.stores[&wiped].first_index() > LogIndex(1));
    cluster.assert_states_equal();
}

#[tokio::test(start_paused = true)]
async fn snapshot_transfer_resumes_after_lost_chunks() {
    let mut config = snapshot_config();
    config.raft.snapshot_entries = 50;
    config.raft.snapshot_chunk_bytes = 64;
    let cluster = Cluster::start(3, config).await;
    let leader = cluster.wait_for_leader().await;
    let lagging = cluster.others(leader)[0];
    cluster.network.isolate(lagging);
    let last = write_keys(&cluster, 0..150).await;
    let leader_node = cluster.node(leader);
    wait_until("compaction", || {
        leader_node.status().log_base_index > LogIndex(10)
    })
    .await;

    // A lossy network: chunks (and their answers) go missing; the transfer resumes from the
    // last offset the follower confirmed.
    cluster.network.set_drop_probability(0.2);
    cluster.network.heal();
    wait_until("the lagging follower to apply everything", || {
        cluster.node(lagging).applied_index() >= last
    })
    .await;
    cluster.network.set_drop_probability(0.0);
    assert!(!cluster.state_machines[&lagging].restored_from().is_empty());
    let more = write_keys(&cluster, 150..155).await;
    cluster.wait_applied(more).await;
    cluster.assert_states_equal();
}

#[tokio::test(start_paused = true)]
async fn log_size_policy_keeps_the_log_bounded_under_sustained_writes() {
    let mut config = snapshot_config();
    config.snapshot_log_bytes = 8 * 1024;
    let cluster = Cluster::start(3, config).await;
    let leader = cluster.wait_for_leader().await;
    let node = cluster.node(leader);
    let mut peak = 0;
    for batch in 0..40u32 {
        let commands: Vec<Bytes> = (0..25)
            .map(|i| MemKv::put(format!("k{}", batch * 25 + i), vec![b'x'; 100]))
            .collect();
        node.append(commands).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        for id in &cluster.ids {
            peak = peak.max(cluster.stores[id].byte_count());
        }
    }
    // 1000 writes of ~110 bytes (~134 KiB with overhead) went through an 8 KiB threshold.
    assert!(
        cluster.stores[&leader].snapshots_finished() >= 5,
        "several snapshots were taken"
    );
    assert!(
        peak < 3 * 8 * 1024,
        "peak log bytes {peak} stayed near the threshold"
    );
    let last = node.status().commit_index;
    cluster.wait_applied(last).await;
    cluster.assert_states_equal();
}
