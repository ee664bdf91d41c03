//! The log's [`State`], which the store's callers and its I/O thread share under one mutex
//! (the store's `Shared` holds it), the [`Job`]s callers queue for the I/O thread, and the
//! [`FsStats`] counters.
//!
//! Callers (the runtime's tasks) change the *logical* log at once: an append is readable on
//! return, a truncation hides entries on return. The I/O thread changes the *physical* log
//! (segments, written offsets) as it catches up with the jobs the callers queued, in order.

use std::collections::VecDeque;
use std::sync::Arc;

use raft_core::engine::LogEntryMeta;
use raft_core::{Entry, HardState, LogId, LogIndex, Membership};
use tokio::sync::{oneshot, watch};

use crate::error::Error;
use crate::record;
use crate::segment::Segment;
use crate::snapshot::file::SnapshotFile;

/// Work for the I/O thread, in the order callers issued it.
#[derive(Debug)]
pub(crate) enum Job {
    Append(Vec<Entry>),
    Truncate(LogIndex),
    Compact(LogIndex),
    HardState(HardState, oneshot::Sender<Result<(), Error>>),
}

/// The shared state.
#[derive(Debug)]
pub(crate) struct State {
    /// The newest durable hard state.
    pub(crate) hard_state: HardState,
    /// The id of the entry just before `first` ([`LogId::ZERO`] when none was compacted; its
    /// term is zero when compacted entries' terms are unknown, unless it is the snapshot's).
    pub(crate) prev: LogId,
    /// The first live entry's index (the next index, when the log is empty).
    pub(crate) first: LogIndex,
    /// The id and size of every live entry, `first..=last`.
    pub(crate) metas: VecDeque<LogEntryMeta>,
    /// The membership entries among the live entries, in index order: found by the scan at
    /// open, added by appends, dropped with the entries by truncation and compaction. They are
    /// rare, so `restore` reports them without reading the log again.
    pub(crate) memberships: Vec<(LogId, Membership)>,
    /// The newest entries, so recent reads (replication, apply) need no disk read. Every
    /// entry not yet written to a file is here.
    pub(crate) cache: VecDeque<Entry>,
    pub(crate) cache_bytes: u64,
    /// The last entry written to a segment file (and so readable from it).
    pub(crate) written: LogIndex,
    /// The segment files in index order; the last is the one being written.
    pub(crate) segments: Vec<Segment>,
    /// Record bytes of every entry the segments hold or will hold: compaction lowers it when
    /// it removes segments. Snapshot files are not counted (the snapshot policy compares this
    /// with its threshold, and a snapshot larger than it would otherwise trigger another), nor
    /// preallocated zeros (at most the active segment's unwritten tail and the segment
    /// prepared ahead).
    pub(crate) byte_count: u64,
    /// The latest durable snapshot.
    pub(crate) snapshot: Option<Arc<SnapshotFile>>,
    /// Jobs not yet taken by the I/O thread.
    pub(crate) jobs: Vec<Job>,
    /// The `from` of every truncation queued and not yet carried out, oldest first: entries at
    /// and above the lowest are (or will be) replaced, so neither `written` nor the durable id
    /// may reach them until the truncation is done.
    pub(crate) pending_truncates: VecDeque<LogIndex>,
    /// Truncations so far: a read that planned file ranges before one may find them rewritten.
    pub(crate) truncations: u64,
    /// Publishes the last durable entry; dropped when the log is poisoned.
    pub(crate) durable: Option<watch::Sender<LogId>>,
    /// Why the log accepts no more writes, once it does not.
    pub(crate) poisoned: Option<String>,
    /// The last durable id published before the log was poisoned.
    pub(crate) durable_at_poison: LogId,
    pub(crate) closing: bool,
    /// The I/O thread sleeps on the condition variable (only then does a new job need a
    /// wake-up call: it checks the queue under this lock before sleeping).
    pub(crate) io_waiting: bool,
    pub(crate) stats: FsStats,
}

