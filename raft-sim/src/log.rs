//! A simulated log: consecutive entries from a first index that compaction moves up.
//!
//! The simulated disk keeps two of these per node (what reads see, and what survives a crash).
//! Below `start` lies the compacted prefix, which a snapshot covers; the log may be empty and
//! still continue at `start` (after a snapshot replaced it, or after a compaction past its
//! end). Positions are checked by the safety checker, not here: these methods only keep the
//! shape consistent (`entries[k]` is always the entry at `start + k`).

use raft_core::engine::LogEntryMeta;
use raft_core::{Entry, LogId, LogIndex, Membership, Payload};

/// Entries `start..start + entries.len()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SimLog {
    start: LogIndex,
    entries: Vec<Entry>,
}

impl Default for SimLog {
    fn default() -> SimLog {
        SimLog {
            start: LogIndex(1),
            entries: Vec::new(),
        }
    }
}

impl SimLog {
    /// The index of the first entry held (or of the next one, when empty).
    pub(crate) fn start(&self) -> LogIndex {
        self.start
    }

    /// The index the next appended entry takes.
    pub(crate) fn next_index(&self) -> LogIndex {
        self.start.plus(self.entries.len() as u64)
    }

    /// The last entry's id, if the log holds any entry.
    pub(crate) fn last_log_id(&self) -> Option<LogId> {
        self.entries.last().map(|entry| entry.log_id)
    }

    fn position(&self, index: LogIndex) -> Option<usize> {
        usize::try_from(index.0.checked_sub(self.start.0)?).ok()
    }

    /// The entry at `index`, if held.
    pub(crate) fn get(&self, index: LogIndex) -> Option<&Entry> {
        self.entries.get(self.position(index)?)
    }

    /// The entries `first..=last`, if every one of them is held.
    pub(crate) fn range(&self, first: LogIndex, last: LogIndex) -> Option<&[Entry]> {
        let from = self.position(first)?;
        let to = self.position(last)?;
        self.entries.get(from..=to)
    }

    /// The entries at `from` and above.
    pub(crate) fn entries_from(&self, from: LogIndex) -> &[Entry] {
        let skip = self.position(from).unwrap_or(0).min(self.entries.len());
        self.entries.get(skip..).unwrap_or_default()
    }

    /// Appends after the last entry (the checker verifies the position first).
    pub(crate) fn append(&mut self, entries: &[Entry]) {
        self.entries.extend_from_slice(entries);
    }

    /// Removes every entry at `from` and above. When `from` is at or below the first entry
    /// held, the log becomes empty and continues at `from`.
    pub(crate) fn truncate(&mut self, from: LogIndex) {
        match self.position(from) {
            Some(keep) => self.entries.truncate(keep),
            None => {
                self.entries.clear();
                self.start = from;
            }
        }
    }

    /// Drops the entries below `before`. When `before` is past the last entry, the log becomes
    /// empty and continues at `before`.
    pub(crate) fn compact(&mut self, before: LogIndex) {
        if before <= self.start {
            return;
        }
        if before >= self.next_index() {
            self.entries.clear();
        } else if let Some(drop) = self.position(before) {
            self.entries.drain(..drop);
        }
        self.start = before;
    }

    /// Each entry's id and payload size, as a store reports them at start.
    pub(crate) fn metas(&self) -> Vec<LogEntryMeta> {
        self.entries
            .iter()
            .map(|entry| LogEntryMeta {
                log_id: entry.log_id,
                payload_len: entry.payload.len(),
            })
            .collect()
    }

    /// The latest membership entry below `index`, if the log holds one.
    pub(crate) fn latest_membership_before(&self, index: LogIndex) -> Option<&Membership> {
        // Below the first entry held, nothing is.
        let end = self
            .position(index)
            .map_or(0, |end| end.min(self.entries.len()));
        let below = self.entries.get(..end).unwrap_or_default();
        below.iter().rev().find_map(|entry| match &entry.payload {
            Payload::Membership(membership) => Some(membership),
            _ => None,
        })
    }

    /// Every membership entry, in index order (what a store reports at restart).
    pub(crate) fn memberships(&self) -> Vec<(LogId, Membership)> {
        self.entries
            .iter()
            .filter_map(|entry| match &entry.payload {
                Payload::Membership(membership) => Some((entry.log_id, membership.clone())),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use raft_core::Payload;

    use super::*;

    fn entries(first: u64, last: u64) -> Vec<Entry> {
        (first..=last)
            .map(|index| Entry {
                log_id: LogId::new(1, index),
                payload: Payload::Blank,
            })
            .collect()
    }

    #[test]
    fn compaction_moves_the_start_and_keeps_positions() {
        let mut log = SimLog::default();
        log.append(&entries(1, 6));
        log.compact(LogIndex(4));
        assert_eq!(log.start(), LogIndex(4));
        assert_eq!(log.get(LogIndex(3)), None);
        assert_eq!(
            log.get(LogIndex(5)).map(|e| e.log_id),
            Some(LogId::new(1, 5))
        );
        assert_eq!(
            log.range(LogIndex(4), LogIndex(6)).map(<[Entry]>::len),
            Some(3)
        );
        assert_eq!(log.range(LogIndex(3), LogIndex(6)), None);
        assert_eq!(log.entries_from(LogIndex(5)).len(), 2);
        assert_eq!(log.next_index(), LogIndex(7));
    }

    #[test]
    fn compaction_past_the_end_leaves_an_empty_log_continuing_there() {
        let mut log = SimLog::default();
        log.append(&entries(1, 3));
        log.compact(LogIndex(10));
        assert_eq!(log.last_log_id(), None);
        assert_eq!(log.next_index(), LogIndex(10));
        log.append(&entries(10, 10));
        assert_eq!(
            log.get(LogIndex(10)).map(|e| e.log_id),
            Some(LogId::new(1, 10))
        );
    }

    #[test]
    fn truncating_from_the_first_entry_empties_the_log_at_that_index() {
        let mut log = SimLog::default();
        log.append(&entries(1, 6));
        log.compact(LogIndex(3));
        log.truncate(LogIndex(5));
        assert_eq!(log.last_log_id(), Some(LogId::new(1, 4)));
        log.truncate(LogIndex(3));
        assert_eq!(log.last_log_id(), None);
        assert_eq!(log.next_index(), LogIndex(3));
    }
}
