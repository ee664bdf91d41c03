//! [`HttpNode`]: raft-core clusters wired by the builder alone over loopback on free ports. They
//! elect, commit and redirect clients to the advertised (not the dialled) addresses; a snapshot
//! in chunks over the default body limit installs once the chunk size is given to the builder;
//! a node with the wrong secret is refused; and the server handle stops in order, also when it
//! is dropped.

// Helpers of this test file: a broken one should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use common::{
    Behaviour, CLUSTER, FakeHandler, SECRET, http1, post, snapshot_data, snapshot_request,
    vote_request,
};
use hyper::StatusCode;
use raft_core::runtime::{Node, NodeConfig};
use raft_core::testing::{self, MemKv, MemLogStore, MemNodes, NodeFactory, Parts, test_config};
use raft_core::{BoxError, Error, LogIndex, NodeId, Transport};
use raft_http::{
    DEFAULT_MAX_SNAPSHOT_BODY_BYTES, ErrorCode, HttpNode, HttpNodeBuilder, RequestError,
    ServerConfig, Serving,
};
use tokio::net::TcpListener;

/// raft-core nodes wired by [`HttpNode`]: each binds (first on a listener bound in advance on a
/// free port, at a restart on the same address), starts on the builder's members and
/// transport, and is served by the builder; a stop shuts the server down, then the node.
struct BuiltNodes {
    /// Each node's dial address.
    addresses: BTreeMap<NodeId, String>,
    /// The listeners of the first start.
    listeners: Mutex<BTreeMap<NodeId, TcpListener>>,
    /// Each node's secret.
    secrets: BTreeMap<NodeId, &'static str>,
    /// Whether each node advertises a client address of its own (not its dial address).
    advertise: bool,
    serving: Mutex<BTreeMap<NodeId, Serving>>,
}

impl BuiltNodes {
    async fn new(n: u64, secret: impl Fn(NodeId) -> &'static str) -> BuiltNodes {
        let mut addresses = BTreeMap::new();
        let mut listeners = BTreeMap::new();
        let mut secrets = BTreeMap::new();
        for id in (1..=n).map(NodeId) {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            addresses.insert(id, listener.local_addr().unwrap().to_string());
            listeners.insert(id, listener);
            secrets.insert(id, secret(id));
        }
        BuiltNodes {
            addresses,
            listeners: Mutex::new(listeners),
            secrets,
            advertise: false,
            serving: Mutex::new(BTreeMap::new()),
        }
    }

    fn client_address(id: NodeId) -> String {
        format!("client-{id}.example:80")
    }

    /// Node `id`'s builder: its listener, its peers, the cluster's credentials (this node's
    /// secret), the node configuration, short client timeouts.
    fn builder(&self, id: NodeId, config: &NodeConfig) -> HttpNodeBuilder {
        let mut builder = HttpNode::builder(id)
            .cluster(CLUSTER)
            .secret(self.secrets[&id])
            .node_config(config)
            .configure_client(|client| {
                client.connect_timeout = Duration::from_millis(200);
                client.backoff_initial = Duration::from_millis(10);
                client.backoff_max = Duration::from_millis(100);
            });
        builder = match self.listeners.lock().unwrap().remove(&id) {
            Some(listener) => builder.listener(listener),
            None => builder.listen(self.addresses[&id].clone()),
        };
        for (&peer, address) in &self.addresses {
            if peer != id {
                builder = builder.peer(peer, address.clone());
            }
        }
        if self.advertise {
            for &member in self.addresses.keys() {
                builder = builder.advertise(member, BuiltNodes::client_address(member));
            }
        }
        builder
    }
}

#[async_trait]
impl NodeFactory for BuiltNodes {
    type Config = NodeConfig;
    type Store = MemLogStore;
    type StateMachine = MemKv;
    type Handle = ();

    fn address(&self, id: NodeId) -> String {
        if self.advertise {
            BuiltNodes::client_address(id)
        } else {
            self.addresses[&id].clone()
        }
    }

    async fn store(&self, id: NodeId, kept: Option<MemLogStore>) -> Result<MemLogStore, BoxError> {
        MemNodes.store(id, kept).await
    }

