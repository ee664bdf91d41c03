//! The `mem` workload: 3 nodes in one process with the in-memory log, the in-process network
//! and a no-op state machine, so what is measured is the consensus and the runtime.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use raft_core::runtime::{Node, NodeConfig};
use raft_core::testing::{MemLogStore, MemNetwork};
use raft_core::{Error, LogStore, NodeId, StateMachine};

use crate::harness::{
    Counters, CountingTransport, NoopStateMachine, drive_clients, node_config, ready_leader,
    watch_log_bytes,
};
use crate::options::Options;
use crate::report::Report;

/// Runs the workload and measures it.
pub(crate) async fn run(options: &Options) -> Result<Report, Error> {
    let counters = Arc::new(Counters::default());
    let (nodes, stores) = start_nodes(&node_config(options), &counters, |_| {
        Arc::new(NoopStateMachine)
    })
    .await?;
    let leader = ready_leader(&nodes, &counters).await?;

    let (peak_log_bytes, sampler) = watch_log_bytes(stores);
    let report = drive_clients(options, &leader).await?;
    sampler.abort();
    let snapshots = nodes.iter().map(|n| n.status().snapshot_index).max();
    for node in &nodes {
        node.shutdown().await;
    }
    Ok(Report {
        nodes: nodes.len(),
        peak_log_bytes: Some(peak_log_bytes.load(Ordering::Relaxed)),
        last_snapshot_index: snapshots.map(|index| index.0),
        append_requests: counters.requests.load(Ordering::Relaxed),
        append_entries: counters.entries.load(Ordering::Relaxed),
        max_inflight: counters.max_inflight.load(Ordering::Relaxed),
        ..report
    })
}

/// Starts nodes 1, 2, 3 on in-memory logs and one in-process network, with `config`, each
/// applying to the state machine `state_for` gives it; their transports count AppendEntries in
/// `counters`. Returns the nodes (in id order) and their logs, before a leader is elected.
pub(crate) async fn start_nodes(
    config: &NodeConfig,
    counters: &Arc<Counters>,
    state_for: impl Fn(NodeId) -> Arc<dyn StateMachine>,
) -> Result<(Vec<Node>, Vec<Arc<dyn LogStore>>), Error> {
    let network = MemNetwork::new(1);
    let ids = [NodeId(1), NodeId(2), NodeId(3)];
    let members = ids.map(|id| (id, format!("mem://{id}")));
    let mut nodes = Vec::new();
    let mut stores = Vec::new();
    for id in ids {
        let transport = Arc::new(CountingTransport {
            inner: network.transport(id),
            counters: counters.clone(),
        });
        let store = MemLogStore::new().into_arc();
        stores.push(store.clone());
        let node = Node::start(
            id,
            members.clone(),
            config.clone(),
            store,
            state_for(id),
            transport,
        )
        .await?;
        network.register(id, &node);
        nodes.push(node);
    }
    Ok((nodes, stores))
}
