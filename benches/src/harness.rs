//! What the cluster workloads (`mem`, `http`, `durable`) share: the no-op state machine, the
//! node configuration built from the command line, a transport wrapper counting AppendEntries,
//! the wait for a ready leader, the sampler of log sizes and the closed-loop clients that drive
//! a run and time it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use raft_core::message::{
    AppendEntries, AppendEntriesResponse, InstallSnapshot, InstallSnapshotResponse, OpenStream,
    ReadIndex, ReadIndexResponse, RequestVote, RequestVoteResponse, TimeoutNow,
};
use raft_core::runtime::{Node, NodeConfig};
use raft_core::snapshot::BytesSource;
use raft_core::{
    Entry, EntryStream, Error, LogStore, NodeId, Pacing, Replication, SnapshotReader,
    SnapshotSource, StateMachine, Transport,
};

use crate::options::{Mode, Options, PacingArg, ReplicationArg};
use crate::report::Report;

/// A state machine that does nothing (the benchmark measures replication, not the application).
#[derive(Debug)]
pub(crate) struct NoopStateMachine;

#[async_trait]
impl StateMachine for NoopStateMachine {
    async fn commit(&self, entries: &[Entry]) -> Result<Vec<Bytes>, Error> {
        Ok(vec![Bytes::new(); entries.len()])
    }

    /// No state, so an empty snapshot.
    async fn snapshot(&self) -> Result<Box<dyn SnapshotSource>, Error> {
        Ok(Box::new(BytesSource::new(Bytes::new(), 1)))
    }

    async fn restore(&self, _snapshot: Arc<dyn SnapshotReader>) -> Result<(), Error> {
        Ok(())
    }
}

