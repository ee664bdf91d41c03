//! What the runtime refuses instead of getting wrong: a second node on a store already in use,
//! a state machine that answers a different number of results than entries, and a wait for a
//! leader that never comes (reported as no leader, not as an unknown outcome), and a
//! replication mode no transport carries yet.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use raft_core::engine::RestoredState;
use raft_core::message::{
    AppendEntries, AppendEntriesResponse, InstallSnapshot, InstallSnapshotResponse, RequestVote,
    RequestVoteResponse, TimeoutNow,
};
use raft_core::runtime::{Node, NodeConfig};
use raft_core::testing::{MemKv, MemLogStore, MemNetwork, test_config};
use raft_core::{
    Entry, Error, HardState, LogId, LogIndex, LogStore, NodeId, Payload, SnapshotReader,
    SnapshotSource, SnapshotWriter, StateMachine, StoreClaim, Transport,
};
use tokio::sync::watch;

const TIMEOUT: Duration = Duration::from_secs(10);

async fn start_single(
    log: &MemLogStore,
    state_machine: Arc<dyn StateMachine>,
    network: &MemNetwork,
) -> Result<Node, Error> {
    let id = NodeId(1);
    let node = Node::start(
        id,
        [(id, "node-1")],
        test_config(),
        Arc::new(log.clone()),
        state_machine,
        network.transport(id),
    )
    .await?;
    network.register(id, &node);
    Ok(node)
}

#[tokio::test(start_paused = true)]
async fn a_store_backs_one_running_node_and_is_free_again_once_it_stopped() {
    let network = MemNetwork::new(1);
    let log = MemLogStore::new();
    let first = start_single(&log, MemKv::new().into_arc(), &network)
        .await
        .unwrap();
    first.wait_for_leader(TIMEOUT).await.unwrap();
    first.append_one(MemKv::put("k", "1")).await.unwrap();

    // A clone of the same store is the same log: a second node on it is refused.
    let second = start_single(&log, MemKv::new().into_arc(), &network).await;
    assert!(matches!(second, Err(Error::StoreInUse)), "{second:?}");
    assert!(log.claim().is_held());

    first.shutdown().await;
    assert!(
        !log.claim().is_held(),
        "the claim is given back at shutdown"
    );
    let kv = MemKv::new();
    let restarted = start_single(&log, kv.clone().into_arc(), &network)
        .await
        .unwrap();
    restarted.wait_for_leader(TIMEOUT).await.unwrap();
    restarted.append_one(MemKv::put("k", "2")).await.unwrap();
    assert_eq!(kv.get(b"k").as_deref(), Some(&b"2"[..]));
    restarted.shutdown().await;
}

/// A store whose durable state cannot be read: the node fails to start after claiming it.
struct UnreadableStore(MemLogStore);

#[async_trait]
impl LogStore for UnreadableStore {
    async fn restore(&self) -> Result<RestoredState, Error> {
        Err(Error::storage("the disk cannot be read"))
    }
    async fn append(&self, entries: &[Entry]) -> Result<(), Error> {
        self.0.append(entries).await
    }
    async fn truncate(&self, from: LogIndex) -> Result<(), Error> {
        self.0.truncate(from).await
    }
    async fn read(&self, first: LogIndex, last: LogIndex) -> Result<Vec<Entry>, Error> {
        self.0.read(first, last).await
    }
    async fn save_hard_state(&self, hard_state: HardState) -> Result<(), Error> {
        self.0.save_hard_state(hard_state).await
    }
    async fn compact(&self, before: LogIndex) -> Result<(), Error> {
        self.0.compact(before).await
    }
    async fn begin_snapshot(&self) -> Result<Box<dyn SnapshotWriter>, Error> {
        self.0.begin_snapshot().await
    }
    async fn open_snapshot(&self) -> Result<Option<Arc<dyn SnapshotReader>>, Error> {
        self.0.open_snapshot().await
    }
    fn durable(&self) -> watch::Receiver<LogId> {
        self.0.durable()
    }
    fn byte_count(&self) -> u64 {
        self.0.byte_count()
    }
    fn claim(&self) -> &StoreClaim {
        self.0.claim()
    }
}

#[tokio::test(start_paused = true)]
async fn a_node_that_fails_to_start_gives_its_store_back() {
    let network = MemNetwork::new(1);
    let log = MemLogStore::new();
    let id = NodeId(1);
    let refused = Node::start(
        id,
        [(id, "node-1")],
        NodeConfig::default(),
        Arc::new(UnreadableStore(log.clone())),
        MemKv::new().into_arc(),
        network.transport(id),
    )
    .await;
    assert!(matches!(refused, Err(Error::Storage(_))), "{refused:?}");
    assert!(!log.claim().is_held(), "the claim is given back");
    let node = start_single(&log, MemKv::new().into_arc(), &network)
        .await
        .unwrap();
    node.shutdown().await;
}

