//! Lease reads (with `SimOptions::leases`): handing them to the engines, counting what became
//! of them, and keeping, for every node, what its engine knows of time and of its leader, so
//! that the checker can judge each lease read served at once against the followers' state
//! rather than the leader's arithmetic.
//!
//! A lease stands on a promise of the followers: one that heard from the leader ignores
//! elections until its own clock says an election timeout passed since (a restarted node, an
//! election timeout after its first tick). The world records, per node, the time its engine
//! last heard (its last tick), when its quiet period after a start ends, and when it last
//! heard from a leader of its term (the tick time at which it took an AppendEntries or
//! InstallSnapshot of that term), exactly the figures the engine's own rule uses.

use raft_core::engine::{Input, Status};
use raft_core::message::Message;
use raft_core::{Config, LogIndex, Term};

use super::World;
use crate::clock::{ClockMode, Clocks};
use crate::options::SimOptions;

impl World {
    /// The term of the leader's request a node receives, if `input` is one.
    pub(super) fn leader_request_term(input: &Input) -> Option<Term> {
        match input {
            Input::Received {
                message: Message::AppendEntries(request),
                ..
            } => Some(request.term),
            Input::Received {
                message: Message::InstallSnapshot(request),
                ..
            } => Some(request.term),
            _ => None,
        }
    }

    /// With lease reads or drifting clocks: a drift bound (`max_clock_drift_ms`, from a quarter to
    /// half an election timeout) and, with leases, lease reads and check-quorum; then the clocks.
    /// Drawn from the clocks' own generator, so the world's draws are the ones it made before.
    pub(super) fn lease_config(seed: u64, options: &SimOptions, config: &mut Config) -> Clocks {
        let mut rng = Clocks::rng(seed);
        let timeout = config.election_timeout_ms;
        if options.leases || options.clocks != ClockMode::Exact {
            config.max_clock_drift_ms = rng.range(timeout / 4, timeout / 2 + 1);
        }
        if options.leases {
            config.lease_reads = true;
            config.check_quorum = true;
        }
        Clocks::new(options.clocks, rng, timeout, config.max_clock_drift_ms)
    }
}

impl World {
    /// Hands a lease read to `node`'s engine and counts what became of it: answered in the
    /// same step (served at once), refused in it (not the leader), or neither (taken by
    /// ReadIndex; answered or refused later).
    pub(super) fn ask_lease_read(&mut self, node: usize, id: u64) {
        self.lease_counts.requested += 1;
        self.checker.on_read_requested(id);
        let (served, rejected) = (self.lease_counts.served_at_once, self.lease_counts.rejected);
        self.lease_read_asked = Some(id);
        self.step_node(node, Input::LeaseReadRequested { id });
        self.lease_read_asked = None;
        if self.lease_counts.served_at_once == served && self.lease_counts.rejected == rejected {
            self.lease_counts.fell_back += 1;
        }
    }

    /// The engine confirmed a read at `index`: checked, then answered once the state machine
    /// reaches it.
    pub(super) fn on_read_ready(&mut self, node: usize, id: u64, index: LogIndex) {
        if self.on_follower_read_ready(id, index) {
            return;
        }
        let at_once = self.lease_read_asked == Some(id);
        if at_once {
            self.lease_counts.served_at_once += 1;
        }
        if self.read_checks {
            if at_once {
                let timeout = self.config.election_timeout_ms;
                self.checker
                    .check_lease_quorum(&self.nodes, node, id, timeout);
            }
            self.checker
                .on_read_ready(&self.nodes[node], id, index, at_once);
        }
        self.nodes[node].pending_reads.push((id, index));
        self.serve_reads(node);
    }

    /// A node that knows no leader refused `client`'s read: a lease reader tries another node
    /// (the other clients wait for the node to learn the leader, as they always did).
    pub(super) fn lease_reader_lost(&mut self, client: Option<usize>) {
        if let Some(client) = client.filter(|&client| self.leases && client > self.writers) {
            let other = self.pick_node();
            self.clients.retarget(client, other);
        }
    }

    /// A tick at `now_ms` (the node's clock) is about to reach `node`'s engine.
    pub(super) fn note_tick(&mut self, node: usize, now_ms: u64) {
        let sim = &mut self.nodes[node];
        if !sim.ticked {
            sim.ticked = true;
            if self.config.lease_reads {
                sim.quiet_until_ms = now_ms + self.config.election_timeout_ms;
            }
        }
        sim.engine_now_ms = sim.engine_now_ms.max(now_ms);
    }

    /// After `node`'s engine took a leader's request of `term` (AppendEntries or
    /// InstallSnapshot): if it now follows a leader in that term, it heard from it now.
    pub(super) fn note_leader_contact(&mut self, node: usize, term: Option<Term>, after: &Status) {
        if let (Some(term), Some(leader)) = (term, after.leader)
            && term == after.term
        {
            let sim = &mut self.nodes[node];
            sim.leader_contact = Some((term, leader, sim.engine_now_ms));
        }
    }
}
