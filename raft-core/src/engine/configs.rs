//! The configurations a node knows: the one its snapshot (or its start) gave it and every
//! membership entry of its log after that, by index.
//!
//! A node uses the latest of them whether or not it has committed (Raft thesis §4.1), so the
//! list follows the log: an append adds, a truncation removes (reverting to the one before),
//! a snapshot that replaces the log resets it. The first one is the base: at or below the
//! snapshot's index (zero for the configuration the node was started with), never truncated,
//! since only entries above the commit index are.

use crate::membership::Membership;
use crate::types::{Entry, LogIndex, Payload};

#[derive(Clone, Debug)]
pub(crate) struct Configs {
    /// `(index, membership)`, strictly ascending by index; never empty.
    list: Vec<(LogIndex, Membership)>,
}

impl Configs {
    /// Only `base`, in force from `index` on.
    pub(crate) fn new(index: LogIndex, base: Membership) -> Configs {
        Configs {
            list: vec![(index, base)],
        }
    }

    /// The configuration in force: the latest one in the log.
    pub(crate) fn latest(&self) -> &Membership {
        self.list
            .last()
            .map_or_else(|| unreachable_empty(), |(_, m)| m)
    }

    /// The index of the latest configuration's entry (zero for a starting configuration).
    pub(crate) fn latest_index(&self) -> LogIndex {
        self.list.last().map_or(LogIndex::ZERO, |&(index, _)| index)
    }

    /// The configuration in force once the log ends at `index`: the latest at or below it.
    pub(crate) fn at(&self, index: LogIndex) -> &Membership {
        let position = self.list.partition_point(|&(at, _)| at <= index);
        let found = position.checked_sub(1).and_then(|p| self.list.get(p));
        found
            .or_else(|| self.list.first())
            .map_or_else(|| unreachable_empty(), |(_, m)| m)
    }

    /// The index of the configuration in force once the log ends at `index`.
    pub(crate) fn index_at(&self, index: LogIndex) -> LogIndex {
        let position = self.list.partition_point(|&(at, _)| at <= index);
        let found = position.checked_sub(1).and_then(|p| self.list.get(p));
        found
            .or_else(|| self.list.first())
            .map_or(LogIndex::ZERO, |&(at, _)| at)
    }

    /// Records the membership entries among `entries`, just appended.
    pub(crate) fn on_append(&mut self, entries: &[Entry]) {
        for entry in entries {
            if let Payload::Membership(membership) = &entry.payload {
                self.push(entry.log_id.index, membership.clone());
            }
        }
    }

    /// Records a membership entry at `index` (after every one held).
    pub(crate) fn push(&mut self, index: LogIndex, membership: Membership) {
        debug_assert!(index > self.latest_index(), "configurations follow the log");
        self.list.push((index, membership));
    }

    /// The log lost its entries from `from` on: so do the configurations (the base stays).
    pub(crate) fn truncate_from(&mut self, from: LogIndex) {
        let keep = self.list.partition_point(|&(at, _)| at < from).max(1);
        self.list.truncate(keep);
    }

    /// A snapshot covers everything up to `index`: the configuration in force there becomes
    /// the base and the earlier ones go.
    pub(crate) fn compact(&mut self, index: LogIndex) {
        let position = self.list.partition_point(|&(at, _)| at <= index);
        self.list.drain(..position.saturating_sub(1));
    }

    /// The log was replaced by a snapshot at `index` holding `membership`.
    pub(crate) fn reset(&mut self, index: LogIndex, membership: Membership) {
        self.list.clear();
        self.list.push((index, membership));
    }
}

#[cold]
fn unreachable_empty() -> &'static Membership {
    // The list is never empty (built with a base, truncation keeps it); an empty
    // membership is the harmless answer should that ever break.
    static EMPTY: std::sync::OnceLock<Membership> = std::sync::OnceLock::new();
    EMPTY.get_or_init(Membership::default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{LogId, NodeId};

    fn m(voters: &[u64]) -> Membership {
        Membership::new(voters.iter().map(|&v| NodeId(v)))
    }

    fn entry(index: u64, membership: Option<Membership>) -> Entry {
        Entry {
            log_id: LogId::new(1, index),
            payload: membership.map_or(Payload::Blank, Payload::Membership),
        }
    }

    #[test]
    fn the_latest_appended_configuration_is_in_force_and_truncation_reverts_it() {
        let mut configs = Configs::new(LogIndex::ZERO, m(&[1, 2, 3]));
        configs.on_append(&[entry(1, None), entry(2, Some(m(&[1, 2]))), entry(3, None)]);
        configs.on_append(&[entry(4, Some(m(&[1])))]);
        assert_eq!(configs.latest(), &m(&[1]));
        assert_eq!(configs.at(LogIndex(3)), &m(&[1, 2]));
        assert_eq!(configs.at(LogIndex(1)), &m(&[1, 2, 3]));
        configs.truncate_from(LogIndex(4));
        assert_eq!(configs.latest(), &m(&[1, 2]));
        configs.truncate_from(LogIndex(1));
        assert_eq!(configs.latest(), &m(&[1, 2, 3]));
    }

    #[test]
    fn compaction_keeps_the_configuration_in_force_at_the_snapshot() {
        let mut configs = Configs::new(LogIndex::ZERO, m(&[1, 2, 3]));
        configs.push(LogIndex(2), m(&[1, 2]));
        configs.push(LogIndex(5), m(&[1]));
        configs.compact(LogIndex(4));
        assert_eq!(configs.at(LogIndex::ZERO), &m(&[1, 2]));
        assert_eq!(configs.latest(), &m(&[1]));
        configs.truncate_from(LogIndex(3));
        assert_eq!(configs.latest(), &m(&[1, 2]));
        configs.reset(LogIndex(9), m(&[4]));
        assert_eq!(
            (configs.latest_index(), configs.latest()),
            (LogIndex(9), &m(&[4]))
        );
    }
}
