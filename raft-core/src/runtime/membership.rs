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
    /// Where the change's entry was appended.
    log_id: LogId,
    /// Whether that entry is a joint configuration (the change ends one entry later).
    joint: bool,
    /// The configuration the change leads to.
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
                joint: membership.is_joint(),
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

    /// The committed configuration changed: members the previous one had and this one lacks
    /// are removed (an empty configuration, a joining node's, says nothing about removals).
    pub(crate) fn on_committed(&mut self, committed: &Membership) {
        if let Some(previous) = &self.committed
            && !previous.is_empty()
            && !committed.is_empty()
        {
            let now = committed.members();
            for gone in previous.members().difference(&now) {
                info!(node = %gone, "removed from the cluster");
                self.removed.insert(*gone);
            }
            self.removed.retain(|id| !now.contains(id));
        }
        self.committed = Some(committed.clone());
    }

    /// After a round: answers the changes that finished or were replaced. A change is
    /// identified by its entry's log id, not by the configuration's value: another change may
    /// lead to the same members.
    pub(crate) fn after_round(&mut self, engine: &Engine) {
        if self.waiting.is_empty() {
            return;
        }
        let commit = engine.status().commit_index;
        let (committed_index, committed) = engine.committed_membership();
        for waiting in std::mem::take(&mut self.waiting) {
            let at = waiting.log_id.index;
            let answer = match engine.log_term(at) {
                // Until its index commits, an entry replaced here may still commit from the
                // copy a newer leader holds.
                _ if commit < at => None,
                // Another entry committed at its index.
                Some(term) if term != waiting.log_id.term => {
                    Some(Err(Error::Discarded { index: at }))
                }
                // Committed (or compacted away, which only committed entries are): a joint
                // entry's change ends when the configuration after it commits, and with one
                // change at a time that is the final configuration it leads to.
                Some(_) if !waiting.joint || committed_index > at => {
                    Some(Ok(waiting.target.clone()))
                }
                Some(_) => None,
                None if committed_index >= at && !committed.is_joint() => {
                    if *committed == waiting.target {
                        Some(Ok(committed.clone()))
                    } else {
                        Some(Err(Error::Discarded { index: at }))
                    }
                }
                None => None,
            };
            match answer {
                Some(answer) => {
                    let _ = waiting.reply.send(answer);
                }
                None if !waiting.reply.is_closed() => self.waiting.push(waiting),
                None => {}
            }
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
