//! Streaming replication over raft-http (`/raft/v1/stream`): the stream's two bodies carry
//! the leader's batches and the follower's answers on one HTTP/2 stream; a connection cut at
//! any byte ends the stream with whole batches only; the client certificate binds the
//! opening's follower; and raft-core clusters that stream over real loopback HTTP lose no
//! write through leader crashes, restarts, leadership transfers, a follower behind a snapshot
//! and connections cut at random byte offsets.

// Helpers of this test file: a broken one should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use common::{HttpNodes, client_config, serve_on, service_config};
use raft_core::message::{
    AppendEntries, AppendEntriesResponse, AppendOutcome, InstallSnapshot, InstallSnapshotResponse,
    OpenStream, RequestVote, RequestVoteResponse, TimeoutNow,
};
use raft_core::runtime::NodeConfig;
use raft_core::testing::{Cluster, MemKv, Outcome, test_config};
use raft_core::{
    Entry, Error, LogId, LogIndex, NodeId, Payload, Replication, ServiceHandler, StreamSink, Term,
    Transport,
};
use raft_http::{ErrorCode, HttpTransport, RaftService, RequestError, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(5);

fn streaming() -> NodeConfig {
    let mut config = test_config();
    config.raft.replication = Replication::Streaming;
    config
}

/// The Prometheus handle of this test binary (the first test to ask installs it).
fn metrics() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        ::metrics::set_global_recorder(recorder).expect("first recorder in this binary");
        handle
    })
}

/// A fake leader that serves one entry stream: the batches it is given go to the follower,
/// and the follower's openings and answers are kept.
struct FakeLeader {
    batches: Mutex<Option<mpsc::UnboundedReceiver<AppendEntries>>>,
    opens: Mutex<Vec<OpenStream>>,
    answers: Mutex<Option<mpsc::UnboundedReceiver<AppendEntriesResponse>>>,
}

impl FakeLeader {
    fn new(batches: mpsc::UnboundedReceiver<AppendEntries>) -> Arc<FakeLeader> {
        Arc::new(FakeLeader {
            batches: Mutex::new(Some(batches)),
            opens: Mutex::new(Vec::new()),
            answers: Mutex::new(None),
        })
    }
}

#[async_trait]
impl ServiceHandler for FakeLeader {
    async fn append_entries(&self, _: AppendEntries) -> Result<AppendEntriesResponse, Error> {
        Err(Error::Shutdown)
    }
    async fn request_vote(&self, _: RequestVote) -> Result<RequestVoteResponse, Error> {
        Err(Error::Shutdown)
    }
    async fn timeout_now(&self, _: TimeoutNow) -> Result<(), Error> {
        Err(Error::Shutdown)
    }
    async fn install_snapshot(&self, _: InstallSnapshot) -> Result<InstallSnapshotResponse, Error> {
        Err(Error::Shutdown)
    }
    async fn open_stream(
        &self,
        open: OpenStream,
        answers: mpsc::UnboundedReceiver<AppendEntriesResponse>,
    ) -> Result<StreamSink, Error> {
        self.opens.lock().unwrap().push(open);
        *self.answers.lock().unwrap() = Some(answers);
        let entries = self.batches.lock().unwrap().take();
        entries
            .map(|entries| StreamSink { entries })
            .ok_or_else(|| Error::Config("one stream per fake leader".to_owned()))
    }
}

/// A fake leader (node 1) served on a fresh port, its batch sender, and a plain transport
/// to it.
async fn served_fake_leader() -> (
    mpsc::UnboundedSender<AppendEntries>,
    Arc<FakeLeader>,
    common::TestServer,
    HttpTransport,
) {
    let (batches, receiver) = mpsc::unbounded_channel();
    let leader = FakeLeader::new(receiver);
    let server = serve_on(
        "127.0.0.1:0",
        RaftService::new(leader.clone(), service_config()),
        ServerConfig::default(),
    )
    .await;
    let transport =
        HttpTransport::new([(NodeId(1), server.addr.to_string())], client_config()).unwrap();
    (batches, leader, server, transport)
}

fn opening(follower: u64) -> OpenStream {
    OpenStream {
        term: Term(3),
        follower_id: NodeId(follower),
        seq: 1,
        last_log_id: LogId::new(3, 0),
    }
}

/// Batch `n` of leader 1: `n + 1` entries of a few hundred bytes each, following batch `n - 1`.
fn batch(n: u64) -> AppendEntries {
    let first = n * (n + 1) / 2;
    let entries = (0..=n)
        .map(|i| Entry {
            log_id: LogId::new(3, first + i + 1),
            payload: Payload::Command(Bytes::from(vec![(n + i) as u8; 300 + 37 * i as usize])),
        })
        .collect();
    AppendEntries {
        term: Term(3),
        leader_id: NodeId(1),
        seq: n,
        prev_log_id: LogId::new(3, first),
        entries,
        leader_commit: LogIndex(first),
    }
}

