//! Callers woken together share one round of the event loop: one log append for all of them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use raft_core::runtime::{Node, NodeConfig};
use raft_core::testing::{MemKv, MemLogStore, MemNetwork};
use raft_core::{LogIndex, NodeId};

/// One worker thread: tokio runs a task woken from a worker next (its LIFO slot), the case
/// where the event loop used to take a round with only the first of the callers in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn callers_woken_together_share_one_log_append() {
    let network = MemNetwork::new(7);
    let id = NodeId(1);
    let store = MemLogStore::new();
    let node = Node::start(
        id,
        [(id, "local")],
        NodeConfig::default(),
        store.clone().into_arc(),
        MemKv::new().into_arc(),
        network.transport(id),
    )
    .await
    .unwrap();
    network.register(id, &node);
    node.wait_for_leader(Duration::from_secs(10)).await.unwrap();
    while node.applied_index() < LogIndex(1) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // 64 callers wait behind one gate; a task on the worker opens it, so all of them become
    // runnable on that worker at once.
    let (open, gate) = tokio::sync::watch::channel(false);
    let callers: Vec<_> = (0..64)
        .map(|i| {
            let (node, mut gate) = (node.clone(), gate.clone());
            tokio::spawn(async move {
                gate.wait_for(|open| *open).await.unwrap();
                node.append(vec![MemKv::put(format!("k{i}"), "v")]).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = store.append_calls();
    tokio::spawn(async move { open.send(true).unwrap() })
        .await
        .unwrap();
    for caller in callers {
        caller.await.unwrap().unwrap();
    }
    let appends = store.append_calls() - before;
    // One round for all of them (a tick or a durability report may split it once or twice);
    // taking each caller as it queued made 64.
    assert!(
        appends <= 4,
        "{appends} log appends for 64 callers woken together"
    );
    node.shutdown().await;
}
