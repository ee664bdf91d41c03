//! raft-core clusters on FsLogStore: replication, restart from disk, a leader's power loss with
//! writes in flight, an fsync failure that stops a node while the others go on, and snapshots
//! on real files (compaction, restart from a snapshot, a follower brought back by one).
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use raft_core::runtime::{Node, NodeConfig};
use raft_core::testing::{MemKv, MemNetwork};
use raft_core::{Error, LogIndex, LogStore, NodeId};
use raft_storage_fs::testing::SimFs;
use raft_storage_fs::{FsLogStore, FsOptions};

/// Where a node's log lives: a real directory, or a simulated disk of its own.
#[derive(Clone)]
enum Disk {
    Real(PathBuf),
    Sim(SimFs),
}

struct Cluster {
    network: MemNetwork,
    ids: Vec<NodeId>,
    disks: BTreeMap<NodeId, Disk>,
    stores: BTreeMap<NodeId, FsLogStore>,
    kvs: BTreeMap<NodeId, MemKv>,
    nodes: Arc<Mutex<BTreeMap<NodeId, Node>>>,
    config: NodeConfig,
}

fn config() -> NodeConfig {
    let mut config = NodeConfig::default();
    config.raft.election_timeout_ms = 300;
    config.raft.heartbeat_interval_ms = 30;
    config.raft.request_timeout_ms = 300;
    config
}

/// `n` real temporary directories (removed when the returned guards drop) as disks.
fn real_disks(n: usize) -> (Vec<tempfile::TempDir>, Vec<Disk>) {
    let dirs: Vec<tempfile::TempDir> = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
    let disks = dirs
        .iter()
        .map(|d| Disk::Real(d.path().to_path_buf()))
        .collect();
    (dirs, disks)
}

fn options(id: NodeId) -> FsOptions {
    FsOptions::default()
        .segment_bytes(4 << 10)
        .cache_bytes(2 << 10)
        .node(id)
}

impl Cluster {
    async fn start(disks: Vec<Disk>) -> Cluster {
        Cluster::start_with(disks, config()).await
    }

    async fn start_with(disks: Vec<Disk>, config: NodeConfig) -> Cluster {
        let ids: Vec<NodeId> = (1..=disks.len() as u64).map(NodeId).collect();
        let mut cluster = Cluster {
            network: MemNetwork::new(7),
            disks: ids.iter().copied().zip(disks).collect(),
            ids: ids.clone(),
            stores: BTreeMap::new(),
            kvs: BTreeMap::new(),
            nodes: Arc::new(Mutex::new(BTreeMap::new())),
            config,
        };
        for id in ids {
            cluster.start_node(id).await;
        }
        cluster
    }

    /// Opens `id`'s log (recovering it) and starts the node on it with an empty state machine.
    async fn start_node(&mut self, id: NodeId) {
        let disk = self.disks[&id].clone();
        let store = tokio::task::spawn_blocking(move || match disk {
            Disk::Real(dir) => FsLogStore::open(dir, options(id)),
            Disk::Sim(fs) => {
                FsLogStore::open_with(Arc::new(fs.process()), Path::new("/raft"), options(id))
            }
        })
        .await
        .unwrap()
        .expect("the log opens");
        let kv = MemKv::new();
        let members = self.ids.iter().map(|&id| (id, format!("mem://{id}")));
        let node = Node::start(
            id,
            members,
            self.config.clone(),
            Arc::new(store.clone()),
            kv.clone().into_arc(),
            self.network.transport(id),
        )
        .await
        .expect("node starts");
        self.network.register(id, &node);
        self.stores.insert(id, store);
        self.kvs.insert(id, kv);
        self.nodes.lock().unwrap().insert(id, node);
    }

    async fn stop_node(&mut self, id: NodeId) {
        self.network.unregister(id);
        let node = self.nodes.lock().unwrap().remove(&id);
        if let Some(node) = node {
            node.shutdown().await;
        }
        if let Some(store) = self.stores.remove(&id) {
            store.close().await;
        }
    }

    fn node(&self, id: NodeId) -> Node {
        self.nodes.lock().unwrap()[&id].clone()
    }

