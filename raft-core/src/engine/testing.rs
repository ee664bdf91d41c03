//! A deterministic cluster of engines for unit tests: a manual clock, an explicit message
//! queue, and logs that persist at once unless a node's persistence is switched to manual.
//! raft-sim builds the fault-injecting version of this for whole runs.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;

use super::{Engine, Input, LogEntryMeta, Output, RestoredState, RoleKind};
use crate::config::Config;
use crate::message::Message;
use crate::types::{Entry, HardState, LogId, LogIndex, Membership, NodeId, Payload, Term};

/// One message in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Envelope {
    pub(crate) from: NodeId,
    pub(crate) to: NodeId,
    pub(crate) message: Message,
}

#[derive(Debug)]
pub(crate) struct Cluster {
    pub(crate) engines: BTreeMap<NodeId, Engine>,
    /// Each node's log as a store would hold it (readable before durable).
    pub(crate) logs: BTreeMap<NodeId, Vec<Entry>>,
    pub(crate) network: VecDeque<Envelope>,
    /// Nodes whose persistence the test reports by hand.
    pub(crate) manual_persist: BTreeSet<NodeId>,
    pending: VecDeque<(NodeId, Input)>,
    pub(crate) committed: BTreeMap<NodeId, LogIndex>,
    /// Every output of every node, in order.
    pub(crate) trace: Vec<(NodeId, Output)>,
}

impl Cluster {
    pub(crate) fn new(nodes: u64, config: &Config) -> Cluster {
        let ids: Vec<NodeId> = (1..=nodes).map(NodeId).collect();
        let membership = Membership::new(ids.iter().copied());
        let engines = ids
            .iter()
            .map(|&id| {
                let restored = RestoredState::default();
                let mut engine = Engine::new(id, membership.clone(), config.clone(), restored, 42)
                    .expect("valid test config");
                engine.core.clock_started = true;
                engine.core.quiet_until_ms = 0;
                (id, engine)
            })
            .collect();
        Cluster {
            engines,
            logs: ids.iter().map(|&id| (id, Vec::new())).collect(),
            network: VecDeque::new(),
            manual_persist: BTreeSet::new(),
            pending: VecDeque::new(),
            committed: BTreeMap::new(),
            trace: Vec::new(),
        }
    }

    /// A cluster whose node `i + 1` restarts with hard-state term `nodes[i].0` and a durable
    /// log of entries with the terms `nodes[i].1` (payload "c"), commit index `commit`.
    pub(crate) fn restored(config: &Config, nodes: &[(u64, &[u64])], commit: u64) -> Cluster {
        let mut cluster = Cluster::new(0, config);
        let ids: Vec<NodeId> = (1..=nodes.len() as u64).map(NodeId).collect();
        let membership = Membership::new(ids.iter().copied());
        for (&id, &(term, terms)) in ids.iter().zip(nodes) {
            let entries: Vec<Entry> = terms
                .iter()
                .enumerate()
                .map(|(i, &t)| Entry {
                    log_id: LogId::new(t, i as u64 + 1),
                    payload: Payload::Command(Bytes::from_static(b"c")),
                })
                .collect();
            let restored = RestoredState {
                memberships: Vec::new(),
                hard_state: HardState {
                    term: Term(term),
                    vote: None,
                    commit: LogIndex(commit.min(entries.len() as u64)),
                },
                snapshot: None,
                entries: entries
                    .iter()
                    .map(|e| LogEntryMeta {
                        log_id: e.log_id,
                        payload_len: e.payload.len(),
                    })
                    .collect(),
            };
            let mut engine = Engine::new(id, membership.clone(), config.clone(), restored, 42)
                .expect("valid restored state");
            engine.drain_outputs();
            engine.core.clock_started = true;
            engine.core.quiet_until_ms = 0;
            cluster.engines.insert(id, engine);
            cluster.logs.insert(id, entries);
        }
        cluster
    }

    /// Starts node `id` with an empty disk and no membership: it waits to be added.
    pub(crate) fn add_empty_node(&mut self, id: u64, config: &Config) {
        let id = NodeId(id);
        let restored = RestoredState::default();
        let mut engine = Engine::new(id, Membership::default(), config.clone(), restored, 42)
            .expect("valid test config");
        engine.core.clock_started = true;
        engine.core.quiet_until_ms = 0;
        engine.core.now_ms = self
            .engines
            .values()
            .map(|e| e.core.now_ms)
            .max()
            .unwrap_or(0);
        engine.core.reset_election_timer();
        self.engines.insert(id, engine);
        self.logs.insert(id, Vec::new());
    }

    /// Asks `id` for a membership change; returns its outputs.
    pub(crate) fn change(
        &mut self,
        id: u64,
        change: crate::membership::MembershipChange,
    ) -> Vec<Output> {
        self.step(id, Input::MembershipChangeRequested { id: 7, change })
    }

