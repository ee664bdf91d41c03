//! One simulated node: the production engine, a disk that loses what was not synced, and a
//! small key-value state machine.
//!
//! The disk keeps two logs: `log` (what reads see, updated at once, as `LogStore::append`
//! promises) and `durable_log` (what survives a crash). Writes queue as operations; a flush
//! event applies every queued operation to the durable log at once (group commit) and only then
//! is durability reported. Both logs may start above index 1 once snapshots compact them.
//!
//! The latest snapshot is durable the moment it is stored (a store writes it aside and
//! renames it into place); a snapshot being received from the leader is not, until its last
//! chunk. A crash throws away the queue, the volatile log, the pending hard state, the
//! snapshot being received and the state machine; a wipe (a replaced machine) also loses the
//! durable log and snapshot, keeping only term and vote.
//!
//! With membership churn the world holds more nodes than the cluster: a node is started when
//! the nemesis adds it (with an empty membership: it waits to be added), and a removed node
//! runs on until the nemesis stops it for good (`retired`).

use bytes::{Bytes, BytesMut};
use raft_core::engine::{Engine, RestoredState};
use raft_core::{Entry, HardState, LogIndex, Membership, NodeId, SnapshotMeta, Term};

use crate::kv_state::KvState;
use crate::log::SimLog;

/// A write waiting for the next flush.
#[derive(Clone, Debug)]
pub(crate) enum DiskOp {
    Append(Vec<Entry>, u64),
    Truncate(LogIndex),
    Compact(LogIndex),
}

/// A snapshot being received from the leader, chunk after chunk.
#[derive(Clone, Debug)]
pub(crate) struct Receiving {
    pub(crate) meta: SnapshotMeta,
    pub(crate) data: BytesMut,
}

#[derive(Debug)]
pub(crate) struct SimNode {
    pub(crate) id: NodeId,
    pub(crate) engine: Option<Engine>,
    /// The membership the engine is built with at each start: the cluster's first one for
    /// the founding nodes, an empty one for nodes added later (and, with churn, after a wipe).
    /// A snapshot's and the log's configurations replace it.
    pub(crate) boot_membership: Membership,
    /// Stopped for good (a removed node the nemesis shut down): never restarts.
    pub(crate) retired: bool,
    /// Increases at every crash; events of an earlier life are ignored.
    pub(crate) epoch: u64,
    pub(crate) log: SimLog,
    pub(crate) durable_log: SimLog,
    /// The epoch of the last append in `durable_log` (echoed in durability reports).
    pub(crate) durable_epoch: u64,
    /// The epoch of the last append in `log`.
    pub(crate) written_epoch: u64,
    pub(crate) pending_ops: Vec<DiskOp>,
    pub(crate) log_flush_scheduled: bool,
    pub(crate) durable_hard_state: HardState,
    pub(crate) pending_hard_state: Option<HardState>,
    pub(crate) hard_state_flush_scheduled: bool,
    /// The latest durable snapshot and its data.
    pub(crate) snapshot: Option<(SnapshotMeta, Bytes)>,
    /// The snapshot being received from the leader (lost at a crash).
    pub(crate) receiving: Option<Receiving>,
    /// While a snapshot from the leader (or, at a restart, the durable one) replaces the log:
    /// the snapshot's index, at or below which committed entries may leave the log.
    pub(crate) install_window: Option<LogIndex>,
    /// Whether the outputs being run are the ones of the engine's construction.
    pub(crate) starting: bool,
    pub(crate) kv: KvState,
    pub(crate) applied: LogIndex,
    /// The highest commit index output in this life.
    pub(crate) commit_seen: LogIndex,
    /// The highest index pre-committed and neither committed nor rolled back.
    pub(crate) pre_committed_last: LogIndex,
    /// Reads confirmed by the engine, waiting for `applied` to reach their index.
    pub(crate) pending_reads: Vec<(u64, LogIndex)>,
    /// Whether the engine of this life has had a tick (its clock starts at the first).
    pub(crate) ticked: bool,
    /// The time the engine last heard (its clock at its last tick; zero before the first).
    pub(crate) engine_now_ms: u64,
    /// With lease reads: until when (its clock) the engine ignores elections after its start.
    pub(crate) quiet_until_ms: u64,
    /// The last request of a leader the engine took in this life: the term, the leader and
    /// the engine's time then.
    pub(crate) leader_contact: Option<(Term, NodeId, u64)>,
}

