//! How long followers go without hearing from their leader, measured where its messages
//! arrive (the `http` and `durable` workloads): [`GapClock`] sits between a node's server and
//! the node and records each AppendEntries request, and [`GapTransport`] records each batch
//! arriving on the node's entry stream; every arrival records the time since the node's
//! previous one.
//!
//! Each of these resets a follower's election timer. With pipelined replication every batch
//! is a request, and heartbeats go only when no batch went for a heartbeat interval, so a
//! heartbeat or batch stuck behind megabytes on the connection is a long gap. With streaming
//! replication batches come on the stream and heartbeats as requests on their own timer. The
//! p99 (and the largest) of these gaps under a bulk load (`--payload 65536`, say) is the
//! heartbeat delay the two modes are compared on.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use raft_core::message::{
    AppendEntries, AppendEntriesResponse, InstallSnapshot, InstallSnapshotResponse, OpenStream,
    ReadIndex, ReadIndexResponse, RequestVote, RequestVoteResponse, TimeoutNow,
};
use raft_core::{EntryStream, Error, NodeId, ServiceHandler, StreamSink, Transport};
use tokio::sync::mpsc;

/// The gaps seen by every node of a cluster, in microseconds.
#[derive(Debug, Default)]
pub(crate) struct Gaps {
    state: Mutex<GapState>,
}

#[derive(Debug, Default)]
struct GapState {
    /// Per node (by position), the last request's arrival.
    last: Vec<Option<std::time::Instant>>,
    gaps_us: Vec<u32>,
}

impl Gaps {
    /// Forgets what was recorded (the warm-up's gaps), keeping nothing of the last arrivals.
    pub(crate) fn reset(&self) {
        let mut state = self.lock();
        state.gaps_us.clear();
        state.last.iter_mut().for_each(|last| *last = None);
    }

    /// The gaps recorded since the last reset.
    pub(crate) fn take(&self) -> Vec<u32> {
        std::mem::take(&mut self.lock().gaps_us)
    }

    fn arrived(&self, node: usize) {
        #[allow(clippy::disallowed_methods)] // the benchmark's wall clock
        let now = std::time::Instant::now();
        let mut state = self.lock();
        if state.last.len() <= node {
            state.last.resize(node + 1, None);
        }
        let previous = state.last.get_mut(node).and_then(|last| last.replace(now));
        if let Some(previous) = previous {
            let gap = u32::try_from(now.duration_since(previous).as_micros()).unwrap_or(u32::MAX);
            state.gaps_us.push(gap);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GapState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A node's handler that records each AppendEntries request's arrival in [`Gaps`].
pub(crate) struct GapClock {
    pub(crate) inner: Arc<dyn ServiceHandler>,
    pub(crate) gaps: Arc<Gaps>,
    /// The node's position in the gap table.
    pub(crate) node: usize,
}

#[async_trait]
impl ServiceHandler for GapClock {
    async fn append_entries(&self, request: AppendEntries) -> Result<AppendEntriesResponse, Error> {
        self.gaps.arrived(self.node);
        self.inner.append_entries(request).await
    }

    async fn request_vote(&self, request: RequestVote) -> Result<RequestVoteResponse, Error> {
        self.inner.request_vote(request).await
    }

    async fn timeout_now(&self, request: TimeoutNow) -> Result<(), Error> {
        self.inner.timeout_now(request).await
    }

    async fn install_snapshot(
        &self,
        request: InstallSnapshot,
    ) -> Result<InstallSnapshotResponse, Error> {
        self.inner.install_snapshot(request).await
    }

    async fn open_stream(
        &self,
        open: OpenStream,
        acks: mpsc::UnboundedReceiver<AppendEntriesResponse>,
    ) -> Result<StreamSink, Error> {
        self.inner.open_stream(open, acks).await
    }

    async fn read_index(&self, request: ReadIndex) -> Result<ReadIndexResponse, Error> {
        self.inner.read_index(request).await
    }
}

/// A node's transport that records each batch arriving on its entry streams in [`Gaps`] (one
/// relay task per stream: a hop per batch, not per entry).
pub(crate) struct GapTransport {
    pub(crate) inner: Arc<dyn Transport>,
    pub(crate) gaps: Arc<Gaps>,
    /// The node's position in the gap table.
    pub(crate) node: usize,
}

#[async_trait]
impl Transport for GapTransport {
    async fn append_entries(
        &self,
        to: NodeId,
        request: AppendEntries,
    ) -> Result<AppendEntriesResponse, Error> {
        self.inner.append_entries(to, request).await
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

    async fn read_index(&self, to: NodeId, request: ReadIndex) -> Result<ReadIndexResponse, Error> {
        self.inner.read_index(to, request).await
    }

    fn carries_streams(&self) -> bool {
        self.inner.carries_streams()
    }

    async fn open_stream(&self, to: NodeId, open: OpenStream) -> Result<EntryStream, Error> {
        let EntryStream { mut entries, acks } = self.inner.open_stream(to, open).await?;
        let (relayed, received) = mpsc::unbounded_channel();
        let (gaps, node) = (self.gaps.clone(), self.node);
        tokio::spawn(async move {
            while let Some(batch) = entries.recv().await {
                gaps.arrived(node);
                if relayed.send(batch).is_err() {
                    return;
                }
            }
        });
        Ok(EntryStream {
            entries: received,
            acks,
        })
    }

    fn update_peers(&self, addresses: &BTreeMap<NodeId, String>) {
        self.inner.update_peers(addresses);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_measured_per_node_and_reset_forgets_the_last_arrival() {
        let gaps = Gaps::default();
        gaps.arrived(0);
        gaps.arrived(1);
        assert!(gaps.take().is_empty(), "a first arrival has no gap");
        gaps.arrived(0);
        assert_eq!(gaps.take().len(), 1);
        gaps.reset();
        gaps.arrived(1);
        assert!(gaps.take().is_empty(), "no gap across a reset");
    }
}
