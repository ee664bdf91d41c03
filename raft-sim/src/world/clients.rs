//! The clients' side of the world: starting operations, answering reads once the state
//! machine caught up, and starting the next operation after an answer.

use raft_core::engine::Input;

use super::World;
use super::event::Event;
use crate::client::encode_put;
use crate::faults::Bug;
use crate::linearizability::kv::KvInput;

const CLIENT_TIMEOUT_MS: u64 = 2_000;
const KEYS: [&str; 3] = ["a", "b", "c"];

impl World {
    pub(super) fn client_start(&mut self, client: usize) {
        let node = self.clients.target(client);
        let key = KEYS[self.rng.index(KEYS.len())].to_owned();
        let write = self.rng.percent(60);
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
        self.schedule(CLIENT_TIMEOUT_MS, Event::ClientTimeout(id));
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
            None => Input::ReadRequested { id },
        };
        self.step_node(node, input);
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