    pub(crate) fn engine(&self, id: u64) -> &Engine {
        &self.engines[&NodeId(id)]
    }

    pub(crate) fn role(&self, id: u64) -> RoleKind {
        self.engine(id).role_kind()
    }

    /// Steps one node, executes its outputs (and any automatic persistence), returns the
    /// outputs of this step alone.
    pub(crate) fn step(&mut self, id: u64, input: Input) -> Vec<Output> {
        let id = NodeId(id);
        let engine = self.engines.get_mut(&id).expect("known node");
        let outputs: Vec<Output> = engine.step(input).collect();
        for output in &outputs {
            self.execute(id, output.clone());
        }
        self.settle();
        outputs
    }

    fn settle(&mut self) {
        while let Some((id, input)) = self.pending.pop_front() {
            let engine = self.engines.get_mut(&id).expect("known node");
            let outputs: Vec<Output> = engine.step(input).collect();
            for output in outputs {
                self.execute(id, output);
            }
        }
    }

    fn execute(&mut self, id: NodeId, output: Output) {
        self.trace.push((id, output.clone()));
        let auto = !self.manual_persist.contains(&id);
        match output {
            Output::PersistHardState(hard_state) if auto => {
                self.pending
                    .push_back((id, Input::HardStatePersisted { hard_state }));
            }
            Output::AppendLog { entries, epoch } => {
                let upto = entries.last().map(|entry| entry.log_id);
                let log = self.logs.get_mut(&id).expect("known node");
                for entry in entries {
                    assert_eq!(entry.log_id.index.0, log.len() as u64 + 1);
                    log.push(entry);
                }
                if let (true, Some(upto)) = (auto, upto) {
                    self.pending
                        .push_back((id, Input::LogPersisted { upto, epoch }));
                }
            }
            Output::TruncateLog { from } => {
                let log = self.logs.get_mut(&id).expect("known node");
                log.truncate(from.0 as usize - 1);
            }
            Output::Send { to, message } => {
                self.network.push_back(Envelope {
                    from: id,
                    to,
                    message,
                });
            }
            Output::SendEntries {
                to,
                mut request,
                first,
                last_log_id,
            } => {
                let log = &self.logs[&id];
                request.entries = log[first.0 as usize - 1..last_log_id.index.0 as usize].to_vec();
                assert_eq!(request.entries.last().map(|e| e.log_id), Some(last_log_id));
                self.network.push_back(Envelope {
                    from: id,
                    to,
                    message: Message::AppendEntries(request),
                });
            }
            Output::Commit { upto } => {
                self.committed.insert(id, upto);
            }
            _ => {}
        }
    }

    /// Delivers one envelope.
    pub(crate) fn deliver(&mut self, envelope: Envelope) -> Vec<Output> {
        let input = Input::Received {
            from: envelope.from,
            message: envelope.message,
        };
        self.step(envelope.to.0, input)
    }

    /// Delivers every message, including the ones delivering produces, in FIFO order.
    pub(crate) fn deliver_all(&mut self) {
        let mut rounds = 0;
        while let Some(envelope) = self.network.pop_front() {
            self.deliver(envelope);
            rounds += 1;
            assert!(rounds < 100_000, "message storm");
        }
    }

    /// Drops every message in flight.
    pub(crate) fn drop_all(&mut self) {
        self.network.clear();
    }

    /// Moves every clock to `now_ms` and lets `id`'s election timer fire then (nothing is
    /// delivered); the outputs of that tick.
    pub(crate) fn time_out(&mut self, id: u64, now_ms: u64) -> Vec<Output> {
        self.set_clocks(now_ms);
        let candidate = self.engines.get_mut(&NodeId(id)).expect("known node");
        candidate.core.election_deadline_ms = now_ms;
        self.step(id, Input::Tick { now_ms })
    }

    /// Lets `id`'s election timer fire at `now_ms` and delivers everything.
    pub(crate) fn elect(&mut self, id: u64, now_ms: u64) {
        self.time_out(id, now_ms);
        self.deliver_all();
        assert_eq!(self.role(id), RoleKind::Leader, "node {id} should have won");
    }

    /// Moves every node's clock to `now_ms` with a fresh election timer, as if each had been
    /// ticking all along without a timeout.
    pub(crate) fn set_clocks(&mut self, now_ms: u64) {
        for engine in self.engines.values_mut() {
            engine.core.now_ms = now_ms;
            engine.core.clock_started = true;
            engine.core.quiet_until_ms = 0;
            engine.core.reset_election_timer();
        }
    }

    pub(crate) fn propose(&mut self, id: u64, payload: &'static str) -> Vec<Output> {
        let input = Input::Proposed {
            id: 0,
            payloads: vec![Bytes::from_static(payload.as_bytes())],
        };
        self.step(id, input)
    }

    pub(crate) fn commit_of(&self, id: u64) -> LogIndex {
        self.engine(id).status().commit_index
    }
}
