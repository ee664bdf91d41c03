//! The in-flight AppendEntries to one follower, by sequence number.
//!
//! A response is matched to its request by `seq`; a response whose request is not in the window
//! (an earlier term, an earlier failure that discarded the window, a duplicate) is stale and
//! must never advance `match_index` (stale responses; ARCHITECTURE.md, "Engine"). Heartbeats are tracked too, so
//! their answers are checked the same way, but only requests carrying entries use the capacity.

use std::collections::VecDeque;

use crate::types::LogIndex;

/// One request in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Inflight {
    pub(crate) seq: u64,
    pub(crate) prev_index: LogIndex,
    /// The last index the request carried (`prev_index` for a heartbeat).
    pub(crate) last_index: LogIndex,
    /// The commit index the request carried.
    pub(crate) commit: LogIndex,
    pub(crate) sent_ms: u64,
}

impl Inflight {
    pub(crate) fn has_entries(&self) -> bool {
        self.last_index > self.prev_index
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Window {
    /// In send order, so seqs ascend.
    requests: VecDeque<Inflight>,
    with_entries: usize,
}

impl Window {
    pub(crate) fn push(&mut self, request: Inflight) {
        debug_assert!(self.requests.back().is_none_or(|r| r.seq < request.seq));
        if request.has_entries() {
            self.with_entries += 1;
        }
        self.requests.push_back(request);
    }

    /// Removes and returns the request `seq`, if it is in flight.
    pub(crate) fn take(&mut self, seq: u64) -> Option<Inflight> {
        let position = self
            .requests
            .binary_search_by_key(&seq, |request| request.seq)
            .ok()?;
        let request = self.requests.remove(position)?;
        if request.has_entries() {
            self.with_entries -= 1;
        }
        Some(request)
    }

    pub(crate) fn contains(&self, seq: u64) -> bool {
        self.requests
            .binary_search_by_key(&seq, |request| request.seq)
            .is_ok()
    }

    /// Requests carrying entries, the ones the capacity limits.
    pub(crate) fn len_with_entries(&self) -> usize {
        self.with_entries
    }

    pub(crate) fn len(&self) -> usize {
        self.requests.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// Whether a request with entries sent before `seq` is still in flight and reaches `index`
    /// (a request that overtook it may have been refused only for arriving first).
    pub(crate) fn earlier_reaches(&self, seq: u64, index: LogIndex) -> bool {
        self.requests
            .iter()
            .take_while(|request| request.seq < seq)
            .any(|request| request.has_entries() && request.last_index >= index)
    }

    /// Forgets every request sent after `seq`: their answers become stale.
    pub(crate) fn forget_after(&mut self, seq: u64) {
        let keep = self.requests.partition_point(|request| request.seq <= seq);
        let dropped = self
            .requests
            .drain(keep..)
            .filter(Inflight::has_entries)
            .count();
        self.with_entries -= dropped;
    }

    /// When the oldest request in flight was sent.
    pub(crate) fn oldest_sent_ms(&self) -> Option<u64> {
        self.requests.iter().map(|r| r.sent_ms).min()
    }

    pub(crate) fn clear(&mut self) {
        self.requests.clear();
        self.with_entries = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(seq: u64, prev: u64, last: u64) -> Inflight {
        Inflight {
            seq,
            prev_index: LogIndex(prev),
            last_index: LogIndex(last),
            commit: LogIndex::ZERO,
            sent_ms: seq * 10,
        }
    }

    #[test]
    fn responses_may_arrive_out_of_order() {
        let mut window = Window::default();
        window.push(request(1, 0, 5));
        window.push(request(2, 5, 9));
        window.push(request(3, 9, 9));
        assert_eq!(window.len_with_entries(), 2);
        assert_eq!(window.take(2), Some(request(2, 5, 9)));
        assert_eq!(window.take(2), None, "a duplicate response is stale");
        assert_eq!(window.take(1), Some(request(1, 0, 5)));
        assert_eq!(window.len_with_entries(), 0);
        assert_eq!(window.len(), 1);
    }

    #[test]
    fn later_requests_can_be_forgotten() {
        let mut window = Window::default();
        window.push(request(1, 0, 5));
        window.push(request(2, 5, 5));
        window.push(request(3, 5, 9));
        window.push(request(4, 9, 12));
        assert!(window.earlier_reaches(3, LogIndex(5)));
        assert!(!window.earlier_reaches(3, LogIndex(6)));
        assert!(
            !window.earlier_reaches(1, LogIndex(0)),
            "nothing before the first"
        );
        window.forget_after(2);
        assert_eq!(window.len(), 2);
        assert_eq!(window.len_with_entries(), 1);
        assert!(window.take(3).is_none());
    }

    #[test]
    fn cleared_window_makes_every_response_stale() {
        let mut window = Window::default();
        window.push(request(1, 0, 5));
        window.clear();
        assert!(window.take(1).is_none());
        assert!(window.is_empty());
        assert_eq!(window.oldest_sent_ms(), None);
    }
}