/// Answers only the commands, skipping the leader's blank entries: an easy mistake that would
/// hand each caller another entry's result.
#[derive(Clone)]
struct SkipsBlankEntries(MemKv);

#[async_trait]
impl StateMachine for SkipsBlankEntries {
    async fn commit(&self, entries: &[Entry]) -> Result<Vec<Bytes>, Error> {
        let results = self.0.commit(entries).await?;
        let answered = entries
            .iter()
            .zip(results)
            .filter(|(entry, _)| !matches!(entry.payload, Payload::Blank))
            .map(|(_, result)| result)
            .collect();
        Ok(answered)
    }

    async fn snapshot(&self) -> Result<Box<dyn SnapshotSource>, Error> {
        self.0.snapshot().await
    }

    async fn restore(&self, snapshot: Arc<dyn SnapshotReader>) -> Result<(), Error> {
        self.0.restore(snapshot).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_state_machine_that_answers_fewer_results_than_entries_stops_the_node() {
    let network = MemNetwork::new(1);
    let log = MemLogStore::new();
    let state_machine = Arc::new(SkipsBlankEntries(MemKv::new()));
    let node = start_single(&log, state_machine, &network).await.unwrap();
    node.wait_for_leader(TIMEOUT).await.unwrap();
    // The leader's no-op is committed with no result: the node stops rather than pass
    // results on to the wrong callers.
    let mut status = node.watch_status();
    tokio::time::timeout(TIMEOUT, status.wait_for(|status| !status.running))
        .await
        .expect("the node stops")
        .unwrap();
    let refused = node.append_one(MemKv::put("k", "v")).await;
    assert!(
        matches!(refused, Err(Error::Shutdown | Error::Fatal(_))),
        "{refused:?}"
    );
    node.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn waiting_for_a_leader_that_never_comes_reports_no_leader() {
    // One member of three up: it can never win an election.
    let network = MemNetwork::new(1);
    let id = NodeId(1);
    let members = [1, 2, 3].map(|n| (NodeId(n), format!("node-{n}")));
    let node = Node::start(
        id,
        members,
        test_config(),
        MemLogStore::new().into_arc(),
        MemKv::new().into_arc(),
        network.transport(id),
    )
    .await
    .unwrap();
    network.register(id, &node);
    let waited = node.wait_for_leader(Duration::from_secs(5)).await;
    assert!(matches!(waited, Err(Error::NoLeader)), "{waited:?}");
    assert!(
        waited
            .unwrap_err()
            .to_string()
            .contains("nothing was written"),
        "says nothing was written"
    );
    node.shutdown().await;
}

/// A transport that carries requests but no entry streams (as a third-party one may).
struct NoStreams(Arc<dyn Transport>);

#[async_trait]
impl Transport for NoStreams {
    async fn append_entries(
        &self,
        to: NodeId,
        request: AppendEntries,
    ) -> Result<AppendEntriesResponse, Error> {
        self.0.append_entries(to, request).await
    }

    async fn request_vote(
        &self,
        to: NodeId,
        request: RequestVote,
    ) -> Result<RequestVoteResponse, Error> {
        self.0.request_vote(to, request).await
    }

    async fn timeout_now(&self, to: NodeId, request: TimeoutNow) -> Result<(), Error> {
        self.0.timeout_now(to, request).await
    }

    async fn install_snapshot(
        &self,
        to: NodeId,
        request: InstallSnapshot,
    ) -> Result<InstallSnapshotResponse, Error> {
        self.0.install_snapshot(to, request).await
    }
}

/// Streaming replication needs a transport that carries entry streams: on one that does not,
/// the node is refused at start, naming the setting, instead of running with followers that
/// never get an entry.
#[tokio::test(start_paused = true)]
async fn a_node_asked_for_streaming_replication_on_a_transport_without_streams_is_refused() {
    let network = MemNetwork::new(1);
    let log = MemLogStore::new();
    let id = NodeId(1);
    let mut config = test_config();
    config.raft.replication = raft_core::Replication::Streaming;
    let refused = Node::start(
        id,
        [(id, "node-1")],
        config.clone(),
        Arc::new(log.clone()),
        MemKv::new().into_arc(),
        Arc::new(NoStreams(network.transport(id))),
    )
    .await;
    match refused {
        Err(Error::Config(message)) => assert!(message.contains("Streaming"), "{message}"),
        other => panic!("expected a configuration error, got {other:?}"),
    }
    assert!(!log.claim().is_held(), "nothing was claimed");
    // The in-process network carries streams: the same node starts on it.
    let node = Node::start(
        id,
        [(id, "node-1")],
        config,
        Arc::new(log.clone()),
        MemKv::new().into_arc(),
        network.transport(id),
    )
    .await
    .unwrap();
    node.shutdown().await;
}
