//! [`MemNetwork`]: an in-process network between nodes, with faults for tests.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use crate::error::Error;
use tokio::sync::mpsc;

use crate::message::{
    AppendEntries, AppendEntriesResponse, InstallSnapshot, InstallSnapshotResponse, OpenStream,
    ReadIndex, ReadIndexResponse, RequestVote, RequestVoteResponse, TimeoutNow,
};
use crate::runtime::Node;
use crate::transport::{EntryStream, ServiceHandler, Transport};
use crate::types::NodeId;

/// An in-process network: each node gets a [`Transport`] from it and registers its
/// [`ServiceHandler`] (its [`Node`]) with it. Requests are direct async calls, so the network
/// adds no copies or serialization. It carries entry streams (streaming replication) too.
///
/// Faults, changeable at any time: links cut one way or both ([`cut`](MemNetwork::cut),
/// [`isolate`](MemNetwork::isolate), [`partition`](MemNetwork::partition)); a probability of
/// dropping each request and each answer; a random delay each way. A refused or dropped call
/// fails at once with [`Error::Transport`]; an answer lost on the way back means the request
/// *was* handled. Randomness comes from the seed, but the order in which tokio runs tasks is
/// not deterministic, so only the fault settings repeat exactly, not whole runs (raft-sim is the
/// deterministic harness).
#[derive(Clone, Debug)]
pub struct MemNetwork {
    inner: Arc<Mutex<NetState>>,
}

struct NetState {
    handlers: HashMap<NodeId, Arc<dyn ServiceHandler>>,
    cut: HashSet<(NodeId, NodeId)>,
    isolated: HashSet<NodeId>,
    drop_probability: f64,
    delay_min: Duration,
    delay_max: Duration,
    rng: u64,
}

impl fmt::Debug for NetState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetState")
            .field("nodes", &self.handlers.keys().collect::<Vec<_>>())
            .field("cut", &self.cut)
            .field("isolated", &self.isolated)
            .field("drop_probability", &self.drop_probability)
            .finish_non_exhaustive()
    }
}

impl NetState {
    fn next_random(&mut self) -> u64 {
        // SplitMix64.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn link_up(&self, from: NodeId, to: NodeId) -> bool {
        !self.isolated.contains(&from)
            && !self.isolated.contains(&to)
            && !self.cut.contains(&(from, to))
    }

    /// Whether a message from `from` to `to` gets through this time.
    fn passes(&mut self, from: NodeId, to: NodeId) -> bool {
        if !self.link_up(from, to) {
            return false;
        }
        if self.drop_probability <= 0.0 {
            return true;
        }
        let roll = (self.next_random() >> 11) as f64 / (1u64 << 53) as f64;
        roll >= self.drop_probability
    }

    fn delay(&mut self) -> Duration {
        if self.delay_max <= self.delay_min {
            return self.delay_min;
        }
        let span = (self.delay_max - self.delay_min).as_micros() as u64;
        self.delay_min + Duration::from_micros(self.next_random() % (span + 1))
    }
}

impl MemNetwork {
    /// A network with no faults; `seed` drives drops and delays.
    #[must_use]
    pub fn new(seed: u64) -> MemNetwork {
        MemNetwork {
            inner: Arc::new(Mutex::new(NetState {
                handlers: HashMap::new(),
                cut: HashSet::new(),
                isolated: HashSet::new(),
                drop_probability: 0.0,
                delay_min: Duration::ZERO,
                delay_max: Duration::ZERO,
                rng: seed,
            })),
        }
    }

    /// The transport node `from` sends with.
    #[must_use]
    pub fn transport(&self, from: NodeId) -> Arc<dyn Transport> {
        Arc::new(MemTransport {
            from,
            network: self.clone(),
        })
    }

    /// Routes requests for `id` to `node` (replacing a previous registration, as after a
    /// restart). The network keeps a handle, so call [`unregister`](MemNetwork::unregister) to
    /// let the node go.
    pub fn register(&self, id: NodeId, node: &Node) {
        self.register_handler(id, Arc::new(node.clone()));
    }

    /// Routes requests for `id` to any handler (a fake one, in transport tests).
    pub fn register_handler(&self, id: NodeId, handler: Arc<dyn ServiceHandler>) {
        self.state().handlers.insert(id, handler);
    }

    /// Stops routing requests to `id`: they fail as if the node were down.
    pub fn unregister(&self, id: NodeId) {
        self.state().handlers.remove(&id);
    }

    /// Cuts the link from `from` to `to` (one way).
    pub fn cut(&self, from: NodeId, to: NodeId) {
        self.state().cut.insert((from, to));
    }

    /// Cuts every link of `id`, both ways.
    pub fn isolate(&self, id: NodeId) {
        self.state().isolated.insert(id);
    }

    /// Cuts every link between nodes of different groups, both ways.
    pub fn partition(&self, groups: &[&[NodeId]]) {
        let mut state = self.state();
        for (i, group) in groups.iter().enumerate() {
            for other in groups.iter().skip(i + 1) {
                for &a in group.iter() {
                    for &b in other.iter() {
                        state.cut.insert((a, b));
                        state.cut.insert((b, a));
                    }
                }
            }
        }
    }

    /// Restores every link (drops and delays stay as set).
    pub fn heal(&self) {
        let mut state = self.state();
        state.cut.clear();
        state.isolated.clear();
    }

