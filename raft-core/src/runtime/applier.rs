//! The apply task (NuRaft's commit thread): calls the state machine in log order and answers
//! the callers waiting on entries.
//!
//! It receives, in the engine's output order, the entries to pre-commit, rollbacks and commit
//! indexes. Pre-committed entries wait here until they commit, so a commit needs no log read;
//! only entries committed before this process pre-committed them (after a restart) are read
//! back from the log store. Callers' waiters are kept in index order and resolved with the
//! commit results (or, in async replication mode, the pre-commit results). A rollback resolves
//! no waiter: an entry removed here may still commit, from the copy another node holds, under a
//! later leader. A waiter is answered when its indexes commit: with the results if the committed
//! entries are its own (same term), with `Error::Discarded` if other entries committed there.
//!
//! Snapshots go through here too, in the same order: `Snapshot` captures the state right after
//! the commits before it (the data is then written by a task of its own while commits go on),
//! and `Restore` replaces the state with the store's latest snapshot.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use metrics::Gauge;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{Instrument, error, info, warn};

use super::events::Event;
use super::results::{Appended, Notify, Wait};
use super::snapshots::{SnapshotMetrics, write_snapshot};
use crate::error::Error;
use crate::snapshot::SnapshotReader;
use crate::state_machine::StateMachine;
use crate::storage::LogStore;
use crate::types::{Entry, EntryInfo, LogId, LogIndex, Membership};

/// Work for the apply task, in engine output order.
pub(crate) enum ApplyOp {
    /// Proposers wait on their entries (one op for a whole round of proposals).
    Wait(Vec<Wait>),
    /// These entries were appended to the log.
    PreCommit(Vec<Entry>),
    /// Entries `first..=last` are about to be removed from the log.
    Rollback { first: LogIndex, last: LogIndex },
    /// Everything up to this index is committed.
    Commit(LogIndex),
    /// Capture the state (everything up to `last_log_id` is applied) and store a snapshot.
    Snapshot {
        last_log_id: LogId,
        membership: Membership,
    },
    /// Replace the state with this snapshot's.
    Restore(Arc<dyn SnapshotReader>),
}

struct Waiter {
    /// The term the call's entries were appended in: with the index, what identifies them.
    term: crate::types::Term,
    first: LogIndex,
    last: LogIndex,
    results: Vec<Bytes>,
    notify: Notify,
}

impl Waiter {
    /// The index whose result it waits for next.
    fn next(&self) -> LogIndex {
        self.first.plus(self.results.len() as u64)
    }
}

pub(crate) struct Applier {
    pub(crate) state_machine: Arc<dyn StateMachine>,
    pub(crate) log: Arc<dyn LogStore>,
    pub(crate) events: mpsc::UnboundedSender<Event>,
    pub(crate) applied_index: watch::Sender<LogIndex>,
    pub(crate) applied_gauge: Gauge,
    pub(crate) async_replication: bool,
    pub(crate) batch_max: usize,
    snapshot_metrics: SnapshotMetrics,
    /// The task writing the snapshot being created, if any.
    snapshot_task: Option<JoinHandle<()>>,
    pending: VecDeque<Entry>,
    waiters: VecDeque<Waiter>,
    applied: LogIndex,
    failed: bool,
}

impl Applier {
    pub(crate) fn new(
        state_machine: Arc<dyn StateMachine>,
        log: Arc<dyn LogStore>,
        events: mpsc::UnboundedSender<Event>,
        applied_index: watch::Sender<LogIndex>,
        applied_gauge: Gauge,
        snapshot_metrics: SnapshotMetrics,
        config: &super::NodeConfig,
    ) -> Applier {
        Applier {
            state_machine,
            log,
            events,
            applied_index,
            applied_gauge,
            async_replication: config.async_replication,
            batch_max: config.apply_batch_max,
            snapshot_metrics,
            snapshot_task: None,
            pending: VecDeque::new(),
            waiters: VecDeque::new(),
            applied: LogIndex::ZERO,
            failed: false,
        }
    }

    /// Runs until the loop closes the channel, then answers every waiter left with `Aborted`
    /// (their entries are in the log; whether they commit is unknown).
    pub(crate) async fn run(mut self, mut ops: mpsc::UnboundedReceiver<ApplyOp>) {
        while let Some(op) = ops.recv().await {
            if self.failed {
                if let ApplyOp::Wait(waits) = op {
                    for wait in waits {
                        wait.notify.send(Err(Error::Aborted));
                    }
                }
                continue;
            }
            if let Err(err) = self.handle(op).await {
                error!(%err, "state machine or log read failed; stopping the node");
                self.failed = true;
                let _ = self.events.send(Event::Failed(err));
            }
        }
        for waiter in self.waiters.drain(..) {
            waiter.notify.send(Err(Error::Aborted));
        }
        if let Some(task) = self.snapshot_task.take() {
            // An unfinished snapshot is abandoned (the previous one stays current); wait for
            // the task so no store write outlives the node.
            task.abort();
            let _ = task.await;
        }
    }

