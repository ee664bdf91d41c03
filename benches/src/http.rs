//! The `http` workload: the `mem` workload's 3 nodes (in-memory log, no-op state machine), but
//! talking over loopback TCP through raft-http (HTTP/2, MessagePack), all in one process. What
//! it adds to `mem` is the cost of the transport: encoding, HTTP/2 framing and the network stack.
//!
//! The `durable` workload is the same cluster with raft-storage-fs logs (one directory per node,
//! group commit, `fdatasync`): what a raft-kv deployment pays, minus its state machine.
//!
//! With `--tls` both run with mutual TLS between the nodes (see [`crate::tls`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use raft_core::runtime::{Node, NodeConfig};
use raft_core::testing::MemLogStore;
use raft_core::{Error, LogStore, NodeId, StateMachine};
use raft_http::{
    ClientConfig, ClusterAuth, HttpTransport, RaftService, Server, ServerConfig, ServiceConfig,
};
use raft_storage_fs::{FsLogStore, FsOptions};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::gaps::{GapClock, GapTransport, Gaps};
use crate::harness::{
    Counters, CountingTransport, NoopStateMachine, drive_clients, node_config, ready_leader,
    watch_log_bytes,
};
use crate::options::Options;
use crate::report::{Report, StorageFigures};
use crate::tls::BenchPki;

/// Runs the `http` workload (in-memory logs) and measures it.
pub(crate) async fn run(options: &Options) -> Result<Report, Error> {
    let stores = (0..3)
        .map(|_| MemLogStore::new().into_arc())
        .collect::<Vec<_>>();
    run_cluster(options, stores).await
}

