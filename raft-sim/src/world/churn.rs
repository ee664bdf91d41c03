//! Membership churn (with `SimOptions::churn`): every so often the world asks the leader for a
//! membership change, the way an operator would, while every other fault keeps striking.
//!
//! The changes, drawn from the leader's configuration in force: add one or two learners (each
//! a fresh node with an empty disk and a new id, started with an empty membership: it waits to
//! be added), promote one or two learners, remove a voter or a learner, replace a voter
//! (promote a learner, or add one, and remove the voter in one change), change several voters
//! at once (promote two and remove one, or promote one and remove two), remove the leader, and
//! now and then a change that cannot apply (the engine must refuse it). The leader refuses
//! while another change is in progress; the world just tries again later. A removed node keeps
//! running, which shows it cannot disrupt the cluster, until churn stops it for good.
//!
//! The dangerous windows come more often than chance would bring them: a node that appends a
//! configuration entry sometimes crashes right after (before or after the write is durable),
//! and a leader whose change was accepted is sometimes crashed or cut off at once.
//!
//! Nodes are numbered from 1 in the order they are created, so node `i` of the world has id
//! `i + 1` (clients and the checker rely on it); a stopped node keeps its place.

use raft_core::engine::{ChangeRejection, Input};
use raft_core::{Entry, Membership, MembershipChange, NodeId, Payload};

use super::World;
use super::event::Event;
use crate::node::SimNode;
use crate::options::ChurnCounts;

/// When the first change is asked for.
const CHURN_START_MS: u64 = 200;
/// At most this many nodes run (not stopped for good) at a time.
const MAX_RUNNING_NODES: usize = 9;
/// At most this many nodes are ever created in one run.
const MAX_NODES: usize = 64;
/// No change promotes beyond this many voters.
const MAX_VOTERS: usize = 7;
/// The share of configuration appends followed at once by a crash of the appending node.
const CRASH_AFTER_CONFIG_APPEND_PERCENT: u64 = 8;
/// The share of accepted changes whose leader is crashed, or cut off, at once.
const STRIKE_LEADER_AFTER_CHANGE_PERCENT: u64 = 10;

impl World {
    /// What churn did: the changes asked for and answered, and what the committed
    /// configurations did (counted by the checker).
    pub(crate) fn churn_counts(&self) -> ChurnCounts {
        let mut counts = self.churn_counts;
        counts.add(&self.checker.configs.counts);
        counts
    }

    /// Draws how often churn strikes and schedules its first strike.
    pub(super) fn start_churn(&mut self) {
        self.churn_min_ms = [20, 60, 150][self.rng.index(3)];
        let first = CHURN_START_MS + self.rng.range(0, 200);
        self.schedule(first, Event::Churn);
    }

    /// One strike of churn, then the next one is scheduled.
    pub(super) fn churn(&mut self) {
        self.churn_once();
        let next = self.rng.range(self.churn_min_ms, self.churn_min_ms * 5);
        self.schedule(next, Event::Churn);
    }

    fn churn_once(&mut self) {
        let stop_percent = if self.running_nodes() >= MAX_RUNNING_NODES {
            80
        } else {
            20
        };
        if self.rng.percent(stop_percent)
            && let Some(node) = self.pick_removed_running()
        {
            self.stop_for_good(node);
            return;
        }
        let Some(leader) = self.leader() else {
            return;
        };
        let Some(membership) = self.nodes[leader]
            .engine
            .as_ref()
            .map(|engine| engine.membership().clone())
        else {
            return;
        };
        if let Some(change) = self.draw_change(leader, &membership) {
            self.next_change_id += 1;
            self.churn_counts.requested += 1;
            let id = self.next_change_id;
            self.step_node(leader, Input::MembershipChangeRequested { id, change });
        }
    }

    /// A change for the leader at `leader`, whose configuration in force is `membership`.
    fn draw_change(&mut self, leader: usize, membership: &Membership) -> Option<MembershipChange> {
        let voters: Vec<NodeId> = membership.voters().collect();
        let learners: Vec<NodeId> = membership.learners().collect();
        let leader_id = self.nodes[leader].id;
        // Keep three voters or more, mostly: a smaller cluster is tried now and then.
        let may_remove = voters.len() > 3 || (voters.len() > 1 && self.rng.percent(15));
        let may_promote = voters.len() < MAX_VOTERS;
        let change = MembershipChange::default();
        let roll = self.rng.range(0, 100);
        let change = match roll {
            0..22 => {
                let count = if self.rng.percent(35) { 2 } else { 1 };
                self.with_new_learners(change, count)?
            }
            22..40 if may_promote && !learners.is_empty() => {
                let count = if self.rng.percent(35) { 2 } else { 1 };
                self.pick(&learners, count)
                    .into_iter()
                    .fold(change, MembershipChange::promote)
            }
            40..52 if may_remove => change.remove(self.pick_one(&voters)?),
            52..60 if !learners.is_empty() => change.remove(self.pick_one(&learners)?),
            60..72 if voters.len() > 1 => {
                // Replace a voter: promote a learner (or add a fresh one) in the same change.
                let change = change.remove(self.pick_one(&voters)?);
                match self.pick_one(&learners) {
                    Some(learner) => change.promote(learner),
                    None => self.with_new_learners(change, 1)?,
                }
            }
            72..86 if learners.len() >= 2 && may_promote => {
                // Several voters at once: promote two, remove one.
                let change = self
                    .pick(&learners, 2)
                    .into_iter()
                    .fold(change, MembershipChange::promote);
                change.remove(self.pick_one(&voters)?)
            }
            72..86 if !learners.is_empty() && voters.len() >= 3 => {
                // Promote one, remove two.
                let change = change.promote(self.pick_one(&learners)?);
                self.pick(&voters, 2)
                    .into_iter()
                    .fold(change, MembershipChange::remove)
            }
            86..95 if voters.len() > 1 => {
                let change = change.remove(leader_id);
                match self.pick_one(&learners) {
                    Some(learner) if self.rng.percent(50) => change.promote(learner),
                    _ => change,
                }
            }
            95..100 => self.invalid_change(membership),
            _ => self.with_new_learners(change, 1)?,
        };
        Some(change)
    }

