//! The clients' side of the world: starting operations, answering reads once the state
//! machine caught up, and starting the next operation after an answer.
//!
//! With lease reads on (`SimOptions::leases`), two reads in three are lease reads (handed to
//! the engine in [`leases`](super::leases)), the rest ReadIndex reads; both go into the
//! history the linearizability checker judges. Three more clients then play the split brain
//! a broken lease would expose: two readers ask only for lease reads of the node they take
//! for the leader, so that a leader cut off from its followers is still asked for reads when
//! its lease should be over (the other clients soon wait on writes it cannot commit, or on
//! ReadIndex reads it cannot confirm); a writer sends each write to the leader of the
//! highest term at the time, as a client watching the leadership would: it gives up on a
//! write after [`CHASER_TIMEOUT_MS`], or at once when a new leader is elected, and writes to
//! that one, so that a new leader soon commits writes the old one has not seen.
//!
//! With follower reads on (`SimOptions::follower_reads`), a share of the regular clients'
//! remaining reads goes to another node, a follower mostly (see
//! [`follower_reads`](super::follower_reads)).

use raft_core::engine::Input;

use super::World;
use super::event::Event;
use crate::client::encode_put;
use crate::faults::Bug;
use crate::linearizability::kv::KvInput;

const CLIENT_TIMEOUT_MS: u64 = 2_000;
/// How long the writer that follows the newest leader waits for a write (lease reads on).
const CHASER_TIMEOUT_MS: u64 = 100;
const KEYS: [&str; 3] = ["a", "b", "c"];
/// The share of the writers' reads that are lease reads, with lease reads on.
const LEASE_READ_PERCENT: u64 = 67;

impl World {
    pub(super) fn client_start(&mut self, client: usize) {
        let chaser = client == self.writers;
        let mut node = self.clients.target(client);
        if chaser && let Some(leader) = self.leader() {
            node = leader;
            self.clients.retarget(client, leader);
        }
        let key = KEYS[self.rng.index(KEYS.len())].to_owned();
        let write = chaser || client < self.writers && self.rng.percent(60);
        let input = if write {
            let value = self.clients.fresh_value();
            KvInput::Put { key, value }
        } else {
            KvInput::Get { key }
        };
        let command = match &input {
            KvInput::Put { key, value } => Some(encode_put(key, value)),
            _ => None,
        };
        let id = self.clients.invoke(client, node, input);
        let timeout = if chaser {
            CHASER_TIMEOUT_MS
        } else {
            CLIENT_TIMEOUT_MS
        };
        self.schedule(timeout, Event::ClientTimeout(id));
        if !self.nodes[node].is_up() {
            let other = self.pick_node();
            self.clients.retarget(client, other);
            let reschedule = self.clients.on_rejected(id, None);
            self.reschedule_clients(reschedule);
            return;
        }
        let input = match command {
            Some(command) => Input::Proposed {
                id,
                payloads: vec![command],
            },
            None if self.bug == Some(Bug::StaleRead) => {
                // The classic mistake: spread reads over replicas and answer locally.
                let replica = self.pick_node();
                let replica = if self.nodes[replica].is_up() {
                    replica
                } else {
                    node
                };
                let applied = self.nodes[replica].applied;
                self.nodes[replica].pending_reads.push((id, applied));
                self.serve_reads(replica);
                return;
            }
            None if self.leases
                && (client > self.writers || self.rng.percent(LEASE_READ_PERCENT)) =>
            {
                self.ask_lease_read(node, id);
                return;
            }
            None if client < self.writers && self.draw_follower_read() => {
                self.ask_follower_read(node, id);
                return;
            }
            None => Input::ReadRequested { id },
        };
        if matches!(input, Input::ReadRequested { .. }) {
            self.checker.on_read_requested(id);
        }
        self.step_node(node, input);
    }

    /// A node was just elected (lease reads on): the writer that follows the newest leader
    /// gives up on a write it waits for elsewhere and writes to the new leader at once.
    pub(super) fn chase_new_leader(&mut self, leader: usize) {
        let chaser = self.writers;
        if let Some((op, node)) = self.clients.pending_of(chaser)
            && node != leader
        {
            self.clients.abandon(op);
            self.schedule(0, Event::ClientStart(chaser));
        }
    }

    /// Answers the confirmed reads whose index the state machine has reached.
    pub(super) fn serve_reads(&mut self, node: usize) {
        let applied = self.nodes[node].applied;
        let (ready, waiting): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.nodes[node].pending_reads)
                .into_iter()
                .partition(|&(_, index)| index <= applied);
        self.nodes[node].pending_reads = waiting;
        for (id, _) in ready {
            let value = self
                .clients
                .read_key(id)
                .map(|key| self.nodes[node].kv.get(&key))
                .unwrap_or_default();
            let reschedule = self.clients.on_read(id, value);
            self.reschedule_clients(reschedule);
        }
    }

    pub(super) fn reschedule_clients(&mut self, client: Option<usize>) {
        if let Some(client) = client {
            let pause = self.rng.range(1, 30);
            self.schedule(pause, Event::ClientStart(client));
        }
    }
}
