//! Reads: `Node::linearizable_read` returns only once the state machine has applied the read
//! index (the wait is the runtime's own; the simulator serves reads with a wait of its own, so it
//! is proven here, with a state machine whose apply is held back), and `Node::lease_read`
//! answers from the leader's lease without a round trip.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use raft_core::runtime::Node;
use raft_core::testing::{Cluster, MemKv, MemLogStore, MemNetwork, test_config};
use raft_core::{Entry, Error, NodeId, SnapshotReader, SnapshotSource, StateMachine};
use tokio::sync::watch;

/// A `MemKv` whose `commit` waits while the gate is closed.
#[derive(Clone)]
struct GatedApply {
    kv: MemKv,
    open: watch::Receiver<bool>,
}

#[async_trait]
impl StateMachine for GatedApply {
    async fn commit(&self, entries: &[Entry]) -> Result<Vec<Bytes>, Error> {
        let mut open = self.open.clone();
        let _ = open.wait_for(|open| *open).await;
        self.kv.commit(entries).await
    }

    async fn snapshot(&self) -> Result<Box<dyn SnapshotSource>, Error> {
        self.kv.snapshot().await
    }

    async fn restore(&self, snapshot: Arc<dyn SnapshotReader>) -> Result<(), Error> {
        self.kv.restore(snapshot).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_linearizable_read_waits_until_the_read_index_is_applied() {
    let (gate, open) = watch::channel(true);
    let kv = MemKv::new();
    let network = MemNetwork::new(1);
    let id = NodeId(1);
    let node = Node::start(
        id,
        [(id, "node-1")],
        test_config(),
        MemLogStore::new().into_arc(),
        Arc::new(GatedApply {
            kv: kv.clone(),
            open,
        }),
        network.transport(id),
    )
    .await
    .unwrap();
    network.register(id, &node);
    node.wait_for_leader(Duration::from_secs(10)).await.unwrap();
    node.append_one(MemKv::put("k", "1")).await.unwrap();

    // A write commits while its apply is held back.
    gate.send_replace(false);
    let pending = node.append_async(vec![MemKv::put("k", "2")]).await.unwrap();
    let written = pending.first.index;
    while node.commit_index() < written {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(node.applied_index() < written, "the apply is held back");

    let reader = node.clone();
    let read = tokio::spawn(async move { reader.linearizable_read().await });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!read.is_finished(), "the read must wait for the apply");
    assert_eq!(kv.get(b"k").as_deref(), Some(&b"1"[..]));

    gate.send_replace(true);
    let index = read.await.unwrap().unwrap();
    assert!(
        index >= written,
        "the read index covers the committed write"
    );
    assert!(node.applied_index() >= index);
    // What a reader sees after the read returns includes the write.
    assert_eq!(kv.get(b"k").as_deref(), Some(&b"2"[..]));
    pending.result().await.unwrap();
    node.shutdown().await;
}

/// With leases on, a leader cut off from its followers still answers a lease read at once,
/// within its lease, where a ReadIndex read needs the followers; once the lease has run out
/// the lease read needs them too, and fails when the leader steps down.
#[tokio::test(start_paused = true)]
async fn a_lease_read_needs_no_round_trip_within_the_lease_and_one_after() {
    let mut config = test_config();
    config.raft.lease_reads = true;
    config.raft.max_clock_drift_ms = 30;
    let cluster = Cluster::start(3, config).await;
    let leader = cluster.leader_node().await;
    leader.append_one(MemKv::put("k", "1")).await.unwrap();
    // A round the followers answer renews the lease; then the leader is cut off.
    leader.linearizable_read().await.unwrap();
    cluster.network.isolate(leader.id());

    let reader = leader.clone();
    let index_read = tokio::spawn(async move { reader.linearizable_read().await });
    let lease_read = tokio::time::timeout(Duration::from_millis(20), leader.lease_read()).await;
    assert!(
        matches!(lease_read, Ok(Ok(_))),
        "served from the lease: {lease_read:?}"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        !index_read.is_finished(),
        "a ReadIndex read waits for the followers"
    );

    // The lease (300 - 30 ms) runs out; the lease read falls back to ReadIndex and is
    // refused once check-quorum makes the leader step down.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let late = leader.lease_read().await;
    assert!(matches!(late, Err(Error::NotLeader { .. })), "{late:?}");
    cluster.shutdown().await;
}

/// A follower serves a linearizable read itself: it sees every write acknowledged before the
/// read, without the leader serving it; cut off from the leader it refuses instead.
#[tokio::test(start_paused = true)]
async fn a_follower_read_sees_every_acknowledged_write_and_refuses_when_cut_off() {
    let cluster = Cluster::start(3, test_config()).await;
    let leader = cluster.leader_node().await;
    let follower_id = cluster.others(leader.id())[0];
    let follower = cluster.node(follower_id);
    for i in 0..20 {
        let appended = leader
            .append_one(MemKv::put("k", format!("{i}")))
            .await
            .unwrap();
        let index = follower.follower_read().await.unwrap();
        assert!(index >= appended.0.index, "the read index covers the write");
        assert!(follower.applied_index() >= index);
        let value = cluster.state_machines[&follower_id].get(b"k");
        assert_eq!(value.as_deref(), Some(format!("{i}").as_bytes()));
    }
    cluster.network.isolate(follower_id);
    let cut_off = follower.follower_read().await;
    assert!(
        matches!(cut_off, Err(Error::NotLeader { .. })),
        "{cut_off:?}"
    );
    cluster.shutdown().await;
}

/// A leader that lost its peers and then stalled (a paused process, a starved thread) far past
/// its lease must refuse a lease read that is waiting when it resumes, before its overdue tick
/// runs: the lease is judged by the clock now, not by the clock of the last tick.
#[tokio::test(start_paused = true)]
async fn a_lease_read_after_a_stall_is_refused_before_the_overdue_tick_runs() {
    let mut config = test_config();
    config.raft.lease_reads = true;
    let cluster = Cluster::start(3, config).await;
    let leader = cluster.wait_for_leader().await;
    let node = cluster.node(leader);
    node.append(vec![MemKv::put("x", "1")]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    node.lease_read().await.expect("the lease holds");

    cluster.network.isolate(leader);
    let read = tokio::spawn({
        let node = node.clone();
        async move { node.lease_read().await }
    });
    // 10 election timeouts pass at once; the read is queued when the loop wakes.
    tokio::time::advance(Duration::from_secs(3)).await;
    let result = read.await.unwrap();
    assert!(
        result.is_err(),
        "served from a lease that ended long ago, by a leader cut off from every peer: {result:?}"
    );
}

/// Reads of every kind, issued in crowds while writes commit, share groups yet each sees every
/// write acknowledged before it began: its read index covers the write, and the state machine
/// has applied it when the read returns.
#[tokio::test(start_paused = true)]
async fn crowds_of_reads_during_writes_each_see_every_write_acknowledged_before_they_began() {
    use std::sync::atomic::{AtomicU64, Ordering};

    let mut config = test_config();
    config.raft.lease_reads = true;
    let cluster = Cluster::start(3, config).await;
    let leader = cluster.leader_node().await;
    let follower = cluster.node(cluster.others(leader.id())[0]);
    // Messages take 1-8 ms: a read round is then long enough for writes to commit while a
    // group waits, so a group joined after its read index was chosen would miss them.
    cluster
        .network
        .set_delay(Duration::from_millis(1), Duration::from_millis(8));
    let acked = Arc::new(AtomicU64::new(0));
    let writer = tokio::spawn({
        let (leader, acked) = (leader.clone(), acked.clone());
        async move {
            for i in 0..40 {
                let (info, _) = leader
                    .append_one(MemKv::put(format!("k{i}"), "v"))
                    .await
                    .unwrap();
                acked.fetch_max(info.index.0, Ordering::SeqCst);
            }
        }
    });
    let mut readers = Vec::new();
    for round in 0..40 {
        for n in 0..12 {
            let (leader, follower, acked) = (leader.clone(), follower.clone(), acked.clone());
            readers.push(tokio::spawn(async move {
                let node = if n % 3 == 2 { follower } else { leader };
                let before = acked.load(Ordering::SeqCst);
                let index = match n % 3 {
                    0 => node.linearizable_read().await,
                    1 => node.lease_read().await,
                    _ => node.follower_read().await,
                }
                .unwrap();
                assert!(
                    index.0 >= before,
                    "read {round}/{n}: index {index:?} misses write {before}"
                );
                assert!(node.applied_index() >= index);
            }));
        }
        tokio::time::sleep(Duration::from_micros(700)).await;
    }
    writer.await.unwrap();
    for reader in readers {
        reader.await.unwrap();
    }
    cluster.shutdown().await;
}
