//! raft-core clusters on FsLogStore: replication, restart from disk, a leader's power loss with
//! writes in flight, an fsync failure that stops a node while the others go on, and snapshots
//! on real files (compaction, restart from a snapshot, a follower brought back by one).
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use raft_core::runtime::{Node, NodeConfig};
use raft_core::testing::{self, MemKv, NodeFactory, Parts, test_config};
use raft_core::{BoxError, LogIndex, NodeId};
use raft_storage_fs::testing::SimFs;
use raft_storage_fs::{FsLogStore, FsOptions};

/// Where a node's log lives: a real directory, or a simulated disk of its own.
#[derive(Clone)]
enum Disk {
    Real(PathBuf),
    Sim(SimFs),
}

/// raft-core nodes on FsLogStore: the log is reopened from its disk at every start (the
/// recovery a restarted process does) and closed when the node stops.
struct FsNodes {
    disks: Vec<Disk>,
}

type Cluster = testing::Cluster<FsNodes>;

#[async_trait]
impl NodeFactory for FsNodes {
    type Config = NodeConfig;
    type Store = FsLogStore;
    type StateMachine = MemKv;
    type Handle = ();

    fn network_seed(&self) -> u64 {
        7
    }

    async fn store(&self, id: NodeId, kept: Option<FsLogStore>) -> Result<FsLogStore, BoxError> {
        drop(kept); // closed when the node stopped
        let disk = self.disks[id.0 as usize - 1].clone();
        let options = FsOptions::default()
            .segment_bytes(4 << 10)
            .cache_bytes(2 << 10)
            .node(id);
        let store = tokio::task::spawn_blocking(move || match disk {
            Disk::Real(dir) => FsLogStore::open(dir, options),
            Disk::Sim(fs) => {
                FsLogStore::open_with(Arc::new(fs.process()), Path::new("/raft"), options)
            }
        });
        Ok(store.await??)
    }

    fn state_machine(&self, _: NodeId) -> MemKv {
        MemKv::new()
    }

    async fn start(&self, parts: Parts<NodeConfig>) -> Result<(Node, ()), BoxError> {
        Ok((parts.start_node().await?, ()))
    }

    async fn stop(&self, _: NodeId, node: Node, (): (), store: &FsLogStore) {
        node.shutdown().await;
        store.close().await;
    }
}