    /// A snapshot task that ended without reporting (it panicked) must not leave the engine
    /// waiting for its outcome forever.
    async fn reap_snapshot_task(&mut self) {
        let Some(task) = self.snapshot_task.take_if(|task| task.is_finished()) else {
            return;
        };
        if let Err(err) = task.await {
            error!(%err, "the snapshot task failed");
            let _ = self.events.send(Event::SnapshotFailed);
        }
    }

    async fn handle(&mut self, op: ApplyOp) -> Result<(), Error> {
        self.reap_snapshot_task().await;
        match op {
            ApplyOp::Wait(waits) => {
                for wait in waits {
                    self.add_waiter(wait.first, wait.count, wait.notify);
                }
                Ok(())
            }
            ApplyOp::PreCommit(entries) => self.pre_commit(entries).await,
            ApplyOp::Rollback { first, last } => self.rollback(first, last).await,
            ApplyOp::Commit(upto) => self.commit(upto).await,
            ApplyOp::Snapshot {
                last_log_id,
                membership,
            } => {
                self.snapshot(last_log_id, membership).await;
                Ok(())
            }
            ApplyOp::Restore(reader) => self.restore(reader).await,
        }
    }

    /// Captures the state machine now (nothing else runs on this task meanwhile, so the view is
    /// exactly the state after `last_log_id`) and hands the writing to a task of its own.
    async fn snapshot(&mut self, last_log_id: LogId, membership: Membership) {
        let refuse = |reason: &str| {
            warn!(%last_log_id, "{reason}");
            Event::SnapshotFailed
        };
        let failed = if self.applied != last_log_id.index {
            Some(refuse(
                "not creating a snapshot: the state is not at its index",
            ))
        } else if self
            .snapshot_task
            .as_ref()
            .is_some_and(|t| !t.is_finished())
        {
            Some(refuse(
                "not creating a snapshot: another is still being written",
            ))
        } else {
            match self.state_machine.snapshot().await {
                Ok(source) => {
                    let task = write_snapshot(
                        self.log.clone(),
                        source,
                        last_log_id,
                        membership,
                        self.events.clone(),
                        self.snapshot_metrics.clone(),
                    );
                    self.snapshot_task = Some(tokio::spawn(task.in_current_span()));
                    None
                }
                Err(err) => {
                    warn!(%err, %last_log_id, "the state machine could not take a snapshot");
                    Some(Event::SnapshotFailed)
                }
            }
        };
        if let Some(event) = failed {
            let _ = self.events.send(event);
        }
    }

    /// Replaces the state with the snapshot's: never moves back.
    async fn restore(&mut self, reader: Arc<dyn SnapshotReader>) -> Result<(), Error> {
        let meta = reader.meta().clone();
        let at = meta.last_log_id.index;
        if at <= self.applied {
            return Ok(());
        }
        self.state_machine.restore(reader).await?;
        info!(%meta, "state machine restored from a snapshot");
        self.applied = at;
        while self.pending.front().is_some_and(|e| e.log_id.index <= at) {
            self.pending.pop_front();
        }
        // Callers whose entries the snapshot covers: their results are not known here.
        while self.waiters.front().is_some_and(|w| w.first <= at) {
            if let Some(waiter) = self.waiters.pop_front() {
                waiter.notify.send(Err(Error::Aborted));
            }
        }
        self.applied_index.send_replace(at);
        self.applied_gauge.set(at.0 as f64);
        Ok(())
    }

    fn add_waiter(&mut self, first_id: LogId, count: u64, notify: Notify) {
        let first = first_id.index;
        if count == 0 {
            let first = EntryInfo {
                term: first_id.term,
                index: first,
            };
            let results = Vec::new();
            notify.send(Ok(Appended { first, results }));
            return;
        }
        let waiter = Waiter {
            term: first_id.term,
            first,
            last: first.plus(count - 1),
            results: Vec::with_capacity(usize::try_from(count).unwrap_or(0)),
            notify,
        };
        // Waiters arrive in index order; the search only guards that invariant.
        let position = self
            .waiters
            .iter()
            .rposition(|other| other.first < first)
            .map_or(0, |p| p + 1);
        self.waiters.insert(position, waiter);
    }

    async fn pre_commit(&mut self, entries: Vec<Entry>) -> Result<(), Error> {
        if entries.is_empty() {
            return Ok(());
        }
        let results = self.state_machine.pre_commit(&entries).await?;
        check_result_count("pre_commit", &entries, &results)?;
        if self.async_replication {
            self.deliver(&entries, results);
        }
        self.pending.extend(entries);
        Ok(())
    }

    async fn rollback(&mut self, first: LogIndex, last: LogIndex) -> Result<(), Error> {
        debug_assert!(first > self.applied, "rollback of an applied entry");
        let mut removed = Vec::new();
        while self
            .pending
            .back()
            .is_some_and(|entry| entry.log_id.index >= first)
        {
            removed.extend(self.pending.pop_back());
        }
        debug_assert!(removed.first().is_none_or(|e| e.log_id.index <= last));
        if !removed.is_empty() {
            self.state_machine.rollback(&removed).await?;
        }
        // The callers keep waiting: the entries removed here can still commit from another
        // node's copy (a newer leader that holds them); `deliver` tells at commit time.
        Ok(())
    }

