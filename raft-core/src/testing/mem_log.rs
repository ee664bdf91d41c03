//! [`MemLogStore`]: a log store in memory, with a simulated disk for tests.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use tokio::sync::watch;

use crate::engine::{LogEntryMeta, RestoredState};
use crate::error::Error;
use crate::snapshot::{BytesReader, SnapshotMeta, SnapshotReader, SnapshotWriter};
use crate::storage::{LogStore, StoreClaim};
use crate::types::{Entry, HardState, LogId, LogIndex, Payload};

/// Bytes of bookkeeping counted per entry by [`LogStore::byte_count`] (a record header).
const ENTRY_OVERHEAD_BYTES: u64 = 24;

/// A [`LogStore`] in memory. Clones share the same log, so a test can keep one to restart a
/// node from it.
///
/// Its "disk" is simulated: with a sync delay every write becomes durable that long after it was
/// issued, in order (one flush at a time, like a group commit); with none, at once.
/// [`simulate_power_loss`](MemLogStore::simulate_power_loss) forgets everything not yet durable.
/// [`fail_writes`](MemLogStore::fail_writes) makes every later write fail, to test how a node
/// stops on a storage error.
#[derive(Clone, Debug)]
pub struct MemLogStore {
    inner: Arc<Inner>,
}

impl Default for MemLogStore {
    /// The same as [`MemLogStore::new`]: an empty log whose first entry is index 1.
    fn default() -> MemLogStore {
        MemLogStore::new()
    }
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    durable: watch::Sender<LogId>,
    claim: StoreClaim,
}

