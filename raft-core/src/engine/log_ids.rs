//! The engine's view of the log: entry ids and sizes, never payloads.
//!
//! Terms are kept as runs (the first index of each term), so `term_at` is a binary search and
//! the memory cost is one pair per term plus eight bytes per entry: the running total of payload
//! bytes at its end, so the bytes of any range (to cap AppendEntries by bytes, and to tell
//! whether a full batch waits) take two lookups. Invariant: runs have strictly increasing first
//! indexes and strictly increasing terms, `ends.len() == last - base.index`, and `ends` never
//! decreases, starting at or above `base_end`.
//!
//! Below the first entry held there is the compacted prefix, which the latest snapshot covers:
//! the snapshot's last id answers `term_at` for its index even when the log no longer holds it.
//! After a restart the log may begin with entries below the snapshot whose predecessor's term
//! is unknown (the store dropped it): `base_known` says whether `base.term` is real.

use std::collections::VecDeque;

use crate::types::{LogId, LogIndex, Term};

#[derive(Clone, Debug)]
pub(crate) struct LogIds {
    /// The id just before the first entry held (ZERO until snapshots compact the log).
    base: LogId,
    /// Whether `base.term` is known (false only for a restored log whose predecessor is gone).
    base_known: bool,
    /// The last id the latest snapshot covers (ZERO without one).
    snapshot: LogId,
    /// `(first index, term)` for each term present, ascending.
    runs: Vec<(LogIndex, Term)>,
    /// The running total of payload bytes at the end of each entry after `base` (the totals
    /// are absolute, so compaction drops a prefix without rewriting the rest).
    ends: VecDeque<u64>,
    /// The running total at the end of `base`.
    base_end: u64,
}

impl LogIds {
    pub(crate) fn new() -> LogIds {
        LogIds {
            base: LogId::ZERO,
            base_known: true,
            snapshot: LogId::ZERO,
            runs: Vec::new(),
            ends: VecDeque::new(),
            base_end: 0,
        }
    }

    /// An empty log that continues after `base` (a snapshot's last id).
    pub(crate) fn starting_after(base: LogId) -> LogIds {
        LogIds {
            base,
            snapshot: base,
            ..LogIds::new()
        }
    }

    /// A log whose first entry will be at `base + 1`, the term of `base` being unknown (a
    /// snapshot set afterwards answers for its own index).
    pub(crate) fn restored(base: LogIndex) -> LogIds {
        LogIds {
            base: LogId {
                term: Term(0),
                index: base,
            },
            base_known: base == LogIndex::ZERO,
            ..LogIds::new()
        }
    }

    /// The index just before the first entry held.
    pub(crate) fn base_index(&self) -> LogIndex {
        self.base.index
    }

    /// The last id the latest snapshot covers (ZERO without one).
    pub(crate) fn snapshot_id(&self) -> LogId {
        self.snapshot
    }

    /// Records a newer snapshot (its entry must be in the log or be its base). The callers
    /// pass only newer ones: `Core::adopt_snapshot` refuses the others, and a restored log has
    /// none before.
    pub(crate) fn set_snapshot(&mut self, snapshot: LogId) {
        debug_assert!(
            snapshot.index >= self.snapshot.index,
            "snapshots never go back"
        );
        self.snapshot = snapshot;
    }

    /// Drops the entries below `before` (never past the last entry plus one).
    pub(crate) fn compact_before(&mut self, before: LogIndex) {
        let before = before.min(self.last_index().next());
        if before <= self.base.index.next() {
            return;
        }
        let new_base = before.prev();
        let Some(term) = self.term_at(new_base) else {
            return;
        };
        let drop = usize::try_from(new_base.0 - self.base.index.0).unwrap_or(usize::MAX);
        let drop = drop.min(self.ends.len());
        if let Some(&end) = drop.checked_sub(1).and_then(|last| self.ends.get(last)) {
            self.base_end = end;
        }
        self.ends.drain(..drop);
        // Runs that end before `before` go; the run holding `before` stays (its first index
        // is clamped to the base by `first_index_of_run_at`).
        let keep_from = self
            .runs
            .partition_point(|&(first, _)| first <= before)
            .saturating_sub(1);
        self.runs.drain(..keep_from);
        self.base = LogId {
            term,
            index: new_base,
        };
        self.base_known = true;
    }
    pub(crate) fn last_index(&self) -> LogIndex {
        self.base.index.plus(self.ends.len() as u64)
    }

