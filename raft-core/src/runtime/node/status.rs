//! What a [`Node`] tells of itself without asking its event loop: id, role, term, leader,
//! commit and applied indexes, member addresses.

use tokio::sync::watch;

use super::Node;
use crate::engine::RoleKind;
use crate::runtime::status::NodeStatus;
use crate::types::{LogIndex, NodeId, Term};

impl Node {
    /// This node's id.
    #[must_use]
    pub fn id(&self) -> NodeId {
        self.shared().id
    }

    /// The node's state as of its last processed event, with the latest applied index.
    #[must_use]
    pub fn status(&self) -> NodeStatus {
        let shared = self.shared();
        let mut status = *shared.status.borrow();
        status.applied_index = *shared.applied.borrow();
        status
    }

    /// A watch of the node's status, to wait for a condition (its `applied_index` is not
    /// maintained; use [`applied_index`](Node::applied_index)).
    #[must_use]
    pub fn watch_status(&self) -> watch::Receiver<NodeStatus> {
        self.shared().status.subscribe()
    }

    /// The current term.
    #[must_use]
    pub fn term(&self) -> Term {
        self.shared().status.borrow().term
    }

    /// The current role.
    #[must_use]
    pub fn role(&self) -> RoleKind {
        self.shared().status.borrow().role
    }

    /// Whether this node leads.
    #[must_use]
    pub fn is_leader(&self) -> bool {
        self.role() == RoleKind::Leader
    }

    /// The leader this node believes in, if any.
    #[must_use]
    pub fn leader(&self) -> Option<NodeId> {
        self.shared().status.borrow().leader
    }

    /// The commit index.
    #[must_use]
    pub fn commit_index(&self) -> LogIndex {
        self.shared().status.borrow().commit_index
    }

    /// The last index applied to the state machine.
    #[must_use]
    pub fn applied_index(&self) -> LogIndex {
        *self.shared().applied.borrow()
    }

    /// The address of member `id`: the one its configuration entry names, else the one this
    /// node was started with.
    #[must_use]
    pub fn address_of(&self, id: NodeId) -> Option<String> {
        self.shared().address_of(id)
    }
}
