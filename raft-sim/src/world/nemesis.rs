//! The nemesis: every so often it heals or cuts the network, crashes or wipes a node, changes
//! the weather, moves leadership or asks for a snapshot (with lease reads, it sometimes plays
//! a split brain on the leader instead: see [`split_brain`](super::split_brain); with the
//! targeted nemesis, it sometimes arms crashes aimed at appends, acknowledgements and votes,
//! or slows the leader's disk: see [`targeted`](super::targeted)).
//!
//! A wipe replaces a node's machine: its log and snapshot are gone, while its term and vote are
//! kept (a node that forgot a vote could vote twice in a term, electing two leaders). Losing a
//! log is still outside Raft's failure model: a leader may count the wiped node's earlier
//! acknowledgements, and the node may vote for a candidate lacking entries it had. So the
//! nemesis wipes a node only when every entry it holds durably (or covers by its snapshot) is
//! held durably by a majority of the *other* nodes: then every quorum still meets a holder of
//! each such entry, which is what Raft's proofs of leader completeness rely on.
//!
//! With membership churn, "a majority" is counted in every voter set of every configuration
//! that could decide anything: the latest committed one, and each one in force on a node that
//! may still run (the one its engine uses, and the one its durable state would restart it
//! with), since a node that lags behind still campaigns, and is refused, within its own
//! configuration. Nodes outside a set do not count, removed ones included. Without churn
//! every configuration is the first one and the rule is the one above. A wiped node restarts
//! with an empty membership when churn is on, as a replaced machine waiting to be added would:
//! the configuration the cluster started with may be long gone.

use std::collections::BTreeSet;

use raft_core::engine::Input;
use raft_core::{LogId, LogIndex, Membership, NodeId};

use super::World;
use super::event::Event;
use crate::faults::{Bug, Fault, Network, pick_fault};
use crate::node::{SimNode, node_by_id};
use crate::options::SnapshotMode;

impl World {
    pub(super) fn nemesis(&mut self) {
        if self.split_brain() {
            return;
        }
        if !self.targeted_strike() {
            self.random_fault();
        }
        let next = self
            .rng
            .range(self.nemesis_min_ms, self.nemesis_min_ms * 10);
        self.schedule(next, Event::Nemesis);
    }

    fn random_fault(&mut self) {
        let nodes = self.nodes.len();
        let snapshots = self.snapshot_mode != SnapshotMode::Off;
        match pick_fault(&mut self.rng, snapshots) {
            Fault::Heal => self.network.heal(),
            Fault::Partition => self.network.partition(&mut self.rng, nodes, true),
            Fault::AsymmetricPartition => self.network.partition(&mut self.rng, nodes, false),
            Fault::Crash => {
                let node = self.pick_node();
                let downtime = self.rng.range(50, 2_000);
                self.crash(node, downtime);
            }
            Fault::CrashLeader => {
                if let Some(leader) = self.leader() {
                    let downtime = self.rng.range(10, 500);
                    self.crash(leader, downtime);
                }
            }
            Fault::IsolateLeader => {
                if let Some(leader) = self.leader() {
                    self.network.isolate(leader, nodes);
                }
            }
            Fault::Weather => {
                self.network.reshape(&mut self.rng);
                self.disk_latency_max_ms = [0, 2, 5, 30][self.rng.index(4)];
            }
            Fault::TransferLeadership => {
                if let Some(leader) = self.leader() {
                    let to = self.pick_node();
                    let to = self.nodes[to].id;
                    self.step_node(leader, Input::TransferRequested { to });
                }
            }
            Fault::Calm => {
                self.network = Network::calm();
                self.disk_latency_max_ms = 2;
            }
            Fault::Wipe => {
                let node = self.pick_node();
                let downtime = self.rng.range(50, 1_000);
                self.wipe(node, downtime);
            }
            Fault::RequestSnapshot => {
                let node = self.pick_node();
                self.step_node(node, Input::SnapshotRequested);
            }
        }
    }

