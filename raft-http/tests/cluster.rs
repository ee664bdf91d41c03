//! A 3-node raft-core cluster over real loopback HTTP: it elects a leader, replicates writes to
//! every node, fails over when the leader is shut down, and brings a follower that lost its
//! data back with a snapshot sent in chunks.

// Helpers of this test file: a broken one should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{TestServer, auth, serve_on};
use raft_core::runtime::{Node, NodeConfig};
use raft_core::testing::{MemKv, MemLogStore};
use raft_core::{Error, LogIndex, NodeId};
use raft_http::{ClientConfig, HttpTransport, RaftService, ServerConfig, ServiceConfig};
use tokio::net::TcpListener;

struct Member {
    node: Node,
    kv: MemKv,
    server: TestServer,
}

fn node_config() -> NodeConfig {
    let mut config = NodeConfig::default();
    config.raft.election_timeout_ms = 300;
    config.raft.heartbeat_interval_ms = 30;
    config.raft.request_timeout_ms = 300;
    config
}

async fn start_cluster() -> BTreeMap<NodeId, Member> {
    start_cluster_with(node_config()).await.1
}

async fn start_cluster_with(
    config: NodeConfig,
) -> (BTreeMap<NodeId, String>, BTreeMap<NodeId, Member>) {
    // Learn three free ports first: every node needs every address at start.
    let mut addresses = BTreeMap::new();
    for id in 1..=3 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        addresses.insert(NodeId(id), listener.local_addr().unwrap().to_string());
    }
    let mut members = BTreeMap::new();
    for &id in addresses.keys() {
        let member = start_member(id, &addresses, config.clone()).await;
        members.insert(id, member);
    }
    (addresses, members)
}

/// Starts node `id` with an empty log and state machine, served on its address.
async fn start_member(
    id: NodeId,
    addresses: &BTreeMap<NodeId, String>,
    config: NodeConfig,
) -> Member {
    let address = &addresses[&id];
    {
        let mut client = ClientConfig::new(auth());
        client.request_timeout = Duration::from_millis(500);
        client.connect_timeout = Duration::from_millis(200);
        client.backoff_initial = Duration::from_millis(10);
        client.backoff_max = Duration::from_millis(100);
        client.node = Some(id);
        let transport = Arc::new(HttpTransport::new(addresses.clone(), client).unwrap());
        let kv = MemKv::new();
        let node = Node::start(
            id,
            addresses.clone(),
            config,
            MemLogStore::new().into_arc(),
            kv.clone().into_arc(),
            transport,
        )
        .await
        .unwrap();
        let mut service = ServiceConfig::new(auth());
        service.node = Some(id);
        let service = RaftService::new(Arc::new(node.clone()), service);
        let server = serve_on(address, service, ServerConfig::default()).await;
        Member { node, kv, server }
    }
}

/// Waits until one of `members` leads and the others follow it.
async fn stable_leader(members: &BTreeMap<NodeId, Member>) -> NodeId {
    for _ in 0..1000 {
        let leaders: Vec<NodeId> = members
            .values()
            .filter(|m| m.node.is_leader())
            .map(|m| m.node.id())
            .collect();
        if let [leader] = leaders[..]
            && members.values().all(|m| m.node.leader() == Some(leader))
        {
            return leader;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no stable leader");
}

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

async fn wait_applied(members: &BTreeMap<NodeId, Member>, index: LogIndex) {
    for _ in 0..1000 {
        if members.values().all(|m| m.node.applied_index() >= index) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not applied everywhere: {index}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_over_http_elect_replicate_and_fail_over() {
    let mut members = start_cluster().await;
    let first_leader = stable_leader(&members).await;

    // Concurrent writes: many AppendEntries in flight per follower.
    let leader = members[&first_leader].node.clone();
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
    wait_applied(&members, last).await;
    for member in members.values() {
        assert_eq!(member.kv.get(b"w7-24").as_deref(), Some(&b"value 24"[..]));
        assert!(member.kv.out_of_order_commits().is_empty());
    }

    // The leader goes away: node and server.
    let gone = members.remove(&first_leader).unwrap();
    gone.node.shutdown().await;
    gone.server.stop().await;
    let second_leader = stable_leader(&members).await;
    assert_ne!(second_leader, first_leader);

    let leader = members[&second_leader].node.clone();
    let last = write(&leader, "after-", 20).await;
    wait_applied(&members, last).await;
    let applied: Vec<_> = members.values().map(|m| m.kv.applied()).collect();
    assert_eq!(
        applied[0], applied[1],
        "the two survivors applied the same commands"
    );
    for member in members.values() {
        assert_eq!(
            member.kv.get(b"after-19").as_deref(),
            Some(&b"value 19"[..])
        );
        assert_eq!(member.kv.get(b"w0-0").as_deref(), Some(&b"value 0"[..]));
    }
    // Writes to the old leader's address fail cleanly rather than hang.
    let stale = gone.node.append(vec![MemKv::put("x", "y")]).await;
    assert!(matches!(stale, Err(Error::Shutdown)), "{stale:?}");

    for (_, member) in members {
        member.node.shutdown().await;
        member.server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_lost_its_data_catches_up_by_snapshot_chunks_over_http() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut config = node_config();
    config.raft.snapshot_entries = 50;
    config.raft.snapshot_keep_entries = 5;
    // Small chunks: the snapshot of ~200 keys takes dozens of requests.
    config.raft.snapshot_chunk_bytes = 512;
    let (addresses, mut members) = start_cluster_with(config.clone()).await;
    let leader_id = stable_leader(&members).await;
    let leader = members[&leader_id].node.clone();
    let last = write(&leader, "k", 200).await;
    wait_applied(&members, last).await;
    assert!(
        leader.status().log_base_index > LogIndex(100),
        "the leader compacted"
    );

    // A follower loses everything (a replaced disk) and comes back empty.
    let follower = *members.keys().find(|&&id| id != leader_id).unwrap();
    let gone = members.remove(&follower).unwrap();
    gone.node.shutdown().await;
    gone.server.stop().await;
    members.insert(follower, start_member(follower, &addresses, config).await);

    let last = write(&leader, "after", 10).await;
    wait_applied(&members, last).await;
    let back = &members[&follower];
    assert!(!back.kv.restored_from().is_empty(), "installed a snapshot");
    assert_eq!(back.kv.dump(), members[&leader_id].kv.dump());
    assert_eq!(back.kv.get(b"k199").as_deref(), Some(&b"value 199"[..]));

    for (_, member) in members {
        member.node.shutdown().await;
        member.server.stop().await;
    }
}