    pub(crate) fn last_log_id(&self) -> LogId {
        let index = self.last_index();
        LogId {
            term: self.term_at(index).unwrap_or(self.snapshot.term),
            index,
        }
    }

    /// The term of the entry at `index`, `None` if the log does not hold it (or it lies in the
    /// compacted prefix, except for the snapshot's own last entry).
    pub(crate) fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.snapshot.index {
            return Some(self.snapshot.term);
        }
        if index < self.base.index || index > self.last_index() {
            return None;
        }
        if index == self.base.index {
            return self.base_known.then_some(self.base.term);
        }
        let run = self.runs.partition_point(|&(first, _)| first <= index);
        self.runs.get(run.checked_sub(1)?).map(|&(_, term)| term)
    }

    pub(crate) fn log_id_at(&self, index: LogIndex) -> Option<LogId> {
        self.term_at(index).map(|term| LogId { term, index })
    }

    /// Whether the log holds exactly this entry.
    pub(crate) fn contains(&self, log_id: LogId) -> bool {
        self.term_at(log_id.index) == Some(log_id.term)
    }

    /// The first index of the run of `term` that contains `index` (for conflict hints).
    pub(crate) fn first_index_of_run_at(&self, index: LogIndex) -> LogIndex {
        let run = self.runs.partition_point(|&(first, _)| first <= index);
        match run.checked_sub(1).and_then(|r| self.runs.get(r)) {
            Some(&(first, _)) => first.max(self.base.index.next()),
            None => self.base.index.next(),
        }
    }

    /// The last index holding an entry of `term`, if the log has any.
    pub(crate) fn last_index_of_term(&self, term: Term) -> Option<LogIndex> {
        let run = self.runs.iter().position(|&(_, t)| t == term)?;
        match self.runs.get(run + 1) {
            Some(&(next_first, _)) => Some(next_first.prev()),
            None => Some(self.last_index()),
        }
    }

    /// Payload bytes of the entries `first..=last` held by the log (0 for an empty range).
    pub(crate) fn bytes_between(&self, first: LogIndex, last: LogIndex) -> u64 {
        let first = first.max(self.base.index.next());
        let last = last.min(self.last_index());
        if last < first {
            return 0;
        }
        self.end_at(last) - self.end_at(first.prev())
    }

    /// The last index in `first..=max_last` such that `first..=last` holds at most
    /// `bytes_max` payload bytes, but at least `first` (a single larger entry still goes).
    pub(crate) fn last_within_bytes(
        &self,
        first: LogIndex,
        max_last: LogIndex,
        bytes_max: u64,
    ) -> LogIndex {
        let limit = self.end_at(first.prev()).saturating_add(bytes_max);
        // Entries whose end is within the limit, counted from the base (`ends` ascends).
        let within = self.ends.partition_point(|&end| end <= limit) as u64;
        self.base.index.plus(within).min(max_last).max(first)
    }

    /// The running total at the end of `index` (`base_end` at or below the base).
    fn end_at(&self, index: LogIndex) -> u64 {
        let Some(offset) = index.0.checked_sub(self.base.index.0 + 1) else {
            return self.base_end;
        };
        let offset = usize::try_from(offset).unwrap_or(usize::MAX);
        self.ends
            .get(offset)
            .or(self.ends.back())
            .map_or(self.base_end, |&end| end)
    }

    /// Appends one entry after the last. Panics if it does not follow (an engine bug).
    pub(crate) fn push(&mut self, log_id: LogId, size: u64) {
        assert_eq!(
            log_id.index,
            self.last_index().next(),
            "log ids must be consecutive"
        );
        if let Some(last_term) = self.term_at(self.last_index()) {
            assert!(log_id.term >= last_term, "terms in a log never decrease");
        }
        if self
            .runs
            .last()
            .is_none_or(|&(_, term)| term != log_id.term)
        {
            self.runs.push((log_id.index, log_id.term));
        }
        let end = self.ends.back().map_or(self.base_end, |&end| end);
        self.ends.push_back(end.saturating_add(size));
    }

    /// Removes every entry at `from` and above.
    pub(crate) fn truncate_from(&mut self, from: LogIndex) {
        assert!(
            from > self.base.index,
            "cannot truncate into the compacted prefix"
        );
        let keep = from.0 - self.base.index.0 - 1;
        self.ends
            .truncate(usize::try_from(keep).unwrap_or(usize::MAX));
        let keep_runs = self.runs.partition_point(|&(first, _)| first < from);
        self.runs.truncate(keep_runs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_of(terms: &[u64]) -> LogIds {
        let mut log = LogIds::new();
        for (i, &t) in terms.iter().enumerate() {
            log.push(LogId::new(t, i as u64 + 1), 10);
        }
        log
    }

    #[test]
    fn term_at_finds_the_run() {
        let log = log_of(&[1, 1, 2, 2, 2, 5]);
        assert_eq!(log.term_at(LogIndex(0)), Some(Term(0)));
        assert_eq!(log.term_at(LogIndex(2)), Some(Term(1)));
        assert_eq!(log.term_at(LogIndex(3)), Some(Term(2)));
        assert_eq!(log.term_at(LogIndex(6)), Some(Term(5)));
        assert_eq!(log.term_at(LogIndex(7)), None);
        assert_eq!(log.last_log_id(), LogId::new(5, 6));
    }

    #[test]
    fn truncate_drops_entries_and_runs() {
        let mut log = log_of(&[1, 1, 2, 2, 3]);
        log.truncate_from(LogIndex(4));
        assert_eq!(log.last_log_id(), LogId::new(2, 3));
        log.truncate_from(LogIndex(3));
        assert_eq!(log.last_log_id(), LogId::new(1, 2));
        assert_eq!(log.last_index_of_term(Term(2)), None);
        log.push(LogId::new(4, 3), 1);
        assert_eq!(log.term_at(LogIndex(3)), Some(Term(4)));
    }

    #[test]
    fn run_boundaries_answer_conflict_hints() {
        let log = log_of(&[1, 1, 2, 2, 2, 5]);
        assert_eq!(log.first_index_of_run_at(LogIndex(4)), LogIndex(3));
        assert_eq!(log.first_index_of_run_at(LogIndex(1)), LogIndex(1));
        assert_eq!(log.last_index_of_term(Term(2)), Some(LogIndex(5)));
        assert_eq!(log.last_index_of_term(Term(5)), Some(LogIndex(6)));
        assert_eq!(log.last_index_of_term(Term(3)), None);
    }

    #[test]
    fn compaction_keeps_ids_above_the_cut_and_the_snapshot_id() {
        let mut log = log_of(&[1, 1, 2, 2, 2, 5]);
        log.set_snapshot(LogId::new(2, 4));
        log.compact_before(LogIndex(4));
        assert_eq!(log.base_index(), LogIndex(3));
        assert_eq!(log.term_at(LogIndex(2)), None);
        assert_eq!(log.term_at(LogIndex(3)), Some(Term(2)));
        assert_eq!(log.term_at(LogIndex(4)), Some(Term(2)));
        assert_eq!(log.first_index_of_run_at(LogIndex(5)), LogIndex(4));
        assert_eq!(log.bytes_between(LogIndex(4), LogIndex(4)), 10);
        assert_eq!(log.last_log_id(), LogId::new(5, 6));
        // Compacting everything leaves the snapshot's id answering for its index.
        log.compact_before(LogIndex(99));
        assert_eq!(log.base_index(), LogIndex(6));
        assert_eq!(log.last_log_id(), LogId::new(5, 6));
        assert_eq!(log.term_at(LogIndex(4)), Some(Term(2)));
        log.push(LogId::new(6, 7), 1);
        assert_eq!(log.last_log_id(), LogId::new(6, 7));
    }

    #[test]
    fn a_second_compaction_drops_only_the_entries_below_it() {
        let mut log = log_of(&[1, 1, 1, 1, 2, 2, 2, 2, 2, 2]);
        log.compact_before(LogIndex(4));
        log.compact_before(LogIndex(6));
        assert_eq!(log.base_index(), LogIndex(5));
        assert_eq!(log.last_log_id(), LogId::new(2, 10));
        assert_eq!(log.term_at(LogIndex(5)), Some(Term(2)));
        assert_eq!(log.term_at(LogIndex(6)), Some(Term(2)));
        assert_eq!(log.bytes_between(LogIndex(6), LogIndex(10)), 50);
    }

    #[test]
    fn compaction_forgets_the_terms_whose_entries_it_drops() {
        let mut log = log_of(&[1, 1, 2, 2, 2, 5]);
        log.compact_before(LogIndex(4));
        assert_eq!(
            log.last_index_of_term(Term(1)),
            None,
            "all of term 1 is gone"
        );
        assert_eq!(log.last_index_of_term(Term(2)), Some(LogIndex(5)));
        assert_eq!(log.last_index_of_term(Term(5)), Some(LogIndex(6)));
    }

    #[test]
    fn a_restored_log_knows_only_the_snapshot_below_its_first_entry() {
        let mut log = LogIds::restored(LogIndex(4));
        assert_eq!(
            log.term_at(LogIndex(4)),
            None,
            "the base's term was dropped"
        );
        for index in 5..=8 {
            log.push(LogId::new(3, index), 1);
        }
        log.set_snapshot(LogId::new(3, 6));
        assert_eq!(log.term_at(LogIndex(6)), Some(Term(3)));
        let empty = LogIds::starting_after(LogId::new(3, 6));
        assert_eq!(empty.last_log_id(), LogId::new(3, 6));
        assert_eq!(empty.term_at(LogIndex(6)), Some(Term(3)));
    }

    #[test]
    fn sizes_follow_entries() {
        let mut log = LogIds::new();
        log.push(LogId::new(1, 1), 7);
        log.push(LogId::new(1, 2), 9);
        let size_at = |index| log.bytes_between(LogIndex(index), LogIndex(index));
        assert_eq!(size_at(2), 9);
        assert_eq!(size_at(3), 0);
        assert_eq!(size_at(0), 0);
        assert_eq!(size_at(1), 7);
        assert_eq!(log.bytes_between(LogIndex(1), LogIndex(2)), 16);
        assert_eq!(log.bytes_between(LogIndex(2), LogIndex(9)), 9);
        assert_eq!(log.bytes_between(LogIndex(3), LogIndex(2)), 0);
    }

    #[test]
    fn last_within_bytes_caps_a_batch() {
        let mut log = LogIds::new();
        for index in 1..=10 {
            log.push(LogId::new(1, index), 10);
        }
        let last = |first, max_last, bytes| {
            log.last_within_bytes(LogIndex(first), LogIndex(max_last), bytes)
                .0
        };
        assert_eq!(last(1, 10, 35), 3);
        assert_eq!(last(4, 10, 30), 6);
        assert_eq!(last(4, 5, 1000), 5);
        assert_eq!(last(4, 10, 5), 4, "a single larger entry still goes");
        assert_eq!(last(9, 20, 1000), 10);
    }

    #[test]
    fn sizes_survive_compaction_and_truncation() {
        let mut log = LogIds::new();
        for (index, size) in [(1, 5), (2, 6), (3, 7), (4, 8)] {
            log.push(LogId::new(1, index), size);
        }
        log.compact_before(LogIndex(3));
        let size_at = |log: &LogIds, index| log.bytes_between(LogIndex(index), LogIndex(index));
        assert_eq!(size_at(&log, 2), 0, "compacted");
        assert_eq!(size_at(&log, 3), 7);
        assert_eq!(log.bytes_between(LogIndex(1), LogIndex(4)), 15);
        log.truncate_from(LogIndex(4));
        log.push(LogId::new(2, 4), 100);
        assert_eq!(size_at(&log, 4), 100);
        assert_eq!(log.bytes_between(LogIndex(3), LogIndex(4)), 107);
    }
}