/// A proxy to `target` that passes the client's bytes through and cuts each connection after
/// the server sent it the next of `cuts` bytes (`usize::MAX`: never).
async fn cutting_proxy(
    target: SocketAddr,
    mut cuts: impl FnMut() -> usize + Send + 'static,
) -> (SocketAddr, JoinHandle<()>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = accepted.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            counted.fetch_add(1, Ordering::Relaxed);
            let cut = cuts();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(target).await else {
                    return;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let up = tokio::io::copy(&mut client_read, &mut server_write);
                let down = async {
                    let mut left = cut;
                    let mut buffer = vec![0; 16 << 10];
                    while left > 0 {
                        let want = left.min(buffer.len());
                        let Ok(read) = server_read.read(&mut buffer[..want]).await else {
                            return;
                        };
                        if read == 0 || client_write.write_all(&buffer[..read]).await.is_err() {
                            return;
                        }
                        left -= read;
                    }
                };
                tokio::select! {
                    _ = up => {}
                    () = down => {}
                }
                // Dropping both halves of both sockets cuts the connection.
            });
        }
    });
    (address, task, accepted)
}

/// A small deterministic generator (xorshift), so a failure names its seed.
fn generator(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed.max(1);
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_at_any_byte_delivers_whole_batches_in_order_then_ends() {
    const BATCHES: u64 = 12;
    let sent: Vec<AppendEntries> = (0..BATCHES).map(batch).collect();
    let stream_bytes: usize = sent
        .iter()
        .map(|b| {
            raft_http::codec::encode_append_entries_frame(b)
                .unwrap()
                .len()
        })
        .sum();
    let mut random = generator(0x5EED_0021);
    let mut offsets: Vec<usize> = (0..24)
        .map(|_| (random() % stream_bytes as u64) as usize)
        .collect();
    // The headers alone, one byte, and past the whole stream.
    offsets.extend([1, 200, stream_bytes * 2]);
    let mut counts = Vec::new();
    for cut in offsets {
        let (batches, receiver) = mpsc::unbounded_channel();
        for b in &sent {
            batches.send(b.clone()).unwrap();
        }
        let leader = FakeLeader::new(receiver);
        let server = serve_on(
            "127.0.0.1:0",
            RaftService::new(leader.clone(), service_config()),
            ServerConfig::default(),
        )
        .await;
        let (proxy, proxy_task, _) = cutting_proxy(server.addr, move || cut).await;
        let transport =
            HttpTransport::new([(NodeId(1), proxy.to_string())], client_config()).unwrap();
        let received = match transport.open_stream(NodeId(1), opening(2)).await {
            Ok(mut stream) => {
                let mut received = Vec::new();
                loop {
                    match tokio::time::timeout(WAIT, stream.entries.recv()).await {
                        Ok(Some(batch)) => received.push(batch),
                        Ok(None) => break,
                        // Everything arrived and the stream stays open: the leader has not
                        // ended it.
                        Err(_) => {
                            assert!(
                                cut > stream_bytes,
                                "cut at {cut}: the stream neither ended nor delivered"
                            );
                            break;
                        }
                    }
                }
                received
            }
            // Cut before the answer's head arrived.
            Err(_) => Vec::new(),
        };
        assert_eq!(
            received[..],
            sent[..received.len()],
            "cut at byte {cut}: not a prefix of the batches sent"
        );
        if cut > stream_bytes {
            assert_eq!(received.len(), sent.len(), "an uncut stream delivers all");
        }
        counts.push(received.len());
        drop(batches);
        proxy_task.abort();
        server.stop().await;
    }
    assert!(
        counts.iter().any(|&n| n > 0 && n < BATCHES as usize),
        "some cut fell inside the batches: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_flow_back_on_the_stream_and_either_end_closing_it_is_seen() {
    let (batches, leader, server, transport) = served_fake_leader().await;
    let mut stream = transport.open_stream(NodeId(1), opening(2)).await.unwrap();
    assert_eq!(leader.opens.lock().unwrap()[..], [opening(2)]);
    let mut answers = leader.answers.lock().unwrap().take().unwrap();

    for n in 0..5 {
        batches.send(batch(n)).unwrap();
        let got = tokio::time::timeout(WAIT, stream.entries.recv())
            .await
            .unwrap();
        assert_eq!(got, Some(batch(n)));
        let answer = AppendEntriesResponse {
            term: Term(3),
            seq: n,
            outcome: AppendOutcome::Success {
                match_index: LogIndex((n + 1) * (n + 2) / 2),
            },
        };
        stream.acks.send(answer.clone()).unwrap();
        let heard = tokio::time::timeout(WAIT, answers.recv()).await.unwrap();
        assert_eq!(heard, Some(answer));
    }

    // The leader ends the stream: the follower sees its batches end.
    drop(batches);
    let end = tokio::time::timeout(WAIT, stream.entries.recv())
        .await
        .unwrap();
    assert_eq!(end, None);
    // The follower drops its end: the leader's answers end.
    drop(stream);
    let end = tokio::time::timeout(WAIT, answers.recv()).await.unwrap();
    assert_eq!(end, None);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_dropping_its_stream_ends_it_on_the_leader() {
    let (batches, leader, server, transport) = served_fake_leader().await;
    let stream = transport.open_stream(NodeId(1), opening(2)).await.unwrap();
    let mut answers = leader.answers.lock().unwrap().take().unwrap();
    drop(stream);
    let end = tokio::time::timeout(WAIT, answers.recv()).await.unwrap();
    assert_eq!(end, None, "the answers end with the follower's end");
    // The leader's sender learns it too: the body reading it was dropped.
    tokio::time::timeout(WAIT, batches.closed()).await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_shutting_down_ends_its_open_streams_at_once() {
    let (batches, _leader, server, transport) = served_fake_leader().await;
    let mut stream = transport.open_stream(NodeId(1), opening(2)).await.unwrap();
    let started = tokio::time::Instant::now();
    // The default graceful shutdown waits up to 5 s for open requests: a stream would hold it.
    server.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "shutdown waited {:?} for the stream",
        started.elapsed()
    );
    let end = tokio::time::timeout(WAIT, stream.entries.recv())
        .await
        .unwrap();
    assert_eq!(end, None);
    drop(batches);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opening_naming_another_node_than_the_client_certificate_is_refused() {
    let pki = common::tls::Pki::new(3);
    let (_batches, receiver) = mpsc::unbounded_channel();
    let leader = FakeLeader::new(receiver);
    let mut config = service_config();
    config.require_peer_certificate = true;
    let server = serve_on(
        "127.0.0.1:0",
        RaftService::new(leader.clone(), config),
        pki.server_config(1),
    )
    .await;
    let mut client = client_config();
    client.tls = Some(pki.client_tls(2));
    let transport = HttpTransport::new([(NodeId(1), server.addr.to_string())], client).unwrap();

    let refused = transport.open_stream(NodeId(1), opening(3)).await;
    let Err(Error::Transport { source, .. }) = refused else {
        panic!("node 2's certificate opened node 3's stream: {refused:?}");
    };
    assert!(
        matches!(
            source.downcast_ref::<RequestError>(),
            Some(RequestError::Remote {
                status: 403,
                code: ErrorCode::WrongNode,
                ..
            })
        ),
        "{source}"
    );
    assert!(
        leader.opens.lock().unwrap().is_empty(),
        "the node never saw it"
    );
    // Its own name opens it.
    transport.open_stream(NodeId(1), opening(2)).await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opening_without_credentials_or_over_the_frame_limit_is_refused() {
    let (_batches, receiver) = mpsc::unbounded_channel();
    let leader = FakeLeader::new(receiver);
    let server = serve_on(
        "127.0.0.1:0",
        RaftService::new(leader.clone(), service_config()),
        ServerConfig::default(),
    )
    .await;
    let mut wrong = client_config();
    wrong.auth = raft_http::ClusterAuth::new("another-cluster").unwrap();
    let transport = HttpTransport::new([(NodeId(1), server.addr.to_string())], wrong).unwrap();
    let refused = transport.open_stream(NodeId(1), opening(2)).await;
    assert!(
        matches!(refused, Err(Error::Transport { .. })),
        "{refused:?}"
    );

    // A raw HTTP/1.1 request whose first frame announces more than the control frame limit.
    let mut body = ((raft_http::MAX_STREAM_CONTROL_FRAME_BYTES + 1) as u32)
        .to_be_bytes()
        .to_vec();
    body.extend_from_slice(&[0; 16]);
    let answer = common::http1(
        server.addr,
        common::post(raft_http::routes::STREAM_PATH, body),
    )
    .await;
    common::assert_refused(&answer, hyper::StatusCode::PAYLOAD_TOO_LARGE, "too-large");
    // And one whose frame is not an opening.
    let frame = raft_http::codec::encode_frame(&"not an opening").unwrap();
    let answer = common::http1(
        server.addr,
        common::post(raft_http::routes::STREAM_PATH, frame),
    )
    .await;
    common::assert_refused(&answer, hyper::StatusCode::BAD_REQUEST, "malformed");
    assert!(leader.opens.lock().unwrap().is_empty());
    server.stop().await;
}

/// The metric lines of `name` for `node` (summed over peers).
fn metric_sum(text: &str, name: &str, filter: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(name) && line.contains(filter))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_cluster_over_http_loses_no_write_through_a_leader_crash_and_restart() {
    let handle = metrics();
    let mut cluster = Cluster::start_with(HttpNodes::bind(3).await, 3, streaming()).await;
    let first = cluster.wait_for_leader().await;
    let writers = cluster.spawn_writers(8, 40, Duration::from_millis(2));
    tokio::time::sleep(Duration::from_millis(150)).await;
    cluster.stop_node(first).await;
    let second = cluster.wait_for_leader().await;
    assert_ne!(second, first);
    tokio::time::sleep(Duration::from_millis(150)).await;
    cluster.start_node(first).await;
    let outcomes = writers.join().await;
    let acked = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Acked(_)))
        .count();
    assert!(acked >= 280, "only {acked} of 320 writes were acknowledged");
    cluster.settle().await;
    cluster.assert_exactly_once(&outcomes);
    cluster.assert_replicas_identical();

    let text = handle.render();
    let batches = metric_sum(&text, raft_core::metrics::STREAM_BATCHES, "");
    let bytes = metric_sum(
        &text,
        "raft_http_server_sent_bytes_total",
        "route=\"stream\"",
    );
    assert!(
        batches > 0.0 && bytes > 0.0,
        "batches went on streams:\n{text}"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_through_connections_cut_at_random_bytes_lose_no_write() {
    let mut nodes = HttpNodes::bind(3).await;
    let mut proxies = Vec::new();
    for id in 1..=3 {
        let id = NodeId(id);
        let target = nodes.listen_address(id).parse().unwrap();
        // Each connection to the node is cut after 64 bytes to 2 KiB sent by it.
        let mut random = generator(0xC07 + id.0);
        let (proxy, task, accepted) =
            cutting_proxy(target, move || 64 + (random() % 2048) as usize).await;
        nodes.dial.insert(id, proxy.to_string());
        proxies.push((task, accepted));
    }
    let cluster = Cluster::start_with(nodes, 3, streaming()).await;
    cluster.wait_for_leader().await;
    let writers = cluster.spawn_writers(8, 100, Duration::from_millis(2));
    let outcomes = writers.join().await;
    let acked = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Acked(_)))
        .count();
    assert!(acked >= 400, "only {acked} of 800 writes were acknowledged");
    cluster.settle().await;
    cluster.assert_exactly_once(&outcomes);
    cluster.assert_replicas_agree();
    cluster.shutdown().await;
    let connections: usize = proxies.iter().map(|(_, n)| n.load(Ordering::Relaxed)).sum();
    // 6 connections (each node to each other) if nothing were cut.
    assert!(
        connections > 30,
        "only {connections} connections: the cuts did not happen"
    );
    for (task, _) in proxies {
        task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_moves_while_streams_are_open_and_every_write_applies_once() {
    let cluster = Cluster::start_with(HttpNodes::bind(3).await, 3, streaming()).await;
    let first = cluster.wait_for_leader().await;
    let writers = cluster.spawn_writers(4, 60, Duration::from_millis(3));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let target = cluster.others(first)[0];
    cluster.node(first).transfer_leadership(target).unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cluster.node(target).is_leader() {
        assert!(tokio::time::Instant::now() < deadline, "{target} never led");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let outcomes = writers.join().await;
    cluster.settle().await;
    cluster.assert_exactly_once(&outcomes);
    cluster.assert_replicas_identical();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_restarted_behind_a_snapshot_catches_up_over_its_http_stream() {
    let mut config = streaming();
    config.raft.snapshot_entries = 50;
    config.raft.snapshot_keep_entries = 10;
    let mut cluster = Cluster::start_with(HttpNodes::bind(3).await, 3, config).await;
    let leader = cluster.wait_for_leader().await;
    let follower = cluster.others(leader)[0];
    cluster.stop_node(follower).await;
    let node = cluster.node(leader);
    for i in 0..300 {
        node.append(vec![MemKv::put(format!("k{i}"), "v")])
            .await
            .unwrap();
    }
    cluster.start_node(follower).await;
    cluster.settle().await;
    let applied = cluster.node(leader).applied_index();
    assert!(applied >= LogIndex(300));
    assert_eq!(cluster.node(follower).applied_index(), applied);
    cluster.assert_states_equal();
    // And it follows new writes over its stream.
    let last = node
        .append(vec![MemKv::put("after", "v")])
        .await
        .unwrap()
        .first
        .index;
    cluster.wait_applied(last).await;
    cluster.shutdown().await;
}
