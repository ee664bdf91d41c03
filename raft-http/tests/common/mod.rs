//! Shared test support: a fake `ServiceHandler`, servers on loopback ports, raw HTTP/1.1
//! requests for the bad-input tests, and [`HttpNodes`], which runs raft-core's cluster harness
//! over real HTTP (plaintext, or mutual TLS with the certificates of [`tls`]).
// Test support: a broken helper should fail the test loudly, hence unwrap and expect.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Request, StatusCode};
use hyper_util::rt::TokioIo;
use raft_core::message::{
    AppendEntries, AppendEntriesResponse, AppendOutcome, InstallSnapshot, InstallSnapshotResponse,
    RequestVote, RequestVoteResponse, SnapshotOutcome, TimeoutNow,
};
use raft_core::runtime::{Node, NodeConfig};
pub use raft_core::testing::snapshots::checksum as crc32c;
use raft_core::testing::{self, MemKv, MemLogStore, MemNetwork, MemNodes, NodeFactory, Parts};
use raft_core::{
    BoxError, Entry, Error, LogId, LogIndex, Membership, NodeId, Payload, ServiceHandler, Term,
    Transport,
};
use raft_http::{
    ClientConfig, ClusterAuth, HttpTransport, RaftService, Server, ServerConfig, ServiceConfig,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Barrier, Semaphore, oneshot};
use tokio::task::JoinHandle;

pub mod tls;

pub const CLUSTER: &str = "test-cluster";
pub const SECRET: &str = "s3cret-value";

pub fn auth() -> ClusterAuth {
    ClusterAuth::new(CLUSTER)
        .unwrap()
        .with_secret(SECRET)
        .unwrap()
}

/// A client configuration with short timeouts for tests.
pub fn client_config() -> ClientConfig {
    let mut config = ClientConfig::new(auth());
    config.request_timeout = Duration::from_secs(2);
    config.connect_timeout = Duration::from_millis(500);
    config.backoff_initial = Duration::from_millis(10);
    config.backoff_max = Duration::from_millis(50);
    config
}

/// How the fake handler behaves.
#[derive(Default)]
pub struct Behaviour {
    /// Every AppendEntries waits here first (to show requests overlap).
    pub append_barrier: Option<Arc<Barrier>>,
    /// Every call sleeps this long first.
    pub delay: Option<Duration>,
    /// Every InstallSnapshot sleeps this long (on top of `delay`).
    pub snapshot_delay: Option<Duration>,
    /// Every InstallSnapshot takes a permit from here before it answers.
    pub snapshot_gate: Option<Arc<Semaphore>>,
    /// Every call fails with this error.
    pub fail_with: Option<fn() -> Error>,
}

/// A `ServiceHandler` that answers from the request alone and records what it got.
#[derive(Default)]
pub struct FakeHandler {
    pub calls: AtomicUsize,
    pub appends: Mutex<Vec<AppendEntries>>,
    pub votes: Mutex<Vec<RequestVote>>,
    pub timeouts: Mutex<Vec<TimeoutNow>>,
    pub snapshots: Mutex<Vec<InstallSnapshot>>,
    pub behaviour: Mutex<Behaviour>,
}

impl FakeHandler {
    pub fn new() -> Arc<FakeHandler> {
        Arc::new(FakeHandler::default())
    }

    pub fn with(behaviour: Behaviour) -> Arc<FakeHandler> {
        let handler = FakeHandler::default();
        *handler.behaviour.lock().unwrap() = behaviour;
        Arc::new(handler)
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    async fn before(&self) -> Result<(), Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let (delay, fail) = {
            let behaviour = self.behaviour.lock().unwrap();
            (behaviour.delay, behaviour.fail_with)
        };
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        match fail {
            Some(error) => Err(error()),
            None => Ok(()),
        }
    }
}

/// The answer the fake handler gives to an AppendEntries.
pub fn append_answer(request: &AppendEntries) -> AppendEntriesResponse {
    AppendEntriesResponse {
        term: request.term,
        seq: request.seq,
        outcome: AppendOutcome::Success {
            match_index: request.prev_log_id.index.plus(request.entries.len() as u64),
        },
    }
}

/// The answer the fake handler gives to a RequestVote: granted to odd candidates.
pub fn vote_answer(request: &RequestVote) -> RequestVoteResponse {
    RequestVoteResponse {
        term: request.term,
        granted: request.candidate_id.0 % 2 == 1,
        pre_vote: request.pre_vote,
    }
}

/// The answer the fake handler gives to a snapshot chunk: the next offset, or `Installed` for
/// the last chunk.
pub fn snapshot_answer(request: &InstallSnapshot) -> InstallSnapshotResponse {
    let outcome = if request.done {
        SnapshotOutcome::Installed
    } else {
        SnapshotOutcome::Continue {
            offset: request.offset + request.data.len() as u64,
        }
    };
    InstallSnapshotResponse {
        term: request.term,
        seq: request.seq,
        outcome,
    }
}

