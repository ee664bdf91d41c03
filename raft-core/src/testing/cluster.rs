//! [`Cluster`]: nodes `1..=n` built by a [`NodeFactory`], started, stopped, restarted and
//! waited on, over an in-process network with faults.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{MemKv, MemNetwork, MemNodes, NodeFactory, Nodes, Outcome, Parts, Writers};
use crate::runtime::{Node, NodeConfig};
use crate::types::{LogIndex, NodeId};

/// Nodes `1..=n`, their log stores and state machines, on an in-process network.
///
/// Every node's parts come from the factory `F` ([`MemNodes`] by default: [`MemLogStore`],
/// [`MemKv`] and the cluster's [`MemNetwork`]). A node's log store outlives the node: a stopped
/// node restarts from the store it left in [`stores`](Cluster::stores) (replace it there to
/// start one from an empty disk), with a fresh state machine. The fields are public so tests
/// can inject faults (`cluster.network.isolate(id)`, `cluster.stores[&id].fail_writes(true)`)
/// and inspect state (`cluster.state_machines[&id].get(b"key")`).
///
/// Helpers panic when what they wait for does not happen, like assertions.
///
/// [`MemLogStore`]: super::MemLogStore
pub struct Cluster<F: NodeFactory = MemNodes> {
    /// What the nodes are made of.
    pub factory: F,
    /// The in-process network the default transport runs on (drops, delays, partitions). A
    /// test may replace it before restarting the nodes that should use the new one.
    pub network: MemNetwork,
    /// The configuration every node (re)starts with.
    pub config: F::Config,
    /// Every node, running or not: `1..=n` and those added by [`Cluster::add_joining_node`].
    pub ids: Vec<NodeId>,
    /// The nodes started (every time) with [`Node::start_joining`].
    pub joiners: BTreeSet<NodeId>,
    /// Each node's log store, kept while the node is stopped.
    pub stores: BTreeMap<NodeId, F::Store>,
    /// Each node's state machine of its latest start.
    pub state_machines: BTreeMap<NodeId, F::StateMachine>,
    nodes: Nodes<F::Handle>,
}

impl<F: NodeFactory> fmt::Debug for Cluster<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("ids", &self.ids)
            .field("running", &self.nodes.ids())
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
}

impl Cluster<MemNodes> {
    /// Starts nodes `1..=n` with `config` on the in-memory plugins.
    pub async fn start(n: u64, config: NodeConfig) -> Cluster<MemNodes> {
        Cluster::start_with(MemNodes, n, config).await
    }
}

impl<F: NodeFactory> Cluster<F> {
    /// Starts nodes `1..=n` with `config`, each made by `factory`, in id order.
    pub async fn start_with(factory: F, n: u64, config: F::Config) -> Cluster<F> {
        let mut cluster = Cluster {
            network: MemNetwork::new(factory.network_seed()),
            factory,
            config,
            ids: (1..=n).map(NodeId).collect(),
            joiners: BTreeSet::new(),
            stores: BTreeMap::new(),
            state_machines: BTreeMap::new(),
            nodes: Nodes::new(),
        };
        for id in cluster.ids.clone() {
            cluster.start_node(id).await;
        }
        cluster
    }

    /// Starts (or restarts) `id` on its kept log store (see [`NodeFactory::store`]) with a fresh
    /// state machine, and registers it with the network.
    pub async fn start_node(&mut self, id: NodeId) {
        let kept = self.stores.remove(&id);
        let store = match self.factory.store(id, kept).await {
            Ok(store) => store,
            Err(error) => panic!("node {id}: the log store does not open: {error}"),
        };
        let state_machine = self.factory.state_machine(id);
        let joining = self.joiners.contains(&id);
        let parts = Parts {
            id,
            members: self
                .ids
                .iter()
                .filter(|&&member| !joining || member == id)
                .filter(|&&member| joining || !self.joiners.contains(&member))
                .map(|&member| (member, self.factory.address(member)))
                .collect(),
            joining,
            config: self.config.clone(),
            log: Arc::new(store.clone()),
            state_machine: Arc::new(state_machine.clone()),
            transport: self.factory.transport(id, &self.network),
        };
        let (node, handle) = match self.factory.start(parts).await {
            Ok(started) => started,
            Err(error) => panic!("node {id} does not start: {error}"),
        };
        self.network.register(id, &node);
        self.stores.insert(id, store);
        self.state_machines.insert(id, state_machine);
        self.nodes.insert(id, node, handle);
    }

