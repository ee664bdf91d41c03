//! The `http` workload: the `mem` workload's 3 nodes (in-memory log, no-op state machine), but
//! talking over loopback TCP through raft-http (HTTP/2, MessagePack), all in one process. What
//! it adds to `mem` is the cost of the transport: encoding, HTTP/2 framing and the network stack.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use raft_core::message::{
    AppendEntries, AppendEntriesResponse, RequestVote, RequestVoteResponse, TimeoutNow,
};
use raft_core::runtime::{Node, NodeConfig};
use raft_core::testing::MemLogStore;
use raft_core::{Entry, Error, NodeId, Pacing, StateMachine, Transport};
use raft_http::{
    ClientConfig, ClusterAuth, HttpTransport, RaftService, Server, ServerConfig, ServiceConfig,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::report::Report;
use crate::{Mode, Options, PacingArg};

/// A state machine that does nothing (the benchmark measures replication, not the application).
#[derive(Debug)]
struct NoopStateMachine;

#[async_trait]
impl StateMachine for NoopStateMachine {
    async fn commit(&self, entries: &[Entry]) -> Result<Vec<Bytes>, Error> {
        Ok(vec![Bytes::new(); entries.len()])
    }
}

/// Counts AppendEntries with entries, the entries they carry and the requests in flight.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    entries: AtomicU64,
    inflight: AtomicU64,
    max_inflight: AtomicU64,
}

struct CountingTransport {
    inner: Arc<HttpTransport>,
    counters: Arc<Counters>,
}

#[async_trait]
impl Transport for CountingTransport {
    async fn append_entries(
        &self,
        to: NodeId,
        request: AppendEntries,
    ) -> Result<AppendEntriesResponse, Error> {
        let counters = &self.counters;
        if !request.entries.is_empty() {
            counters.requests.fetch_add(1, Ordering::Relaxed);
            counters
                .entries
                .fetch_add(request.entries.len() as u64, Ordering::Relaxed);
        }
        let now = counters.inflight.fetch_add(1, Ordering::Relaxed) + 1;
        counters.max_inflight.fetch_max(now, Ordering::Relaxed);
        let result = self.inner.append_entries(to, request).await;
        counters.inflight.fetch_sub(1, Ordering::Relaxed);
        result
    }

    async fn request_vote(
        &self,
        to: NodeId,
        request: RequestVote,
    ) -> Result<RequestVoteResponse, Error> {
        self.inner.request_vote(to, request).await
    }

    async fn timeout_now(&self, to: NodeId, request: TimeoutNow) -> Result<(), Error> {
        self.inner.timeout_now(to, request).await
    }
}

/// Runs the workload and measures it.
pub(crate) async fn run(options: &Options) -> Result<Report, Error> {
    let mut config = NodeConfig {
        async_replication: options.mode == Mode::AsyncReplication,
        ..NodeConfig::default()
    };
    config.raft.pacing = match options.pacing {
        PacingArg::Eager => Pacing::Eager,
        PacingArg::Heartbeat => Pacing::Heartbeat,
    };
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
            MemLogStore::new().into_arc(),
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

    let leader_id = nodes[0].wait_for_leader(Duration::from_secs(30)).await?;
    let Some(leader) = nodes.iter().find(|n| n.id() == leader_id).cloned() else {
        return Err(Error::Config("the leader is not a member".to_owned()));
    };
    // Let the leader's no-op commit before measuring.
    leader.linearizable_read().await?;
    counters.requests.store(0, Ordering::Relaxed);
    counters.entries.store(0, Ordering::Relaxed);
    counters.max_inflight.store(0, Ordering::Relaxed);

    let report = crate::mem::drive_clients(options, &leader).await?;
    for node in &nodes {
        node.shutdown().await;
    }
    for (stop, task) in servers {
        let _ = stop.send(());
        let _ = task.await;
    }
    Ok(Report {
        nodes: nodes.len(),
        append_requests: counters.requests.load(Ordering::Relaxed),
        append_entries: counters.entries.load(Ordering::Relaxed),
        max_inflight: counters.max_inflight.load(Ordering::Relaxed),
        ..report
    })
}
