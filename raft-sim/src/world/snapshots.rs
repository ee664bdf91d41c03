//! The outputs that concern snapshots, run the way the tokio runtime runs them
//! (`raft-core/src/runtime/{executor,snapshot_receiver,applier,peer}.rs`):
//! - `CreateSnapshot`: the state is captured at once (the sim applies synchronously, so the
//!   state is exactly the one after the snapshot's index) and written after a disk latency,
//!   while commits go on; then it becomes the node's latest, if newer, and the engine hears
//!   `SnapshotCreated` (or `SnapshotFailed`). A crash before that loses it: the next life
//!   never hears of it.
//! - `CompactLog`: the log drops its prefix at once; the durable log at the next flush.
//! - `SaveSnapshotChunk`: chunks go to a receive buffer (lost at a crash); the last one makes
//!   the snapshot durable and the latest before any later output runs. Now and then the node
//!   crashes right after, before its log's replacement is durable.
//! - `RestoreSnapshot`: the state machine is replaced by the durable snapshot, never moving
//!   back.
//!
//! `SendSnapshot` is filled by the leader's peer task, in [`peers`](super::peers).

use bytes::{Bytes, BytesMut};
use raft_core::engine::Input;
use raft_core::{LogId, LogIndex, Membership, SnapshotMeta};

use super::World;
use super::event::Event;
use crate::faults::Bug;
use crate::kv_state::KvState;
use crate::node::{DiskOp, Receiving};

/// The share of installs followed at once by a crash of the follower.
const CRASH_AFTER_INSTALL_PERCENT: u64 = 10;

impl World {
    /// `CompactLog`: the log drops the entries below `before` now, the durable log at the
    /// next flush.
    pub(super) fn run_compact_log(&mut self, node: usize, before: LogIndex) {
        self.checker.on_compact(&self.nodes[node], before);
        self.nodes[node].log.compact(before);
        self.nodes[node].pending_ops.push(DiskOp::Compact(before));
        self.schedule_log_flush(node);
        self.snapshot_counts.compactions += 1;
    }

    /// `CreateSnapshot`: captures the state, which must be the one right after `last_log_id`,
    /// and writes it after a while.
    pub(super) fn run_create_snapshot(
        &mut self,
        node: usize,
        last_log_id: LogId,
        membership: Membership,
    ) {
        let sim = &self.nodes[node];
        let applied = self.checker.committed_at(sim.applied);
        if sim.applied != last_log_id.index || applied != Some(last_log_id) {
            let detail = format!(
                "node {} asked for a snapshot at {last_log_id} with {} applied",
                sim.id, sim.applied
            );
            self.checker.fail("snapshot-index", detail);
            return;
        }
        // The state machine fixes its view now; the data is written by a task of its own
        // while commits go on: that takes a while, and a crash meanwhile loses it.
        let data = (self.bug != Some(Bug::LazySnapshot)).then(|| sim.kv.encode());
        let epoch = sim.epoch;
        let delay = self.rng.range(1, 2 * self.disk_latency_max_ms + 2);
        let event = Event::SnapshotWritten {
            node,
            epoch,
            last_log_id,
            membership,
            data,
        };
        self.schedule(delay, event);
    }

    /// A created snapshot is written: it becomes the latest if no newer one arrived meanwhile.
    pub(super) fn snapshot_written(
        &mut self,
        node: usize,
        epoch: u64,
        last_log_id: LogId,
        membership: Membership,
        data: Option<Bytes>,
    ) {
        let sim = &mut self.nodes[node];
        if sim.epoch != epoch {
            return;
        }
        let data = data.unwrap_or_else(|| sim.kv.encode());
        let meta = SnapshotMeta {
            last_log_id,
            membership,
            size: data.len() as u64,
            checksum: crc32c::crc32c(&data),
        };
        // What was written is checked, not what was meant to be.
        match KvState::decode(&data) {
            Some(state) => self.checker.on_snapshot_created(sim, &meta, state.digest()),
            None => {
                let detail = format!("node {} writes the {meta} undecodable", sim.id);
                self.checker.fail("snapshot-data", detail);
                return;
            }
        }
        if sim.store_snapshot(meta.clone(), data) {
            self.snapshot_counts.created += 1;
            self.step_node(node, Input::SnapshotCreated { meta });
        } else {
            self.step_node(node, Input::SnapshotFailed);
        }
    }