    /// A change the leader must refuse: promoting a voter, removing a stranger, or nothing.
    fn invalid_change(&mut self, membership: &Membership) -> MembershipChange {
        let voters: Vec<NodeId> = membership.voters().collect();
        match (self.rng.range(0, 3), self.pick_one(&voters)) {
            (0, Some(voter)) => MembershipChange::default().promote(voter),
            (1, _) => MembershipChange::default().remove(NodeId(u64::MAX)),
            _ => MembershipChange::default(),
        }
    }

    /// `change` adding `count` learners, each a fresh node (started now if need be); `None`
    /// when no node can be added.
    fn with_new_learners(
        &mut self,
        mut change: MembershipChange,
        count: usize,
    ) -> Option<MembershipChange> {
        for _ in 0..count {
            let node = self.spare_node()?;
            let id = self.nodes[node].id;
            change = change.with_learner(id, format!("sim-{id}"));
        }
        Some(change)
    }

    /// A started node never added to the cluster (a change that added it may have failed),
    /// or a fresh one.
    fn spare_node(&mut self) -> Option<usize> {
        let leader_config = self
            .leader()
            .and_then(|leader| self.nodes[leader].engine.as_ref())
            .map(|engine| engine.membership().members())
            .unwrap_or_default();
        // The founding nodes are members of the latest committed configuration or removed.
        let spare = (0..self.nodes.len()).find(|&node| {
            let sim = &self.nodes[node];
            !sim.retired
                && !leader_config.contains(&sim.id)
                && self.checker.configs.removal(sim.id).is_none()
                && !self.checker.configs.latest().1.is_member(sim.id)
        });
        if spare.is_some() {
            return spare;
        }
        if self.running_nodes() >= MAX_RUNNING_NODES || self.nodes.len() >= MAX_NODES {
            return None;
        }
        let node = self.nodes.len();
        let id = NodeId(node as u64 + 1);
        self.nodes.push(SimNode::new(id, Membership::default()));
        self.start_node(node);
        Some(node)
    }

    /// Nodes not stopped for good.
    fn running_nodes(&self) -> usize {
        self.nodes.iter().filter(|sim| !sim.retired).count()
    }

    /// A removed node that still runs (or will restart), if any.
    fn pick_removed_running(&mut self) -> Option<usize> {
        let removed: Vec<usize> = (0..self.nodes.len())
            .filter(|&node| {
                let sim = &self.nodes[node];
                !sim.retired && self.checker.configs.removal(sim.id).is_some()
            })
            .collect();
        removed.get(self.rng.index(removed.len())).copied()
    }

    /// Stops a removed node for good: it never restarts (its disk stays as it was).
    fn stop_for_good(&mut self, node: usize) {
        if self.nodes[node].is_up() {
            self.nodes[node].crash();
            self.end_streams_of(node);
            self.abandon_clients_at(node);
        }
        self.nodes[node].retired = true;
        self.churn_counts.removed_stopped += 1;
    }

    /// Up to `count` distinct ids of `ids`, drawn at random.
    fn pick(&mut self, ids: &[NodeId], count: usize) -> Vec<NodeId> {
        let mut left = ids.to_vec();
        let mut picked = Vec::new();
        while picked.len() < count && !left.is_empty() {
            picked.push(left.remove(self.rng.index(left.len())));
        }
        picked
    }

    fn pick_one(&mut self, ids: &[NodeId]) -> Option<NodeId> {
        self.pick(ids, 1).pop()
    }

    /// The leader at `node` appended a change (its entry is in force there from now on).
    pub(super) fn on_change_accepted(&mut self, node: usize) {
        self.churn_counts.accepted += 1;
        if !self.rng.percent(STRIKE_LEADER_AFTER_CHANGE_PERCENT) {
            return;
        }
        let epoch = self.nodes[node].epoch;
        if self.rng.percent(50) {
            let delay = self.rng.range(0, self.disk_latency_max_ms + 1);
            self.schedule(delay, Event::Crash { node, epoch });
        } else {
            let nodes = self.nodes.len();
            self.network.isolate(node, nodes);
        }
    }

    /// A node refused a change.
    pub(super) fn on_change_rejected(&mut self, reason: &ChangeRejection) {
        match reason {
            ChangeRejection::NotLeader { .. } => self.churn_counts.rejected_not_leader += 1,
            ChangeRejection::InProgress => self.churn_counts.rejected_in_progress += 1,
            ChangeRejection::Invalid(_) => self.churn_counts.rejected_invalid += 1,
        }
    }

    /// Buggify: a node that appends a configuration entry sometimes crashes right after
    /// (until the faults stop).
    pub(super) fn after_config_append(&mut self, node: usize, entries: &[Entry]) {
        if self.healed {
            return;
        }
        let config = entries
            .iter()
            .any(|entry| matches!(entry.payload, Payload::Membership(_)));
        if config && self.rng.percent(CRASH_AFTER_CONFIG_APPEND_PERCENT) {
            let epoch = self.nodes[node].epoch;
            let delay = self.rng.range(0, 2 * self.disk_latency_max_ms + 1);
            self.schedule(delay, Event::Crash { node, epoch });
        }
    }
}
