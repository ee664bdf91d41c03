//! The dedicated I/O thread: group commit.
//!
//! The thread sleeps until jobs are queued, then takes *all* of them at once and carries them
//! out in order: appends are encoded into one buffer and written with one `write` per segment,
//! truncations and compactions drop or cut whole segment files, hard states are written to
//! their own file. Then one `fdatasync` covers the whole group, and only after it the durable id
//! is published and hard-state callers are answered. Jobs queued while a group is in flight
//! form the next group, so the group size grows with the load (one fsync for many appends).
//!
//! Order of the steps that keep a crash at any byte safe:
//! - a segment is synced before the next one gets any entry, so only the last segment can have
//!   a torn tail (recovery treats damage anywhere else as corruption);
//! - a new segment is renamed into place and the directory synced before entries in it can be
//!   reported durable;
//! - a truncation removes later segments (newest first, then a directory sync) and cuts the
//!   segment holding `from` durably *before* new entries overwrite the space: a torn overwrite
//!   followed by surviving old records would otherwise look like corruption;
//! - a full (or retired) segment, once synced, is cut to the end of its records before the
//!   next segment is installed, so the files hold no preallocated space but the active
//!   segment's and the one prepared ahead (losing the cut in a crash leaves zeros, which
//!   recovery reads as the end of the segment);
//! - compaction removes whole segments only (oldest first, then a directory sync). So that a
//!   log living in one segment can still shrink, a compaction that leaves the active segment
//!   mostly compacted *retires* it (see [`IoThread::compact`]): the next append starts a new
//!   segment through the ordinary rollover above, and a later compaction past the retired
//!   segment's last entry removes it whole. Nothing is copied or rewritten, and recovery sees
//!   nothing it would not see after a full segment rolled over;
//! - a failed write or sync poisons the log (never retried: after a failed fsync Linux may have
//!   dropped the dirty pages, and a retry that succeeds would acknowledge lost data).

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use raft_core::metrics::{FSYNC_SECONDS, GROUP_COMMIT_ENTRIES};
use raft_core::{Entry, HardState, LogIndex};
use tokio::sync::oneshot;

use crate::error::Error;
use crate::fs::FsFile;
use crate::hard_state;
use crate::record;
use crate::segment::{self, Segment};
use crate::shared::Shared;
use crate::state::Job;

/// Starts the I/O thread for a freshly recovered log.
pub(crate) fn spawn(shared: Arc<Shared>) -> Result<JoinHandle<()>, Error> {
    let active = {
        let state = shared.lock();
        state.segments.last().map(Active::of)
    };
    let Some(active) = active else {
        return Err(Error::Invalid("a log always has a segment".to_owned()));
    };
    let labels: Vec<(&'static str, String)> = shared
        .options
        .node
        .iter()
        .map(|node| ("node", node.to_string()))
        .collect();
    let mut thread = IoThread {
        fsync_seconds: metrics::histogram!(FSYNC_SECONDS, &labels),
        group_entries: metrics::histogram!(GROUP_COMMIT_ENTRIES, &labels),
        shared: Arc::clone(&shared),
        active,
        buf: Vec::new(),
        buf_offsets: Vec::new(),
        buf_last: LogIndex(0),
        unsynced: false,
        entries_in_group: 0,
        fsyncs: 0,
        replies: Vec::new(),
        retired: false,
        prealloc: None,
    };
    std::thread::Builder::new()
        .name("raft-log-io".to_owned())
        .spawn(move || {
            let _guard = PoisonOnPanic(Arc::clone(&thread.shared));
            thread.run();
            if let Some(prealloc) = thread.prealloc.take() {
                let _ = prealloc.join();
            }
        })
        .map_err(|err| Error::io("starting the I/O thread for", &shared.dir, err))
}

/// Poisons the log if the I/O thread panics, so callers fail instead of waiting forever.
struct PoisonOnPanic(Arc<Shared>);

impl Drop for PoisonOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0
                .lock()
                .poison("the log's I/O thread panicked".to_owned());
        }
    }
}

/// The segment being written, as the I/O thread sees it (its records include written ones
/// only; the buffer holds the rest).
struct Active {
    file: Arc<dyn FsFile>,
    path: PathBuf,
    end: u64,
    records: usize,
}

impl Active {
    fn of(segment: &Segment) -> Active {
        Active {
            file: Arc::clone(&segment.file),
            path: segment.path.clone(),
            end: segment.end,
            records: segment.offsets.len(),
        }
    }
}

