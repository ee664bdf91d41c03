//! The engine's view of the log: entry ids and sizes, never payloads.
//!
//! Terms are kept as runs (the first index of each term), so `term_at` is a binary search and
//! the memory cost is one pair per term plus four bytes per entry for its payload size (used to
//! cap AppendEntries by bytes). Invariant: runs have strictly increasing first indexes and
//! strictly increasing terms, and `sizes.len() == last - base.index`.

use std::collections::VecDeque;

use crate::types::{LogId, LogIndex, Term};

#[derive(Clone, Debug)]
pub(crate) struct LogIds {
    /// The id just before the first entry held (ZERO until snapshots compact the log).
    base: LogId,
    /// `(first index, term)` for each term present, ascending.
    runs: Vec<(LogIndex, Term)>,
    /// Payload bytes of each entry after `base`.
    sizes: VecDeque<u32>,
}

impl LogIds {
    pub(crate) fn new() -> LogIds {
        LogIds {
            base: LogId::ZERO,
            runs: Vec::new(),
            sizes: VecDeque::new(),
        }
    }

    pub(crate) fn last_index(&self) -> LogIndex {
        self.base.index.plus(self.sizes.len() as u64)
    }

    pub(crate) fn last_log_id(&self) -> LogId {
        let index = self.last_index();
        LogId {
            term: self.term_at(index).unwrap_or(self.base.term),
            index,
        }
    }

    /// The term of the entry at `index`, `None` if the log does not hold it.
    pub(crate) fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.base.index {
            return Some(self.base.term);
        }
        if index < self.base.index || index > self.last_index() {
            return None;
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

    /// Payload bytes of the entry at `index` (0 outside the log).
    pub(crate) fn size_at(&self, index: LogIndex) -> u64 {
        let Some(offset) = index.0.checked_sub(self.base.index.0 + 1) else {
            return 0;
        };
        let offset = usize::try_from(offset).unwrap_or(usize::MAX);
        self.sizes.get(offset).map_or(0, |&s| u64::from(s))
    }

    /// Appends one entry after the last. Panics if it does not follow (an engine bug).
    pub(crate) fn push(&mut self, log_id: LogId, size: u64) {
        assert_eq!(
            log_id.index,
            self.last_index().next(),
            "log ids must be consecutive"
        );
        let last_term = self.last_log_id().term;
        assert!(log_id.term >= last_term, "terms in a log never decrease");
        if self
            .runs
            .last()
            .is_none_or(|&(_, term)| term != log_id.term)
        {
            self.runs.push((log_id.index, log_id.term));
        }
        self.sizes
            .push_back(u32::try_from(size).unwrap_or(u32::MAX));
    }

    /// Removes every entry at `from` and above.
    pub(crate) fn truncate_from(&mut self, from: LogIndex) {
        assert!(
            from > self.base.index,
            "cannot truncate into the compacted prefix"
        );
        let keep = from.0 - self.base.index.0 - 1;
        self.sizes
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
    fn sizes_follow_entries() {
        let mut log = LogIds::new();
        log.push(LogId::new(1, 1), 7);
        log.push(LogId::new(1, 2), 9);
        assert_eq!(log.size_at(LogIndex(2)), 9);
        assert_eq!(log.size_at(LogIndex(3)), 0);
        assert_eq!(log.size_at(LogIndex(0)), 0);
    }
}
