//! Metric names (DESIGN §7; dashboards rely on them, so they never change without a migration
//! note) and the handles a node updates. Every metric carries a `node` label; per-follower ones
//! also a `peer` label. Recorded through the `metrics` facade: install any recorder (raft-http
//! installs the Prometheus one) to collect them; without one they cost nothing.

use std::collections::BTreeMap;

use metrics::{Counter, Gauge, Histogram};

use crate::engine::{FollowerStatus, RoleKind};
use crate::runtime::NodeStatus;
use crate::types::{LogIndex, NodeId};

/// Gauge: the current term.
pub const TERM: &str = "raft_term";
/// Gauge: the role (0 follower, 1 candidate or pre-candidate, 2 leader).
pub const ROLE: &str = "raft_role";
/// Gauge: the commit index.
pub const COMMIT_INDEX: &str = "raft_commit_index";
/// Gauge: the last index applied to the state machine.
pub const APPLIED_INDEX: &str = "raft_applied_index";
/// Counter: times this node saw the leader change to a new known leader.
pub const LEADER_CHANGES: &str = "raft_leader_changes_total";
/// Counter: commands proposed to this node (accepted or not).
pub const PROPOSALS: &str = "raft_proposals_total";
/// Histogram: seconds from an append call to its result (`append`, or `append_async` until
/// `PendingAppend::result` returns).
pub const APPEND_LATENCY: &str = "raft_append_latency_seconds";
/// Gauge per peer: entries per AppendEntries the batch sizer allows.
pub const REPLICATION_BATCH_SIZE: &str = "raft_replication_batch_size";
/// Gauge per peer: the batch sizer's threshold.
pub const REPLICATION_THRESHOLD: &str = "raft_replication_threshold";
/// Gauge per peer: AppendEntries in flight.
pub const REPLICATION_INFLIGHT: &str = "raft_replication_inflight";
/// Gauge per peer: entries the follower is behind the leader's last entry.
pub const REPLICATION_LAG: &str = "raft_replication_lag_entries";
/// Gauge: the log's live size in bytes.
pub const LOG_BYTES: &str = "raft_log_bytes";
/// Histogram: seconds one fdatasync of the log takes (recorded by a log store that syncs
/// files, such as raft-storage-fs).
pub const FSYNC_SECONDS: &str = "raft_fsync_seconds";
/// Histogram: entries made durable by one group commit (one fdatasync).
pub const GROUP_COMMIT_ENTRIES: &str = "raft_group_commit_entries";
/// Counter: snapshots this node created from its state machine.
pub const SNAPSHOTS_CREATED: &str = "raft_snapshots_created_total";
/// Counter: snapshots this node installed from a leader.
pub const SNAPSHOTS_INSTALLED: &str = "raft_snapshots_installed_total";
/// Gauge: the size in bytes of the latest snapshot this node created or installed.
pub const SNAPSHOT_BYTES: &str = "raft_snapshot_bytes";
/// Histogram (label `kind`: `create` or `install`): seconds to write a snapshot from the state
/// machine, or to receive one from the leader (first chunk to durable).
pub const SNAPSHOT_SECONDS: &str = "raft_snapshot_seconds";

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
