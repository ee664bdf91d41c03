//! The simulated disks' side of the world: log writes flushed after a random latency (all the
//! writes queued by then in one group commit) and only then reported durable, hard state
//! written the same way; the planted disk bugs (`ack-before-sync`, `forget-vote`) lie here.

use raft_core::engine::Input;

use super::World;
use super::event::Event;
use crate::faults::Bug;

impl World {
    pub(super) fn schedule_log_flush(&mut self, node: usize) {
        let epoch = self.nodes[node].epoch;
        if self.bug == Some(Bug::AckBeforeSync) {
            self.schedule(0, Event::LogReport { node, epoch });
        }
        if !self.nodes[node].log_flush_scheduled {
            self.nodes[node].log_flush_scheduled = true;
            let delay = self.rng.range(0, self.disk_latency_max(node) + 1);
            self.schedule(delay, Event::LogFlush { node, epoch });
        }
    }

    pub(super) fn flush_log(&mut self, node: usize, epoch: u64) {
        if self.nodes[node].epoch != epoch {
            return;
        }
        self.nodes[node].flush_log();
        if self.bug != Some(Bug::AckBeforeSync) {
            self.report_log(node, epoch);
        }
    }

    /// Reports the last durable entry (or, with the planted bug, the last written one).
    pub(super) fn report_log(&mut self, node: usize, epoch: u64) {
        if self.nodes[node].epoch != epoch {
            return;
        }
        let sim = &self.nodes[node];
        let (log, epoch) = if self.bug == Some(Bug::AckBeforeSync) {
            (&sim.log, sim.written_epoch)
        } else {
            (&sim.durable_log, sim.durable_epoch)
        };
        if let Some(upto) = log.last_log_id() {
            self.step_node(node, Input::LogPersisted { upto, epoch });
        }
    }

    pub(super) fn flush_hard_state(&mut self, node: usize, epoch: u64) {
        if self.nodes[node].epoch != epoch {
            return;
        }
        let sim = &mut self.nodes[node];
        sim.hard_state_flush_scheduled = false;
        let Some(hard_state) = sim.pending_hard_state.take() else {
            return;
        };
        if self.bug == Some(Bug::ForgetVote) {
            sim.durable_hard_state.term = hard_state.term;
            sim.durable_hard_state.commit = hard_state.commit;
            if sim
                .durable_hard_state
                .vote
                .is_some_and(|_| hard_state.vote.is_none())
            {
                sim.durable_hard_state.vote = None;
            }
        } else {
            sim.durable_hard_state = hard_state;
        }
        self.step_node(node, Input::HardStatePersisted { hard_state });
    }
}