    /// Starts a new node `id` with an empty store that joins the cluster: it waits to be
    /// added (as a learner, at [`NodeFactory::address`]) by the leader.
    pub async fn add_joining_node(&mut self, id: NodeId) {
        if !self.ids.contains(&id) {
            self.ids.push(id);
        }
        self.joiners.insert(id);
        self.start_node(id).await;
    }

    /// Takes `id` off the network and stops it ([`NodeFactory::stop`]); its store stays in
    /// [`stores`](Cluster::stores). Nothing happens if it is not running.
    pub async fn stop_node(&self, id: NodeId) {
        self.network.unregister(id);
        let Some((node, handle)) = self.nodes.remove(id) else {
            return;
        };
        match self.stores.get(&id) {
            Some(store) => self.factory.stop(id, node, handle, store).await,
            None => node.shutdown().await,
        }
    }

    /// Stops `id`, then starts it again from its store.
    pub async fn restart_node(&mut self, id: NodeId) {
        self.stop_node(id).await;
        self.start_node(id).await;
    }

    /// Stops every node, then starts every node again (a whole-cluster restart).
    pub async fn restart_all(&mut self) {
        for id in self.ids.clone() {
            self.stop_node(id).await;
        }
        for id in self.ids.clone() {
            self.start_node(id).await;
        }
    }

    /// Takes `id` off the network and out of the running nodes without stopping it (a node
    /// that already stopped by itself, say); returns it if it was running.
    pub fn forget_node(&self, id: NodeId) -> Option<(Node, F::Handle)> {
        self.network.unregister(id);
        self.nodes.remove(id)
    }

    /// Stops every running node.
    pub async fn shutdown(self) {
        for id in self.nodes.ids() {
            self.stop_node(id).await;
        }
    }

    /// Every member but `id`, in id order.
    #[must_use]
    pub fn others(&self, id: NodeId) -> Vec<NodeId> {
        self.ids.iter().copied().filter(|&o| o != id).collect()
    }

    /// Running node `id` and its factory's handle; panics if it does not run.
    fn running_node(&self, id: NodeId) -> (Node, F::Handle) {
        self.nodes
            .get(id)
            .unwrap_or_else(|| panic!("node {id} is not running"))
    }

    /// Running node `id`; panics if it does not run.
    #[must_use]
    pub fn node(&self, id: NodeId) -> Node {
        self.running_node(id).0
    }

    /// The factory's handle of running node `id`; panics if it does not run.
    #[must_use]
    pub fn handle(&self, id: NodeId) -> F::Handle {
        self.running_node(id).1
    }

    /// The running nodes, shared (for tasks the test spawns).
    #[must_use]
    pub fn nodes(&self) -> Nodes<F::Handle> {
        self.nodes.clone()
    }

    /// The running nodes, in id order.
    #[must_use]
    pub fn running(&self) -> Vec<Node> {
        self.nodes.nodes()
    }

    /// The running nodes' state machines with their ids, in id order.
    #[must_use]
    pub fn running_state_machines(&self) -> Vec<(NodeId, &F::StateMachine)> {
        self.nodes
            .ids()
            .into_iter()
            .filter_map(|id| self.state_machines.get(&id).map(|sm| (id, sm)))
            .collect()
    }