    /// A node for a fault or a client: any node, or with churn any node not stopped for good.
    pub(super) fn pick_node(&mut self) -> usize {
        if !self.churn {
            return self.rng.index(self.nodes.len());
        }
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|&node| !self.nodes[node].retired)
            .collect();
        running
            .get(self.rng.index(running.len()))
            .copied()
            .unwrap_or(0)
    }

    /// The live leader of the highest term, if any.
    pub(super) fn leader(&self) -> Option<usize> {
        let leading = |n: &SimNode| {
            let status = n.engine.as_ref()?.status();
            (status.leader == Some(n.id)).then_some(status.term)
        };
        (0..self.nodes.len())
            .filter_map(|i| leading(&self.nodes[i]).map(|term| (term, i)))
            .max()
            .map(|(_, i)| i)
    }

    pub(super) fn crash(&mut self, node: usize, downtime_ms: u64) {
        if !self.nodes[node].is_up() {
            return;
        }
        self.nodes[node].crash();
        self.end_streams_of(node);
        self.abandon_clients_at(node);
        self.schedule(downtime_ms, Event::Restart(node));
    }

    pub(super) fn abandon_clients_at(&mut self, node: usize) {
        for op in self.clients.pending_at(node) {
            let reschedule = self.clients.abandon(op);
            self.reschedule_clients(reschedule);
        }
    }

    /// Wipes `node`'s disk if that cannot break safety (see the module docs). A node that is
    /// down is wiped where it lies and restarts as planned.
    fn wipe(&mut self, node: usize, downtime_ms: u64) {
        if self.bug != Some(Bug::UnsafeWipe) && !self.wipe_is_safe(node) {
            return;
        }
        self.snapshot_counts.wipes += 1;
        let was_up = self.nodes[node].is_up();
        self.nodes[node].wipe();
        self.end_streams_of(node);
        if self.churn {
            self.nodes[node].boot_membership = Membership::default();
        }
        self.checker.on_wipe(&self.nodes[node]);
        if was_up {
            self.abandon_clients_at(node);
            self.schedule(downtime_ms, Event::Restart(node));
        }
    }

    /// Whether each entry `node` holds durably, or covers by its durable snapshot, is held
    /// durably by a majority of every voter set that matters (see the module docs) among the
    /// other nodes (in a log, or under a snapshot when it is the committed entry).
    fn wipe_is_safe(&self, node: usize) -> bool {
        let target = &self.nodes[node];
        let covered = target.snapshot_index();
        let last = target
            .durable_log
            .last_log_id()
            .map_or(covered, |id| id.index.max(covered));
        let sets = self.voter_sets_that_matter();
        (1..=last.0).map(LogIndex).all(|index| {
            let held = target.durable_entry(index).map(|e| e.log_id);
            let Some(id) = held.or_else(|| self.checker.committed_at(index)) else {
                return false;
            };
            let committed = self.checker.committed_at(index) == Some(id);
            sets.iter().all(|set| {
                let holders = set
                    .iter()
                    .filter(|&&voter| voter != target.id)
                    .filter_map(|&voter| node_by_id(&self.nodes, voter))
                    .filter(|sim| holds(sim, id, committed))
                    .count();
                holders > set.len() / 2
            })
        })
    }

    /// Every voter set of the latest committed configuration and of each configuration in
    /// force, or restarted into, on a node not stopped for good.
    fn voter_sets_that_matter(&self) -> BTreeSet<BTreeSet<NodeId>> {
        let mut configs = vec![self.checker.configs.latest().1.clone()];
        for sim in self.nodes.iter().filter(|sim| !sim.retired) {
            configs.push(sim.durable_membership());
            if let Some(engine) = &sim.engine {
                configs.push(engine.membership().clone());
            }
        }
        configs
            .iter()
            .flat_map(Membership::voter_sets)
            .filter(|set| !set.is_empty())
            .cloned()
            .collect()
    }
}

/// Whether `sim` holds `id` durably: in its durable log, or under its durable snapshot when
/// `id` is the committed entry at its index.
fn holds(sim: &SimNode, id: LogId, committed: bool) -> bool {
    sim.durable_entry(id.index).map(|e| e.log_id) == Some(id)
        || committed && id.index <= sim.snapshot_index()
}
