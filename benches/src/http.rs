//! The `http` workload: the `mem` workload's 3 nodes (in-memory log, no-op state machine), but
//! talking over loopback TCP through raft-http (HTTP/2, MessagePack), all in one process. What
//! it adds to `mem` is the cost of the transport: encoding, HTTP/2 framing and the network stack.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use raft_core::runtime::Node;
use raft_core::testing::MemLogStore;
use raft_core::{Error, NodeId};
use raft_http::{
    ClientConfig, ClusterAuth, HttpTransport, RaftService, Server, ServerConfig, ServiceConfig,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::Options;
use crate::mem::{Counters, CountingTransport, NoopStateMachine};
use crate::report::Report;

/// Runs the workload and measures it.
pub(crate) async fn run(options: &Options) -> Result<Report, Error> {
    let config = crate::mem::node_config(options);
    let auth = ClusterAuth::new("raft-bench")?.with_secret("bench-secret")?;
    let counters = Arc::new(Counters::default());
    let ids = [NodeId(1), NodeId(2), NodeId(3)];
    let mut listeners = Vec::new();
    let mut addresses = BTreeMap::new();
    for id in ids {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Error::Config(format!("cannot bind loopback: {e}")))?;
        let address = listener
            .local_addr()
            .map_err(|e| Error::Config(format!("no local address: {e}")))?;
        addresses.insert(id, address.to_string());
        listeners.push(listener);
    }

    let mut nodes = Vec::new();
    let mut stores = Vec::new();
    let mut servers = Vec::new();
    for (id, listener) in ids.into_iter().zip(listeners) {
        let mut client = ClientConfig::new(auth.clone());
        client.node = Some(id);
        let transport = Arc::new(CountingTransport {
            inner: Arc::new(HttpTransport::new(addresses.clone(), client)?),
            counters: counters.clone(),
        });
        let node = Node::start(
            id,
            addresses.clone(),
            config.clone(),
            {
                let store = MemLogStore::new().into_arc();
                stores.push(store.clone());
                store
            },
            Arc::new(NoopStateMachine),
            transport,
        )
        .await?;
        let mut service = ServiceConfig::new(auth.clone());
        service.node = Some(id);
        let service = RaftService::new(Arc::new(node.clone()), service);
        let server = Server::from_listener(listener, ServerConfig::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(service, async {
            let _ = stopped.await;
        }));
        servers.push((stop, task));
        nodes.push(node);
    }

    let leader = crate::mem::ready_leader(&nodes, &counters).await?;

    let (peak_log_bytes, sampler) = crate::mem::watch_log_bytes(stores);
    let report = crate::mem::drive_clients(options, &leader).await?;
    sampler.abort();
    let last_snapshot_index = nodes.iter().map(|n| n.status().snapshot_index.0).max();
    for node in &nodes {
        node.shutdown().await;
    }
    for (stop, task) in servers {
        let _ = stop.send(());
        let _ = task.await;
    }
    Ok(Report {
        nodes: nodes.len(),
        peak_log_bytes: Some(peak_log_bytes.load(Ordering::Relaxed)),
        last_snapshot_index,
        append_requests: counters.requests.load(Ordering::Relaxed),
        append_entries: counters.entries.load(Ordering::Relaxed),
        max_inflight: counters.max_inflight.load(Ordering::Relaxed),
        ..report
    })
}
