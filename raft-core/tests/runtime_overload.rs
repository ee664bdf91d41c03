//! A full request queue answers `Overloaded` at once, and proposals that queue up while the
//! loop is busy become one log append.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use raft_core::engine::RestoredState;
use raft_core::runtime::{Node, NodeConfig};
use raft_core::testing::{MemKv, MemLogStore, MemNetwork};
use raft_core::{
    Entry, Error, HardState, LogId, LogIndex, LogStore, NodeId, SnapshotReader, SnapshotWriter,
    StoreClaim,
};
use tokio::sync::{Notify, watch};

/// A MemLogStore whose `append` can be held, which stalls the node's event loop.
#[derive(Debug)]
struct GatedStore {
    inner: MemLogStore,
    held: AtomicBool,
    opened: Notify,
}

impl GatedStore {
    fn hold(&self) {
        self.held.store(true, Ordering::SeqCst);
    }

    fn release(&self) {
        self.held.store(false, Ordering::SeqCst);
        self.opened.notify_waiters();
    }
}

#[async_trait]
impl LogStore for GatedStore {
    async fn restore(&self) -> Result<RestoredState, Error> {
        self.inner.restore().await
    }
    async fn append(&self, entries: &[Entry]) -> Result<(), Error> {
        while self.held.load(Ordering::SeqCst) {
            let opened = self.opened.notified();
            if !self.held.load(Ordering::SeqCst) {
                break;
            }
            opened.await;
        }
        self.inner.append(entries).await
    }
    async fn truncate(&self, from: LogIndex) -> Result<(), Error> {
        self.inner.truncate(from).await
    }
    async fn read(&self, first: LogIndex, last: LogIndex) -> Result<Vec<Entry>, Error> {
        self.inner.read(first, last).await
    }
    async fn save_hard_state(&self, hard_state: HardState) -> Result<(), Error> {
        self.inner.save_hard_state(hard_state).await
    }
    async fn compact(&self, before: LogIndex) -> Result<(), Error> {
        self.inner.compact(before).await
    }
    async fn begin_snapshot(&self) -> Result<Box<dyn SnapshotWriter>, Error> {
        self.inner.begin_snapshot().await
    }
    async fn open_snapshot(&self) -> Result<Option<Arc<dyn SnapshotReader>>, Error> {
        self.inner.open_snapshot().await
    }
    fn durable(&self) -> watch::Receiver<LogId> {
        self.inner.durable()
    }
    fn byte_count(&self) -> u64 {
        self.inner.byte_count()
    }
    fn claim(&self) -> &StoreClaim {
        self.inner.claim()
    }
}

#[allow(clippy::unwrap_used)] // test setup
async fn single_node(max_queued_requests: usize) -> (Node, Arc<GatedStore>, MemLogStore) {
    let id = NodeId(1);
    let inner = MemLogStore::new();
    let store = Arc::new(GatedStore {
        inner: inner.clone(),
        held: AtomicBool::new(false),
        opened: Notify::new(),
    });
    let mut config = NodeConfig::default();
    config.max_queued_requests = max_queued_requests;
    let network = MemNetwork::new(1);
    let node = Node::start(
        id,
        [(id, "local")],
        config,
        store.clone(),
        MemKv::new().into_arc(),
        network.transport(id),
    )
    .await
    .unwrap();
    node.wait_for_leader(Duration::from_secs(10)).await.unwrap();
    for _ in 0..100 {
        if node.applied_index() >= LogIndex(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (node, store, inner)
}

#[tokio::test(start_paused = true)]
async fn full_queue_answers_overloaded_at_once_and_queued_proposals_share_one_append() {
    let (node, store, inner) = single_node(10).await;
    store.hold();
    // The first proposal stalls the loop inside the log append.
    let first = tokio::spawn({
        let node = node.clone();
        async move { node.append(vec![MemKv::put("first", "1")]).await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let calls_before = inner.append_calls();

    let queued: Vec<_> = (0..10)
        .map(|i| {
            let node = node.clone();
            tokio::spawn(async move { node.append(vec![MemKv::put(format!("q{i}"), "1")]).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;

    // Ten are queued: the eleventh is refused without waiting, as is a read.
    let refused = node.append(vec![MemKv::put("extra", "1")]).await;
    assert!(matches!(refused, Err(Error::Overloaded)), "{refused:?}");
    assert!(matches!(
        node.linearizable_read().await,
        Err(Error::Overloaded)
    ));

    store.release();
    first.await.unwrap().unwrap();
    let mut indexes = Vec::new();
    for handle in queued {
        indexes.push(handle.await.unwrap().unwrap().first.index);
    }
    indexes.sort();
    assert_eq!(indexes.len(), 10);
    assert!(
        indexes.windows(2).all(|w| w[1] == w[0].next()),
        "{indexes:?}"
    );
    // The stalled append, then the ten queued proposals as one.
    assert_eq!(inner.append_calls() - calls_before, 2);
    // With the queue drained, requests are accepted again.
    node.append(vec![MemKv::put("after", "1")]).await.unwrap();
    node.shutdown().await;
}

/// Reads that arrive while a read of theirs is queued join it: a crowd of them takes one place
/// in the queue and one engine read, and each still sees the write acknowledged before it.
#[tokio::test(start_paused = true)]
async fn reads_arriving_while_one_is_queued_join_it_instead_of_filling_the_queue() {
    let (node, store, _inner) = single_node(2).await;
    let written = node.append(vec![MemKv::put("k", "1")]).await.unwrap();
    store.hold();
    // A proposal stalls the loop inside the log append.
    let stalled = tokio::spawn({
        let node = node.clone();
        async move { node.append(vec![MemKv::put("k", "2")]).await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;

    let reads: Vec<_> = (0..50)
        .map(|_| {
            let node = node.clone();
            tokio::spawn(async move { node.linearizable_read().await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    // The 50 reads hold one of the queue's two places: one proposal still fits, a second not.
    let fits = tokio::spawn({
        let node = node.clone();
        async move { node.append(vec![MemKv::put("k", "3")]).await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let refused = node.append(vec![MemKv::put("k", "4")]).await;
    assert!(matches!(refused, Err(Error::Overloaded)), "{refused:?}");

    store.release();
    let stalled = stalled.await.unwrap().unwrap();
    let mut indexes = Vec::new();
    for read in reads {
        indexes.push(read.await.unwrap().unwrap());
    }
    fits.await.unwrap().unwrap();
    assert!(
        indexes.iter().all(|&index| index == indexes[0]),
        "one read index for the group: {indexes:?}"
    );
    // Registered after the stalled append (the loop took it first), the group's index covers
    // it, and every write acknowledged before the reads began.
    assert!(indexes[0] >= stalled.first.index && indexes[0] > written.first.index);
    assert!(node.applied_index() >= indexes[0]);
    node.shutdown().await;
}