/// Counters of a log's I/O since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FsStats {
    /// Groups of jobs the I/O thread carried out (each ends with at most one log fsync).
    pub groups: u64,
    /// `fdatasync` calls on segment files that made appended entries durable: at most one per
    /// group, plus one for each segment filled up within a group. A group's count is added
    /// under the same lock that publishes its durable entry, so once an entry is seen durable
    /// the syncs that made it so are counted. Not counted: the sync that cuts a segment for a
    /// truncation, and the syncs of preallocation, hard state, snapshots and recovery.
    pub fsyncs: u64,
    /// Entries written to segment files.
    pub entries_written: u64,
}

impl State {
    /// The last entry ([`State::prev`] when the log is empty).
    pub(crate) fn last(&self) -> LogId {
        self.metas.back().map_or(self.prev, |meta| meta.log_id)
    }

    /// The id of live entry `index`, or of the entry just before the first.
    pub(crate) fn id_at(&self, index: LogIndex) -> Option<LogId> {
        if index == self.prev.index {
            return Some(self.prev);
        }
        let offset = index.0.checked_sub(self.first.0)?;
        self.metas
            .get(usize::try_from(offset).ok()?)
            .map(|meta| meta.log_id)
    }

    /// The index the latest snapshot covers up to (zero without one).
    pub(crate) fn snapshot_index(&self) -> LogIndex {
        self.snapshot.as_ref().map_or(LogIndex::ZERO, |s| s.index())
    }

    /// The id to remember for compacted entry `index`: the snapshot's last entry when it is
    /// that one, else `index` with an unknown (zero) term.
    pub(crate) fn compacted_id(&self, index: LogIndex) -> LogId {
        match &self.snapshot {
            Some(snapshot) if snapshot.index() == index => snapshot.last_log_id(),
            _ => LogId {
                term: raft_core::Term(0),
                index,
            },
        }
    }

    /// The index of the first cached entry.
    pub(crate) fn cache_first(&self) -> LogIndex {
        LogIndex(self.last().index.0 + 1 - self.cache.len() as u64)
    }

    /// Fails when the log takes no more writes.
    pub(crate) fn check_writable(&self) -> Result<(), Error> {
        if let Some(reason) = &self.poisoned {
            return Err(Error::Poisoned(reason.clone()));
        }
        if self.closing {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Fails with [`Error::Closed`] once the store was closed (a poisoned log still reads).
    pub(crate) fn check_open(&self) -> Result<(), Error> {
        if self.closing {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Drops the oldest cached entries that are written, while the cache is over `budget`.
    pub(crate) fn evict_cache(&mut self, budget: u64) {
        while self.cache_bytes > budget {
            match self.cache.front() {
                Some(entry) if entry.log_id.index <= self.written => {
                    self.cache_bytes -= record::encoded_len(entry) as u64;
                    self.cache.pop_front();
                }
                _ => break,
            }
        }
    }

    /// The highest index below every pending truncation.
    pub(crate) fn truncate_floor(&self) -> LogIndex {
        self.pending_truncates
            .iter()
            .min()
            .map_or(LogIndex(u64::MAX), |from| LogIndex(from.0 - 1))
    }

    /// Publishes `upto` (clamped below pending truncations) as the last durable entry.
    pub(crate) fn publish_durable(&self, upto: LogIndex) {
        let index = upto.min(self.truncate_floor());
        let Some(id) = self.id_at(index) else {
            return;
        };
        if let Some(durable) = &self.durable {
            durable.send_if_modified(|current| {
                let changed = *current != id;
                *current = id;
                changed
            });
        }
    }

    /// Marks the log unwritable, closes the durability watch and fails every queued job.
    pub(crate) fn poison(&mut self, reason: String) {
        tracing::error!(%reason, "raft log poisoned: no more writes are accepted");
        self.poisoned.get_or_insert(reason.clone());
        if let Some(durable) = self.durable.take() {
            self.durable_at_poison = *durable.borrow();
        }
        for job in self.jobs.drain(..) {
            if let Job::HardState(_, reply) = job {
                let _ = reply.send(Err(Error::Poisoned(reason.clone())));
            }
        }
    }
}
