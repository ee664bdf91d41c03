//! What the engine tells about itself: its role and state for getters and metrics
//! ([`Status`]), and each follower's replication state while it leads ([`FollowerStatus`]).

use crate::types::{LogId, LogIndex, NodeId, Term};

/// A node's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RoleKind {
    /// Follows a leader (or waits for one).
    Follower,
    /// Runs a pre-vote: asks whether it would win before disturbing the cluster.
    PreCandidate,
    /// Runs an election in its own term.
    Candidate,
    /// Leads its term.
    Leader,
}

/// A snapshot of the engine's state, for getters and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// This node.
    pub id: NodeId,
    /// Its role.
    pub role: RoleKind,
    /// Its current term.
    pub term: Term,
    /// Its vote in the current term.
    pub vote: Option<NodeId>,
    /// The leader it believes in.
    pub leader: Option<NodeId>,
    /// Its commit index.
    pub commit_index: LogIndex,
    /// Its last log entry.
    pub last_log_id: LogId,
    /// The last entry of its log known durable.
    pub durable_index: LogIndex,
    /// The last index its latest snapshot covers (zero without one).
    pub snapshot_index: LogIndex,
    /// The index before the first entry its log holds (the compacted prefix ends here).
    pub log_base_index: LogIndex,
    /// The index of the configuration in force (zero for the one the node started with);
    /// see [`Engine::membership`](super::Engine::membership).
    pub membership_index: LogIndex,
}

/// Replication state of one follower, as the leader sees it (for metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowerStatus {
    /// The follower.
    pub peer: NodeId,
    /// The next index to send.
    pub next_index: LogIndex,
    /// The highest index known durable on the follower.
    pub match_index: LogIndex,
    /// AppendEntries in flight (including heartbeats).
    pub inflight: usize,
    /// Entries per request.
    pub batch: u64,
    /// The batch sizer's threshold.
    pub threshold: u64,
}