impl Default for Inner {
    fn default() -> Inner {
        Inner {
            state: Mutex::new(State::default()),
            durable: watch::Sender::new(LogId::ZERO),
            claim: StoreClaim::default(),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// Entries from `first_index` on.
    entries: VecDeque<Entry>,
    first_index: LogIndex,
    hard_state: HardState,
    durable_hard_state: HardState,
    payload_bytes: u64,
    durable_index: LogIndex,
    sync_delay: Duration,
    /// Writes issued but not yet durable: (issue generation, last index written).
    unsynced: VecDeque<(u64, LogIndex)>,
    /// Bumped by every truncation; `truncated_from[g]` is where the truncation that ended
    /// generation `g` cut the log.
    generation: u64,
    truncated_from: Vec<LogIndex>,
    flusher_running: bool,
    fail_writes: bool,
    append_calls: u64,
    /// The latest snapshot (snapshots are durable once finished).
    snapshot: Option<Arc<BytesReader>>,
    snapshots_finished: u64,
}

impl State {
    fn last_index(&self) -> LogIndex {
        LogIndex(self.first_index.0 + self.entries.len() as u64).prev()
    }

    fn log_id_at(&self, index: LogIndex) -> Option<LogId> {
        let offset = index.0.checked_sub(self.first_index.0)?;
        let entry = self.entries.get(usize::try_from(offset).ok()?)?;
        Some(entry.log_id)
    }

    /// Removes every entry at `from` and above; below the first entry, the log becomes empty
    /// with `from` as its next index.
    fn remove_from(&mut self, from: LogIndex) {
        if from < self.first_index {
            self.entries.clear();
            self.payload_bytes = 0;
            self.first_index = from;
            return;
        }
        let keep = from.0.saturating_sub(self.first_index.0);
        let keep = usize::try_from(keep).unwrap_or(usize::MAX);
        let removed: u64 = self
            .entries
            .iter()
            .skip(keep)
            .map(|e| e.payload.len())
            .sum();
        self.entries.truncate(keep);
        self.payload_bytes -= removed;
    }

    /// The durable id to publish: the entry at the durable index of the current log.
    fn durable_id(&self) -> LogId {
        self.log_id_at(self.durable_index).unwrap_or(LogId::ZERO)
    }

    /// Where a write of generation `generation` up to `last` still counts, after truncations.
    fn effective(&self, generation: u64, last: LogIndex) -> LogIndex {
        let start = usize::try_from(generation).unwrap_or(usize::MAX);
        self.truncated_from
            .iter()
            .skip(start)
            .fold(last, |last, from| last.min(from.prev()))
    }
}

impl MemLogStore {
    /// An empty log whose writes are durable at once.
    #[must_use]
    pub fn new() -> MemLogStore {
        let store = MemLogStore {
            inner: Arc::default(),
        };
        store.state().first_index = LogIndex(1);
        store
    }

    /// As a trait object for [`Node::start`](crate::runtime::Node::start).
    #[must_use]
    pub fn into_arc(self) -> Arc<dyn LogStore> {
        Arc::new(self)
    }

    /// The last entry of the log, durable or not ([`LogId::ZERO`] when empty).
    #[must_use]
    pub fn last_log_id(&self) -> LogId {
        let state = self.state();
        state.log_id_at(state.last_index()).unwrap_or(LogId::ZERO)
    }

    /// Makes later writes durable `delay` after they are issued (a slow disk).
    pub fn set_sync_delay(&self, delay: Duration) {
        self.state().sync_delay = delay;
    }

    /// Makes every later write fail with a storage error.
    pub fn fail_writes(&self, fail: bool) {
        self.state().fail_writes = fail;
    }

    /// Forgets every entry and hard state that was not yet durable, as a power cut would.
    pub fn simulate_power_loss(&self) {
        let mut state = self.state();
        let first_lost = state.durable_index.next();
        state.remove_from(first_lost);
        state.hard_state = state.durable_hard_state;
        state.unsynced.clear();
        let durable = state.durable_id();
        drop(state);
        self.inner.durable.send_replace(durable);
    }

    /// Every entry in the log, in order.
    #[must_use]
    pub fn entries(&self) -> Vec<Entry> {
        self.state().entries.iter().cloned().collect()
    }

    /// The last index known durable.
    #[must_use]
    pub fn durable_index(&self) -> LogIndex {
        self.state().durable_index
    }

    /// The current hard state (durable or not).
    #[must_use]
    pub fn hard_state(&self) -> HardState {
        self.state().hard_state
    }

    /// The first index the log holds (or would hold next, when empty).
    #[must_use]
    pub fn first_index(&self) -> LogIndex {
        self.state().first_index
    }

    /// The latest snapshot's description, if any.
    #[must_use]
    pub fn snapshot_meta(&self) -> Option<SnapshotMeta> {
        self.state().snapshot.as_ref().map(|s| s.meta().clone())
    }

    /// How many snapshots were finished and became the latest.
    #[must_use]
    pub fn snapshots_finished(&self) -> u64 {
        self.state().snapshots_finished
    }

    /// How many times `append` was called (to check that proposals are batched).
    #[must_use]
    pub fn append_calls(&self) -> u64 {
        self.state().append_calls
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the log half-changed (every method
        // mutates after its checks), so a poisoned lock is still usable.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn check_writable(state: &State) -> Result<(), Error> {
        if state.fail_writes {
            return Err(Error::storage("simulated disk failure"));
        }
        Ok(())
    }

    /// Queues the write ending at `last` for the simulated disk, or makes it durable now.
    fn issue_sync(&self, state: &mut State, last: LogIndex) {
        if state.sync_delay.is_zero() {
            state.durable_index = state.durable_index.max(last);
            self.inner.durable.send_replace(state.durable_id());
            return;
        }
        state.unsynced.push_back((state.generation, last));
        if !state.flusher_running {
            state.flusher_running = true;
            let store = self.clone();
            tokio::spawn(async move { store.flush_loop().await });
        }
    }

    /// The simulated disk: completes writes in order, each `sync_delay` after the previous one.
    async fn flush_loop(self) {
        loop {
            let delay = {
                let mut state = self.state();
                if state.unsynced.is_empty() {
                    state.flusher_running = false;
                    return;
                }
                state.sync_delay
            };
            tokio::time::sleep(delay).await;
            let mut state = self.state();
            // One flush covers everything issued so far (group commit).
            while let Some((generation, last)) = state.unsynced.pop_front() {
                let last = state.effective(generation, last);
                state.durable_index = state.durable_index.max(last);
            }
            let durable = state.durable_id();
            drop(state);
            self.inner.durable.send_replace(durable);
        }
    }
}

#[async_trait]
impl LogStore for MemLogStore {
    async fn restore(&self) -> Result<RestoredState, Error> {
        let state = self.state();
        let snapshot = state.snapshot.as_ref().map(|s| s.meta().clone());
        let entries = state
            .entries
            .iter()
            .map(|entry| LogEntryMeta {
                log_id: entry.log_id,
                payload_len: entry.payload.len(),
            })
            .collect();
        let memberships = state
            .entries
            .iter()
            .filter_map(|entry| match &entry.payload {
                Payload::Membership(membership) => Some((entry.log_id, membership.clone())),
                _ => None,
            })
            .collect();
        // Everything present at open is durable.
        let hard_state = state.hard_state;
        drop(state);
        let mut state = self.state();
        state.durable_index = state.last_index();
        let durable = state.durable_id();
        drop(state);
        self.inner.durable.send_replace(durable);
        Ok(RestoredState {
            hard_state,
            snapshot,
            entries,
            memberships,
        })
    }

    async fn append(&self, entries: &[Entry]) -> Result<(), Error> {
        let mut state = self.state();
        Self::check_writable(&state)?;
        let Some(last) = entries.last().map(|e| e.log_id.index) else {
            return Ok(());
        };
        let expected = state.last_index().next();
        if entries.first().map(|e| e.log_id.index) != Some(expected) {
            return Err(Error::storage(format!(
                "append must continue the log at {expected}"
            )));
        }
        state.append_calls += 1;
        for entry in entries {
            state.payload_bytes += entry.payload.len();
            state.entries.push_back(entry.clone());
        }
        self.issue_sync(&mut state, last);
        Ok(())
    }

    async fn truncate(&self, from: LogIndex) -> Result<(), Error> {
        let mut state = self.state();
        Self::check_writable(&state)?;
        state.remove_from(from);
        state.truncated_from.push(from);
        state.generation += 1;
        state.durable_index = state.durable_index.min(from.prev());
        let durable = state.durable_id();
        drop(state);
        self.inner.durable.send_replace(durable);
        Ok(())
    }

    async fn read(&self, first: LogIndex, last: LogIndex) -> Result<Vec<Entry>, Error> {
        let state = self.state();
        if first < state.first_index {
            // Compacted (or never there): the range is not in the log.
            return Ok(Vec::new());
        }
        let from = first.0;
        let start = from - state.first_index.0;
        let end = last.0.min(state.last_index().0);
        if end < from {
            return Ok(Vec::new());
        }
        let count = end + 1 - from;
        let start = usize::try_from(start).unwrap_or(usize::MAX);
        let count = usize::try_from(count).unwrap_or(0);
        Ok(state
            .entries
            .iter()
            .skip(start)
            .take(count)
            .cloned()
            .collect())
    }

    async fn save_hard_state(&self, hard_state: HardState) -> Result<(), Error> {
        let delay = {
            let mut state = self.state();
            Self::check_writable(&state)?;
            state.hard_state = hard_state;
            state.sync_delay
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut state = self.state();
        if state.hard_state == hard_state {
            state.durable_hard_state = hard_state;
        }
        Ok(())
    }

    async fn compact(&self, before: LogIndex) -> Result<(), Error> {
        let removed = {
            let mut state = self.state();
            Self::check_writable(&state)?;
            if before <= state.first_index {
                return Ok(());
            }
            let count = usize::try_from(before.0 - state.first_index.0).unwrap_or(usize::MAX);
            let removed = if count >= state.entries.len() {
                // Past the last entry: the log is empty and continues at `before`.
                std::mem::take(&mut state.entries)
            } else {
                let kept = state.entries.split_off(count);
                std::mem::replace(&mut state.entries, kept)
            };
            state.payload_bytes -= removed.iter().map(|e| e.payload.len()).sum::<u64>();
            state.first_index = before;
            removed
        };
        // Dropped here, outside the lock, so reads and appends from other tasks go on. Handing
        // it to a blocking thread instead was measured worse on 2 cores (p99 of the `http`
        // benchmark ~1.1 ms against ~0.85 ms): that thread competes with the workers and frees
        // memory the workers' allocator arenas own.
        drop(removed);
        Ok(())
    }

    async fn begin_snapshot(&self) -> Result<Box<dyn SnapshotWriter>, Error> {
        Self::check_writable(&self.state())?;
        Ok(Box::new(MemSnapshotWriter {
            store: self.clone(),
            data: BytesMut::new(),
        }))
    }

    async fn open_snapshot(&self) -> Result<Option<Arc<dyn SnapshotReader>>, Error> {
        let snapshot = self.state().snapshot.clone();
        Ok(snapshot.map(|s| s as Arc<dyn SnapshotReader>))
    }

    fn durable(&self) -> watch::Receiver<LogId> {
        self.inner.durable.subscribe()
    }

    fn byte_count(&self) -> u64 {
        let state = self.state();
        state.payload_bytes + state.entries.len() as u64 * ENTRY_OVERHEAD_BYTES
    }

    fn claim(&self) -> &StoreClaim {
        &self.inner.claim
    }
}

/// A snapshot being written to a [`MemLogStore`]: kept in memory until finished.
struct MemSnapshotWriter {
    store: MemLogStore,
    data: BytesMut,
}

#[async_trait]
impl SnapshotWriter for MemSnapshotWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), Error> {
        MemLogStore::check_writable(&self.store.state())?;
        self.data.extend_from_slice(&chunk);
        Ok(())
    }

    async fn finish(self: Box<Self>, meta: SnapshotMeta) -> Result<bool, Error> {
        let data = self.data.freeze();
        if data.len() as u64 != meta.size || crc32c::crc32c(&data) != meta.checksum {
            return Err(Error::storage(format!(
                "{meta}: the data written ({} bytes) does not match it",
                data.len()
            )));
        }
        let mut state = self.store.state();
        MemLogStore::check_writable(&state)?;
        let newer = state
            .snapshot
            .as_ref()
            .is_none_or(|s| s.meta().last_log_id.index < meta.last_log_id.index);
        if newer {
            state.snapshot = Some(Arc::new(BytesReader::new(meta, data)));
            state.snapshots_finished += 1;
        }
        Ok(newer)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::types::Payload;

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            log_id: LogId::new(term, index),
            payload: Payload::Command(Bytes::from(format!("{term}-{index}"))),
        }
    }

    #[tokio::test]
    async fn truncation_lowers_durable_and_reads_see_only_the_current_log() {
        let store = MemLogStore::new();
        store
            .append(&[entry(1, 1), entry(1, 2), entry(1, 3)])
            .await
            .unwrap();
        assert_eq!(*store.durable().borrow(), LogId::new(1, 3));
        store.truncate(LogIndex(2)).await.unwrap();
        assert_eq!(*store.durable().borrow(), LogId::new(1, 1));
        store.append(&[entry(2, 2)]).await.unwrap();
        let read = store.read(LogIndex(1), LogIndex(5)).await.unwrap();
        assert_eq!(read, vec![entry(1, 1), entry(2, 2)]);
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_sync_never_credits_a_write_the_log_no_longer_holds() {
        let store = MemLogStore::new();
        store.set_sync_delay(Duration::from_millis(10));
        store
            .append(&[entry(1, 1), entry(1, 2), entry(1, 3)])
            .await
            .unwrap();
        store.truncate(LogIndex(2)).await.unwrap();
        store.append(&[entry(2, 2)]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(store.durable_index(), LogIndex::ZERO);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(*store.durable().borrow(), LogId::new(2, 2));
    }

    #[tokio::test]
    async fn compaction_drops_the_prefix_and_its_bytes_and_past_the_end_empties_the_log() {
        let store = MemLogStore::new();
        let entries: Vec<Entry> = (1..=3000).map(|i| entry(1, i)).collect();
        store.append(&entries).await.unwrap();
        let bytes = |range: std::ops::RangeInclusive<u64>| -> u64 {
            range
                .map(|i| entry(1, i).payload.len() + ENTRY_OVERHEAD_BYTES)
                .sum()
        };
        assert_eq!(store.byte_count(), bytes(1..=3000));

        store.compact(LogIndex(2001)).await.unwrap();
        assert_eq!(store.byte_count(), bytes(2001..=3000));
        let read = store.read(LogIndex(2001), LogIndex(2003)).await.unwrap();
        assert_eq!(read, vec![entry(1, 2001), entry(1, 2002), entry(1, 2003)]);
        // A range that starts in the compacted prefix is not in the log any more.
        assert!(
            store
                .read(LogIndex(2000), LogIndex(2001))
                .await
                .unwrap()
                .is_empty()
        );
        // Compacting below what is already gone changes nothing.
        store.compact(LogIndex(5)).await.unwrap();
        assert_eq!(store.byte_count(), bytes(2001..=3000));

        // Past the last entry: the log is empty and continues at the cut.
        store.compact(LogIndex(4001)).await.unwrap();
        assert_eq!(store.byte_count(), 0);
        assert!(store.entries().is_empty());
        store.append(&[entry(2, 4001)]).await.unwrap();
        assert_eq!(store.entries(), vec![entry(2, 4001)]);
    }

    #[tokio::test(start_paused = true)]
    async fn power_loss_before_any_sync_leaves_an_empty_log() {
        let store = MemLogStore::new();
        store.set_sync_delay(Duration::from_secs(1));
        store.append(&[entry(1, 1)]).await.unwrap();
        store.simulate_power_loss();
        assert!(store.entries().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn power_loss_keeps_exactly_the_durable_prefix() {
        let store = MemLogStore::new();
        store.append(&[entry(1, 1)]).await.unwrap();
        store.set_sync_delay(Duration::from_secs(1));
        store.append(&[entry(1, 2)]).await.unwrap();
        store.simulate_power_loss();
        assert_eq!(store.entries(), vec![entry(1, 1)]);
        let restored = store.restore().await.unwrap();
        assert_eq!(restored.entries.len(), 1);
    }
}