#[async_trait]
impl ServiceHandler for FakeHandler {
    async fn append_entries(&self, request: AppendEntries) -> Result<AppendEntriesResponse, Error> {
        let barrier = self.behaviour.lock().unwrap().append_barrier.clone();
        if let Some(barrier) = barrier {
            barrier.wait().await;
        }
        self.before().await?;
        let answer = append_answer(&request);
        self.appends.lock().unwrap().push(request);
        Ok(answer)
    }

    async fn request_vote(&self, request: RequestVote) -> Result<RequestVoteResponse, Error> {
        self.before().await?;
        let answer = vote_answer(&request);
        self.votes.lock().unwrap().push(request);
        Ok(answer)
    }

    async fn timeout_now(&self, request: TimeoutNow) -> Result<(), Error> {
        self.before().await?;
        self.timeouts.lock().unwrap().push(request);
        Ok(())
    }

    async fn install_snapshot(
        &self,
        request: InstallSnapshot,
    ) -> Result<InstallSnapshotResponse, Error> {
        self.before().await?;
        let (delay, gate) = {
            let behaviour = self.behaviour.lock().unwrap();
            (behaviour.snapshot_delay, behaviour.snapshot_gate.clone())
        };
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        if let Some(gate) = gate {
            gate.acquire().await.unwrap().forget();
        }
        let answer = snapshot_answer(&request);
        self.snapshots.lock().unwrap().push(request);
        Ok(answer)
    }
}

/// An AppendEntries with `count` commands after index 10.
pub fn append_request(seq: u64, count: u64) -> AppendEntries {
    AppendEntries {
        term: Term(3),
        leader_id: NodeId(1),
        seq,
        prev_log_id: LogId::new(3, 10),
        entries: (0..count)
            .map(|i| Entry {
                log_id: LogId::new(3, 11 + i),
                payload: Payload::Command(Bytes::from(format!("command {seq}/{i}"))),
            })
            .collect(),
        leader_commit: LogIndex(10),
    }
}

pub fn vote_request(candidate: u64, pre_vote: bool) -> RequestVote {
    RequestVote {
        term: Term(4),
        candidate_id: NodeId(candidate),
        last_log_id: LogId::new(3, 12),
        pre_vote,
        leadership_transfer: false,
    }
}

/// Snapshot data of `size` bytes, different at every offset.
pub fn snapshot_data(size: usize) -> Bytes {
    (0..size)
        .map(|i| (i as u64).wrapping_mul(2_654_435_761).rotate_right(13) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// The chunk of `data` (the whole snapshot) at `offset`, at most `chunk` bytes.
pub fn snapshot_request(seq: u64, data: &Bytes, offset: usize, chunk: usize) -> InstallSnapshot {
    let end = (offset + chunk).min(data.len());
    let part = data.slice(offset..end);
    InstallSnapshot {
        term: Term(7),
        leader_id: NodeId(1),
        seq,
        meta: testing::snapshots::meta(
            LogId::new(6, 5000),
            Membership::new([NodeId(1), NodeId(2), NodeId(3)]),
            data,
        ),
        offset: offset as u64,
        chunk_crc: crc32c(&part),
        data: part,
        done: end == data.len(),
    }
}

/// A running server and the way to stop it.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl TestServer {
    /// Stops accepting, waits for the graceful shutdown to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("the server stops")
            .expect("the server task does not panic");
    }
}

pub fn service_config() -> ServiceConfig {
    ServiceConfig::new(auth())
}

/// Serves `service` on a fresh loopback port (or `addr`).
pub async fn serve_on(addr: &str, service: RaftService, config: ServerConfig) -> TestServer {
    let server = Server::bind(addr, config).await.expect("binds");
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(service, async {
        let _ = stopped.await;
    }));
    TestServer {
        addr,
        stop: Some(stop),
        task,
    }
}

/// Serves a fake handler with the default test configuration on a fresh port.
pub async fn serve(handler: Arc<FakeHandler>) -> TestServer {
    serve_on(
        "127.0.0.1:0",
        RaftService::new(handler, service_config()),
        ServerConfig::default(),
    )
    .await
}

/// What a raw request got back.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

/// A refusal with this status, this error code and a message.
pub fn assert_refused(answer: &Answer, status: StatusCode, code: &str) {
    assert_eq!(answer.status, status, "{answer:?}");
    assert_eq!(
        answer
            .headers
            .get(raft_http::ERROR_CODE_HEADER)
            .map(|v| v.to_str().unwrap()),
        Some(code),
        "{answer:?}"
    );
    assert!(!answer.body.is_empty(), "a failure says why");
}

/// One HTTP/1.1 request on a new connection.
pub async fn http1(addr: SocketAddr, request: Request<Full<Bytes>>) -> Answer {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// A POST with MessagePack content type and the right credentials, unless changed by `edit`.
pub fn post(path: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::builder()
        .method("POST")
        .uri(path)
        .header("host", "localhost")
        .header("content-type", "application/msgpack")
        .header(raft_http::CLUSTER_ID_HEADER, CLUSTER)
        .header(raft_http::SECRET_HEADER, SECRET)
        .body(Full::new(body.into()))
        .unwrap()
}

/// A listener that accepts connections and never answers on them.
pub async fn black_hole() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (addr, task)
}

