//! [`Shared`]: what the [`Node`](super::Node) handles and the event loop both read: the node's
//! identity and settings, the queue counter that bounds client requests, the lifecycle and the
//! status watches behind the cheap getters.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicUsize;

use metrics::Histogram;
use tokio::sync::watch;

use super::NodeConfig;
use super::status::{Lifecycle, NodeStatus};
use crate::error::LeaderHint;
use crate::types::{LogIndex, NodeId};

/// State shared by the handle and the event loop.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) id: NodeId,
    pub(crate) members: BTreeMap<NodeId, String>,
    pub(crate) config: NodeConfig,
    /// Client requests queued for the loop (bounded by `max_queued_requests`).
    pub(crate) queued: AtomicUsize,
    pub(crate) lifecycle: Lifecycle,
    pub(crate) status: watch::Sender<NodeStatus>,
    pub(crate) applied: watch::Receiver<LogIndex>,
    pub(crate) append_latency: Histogram,
}

impl Shared {
    /// Where to find `leader`, for a `NotLeader` answer.
    pub(crate) fn leader_hint(&self, leader: Option<NodeId>) -> Option<LeaderHint> {
        let id = leader?;
        let address = self.members.get(&id)?.clone();
        Some(LeaderHint { id, address })
    }

    /// Marks the node stopped for the getters and for callers waiting on the stop.
    pub(crate) fn mark_stopped(&self) {
        self.lifecycle.begin_shutdown();
        self.status.send_modify(|status| status.running = false);
        self.lifecycle.set_stopped();
    }
}
