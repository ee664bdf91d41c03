//! The reference state: what applying the committed entries `1..=i` in order gives, for every
//! `i` reached so far. A snapshot at `s`, and a node's state right after restoring one, must
//! equal it at `s`.
//!
//! Nodes apply committed entries in any interleaving; the first node to apply an index gives
//! its payload (state machine safety, checked separately, makes every other node's the same).
//! The reference advances through consecutive indexes and keeps the digest of the state after
//! each one, so any later snapshot, however old its index, can be checked.

use std::collections::BTreeMap;

use raft_core::{LogIndex, Payload};

use crate::kv_state::KvState;

#[derive(Debug)]
pub(super) struct Reference {
    /// Payloads applied somewhere, waiting for an index before them.
    waiting: BTreeMap<LogIndex, Payload>,
    state: KvState,
    /// `digests[i]`: the state's digest after the entries `1..=i` (`digests[0]`: empty).
    digests: Vec<u64>,
}

impl Default for Reference {
    fn default() -> Reference {
        Reference {
            waiting: BTreeMap::new(),
            state: KvState::default(),
            digests: vec![KvState::default().digest()],
        }
    }
}

impl Reference {
    /// The index the reference state is at.
    fn index(&self) -> LogIndex {
        LogIndex(self.digests.len() as u64 - 1)
    }

    /// Records the committed payload at `index` (the first one seen wins).
    pub(super) fn record(&mut self, index: LogIndex, payload: &Payload) {
        if index <= self.index() {
            return;
        }
        self.waiting.entry(index).or_insert_with(|| payload.clone());
        while let Some(payload) = self.waiting.remove(&self.index().next()) {
            self.state.apply(&payload);
            self.digests.push(self.state.digest());
        }
    }

    /// The digest of the state after the committed entries `1..=index`, if known yet.
    pub(super) fn digest_at(&self, index: LogIndex) -> Option<u64> {
        self.digests.get(usize::try_from(index.0).ok()?).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::encode_put;

    fn put(key: &str, value: &str) -> Payload {
        Payload::Command(encode_put(key, value))
    }

    #[test]
    fn out_of_order_records_wait_for_the_gap() {
        let mut reference = Reference::default();
        reference.record(LogIndex(2), &put("a", "2"));
        assert_eq!(reference.digest_at(LogIndex(2)), None);
        reference.record(LogIndex(1), &put("a", "1"));
        let mut expected = KvState::default();
        expected.apply(&put("a", "1"));
        assert_eq!(reference.digest_at(LogIndex(1)), Some(expected.digest()));
        expected.apply(&put("a", "2"));
        assert_eq!(reference.digest_at(LogIndex(2)), Some(expected.digest()));
        // A second report of an index already applied changes nothing.
        reference.record(LogIndex(1), &put("a", "other"));
        assert_eq!(reference.digest_at(LogIndex(2)), Some(expected.digest()));
    }
}
