//! The heal (with `SimOptions::heal`): in a share of the seeds the faults stop after a step
//! drawn per seed from a generator of its own, so that up to that step the run is the one it
//! would be without the heal. The network heals and calms down, the disks speed up, every node
//! that is down (and not stopped for good) restarts at once, and neither the nemesis nor
//! membership churn strike again (a change in progress completes; clocks keep drifting as
//! before). From then on a probe client writes to the leader of the highest term every
//! heartbeat interval until one of its writes is applied; the checker reports
//! `liveness-after-heal` if none is within [`LIVENESS_BOUND_TIMEOUTS`] election timeouts.
//!
//! Judged are the seeds with pre-vote (see `invariants::liveness`). A gap the heal found is
//! closed: a removed leader that appended the final configuration of a change (which makes it
//! a non-voter) and lost leadership before the remaining voters got it never campaigned, and
//! their joint configuration needed its vote, so no leader was elected again; the engine now
//! lets a node its configuration removed campaign while it does not know that configuration
//! committed (the Raft thesis, §4.2.2), and every seed with pre-vote is judged.
//!
//! The bound covers what a healthy cluster may need after the worst of the faults: the nodes
//! restarted by the heal ignore elections for an election timeout (with lease reads), a
//! leader cut off until the heal keeps its followers quiet for another, randomized election
//! timeouts of up to two, split votes and pre-votes refused by nodes that still hear an old
//! leader, a clock jump within the drift bound, and the round trips of the probe's commit.

use raft_core::engine::Input;

use super::World;
use super::event::Event;
use crate::client::encode_put;
use crate::faults::Network;
use crate::invariants::PROBE_KEY;
use crate::options::HealCounts;
use crate::rng::SimRng;

/// The heal's generator is seeded apart from the world's and the clocks'.
const HEAL_SEED: u64 = 0x4EA1_7B0D_1E5C_A11D;
/// The share of the seeds whose faults stop.
const HEAL_PERCENT: u64 = 50;
/// A probe write must be applied within this many election timeouts of the heal (with
/// pre-vote). Over the CI campaigns the slowest recovery seen with pre-vote took 4.9.
pub(crate) const LIVENESS_BOUND_TIMEOUTS: u64 = 10;
/// The probe's proposals are named from here up (far above the clients' operation ids).
const PROBE_ID_BASE: u64 = 1 << 62;

impl World {
    /// The step after which the faults stop, in [`HEAL_PERCENT`] of the seeds with the heal on:
    /// between a quarter and half of the run's steps.
    pub(super) fn draw_heal_step(&self, seed: u64) -> Option<u64> {
        if !self.options.heal {
            return None;
        }
        let mut rng = SimRng::new(seed.rotate_left(29) ^ HEAL_SEED);
        if !rng.percent(HEAL_PERCENT) {
            return None;
        }
        let steps = self.options.steps;
        Some(rng.range(steps / 4, steps / 2 + 1).max(1))
    }

    /// The faults stop now (see the module docs).
    pub(super) fn heal(&mut self) {
        self.healed = true;
        self.network = Network::calm();
        self.disk_latency_max_ms = 2;
        self.disarm_targeted();
        for node in 0..self.nodes.len() {
            if !self.nodes[node].retired && !self.nodes[node].is_up() {
                self.start_node(node);
            }
        }
        let timeout = self.config.election_timeout_ms;
        let judged = self.config.pre_vote;
        let bound_ms = judged.then_some(LIVENESS_BOUND_TIMEOUTS * timeout);
        self.checker.liveness.start(self.now_ms, bound_ms, timeout);
        self.schedule(0, Event::Probe);
    }

    /// The probe writes to the leader of the highest term, if any, unless one of its writes
    /// was applied already; then it waits a heartbeat interval.
    pub(super) fn probe(&mut self) {
        if self.checker.liveness.recovered_after_ms().is_some() {
            return;
        }
        if let Some(leader) = self.leader() {
            let id = PROBE_ID_BASE + self.next_probe;
            self.next_probe += 1;
            let payload = encode_put(PROBE_KEY, &format!("p{id}"));
            let payloads = vec![payload];
            self.step_node(leader, Input::Proposed { id, payloads });
        }
        self.schedule(self.config.heartbeat_interval_ms, Event::Probe);
    }

    /// What the heal did in this run.
    pub(crate) fn heal_counts(&self) -> HealCounts {
        let liveness = &self.checker.liveness;
        let judged = liveness.is_judged();
        let recovered = liveness.recovered_after_ms();
        let mut counts = HealCounts {
            healed: u64::from(self.healed),
            judged: u64::from(judged),
            recovered: u64::from(recovered.is_some()),
            ..HealCounts::default()
        };
        match recovered {
            Some(ms) if judged => {
                let timeout = self.config.election_timeout_ms.max(1);
                counts.slowest_recovery_ms = ms;
                counts.slowest_recovery_timeouts_percent = ms * 100 / timeout;
            }
            None if judged && self.checker.violation.is_none() => counts.unfinished = 1,
            _ => {}
        }
        counts
    }
}
