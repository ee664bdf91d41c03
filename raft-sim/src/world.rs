//! The simulated world: nodes, network, clients and a clock, driven by one ordered event queue.
//!
//! Each step pops the earliest event (ties broken by insertion order), feeds the production
//! engine and executes its outputs the way a runtime would, then runs the safety checks. Given
//! the same seed and options the run is identical, which is what makes a failing seed a
//! regression test.

use std::collections::BTreeMap;

use raft_core::engine::{Engine, Input, Output};
use raft_core::message::Message;
use raft_core::{Config, LogIndex, Membership, NodeId, Pacing, Payload};

use crate::client::{Clients, decode_put, encode_put};
use crate::faults::{Bug, Fault, Network, pick_fault};
use crate::invariants::Checker;
use crate::linearizability::kv::KvInput;
use crate::node::{DiskOp, SimNode};
use crate::rng::SimRng;

const TICK_MS: u64 = 10;
const CLIENT_TIMEOUT_MS: u64 = 2_000;
const KEYS: [&str; 3] = ["a", "b", "c"];

#[derive(Clone, Debug)]
enum Event {
    Tick(usize),
    Deliver {
        from: usize,
        to: usize,
        message: Message,
    },
    SendFailed {
        node: usize,
        epoch: u64,
        to: NodeId,
        seq: u64,
    },
    LogFlush {
        node: usize,
        epoch: u64,
    },
    LogReport {
        node: usize,
        epoch: u64,
    },
    HardStateFlush {
        node: usize,
        epoch: u64,
    },
    Restart(usize),
    Nemesis,
    ClientStart(usize),
    ClientTimeout(u64),
}

#[derive(Debug)]
pub(crate) struct World {
    seed: u64,
    rng: SimRng,
    pub(crate) now_ms: u64,
    events: BTreeMap<(u64, u64), Event>,
    next_event: u64,
    pub(crate) nodes: Vec<SimNode>,
    membership: Membership,
    config: Config,
    network: Network,
    disk_latency_max_ms: u64,
    /// How often the nemesis strikes: each seed is calm or violent.
    nemesis_min_ms: u64,
    pub(crate) checker: Checker,
    pub(crate) clients: Clients,
    bug: Option<Bug>,
}

impl World {
    pub(crate) fn new(seed: u64, bug: Option<Bug>) -> World {
        let mut rng = SimRng::new(seed);
        let node_count = if rng.percent(50) { 3 } else { 5 };
        let config = random_config(&mut rng);
        let ids: Vec<NodeId> = (1..=node_count as u64).map(NodeId).collect();
        let client_count = rng.index(4) + 2;
        let mut world = World {
            seed,
            rng,
            now_ms: 0,
            events: BTreeMap::new(),
            next_event: 0,
            nodes: ids.iter().map(|&id| SimNode::new(id)).collect(),
            membership: Membership::new(ids),
            config,
            network: Network::calm(),
            disk_latency_max_ms: 5,
            nemesis_min_ms: 0,
            checker: Checker::default(),
            clients: Clients::new(client_count, node_count),
            bug,
        };
        world.nemesis_min_ms = [20, 50, 150][world.rng.index(3)];
        for node in 0..node_count {
            world.start_node(node);
        }
        world.schedule(500, Event::Nemesis);
        for client in 0..client_count {
            world.schedule(100 + client as u64, Event::ClientStart(client));
        }
        world
    }

    fn schedule(&mut self, delay_ms: u64, event: Event) {
        self.next_event += 1;
        self.events
            .insert((self.now_ms + delay_ms, self.next_event), event);
    }

