//! [`FsLogStore`]: the [`LogStore`] on files.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;
use raft_core::engine::{LogEntryMeta, RestoredState};
use raft_core::{
    Entry, HardState, LogId, LogIndex, LogStore, Payload, SnapshotMeta, SnapshotReader,
    SnapshotWriter, StoreClaim,
};
use tokio::sync::{oneshot, watch};

use crate::error::Error;
use crate::fs::{Fs, FsFile, StdFs};
use crate::io;
use crate::options::FsOptions;
use crate::record::{self, MAX_PAYLOAD_BYTES};
use crate::recover;
use crate::shared::{Handle, Shared};
use crate::snapshot::writer::FsSnapshotWriter;
use crate::state::{FsStats, Job, State};

/// A durable Raft log in a directory of segment files, with group commit on a dedicated I/O
/// thread. Clones share one log.
///
/// `append` returns as soon as the entries are queued and readable; the I/O thread writes every
/// queued job with one `fdatasync` per group and then reports the new durable entry through
/// [`LogStore::durable`]. See the [crate docs](crate) for the file layout and the crash rules.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use raft_storage_fs::{FsLogStore, FsOptions};
///
/// // Opening reads and validates the whole log: do it off the async threads.
/// let store = tokio::task::spawn_blocking(|| {
///     FsLogStore::open("./node-1-log", FsOptions::default())
/// })
/// .await??;
/// let log: Arc<dyn raft_core::LogStore> = Arc::new(store.clone());
/// // ... raft_core::Node::start(id, members, config, log, state_machine, transport) ...
/// // ... node.shutdown().await, then:
/// store.close().await; // waits for the last group, stops the I/O thread, frees the lock
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct FsLogStore {
    handle: Arc<Handle>,
}

impl fmt::Debug for FsLogStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.handle, f)
    }
}

impl FsLogStore {
    /// Opens (creating if needed) the log in `dir`, recovering it after a crash. Blocking: it
    /// reads every segment; from async code call it through `spawn_blocking`.
    ///
    /// # Errors
    /// [`Error::Locked`] when another open log holds `dir`; [`Error::Corrupt`] or
    /// [`Error::MissingEntries`] when the files are damaged before their tail; [`Error::Io`].
    pub fn open(dir: impl AsRef<Path>, options: FsOptions) -> Result<FsLogStore, Error> {
        FsLogStore::open_with(Arc::new(StdFs), dir, options)
    }