/// Runs the `durable` workload (file logs with fsync, in a temporary directory under
/// `--dir`) and measures it, with the leader's fsync figures.
pub(crate) async fn run_durable(options: &Options) -> Result<Report, Error> {
    let dir = match &options.dir {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .map_err(|e| Error::Config(format!("cannot create a data directory: {e}")))?;
    let mut files = Vec::new();
    for id in 1..=3u64 {
        let path = dir.path().join(format!("node-{id}"));
        let options = FsOptions::default().node(NodeId(id));
        let store = tokio::task::spawn_blocking(move || FsLogStore::open(path, options))
            .await
            .map_err(|e| Error::Config(e.to_string()))?
            .map_err(Error::storage)?;
        files.push(store);
    }
    let before: Vec<_> = files.iter().map(FsLogStore::stats).collect();
    let stores = files
        .iter()
        .map(|store| Arc::new(store.clone()) as Arc<dyn LogStore>)
        .collect();
    let (report, leader) = run_cluster_with_leader(options, stores).await?;
    let index = usize::try_from(leader.0.saturating_sub(1)).unwrap_or(0);
    let storage = files
        .get(index)
        .zip(before.get(index))
        .map(|(store, before)| {
            let after = store.stats();
            StorageFigures {
                fsyncs: after.fsyncs - before.fsyncs,
                entries: after.entries_written - before.entries_written,
            }
        });
    for store in &files {
        store.close().await;
    }
    Ok(Report { storage, ..report })
}

async fn run_cluster(options: &Options, stores: Vec<Arc<dyn LogStore>>) -> Result<Report, Error> {
    Ok(run_cluster_with_leader(options, stores).await?.0)
}

/// 3 nodes over loopback HTTP on `stores`; the report and the leader's id.
async fn run_cluster_with_leader(
    options: &Options,
    stores: Vec<Arc<dyn LogStore>>,
) -> Result<(Report, NodeId), Error> {
    let counters = Arc::new(Counters::default());
    let cluster = HttpNodes::start(options, &node_config(options), &stores, &counters, |_| {
        Arc::new(NoopStateMachine)
    })
    .await?;
    let nodes = cluster.nodes.clone();
    let leader = ready_leader(&nodes, &counters).await?;

    let (peak_log_bytes, sampler) = watch_log_bytes(stores);
    cluster.gaps.reset();
    let report = drive_clients(options, &leader).await?;
    let request_gaps_us = cluster.gaps.take();
    sampler.abort();
    let last_snapshot_index = nodes.iter().map(|n| n.status().snapshot_index.0).max();
    cluster.shutdown().await;
    let report = Report {
        nodes: nodes.len(),
        peak_log_bytes: Some(peak_log_bytes.load(Ordering::Relaxed)),
        last_snapshot_index,
        append_requests: counters.requests.load(Ordering::Relaxed),
        append_entries: counters.entries.load(Ordering::Relaxed),
        max_inflight: counters.max_inflight.load(Ordering::Relaxed),
        request_gaps_us,
        ..report
    };
    Ok((report, leader.id()))
}

/// Nodes 1, 2, 3 talking over loopback raft-http (with `--tls`, mutual TLS), each serving its
/// peers on its own port; shared by the `http`, `durable` and `reads --transport http`
/// workloads.
#[derive(Debug)]
pub(crate) struct HttpNodes {
    /// The running nodes, in id order.
    pub(crate) nodes: Vec<Node>,
    /// Each server's stop signal and task.
    servers: Vec<(oneshot::Sender<()>, JoinHandle<()>)>,
    /// The certificates' directory, removed when the nodes are dropped.
    _pki: Option<BenchPki>,
    /// The gaps between AppendEntries requests each node received.
    pub(crate) gaps: Arc<Gaps>,
}

impl HttpNodes {
    /// Starts the nodes on `stores` (one each, in id order) with `config`, each applying to
    /// the state machine `state_for` gives it; their transports count AppendEntries in
    /// `counters`. Returns before a leader is elected.
    pub(crate) async fn start(
        options: &Options,
        config: &NodeConfig,
        stores: &[Arc<dyn LogStore>],
        counters: &Arc<Counters>,
        state_for: impl Fn(NodeId) -> Arc<dyn StateMachine>,
    ) -> Result<HttpNodes, Error> {
        let cluster_id = "raft-bench";
        let auth = ClusterAuth::new(cluster_id)?.with_secret("bench-secret")?;
        let ids = [NodeId(1), NodeId(2), NodeId(3)];
        let pki = if options.tls {
            Some(BenchPki::new(cluster_id, &ids)?)
        } else {
            None
        };
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
        let mut servers = Vec::new();
        let gaps = Arc::new(Gaps::default());
        for ((id, listener), store) in ids.into_iter().zip(listeners).zip(stores.iter().cloned()) {
            let tls = pki
                .as_ref()
                .map(|pki| pki.node(cluster_id, id))
                .transpose()?;
            let mut client = ClientConfig::new(auth.clone());
            client.node = Some(id);
            client.tls = tls.as_ref().map(|tls| tls.client.clone());
            let mut transport: Arc<dyn raft_core::Transport> = Arc::new(CountingTransport {
                inner: Arc::new(HttpTransport::new(addresses.clone(), client)?),
                counters: counters.clone(),
            });
            if options.gaps {
                transport = Arc::new(GapTransport {
                    inner: transport,
                    gaps: gaps.clone(),
                    node: nodes.len(),
                });
            }
            let node = Node::start(
                id,
                addresses.clone(),
                config.clone(),
                store,
                state_for(id),
                transport,
            )
            .await?;
            let mut service = ServiceConfig::new(auth.clone());
            service.node = Some(id);
            service.require_peer_certificate = tls.is_some();
            let mut handler: Arc<dyn raft_core::ServiceHandler> = Arc::new(node.clone());
            if options.gaps {
                handler = Arc::new(GapClock {
                    inner: handler,
                    gaps: gaps.clone(),
                    node: nodes.len(),
                });
            }
            let service = RaftService::new(handler, service);
            let mut server_config = ServerConfig::default();
            server_config.tls = tls.map(|tls| tls.server);
            let server = Server::from_listener(listener, server_config);
            let (stop, stopped) = oneshot::channel::<()>();
            let task = tokio::spawn(server.serve(service, async {
                let _ = stopped.await;
            }));
            servers.push((stop, task));
            nodes.push(node);
        }
        Ok(HttpNodes {
            nodes,
            servers,
            _pki: pki,
            gaps,
        })
    }

    /// Stops the nodes, then their servers.
    pub(crate) async fn shutdown(self) {
        for node in &self.nodes {
            node.shutdown().await;
        }
        for (stop, task) in self.servers {
            let _ = stop.send(());
            let _ = task.await;
        }
    }
}