struct IoThread {
    shared: Arc<Shared>,
    active: Active,
    /// Encoded records not yet written, to go at `active.end`.
    buf: Vec<u8>,
    buf_offsets: Vec<u64>,
    buf_last: LogIndex,
    /// Written to the active segment since its last sync.
    unsynced: bool,
    entries_in_group: usize,
    /// Hard-state callers of the current group, answered after its sync.
    replies: Vec<oneshot::Sender<Result<(), Error>>>,
    /// Segment fsyncs in the current group.
    fsyncs: u64,
    /// A compaction left the active segment mostly compacted: the next append starts a new
    /// segment (once the prepared one is ready), so a later compaction can remove this one.
    retired: bool,
    prealloc: Option<JoinHandle<Result<(), Error>>>,
    fsync_seconds: metrics::Histogram,
    group_entries: metrics::Histogram,
}

impl IoThread {
    fn run(&mut self) {
        loop {
            let jobs = {
                let mut state = self.shared.lock();
                loop {
                    if state.poisoned.is_some() {
                        return;
                    }
                    if !state.jobs.is_empty() {
                        break std::mem::take(&mut state.jobs);
                    }
                    if state.closing {
                        return;
                    }
                    state.io_waiting = true;
                    state = self
                        .shared
                        .wake
                        .wait(state)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    state.io_waiting = false;
                }
            };
            if let Err(err) = self.group(jobs) {
                let reason = err.to_string();
                self.shared.lock().poison(reason.clone());
                for reply in self.replies.drain(..) {
                    let _ = reply.send(Err(Error::Poisoned(reason.clone())));
                }
                return;
            }
        }
    }

    /// Carries out one group of jobs and makes it durable with one sync.
    fn group(&mut self, jobs: Vec<Job>) -> Result<(), Error> {
        let mut hard_state: Option<HardState> = None;
        for job in jobs {
            match job {
                Job::Append(entries) => {
                    for entry in &entries {
                        self.buffer(entry)?;
                    }
                }
                Job::Truncate(from) => {
                    self.flush()?;
                    self.truncate(from)?;
                }
                Job::Compact(before) => {
                    self.flush()?;
                    self.compact(before)?;
                }
                Job::HardState(newer, reply) => {
                    hard_state = Some(newer);
                    self.replies.push(reply);
                }
            }
        }
        self.flush()?;
        if self.unsynced {
            self.sync_active()?;
        }
        if let Some(hard_state) = hard_state {
            // The newest answers every request of the group: each replaces the one before.
            hard_state::save(&*self.shared.fs, &self.shared.dir, hard_state)?;
        }
        {
            let mut state = self.shared.lock();
            if let Some(hard_state) = hard_state {
                state.hard_state = hard_state;
            }
            let written = state.written;
            state.publish_durable(written);
            state.stats.groups += 1;
            state.stats.fsyncs += self.fsyncs;
            state.stats.entries_written += self.entries_in_group as u64;
        }
        for reply in self.replies.drain(..) {
            let _ = reply.send(Ok(()));
        }
        if self.entries_in_group > 0 {
            self.group_entries.record(self.entries_in_group as f64);
            self.entries_in_group = 0;
        }
        self.fsyncs = 0;
        Ok(())
    }

    /// Encodes `entry` into the buffer, moving to a new segment first if it would not fit or
    /// the active one is retired.
    fn buffer(&mut self, entry: &Entry) -> Result<(), Error> {
        let len = record::encoded_len(entry) as u64;
        let records = self.active.records + self.buf_offsets.len();
        let end = self.active.end + self.buf.len() as u64;
        let full = end + len > self.shared.options.segment_bytes;
        if records > 0 && (full || (self.retired && self.prepared())) {
            self.flush()?;
            self.sync_active()?;
            self.trim_active();
            self.roll(entry.log_id.index)?;
        }
        self.buf_offsets
            .push(self.active.end + self.buf.len() as u64);
        record::encode(entry, &mut self.buf)?;
        self.buf_last = entry.log_id.index;
        Ok(())
    }

