//! The committed configurations as the checker learns them (from the entries nodes apply), the
//! nodes they removed, and what churn did ([`ChurnCounts`], the committed half of it).
//!
//! The first configuration, at index zero, is the one the cluster started with. A
//! configuration entry is committed once any node applies it; nodes apply in index order and a
//! snapshot is only of entries applied somewhere, so configurations arrive in index order.

use std::collections::{BTreeMap, BTreeSet};

use raft_core::{LogIndex, Membership, NodeId, Term};

use crate::options::ChurnCounts;

/// A node that was a member of a committed configuration and is not one of the latest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Removal {
    /// When the checker saw the first configuration without it commit.
    pub(crate) at_ms: u64,
    /// The highest term any node held once the grace after the removal ended (see
    /// `membership::REMOVAL_GRACE_MS`); unset before.
    pub(crate) ceiling: Option<Term>,
}

#[derive(Debug, Default)]
pub(crate) struct ConfigHistory {
    /// Committed configurations by the index of their entry (zero: the first one).
    committed: BTreeMap<LogIndex, Membership>,
    /// Nodes out of the latest committed configuration that were members before (removed
    /// nodes are never added again: the nemesis adds fresh nodes under new ids).
    removed: BTreeMap<NodeId, Removal>,
    /// What the committed configurations did.
    pub(crate) counts: ChurnCounts,
}

/// An empty configuration, for a history that was given none.
fn empty() -> &'static Membership {
    static EMPTY: std::sync::OnceLock<Membership> = std::sync::OnceLock::new();
    EMPTY.get_or_init(Membership::default)
}

impl ConfigHistory {
    /// A history that starts with `initial`, in force from index zero.
    pub(crate) fn new(initial: Membership) -> ConfigHistory {
        ConfigHistory {
            committed: BTreeMap::from([(LogIndex::ZERO, initial)]),
            ..ConfigHistory::default()
        }
    }

    /// The latest committed configuration and its index.
    pub(crate) fn latest(&self) -> (LogIndex, &Membership) {
        self.committed
            .last_key_value()
            .map_or((LogIndex::ZERO, empty()), |(&index, m)| (index, m))
    }

    /// The committed configuration in force at `index` (the latest at or below it) and the
    /// index of its entry.
    pub(crate) fn at(&self, index: LogIndex) -> (LogIndex, &Membership) {
        self.committed
            .range(..=index)
            .next_back()
            .map_or((LogIndex::ZERO, empty()), |(&at, m)| (at, m))
    }

    /// Whether no configuration is known (a checker built for a unit test).
    pub(crate) fn is_unknown(&self) -> bool {
        self.committed.is_empty()
    }

    /// The removal of `id`, if it was removed.
    pub(crate) fn removal(&self, id: NodeId) -> Option<&Removal> {
        self.removed.get(&id)
    }

    /// Removals whose ceiling is unset and whose grace ended at `now_ms`.
    pub(crate) fn removals_without_ceiling(&self, now_ms: u64, grace_ms: u64) -> Vec<NodeId> {
        self.removed
            .iter()
            .filter(|(_, r)| r.ceiling.is_none() && now_ms >= r.at_ms + grace_ms)
            .map(|(&id, _)| id)
            .collect()
    }

    pub(crate) fn set_ceiling(&mut self, id: NodeId, ceiling: Term) {
        if let Some(removal) = self.removed.get_mut(&id) {
            removal.ceiling = Some(ceiling);
        }
    }

    /// The configuration entry at `index`, written by `leader` (the leader of its term, if
    /// known), committed at `now_ms`.
    pub(crate) fn on_committed(
        &mut self,
        index: LogIndex,
        next: &Membership,
        leader: Option<NodeId>,
        now_ms: u64,
    ) {
        let (latest, prev) = self.latest();
        if index <= latest {
            // Out of order: nothing to count (it cannot happen, see the module docs).
            self.committed.insert(index, next.clone());
            return;
        }
        let prev_members = prev.members();
        let prev_learners: BTreeSet<NodeId> = prev.learners().collect();
        let next_members = next.members();
        let counts = &mut self.counts;
        if next.is_joint() {
            counts.joint_committed += 1;
        } else {
            counts.completed += 1;
        }
        counts.learners_added += next
            .learners()
            .filter(|id| !prev_members.contains(id))
            .count() as u64;
        counts.promoted += next
            .voters()
            .filter(|id| prev_learners.contains(id))
            .count() as u64;
        let gone: Vec<NodeId> = prev_members.difference(&next_members).copied().collect();
        counts.nodes_removed += gone.len() as u64;
        if let Some(leader) = leader
            && prev_members.contains(&leader)
            && !next_members.contains(&leader)
        {
            counts.leaders_removed += 1;
        }
        for id in gone {
            self.removed.entry(id).or_insert(Removal {
                at_ms: now_ms,
                ceiling: None,
            });
        }
        // A node is never added back under the same id; should one be, it is a member again.
        self.removed.retain(|id, _| !next_members.contains(id));
        self.committed.insert(index, next.clone());
    }
}

#[cfg(test)]
mod tests {
    use raft_core::MembershipChange;

    use super::*;

    fn ids(values: &[u64]) -> Vec<NodeId> {
        values.iter().map(|&v| NodeId(v)).collect()
    }

    #[test]
    fn a_replacement_counts_a_learner_a_promotion_a_joint_phase_and_a_removal() {
        let first = Membership::new(ids(&[1, 2, 3]));
        let mut history = ConfigHistory::new(first.clone());
        let learner = first
            .apply(&MembershipChange::add_learner(NodeId(4), "4"))
            .unwrap();
        history.on_committed(LogIndex(3), &learner, Some(NodeId(1)), 10);
        let joint = learner
            .apply(
                &MembershipChange::default()
                    .promote(NodeId(4))
                    .remove(NodeId(1)),
            )
            .unwrap();
        history.on_committed(LogIndex(5), &joint, Some(NodeId(1)), 20);
        assert_eq!(history.removal(NodeId(1)), None, "still an outgoing voter");
        history.on_committed(LogIndex(6), &joint.leave_joint(), Some(NodeId(1)), 30);
        let counts = history.counts;
        assert_eq!(
            (
                counts.learners_added,
                counts.promoted,
                counts.joint_committed
            ),
            (1, 1, 1)
        );
        assert_eq!(
            (
                counts.completed,
                counts.nodes_removed,
                counts.leaders_removed
            ),
            (2, 1, 1)
        );
        assert_eq!(history.removal(NodeId(1)).map(|r| r.at_ms), Some(30));
        assert_eq!(history.latest().0, LogIndex(6));
        assert_eq!(history.at(LogIndex(4)), (LogIndex(3), &learner));
        assert_eq!(history.at(LogIndex(0)), (LogIndex::ZERO, &first));
    }
}
