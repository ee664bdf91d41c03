//! The metric handles a node updates, registered once per node under the names of
//! [`crate::metrics`].

use std::collections::BTreeMap;

use metrics::{Counter, Gauge, Histogram};

use super::membership::MembershipStatus;
use super::status::NodeStatus;
use crate::engine::{FollowerStatus, RoleKind};
use crate::metrics::{
    APPEND_LATENCY, APPLIED_INDEX, COMMIT_INDEX, LEADER_CHANGES, LOG_BYTES, MEMBERSHIP_CHANGES,
    MEMBERSHIP_JOINT, MEMBERSHIP_LEARNERS, MEMBERSHIP_VOTERS, PROPOSALS, REPLICATION_BATCH_SIZE,
    REPLICATION_INFLIGHT, REPLICATION_LAG, REPLICATION_THRESHOLD, ROLE, TERM,
};
use crate::types::{LogIndex, NodeId};

/// Handles of one node's metrics, registered once.
#[derive(Debug)]
pub(crate) struct NodeMetrics {
    node: String,
    term: Gauge,
    role: Gauge,
    commit_index: Gauge,
    leader_changes: Counter,
    pub(crate) proposals: Counter,
    log_bytes: Gauge,
    voters: Gauge,
    learners: Gauge,
    joint: Gauge,
    membership_changes: Counter,
    membership_index: Option<LogIndex>,
    peers: BTreeMap<NodeId, PeerMetrics>,
    last_leader: Option<NodeId>,
}

#[derive(Debug)]
struct PeerMetrics {
    batch: Gauge,
    threshold: Gauge,
    inflight: Gauge,
    lag: Gauge,
}

impl NodeMetrics {
    pub(crate) fn new(id: NodeId) -> NodeMetrics {
        let node = id.to_string();
        NodeMetrics {
            term: metrics::gauge!(TERM, "node" => node.clone()),
            role: metrics::gauge!(ROLE, "node" => node.clone()),
            commit_index: metrics::gauge!(COMMIT_INDEX, "node" => node.clone()),
            leader_changes: metrics::counter!(LEADER_CHANGES, "node" => node.clone()),
            proposals: metrics::counter!(PROPOSALS, "node" => node.clone()),
            log_bytes: metrics::gauge!(LOG_BYTES, "node" => node.clone()),
            voters: metrics::gauge!(MEMBERSHIP_VOTERS, "node" => node.clone()),
            learners: metrics::gauge!(MEMBERSHIP_LEARNERS, "node" => node.clone()),
            joint: metrics::gauge!(MEMBERSHIP_JOINT, "node" => node.clone()),
            membership_changes: metrics::counter!(MEMBERSHIP_CHANGES, "node" => node.clone()),
            membership_index: None,
            node,
            peers: BTreeMap::new(),
            last_leader: None,
        }
    }

    /// Records the node's status after a batch of events.
    pub(crate) fn record_status(&mut self, status: &NodeStatus) {
        self.term.set(status.term.0 as f64);
        self.role.set(match status.role {
            RoleKind::Follower => 0.0,
            RoleKind::PreCandidate | RoleKind::Candidate => 1.0,
            RoleKind::Leader => 2.0,
        });
        self.commit_index.set(status.commit_index.0 as f64);
        if status.leader.is_some() && status.leader != self.last_leader {
            self.leader_changes.increment(1);
        }
        if status.leader.is_some() {
            self.last_leader = status.leader;
        }
    }

    /// Records the membership after it changed.
    pub(crate) fn record_membership(&mut self, status: &MembershipStatus) {
        let membership = &status.membership;
        self.voters.set(membership.len() as f64);
        self.learners.set(membership.learners().count() as f64);
        self.joint
            .set(if membership.is_joint() { 1.0 } else { 0.0 });
        if self
            .membership_index
            .is_some_and(|seen| seen != status.index)
        {
            self.membership_changes.increment(1);
        }
        self.membership_index = Some(status.index);
    }

    /// Records the log size.
    pub(crate) fn record_log_bytes(&self, bytes: u64) {
        self.log_bytes.set(bytes as f64);
    }

    /// Zeroes the per-follower gauges once this node stops leading (they describe a leader).
    pub(crate) fn clear_followers(&mut self) {
        for peer in std::mem::take(&mut self.peers).into_values() {
            peer.batch.set(0.0);
            peer.threshold.set(0.0);
            peer.inflight.set(0.0);
            peer.lag.set(0.0);
        }
    }

    /// Records each follower's replication state (leaders only).
    pub(crate) fn record_followers(&mut self, followers: &[FollowerStatus], last: LogIndex) {
        for follower in followers {
            let node = &self.node;
            let peer = self.peers.entry(follower.peer).or_insert_with(|| {
                let labels = [("node", node.clone()), ("peer", follower.peer.to_string())];
                PeerMetrics {
                    batch: metrics::gauge!(REPLICATION_BATCH_SIZE, &labels),
                    threshold: metrics::gauge!(REPLICATION_THRESHOLD, &labels),
                    inflight: metrics::gauge!(REPLICATION_INFLIGHT, &labels),
                    lag: metrics::gauge!(REPLICATION_LAG, &labels),
                }
            });
            peer.batch.set(follower.batch as f64);
            peer.threshold.set(follower.threshold as f64);
            peer.inflight.set(follower.inflight as f64);
            peer.lag
                .set(last.0.saturating_sub(follower.match_index.0) as f64);
        }
    }
}

/// The applied-index gauge, owned by the apply task.
pub(crate) fn applied_index_gauge(id: NodeId) -> Gauge {
    metrics::gauge!(APPLIED_INDEX, "node" => id.to_string())
}

/// The append latency histogram, recorded by `Node::append`.
pub(crate) fn append_latency_histogram(id: NodeId) -> Histogram {
    metrics::histogram!(APPEND_LATENCY, "node" => id.to_string())
}
