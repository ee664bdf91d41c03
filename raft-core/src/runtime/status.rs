//! What the cheap getters read: the loop publishes its status on a watch channel after every
//! batch of events, the apply task publishes the applied index on another. No getter goes
//! through the loop.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::engine::{RoleKind, Status};
use crate::types::{LogIndex, NodeId, Term};

/// A node's state as of its last processed event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// The node.
    pub id: NodeId,
    /// Its role.
    pub role: RoleKind,
    /// Its current term.
    pub term: Term,
    /// The leader it believes in, if any.
    pub leader: Option<NodeId>,
    /// Its commit index.
    pub commit_index: LogIndex,
    /// The last index its state machine applied.
    pub applied_index: LogIndex,
    /// Its last log index.
    pub last_log_index: LogIndex,
    /// The last log index known durable.
    pub durable_index: LogIndex,
    /// The last index its latest snapshot covers (zero without one).
    pub snapshot_index: LogIndex,
    /// The index before the first entry its log holds (entries up to here were compacted).
    pub log_base_index: LogIndex,
    /// The index of the configuration in force (zero for the one the node started with); the
    /// configuration itself is in [`Node::membership`](crate::Node::membership).
    pub membership_index: LogIndex,
    /// False once the node stopped.
    pub running: bool,
}

impl NodeStatus {
    pub(crate) fn from_engine(status: &Status) -> NodeStatus {
        NodeStatus {
            id: status.id,
            role: status.role,
            term: status.term,
            leader: status.leader,
            commit_index: status.commit_index,
            applied_index: LogIndex::ZERO,
            last_log_index: status.last_log_id.index,
            durable_index: status.durable_index,
            snapshot_index: status.snapshot_index,
            log_base_index: status.log_base_index,
            membership_index: status.membership_index,
            running: true,
        }
    }
}

/// Running, then draining (new calls refused), then stopped.
#[derive(Debug, Default)]
pub(crate) struct Lifecycle(AtomicU8);

const RUNNING: u8 = 0;
const DRAINING: u8 = 1;
const STOPPED: u8 = 2;

impl Lifecycle {
    pub(crate) fn is_running(&self) -> bool {
        self.0.load(Ordering::Acquire) == RUNNING
    }

    /// Moves to draining; false if it was not running.
    pub(crate) fn begin_shutdown(&self) -> bool {
        self.0
            .compare_exchange(RUNNING, DRAINING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    pub(crate) fn set_stopped(&self) {
        self.0.store(STOPPED, Ordering::Release);
    }
}