/// A loopback address where nothing listens (bound, then closed).
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// raft-core nodes talking HTTP on loopback: each node sends with an [`HttpTransport`] and a
/// [`Server`] serves it at its address; the log is in memory, the state machine a [`MemKv`].
pub struct HttpNodes {
    addresses: BTreeMap<NodeId, String>,
    /// The ids every transport starts knowing (all, unless `bind_knowing` said otherwise).
    known: u64,
    servers: Mutex<BTreeMap<NodeId, TestServer>>,
    /// With it, mutual TLS with each node's certificate from it.
    pub tls: Option<Arc<tls::Pki>>,
    /// Where peers dial a node, when not at its address (a proxy in front of it).
    pub dial: BTreeMap<NodeId, String>,
}

/// A cluster of raft-core nodes over real HTTP.
pub type HttpCluster = testing::Cluster<HttpNodes>;

impl HttpNodes {
    /// Learns `n` free ports first: every node needs every address at start.
    pub async fn bind(n: u64) -> HttpNodes {
        let mut addresses = BTreeMap::new();
        for id in 1..=n {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            addresses.insert(NodeId(id), listener.local_addr().unwrap().to_string());
        }
        HttpNodes {
            addresses,
            known: n,
            servers: Mutex::new(BTreeMap::new()),
            tls: None,
            dial: BTreeMap::new(),
        }
    }

    /// Like [`HttpNodes::bind`], with mutual TLS: each node presents its certificate of `pki`.
    pub async fn bind_tls(n: u64, pki: Arc<tls::Pki>) -> HttpNodes {
        HttpNodes {
            tls: Some(pki),
            ..HttpNodes::bind(n).await
        }
    }

    /// Like [`HttpNodes::bind`], but every transport starts knowing only nodes `1..=known`:
    /// the others must be learned from membership changes.
    pub async fn bind_knowing(n: u64, known: u64) -> HttpNodes {
        HttpNodes {
            known,
            ..HttpNodes::bind(n).await
        }
    }

    /// A node's own address (where its server listens).
    pub fn listen_address(&self, id: NodeId) -> String {
        self.addresses[&id].clone()
    }

    /// Starts nodes `1..=n` with `config`, each served on its own loopback port.
    pub async fn start(n: u64, config: NodeConfig) -> HttpCluster {
        testing::Cluster::start_with(HttpNodes::bind(n).await, n, config).await
    }
}

#[async_trait]
impl NodeFactory for HttpNodes {
    type Config = NodeConfig;
    type Store = MemLogStore;
    type StateMachine = MemKv;
    type Handle = ();

    fn address(&self, id: NodeId) -> String {
        self.addresses[&id].clone()
    }

    async fn store(&self, id: NodeId, kept: Option<MemLogStore>) -> Result<MemLogStore, BoxError> {
        MemNodes.store(id, kept).await
    }

    fn state_machine(&self, _: NodeId) -> MemKv {
        MemKv::new()
    }

    fn transport(&self, id: NodeId, _: &MemNetwork) -> Arc<dyn Transport> {
        let mut client = ClientConfig::new(auth());
        client.request_timeout = Duration::from_millis(500);
        client.connect_timeout = Duration::from_millis(200);
        client.backoff_initial = Duration::from_millis(10);
        client.backoff_max = Duration::from_millis(100);
        client.node = Some(id);
        if let Some(pki) = &self.tls {
            client.tls = Some(pki.client_tls(id.0));
        }
        let known = self
            .addresses
            .iter()
            .filter(|(peer, _)| peer.0 <= self.known || **peer == id)
            .map(|(peer, address)| (*peer, self.dial.get(peer).unwrap_or(address).clone()));
        Arc::new(HttpTransport::new(known, client).unwrap())
    }

    async fn start(&self, parts: Parts<NodeConfig>) -> Result<(Node, ()), BoxError> {
        let id = parts.id;
        let node = parts.start_node().await?;
        let mut service = ServiceConfig::new(auth());
        service.node = Some(id);
        let mut server_config = ServerConfig::default();
        if let Some(pki) = &self.tls {
            service.require_peer_certificate = true;
            server_config = pki.server_config(id.0);
        }
        let service = RaftService::new(Arc::new(node.clone()), service);
        let server = serve_on(&self.addresses[&id], service, server_config).await;
        self.servers.lock().unwrap().insert(id, server);
        Ok((node, ()))
    }

    async fn stop(&self, id: NodeId, node: Node, (): (), _: &MemLogStore) {
        node.shutdown().await;
        let server = self.servers.lock().unwrap().remove(&id);
        if let Some(server) = server {
            server.stop().await;
        }
    }
}
