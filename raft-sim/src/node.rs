//! One simulated node: the production engine, a disk that loses what was not synced, and a
//! small key-value state machine.
//!
//! The disk keeps two logs: `log` (what reads see, updated at once, as `LogStore::append`
//! promises) and `durable_log` (what survives a crash). Writes queue as operations; a flush
//! event applies every queued operation to the durable log at once (group commit) and only then
//! is durability reported. A crash throws away the queue, the volatile log, the pending hard
//! state and the state machine.

use std::collections::BTreeMap;

use raft_core::engine::{Engine, LogEntryMeta, RestoredState};
use raft_core::{Entry, HardState, LogIndex, NodeId};

/// A write waiting for the next flush.
#[derive(Clone, Debug)]
pub(crate) enum DiskOp {
    Append(Vec<Entry>, u64),
    Truncate(LogIndex),
}

#[derive(Debug)]
pub(crate) struct SimNode {
    pub(crate) id: NodeId,
    pub(crate) engine: Option<Engine>,
    /// Increases at every crash; events of an earlier life are ignored.
    pub(crate) epoch: u64,
    pub(crate) log: Vec<Entry>,
    pub(crate) durable_log: Vec<Entry>,
    /// The epoch of the last append in `durable_log` (echoed in durability reports).
    pub(crate) durable_epoch: u64,
    /// The epoch of the last append in `log`.
    pub(crate) written_epoch: u64,
    pub(crate) pending_ops: Vec<DiskOp>,
    pub(crate) log_flush_scheduled: bool,
    pub(crate) durable_hard_state: HardState,
    pub(crate) pending_hard_state: Option<HardState>,
    pub(crate) hard_state_flush_scheduled: bool,
    pub(crate) kv: BTreeMap<String, String>,
    pub(crate) applied: LogIndex,
    /// The highest commit index output in this life.
    pub(crate) commit_seen: LogIndex,
    /// The highest index pre-committed and neither committed nor rolled back.
    pub(crate) pre_committed_last: LogIndex,
    /// Reads confirmed by the engine, waiting for `applied` to reach their index.
    pub(crate) pending_reads: Vec<(u64, LogIndex)>,
}

impl SimNode {
    pub(crate) fn new(id: NodeId) -> SimNode {
        SimNode {
            id,
            engine: None,
            epoch: 0,
            log: Vec::new(),
            durable_log: Vec::new(),
            durable_epoch: 0,
            written_epoch: 0,
            pending_ops: Vec::new(),
            log_flush_scheduled: false,
            durable_hard_state: HardState::default(),
            pending_hard_state: None,
            hard_state_flush_scheduled: false,
            kv: BTreeMap::new(),
            applied: LogIndex::ZERO,
            commit_seen: LogIndex::ZERO,
            pre_committed_last: LogIndex::ZERO,
            pending_reads: Vec::new(),
        }
    }

    /// Loses everything not durable.
    pub(crate) fn crash(&mut self) {
        self.engine = None;
        self.epoch += 1;
        self.log = self.durable_log.clone();
        // A restarted engine counts truncations from zero again.
        self.durable_epoch = 0;
        self.written_epoch = 0;
        self.pending_ops.clear();
        self.log_flush_scheduled = false;
        self.pending_hard_state = None;
        self.hard_state_flush_scheduled = false;
        self.kv.clear();
        self.applied = LogIndex::ZERO;
        self.commit_seen = LogIndex::ZERO;
        self.pre_committed_last = LogIndex::ZERO;
        self.pending_reads.clear();
    }

    /// The durable state a restarting engine is built from.
    pub(crate) fn restored_state(&self) -> RestoredState {
        RestoredState {
            hard_state: self.durable_hard_state,
            entries: self
                .durable_log
                .iter()
                .map(|entry| LogEntryMeta {
                    log_id: entry.log_id,
                    payload_len: entry.payload.len(),
                })
                .collect(),
        }
    }

    /// Applies every queued write to the durable log (one group commit).
    pub(crate) fn flush_log(&mut self) {
        for op in self.pending_ops.drain(..) {
            match op {
                DiskOp::Append(entries, epoch) => {
                    self.durable_log.extend(entries);
                    self.durable_epoch = epoch;
                }
                DiskOp::Truncate(from) => {
                    let keep = usize::try_from(from.0.saturating_sub(1)).unwrap_or(usize::MAX);
                    self.durable_log.truncate(keep);
                }
            }
        }
        self.log_flush_scheduled = false;
    }

    pub(crate) fn entry(&self, index: LogIndex) -> Option<&Entry> {
        let position = usize::try_from(index.0.checked_sub(1)?).ok()?;
        self.log.get(position)
    }

    pub(crate) fn durable_entry(&self, index: LogIndex) -> Option<&Entry> {
        let position = usize::try_from(index.0.checked_sub(1)?).ok()?;
        self.durable_log.get(position)
    }

    pub(crate) fn is_up(&self) -> bool {
        self.engine.is_some()
    }
}