impl SimNode {
    pub(crate) fn new(id: NodeId, boot_membership: Membership) -> SimNode {
        SimNode {
            id,
            engine: None,
            boot_membership,
            retired: false,
            epoch: 0,
            log: SimLog::default(),
            durable_log: SimLog::default(),
            durable_epoch: 0,
            written_epoch: 0,
            pending_ops: Vec::new(),
            log_flush_scheduled: false,
            durable_hard_state: HardState::default(),
            pending_hard_state: None,
            hard_state_flush_scheduled: false,
            snapshot: None,
            receiving: None,
            install_window: None,
            starting: false,
            kv: KvState::default(),
            applied: LogIndex::ZERO,
            commit_seen: LogIndex::ZERO,
            pre_committed_last: LogIndex::ZERO,
            pending_reads: Vec::new(),
            ticked: false,
            engine_now_ms: 0,
            quiet_until_ms: 0,
            leader_contact: None,
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
        self.receiving = None;
        self.install_window = None;
        self.starting = false;
        self.kv = KvState::default();
        self.applied = LogIndex::ZERO;
        self.commit_seen = LogIndex::ZERO;
        self.pre_committed_last = LogIndex::ZERO;
        self.pending_reads.clear();
        self.ticked = false;
        self.engine_now_ms = 0;
        self.quiet_until_ms = 0;
        self.leader_contact = None;
    }

    /// Crashes and loses the disk too, as a replaced machine would, except the term and vote:
    /// forgetting a vote given in the current term could elect two leaders in it.
    pub(crate) fn wipe(&mut self) {
        self.crash();
        self.durable_log = SimLog::default();
        self.log = SimLog::default();
        self.snapshot = None;
        self.durable_hard_state.commit = LogIndex::ZERO;
    }

    /// The durable state a restarting engine is built from.
    pub(crate) fn restored_state(&self) -> RestoredState {
        RestoredState {
            hard_state: self.durable_hard_state,
            snapshot: self.snapshot_meta().cloned(),
            entries: self.durable_log.metas(),
            memberships: self.durable_log.memberships(),
        }
    }

    /// Applies every queued write to the durable log (one group commit).
    pub(crate) fn flush_log(&mut self) {
        for op in self.pending_ops.drain(..) {
            match op {
                DiskOp::Append(entries, epoch) => {
                    self.durable_log.append(&entries);
                    self.durable_epoch = epoch;
                }
                DiskOp::Truncate(from) => self.durable_log.truncate(from),
                DiskOp::Compact(before) => self.durable_log.compact(before),
            }
        }
        self.log_flush_scheduled = false;
    }

    pub(crate) fn entry(&self, index: LogIndex) -> Option<&Entry> {
        self.log.get(index)
    }

    pub(crate) fn durable_entry(&self, index: LogIndex) -> Option<&Entry> {
        self.durable_log.get(index)
    }

    /// The latest durable snapshot's meta.
    pub(crate) fn snapshot_meta(&self) -> Option<&SnapshotMeta> {
        self.snapshot.as_ref().map(|(meta, _)| meta)
    }

    /// The index the latest durable snapshot covers (zero without one).
    pub(crate) fn snapshot_index(&self) -> LogIndex {
        self.snapshot_meta()
            .map_or(LogIndex::ZERO, |meta| meta.last_log_id.index)
    }

    /// Makes `meta` the durable snapshot unless one at the same or a higher index is there
    /// (a store keeps only the newest). Returns whether it replaced the current one.
    pub(crate) fn store_snapshot(&mut self, meta: SnapshotMeta, data: Bytes) -> bool {
        if meta.last_log_id.index <= self.snapshot_index() {
            return false;
        }
        self.snapshot = Some((meta, data));
        true
    }

    pub(crate) fn is_up(&self) -> bool {
        self.engine.is_some()
    }

    /// The configuration a restart would put in force: the latest in its durable log, else
    /// its durable snapshot's, else the boot membership.
    pub(crate) fn durable_membership(&self) -> Membership {
        self.durable_log
            .memberships()
            .pop()
            .map(|(_, membership)| membership)
            .or_else(|| self.snapshot_meta().map(|meta| meta.membership.clone()))
            .unwrap_or_else(|| self.boot_membership.clone())
    }

    /// The configuration in force in this node's (volatile) log once it ends just before
    /// `index`: the latest configuration entry below `index`, else the snapshot's, else the
    /// boot membership.
    pub(crate) fn log_membership_before(&self, index: LogIndex) -> &Membership {
        if let Some(membership) = self.log.latest_membership_before(index) {
            return membership;
        }
        self.snapshot_meta()
            .map_or(&self.boot_membership, |meta| &meta.membership)
    }

    /// The node's term: its engine's while it runs, else its durable one.
    pub(crate) fn term(&self) -> Term {
        let durable = self.durable_hard_state.term;
        self.engine
            .as_ref()
            .map_or(durable, |engine| engine.status().term.max(durable))
    }
}

/// The node whose id is `id` among `nodes`: the world numbers nodes from 1 in the order it
/// creates them, so this is a look-up by position (with a search as a fallback).
pub(crate) fn node_by_id(nodes: &[SimNode], id: NodeId) -> Option<&SimNode> {
    let guess = usize::try_from(id.0.wrapping_sub(1)).ok();
    guess
        .and_then(|at| nodes.get(at))
        .filter(|sim| sim.id == id)
        .or_else(|| nodes.iter().find(|sim| sim.id == id))
}
