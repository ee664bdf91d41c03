//! A 3-node raft-core cluster over real loopback HTTP: it elects a leader, replicates writes to
//! every node, fails over when the leader is shut down, and brings a follower that lost its
//! data back with a snapshot sent in chunks.

// Helpers of this test file: a broken one should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::HttpNodes;
use raft_core::runtime::Node;
use raft_core::testing::{MemKv, MemLogStore, test_config};
use raft_core::{Error, LogIndex};

/// Writes `count` keys with `prefix` through the leader; returns the last index.
async fn write(leader: &Node, prefix: &str, count: usize) -> LogIndex {
    let mut last = LogIndex::ZERO;
    for i in 0..count {
        let command = MemKv::put(format!("{prefix}{i}"), format!("value {i}"));
        let appended = leader.append(vec![command]).await.expect("committed");
        last = appended.first.index;
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_over_http_elect_replicate_and_fail_over() {
    let cluster = HttpNodes::start(3, test_config()).await;
    let first_leader = cluster.wait_for_leader().await;

    // Concurrent writes: many AppendEntries in flight per follower.
    let leader = cluster.node(first_leader);
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let leader = leader.clone();
            tokio::spawn(async move { write(&leader, &format!("w{w}-"), 25).await })
        })
        .collect();
    let mut last = LogIndex::ZERO;
    for writer in writers {
        last = last.max(writer.await.unwrap());
    }
    cluster.wait_applied(last).await;
    for kv in cluster.state_machines.values() {
        assert_eq!(kv.get(b"w7-24").as_deref(), Some(&b"value 24"[..]));
        assert!(kv.out_of_order_commits().is_empty());
    }

    // The leader goes away: node and server.
    let gone = cluster.node(first_leader);
    cluster.stop_node(first_leader).await;
    let second_leader = cluster.wait_for_leader().await;
    assert_ne!(second_leader, first_leader);

    let leader = cluster.node(second_leader);
    let last = write(&leader, "after-", 20).await;
    cluster.wait_applied(last).await;
    let survivors = cluster.running_state_machines();
    let applied: Vec<_> = survivors.iter().map(|(_, kv)| kv.applied()).collect();
    assert_eq!(
        applied[0], applied[1],
        "the two survivors applied the same commands"
    );
    for (_, kv) in survivors {
        assert_eq!(kv.get(b"after-19").as_deref(), Some(&b"value 19"[..]));
        assert_eq!(kv.get(b"w0-0").as_deref(), Some(&b"value 0"[..]));
    }
    // Writes to the old leader's address fail cleanly rather than hang.
    let stale = gone.append(vec![MemKv::put("x", "y")]).await;
    assert!(matches!(stale, Err(Error::Shutdown)), "{stale:?}");

    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_lost_its_data_catches_up_by_snapshot_chunks_over_http() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut config = test_config();
    config.raft.snapshot_entries = 50;
    config.raft.snapshot_keep_entries = 5;
    // Small chunks: the snapshot of ~200 keys takes dozens of requests.
    config.raft.snapshot_chunk_bytes = 512;
    let mut cluster = HttpNodes::start(3, config).await;
    let leader_id = cluster.wait_for_leader().await;
    let leader = cluster.node(leader_id);
    let last = write(&leader, "k", 200).await;
    cluster.wait_applied(last).await;
    // The snapshot and the compaction after it run in the background.
    raft_core::testing::wait_until("the leader compacted", || {
        leader.status().log_base_index > LogIndex(100)
    })
    .await;

    // A follower loses everything (a replaced disk) and comes back empty.
    let follower = cluster.others(leader_id)[0];
    cluster.stop_node(follower).await;
    cluster.stores.insert(follower, MemLogStore::new());
    cluster.start_node(follower).await;

    let last = write(&leader, "after", 10).await;
    cluster.wait_applied(last).await;
    let back = &cluster.state_machines[&follower];
    assert!(!back.restored_from().is_empty(), "installed a snapshot");
    assert_eq!(back.dump(), cluster.state_machines[&leader_id].dump());
    assert_eq!(back.get(b"k199").as_deref(), Some(&b"value 199"[..]));

    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_serves_linearizable_reads_with_a_read_index_over_http() {
    let cluster = HttpNodes::start(3, test_config()).await;
    let leader_id = cluster.wait_for_leader().await;
    let leader = cluster.node(leader_id);
    let follower_id = cluster.others(leader_id)[0];
    let follower = cluster.node(follower_id);
    for i in 0..10 {
        let written = write(&leader, &format!("r{i}-"), 1).await;
        let index = follower.follower_read().await.expect("a read index");
        assert!(index >= written);
        let kv = &cluster.state_machines[&follower_id];
        assert_eq!(
            kv.get(format!("r{i}-0").as_bytes()).as_deref(),
            Some(&b"value 0"[..])
        );
    }
    cluster.shutdown().await;
}
