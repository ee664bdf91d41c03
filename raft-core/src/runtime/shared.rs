//! [`Shared`]: what the [`Node`](super::Node) handles and the event loop both read: the node's
//! identity and settings, the queue counter that bounds client requests, the lifecycle and the
//! status watches behind the cheap getters.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicUsize;

use metrics::Histogram;
use tokio::sync::watch;

use super::NodeConfig;
use super::membership::MembershipStatus;
use super::reads::ReadSlots;
use super::status::{Lifecycle, NodeStatus};
use crate::error::LeaderHint;
use crate::types::{LogIndex, NodeId};

/// State shared by the handle and the event loop.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) id: NodeId,
    /// The addresses the node was started with (used for members whose configuration entry
    /// names none, as in clusters created before configurations carried addresses).
    pub(crate) bootstrap: BTreeMap<NodeId, String>,
    /// The membership, published by the loop whenever it changes.
    pub(crate) membership: watch::Sender<MembershipStatus>,
    pub(crate) config: NodeConfig,
    /// Client requests queued for the loop (bounded by `max_queued_requests`).
    pub(crate) queued: AtomicUsize,
    pub(crate) lifecycle: Lifecycle,
    pub(crate) status: watch::Sender<NodeStatus>,
    pub(crate) applied: watch::Receiver<LogIndex>,
    pub(crate) append_latency: Histogram,
    /// Reads queued for the loop, which callers arriving meanwhile join.
    pub(crate) reads: ReadSlots,
}

impl Shared {
    /// Where to find `leader`, for a `NotLeader` answer.
    pub(crate) fn leader_hint(&self, leader: Option<NodeId>) -> Option<LeaderHint> {
        let id = leader?;
        let address = self.address_of(id)?;
        Some(LeaderHint { id, address })
    }

    /// The address of member `id`: its configuration's, else the one given at start.
    pub(crate) fn address_of(&self, id: NodeId) -> Option<String> {
        let membership = self.membership.borrow();
        membership
            .membership
            .address(id)
            .or_else(|| membership.committed.address(id))
            .map(str::to_owned)
            .or_else(|| self.bootstrap.get(&id).cloned())
    }

    /// Marks the node stopped for the getters and for callers waiting on the stop.
    pub(crate) fn mark_stopped(&self) {
        self.lifecycle.begin_shutdown();
        self.status.send_modify(|status| status.running = false);
        self.lifecycle.set_stopped();
    }
}
