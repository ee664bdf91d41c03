//! The split brain (with lease reads and `SimOptions::split_brain`): now and then the nemesis
//! aims at the leader instead of drawing a fault. The network heals and calms down, so that
//! the leader hears from all its followers again; two heartbeat intervals later, if it still
//! leads, every message into it takes an election timeout longer, and a little later its own
//! messages are cut off (one way: it still hears the others, late). Its followers stop hearing
//! from it and elect a new leader, to which the writer that follows the newest leader sends
//! its writes; the lease readers are sent to the old leader, which learns of its successor
//! only an election timeout after the fact and, with check-quorum, steps down only an
//! election timeout after the late answers to its last requests arrive.
//!
//! That is the window a lease must not outlive. A correct lease counts from the time the
//! requests a quorum answered were *sent* (the followers ignore elections for an election
//! timeout from their arrival), less the clock-drift bound, so slow answers only shorten it:
//! every history stays linearizable. A lease that lasts too long (`lease-too-long`) is still
//! served there after the new leader committed writes the old one never saw, and the clients'
//! history shows it: the linearizability check catches the bug without the read checks.

use raft_core::engine::RoleKind;

use super::event::Event;
use super::{LEASE_CLIENTS, World};
use crate::faults::{Network, SlowLink};

/// The share of the nemesis's strikes that play the split brain (with lease reads on).
const SPLIT_BRAIN_PERCENT: u64 = 6;
/// How long after the links into the leader have slowed down all the way its own messages
/// are cut off.
const CUT_AFTER_MS: (u64, u64) = (10, 40);
/// The nemesis rests this many election timeouts after a split brain, so that it plays out.
const REST_TIMEOUTS: u64 = 3;

impl World {
    /// With lease reads and the split brain on, now and then (a draw only then): starts the
    /// split brain on the leader and schedules the nemesis's next strike. False when it does
    /// not (no draw, or no leader): the nemesis strikes as usual.
    pub(super) fn split_brain(&mut self) -> bool {
        let drawn =
            self.leases && self.options.split_brain && self.rng.percent(SPLIT_BRAIN_PERCENT);
        if !drawn {
            return false;
        }
        let Some(leader) = self.leader() else {
            return false;
        };
        self.network = Network::calm();
        for reader in self.writers + 1..self.writers + LEASE_CLIENTS {
            self.clients.retarget(reader, leader);
        }
        let epoch = self.nodes[leader].epoch;
        let settle = 2 * self.config.heartbeat_interval_ms;
        let act = Event::SplitBrain {
            node: leader,
            epoch,
            cut: false,
        };
        self.schedule(settle, act);
        let rest = settle + (2 + REST_TIMEOUTS) * self.config.election_timeout_ms;
        let next = rest
            + self
                .rng
                .range(self.nemesis_min_ms, self.nemesis_min_ms * 10);
        self.schedule(next, Event::Nemesis);
        true
    }

    /// The split brain's next act on `node`: the links into it slow down, then its own
    /// messages are cut off. Nothing happens if it crashed since (its `epoch` changed), if it
    /// no longer leads, or once the faults stopped.
    pub(super) fn split_brain_act(&mut self, node: usize, epoch: u64, cut: bool) {
        let sim = &self.nodes[node];
        let leads = sim
            .engine
            .as_ref()
            .is_some_and(|engine| engine.role_kind() == RoleKind::Leader);
        if self.healed || sim.epoch != epoch || !leads {
            return;
        }
        if cut {
            let nodes = self.nodes.len();
            self.network.cut_off_outgoing(node, nodes);
            return;
        }
        let max_ms = self.config.election_timeout_ms;
        self.network.slow_into = Some(SlowLink {
            node,
            since_ms: self.now_ms,
            max_ms,
        });
        // The delay reaches an election timeout after two.
        let cut_after = 2 * max_ms + self.rng.range(CUT_AFTER_MS.0, CUT_AFTER_MS.1 + 1);
        let act = Event::SplitBrain {
            node,
            epoch,
            cut: true,
        };
        self.schedule(cut_after, act);
    }
}