    /// Like [`open`](FsLogStore::open), on the file system `fs` (a [`SimFs`] in crash tests).
    ///
    /// # Errors
    /// As [`open`](FsLogStore::open).
    ///
    /// [`SimFs`]: crate::testing::SimFs
    pub fn open_with(
        fs: Arc<dyn Fs>,
        dir: impl AsRef<Path>,
        options: FsOptions,
    ) -> Result<FsLogStore, Error> {
        let dir = dir.as_ref().to_path_buf();
        if options.segment_bytes == 0 {
            return Err(Error::Invalid("segment_bytes must be positive".to_owned()));
        }
        let (mut state, lock) = recover::open(&fs, &dir, &options)?;
        state.durable = Some(watch::Sender::new(state.last()));
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            wake: Condvar::new(),
            dir,
            fs,
            options,
            snapshot_seq: AtomicU64::new(0),
        });
        let thread = io::spawn(Arc::clone(&shared))?;
        Ok(FsLogStore {
            handle: Arc::new(Handle::new(shared, thread, lock)),
        })
    }

    /// Closes the log for every clone: finishes the queued writes (their group's `fdatasync`
    /// included), stops the I/O thread, waits for a snapshot being renamed into place, and then
    /// releases the directory lock, so the directory can be opened again as soon as this
    /// returns, even while clones of this store (or its snapshot writers) still exist.
    ///
    /// Afterwards every call of every clone that would read or change the log fails with
    /// [`Error::Closed`]: appends, truncations, compactions, hard-state saves, reads, `restore`,
    /// `begin_snapshot`, `open_snapshot` and the writes and `finish` of snapshot writers (an
    /// unfinished snapshot's temporary file is left for the next open to remove). Readers from
    /// an earlier `open_snapshot` go on reading their file. Closing twice is harmless; dropping
    /// the last clone without closing does the same work, blocking the dropping thread.
    ///
    /// Stop the node first (`node.shutdown().await`, which waits for its tasks), then close:
    /// a node still running would stop with a storage error at its next write.
    pub async fn close(&self) {
        let handle = Arc::clone(&self.handle);
        if tokio::task::spawn_blocking(move || handle.close())
            .await
            .is_err()
        {
            // The runtime is shutting down and dropped the task: close here, blocking.
            self.handle.close();
        }
    }

    /// The data directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.shared().dir
    }

    /// The first entry still in the log (the index the next append must start at, when the
    /// log is empty).
    #[must_use]
    pub fn first_index(&self) -> LogIndex {
        self.shared().lock().first
    }

    /// The newest durable hard state.
    #[must_use]
    pub fn hard_state(&self) -> HardState {
        self.shared().lock().hard_state
    }

    /// Why the log takes no more writes, if it is poisoned.
    #[must_use]
    pub fn poisoned(&self) -> Option<String> {
        self.shared().lock().poisoned.clone()
    }

    /// The last entry of the log, durable or not ([`LogId::ZERO`] when empty).
    #[must_use]
    pub fn last_log_id(&self) -> LogId {
        self.shared().lock().last()
    }

    /// I/O counters since the log was opened.
    #[must_use]
    pub fn stats(&self) -> FsStats {
        self.shared().lock().stats
    }

    /// The latest durable snapshot's description, if there is one.
    #[must_use]
    pub fn snapshot_meta(&self) -> Option<SnapshotMeta> {
        let state = self.shared().lock();
        state.snapshot.as_ref().map(|s| s.meta().clone())
    }

    /// The segment files, oldest first.
    #[must_use]
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        let state = self.shared().lock();
        state.segments.iter().map(|s| s.path.clone()).collect()
    }

    fn shared(&self) -> &Shared {
        self.handle.shared()
    }

    /// Queues `job`, releases the lock and wakes the I/O thread. The wake comes after the
    /// release, so the woken thread does not find the lock still held and sleep again on it.
    fn submit(&self, mut state: MutexGuard<'_, State>, job: Job) {
        state.jobs.push(job);
        let waiting = state.io_waiting;
        drop(state);
        if waiting {
            self.shared().wake.notify_one();
        }
    }

    fn append_entries(&self, entries: &[Entry]) -> Result<(), Error> {
        let Some(head) = entries.first() else {
            return Ok(());
        };
        for entry in entries {
            if entry.payload.len() > MAX_PAYLOAD_BYTES as u64 {
                return Err(Error::TooLarge {
                    index: entry.log_id.index.0,
                    len: usize::try_from(entry.payload.len()).unwrap_or(usize::MAX),
                    max: MAX_PAYLOAD_BYTES,
                });
            }
        }
        let mut state = self.shared().lock();
        state.check_writable()?;
        let last = state.last();
        let consecutive = entries
            .iter()
            .enumerate()
            .all(|(i, e)| e.log_id.index.0 == last.index.0 + 1 + i as u64);
        let terms_ordered = entries
            .windows(2)
            .all(|pair| matches!(pair, [a, b] if a.log_id.term <= b.log_id.term));
        if !consecutive || !terms_ordered || head.log_id.term < last.term {
            return Err(Error::Invalid(format!(
                "entries starting at {} do not follow the last entry {last}",
                head.log_id
            )));
        }
        for entry in entries {
            let bytes = record::encoded_len(entry) as u64;
            state.metas.push_back(LogEntryMeta {
                log_id: entry.log_id,
                payload_len: entry.payload.len(),
            });
            if let Payload::Membership(membership) = &entry.payload {
                state.memberships.push((entry.log_id, membership.clone()));
            }
            state.cache.push_back(entry.clone());
            state.cache_bytes += bytes;
            state.byte_count += bytes;
        }
        state.evict_cache(self.shared().options.cache_bytes);
        // Behind a queued append the I/O thread is already awake or woken: extend it.
        if let Some(Job::Append(queued)) = state.jobs.last_mut() {
            queued.extend_from_slice(entries);
            return Ok(());
        }
        self.submit(state, Job::Append(entries.to_vec()));
        Ok(())
    }

    fn truncate_entries(&self, from: LogIndex) -> Result<(), Error> {
        let mut state = self.shared().lock();
        state.check_writable()?;
        if from < state.first {
            return Err(Error::Invalid(format!(
                "cannot truncate from {from}: entries before {} are compacted",
                state.first
            )));
        }
        let last = state.last().index;
        if from > last {
            return Ok(());
        }
        // Before the metas shrink: the cache's position is derived from the last entry.
        let cache_first = state.cache_first();
        let kept = usize::try_from(from.0 - state.first.0).unwrap_or(usize::MAX);
        let removed: u64 = state
            .metas
            .iter()
            .skip(kept)
            .map(|meta| record::HEADER_BYTES as u64 + meta.payload_len)
            .sum();
        state.metas.truncate(kept);
        state.memberships.retain(|(log_id, _)| log_id.index < from);
        state.byte_count = state.byte_count.saturating_sub(removed);
        let cache_kept = usize::try_from(from.0.saturating_sub(cache_first.0)).unwrap_or(0);
        let dropped: u64 = state
            .cache
            .iter()
            .skip(cache_kept)
            .map(|entry| record::encoded_len(entry) as u64)
            .sum();
        state.cache.truncate(cache_kept);
        state.cache_bytes -= dropped;
        let below = LogIndex(from.0 - 1);
        state.written = state.written.min(below);
        state.pending_truncates.push_back(from);
        state.truncations += 1;
        // The durable id describes entries still in the log (LogStore contract).
        let id = state.last();
        if let Some(durable) = &state.durable {
            durable.send_if_modified(|current| {
                let stale = current.index >= from;
                if stale {
                    *current = id;
                }
                stale
            });
        }
        self.submit(state, Job::Truncate(from));
        Ok(())
    }

    fn compact_entries(&self, before: LogIndex) -> Result<(), Error> {
        let mut state = self.shared().lock();
        state.check_writable()?;
        if before <= state.first {
            return Ok(());
        }
        let covered = state.snapshot_index();
        if before > covered.next() {
            return Err(Error::Invalid(format!(
                "cannot compact the log before {before}: the latest snapshot covers entries only up to {covered}"
            )));
        }
        let last = state.last().index;
        let prev = match state.id_at(before.prev()) {
            Some(prev) if before <= last.next() => prev,
            // Past the last entry: the log becomes empty and continues at `before`.
            _ => state.compacted_id(before.prev()),
        };
        let dropped = usize::try_from(before.0 - state.first.0)
            .unwrap_or(usize::MAX)
            .min(state.metas.len());
        state.metas.drain(..dropped);
        state
            .memberships
            .retain(|(log_id, _)| log_id.index >= before);
        while state
            .cache
            .front()
            .is_some_and(|entry| entry.log_id.index < before)
        {
            if let Some(entry) = state.cache.pop_front() {
                state.cache_bytes -= record::encoded_len(&entry) as u64;
            }
        }
        state.prev = prev;
        state.first = before;
        self.submit(state, Job::Compact(before));
        Ok(())
    }

    async fn read_entries(&self, first: LogIndex, last: LogIndex) -> Result<Vec<Entry>, Error> {
        let (disk, mut cached, truncations) = {
            let state = self.shared().lock();
            // After close the files may belong to another open log.
            state.check_open()?;
            let first = first.max(state.first);
            let last = last.min(state.last().index);
            if first > last {
                return Ok(Vec::new());
            }
            let cache_first = state.cache_first();
            let cached: Vec<Entry> = state
                .cache
                .iter()
                .skip(usize::try_from(first.0.saturating_sub(cache_first.0)).unwrap_or(0))
                .take_while(|entry| entry.log_id.index <= last)
                .cloned()
                .collect();
            let disk_last = last.min(LogIndex(cache_first.0 - 1));
            (
                disk_plan(&state, first, disk_last),
                cached,
                state.truncations,
            )
        };
        if disk.is_empty() {
            return Ok(cached);
        }
        let expected: u64 = disk.iter().map(|read| read.count).sum();
        let read = tokio::task::spawn_blocking(move || read_from_disk(disk))
            .await
            .map_err(|err| Error::Invalid(format!("log read task failed: {err}")))?;
        // Closed meanwhile: another open log may have changed the files under the read.
        self.shared().lock().check_open()?;
        let mut entries = match read {
            Ok(entries) => entries,
            // A truncation since the plan may have cut or rewritten the ranges: the entries
            // are not in the log any more, which is "fewer", not an error.
            Err(_) if self.shared().lock().truncations != truncations => return Ok(Vec::new()),
            Err(err) => return Err(err),
        };
        // A truncation may have replaced entries while the files were read: keep only those
        // still in the log, and the cached ones only if the disk part is whole.
        let state = self.shared().lock();
        let valid = entries
            .iter()
            .take_while(|entry| state.id_at(entry.log_id.index) == Some(entry.log_id))
            .count();
        entries.truncate(valid);
        if valid as u64 == expected {
            let still = cached
                .iter()
                .take_while(|entry| state.id_at(entry.log_id.index) == Some(entry.log_id))
                .count();
            cached.truncate(still);
            entries.append(&mut cached);
        }
        Ok(entries)
    }

    fn writable(&self) -> Result<(), Error> {
        self.shared().lock().check_writable()
    }

    async fn save(&self, hard_state: HardState) -> Result<(), Error> {
        let (reply, answer) = oneshot::channel();
        {
            let state = self.shared().lock();
            state.check_writable()?;
            self.submit(state, Job::HardState(hard_state, reply));
        }
        match answer.await {
            Ok(result) => result,
            // The I/O thread stopped without answering: it poisoned the log.
            Err(_) => Err(self.writable().err().unwrap_or(Error::Closed)),
        }
    }
}

