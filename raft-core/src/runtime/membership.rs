//! Membership as the runtime sees it: the [`MembershipStatus`] the getters read, the changes
//! waiting for their final configuration to commit, and the nodes known to be removed (whose
//! requests are refused).

use std::collections::{BTreeSet, HashMap};

use tracing::info;

use super::results::Reply;
use crate::engine::{ChangeRejection, Engine};
use crate::error::{Error, LeaderHint};
use crate::membership::Membership;
use crate::types::{LogId, LogIndex, NodeId};

/// A node's view of the cluster's membership.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MembershipStatus {
    /// The configuration in force on this node: the latest in its log, committed or not.
    pub membership: Membership,
    /// The index of its entry (zero for the configuration the node started with).
    pub index: LogIndex,
    /// The latest committed configuration.
    pub committed: Membership,
    /// The index of its entry.
    pub committed_index: LogIndex,
}

impl MembershipStatus {
    pub(crate) fn from_engine(engine: &Engine) -> MembershipStatus {
        let (committed_index, committed) = engine.committed_membership();
        MembershipStatus {
            membership: engine.membership().clone(),
            index: engine.status().membership_index,
            committed: committed.clone(),
            committed_index,
        }
    }
}

/// A change the leader accepted, waiting for its final configuration to commit.
struct Waiting {
    log_id: LogId,
    target: Membership,
    reply: Reply<Membership>,
}

/// Membership changes in flight and the nodes known removed.
#[derive(Default)]
pub(crate) struct Changes {
    next_id: u64,
    /// Asked of the engine, not yet answered.
    asked: HashMap<u64, Reply<Membership>>,
    waiting: Vec<Waiting>,
    /// Members of an earlier committed configuration that the latest committed one lacks.
    /// Node ids are never reused, so a request from one of them is refused at once.
    removed: BTreeSet<NodeId>,
    /// The committed configuration last seen.
    committed_index: LogIndex,
    committed: Option<Membership>,
}

impl Changes {
    /// Registers a caller; returns the id to step the engine with.
    pub(crate) fn register(&mut self, reply: Reply<Membership>) -> u64 {
        self.next_id += 1;
        self.asked.insert(self.next_id, reply);
        self.next_id
    }

    /// The engine appended change `id` at `log_id` as `membership`.
    pub(crate) fn accepted(&mut self, id: u64, log_id: LogId, membership: &Membership) {
        if let Some(reply) = self.asked.remove(&id) {
            self.waiting.push(Waiting {
                log_id,
                target: membership.leave_joint(),
                reply,
            });
        }
    }

    /// The engine refused change `id`.
    pub(crate) fn rejected(&mut self, id: u64, reason: ChangeRejection, hint: Option<LeaderHint>) {
        if let Some(reply) = self.asked.remove(&id) {
            let error = match reason {
                ChangeRejection::NotLeader { .. } => Error::NotLeader { leader: hint },
                ChangeRejection::InProgress => Error::ChangeInProgress,
                ChangeRejection::Invalid(reason) => Error::InvalidChange(reason),
            };
            let _ = reply.send(Err(error));
        }
    }

    /// After a round: answers the changes whose final configuration committed (or that a
    /// different committed configuration overtook) and notes removed nodes.
    pub(crate) fn on_status(&mut self, status: &MembershipStatus) {
        if self.committed.as_ref() != Some(&status.committed)
            || self.committed_index != status.committed_index
        {
            if let Some(previous) = &self.committed {
                let now = status.committed.members();
                for gone in previous.members().difference(&now) {
                    info!(node = %gone, "removed from the cluster");
                    self.removed.insert(*gone);
                }
                self.removed.retain(|id| !now.contains(id));
            }
            self.committed = Some(status.committed.clone());
            self.committed_index = status.committed_index;
        }
        for waiting in std::mem::take(&mut self.waiting) {
            if status.committed_index < waiting.log_id.index || status.committed.is_joint() {
                if !waiting.reply.is_closed() {
                    self.waiting.push(waiting);
                }
                continue;
            }
            let answer = if status.committed == waiting.target {
                Ok(status.committed.clone())
            } else {
                // A newer leader replaced the entry before it committed.
                Err(Error::Discarded {
                    index: waiting.log_id.index,
                })
            };
            let _ = waiting.reply.send(answer);
        }
    }

    /// Whether `id` is known to have been removed from the cluster.
    pub(crate) fn is_removed(&self, id: NodeId) -> bool {
        self.removed.contains(&id)
    }

    /// Answers every caller with `error` (the node stops).
    pub(crate) fn refuse_all(&mut self, error: impl Fn() -> Error) {
        for (_, reply) in self.asked.drain() {
            let _ = reply.send(Err(error()));
        }
        for waiting in self.waiting.drain(..) {
            let _ = waiting.reply.send(Err(error()));
        }
    }
}
