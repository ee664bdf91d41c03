//! Test support: raft-kv clusters started in-process, and a fault-injecting proxy.
// A broken helper should fail the test loudly, hence unwrap and expect.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]

pub mod proxy;

use std::path::Path;
use std::time::Duration;

use raft_core::NodeId;
use raft_core::engine::RoleKind;
use raft_kv::server::{KvNode, NodeOptions};
use raft_kv_client::{Client, ClientBuilder};
use tempfile::TempDir;

/// Nodes `1..=n` of one cluster, each in this process; a stopped node's slot is `None`.
pub struct Cluster {
    pub nodes: Vec<Option<KvNode>>,
    /// `http://host:port` of node `i + 1`.
    pub urls: Vec<String>,
    _dir: TempDir,
}

/// `n` loopback addresses with free ports (bound together, then released).
pub fn free_addresses(n: usize) -> Vec<String> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect()
}

/// The options of node `id` of a cluster at `addresses`, with quick elections.
pub fn node_options(dir: &Path, id: u64, addresses: &[String]) -> NodeOptions {
    let index = usize::try_from(id).unwrap() - 1;
    let mut options = NodeOptions::new(
        NodeId(id),
        addresses[index].clone(),
        dir.join(format!("node-{id}")),
    );
    options.raft.raft.election_timeout_ms = 400;
    options.raft.raft.heartbeat_interval_ms = 50;
    options.peers = (1..=addresses.len() as u64)
        .filter(|&peer| peer != id)
        .map(|peer| (NodeId(peer), addresses[peer as usize - 1].clone()))
        .collect();
    options
}

impl Cluster {
    /// Starts `n` nodes (`configure` adjusts each node's options) and waits for a leader.
    pub async fn start(n: usize, configure: impl Fn(&mut NodeOptions)) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let addresses = if n == 1 {
            vec!["127.0.0.1:0".to_owned()]
        } else {
            free_addresses(n)
        };
        let mut nodes = Vec::new();
        for id in 1..=n as u64 {
            let mut options = node_options(dir.path(), id, &addresses);
            configure(&mut options);
            nodes.push(Some(KvNode::start(options).await.unwrap()));
        }
        let urls = nodes.iter().flatten().map(KvNode::url).collect();
        let cluster = Cluster {
            nodes,
            urls,
            _dir: dir,
        };
        cluster.wait_for_leader().await;
        cluster
    }

    /// A builder of a client of every node.
    pub fn client_builder(&self) -> ClientBuilder {
        Client::builder(self.urls.clone()).deadline(Duration::from_secs(30))
    }

    /// A client of every node.
    pub fn client(&self) -> Client {
        self.client_builder().build().unwrap()
    }

    /// The index (0-based) of the node every running node agrees leads; waits up to 30 s.
    pub async fn wait_for_leader(&self) -> usize {
        for _ in 0..600 {
            let running: Vec<_> = self.nodes.iter().flatten().collect();
            let leaders: Vec<_> = running
                .iter()
                .map(|node| node.replica().node().status())
                .collect();
            if let Some(leader) = leaders.iter().find(|s| s.role == RoleKind::Leader)
                && leaders.iter().all(|s| s.leader == Some(leader.id))
            {
                return usize::try_from(leader.id.0).unwrap() - 1;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no leader agreed on");
    }

    /// Stops node `index` (0-based) gracefully.
    pub async fn stop(&mut self, index: usize) {
        if let Some(node) = self.nodes[index].take() {
            node.shutdown().await;
        }
    }

    /// Stops every node still running.
    pub async fn shutdown(mut self) {
        for index in 0..self.nodes.len() {
            self.stop(index).await;
        }
    }
}