/// A run of written entries to read from one segment file.
struct DiskRead {
    file: Arc<dyn FsFile>,
    path: PathBuf,
    start: u64,
    end: u64,
    first: LogIndex,
    count: u64,
}

/// The file ranges holding entries `first..=last` (all written).
fn disk_plan(state: &State, first: LogIndex, last: LogIndex) -> Vec<DiskRead> {
    let mut reads = Vec::new();
    let mut next = first;
    while next <= last {
        let position = state
            .segments
            .partition_point(|segment| segment.first <= next);
        let Some(segment) = position.checked_sub(1).and_then(|p| state.segments.get(p)) else {
            break;
        };
        let upto = last.min(segment.last());
        let Some((start, end)) = segment.byte_range(next, upto) else {
            break;
        };
        reads.push(DiskRead {
            file: Arc::clone(&segment.file),
            path: segment.path.clone(),
            start,
            end,
            first: next,
            count: upto.0 + 1 - next.0,
        });
        next = LogIndex(upto.0 + 1);
    }
    reads
}

fn read_from_disk(reads: Vec<DiskRead>) -> Result<Vec<Entry>, Error> {
    let mut entries = Vec::new();
    for read in reads {
        let mut buf = vec![0; usize::try_from(read.end - read.start).unwrap_or(0)];
        read.file
            .read_exact_at(&mut buf, read.start)
            .map_err(|err| Error::io("reading", &read.path, err))?;
        entries.extend(record::decode_exact(
            &Bytes::from(buf),
            &read.path,
            read.start,
            read.first,
        )?);
    }
    Ok(entries)
}

