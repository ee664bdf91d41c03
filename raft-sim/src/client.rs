//! Simulated clients and the history they record for the linearizability check.
//!
//! Each client has at most one operation outstanding: a put (a unique value, so the checker can
//! tell writes apart) or a linearizable get. Outcomes follow what a client could really know:
//! - a proposal refused by a non-leader definitely did not happen (left out of the history);
//! - a write whose entry a node applied is `ok`; if that node applied a *different* entry at its
//!   index, it can never commit (left out);
//! - a write whose node crashed, rolled it back, jumped past it to a snapshot or timed out has
//!   an unknown outcome: it may take effect at any time after its call, or never (`ret: None`),
//!   and the client continues as a new process, as Jepsen does;
//! - a get answers only after the node applied up to its read index.

use std::collections::BTreeMap;

use bytes::Bytes;
use raft_core::{LogId, LogIndex, NodeId};

use crate::linearizability::Operation;
use crate::linearizability::kv::{KvInput, KvOutput};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OpState {
    Pending,
    Done,
    Failed,
    Unknown,
}

#[derive(Clone, Debug)]
struct OpRecord {
    client: usize,
    process: u64,
    input: KvInput,
    call: u64,
    ret: Option<u64>,
    output: Option<KvOutput>,
    state: OpState,
    /// Where the op was sent (index into the world's nodes).
    node: usize,
}

#[derive(Clone, Debug)]
struct ClientState {
    process: u64,
    /// The node this client believes leads.
    target: usize,
}

/// What the world must do for a client after an event.
pub(crate) type Reschedule = Option<usize>;

#[derive(Debug, Default)]
pub(crate) struct Clients {
    clients: Vec<ClientState>,
    ops: Vec<OpRecord>,
    /// Accepted writes waiting to be applied: (node, index) -> (entry id, op).
    awaiting_apply: BTreeMap<(usize, LogIndex), (LogId, usize)>,
    /// Event positions: the history's clock.
    clock: u64,
    next_process: u64,
    next_value: u64,
    pub(crate) completed: u64,
}

/// Encodes a put as a log payload: `key=value`.
pub(crate) fn encode_put(key: &str, value: &str) -> Bytes {
    Bytes::from(format!("{key}={value}"))
}

/// Decodes a payload written by [`encode_put`].
pub(crate) fn decode_put(payload: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(payload).ok()?;
    let (key, value) = text.split_once('=')?;
    Some((key.to_owned(), value.to_owned()))
}

impl Clients {
    pub(crate) fn new(count: usize, nodes: usize) -> Clients {
        let mut clients = Clients::default();
        for client in 0..count {
            let process = clients.new_process();
            clients.clients.push(ClientState {
                process,
                target: client % nodes.max(1),
            });
        }
        clients
    }