    /// Waits until exactly one running node among `among` leads and the running others there
    /// know it; returns it (panics after 10 s).
    pub async fn wait_for_leader_among(&self, among: &[NodeId]) -> NodeId {
        for _ in 0..1000 {
            let nodes: Vec<Node> = self
                .running()
                .into_iter()
                .filter(|n| among.contains(&n.id()))
                .collect();
            let leaders: Vec<&Node> = nodes.iter().filter(|n| n.is_leader()).collect();
            if let [leader] = leaders.as_slice() {
                let id = leader.id();
                if nodes.iter().all(|n| n.leader() == Some(id)) {
                    return id;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no stable leader among {among:?}");
    }

    /// Waits until exactly one running node leads and every running node knows it.
    pub async fn wait_for_leader(&self) -> NodeId {
        self.wait_for_leader_among(&self.nodes.ids()).await
    }

    /// The stable leader's node (see [`wait_for_leader`](Cluster::wait_for_leader)).
    pub async fn leader_node(&self) -> Node {
        self.node(self.wait_for_leader().await)
    }

    /// Waits until every running node applied `index` (panics after 20 s).
    pub async fn wait_applied(&self, index: LogIndex) {
        for _ in 0..2000 {
            if self.running().iter().all(|n| n.applied_index() >= index) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let applied: Vec<_> = self
            .running()
            .iter()
            .map(|n| (n.id(), n.applied_index()))
            .collect();
        panic!("nodes did not apply {index}: {applied:?}");
    }

    /// Waits until every running node applied everything the most advanced one committed
    /// (panics after 30 s).
    pub async fn wait_converged(&self) {
        for _ in 0..3000 {
            let running = self.running();
            let commit = running.iter().map(Node::commit_index).max();
            let commit = commit.unwrap_or_default();
            if running.iter().all(|n| n.applied_index() >= commit) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let state: Vec<_> = self
            .running()
            .iter()
            .map(|n| (n.id(), n.commit_index(), n.applied_index()))
            .collect();
        panic!("nodes did not converge (id, commit, applied): {state:?}");
    }

    /// Waits for a stable leader, for its commit index to cover its log (a new leader's does
    /// once an entry of its term commits; until then it may be a stale one a restart read
    /// back), and for every running node to apply it.
    pub async fn settle(&self) {
        let node = self.leader_node().await;
        for _ in 0..1000 {
            if node.commit_index() >= node.status().last_log_index {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.wait_applied(node.commit_index()).await;
    }

    /// Writes `command` through whichever node leads (see [`Nodes::write`]).
    pub async fn write(&self, command: Bytes) -> Outcome {
        self.nodes.write(command).await
    }

    /// Spawns concurrent writers (see [`Nodes::spawn_writers`]).
    #[must_use]
    pub fn spawn_writers(&self, clients: usize, writes: usize, pause: Duration) -> Writers {
        self.nodes.spawn_writers(clients, writes, pause)
    }
}

/// Checks of clusters whose state machines are [`MemKv`]s.
impl<F: NodeFactory<StateMachine = MemKv>> Cluster<F> {
    /// Every running node applied in index order, and the commands they applied are the same
    /// sequence as far as each got.
    pub fn assert_replicas_agree(&self) {
        let mut reference: Option<Vec<(LogIndex, Bytes)>> = None;
        for (id, kv) in self.running_state_machines() {
            assert!(
                kv.out_of_order_commits().is_empty(),
                "node {id} applied out of order"
            );
            let applied = kv.applied();
            match &reference {
                None => reference = Some(applied),
                Some(reference) => {
                    let common = reference.len().min(applied.len());
                    assert_eq!(reference[..common], applied[..common], "node {id} diverged");
                }
            }
        }
    }

    /// Every running node applied exactly the same commands at the same indexes.
    pub fn assert_replicas_identical(&self) {
        let mut reference: Option<Vec<(LogIndex, Bytes)>> = None;
        for (id, kv) in self.running_state_machines() {
            let applied = kv.applied();
            match &reference {
                None => reference = Some(applied),
                Some(reference) => assert_eq!(reference, &applied, "node {id} diverged"),
            }
        }
    }

    /// Every acknowledged write is applied exactly once, at its index, on every running node;
    /// a write with an unknown outcome at most once; and the replicas agree
    /// ([`assert_replicas_agree`](Cluster::assert_replicas_agree)).
    pub fn assert_exactly_once(&self, outcomes: &[(Bytes, Outcome)]) {
        for (id, kv) in self.running_state_machines() {
            let applied = kv.applied();
            let mut counts: BTreeMap<&Bytes, usize> = BTreeMap::new();
            for (_, command) in &applied {
                *counts.entry(command).or_default() += 1;
            }
            for (command, outcome) in outcomes {
                let count = counts.get(command).copied().unwrap_or(0);
                match outcome {
                    Outcome::Acked(index) => {
                        assert_eq!(
                            count, 1,
                            "node {id}: acked write at {index} applied {count} times"
                        );
                        assert!(
                            applied.contains(&(*index, command.clone())),
                            "node {id}: {index}"
                        );
                    }
                    Outcome::Unknown => assert!(count <= 1, "node {id}: a write applied twice"),
                }
            }
        }
        self.assert_replicas_agree();
    }

    /// Every running node's state machine holds exactly the same keys and values.
    pub fn assert_states_equal(&self) {
        let dumps: Vec<(NodeId, Vec<(Bytes, Bytes)>)> = self
            .running_state_machines()
            .into_iter()
            .map(|(id, kv)| (id, kv.dump()))
            .collect();
        for (id, dump) in dumps.iter().skip(1) {
            assert_eq!(
                dump, &dumps[0].1,
                "node {id} differs from node {}",
                dumps[0].0
            );
        }
    }
}