#[async_trait]
impl LogStore for FsLogStore {
    async fn restore(&self) -> Result<RestoredState, raft_core::Error> {
        // Start from a durable log: wait for the writes queued so far.
        self.writable()?;
        let target = self.shared().lock().last().index;
        let mut durable = self.durable();
        while durable.borrow_and_update().index < target {
            if durable.changed().await.is_err() {
                return Err(self.writable().err().unwrap_or(Error::Closed).into());
            }
        }
        let state = self.shared().lock();
        let covered = state.snapshot_index();
        if state.first > covered.next() {
            // Recovery refuses such a log and compaction never makes one: a broken invariant.
            return Err(Error::Uncovered {
                file: self.dir().to_path_buf(),
                first: state.first.0,
                snapshot_index: covered.0,
            }
            .into());
        }
        Ok(RestoredState {
            hard_state: state.hard_state,
            snapshot: state.snapshot.as_ref().map(|s| s.meta().clone()),
            entries: state.metas.iter().copied().collect(),
            memberships: state.memberships.clone(),
        })
    }

    async fn append(&self, entries: &[Entry]) -> Result<(), raft_core::Error> {
        Ok(self.append_entries(entries)?)
    }

    async fn truncate(&self, from: LogIndex) -> Result<(), raft_core::Error> {
        Ok(self.truncate_entries(from)?)
    }

    async fn read(&self, first: LogIndex, last: LogIndex) -> Result<Vec<Entry>, raft_core::Error> {
        Ok(self.read_entries(first, last).await?)
    }

    async fn save_hard_state(&self, hard_state: HardState) -> Result<(), raft_core::Error> {
        Ok(self.save(hard_state).await?)
    }

    async fn compact(&self, before: LogIndex) -> Result<(), raft_core::Error> {
        Ok(self.compact_entries(before)?)
    }

    async fn begin_snapshot(&self) -> Result<Box<dyn SnapshotWriter>, raft_core::Error> {
        Ok(Box::new(
            FsSnapshotWriter::begin(Arc::clone(&self.handle)).await?,
        ))
    }

    async fn open_snapshot(&self) -> Result<Option<Arc<dyn SnapshotReader>>, raft_core::Error> {
        let state = self.shared().lock();
        state.check_open()?;
        Ok(state
            .snapshot
            .clone()
            .map(|snapshot| snapshot as Arc<dyn SnapshotReader>))
    }

    fn durable(&self) -> watch::Receiver<LogId> {
        let state = self.shared().lock();
        match &state.durable {
            Some(sender) => sender.subscribe(),
            // Poisoned: a closed watch, which the runtime takes as a storage failure.
            None => watch::channel(state.durable_at_poison).1,
        }
    }

    fn byte_count(&self) -> u64 {
        self.shared().lock().byte_count
    }

    fn claim(&self) -> &StoreClaim {
        self.handle.claim()
    }
}