    fn new_process(&mut self) -> u64 {
        self.next_process += 1;
        self.next_process
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    pub(crate) fn target(&self, client: usize) -> usize {
        self.clients.get(client).map_or(0, |c| c.target)
    }

    pub(crate) fn retarget(&mut self, client: usize, node: usize) {
        if let Some(state) = self.clients.get_mut(client) {
            state.target = node;
        }
    }

    /// Starts an op; returns its id (the index in the history).
    pub(crate) fn invoke(&mut self, client: usize, node: usize, input: KvInput) -> u64 {
        let call = self.tick();
        let process = self.clients.get(client).map_or(0, |c| c.process);
        self.ops.push(OpRecord {
            client,
            process,
            input,
            call,
            ret: None,
            output: None,
            state: OpState::Pending,
            node,
        });
        self.ops.len() as u64 - 1
    }

    /// Op `id` went to `node` after all (a follower read sent to another node than the
    /// client's target): a crash of `node` abandons it.
    pub(crate) fn redirect(&mut self, id: u64, node: usize) {
        if let Some(op) = self.op_mut(id) {
            op.node = node;
        }
    }

    pub(crate) fn fresh_value(&mut self) -> String {
        self.next_value += 1;
        format!("v{}", self.next_value)
    }

    fn op_mut(&mut self, id: u64) -> Option<&mut OpRecord> {
        let op = self.ops.get_mut(usize::try_from(id).ok()?)?;
        (op.state == OpState::Pending).then_some(op)
    }

    fn finish(&mut self, id: u64, state: OpState, output: Option<KvOutput>) -> Reschedule {
        let ret = self.tick();
        let op = self.op_mut(id)?;
        op.state = state;
        op.output = output;
        op.ret = Some(ret);
        let client = op.client;
        match state {
            OpState::Unknown => {
                let process = self.new_process();
                if let Some(c) = self.clients.get_mut(client) {
                    c.process = process;
                }
            }
            OpState::Done => self.completed += 1,
            OpState::Failed | OpState::Pending => {}
        }
        Some(client)
    }

    pub(crate) fn on_rejected(&mut self, id: u64, leader: Option<NodeId>) -> Reschedule {
        let client = self.ops.get(usize::try_from(id).ok()?)?.client;
        if let Some(leader) = leader {
            self.retarget(
                client,
                usize::try_from(leader.0.saturating_sub(1)).unwrap_or(0),
            );
        }
        self.finish(id, OpState::Failed, None)
    }

    pub(crate) fn on_accepted(&mut self, id: u64, node: usize, first: LogId) {
        if self.op_mut(id).is_some() {
            self.awaiting_apply.insert(
                (node, first.index),
                (first, usize::try_from(id).unwrap_or(0)),
            );
        }
    }

    /// A node applied `log_id`: completes the write waiting for it, or fails the write that
    /// expected another entry at that index.
    pub(crate) fn on_applied(&mut self, node: usize, log_id: LogId) -> Reschedule {
        let (expected, op) = self.awaiting_apply.remove(&(node, log_id.index))?;
        if expected == log_id {
            self.finish(op as u64, OpState::Done, Some(KvOutput::Done))
        } else {
            self.finish(op as u64, OpState::Failed, None)
        }
    }

    /// A node rolled back `first..=last`: writes waiting there have unknown outcomes.
    pub(crate) fn on_rolled_back(
        &mut self,
        node: usize,
        first: LogIndex,
        last: LogIndex,
    ) -> Vec<usize> {
        let keys: Vec<(usize, LogIndex)> = self
            .awaiting_apply
            .range((node, first)..=(node, last))
            .map(|(&key, _)| key)
            .collect();
        let mut clients = Vec::new();
        for key in keys {
            if let Some((_, op)) = self.awaiting_apply.remove(&key) {
                clients.extend(self.finish(op as u64, OpState::Unknown, None));
            }
        }
        clients
    }

    /// A node's state machine jumped to a snapshot at `upto`: writes waiting for it to apply
    /// an entry the snapshot covers have unknown outcomes (the runtime answers them
    /// `Aborted`; whether their entry or another one committed there is not told).
    pub(crate) fn on_restored(&mut self, node: usize, upto: LogIndex) -> Vec<usize> {
        self.on_rolled_back(node, LogIndex::ZERO, upto)
    }

    /// The key a pending get reads.
    pub(crate) fn read_key(&self, id: u64) -> Option<String> {
        match &self.ops.get(usize::try_from(id).ok()?)?.input {
            KvInput::Get { key } => Some(key.clone()),
            _ => None,
        }
    }

    pub(crate) fn on_read(&mut self, id: u64, value: String) -> Reschedule {
        self.finish(id, OpState::Done, Some(KvOutput::Value(value)))
    }

    /// An op timed out or its node crashed: outcome unknown.
    pub(crate) fn abandon(&mut self, id: u64) -> Reschedule {
        self.awaiting_apply.retain(|_, (_, op)| *op as u64 != id);
        self.finish(id, OpState::Unknown, None)
    }

    /// The op `client` waits for, and the node it was sent to.
    pub(crate) fn pending_of(&self, client: usize) -> Option<(u64, usize)> {
        self.ops
            .iter()
            .enumerate()
            .rev()
            .find(|(_, op)| op.client == client && op.state == OpState::Pending)
            .map(|(id, op)| (id as u64, op.node))
    }

    /// Every pending op sent to `node` (which crashed).
    pub(crate) fn pending_at(&self, node: usize) -> Vec<u64> {
        self.ops
            .iter()
            .enumerate()
            .filter(|(_, op)| op.state == OpState::Pending && op.node == node)
            .map(|(id, _)| id as u64)
            .collect()
    }

    /// The history for the checker: completed ops, and writes of unknown outcome as never
    /// returning. Failed ops and unanswered reads did nothing observable and are left out.
    pub(crate) fn history(&self) -> Vec<Operation<KvInput, KvOutput>> {
        self.ops
            .iter()
            .filter_map(|op| {
                let is_write = !matches!(op.input, KvInput::Get { .. });
                let (ret, output) = match op.state {
                    OpState::Done => (op.ret, op.output.clone()),
                    OpState::Unknown | OpState::Pending if is_write => (None, None),
                    _ => return None,
                };
                Some(Operation {
                    client: op.process,
                    input: op.input.clone(),
                    call: op.call,
                    ret,
                    output,
                })
            })
            .collect()
    }
}