async fn start(disks: Vec<Disk>, config: NodeConfig) -> Cluster {
    let n = disks.len() as u64;
    Cluster::start_with(FsNodes { disks }, n, config).await
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

/// Every acknowledged write applied exactly once on every running node, unknown ones at most
/// once, and the replicas agree.
fn assert_exactly_once(cluster: &Cluster, outcomes: &[(bytes::Bytes, testing::Outcome)]) {
    cluster.assert_exactly_once(outcomes);
    cluster.assert_replicas_identical();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_on_real_files_replicates_and_restarts_from_disk() {
    let (_dirs, disks) = real_disks(3);
    let mut cluster = start(disks, test_config()).await;
    cluster.wait_for_leader().await;
    let outcomes = cluster.spawn_writers(8, 25, Duration::ZERO).join().await;
    assert!(
        outcomes.iter().all(|(_, outcome)| outcome.is_acked()),
        "a healthy cluster acknowledges all"
    );
    cluster.settle().await;
    assert_exactly_once(&cluster, &outcomes);

    // Whole-cluster restart: every node recovers its log from its files and re-applies it.
    cluster.restart_all().await;
    cluster.settle().await;
    assert_exactly_once(&cluster, &outcomes);
    assert!(cluster.stores.values().all(|s| s.segment_paths().len() > 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_power_loss_with_writes_in_flight_loses_no_acknowledged_write() {
    let disks: Vec<SimFs> = (0..3).map(|_| SimFs::new()).collect();
    let mut cluster = start(
        disks.iter().cloned().map(Disk::Sim).collect(),
        test_config(),
    )
    .await;
    let first_leader = cluster.wait_for_leader().await;
    let writers = cluster.spawn_writers(8, 30, Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(60)).await;

    // The power fails under the leader: its disk keeps only what was synced (and torn
    // leftovers), and the process is gone.
    disks[first_leader.0 as usize - 1].power_loss(first_leader.0 * 1_000_003);
    cluster.stop_node(first_leader).await;
    let second_leader = cluster.wait_for_leader().await;
    assert_ne!(second_leader, first_leader);
    tokio::time::sleep(Duration::from_millis(60)).await;
    cluster.start_node(first_leader).await;

    let outcomes = writers.join().await;
    let acked = outcomes
        .iter()
        .filter(|(_, outcome)| outcome.is_acked())
        .count();
    assert!(acked >= 200, "only {acked} of 240 writes were acknowledged");
    cluster.settle().await;
    assert_exactly_once(&cluster, &outcomes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_fsync_failure_stops_the_node_and_the_others_go_on() {
    let disks: Vec<SimFs> = (0..3).map(|_| SimFs::new()).collect();
    let cluster = start(
        disks.iter().cloned().map(Disk::Sim).collect(),
        test_config(),
    )
    .await;
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
    cluster.forget_node(leader);
    let next = cluster.wait_for_leader().await;
    assert_ne!(next, leader);
    assert!(cluster.write(MemKv::put("after", "1")).await.is_acked());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_follower_catches_up_from_entries_read_back_from_disk() {
    let (_dirs, disks) = real_disks(3);
    let mut cluster = start(disks, test_config()).await;
    let leader = cluster.wait_for_leader().await;
    let lagging = cluster.others(leader)[0];
    cluster.stop_node(lagging).await;
    // Far more than the leader's 2 KiB cache: the catch-up reads its segment files.
    let outcomes = cluster.spawn_writers(4, 100, Duration::ZERO).join().await;
    assert!(outcomes.iter().all(|(_, outcome)| outcome.is_acked()));
    cluster.start_node(lagging).await;
    cluster.settle().await;
    assert_exactly_once(&cluster, &outcomes);
    assert!(cluster.stores[&lagging].last_log_id().index >= LogIndex(400));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_on_real_files_compact_the_log_restart_and_bring_a_follower_back() {
    let (_dirs, disks) = real_disks(3);
    let mut config = test_config();
    config.raft.snapshot_entries = 100;
    config.raft.snapshot_keep_entries = 20;
    config.raft.snapshot_chunk_bytes = 1024;
    let mut cluster = start(disks, config).await;
    let leader = cluster.wait_for_leader().await;
    let lagging = cluster.others(leader)[0];
    cluster.stop_node(lagging).await;
    let outcomes = cluster.spawn_writers(4, 100, Duration::ZERO).join().await;
    assert!(outcomes.iter().all(|(_, outcome)| outcome.is_acked()));
    let leader_store = &cluster.stores[&leader];
    // The snapshot and the compaction after it run in the background.
    testing::wait_until("whole segments compacted", || {
        leader_store.first_index() > LogIndex(100)
    })
    .await;

    // The follower's log ends long before the leader's first entry: it gets the snapshot.
    cluster.start_node(lagging).await;
    cluster.settle().await;
    assert!(!cluster.state_machines[&lagging].restored_from().is_empty());
    let dumps: Vec<_> = cluster.state_machines.values().map(MemKv::dump).collect();
    assert!(dumps.windows(2).all(|pair| pair[0] == pair[1]));
    assert_eq!(dumps[0].len(), 400);

    // Whole-cluster restart: every node restores its snapshot file, then replays its log.
    cluster.restart_all().await;
    cluster.settle().await;
    for kv in cluster.state_machines.values() {
        assert_eq!(
            kv.restored_from().len(),
            1,
            "restored from its snapshot at start"
        );
        assert_eq!(kv.dump(), dumps[0]);
    }
    assert!(
        cluster
            .write(MemKv::put("after", "restart"))
            .await
            .is_acked()
    );
}

#[tokio::test]
async fn a_second_node_on_a_clone_of_an_open_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsLogStore::open(dir.path(), FsOptions::default()).unwrap();
    let network = raft_core::testing::MemNetwork::new(1);
    let id = NodeId(1);
    let start = |store: FsLogStore| {
        Node::start(
            id,
            [(id, "node-1")],
            test_config(),
            Arc::new(store),
            MemKv::new().into_arc(),
            network.transport(id),
        )
    };
    let first = start(store.clone()).await.unwrap();
    let second = start(store.clone()).await;
    assert!(
        matches!(second, Err(raft_core::Error::StoreInUse)),
        "{second:?}"
    );
    first.shutdown().await;
    let again = start(store.clone()).await.unwrap();
    again.shutdown().await;
    store.close().await;
}
