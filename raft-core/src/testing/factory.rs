//! [`NodeFactory`]: what a [`Cluster`](super::Cluster) builds each node from, and [`MemNodes`],
//! the in-memory default.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use super::{MemKv, MemLogStore, MemNetwork};
use crate::error::{BoxError, Error};
use crate::runtime::{Node, NodeConfig};
use crate::state_machine::StateMachine;
use crate::storage::LogStore;
use crate::transport::Transport;
use crate::types::NodeId;

/// A fast configuration for tests: 300 ms election timeout and request timeout, 30 ms
/// heartbeats; everything else is [`NodeConfig::default`].
#[must_use]
pub fn test_config() -> NodeConfig {
    let mut config = NodeConfig::default();
    config.raft.election_timeout_ms = 300;
    config.raft.heartbeat_interval_ms = 30;
    config.raft.request_timeout_ms = 300;
    config
}

/// How a [`Cluster`](super::Cluster) makes one node: its log store, its state machine, its
/// transport, and how it starts and stops. [`MemNodes`] is the in-memory default; a crate
/// implements this for its own parts (a file log, a state machine behind client sessions, an
/// HTTP transport with a server per node).
///
/// The cluster always registers a started node with its [`MemNetwork`] and unregisters it when
/// it stops; a factory with a transport of its own simply leaves that network unused.
#[async_trait]
pub trait NodeFactory: Send + Sync + 'static {
    /// The configuration every node starts with ([`NodeConfig`] for a plain node).
    type Config: Clone + Send + Sync + 'static;
    /// The log store, as tests see it. The cluster keeps each node's store in
    /// [`Cluster::stores`](super::Cluster::stores) between a stop and the next start.
    type Store: LogStore + Clone;
    /// The state machine, as tests see it; a fresh one at every start, kept in
    /// [`Cluster::state_machines`](super::Cluster::state_machines).
    type StateMachine: StateMachine + Clone;
    /// What tests drive a node through besides its [`Node`] (a client-session replica, say);
    /// `()` when the node is all there is.
    type Handle: Clone + Send + Sync + 'static;

    /// The seed of the cluster's [`MemNetwork`] (its drops and delays).
    fn network_seed(&self) -> u64 {
        42
    }

    /// Node `id`'s address in every node's member list (where clients are redirected).
    fn address(&self, id: NodeId) -> String {
        format!("mem://node-{id}")
    }

    /// The log store `id` starts on. `kept` is the store of its previous start (or the one a
    /// test put in `Cluster::stores`), `None` at the first start: an in-memory store returns it,
    /// a file store drops it and reopens its files.
    ///
    /// # Errors
    /// Whatever keeps the store from opening; the cluster panics with it.
    async fn store(&self, id: NodeId, kept: Option<Self::Store>) -> Result<Self::Store, BoxError>;

    /// A fresh, empty state machine for `id`.
    fn state_machine(&self, id: NodeId) -> Self::StateMachine;

    /// The transport `id` sends with; by default the cluster's in-process network.
    fn transport(&self, id: NodeId, network: &MemNetwork) -> Arc<dyn Transport> {
        network.transport(id)
    }

    /// Starts a node from its parts (and whatever runs beside it, such as a server).
    ///
    /// # Errors
    /// Whatever keeps the node from starting; the cluster panics with it.
    async fn start(&self, parts: Parts<Self::Config>) -> Result<(Node, Self::Handle), BoxError>;

    /// Stops a node this factory started; `store` is the log store it ran on. By default shuts
    /// the node down.
    async fn stop(&self, id: NodeId, node: Node, handle: Self::Handle, store: &Self::Store) {
        let _ = (id, handle, store);
        node.shutdown().await;
    }
}

/// Everything one node starts with: the arguments of [`Node::start`].
pub struct Parts<C> {
    /// The node's id.
    pub id: NodeId,
    /// Every member (this node included) and its address.
    pub members: Vec<(NodeId, String)>,
    /// The configuration.
    pub config: C,
    /// The log store.
    pub log: Arc<dyn LogStore>,
    /// The state machine (empty).
    pub state_machine: Arc<dyn StateMachine>,
    /// The transport.
    pub transport: Arc<dyn Transport>,
    /// Whether the node joins an existing cluster ([`Node::start_joining`]; `members` then
    /// holds only itself).
    pub joining: bool,
}

impl<C> fmt::Debug for Parts<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parts")
            .field("id", &self.id)
            .field("members", &self.members)
            .finish_non_exhaustive()
    }
}

impl Parts<NodeConfig> {
    /// Starts a plain [`Node`] on these parts.
    ///
    /// # Errors
    /// As [`Node::start`].
    pub async fn start_node(self) -> Result<Node, Error> {
        if self.joining {
            let address = self
                .members
                .iter()
                .find(|(id, _)| *id == self.id)
                .map(|(_, address)| address.clone())
                .unwrap_or_default();
            return Node::start_joining(
                self.id,
                address,
                self.config,
                self.log,
                self.state_machine,
                self.transport,
            )
            .await;
        }
        Node::start(
            self.id,
            self.members,
            self.config,
            self.log,
            self.state_machine,
            self.transport,
        )
        .await
    }
}

/// The default [`NodeFactory`]: plain [`Node`]s on a [`MemLogStore`] (kept across restarts)
/// and a fresh [`MemKv`], talking over the cluster's [`MemNetwork`].
#[derive(Clone, Copy, Debug, Default)]
pub struct MemNodes;

#[async_trait]
impl NodeFactory for MemNodes {
    type Config = NodeConfig;
    type Store = MemLogStore;
    type StateMachine = MemKv;
    type Handle = ();

    async fn store(&self, _id: NodeId, kept: Option<MemLogStore>) -> Result<MemLogStore, BoxError> {
        Ok(kept.unwrap_or_default())
    }

    fn state_machine(&self, _id: NodeId) -> MemKv {
        MemKv::new()
    }

    async fn start(&self, parts: Parts<NodeConfig>) -> Result<(Node, ()), BoxError> {
        Ok((parts.start_node().await?, ()))
    }
}
