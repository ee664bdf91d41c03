//! How the world carries out an engine's outputs, the way a runtime would: hard states and
//! appends go to the simulated disk, messages to the network, committed entries to the state
//! machine; after each batch the checks that concern one node run.

use super::*;

impl World {
    /// Executes one batch of outputs in order, then checks what the batch left behind.
    pub(super) fn run_outputs(&mut self, node: usize, outputs: Vec<Output>) {
        for output in outputs {
            self.execute(node, output);
        }
        self.nodes[node].install_window = None;
        self.checker.after_outputs(&self.nodes[node]);
    }

    pub(super) fn execute(&mut self, node: usize, output: Output) {
        self.spring_trap(node, &output);
        match output {
            Output::PersistHardState(hard_state) => {
                self.nodes[node].pending_hard_state = Some(hard_state);
                if !self.nodes[node].hard_state_flush_scheduled {
                    self.nodes[node].hard_state_flush_scheduled = true;
                    let epoch = self.nodes[node].epoch;
                    let delay = self.rng.range(0, self.disk_latency_max(node) + 1);
                    self.schedule(delay, Event::HardStateFlush { node, epoch });
                }
            }
            Output::AppendLog { entries, epoch } => {
                self.checker.on_append(&self.nodes[node], &entries);
                if self.churn {
                    self.after_config_append(node, &entries);
                }
                self.nodes[node].log.append(&entries);
                self.nodes[node].written_epoch = epoch;
                self.nodes[node]
                    .pending_ops
                    .push(DiskOp::Append(entries, epoch));
                self.schedule_log_flush(node);
            }
            Output::TruncateLog { from } => {
                self.checker.on_truncate(&self.nodes[node], from);
                if self.nodes[node].starting {
                    self.snapshot_counts.replaced_at_restart += 1;
                }
                self.nodes[node].log.truncate(from);
                self.nodes[node].pending_ops.push(DiskOp::Truncate(from));
                self.schedule_log_flush(node);
            }
            Output::CompactLog { before } => self.run_compact_log(node, before),
            Output::PreCommit { first, last } => {
                self.checker.on_pre_commit(&self.nodes[node], first, last);
                self.nodes[node].pre_committed_last = last;
            }
            Output::Rollback { first, last } => {
                self.checker.on_rollback(&self.nodes[node], first, last);
                self.nodes[node].pre_committed_last = first.prev();
                let clients = self.clients.on_rolled_back(node, first, last);
                for client in clients {
                    self.reschedule_clients(Some(client));
                }
            }
            Output::Commit { upto } => self.apply(node, upto),
            Output::CreateSnapshot {
                last_log_id,
                membership,
            } => self.run_create_snapshot(node, last_log_id, membership),
            Output::SaveSnapshotChunk {
                meta,
                offset,
                data,
                done,
            } => self.run_save_snapshot_chunk(node, meta, offset, &data, done),
            Output::RestoreSnapshot { meta } => self.run_restore_snapshot(node, &meta),
            Output::Send { to, message } => {
                self.checker.on_send(&self.nodes[node], to, &message);
                self.note_read_index_sent(node, to, &message);
                self.send(node, to, message);
            }
            Output::SendEntries {
                to,
                request,
                first,
                last_log_id,
            } => {
                let (term, kind) = (request.term, "AppendEntries");
                self.checker
                    .check_reveal_term(&self.nodes[node], term, None, kind);
                let fill = Fill::Entries {
                    request,
                    first,
                    last_log_id,
                };
                self.run_fill(node, to, fill);
            }
            Output::SendSnapshot { to, request, len } => {
                let (term, kind) = (request.term, "InstallSnapshot");
                self.checker
                    .check_reveal_term(&self.nodes[node], term, None, kind);
                self.run_fill(node, to, Fill::Snapshot { request, len });
            }
            Output::ProposalAccepted { id, first, .. } => {
                self.clients.on_accepted(id, node, first);
            }
            Output::ProposalRejected { id, leader } | Output::ReadRejected { id, leader } => {
                if self.lease_read_asked == Some(id) {
                    self.lease_counts.rejected += 1;
                }
                self.on_follower_read_rejected(id);
                let reschedule = self.clients.on_rejected(id, leader);
                if leader.is_none() {
                    self.lease_reader_lost(reschedule);
                }
                self.reschedule_clients(reschedule);
            }
            Output::MembershipChangeAccepted { .. } => self.on_change_accepted(node),
            Output::MembershipChangeRejected { reason, .. } => self.on_change_rejected(&reason),
            Output::ReadReady { id, index } => self.on_read_ready(node, id, index),
        }
    }

    /// Applies committed entries in index order, as the runtime's applier does.
    pub(super) fn apply(&mut self, node: usize, upto: LogIndex) {
        self.checker.on_commit(&self.nodes[node], upto);
        self.nodes[node].commit_seen = upto;
        while self.nodes[node].applied < upto {
            let index = self.nodes[node].applied.next();
            let Some(entry) = self.nodes[node].entry(index).cloned() else {
                self.checker
                    .fail("commit-beyond-log", format!("node {node} commits {index}"));
                return;
            };
            self.checker.on_apply(&self.nodes[node], &entry);
            self.nodes[node].kv.apply(&entry.payload);
            self.nodes[node].applied = index;
            let reschedule = self.clients.on_applied(node, entry.log_id);
            self.reschedule_clients(reschedule);
        }
        self.serve_reads(node);
    }

    pub(super) fn send(&mut self, from: usize, to: NodeId, message: Message) {
        if matches!(message, Message::OpenStream(_)) {
            self.open_stream(from, to, message);
            return;
        }
        let Some(to_index) = self.nodes.iter().position(|n| n.id == to) else {
            return;
        };
        if !self.network.delivers(from, to_index) || self.rng.percent(self.network.drop_percent) {
            // A lost request may come back as a transport error, or as nothing (a timeout).
            let seq = match &message {
                Message::AppendEntries(request) => Some(request.seq),
                Message::InstallSnapshot(request) => Some(request.seq),
                Message::ReadIndex(request) => Some(request.seq),
                _ => None,
            };
            if let (Some(seq), true) = (seq, self.rng.percent(50)) {
                let delay = self.network.delay(&mut self.rng, from, self.now_ms);
                self.schedule_send_failed(from, to, seq, delay);
            }
            return;
        }
        if self.rng.percent(self.network.duplicate_percent) {
            let delay = self.network.delay(&mut self.rng, to_index, self.now_ms);
            let copy = Event::Deliver {
                from,
                to: to_index,
                message: message.clone(),
            };
            self.schedule(delay, copy);
        }
        let delay = self.network.delay(&mut self.rng, to_index, self.now_ms);
        self.schedule(
            delay,
            Event::Deliver {
                from,
                to: to_index,
                message,
            },
        );
    }

    /// Reports a request to `to` failed, `delay_ms` from now, unless `from` crashes first.
    pub(super) fn schedule_send_failed(
        &mut self,
        from: usize,
        to: NodeId,
        seq: u64,
        delay_ms: u64,
    ) {
        let epoch = self.nodes[from].epoch;
        let event = Event::SendFailed {
            node: from,
            epoch,
            to,
            seq,
        };
        self.schedule(delay_ms, event);
    }
}