    fn state_machine(&self, _: NodeId) -> MemKv {
        MemKv::new()
    }

    async fn start(&self, parts: Parts<NodeConfig>) -> Result<(Node, ()), BoxError> {
        let http = self.builder(parts.id, &parts.config).bind().await?;
        // The builder's member list is the one the cluster expects: client addresses, this
        // node's own (its bound address, when not advertised) included.
        let members: Vec<(NodeId, String)> = http.members().into_iter().collect();
        assert_eq!(members, parts.members);
        assert_eq!(http.local_addr().to_string(), self.addresses[&parts.id]);
        let node = Node::start(
            http.id(),
            http.members(),
            parts.config,
            parts.log,
            parts.state_machine,
            http.transport(),
        )
        .await?;
        let serving = http.serve(node.clone());
        self.serving.lock().unwrap().insert(parts.id, serving);
        Ok((node, ()))
    }

    async fn stop(&self, id: NodeId, node: Node, (): (), _: &MemLogStore) {
        let serving = self.serving.lock().unwrap().remove(&id);
        if let Some(serving) = serving {
            serving.shutdown().await;
        }
        node.shutdown().await;
    }
}

/// Writes `count` values of `size` bytes through `leader`; returns the last index.
async fn write(leader: &Node, prefix: &str, count: usize, size: usize) -> LogIndex {
    let mut last = LogIndex::ZERO;
    for i in 0..count {
        let value = vec![b'a' + (i % 26) as u8; size];
        let appended = leader
            .append(vec![MemKv::put(format!("{prefix}{i}"), value)])
            .await
            .expect("committed");
        last = appended.first.index;
    }
    last
}

/// The `RequestError` inside a transport error.
fn request_error(error: &Error) -> &RequestError {
    let Error::Transport { source, .. } = error else {
        panic!("not a transport error: {error:?}");
    };
    source
        .downcast_ref::<RequestError>()
        .expect("a RequestError")
}