    /// Runs one event; false when nothing is left.
    pub(crate) fn step(&mut self) -> bool {
        let Some(((at, _), event)) = self.events.pop_first() else {
            return false;
        };
        self.now_ms = at;
        self.checker.step += 1;
        self.handle(event);
        true
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Tick(node) => {
                if self.nodes[node].is_up() {
                    self.step_node(
                        node,
                        Input::Tick {
                            now_ms: self.now_ms,
                        },
                    );
                    self.schedule(TICK_MS, Event::Tick(node));
                }
            }
            Event::Deliver { from, to, message } => {
                if self.network.delivers(from, to) {
                    let from = self.nodes[from].id;
                    self.step_node(to, Input::Received { from, message });
                }
            }
            Event::SendFailed {
                node,
                epoch,
                to,
                seq,
            } => {
                if self.nodes[node].epoch == epoch {
                    self.step_node(node, Input::SendFailed { to, seq });
                }
            }
            Event::LogFlush { node, epoch } => self.flush_log(node, epoch),
            Event::LogReport { node, epoch } => self.report_log(node, epoch),
            Event::HardStateFlush { node, epoch } => self.flush_hard_state(node, epoch),
            Event::Restart(node) => self.start_node(node),
            Event::Nemesis => self.nemesis(),
            Event::ClientStart(client) => self.client_start(client),
            Event::ClientTimeout(op) => {
                let reschedule = self.clients.abandon(op);
                self.reschedule_clients(reschedule);
            }
        }
    }

    /// Builds a node's engine from its durable state (start or restart).
    fn start_node(&mut self, node: usize) {
        let restored = self.nodes[node].restored_state();
        let seed = self.seed ^ (self.nodes[node].epoch << 32) ^ node as u64;
        let id = self.nodes[node].id;
        match Engine::new(
            id,
            self.membership.clone(),
            self.config.clone(),
            restored,
            seed,
        ) {
            Ok(mut engine) => {
                if let Some(bug) = self.bug.and_then(Bug::in_engine) {
                    engine.plant_bug(bug);
                }
                let outputs: Vec<Output> = engine.drain_outputs().collect();
                self.nodes[node].engine = Some(engine);
                for output in outputs {
                    self.execute(node, output);
                }
                let delay = self.rng.range(1, TICK_MS + 1);
                self.schedule(delay, Event::Tick(node));
            }
            Err(error) => self.checker.fail("restore", format!("node {id}: {error}")),
        }
    }

    /// Feeds one input to a live node's engine and executes its outputs.
    fn step_node(&mut self, node: usize, input: Input) {
        let Some(engine) = self.nodes[node].engine.as_mut() else {
            return;
        };
        let before = engine.status();
        let outputs: Vec<Output> = engine.step(input).collect();
        let after = engine.status();
        self.checker.after_step(&self.nodes[node], before, after);
        for output in outputs {
            self.execute(node, output);
        }
    }

    fn execute(&mut self, node: usize, output: Output) {
        match output {
            Output::PersistHardState(hard_state) => {
                self.nodes[node].pending_hard_state = Some(hard_state);
                if !self.nodes[node].hard_state_flush_scheduled {
                    self.nodes[node].hard_state_flush_scheduled = true;
                    let epoch = self.nodes[node].epoch;
                    let delay = self.rng.range(0, self.disk_latency_max_ms + 1);
                    self.schedule(delay, Event::HardStateFlush { node, epoch });
                }
            }
            Output::AppendLog { entries, epoch } => {
                self.checker.on_append(&self.nodes[node], &entries);
                self.nodes[node].log.extend(entries.iter().cloned());
                self.nodes[node].written_epoch = epoch;
                self.nodes[node]
                    .pending_ops
                    .push(DiskOp::Append(entries, epoch));
                self.schedule_log_flush(node);
            }
            Output::TruncateLog { from } => {
                self.checker.on_truncate(&self.nodes[node], from);
                let keep = usize::try_from(from.0.saturating_sub(1)).unwrap_or(usize::MAX);
                self.nodes[node].log.truncate(keep);
                self.nodes[node].pending_ops.push(DiskOp::Truncate(from));
                self.schedule_log_flush(node);
            }
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
            Output::Send { to, message } => {
                self.checker.on_send(&self.nodes[node], to, &message);
                self.send(node, to, message);
            }
            Output::SendEntries {
                to,
                mut request,
                first,
                last_log_id,
            } => {
                let log = &self.nodes[node].log;
                let start = usize::try_from(first.0.saturating_sub(1)).unwrap_or(usize::MAX);
                let end = usize::try_from(last_log_id.index.0).unwrap_or(usize::MAX);
                match log.get(start..end) {
                    Some(entries) if entries.last().map(|e| e.log_id) == Some(last_log_id) => {
                        request.entries = entries.to_vec();
                        self.send(node, to, Message::AppendEntries(request));
                    }
                    _ => self
                        .checker
                        .fail("send-entries", format!("log lacks {last_log_id}")),
                }
            }
            Output::ProposalAccepted { id, first, .. } => {
                self.clients.on_accepted(id, node, first);
            }
            Output::ProposalRejected { id, leader } | Output::ReadRejected { id, leader } => {
                let reschedule = self.clients.on_rejected(id, leader);
                self.reschedule_clients(reschedule);
            }
            Output::ReadReady { id, index } => {
                self.nodes[node].pending_reads.push((id, index));
                self.serve_reads(node);
            }
        }
    }

    fn schedule_log_flush(&mut self, node: usize) {
        let epoch = self.nodes[node].epoch;
        if self.bug == Some(Bug::AckBeforeSync) {
            self.schedule(0, Event::LogReport { node, epoch });
        }
        if !self.nodes[node].log_flush_scheduled {
            self.nodes[node].log_flush_scheduled = true;
            let delay = self.rng.range(0, self.disk_latency_max_ms + 1);
            self.schedule(delay, Event::LogFlush { node, epoch });
        }
    }

    fn flush_log(&mut self, node: usize, epoch: u64) {
        if self.nodes[node].epoch != epoch {
            return;
        }
        self.nodes[node].flush_log();
        if self.bug != Some(Bug::AckBeforeSync) {
            self.report_log(node, epoch);
        }
    }

    /// Reports the last durable entry (or, with the planted bug, the last written one).
    fn report_log(&mut self, node: usize, epoch: u64) {
        if self.nodes[node].epoch != epoch {
            return;
        }
        let sim = &self.nodes[node];
        let (log, epoch) = if self.bug == Some(Bug::AckBeforeSync) {
            (&sim.log, sim.written_epoch)
        } else {
            (&sim.durable_log, sim.durable_epoch)
        };
        if let Some(upto) = log.last().map(|e| e.log_id) {
            self.step_node(node, Input::LogPersisted { upto, epoch });
        }
    }

    fn flush_hard_state(&mut self, node: usize, epoch: u64) {
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

    /// Applies committed entries in index order, as the runtime's applier does.
    fn apply(&mut self, node: usize, upto: LogIndex) {
        self.checker.on_commit(&self.nodes[node], upto);
        self.nodes[node].commit_seen = upto;
        while self.nodes[node].applied < upto {
            let index = self.nodes[node].applied.next();
            let Some(entry) = self.nodes[node].entry(index).cloned() else {
                self.checker
                    .fail("commit-beyond-log", format!("node {node} commits {index}"));
                return;
            };
            self.checker.on_apply(&self.nodes[node], entry.log_id);
            if let Payload::Command(bytes) = &entry.payload
                && let Some((key, value)) = decode_put(bytes)
            {
                self.nodes[node].kv.insert(key, value);
            }
            self.nodes[node].applied = index;
            let reschedule = self.clients.on_applied(node, entry.log_id);
            self.reschedule_clients(reschedule);
        }
        self.serve_reads(node);
    }

    fn serve_reads(&mut self, node: usize) {
        let applied = self.nodes[node].applied;
        let (ready, waiting): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.nodes[node].pending_reads)
                .into_iter()
                .partition(|&(_, index)| index <= applied);
        self.nodes[node].pending_reads = waiting;
        for (id, _) in ready {
            let key = self.clients.read_key(id);
            let value = key
                .and_then(|key| self.nodes[node].kv.get(&key).cloned())
                .unwrap_or_default();
            let reschedule = self.clients.on_read(id, value);
            self.reschedule_clients(reschedule);
        }
    }

    fn send(&mut self, from: usize, to: NodeId, message: Message) {
        let Some(to_index) = self.nodes.iter().position(|n| n.id == to) else {
            return;
        };
        if !self.network.delivers(from, to_index) || self.rng.percent(self.network.drop_percent) {
            if let (Message::AppendEntries(request), true) = (&message, self.rng.percent(50)) {
                let epoch = self.nodes[from].epoch;
                let event = Event::SendFailed {
                    node: from,
                    epoch,
                    to,
                    seq: request.seq,
                };
                let delay = self.network.delay(&mut self.rng);
                self.schedule(delay, event);
            }
            return;
        }
        if self.rng.percent(self.network.duplicate_percent) {
            let delay = self.network.delay(&mut self.rng);
            let copy = Event::Deliver {
                from,
                to: to_index,
                message: message.clone(),
            };
            self.schedule(delay, copy);
        }
        let delay = self.network.delay(&mut self.rng);
        self.schedule(
            delay,
            Event::Deliver {
                from,
                to: to_index,
                message,
            },
        );
    }

    fn nemesis(&mut self) {
        let nodes = self.nodes.len();
        match pick_fault(&mut self.rng) {
            Fault::Heal => self.network.heal(),
            Fault::Partition => self.network.partition(&mut self.rng, nodes, true),
            Fault::AsymmetricPartition => self.network.partition(&mut self.rng, nodes, false),
            Fault::Crash => {
                let node = self.rng.index(nodes);
                let downtime = self.rng.range(50, 2_000);
                self.crash(node, downtime);
            }
            Fault::CrashLeader => {
                if let Some(leader) = self.leader() {
                    let downtime = self.rng.range(10, 500);
                    self.crash(leader, downtime);
                }
            }
            Fault::IsolateLeader => {
                if let Some(leader) = self.leader() {
                    self.network.isolate(leader, nodes);
                }
            }
            Fault::Weather => {
                self.network.reshape(&mut self.rng);
                self.disk_latency_max_ms = [0, 2, 5, 30][self.rng.index(4)];
            }
            Fault::TransferLeadership => {
                if let Some(leader) = self.leader() {
                    let to = self.nodes[self.rng.index(nodes)].id;
                    self.step_node(leader, Input::TransferRequested { to });
                }
            }
            Fault::Calm => {
                self.network = Network::calm();
                self.disk_latency_max_ms = 2;
            }
        }
        let next = self
            .rng
            .range(self.nemesis_min_ms, self.nemesis_min_ms * 10);
        self.schedule(next, Event::Nemesis);
    }

    /// The live leader of the highest term, if any.
    fn leader(&self) -> Option<usize> {
        let leading = |n: &SimNode| {
            let status = n.engine.as_ref()?.status();
            (status.leader == Some(n.id)).then_some(status.term)
        };
        (0..self.nodes.len())
            .filter_map(|i| leading(&self.nodes[i]).map(|term| (term, i)))
            .max()
            .map(|(_, i)| i)
    }

    fn crash(&mut self, node: usize, downtime_ms: u64) {
        if !self.nodes[node].is_up() {
            return;
        }
        self.nodes[node].crash();
        for op in self.clients.pending_at(node) {
            let reschedule = self.clients.abandon(op);
            self.reschedule_clients(reschedule);
        }
        self.schedule(downtime_ms, Event::Restart(node));
    }

    fn client_start(&mut self, client: usize) {
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
            let other = self.rng.index(self.nodes.len());
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
                let replica = self.rng.index(self.nodes.len());
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

    fn reschedule_clients(&mut self, client: Option<usize>) {
        if let Some(client) = client {
            let pause = self.rng.range(1, 30);
            self.schedule(pause, Event::ClientStart(client));
        }
    }
}

fn random_config(rng: &mut SimRng) -> Config {
    let election_timeout_ms = [150, 300][rng.index(2)];
    Config {
        election_timeout_ms,
        heartbeat_interval_ms: election_timeout_ms / 5,
        pre_vote: rng.percent(75),
        check_quorum: rng.percent(75),
        pacing: if rng.percent(50) {
            Pacing::Eager
        } else {
            Pacing::Heartbeat
        },
        max_inflight_requests: rng.index(8) + 1,
        batch_entries_initial: rng.range(1, 9),
        batch_entries_max: rng.range(8, 65),
        batch_bytes_max: rng.range(64, 4096),
        request_timeout_ms: election_timeout_ms,
    }
}