    async fn commit(&mut self, upto: LogIndex) -> Result<(), Error> {
        while self.applied < upto {
            let end = upto.min(self.applied.plus(self.batch_max as u64));
            let batch = self.take_committed(end).await?;
            let Some(last) = batch.last().map(|entry| entry.log_id.index) else {
                if self.restore_covering(self.applied.next()).await? {
                    continue;
                }
                return Err(Error::storage(format!(
                    "committed entries {}..={end} are missing from the log",
                    self.applied.next()
                )));
            };
            let results = self.state_machine.commit(&batch).await?;
            check_result_count("commit", &batch, &results)?;
            self.applied = last;
            if !self.async_replication {
                self.deliver(&batch, results);
            }
            self.applied_index.send_replace(last);
            self.applied_gauge.set(last.0 as f64);
        }
        Ok(())
    }

    /// Committed entries missing from the log because a snapshot from the leader replaced it
    /// while they were queued here (the restore op follows): restore that snapshot now.
    /// Returns whether the store has a snapshot covering `index`.
    async fn restore_covering(&mut self, index: LogIndex) -> Result<bool, Error> {
        match self.log.open_snapshot().await? {
            Some(reader) if reader.meta().last_log_id.index >= index => {
                self.restore(reader).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The committed entries `applied + 1..=end`: pre-committed ones from memory, older ones
    /// (committed before this process pre-committed them) from the log.
    async fn take_committed(&mut self, end: LogIndex) -> Result<Vec<Entry>, Error> {
        let next = self.applied.next();
        while self
            .pending
            .front()
            .is_some_and(|entry| entry.log_id.index < next)
        {
            self.pending.pop_front();
        }
        match self.pending.front().map(|entry| entry.log_id.index) {
            Some(front) if front == next => {
                let mut batch = Vec::new();
                while self
                    .pending
                    .front()
                    .is_some_and(|entry| entry.log_id.index <= end)
                {
                    batch.extend(self.pending.pop_front());
                }
                Ok(batch)
            }
            front => {
                let last = front.map_or(end, |front| end.min(front.prev()));
                let entries = self.log.read(next, last).await?;
                let consecutive = entries
                    .iter()
                    .enumerate()
                    .all(|(offset, entry)| entry.log_id.index == next.plus(offset as u64));
                if entries.first().is_some_and(|e| e.log_id.index != next) {
                    // The log starts later now (compacted under a snapshot): see `commit`.
                    return Ok(Vec::new());
                }
                if !consecutive {
                    return Err(Error::storage(format!(
                        "log store returned non-consecutive entries for {next}..={last}"
                    )));
                }
                Ok(entries)
            }
        }
    }

    /// Hands the results of `entries` (consecutive) to the waiters that cover them.
    ///
    /// An entry answers the waiter of its index whose term it has; a waiter of the same index
    /// with another term lost that index to this entry: its commands from there on never
    /// commit (commit order is log order, and this entry now holds the index for good).
    fn deliver(&mut self, entries: &[Entry], results: Vec<Bytes>) {
        if self.waiters.is_empty() {
            return;
        }
        for (entry, result) in entries.iter().zip(results) {
            let LogId { term, index } = entry.log_id;
            let mut result = Some(result);
            let mut position = 0;
            while let Some(waiter) = self.waiters.get_mut(position) {
                if waiter.first > index {
                    break;
                }
                if waiter.next() != index || waiter.term != term {
                    // Only a committed entry of another term at the very index the call waits
                    // on proves its commands from there on never commit. Anything else (an
                    // index passed without the waiter, which registration order rules out, or
                    // a pre-commit in async replication mode) leaves the outcome unknown.
                    let answer = if waiter.next() == index && !self.async_replication {
                        Error::Discarded { index }
                    } else {
                        debug_assert!(self.async_replication, "a waiter's entries passed by");
                        Error::Aborted
                    };
                    if let Some(waiter) = self.waiters.remove(position) {
                        waiter.notify.send(Err(answer));
                    }
                    continue;
                }
                waiter.results.extend(result.take());
                if index == waiter.last
                    && let Some(waiter) = self.waiters.remove(position)
                {
                    let first = EntryInfo {
                        term: waiter.term,
                        index: waiter.first,
                    };
                    let results = waiter.results;
                    waiter.notify.send(Ok(Appended { first, results }));
                    continue;
                }
                position += 1;
            }
        }
    }
}

fn check_result_count(call: &str, entries: &[Entry], results: &[Bytes]) -> Result<(), Error> {
    if results.len() == entries.len() {
        return Ok(());
    }
    let (first, last) = match (entries.first(), entries.last()) {
        (Some(first), Some(last)) => (first.log_id.index, last.log_id.index),
        _ => (LogIndex::ZERO, LogIndex::ZERO),
    };
    Err(Error::state_machine(format!(
        "{call} returned {} results for the {} entries {first}..={last} (one per entry, blank \
         entries included)",
        results.len(),
        entries.len()
    )))
}