    async fn wait_for_leader(&self) -> NodeId {
        for _ in 0..1000 {
            let nodes: Vec<Node> = self.nodes.lock().unwrap().values().cloned().collect();
            let leaders: Vec<&Node> = nodes.iter().filter(|n| n.is_leader()).collect();
            if let [leader] = leaders.as_slice()
                && nodes.iter().all(|n| n.leader() == Some(leader.id()))
            {
                return leader.id();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no stable leader");
    }

    async fn wait_applied(&self, index: LogIndex) {
        for _ in 0..1000 {
            let nodes: Vec<Node> = self.nodes.lock().unwrap().values().cloned().collect();
            if nodes.iter().all(|n| n.applied_index() >= index) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("nodes did not apply {index}");
    }

    /// Waits for a leader and for every running node to apply its commit index.
    async fn settle(&self) {
        let leader = self.wait_for_leader().await;
        // A new leader's commit index covers its log once an entry of its term commits; until
        // then it may be the stale one a restart read from the hard state.
        let node = self.node(leader);
        for _ in 0..1000 {
            if node.commit_index() >= node.status().last_log_index {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.wait_applied(node.commit_index()).await;
    }

    /// Every acknowledged write applied exactly once on every running node, unknown ones at
    /// most once, and the replicas agree.
    fn assert_exactly_once(&self, outcomes: &[(Bytes, bool)]) {
        let running: Vec<NodeId> = self.nodes.lock().unwrap().keys().copied().collect();
        let mut reference: Option<Vec<(LogIndex, Bytes)>> = None;
        for id in running {
            let applied = self.kvs[&id].applied();
            for (command, acked) in outcomes {
                let count = applied.iter().filter(|(_, c)| c == command).count();
                if *acked {
                    assert_eq!(
                        count, 1,
                        "node {id}: an acknowledged write applied {count} times"
                    );
                } else {
                    assert!(count <= 1, "node {id}: a write applied twice");
                }
            }
            match &reference {
                None => reference = Some(applied),
                Some(reference) => assert_eq!(reference, &applied, "node {id} diverged"),
            }
        }
    }
}

/// Writes `command` to whichever node leads; true once acknowledged, false when the outcome
/// is unknown. Retries only what is known not to be applied.
async fn write(nodes: &Arc<Mutex<BTreeMap<NodeId, Node>>>, command: Bytes) -> bool {
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
            Ok(_) => return true,
            Err(Error::NotLeader { leader }) => {
                target = leader.map(|hint| hint.id);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(Error::Discarded { .. } | Error::Overloaded | Error::Shutdown) => {
                target = None;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(_) => return false,
        }
    }
    false
}

fn spawn_writers(
    cluster: &Cluster,
    writers: usize,
    each: usize,
) -> Vec<tokio::task::JoinHandle<Vec<(Bytes, bool)>>> {
    (0..writers)
        .map(|w| {
            let nodes = Arc::clone(&cluster.nodes);
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for i in 0..each {
                    let command = MemKv::put(format!("w{w}-{i}"), format!("{i}"));
                    let acked = write(&nodes, command.clone()).await;
                    outcomes.push((command, acked));
                }
                outcomes
            })
        })
        .collect()
}

async fn join_all(writers: Vec<tokio::task::JoinHandle<Vec<(Bytes, bool)>>>) -> Vec<(Bytes, bool)> {
    let mut all = Vec::new();
    for writer in writers {
        all.extend(writer.await.unwrap());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_on_real_files_replicates_and_restarts_from_disk() {
    let (_dirs, disks) = real_disks(3);
    let mut cluster = Cluster::start(disks).await;
    cluster.wait_for_leader().await;
    let outcomes = join_all(spawn_writers(&cluster, 8, 25)).await;
    assert!(
        outcomes.iter().all(|(_, acked)| *acked),
        "a healthy cluster acknowledges all"
    );
    cluster.settle().await;
    cluster.assert_exactly_once(&outcomes);

    // Whole-cluster restart: every node recovers its log from its files and re-applies it.
    for id in cluster.ids.clone() {
        cluster.stop_node(id).await;
    }
    for id in cluster.ids.clone() {
        cluster.start_node(id).await;
    }
    cluster.settle().await;
    cluster.assert_exactly_once(&outcomes);
    assert!(cluster.stores.values().all(|s| s.segment_paths().len() > 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_power_loss_with_writes_in_flight_loses_no_acknowledged_write() {
    let disks: Vec<SimFs> = (0..3).map(|_| SimFs::new()).collect();
    let mut cluster = Cluster::start(disks.iter().cloned().map(Disk::Sim).collect()).await;
    let first_leader = cluster.wait_for_leader().await;
    let writers = spawn_writers(&cluster, 8, 30);
    tokio::time::sleep(Duration::from_millis(60)).await;

    // The power fails under the leader: its disk keeps only what was synced (and torn
    // leftovers), and the process is gone.
    disks[first_leader.0 as usize - 1].power_loss(first_leader.0 * 1_000_003);
    cluster.stop_node(first_leader).await;
    let second_leader = cluster.wait_for_leader().await;
    assert_ne!(second_leader, first_leader);
    tokio::time::sleep(Duration::from_millis(60)).await;
    cluster.start_node(first_leader).await;

    let outcomes = join_all(writers).await;
    let acked = outcomes.iter().filter(|(_, acked)| *acked).count();
    assert!(acked >= 200, "only {acked} of 240 writes were acknowledged");
    cluster.settle().await;
    cluster.assert_exactly_once(&outcomes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_fsync_failure_stops_the_node_and_the_others_go_on() {
    let disks: Vec<SimFs> = (0..3).map(|_| SimFs::new()).collect();
    let cluster = Cluster::start(disks.iter().cloned().map(Disk::Sim).collect()).await;
    let leader = cluster.wait_for_leader().await;
    let node = cluster.node(leader);
    disks[leader.0 as usize - 1].fail_syncs();
    // The next write needs a sync: the log poisons itself and the node stops.
    let _ = node
        .append_timeout(vec![MemKv::put("k", "v")], Duration::from_secs(2))
        .await;
    let mut status = node.watch_status();
    tokio::time::timeout(Duration::from_secs(5), status.wait_for(|s| !s.running))
        .await
        .expect("the node stops on a failed fsync")
        .unwrap();
    assert!(
        cluster.stores[&leader]
            .poisoned()
            .unwrap()
            .contains("syncing")
    );
    cluster.network.unregister(leader);
    cluster.nodes.lock().unwrap().remove(&leader);
    let next = cluster.wait_for_leader().await;
    assert_ne!(next, leader);
    assert!(write(&cluster.nodes, MemKv::put("after", "1")).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_follower_catches_up_from_entries_read_back_from_disk() {
    let (_dirs, disks) = real_disks(3);
    let mut cluster = Cluster::start(disks).await;
    let leader = cluster.wait_for_leader().await;
    let lagging = cluster
        .ids
        .iter()
        .copied()
        .find(|&id| id != leader)
        .unwrap();
    cluster.stop_node(lagging).await;
    // Far more than the leader's 2 KiB cache: the catch-up reads its segment files.
    let outcomes = join_all(spawn_writers(&cluster, 4, 100)).await;
    assert!(outcomes.iter().all(|(_, acked)| *acked));
    cluster.start_node(lagging).await;
    cluster.settle().await;
    cluster.assert_exactly_once(&outcomes);
    assert!(cluster.stores[&lagging].last_log_id().index >= LogIndex(400));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_on_real_files_compact_the_log_restart_and_bring_a_follower_back() {
    let (_dirs, disks) = real_disks(3);
    let mut config = config();
    config.raft.snapshot_entries = 100;
    config.raft.snapshot_keep_entries = 20;
    config.raft.snapshot_chunk_bytes = 1024;
    let mut cluster = Cluster::start_with(disks, config).await;
    let leader = cluster.wait_for_leader().await;
    let lagging = cluster
        .ids
        .iter()
        .copied()
        .find(|&id| id != leader)
        .unwrap();
    cluster.stop_node(lagging).await;
    let outcomes = join_all(spawn_writers(&cluster, 4, 100)).await;
    assert!(outcomes.iter().all(|(_, acked)| *acked));
    let leader_store = &cluster.stores[&leader];
    assert!(
        leader_store.first_index() > LogIndex(100),
        "whole segments compacted"
    );

    // The follower's log ends long before the leader's first entry: it gets the snapshot.
    cluster.start_node(lagging).await;
    cluster.settle().await;
    assert!(!cluster.kvs[&lagging].restored_from().is_empty());
    let dumps: Vec<_> = cluster.kvs.values().map(MemKv::dump).collect();
    assert!(dumps.windows(2).all(|pair| pair[0] == pair[1]));
    assert_eq!(dumps[0].len(), 400);

    // Whole-cluster restart: every node restores its snapshot file, then replays its log.
    for id in cluster.ids.clone() {
        cluster.stop_node(id).await;
    }
    for id in cluster.ids.clone() {
        cluster.start_node(id).await;
    }
    cluster.settle().await;
    for kv in cluster.kvs.values() {
        assert_eq!(
            kv.restored_from().len(),
            1,
            "restored from its snapshot at start"
        );
        assert_eq!(kv.dump(), dumps[0]);
    }
    assert!(write(&cluster.nodes, MemKv::put("after", "restart")).await);
}
