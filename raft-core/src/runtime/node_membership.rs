//! The membership side of [`Node`]: adding learners, promoting them once caught up, removing
//! members, changing several at once, and reading the membership.

use std::time::Duration;

use tokio::sync::{oneshot, watch};

use super::Node;
use super::events::Event;
use super::membership::MembershipStatus;
use crate::engine::FollowerStatus;
use crate::error::Error;
use crate::membership::{Membership, MembershipChange};
use crate::types::{LogIndex, NodeId};

/// How many election timeouts a membership change may take before the caller is told
/// [`Error::Timeout`] (the outcome is then unknown: read [`Node::membership`]).
const CHANGE_TIMEOUT_ELECTIONS: u64 = 20;

impl Node {
    /// Changes the members (on the leader): adds learners, promotes learners to voters, removes
    /// members, all in one call. A change of voters goes through a joint configuration that
    /// the leader leaves by itself; this returns the final configuration once it has
    /// committed. A leader that removes itself leads until then, then hands over.
    ///
    /// ```
    /// # use raft_core::{MembershipChange, NodeId};
    /// # async fn replace(leader: raft_core::Node) -> Result<(), raft_core::Error> {
    /// // Replace node 3 (its disk died) by node 4, which was added as a learner and caught up.
    /// let change = MembershipChange::default().promote(NodeId(4)).remove(NodeId(3));
    /// let members = leader.change_membership(change).await?;
    /// assert!(members.is_voter(NodeId(4)) && !members.is_member(NodeId(3)));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::NotLeader`] on a follower, [`Error::ChangeInProgress`] while another change
    /// has not finished, [`Error::InvalidChange`] for a change that does not fit the current
    /// members (nothing was written in these three cases); [`Error::Discarded`] if a new
    /// leader replaced the change before it committed; [`Error::Timeout`] if it did not finish
    /// within twenty election timeouts (the outcome is unknown); [`Error::Shutdown`].
    pub async fn change_membership(&self, change: MembershipChange) -> Result<Membership, Error> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Event::ChangeMembership(change, reply))?;
        let election_ms = self.shared().config.raft.election_timeout_ms;
        let timeout = Duration::from_millis(election_ms.saturating_mul(CHANGE_TIMEOUT_ELECTIONS));
        match tokio::time::timeout(timeout, answer).await {
            Err(_) => Err(Error::Timeout),
            Ok(Err(_)) => Err(Error::Shutdown),
            Ok(Ok(result)) => result,
        }
    }

    /// Adds a learner at `address` (on the leader): it receives the log and snapshots but
    /// counts in no quorum. Start the new node with [`Node::start_joining`].
    ///
    /// # Errors
    /// As [`Node::change_membership`].
    pub async fn add_learner(
        &self,
        id: NodeId,
        address: impl Into<String>,
    ) -> Result<Membership, Error> {
        self.change_membership(MembershipChange::add_learner(id, address))
            .await
    }

    /// Waits until learner `id` is at most `max_lag` entries behind, then makes it a voter.
    ///
    /// # Errors
    /// As [`Node::wait_for_learner`], then as [`Node::change_membership`].
    pub async fn promote_learner(
        &self,
        id: NodeId,
        max_lag: u64,
        timeout: Duration,
    ) -> Result<Membership, Error> {
        self.wait_for_learner(id, max_lag, timeout).await?;
        self.change_membership(MembershipChange::default().promote(id))
            .await
    }

    /// Removes member `id` (voter or learner).
    ///
    /// # Errors
    /// As [`Node::change_membership`].
    pub async fn remove_member(&self, id: NodeId) -> Result<Membership, Error> {
        self.change_membership(MembershipChange::default().remove(id))
            .await
    }

    /// Waits (on the leader) until follower `id` holds durably every entry but the last
    /// `max_lag`: a learner caught up enough to be promoted without stalling commits.
    ///
    /// # Errors
    /// [`Error::NotLeader`] if this node does not lead, [`Error::InvalidChange`] if `id` is not
    /// a member, [`Error::Timeout`] when it has not caught up in time, [`Error::Shutdown`].
    pub async fn wait_for_learner(
        &self,
        id: NodeId,
        max_lag: u64,
        timeout: Duration,
    ) -> Result<(), Error> {
        if id == self.id() {
            // The leader holds its whole log.
            return if self.is_leader() {
                Ok(())
            } else {
                let leader = self.shared().leader_hint(self.leader());
                Err(Error::NotLeader { leader })
            };
        }
        let poll = Duration::from_millis(self.shared().config.raft.heartbeat_interval_ms.max(1));
        let wait = async {
            loop {
                let (last, followers) = self.followers().await?;
                let Some(follower) = followers.iter().find(|f| f.peer == id) else {
                    return Err(Error::InvalidChange(format!("node {id} is not a member")));
                };
                if follower.match_index.plus(max_lag) >= last {
                    return Ok(());
                }
                tokio::time::sleep(poll).await;
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or(Err(Error::Timeout))
    }

    /// The leader's view of each follower (learners included) and its own last log index.
    ///
    /// # Errors
    /// [`Error::NotLeader`] if this node does not lead; [`Error::Shutdown`].
    pub async fn followers(&self) -> Result<(LogIndex, Vec<FollowerStatus>), Error> {
        if !self.is_leader() {
            let leader = self.shared().leader_hint(self.leader());
            return Err(Error::NotLeader { leader });
        }
        let (reply, answer) = oneshot::channel();
        self.enqueue(Event::Followers(reply))?;
        answer.await.unwrap_or(Err(Error::Shutdown))
    }

    /// The membership as of the last processed event: the configuration in force and the
    /// latest committed one.
    #[must_use]
    pub fn membership(&self) -> MembershipStatus {
        self.shared().membership.borrow().clone()
    }

    /// A watch of the membership, to wait for a change.
    #[must_use]
    pub fn watch_membership(&self) -> watch::Receiver<MembershipStatus> {
        self.shared().membership.subscribe()
    }
}