    /// `SaveSnapshotChunk`: appends to the snapshot being received, which must be this one
    /// and end at `offset`; the last chunk makes it durable.
    pub(super) fn run_save_snapshot_chunk(
        &mut self,
        node: usize,
        meta: SnapshotMeta,
        offset: u64,
        data: &[u8],
        done: bool,
    ) {
        let sim = &mut self.nodes[node];
        if offset == 0 {
            sim.receiving = Some(Receiving {
                meta: meta.clone(),
                data: BytesMut::new(),
            });
        }
        match &mut sim.receiving {
            Some(receiving) if receiving.meta == meta && receiving.data.len() as u64 == offset => {
                receiving.data.extend_from_slice(data);
                self.snapshot_counts.chunks_saved += 1;
            }
            receiving => {
                let held = receiving.as_ref().map_or(0, |r| r.data.len());
                let detail = format!(
                    "node {} saves a chunk at {offset} of the {meta} holding {held} bytes",
                    sim.id
                );
                self.checker.fail("snapshot-chunk-order", detail);
                return;
            }
        }
        if !done {
            return;
        }
        let Some(receiving) = sim.receiving.take() else {
            return;
        };
        let data = receiving.data.freeze();
        if data.len() as u64 != meta.size || crc32c::crc32c(&data) != meta.checksum {
            let detail = format!("node {} completes the {meta} with other data", sim.id);
            self.checker.fail("snapshot-chunk-data", detail);
            return;
        }
        let at = meta.last_log_id.index;
        // Stored like `SnapshotWriter::finish`: durable and the latest before the next output.
        // A store keeps the newer of two; if that was not this one, the restore that follows
        // reports it.
        sim.store_snapshot(meta, data);
        sim.install_window = Some(at);
        self.snapshot_counts.installed += 1;
        // Buggify: now and then crash before the log's replacement reaches the disk, so the
        // restart finds a snapshot and a log that ends before it or disagrees with it.
        if self.rng.percent(CRASH_AFTER_INSTALL_PERCENT) {
            let epoch = self.nodes[node].epoch;
            let delay = self.rng.range(0, self.disk_latency_max_ms + 1);
            self.schedule(delay, Event::Crash { node, epoch });
        }
    }

    /// `RestoreSnapshot`: replaces the state with the durable snapshot, which must be `meta`,
    /// unless the state is already there.
    pub(super) fn run_restore_snapshot(&mut self, node: usize, meta: &SnapshotMeta) {
        let sim = &mut self.nodes[node];
        let at = meta.last_log_id.index;
        // A restart's restore comes before the log it replaces is cut; an install's after.
        sim.install_window = sim.starting.then_some(at);
        let Some((_, data)) = sim.snapshot.as_ref().filter(|(durable, _)| durable == meta) else {
            let durable = sim.snapshot_meta().map(ToString::to_string);
            let detail = format!(
                "node {} restores the {meta}; its durable snapshot: {durable:?}",
                sim.id
            );
            self.checker.fail("restore-snapshot", detail);
            return;
        };
        if at < sim.applied {
            let detail = format!(
                "node {} restores {at} after applying {}",
                sim.id, sim.applied
            );
            self.checker.fail("snapshot-monotonic", detail);
            return;
        }
        if at == sim.applied {
            return;
        }
        let Some(kv) = KvState::decode(data) else {
            let detail = format!("node {}: the {meta} does not decode", sim.id);
            self.checker.fail("snapshot-data", detail);
            return;
        };
        let digest = kv.digest();
        sim.kv = kv;
        sim.applied = at;
        sim.commit_seen = sim.commit_seen.max(at);
        // Entries up to `at` are now applied: nothing there can be pre-committed or rolled back.
        sim.pre_committed_last = sim.pre_committed_last.max(at);
        self.checker.on_restore(&self.nodes[node], meta, digest);
        self.snapshot_counts.restored += 1;
        // Writers waiting on entries the snapshot covers learn nothing of their results (the
        // runtime answers them `Aborted`): their outcome is unknown.
        for client in self.clients.on_restored(node, at) {
            self.reschedule_clients(Some(client));
        }
        self.serve_reads(node);
    }
}
