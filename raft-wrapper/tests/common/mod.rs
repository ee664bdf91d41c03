//! Test support: a counter state machine and a cluster of replicas on the in-process network.
// A broken helper should fail the test loudly, hence unwrap and expect.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use raft_core::snapshot::{BytesSource, read_to_vec};
use raft_core::testing::{MemLogStore, MemNetwork};
use raft_core::{
    Entry, Error as CoreError, LogIndex, NodeConfig, NodeId, Payload, SnapshotReader,
    SnapshotSource, StateMachine,
};
use raft_wrapper::{Applied, ClientId, Error, Replica, ReplicaConfig, RequestId};

/// Named counters: a command is a counter name; applying it adds 1 and answers the new value
/// (8 bytes, big endian). Not idempotent, which is the point.
#[derive(Clone, Default)]
pub struct Counters {
    state: Arc<Mutex<CounterState>>,
}

#[derive(Default)]
struct CounterState {
    values: BTreeMap<Bytes, u64>,
    last_index: LogIndex,
    /// Indexes that did not follow the previous one.
    gaps: Vec<LogIndex>,
    increments: u64,
    restored_from: Vec<LogIndex>,
}

impl Counters {
    pub fn into_arc(self) -> Arc<dyn StateMachine> {
        Arc::new(self)
    }

    pub fn value(&self, name: &str) -> u64 {
        let state = self.state.lock().unwrap();
        state.values.get(name.as_bytes()).copied().unwrap_or(0)
    }

    /// Increments applied since this state machine started (or was last restored).
    pub fn increments(&self) -> u64 {
        self.state.lock().unwrap().increments
    }

    pub fn restored_from(&self) -> Vec<LogIndex> {
        self.state.lock().unwrap().restored_from.clone()
    }

    pub fn sum(&self) -> u64 {
        self.state.lock().unwrap().values.values().sum()
    }

    pub fn assert_in_order(&self) {
        let state = self.state.lock().unwrap();
        assert!(
            state.gaps.is_empty(),
            "applied out of order at {:?}",
            state.gaps
        );
    }
}

pub fn decode_value(result: &Bytes) -> u64 {
    let mut bytes = result.clone();
    assert_eq!(bytes.len(), 8, "a counter value");
    bytes.get_u64()
}

#[async_trait]
impl StateMachine for Counters {
    async fn commit(&self, entries: &[Entry]) -> Result<Vec<Bytes>, CoreError> {
        let mut state = self.state.lock().unwrap();
        let mut results = Vec::with_capacity(entries.len());
        for entry in entries {
            let index = entry.log_id.index;
            if index != state.last_index.next() {
                state.gaps.push(index);
            }
            state.last_index = index;
            let Payload::Command(name) = &entry.payload else {
                results.push(Bytes::new());
                continue;
            };
            let value = state.values.entry(name.clone()).or_insert(0);
            *value += 1;
            let value = *value;
            state.increments += 1;
            results.push(Bytes::copy_from_slice(&value.to_be_bytes()));
        }
        Ok(results)
    }

    async fn snapshot(&self) -> Result<Box<dyn SnapshotSource>, CoreError> {
        let state = self.state.lock().unwrap();
        let mut data = BytesMut::new();
        data.put_u64(state.last_index.0);
        for (name, value) in &state.values {
            data.put_u32(name.len() as u32);
            data.put_slice(name);
            data.put_u64(*value);
        }
        Ok(Box::new(BytesSource::new(data.freeze(), 100)))
    }

    async fn restore(&self, snapshot: Arc<dyn SnapshotReader>) -> Result<(), CoreError> {
        let mut data = Bytes::from(read_to_vec(snapshot.as_ref(), 64).await?);
        let index = LogIndex(data.get_u64());
        assert_eq!(index, snapshot.meta().last_log_id.index);
        let mut values = BTreeMap::new();
        while data.has_remaining() {
            let len = data.get_u32() as usize;
            let name = data.split_to(len);
            values.insert(name, data.get_u64());
        }
        let mut state = self.state.lock().unwrap();
        state.values = values;
        state.last_index = index;
        state.restored_from.push(index);
        Ok(())
    }
}

pub fn address(id: NodeId) -> String {
    format!("mem://node-{id}")
}

/// A fast configuration for tests, snapshots by size off unless a test asks.
pub fn test_config() -> ReplicaConfig {
    let mut node = NodeConfig::default();
    node.raft.election_timeout_ms = 300;
    node.raft.heartbeat_interval_ms = 30;
    node.raft.request_timeout_ms = 300;
    node.snapshot_log_bytes = 0;
    let mut config = ReplicaConfig::default();
    config.node = node;
    config.submit_timeout = Duration::from_secs(2);
    config
}

/// Replicas 1..=n with their stores and counters.
pub struct Cluster {
    pub network: MemNetwork,
    pub config: ReplicaConfig,
    pub ids: Vec<NodeId>,
    pub stores: BTreeMap<NodeId, MemLogStore>,
    pub counters: BTreeMap<NodeId, Counters>,
    pub replicas: Arc<Mutex<BTreeMap<NodeId, Replica>>>,
}