fn same_secret(_: NodeId) -> &'static str {
    SECRET
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_nodes_elect_commit_and_redirect_clients_to_advertised_addresses() {
    let mut factory = BuiltNodes::new(3, same_secret).await;
    factory.advertise = true;
    let cluster = testing::Cluster::start_with(factory, 3, test_config()).await;
    let leader_id = cluster.wait_for_leader().await;
    let leader = cluster.node(leader_id);
    let last = write(&leader, "k", 20, 100).await;
    cluster.wait_applied(last).await;
    for kv in cluster.state_machines.values() {
        assert_eq!(kv.get(b"k19").as_deref(), Some(&[b't'; 100][..]));
    }

    // Peers were dialled at their listeners; clients are sent to the advertised addresses.
    let follower = cluster.node(cluster.others(leader_id)[0]);
    match follower.append(vec![MemKv::put("x", "y")]).await {
        Err(Error::NotLeader { leader: Some(hint) }) => {
            assert_eq!(hint.id, leader_id);
            assert_eq!(hint.address, BuiltNodes::client_address(leader_id));
        }
        other => panic!("a follower redirects: {other:?}"),
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_in_chunks_over_the_default_body_limit_installs_on_a_lagging_follower() {
    let mut config = test_config();
    // Four times raft-core's default chunk: one chunk is over the server's default limit.
    config.raft.snapshot_chunk_bytes = 4 << 20;
    config.raft.snapshot_entries = 16;
    config.raft.snapshot_keep_entries = 2;
    // A chunk of megabytes on a busy machine: room to spare.
    config.raft.request_timeout_ms = 2000;
    let mut cluster =
        testing::Cluster::start_with(BuiltNodes::new(3, same_secret).await, 3, config).await;
    let leader_id = cluster.wait_for_leader().await;
    let leader = cluster.node(leader_id);
    let follower = cluster.others(leader_id)[0];
    cluster.stop_node(follower).await;

    // 48 values of 64 KiB while the follower is away: snapshots of ~3 MiB, the log compacted.
    let last = write(&leader, "big", 48, 64 << 10).await;
    cluster.wait_applied(last).await;
    assert!(
        leader.status().log_base_index > LogIndex(2),
        "the leader compacted: {:?}",
        leader.status()
    );
    cluster.start_node(follower).await;
    let last = write(&leader, "after", 3, 10).await;
    cluster.wait_applied(last).await;

    let back = &cluster.state_machines[&follower];
    assert!(!back.restored_from().is_empty(), "installed a snapshot");
    let installed = cluster.stores[&follower]
        .snapshot_meta()
        .expect("a snapshot");
    assert!(
        installed.size > DEFAULT_MAX_SNAPSHOT_BODY_BYTES as u64,
        "the snapshot ({} bytes) went in chunks over the default limit",
        installed.size
    );
    assert_eq!(back.dump(), cluster.state_machines[&leader_id].dump());
    cluster.shutdown().await;
}

#[tokio::test]
async fn the_snapshot_body_limit_follows_the_chunk_size_given_to_the_builder() {
    let data = snapshot_data(3 << 20);
    let mut config = NodeConfig::default();
    config.raft.snapshot_chunk_bytes = 4 << 20;
    for raised in [false, true] {
        let handler = FakeHandler::new();
        let mut receiver = HttpNode::builder(NodeId(2))
            .listen("127.0.0.1:0")
            .cluster(CLUSTER)
            .secret(SECRET);
        if raised {
            receiver = receiver.node_config(&config);
        }
        let receiver = receiver.bind().await.unwrap();
        let sender = HttpNode::builder(NodeId(1))
            .listen("127.0.0.1:0")
            .cluster(CLUSTER)
            .secret(SECRET)
            .peer(NodeId(2), receiver.local_addr().to_string())
            .node_config(&config)
            .bind()
            .await
            .unwrap();
        let service = receiver.service(handler.clone());
        let serving = receiver.serve_with(service);
        let sent = sender
            .transport()
            .install_snapshot(NodeId(2), snapshot_request(1, &data, 0, 3 << 20))
            .await;
        if raised {
            sent.expect("a 3 MiB chunk is admitted under 4 MiB chunks");
            assert_eq!(handler.snapshots.lock().unwrap().len(), 1);
        } else {
            let error = sent.expect_err("the default limit refuses a 3 MiB chunk");
            assert!(
                matches!(
                    request_error(&error),
                    RequestError::Remote {
                        code: ErrorCode::TooLarge,
                        ..
                    }
                ),
                "{error:?}"
            );
            assert_eq!(handler.calls(), 0);
        }
        serving.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_the_wrong_secret_is_refused() {
    let factory = BuiltNodes::new(3, |id| {
        if id == NodeId(3) {
            "not-the-secret"
        } else {
            SECRET
        }
    })
    .await;
    let node_1 = factory.addresses[&NodeId(1)].clone();
    let cluster = testing::Cluster::start_with(factory, 3, test_config()).await;
    let leader_id = cluster.wait_for_leader_among(&[NodeId(1), NodeId(2)]).await;
    let last = write(&cluster.node(leader_id), "k", 5, 10).await;
    let majority = [NodeId(1), NodeId(2)];
    for id in majority {
        while cluster.node(id).applied_index() < last {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // Node 3 heard nothing of it, and led nobody astray.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let outsider = cluster.node(NodeId(3));
    assert_eq!(outsider.applied_index(), LogIndex::ZERO);
    assert_eq!(outsider.leader(), None);
    assert!(cluster.state_machines[&NodeId(3)].dump().is_empty());

    // Its requests are refused with 403 before they reach the node.
    let wrong = HttpNode::builder(NodeId(3))
        .listen("127.0.0.1:0")
        .cluster(CLUSTER)
        .secret("not-the-secret")
        .peer(NodeId(1), node_1)
        .bind()
        .await
        .unwrap();
    let refused = wrong
        .transport()
        .request_vote(NodeId(1), vote_request(3, true))
        .await
        .expect_err("refused");
    assert!(
        matches!(
            request_error(&refused),
            RequestError::Remote {
                code: ErrorCode::Forbidden,
                ..
            }
        ),
        "{refused:?}"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_single_node_on_a_free_port_serves_then_stops_in_order() {
    let http = HttpNode::builder(NodeId(1))
        .listen("127.0.0.1:0")
        .cluster(CLUSTER)
        .bind()
        .await
        .unwrap();
    let addr = http.local_addr();
    assert_ne!(addr.port(), 0);
    let members: Vec<_> = http.members().into_iter().collect();
    assert_eq!(members, [(NodeId(1), addr.to_string())]);
    assert!(http.peer_addresses().is_empty());
    let log = MemLogStore::new();
    let node = Node::start(
        http.id(),
        http.members(),
        test_config(),
        log.clone().into_arc(),
        MemKv::new().into_arc(),
        http.transport(),
    )
    .await
    .unwrap();
    let serving = http.serve(node.clone());
    assert_eq!(serving.local_addr(), addr);
    assert_eq!(serving.id(), NodeId(1));
    node.wait_for_leader(Duration::from_secs(5)).await.unwrap();
    node.append(vec![MemKv::put("k", "v")]).await.unwrap();
    // The routes are served here, with the cluster id checked (no secret configured).
    let mut request = post("/raft/v1/vote", Bytes::from_static(b"junk"));
    request.headers_mut().remove(raft_http::SECRET_HEADER);
    assert_eq!(http1(addr, request).await.status, StatusCode::BAD_REQUEST);

    // In order: the server, then the node (then, with a file store, the store).
    serving.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    node.shutdown().await;
    assert!(log.durable_index() >= LogIndex(2));
}

/// Waits until only the test holds `handler`: no server task keeps its service.
async fn released(handler: &Arc<FakeHandler>, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while Arc::strong_count(handler) > 1 {
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

/// A fake handler served by a builder with a 300 ms grace period, and a client connected to it
/// with a request in flight that the handler answers after `delay`.
async fn served_with_open_connection(
    delay: Duration,
) -> (Arc<FakeHandler>, Serving, tokio::task::JoinHandle<()>) {
    let handler = FakeHandler::with(Behaviour {
        delay: Some(delay),
        ..Behaviour::default()
    });
    let mut server = ServerConfig::default();
    server.graceful_shutdown_timeout = Duration::from_millis(300);
    let http = HttpNode::builder(NodeId(2))
        .listen("127.0.0.1:0")
        .cluster(CLUSTER)
        .secret(SECRET)
        .server_config(server)
        .bind()
        .await
        .unwrap();
    let client = HttpNode::builder(NodeId(1))
        .listen("127.0.0.1:0")
        .cluster(CLUSTER)
        .secret(SECRET)
        .peer(NodeId(2), http.local_addr().to_string())
        .configure_client(|client| client.request_timeout = Duration::from_secs(30))
        .bind()
        .await
        .unwrap();
    let service = http.service(handler.clone());
    let serving = http.serve_with(service);
    let transport = client.transport();
    let in_flight = tokio::spawn(async move {
        let _ = transport
            .request_vote(NodeId(2), vote_request(1, true))
            .await;
    });
    while handler.calls() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (handler, serving, in_flight)
}

#[tokio::test]
async fn shutdown_drops_requests_still_open_after_the_grace_period() {
    let (handler, serving, in_flight) = served_with_open_connection(Duration::from_secs(60)).await;
    let started = tokio::time::Instant::now();
    serving.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by the grace period"
    );
    assert!(
        released(&handler, Duration::from_secs(2)).await,
        "no connection task outlives the server"
    );
    in_flight.await.unwrap();
}

#[tokio::test]
async fn a_dropped_handle_stops_the_server_in_the_background() {
    let (handler, serving, in_flight) =
        served_with_open_connection(Duration::from_millis(100)).await;
    let addr = serving.local_addr();
    drop(serving);
    // The request in flight still gets its answer; then everything is released.
    in_flight.await.unwrap();
    assert_eq!(handler.votes.lock().unwrap().len(), 1, "answered");
    assert!(released(&handler, Duration::from_secs(2)).await);
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
