//! Test support: a counter state machine, and the shared cluster harness of raft-core running
//! replicas (client sessions over a node) on it.
// A broken helper should fail the test loudly, hence unwrap and expect.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use raft_core::snapshot::{BytesSource, read_to_vec};
use raft_core::testing::{self, MemLogStore, MemNodes, NodeFactory, Nodes, Parts};
use raft_core::{
    BoxError, Entry, Error as CoreError, LogIndex, Node, NodeId, Payload, SnapshotReader,
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

/// A fast configuration for tests, snapshots by size off unless a test asks.
pub fn test_config() -> ReplicaConfig {
    let mut node = testing::test_config();
    node.snapshot_log_bytes = 0;
    let mut config = ReplicaConfig::default();
    config.node = node;
    config.submit_timeout = Duration::from_secs(2);
    config
}

/// Replicas on the in-memory log store, each with its own [`Counters`].
#[derive(Debug)]
pub struct Replicas;

/// Replicas 1..=n with their stores and counters.
pub type Cluster = testing::Cluster<Replicas>;

#[async_trait]
impl NodeFactory for Replicas {
    type Config = ReplicaConfig;
    type Store = MemLogStore;
    type StateMachine = Counters;
    type Handle = Replica;

    fn network_seed(&self) -> u64 {
        7
    }

    async fn store(&self, id: NodeId, kept: Option<MemLogStore>) -> Result<MemLogStore, BoxError> {
        MemNodes.store(id, kept).await
    }

    fn state_machine(&self, _: NodeId) -> Counters {
        Counters::default()
    }

    async fn start(&self, p: Parts<ReplicaConfig>) -> Result<(Node, Replica), BoxError> {
        let replica = Replica::start(
            p.id,
            p.members,
            p.config,
            p.log,
            p.state_machine,
            p.transport,
        )
        .await?;
        Ok((replica.node().clone(), replica))
    }

    async fn stop(&self, _: NodeId, _: Node, replica: Replica, _: &MemLogStore) {
        replica.shutdown().await;
    }
}

/// What the replica tests ask of their cluster.
#[async_trait]
pub trait ReplicaCluster {
    /// Running replica `id`.
    fn replica(&self, id: NodeId) -> Replica;
    /// The running replicas, in id order.
    fn replicas(&self) -> Vec<Replica>;
    /// Submits at whichever replica leads, following hints and retrying every retryable error
    /// with the same ids until an answer comes.
    async fn submit(&self, client: ClientId, request: RequestId, command: &str) -> Applied;
}

#[async_trait]
impl ReplicaCluster for Cluster {
    fn replica(&self, id: NodeId) -> Replica {
        self.handle(id)
    }

    fn replicas(&self) -> Vec<Replica> {
        self.nodes().handles()
    }

    async fn submit(&self, client: ClientId, request: RequestId, command: &str) -> Applied {
        submit_anywhere(&self.nodes(), client, request, command)
            .await
            .unwrap()
    }
}

/// A client's retry loop: same ids until an answer that is not retryable.
pub async fn submit_anywhere(
    replicas: &Nodes<Replica>,
    client: ClientId,
    request: RequestId,
    command: &str,
) -> Result<Applied, Error> {
    let command = Bytes::copy_from_slice(command.as_bytes());
    let mut target: Option<NodeId> = None;
    let mut last_error = None;
    for _ in 0..2000 {
        let Some((_, replica)) = replicas.pick(target) else {
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