    /// Writes the buffer to the active segment and makes the records readable from it.
    fn flush(&mut self) -> Result<(), Error> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.active
            .file
            .write_all_at(&self.buf, self.active.end)
            .map_err(|err| Error::io("writing", &self.active.path, err))?;
        let end = self.active.end + self.buf.len() as u64;
        let count = self.buf_offsets.len();
        {
            let mut state = self.shared.lock();
            let budget = self.shared.options.cache_bytes;
            if let Some(segment) = state.segments.last_mut() {
                segment.offsets.extend_from_slice(&self.buf_offsets);
                segment.end = end;
            }
            // While a truncation is queued, entries at and above its `from` in the cache are
            // newer than what the files hold: they must stay cached.
            state.written = self.buf_last.min(state.truncate_floor());
            state.evict_cache(budget);
        }
        self.active.end = end;
        self.active.records += count;
        // Prepare the next segment once this one is half full: early enough that a rollover
        // rarely waits, late enough that an idle log does not write a spare segment of zeros
        // (the zero-fill competes with the log's own syncs for the disk).
        if self.prealloc.is_none() && self.active.end >= self.shared.options.segment_bytes / 2 {
            self.start_prealloc();
        }
        self.entries_in_group += count;
        self.buf.clear();
        // A record larger than a segment grew the buffer past one: give the memory back.
        let segment_bytes =
            usize::try_from(self.shared.options.segment_bytes).unwrap_or(usize::MAX);
        if self.buf.capacity() > segment_bytes {
            self.buf.shrink_to(segment_bytes);
        }
        self.buf_offsets.clear();
        self.unsynced = true;
        Ok(())
    }

    fn sync_active(&mut self) -> Result<(), Error> {
        #[allow(clippy::disallowed_methods)] // a real-time measurement on the I/O thread
        let started = std::time::Instant::now();
        self.active
            .file
            .sync_data()
            .map_err(|err| Error::io("syncing", &self.active.path, err))?;
        self.fsync_seconds.record(started.elapsed().as_secs_f64());
        self.fsyncs += 1;
        self.unsynced = false;
        Ok(())
    }

    /// Gives back the unwritten, preallocated tail of the active segment, which is full (or
    /// retired) and synced: it never gets more records, and until compaction removes it the
    /// disk holds its records only (a retired segment may be mostly zeros). Nothing depends on
    /// it: a crash that loses the new length leaves zeros after the last record, which
    /// recovery reads as the end of the segment, as it always has. A failure costs disk space
    /// only, so it is logged, not fatal.
    fn trim_active(&self) {
        let file = &self.active.file;
        let end = self.active.end;
        let trimmed = file
            .size()
            .and_then(|len| if len > end { file.set_len(end) } else { Ok(()) });
        if let Err(err) = trimmed {
            tracing::warn!(
                file = %self.active.path.display(),
                %err,
                "raft log: could not give back a full segment's unused space"
            );
        }
    }

    /// Whether the next segment is ready (or must be prepared on this thread: no helper
    /// thread could be started), so a roll for a retired segment need not wait for zeros.
    fn prepared(&self) -> bool {
        self.prealloc.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Makes the prepared segment the active one, starting at `first`.
    fn roll(&mut self, first: LogIndex) -> Result<(), Error> {
        let prepared = match self.prealloc.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(Error::Poisoned("segment preallocation panicked".into()))),
            None => self.prepare_now(),
        };
        prepared?;
        let segment = segment::install(&*self.shared.fs, &self.shared.dir, first)?;
        self.active = Active::of(&segment);
        self.retired = false;
        self.shared.lock().segments.push(segment);
        Ok(())
    }

    fn prepare_now(&self) -> Result<(), Error> {
        let options = &self.shared.options;
        segment::prepare(
            &*self.shared.fs,
            &self.shared.dir,
            options.segment_bytes,
            options.zero_fill,
        )
    }

    /// Prepares the next segment on a helper thread, so a rollover rarely waits for it.
    fn start_prealloc(&mut self) {
        let fs = Arc::clone(&self.shared.fs);
        let dir = self.shared.dir.clone();
        let bytes = self.shared.options.segment_bytes;
        let zero_fill = self.shared.options.zero_fill;
        // If no thread can be started, the rollover prepares the segment itself.
        self.prealloc = std::thread::Builder::new()
            .name("raft-log-prealloc".to_owned())
            .spawn(move || segment::prepare(&*fs, &dir, bytes, zero_fill))
            .ok();
    }

    /// Removes entries `from` and above from the files.
    fn truncate(&mut self, from: LogIndex) -> Result<(), Error> {
        let (doomed, written) = {
            let state = self.shared.lock();
            // Every segment starting at or after `from` goes, except the first one (emptied
            // instead: a log always has a segment).
            let doomed: Vec<PathBuf> = state
                .segments
                .iter()
                .skip(1)
                .filter(|segment| segment.first >= from)
                .map(|segment| segment.path.clone())
                .collect();
            let written = state.segments.last().map_or(LogIndex(0), Segment::last);
            (doomed, written)
        };
        if from <= written {
            let fs = &*self.shared.fs;
            for path in doomed.iter().rev() {
                fs.remove(path)
                    .map_err(|err| Error::io("removing", path, err))?;
            }
            if !doomed.is_empty() {
                fs.sync_dir(&self.shared.dir)
                    .map_err(|err| Error::io("syncing directory", &self.shared.dir, err))?;
            }
            self.cut_active(from, doomed.len())?;
        }
        let mut state = self.shared.lock();
        // Truncations run in the order they were queued: this one is the oldest pending.
        state.pending_truncates.pop_front();
        state.written = state.written.min(LogIndex(from.0.saturating_sub(1)));
        Ok(())
    }

    /// Drops the `removed` last segments from the shared view and cuts the new last one at
    /// `from`, durably.
    fn cut_active(&mut self, from: LogIndex, removed: usize) -> Result<(), Error> {
        let (file, path, cut, kept) = {
            let mut state = self.shared.lock();
            let keep = state.segments.len() - removed;
            state.segments.truncate(keep);
            let Some(segment) = state.segments.last_mut() else {
                return Err(Error::Invalid("a log always has a segment".to_owned()));
            };
            let kept = usize::try_from(from.0.saturating_sub(segment.first.0)).unwrap_or(0);
            let cut = segment.offsets.get(kept).copied().unwrap_or(segment.end);
            segment.offsets.truncate(kept);
            segment.end = cut;
            (Arc::clone(&segment.file), segment.path.clone(), cut, kept)
        };
        let capacity = self.shared.options.segment_bytes.max(cut);
        file.set_len(cut)
            .and_then(|()| file.set_len(capacity))
            .and_then(|()| file.sync_data())
            .map_err(|err| Error::io("truncating", &path, err))?;
        self.active = Active {
            file,
            path,
            end: cut,
            records: kept,
        };
        self.unsynced = false;
        Ok(())
    }

    /// Removes the segments whose entries are all below `before` (never the active one); when
    /// the log must continue past every entry on file, removes them all and starts a new
    /// segment at `before`. Then retires the active segment if it is mostly compacted (see
    /// [`retire_after`](IoThread::retire_after)).
    fn compact(&mut self, before: LogIndex) -> Result<(), Error> {
        let (doomed, reset) = {
            let state = self.shared.lock();
            let next = state
                .segments
                .last()
                .map_or(before, |segment| segment.last().next());
            let reset = before > next;
            let doomed: Vec<(PathBuf, u64)> = state
                .segments
                .iter()
                .enumerate()
                .take_while(|&(position, _)| {
                    reset
                        || state
                            .segments
                            .get(position + 1)
                            .is_some_and(|next| next.first <= before)
                })
                .map(|(_, segment)| (segment.path.clone(), segment.end))
                .collect();
            (doomed, reset)
        };
        if doomed.is_empty() {
            self.retire_after(before);
            return Ok(());
        }
        // Oldest first: a crash part-way leaves a suffix of the segments, still a valid log
        // (the snapshot covers what is gone).
        let fs = &*self.shared.fs;
        for (path, _) in &doomed {
            fs.remove(path)
                .map_err(|err| Error::io("removing", path, err))?;
        }
        fs.sync_dir(&self.shared.dir)
            .map_err(|err| Error::io("syncing directory", &self.shared.dir, err))?;
        {
            let mut state = self.shared.lock();
            state.segments.drain(..doomed.len());
            let freed: u64 = doomed.iter().map(|(_, bytes)| bytes).sum();
            state.byte_count = state.byte_count.saturating_sub(freed);
            // Nothing below `before` is in the log any more: the durable id may name the entry
            // just before it (covered by the snapshot), as it names the last of a full log.
            state.written = state.written.max(before.prev());
        }
        if reset {
            // The entries of the removed active segment are compacted: its pending sync is moot.
            // With no segment left, a crash before the next one is installed leaves an empty
            // directory, which opens as a log continuing after the snapshot.
            self.unsynced = false;
            self.roll(before)?;
        } else {
            self.retire_after(before);
        }
        Ok(())
    }

    /// Retires the active segment when a compaction before `before` covered at least half of
    /// its record bytes and at least an eighth of a segment: the live log then fits in the
    /// active segment's tail, and compaction, which removes whole segments only, could never
    /// shrink it until the segment filled up. The next append starts a new segment instead
    /// (once the prepared one is ready, which this starts), so the next compaction past the
    /// retired segment's last entry removes it. The eighth bounds the extra work: each early
    /// rollover prepares (zero-fills) one more segment, at most once per eighth of a segment
    /// of entries written.
    fn retire_after(&mut self, before: LogIndex) {
        if self.retired {
            return;
        }
        let compacted = {
            let state = self.shared.lock();
            let Some(active) = state.segments.last() else {
                return;
            };
            if before <= active.first {
                return;
            }
            usize::try_from(before.0 - active.first.0)
                .ok()
                .and_then(|position| active.offsets.get(position).copied())
                .unwrap_or(active.end)
        };
        let segment_bytes = self.shared.options.segment_bytes;
        if compacted == 0 || compacted < self.active.end / 2 || compacted < segment_bytes / 8 {
            return;
        }
        self.retired = true;
        if self.prealloc.is_none() {
            self.start_prealloc();
        }
    }
}