    /// Drops each request and each answer with this probability (0 to 1).
    pub fn set_drop_probability(&self, probability: f64) {
        self.state().drop_probability = probability.clamp(0.0, 1.0);
    }

    /// Delays each request and each answer by a random time in `min..=max`.
    pub fn set_delay(&self, min: Duration, max: Duration) {
        let mut state = self.state();
        state.delay_min = min;
        state.delay_max = max.max(min);
    }

    fn state(&self) -> MutexGuard<'_, NetState> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn deliver<T, F, Fut>(&self, from: NodeId, to: NodeId, call: F) -> Result<T, Error>
    where
        F: FnOnce(Arc<dyn ServiceHandler>) -> Fut + Send,
        Fut: Future<Output = Result<T, Error>> + Send,
    {
        let (handler, delay) = {
            let mut state = self.state();
            if !state.passes(from, to) {
                return Err(Error::transport(
                    to,
                    "unreachable (link cut or request dropped)",
                ));
            }
            let Some(handler) = state.handlers.get(&to).cloned() else {
                return Err(Error::transport(
                    to,
                    "connection refused (node not running)",
                ));
            };
            (handler, state.delay())
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let answer = call(handler).await;
        let delay = {
            let mut state = self.state();
            if !state.passes(to, from) {
                return Err(Error::transport(to, "answer lost (link cut or dropped)"));
            }
            state.delay()
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        answer
    }
}

/// One node's side of a [`MemNetwork`].
#[derive(Debug)]
struct MemTransport {
    from: NodeId,
    network: MemNetwork,
}

#[async_trait]
impl Transport for MemTransport {
    async fn append_entries(
        &self,
        to: NodeId,
        request: AppendEntries,
    ) -> Result<AppendEntriesResponse, Error> {
        let call =
            |handler: Arc<dyn ServiceHandler>| async move { handler.append_entries(request).await };
        self.network.deliver(self.from, to, call).await
    }

    async fn request_vote(
        &self,
        to: NodeId,
        request: RequestVote,
    ) -> Result<RequestVoteResponse, Error> {
        let call =
            |handler: Arc<dyn ServiceHandler>| async move { handler.request_vote(request).await };
        self.network.deliver(self.from, to, call).await
    }

    async fn timeout_now(&self, to: NodeId, request: TimeoutNow) -> Result<(), Error> {
        let call =
            |handler: Arc<dyn ServiceHandler>| async move { handler.timeout_now(request).await };
        self.network.deliver(self.from, to, call).await
    }

    async fn read_index(&self, to: NodeId, request: ReadIndex) -> Result<ReadIndexResponse, Error> {
        let call =
            |handler: Arc<dyn ServiceHandler>| async move { handler.read_index(request).await };
        self.network.deliver(self.from, to, call).await
    }

    async fn install_snapshot(
        &self,
        to: NodeId,
        request: InstallSnapshot,
    ) -> Result<InstallSnapshotResponse, Error> {
        let call = |handler: Arc<dyn ServiceHandler>| async move {
            handler.install_snapshot(request).await
        };
        self.network.deliver(self.from, to, call).await
    }

    fn carries_streams(&self) -> bool {
        true
    }

    async fn open_stream(&self, to: NodeId, open: OpenStream) -> Result<EntryStream, Error> {
        let (acks, acks_in) = mpsc::unbounded_channel();
        let (acks_out, leader_acks) = mpsc::unbounded_channel();
        let call = |handler: Arc<dyn ServiceHandler>| async move {
            handler.open_stream(open, leader_acks).await
        };
        let sink = self.network.deliver(self.from, to, call).await?;
        let (entries_out, entries) = mpsc::unbounded_channel();
        let link = StreamLink {
            network: self.network.clone(),
            leader: to,
            follower: self.from,
        };
        tokio::spawn(link.pump(sink.entries, entries_out, acks_in, acks_out));
        Ok(EntryStream { entries, acks })
    }
}

/// The link under one entry stream: carries batches to the follower and answers back, each
/// subject to the network's faults; a cut link or a dropped message ends the stream (both
/// ends see their channels close), as a broken connection would.
struct StreamLink {
    network: MemNetwork,
    leader: NodeId,
    follower: NodeId,
}

impl StreamLink {
    async fn pump(
        self,
        mut from_leader: mpsc::UnboundedReceiver<AppendEntries>,
        to_follower: mpsc::UnboundedSender<AppendEntries>,
        mut from_follower: mpsc::UnboundedReceiver<AppendEntriesResponse>,
        to_leader: mpsc::UnboundedSender<AppendEntriesResponse>,
    ) {
        loop {
            tokio::select! {
                batch = from_leader.recv() => {
                    let Some(batch) = batch else { return };
                    if !self.pass(self.leader, self.follower).await || to_follower.send(batch).is_err() {
                        return;
                    }
                }
                answer = from_follower.recv() => {
                    let Some(answer) = answer else { return };
                    if !self.pass(self.follower, self.leader).await || to_leader.send(answer).is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// Whether a message from `from` to `to` gets through (after the network's delay).
    async fn pass(&self, from: NodeId, to: NodeId) -> bool {
        let delay = {
            let mut state = self.network.state();
            if !state.passes(from, to) {
                return false;
            }
            state.delay()
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        true
    }
}