/// Samples the nodes' log sizes while a run goes on; keeps the peak.
pub(crate) fn watch_log_bytes(
    stores: Vec<Arc<dyn LogStore>>,
) -> (Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let peak = Arc::new(AtomicU64::new(0));
    let seen = peak.clone();
    let task = tokio::spawn(async move {
        loop {
            for store in &stores {
                seen.fetch_max(store.byte_count(), Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    (peak, task)
}

/// The node configuration every workload shares, from the command line.
pub(crate) fn node_config(options: &Options) -> NodeConfig {
    let mut config = NodeConfig::default();
    config.async_replication = options.mode == Mode::AsyncReplication;
    config.snapshot_log_bytes = options.snapshot_threshold;
    config.raft.pacing = match options.pacing {
        PacingArg::Eager => Pacing::Eager,
        PacingArg::Heartbeat => Pacing::Heartbeat,
    };
    config.raft.replication = match options.replication.unwrap_or(ReplicationArg::Pipelined) {
        ReplicationArg::Pipelined => Replication::Pipelined,
        ReplicationArg::Streaming => Replication::Streaming,
    };
    if let Some(inflight) = options.inflight {
        config.raft.max_inflight_requests = inflight;
    }
    if let Some(partial) = options.inflight_partial {
        config.raft.max_inflight_partial_requests = partial;
    }
    config
}

/// Counts AppendEntries with entries, the entries they carry and the requests in flight.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) entries: AtomicU64,
    pub(crate) inflight: AtomicU64,
    pub(crate) max_inflight: AtomicU64,
}

/// Wraps a transport, counting its AppendEntries in [`Counters`] (shared by the workloads).
pub(crate) struct CountingTransport {
    pub(crate) inner: Arc<dyn Transport>,
    pub(crate) counters: Arc<Counters>,
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

    async fn install_snapshot(
        &self,
        to: NodeId,
        request: InstallSnapshot,
    ) -> Result<InstallSnapshotResponse, Error> {
        self.inner.install_snapshot(to, request).await
    }

    /// Passed on: follower reads (`Node::follower_read`) ask the leader through it.
    async fn read_index(&self, to: NodeId, request: ReadIndex) -> Result<ReadIndexResponse, Error> {
        self.inner.read_index(to, request).await
    }

    /// Passed on (streamed batches are not counted: counting them would add a hop to the path
    /// measured).
    fn carries_streams(&self) -> bool {
        self.inner.carries_streams()
    }

    async fn open_stream(&self, to: NodeId, open: OpenStream) -> Result<EntryStream, Error> {
        self.inner.open_stream(to, open).await
    }

    /// Passed on: a wrapped transport that finds peers by address must hear of new members.
    fn update_peers(&self, addresses: &BTreeMap<NodeId, String>) {
        self.inner.update_peers(addresses);
    }
}

/// Waits for a leader whose no-op entry committed, then zeroes the counters so the warm-up is
/// not measured.
pub(crate) async fn ready_leader(nodes: &[Node], counters: &Counters) -> Result<Node, Error> {
    let Some(first) = nodes.first() else {
        return Err(Error::Config("no nodes".to_owned()));
    };
    let leader_id = first.wait_for_leader(Duration::from_secs(30)).await?;
    let Some(leader) = nodes.iter().find(|n| n.id() == leader_id).cloned() else {
        return Err(Error::Config("the leader is not a member".to_owned()));
    };
    leader.linearizable_read().await?;
    counters.requests.store(0, Ordering::Relaxed);
    counters.entries.store(0, Ordering::Relaxed);
    counters.max_inflight.store(0, Ordering::Relaxed);
    Ok(leader)
}

/// Operations a client claims at a time from the run's total.
const CLAIM_CHUNK: u64 = 64;

/// Runs `options.clients()` closed-loop clients against `leader`.
pub(crate) async fn drive_clients(options: &Options, leader: &Node) -> Result<Report, Error> {
    let payload = Bytes::from(vec![0xA5; options.payload()]);
    let issued = Arc::new(AtomicU64::new(0));
    let ops_limit = if options.secs.is_some() {
        u64::MAX
    } else {
        options.ops
    };
    let deadline = options.secs.map(Duration::from_secs_f64);
    #[allow(clippy::disallowed_methods)] // the benchmark's wall clock
    let started = std::time::Instant::now();
    let mut clients = Vec::new();
    for _ in 0..options.clients().max(1) {
        let (node, payload, issued) = (leader.clone(), payload.clone(), issued.clone());
        let mode = options.mode;
        clients.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            // One clock read per operation: the end of one is the start of the next (the
            // measurement's own cost is a visible share of a microsecond-scale operation).
            #[allow(clippy::disallowed_methods)] // the benchmark's wall clock
            let mut begun = std::time::Instant::now();
            // Operations are claimed from the shared count in chunks: one atomic add per
            // operation on a line all clients share costs a visible share of the run.
            let mut claimed = 0u64;
            loop {
                if claimed == 0 {
                    let first = issued.fetch_add(CLAIM_CHUNK, Ordering::Relaxed);
                    claimed = ops_limit.saturating_sub(first).min(CLAIM_CHUNK);
                }
                if claimed == 0 || deadline.is_some_and(|d| begun.duration_since(started) >= d) {
                    return Ok::<_, Error>(latencies);
                }
                claimed -= 1;
                let result = one_op(&node, mode, payload.clone()).await;
                #[allow(clippy::disallowed_methods)] // the benchmark's wall clock
                let ended = std::time::Instant::now();
                match result {
                    Ok(()) => {}
                    Err(Error::Overloaded) => {
                        tokio::task::yield_now().await;
                        #[allow(clippy::disallowed_methods)] // the benchmark's wall clock
                        let now = std::time::Instant::now();
                        begun = now;
                        continue;
                    }
                    Err(err) => return Err(err),
                }
                let micros = ended.duration_since(begun).as_micros();
                latencies.push(u32::try_from(micros).unwrap_or(u32::MAX));
                begun = ended;
            }
        }));
    }
    let mut latencies_us = Vec::new();
    // A client still waiting long after the deadline is a stuck operation: say where the
    // leader stands every 10 s, so a hang shows whether commit or apply stopped.
    let watchdog = deadline.map(|deadline| {
        let leader = leader.clone();
        tokio::spawn(async move {
            tokio::time::sleep(deadline + Duration::from_secs(20)).await;
            loop {
                eprintln!(
                    "raft-bench: clients still waiting; the leader: {:?}",
                    leader.status()
                );
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        })
    });
    for client in clients {
        let done = client
            .await
            .map_err(|err| Error::Fatal(format!("client task failed: {err}")))??;
        latencies_us.extend(done);
    }
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    Ok(Report {
        ops: latencies_us.len() as u64,
        elapsed: started.elapsed(),
        latencies_us,
        ..Report::default()
    })
}

async fn one_op(node: &Node, mode: Mode, payload: Bytes) -> Result<(), Error> {
    match mode {
        Mode::Blocking | Mode::AsyncReplication => node.append(vec![payload]).await.map(drop),
        Mode::AsyncHandler => node
            .append_async(vec![payload])
            .await?
            .result()
            .await
            .map(drop),
    }
}
