//! A cluster of runtime nodes over the in-process network, for the runtime's integration tests.
// Test support: a broken helper should fail the test loudly, hence unwrap and expect.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use raft_core::runtime::{Node, NodeConfig};
use raft_core::testing::{MemKv, MemLogStore, MemNetwork};
use raft_core::{Error, LogIndex, NodeId};

/// Nodes 1..=n, their stores and state machines.
pub struct TestCluster {
    pub network: MemNetwork,
    pub config: NodeConfig,
    pub ids: Vec<NodeId>,
    pub stores: BTreeMap<NodeId, MemLogStore>,
    pub kvs: BTreeMap<NodeId, MemKv>,
    pub nodes: Arc<Mutex<BTreeMap<NodeId, Node>>>,
}

pub fn address(id: NodeId) -> String {
    format!("mem://node-{id}")
}

/// A fast configuration for tests.
pub fn test_config() -> NodeConfig {
    let mut config = NodeConfig::default();
    config.raft.election_timeout_ms = 300;
    config.raft.heartbeat_interval_ms = 30;
    config.raft.request_timeout_ms = 300;
    config
}

impl TestCluster {
    pub async fn start(n: u64, config: NodeConfig) -> TestCluster {
        let ids: Vec<NodeId> = (1..=n).map(NodeId).collect();
        let mut cluster = TestCluster {
            network: MemNetwork::new(42),
            config,
            stores: ids.iter().map(|&id| (id, MemLogStore::new())).collect(),
            kvs: BTreeMap::new(),
            nodes: Arc::new(Mutex::new(BTreeMap::new())),
            ids: ids.clone(),
        };
        for id in ids {
            cluster.start_node(id).await;
        }
        cluster
    }

    /// Starts (or restarts) `id` from its log store, with an empty state machine.
    pub async fn start_node(&mut self, id: NodeId) {
        let kv = MemKv::new();
        let members = self.ids.iter().map(|&id| (id, address(id)));
        let node = Node::start(
            id,
            members,
            self.config.clone(),
            Arc::new(self.stores[&id].clone()),
            Arc::new(kv.clone()),
            self.network.transport(id),
        )
        .await
        .expect("node starts");
        self.network.register(id, &node);
        self.kvs.insert(id, kv);
        self.nodes.lock().unwrap().insert(id, node);
    }

    /// Shuts `id` down and takes it off the network.
    pub async fn stop_node(&mut self, id: NodeId) {
        self.network.unregister(id);
        let node = self.nodes.lock().unwrap().remove(&id);
        if let Some(node) = node {
            node.shutdown().await;
        }
    }

    /// Every member but `id`, in id order.
    pub fn others(&self, id: NodeId) -> Vec<NodeId> {
        self.ids
            .iter()
            .copied()
            .filter(|&other| other != id)
            .collect()
    }

    pub fn node(&self, id: NodeId) -> Node {
        self.nodes.lock().unwrap()[&id].clone()
    }

    pub fn running(&self) -> Vec<Node> {
        self.nodes.lock().unwrap().values().cloned().collect()
    }

    /// Waits until exactly one running node among `among` leads and the others know it.
    pub async fn wait_for_leader_among(&self, among: &[NodeId]) -> NodeId {
        for _ in 0..1000 {
            let nodes: Vec<Node> = self
                .running()
                .into_iter()
                .filter(|n| among.contains(&n.id()))
                .collect();
            let leaders: Vec<&Node> = nodes.iter().filter(|n| n.is_leader()).collect();
            if let [leader] = leaders.as_slice() {
                let id = leader.id();
                if nodes.iter().all(|n| n.leader() == Some(id)) {
                    return id;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no stable leader among {among:?}");
    }

    pub async fn wait_for_leader(&self) -> NodeId {
        let ids: Vec<NodeId> = self.nodes.lock().unwrap().keys().copied().collect();
        self.wait_for_leader_among(&ids).await
    }

    /// Waits until every running node applied `index`.
    pub async fn wait_applied(&self, index: LogIndex) {
        for _ in 0..2000 {
            if self.running().iter().all(|n| n.applied_index() >= index) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let applied: Vec<_> = self
            .running()
            .iter()
            .map(|n| (n.id(), n.applied_index()))
            .collect();
        panic!("nodes did not apply {index}: {applied:?}");
    }

    /// Every running node's applied commands are the same sequence, each index once.
    pub fn assert_replicas_agree(&self) {
        let running: Vec<NodeId> = self.nodes.lock().unwrap().keys().copied().collect();
        let mut reference: Option<Vec<(LogIndex, Bytes)>> = None;
        for id in running {
            let kv = &self.kvs[&id];
            assert!(
                kv.out_of_order_commits().is_empty(),
                "node {id} applied out of order"
            );
            let applied = kv.applied();
            match &reference {
                None => reference = Some(applied),
                Some(reference) => {
                    let common = reference.len().min(applied.len());
                    assert_eq!(reference[..common], applied[..common], "node {id} diverged");
                }
            }
        }
    }
}

/// What a client learned about one write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Committed at this index.
    Acked(LogIndex),
    /// Maybe committed, maybe not (timeout or shutdown after it was queued).
    Unknown,
}

/// Writes `command` to whichever node leads, following redirects; retries only when the
/// outcome is known to be "not applied".
pub async fn write(nodes: &Arc<Mutex<BTreeMap<NodeId, Node>>>, command: Bytes) -> Outcome {
    let mut target: Option<NodeId> = None;
    for _ in 0..500 {
        let node = {
            let nodes = nodes.lock().unwrap();
            target
                .and_then(|id| nodes.get(&id).cloned())
                .or_else(|| nodes.values().find(|n| n.is_leader()).cloned())
                .or_else(|| nodes.values().next().cloned())
        };
        let Some(node) = node else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        match node
            .append_timeout(vec![command.clone()], Duration::from_secs(3))
            .await
        {
            Ok(appended) => return Outcome::Acked(appended.first.index),
            Err(Error::NotLeader { leader }) => {
                target = leader.map(|hint| hint.id);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // Known not applied: safe to retry.
            Err(Error::Discarded { .. } | Error::Overloaded | Error::Shutdown) => {
                target = None;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(_) => return Outcome::Unknown,
        }
    }
    Outcome::Unknown
}