impl Cluster {
    pub async fn start(n: u64, config: ReplicaConfig) -> Cluster {
        let ids: Vec<NodeId> = (1..=n).map(NodeId).collect();
        let mut cluster = Cluster {
            network: MemNetwork::new(7),
            config,
            stores: ids.iter().map(|&id| (id, MemLogStore::new())).collect(),
            counters: BTreeMap::new(),
            replicas: Arc::new(Mutex::new(BTreeMap::new())),
            ids: ids.clone(),
        };
        for id in ids {
            cluster.start_replica(id).await;
        }
        cluster
    }

    /// Starts (or restarts) `id` from its log store with an empty state machine.
    pub async fn start_replica(&mut self, id: NodeId) {
        let counters = Counters::default();
        let members = self.ids.iter().map(|&id| (id, address(id)));
        let replica = Replica::start(
            id,
            members,
            self.config.clone(),
            Arc::new(self.stores[&id].clone()),
            Arc::new(counters.clone()),
            self.network.transport(id),
        )
        .await
        .expect("replica starts");
        self.network.register(id, replica.node());
        self.counters.insert(id, counters);
        self.replicas.lock().unwrap().insert(id, replica);
    }

    pub async fn stop_replica(&mut self, id: NodeId) {
        self.network.unregister(id);
        let replica = self.replicas.lock().unwrap().remove(&id);
        if let Some(replica) = replica {
            replica.shutdown().await;
        }
    }

    pub fn replica(&self, id: NodeId) -> Replica {
        self.replicas.lock().unwrap()[&id].clone()
    }

    pub fn running(&self) -> Vec<Replica> {
        self.replicas.lock().unwrap().values().cloned().collect()
    }

    pub fn others(&self, id: NodeId) -> Vec<NodeId> {
        self.ids.iter().copied().filter(|&o| o != id).collect()
    }

    /// Waits until one running replica among `among` leads and the others there know it.
    pub async fn wait_for_leader_among(&self, among: &[NodeId]) -> NodeId {
        for _ in 0..1000 {
            let replicas: Vec<Replica> = self
                .running()
                .into_iter()
                .filter(|r| among.contains(&r.node().id()))
                .collect();
            let leaders: Vec<&Replica> = replicas.iter().filter(|r| r.node().is_leader()).collect();
            if let [leader] = leaders.as_slice() {
                let id = leader.node().id();
                if replicas.iter().all(|r| r.node().leader() == Some(id)) {
                    return id;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no stable leader among {among:?}");
    }

    pub async fn wait_for_leader(&self) -> NodeId {
        let ids: Vec<NodeId> = self.replicas.lock().unwrap().keys().copied().collect();
        self.wait_for_leader_among(&ids).await
    }

    /// Waits until every running replica applied everything the most advanced one committed.
    pub async fn wait_converged(&self) {
        for _ in 0..3000 {
            let running = self.running();
            let commit = running
                .iter()
                .map(|r| r.node().commit_index())
                .max()
                .unwrap_or_default();
            if running.iter().all(|r| r.node().applied_index() >= commit) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let applied: Vec<_> = self
            .running()
            .iter()
            .map(|r| {
                (
                    r.node().id(),
                    r.node().commit_index(),
                    r.node().applied_index(),
                )
            })
            .collect();
        panic!("replicas did not converge: {applied:?}");
    }

    /// Submits at whichever replica leads, following hints and retrying every retryable error
    /// with the same ids until an answer comes.
    pub async fn submit(&self, client: ClientId, request: RequestId, command: &str) -> Applied {
        submit_anywhere(&self.replicas, client, request, command)
            .await
            .unwrap()
    }
}

/// A client's retry loop: same ids until an answer that is not retryable.
pub async fn submit_anywhere(
    replicas: &Arc<Mutex<BTreeMap<NodeId, Replica>>>,
    client: ClientId,
    request: RequestId,
    command: &str,
) -> Result<Applied, Error> {
    let command = Bytes::copy_from_slice(command.as_bytes());
    let mut target: Option<NodeId> = None;
    let mut last_error = None;
    for _ in 0..2000 {
        let replica = {
            let replicas = replicas.lock().unwrap();
            target
                .and_then(|id| replicas.get(&id).cloned())
                .or_else(|| replicas.values().find(|r| r.node().is_leader()).cloned())
                .or_else(|| replicas.values().next().cloned())
        };
        let Some(replica) = replica else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        match replica.submit(client, request, command.clone()).await {
            Err(Error::NotLeader { leader }) => {
                target = leader.map(|hint| hint.id);
                last_error = Some(Error::NotLeader { leader: None });
            }
            Err(error) if error.is_retryable() => {
                target = None;
                last_error = Some(error);
            }
            answer => return answer,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("client {client} request {request} got no answer; last error: {last_error:?}");
}
