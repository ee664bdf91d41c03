//! raft-kv over TLS, in-process nodes with certificates made at test time: an mTLS cluster
//! serves HTTPS clients (HTTP/1.1 and h2) with an API token; what TLS and the token refuse
//! (plaintext clients, peers with a certificate from another CA or expired, a certificate of
//! node 2 claiming node 3, requests without the token) changes nothing; certificates are
//! reloaded; a node joins over TLS a cluster whose clients get a certificate from another CA.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::free_addresses;
use common::tls::{CLUSTER, HttpsClient, NodeCertificates, Pki, TOKEN, TestCa, Validity, token};
use hyper::{Method, StatusCode};
use raft_core::message::AppendEntries;
use raft_core::{Error as RaftError, LogId, LogIndex, NodeId, Term, Transport};
use raft_http::tls::{ClientTls, ClientTlsFiles};
use raft_http::{ClientConfig, ClusterAuth, ErrorCode, HttpTransport, RequestError};
use raft_kv::server::{KvNode, NodeOptions};
use raft_kv::tls::TlsOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Options of node `id` of a TLS cluster at `addresses` (node `i` at `addresses[i - 1]`).
fn options(dir: &std::path::Path, id: u64, addresses: &[String], tls: TlsOptions) -> NodeOptions {
    let index = usize::try_from(id).unwrap() - 1;
    let mut options = NodeOptions::new(
        NodeId(id),
        addresses[index].clone(),
        dir.join(format!("node-{id}")),
    );
    options.cluster_id = CLUSTER.to_owned();
    options.tls = Some(tls);
    options.api_token = Some(TOKEN.to_owned());
    options.snapshot_threshold = 16 << 10;
    options.raft.raft.election_timeout_ms = 400;
    options.raft.raft.heartbeat_interval_ms = 50;
    options.peers = (1..=addresses.len() as u64)
        .filter(|&peer| peer != id)
        .map(|peer| (NodeId(peer), addresses[peer as usize - 1].clone()))
        .collect();
    options
}

/// Starts nodes `1..=tls.len()`, node `i` with `tls[i - 1]`.
async fn start(dir: &std::path::Path, tls: Vec<TlsOptions>) -> (Vec<KvNode>, Vec<String>) {
    let addresses = free_addresses(tls.len());
    let mut nodes = Vec::new();
    for (index, tls) in tls.into_iter().enumerate() {
        let id = index as u64 + 1;
        nodes.push(
            KvNode::start(options(dir, id, &addresses, tls))
                .await
                .unwrap(),
        );
    }
    (nodes, addresses)
}

async fn stop(nodes: Vec<KvNode>) {
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mtls_cluster_serves_https_over_http1_and_h2_and_writes_need_the_token() {
    let (dir, pki) = (tempfile::tempdir().unwrap(), Pki::new(3));
    let (nodes, addresses) = start(dir.path(), (1..=3).map(|id| pki.options(id)).collect()).await;
    assert!(nodes.iter().all(|node| node.url().starts_with("https://")));
    let client = pki.client();
    let leader = client.wait_for_leader(&addresses).await;
    let follower = addresses.iter().find(|a| **a != leader).unwrap().clone();

    // A write at a follower is redirected to the leader's https:// URL.
    let put = |address: String, headers: Vec<(&'static str, String)>, value: &'static str| {
        let client = client.clone();
        async move {
            let body = Bytes::from_static(value.as_bytes());
            client
                .request(&address, Method::PUT, "/kv/greeting", &headers, body)
                .await
                .unwrap()
        }
    };
    let redirect = put(follower.clone(), token(), "hello").await;
    assert_eq!(redirect.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        redirect.location.as_deref(),
        Some(format!("https://{leader}/kv/greeting").as_str())
    );
    let written = put(leader.clone(), token(), "hello").await;
    assert_eq!(written.status, StatusCode::NO_CONTENT, "{}", written.text());

    // Reads are open, over HTTP/1.1 or h2, and a follower serves them itself.
    let read = client
        .request_h2(&follower, Method::GET, "/kv/greeting", &[], Bytes::new())
        .await
        .unwrap();
    assert_eq!(
        (read.status, read.text().as_str()),
        (StatusCode::OK, "hello")
    );
    let status = client.status(&follower).await.unwrap();
    assert_eq!(status["leader_url"], format!("https://{leader}"));

    // Writes and admin routes without the token (or with another) get 401 and change nothing.
    let wrong = vec![("authorization", "Bearer not-the-token".to_owned())];
    for (method, path, headers) in [
        (Method::PUT, "/kv/greeting", vec![]),
        (Method::PUT, "/kv/greeting", wrong.clone()),
        (Method::DELETE, "/kv/greeting", vec![]),
        (Method::POST, "/kv/greeting/incr", vec![]),
        (Method::GET, "/admin/members", vec![]),
        (Method::DELETE, "/admin/members/3", wrong),
    ] {
        let answer = client
            .request(&leader, method.clone(), path, &headers, Bytes::from("bye"))
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert!(
            answer.text().contains("Bearer <API token>"),
            "{}",
            answer.text()
        );
    }
    let members = client
        .request(
            &leader,
            Method::GET,
            "/admin/members",
            &token(),
            Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(members.status, StatusCode::OK);
    let read = client
        .request(&leader, Method::GET, "/kv/greeting", &[], Bytes::new())
        .await
        .unwrap();
    assert_eq!(read.text(), "hello", "the refused writes changed nothing");
    assert!(nodes.iter().all(|node| {
        node.replica()
            .node()
            .membership()
            .membership
            .voters()
            .count()
            == 3
    }));

    // Enough writes for snapshots (16 KiB threshold), replicated to every node over mTLS.
    for i in 0..120 {
        let value = format!("value-{i}-{}", "x".repeat(200));
        let answer = client
            .request_cluster(
                &addresses,
                Method::PUT,
                &format!("/kv/k{i}"),
                &token(),
                value.as_bytes(),
            )
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::NO_CONTENT);
    }
    let snapshots = wait_until(|| {
        nodes.iter().all(|node| {
            node.state().len() == 121 && node.replica().node().status().snapshot_index.0 > 0
        })
    })
    .await;
    assert!(
        snapshots,
        "every node applied every write and took a snapshot"
    );
    stop(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_client_at_the_tls_port_gets_a_tls_alert_at_once_and_changes_nothing() {
    let (dir, pki) = (tempfile::tempdir().unwrap(), Pki::new(1));
    let (nodes, addresses) = start(dir.path(), vec![pki.options(1)]).await;
    let client = pki.client();
    client.wait_for_leader(&addresses).await;

    // A raw plaintext request: the answer is a TLS alert record (content type 21), then the
    // connection closes, well within a second.
    let started = tokio::time::Instant::now();
    let mut stream = TcpStream::connect(&addresses[0]).await.unwrap();
    let request = "PUT /kv/sneaky HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nbad";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection, no hang")
        .ok();
    assert_eq!(answer.first(), Some(&21), "a TLS alert: {answer:?}");
    // A plaintext HTTP client fails as promptly.
    let plain = common::request(&addresses[0], Method::GET, "/status", &[], Bytes::new()).await;
    assert!(plain.is_none());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    let read = client
        .request(&addresses[0], Method::GET, "/kv/sneaky", &[], Bytes::new())
        .await
        .unwrap();
    assert_eq!(read.status, StatusCode::NOT_FOUND, "nothing was written");
    assert_eq!(nodes[0].state().len(), 0);
    stop(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_with_a_certificate_from_another_ca_or_expired_never_get_in() {
    let (dir, pki) = (tempfile::tempdir().unwrap(), Pki::new(3));
    // Node 4's certificate names it but comes from another CA; node 5's has expired.
    pki.write(
        "node-4",
        &TestCa::new("other CA").node(4, Validity::Current),
    );
    pki.write("node-5", &pki.ca.node(5, Validity::Expired));
    let (nodes, addresses) = start(dir.path(), (1..=5).map(|id| pki.options(id)).collect()).await;
    let client = pki.client();
    let good = &addresses[..3];
    let leader = client.wait_for_leader(good).await;
    for i in 0..10 {
        let answer = client
            .request_cluster(good, Method::PUT, &format!("/kv/k{i}"), &token(), b"v")
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::NO_CONTENT);
    }
    let term = nodes[0].replica().node().status().term;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for node in &nodes[..3] {
        let status = node.replica().node().status();
        assert_eq!(status.term, term, "no election disturbed the good nodes");
        assert_eq!(node.state().len(), 10);
    }
    assert_eq!(client.wait_for_leader(good).await, leader);
    for node in &nodes[3..] {
        let status = node.replica().node().status();
        assert_eq!(
            (status.commit_index.0, node.state().len()),
            (0, 0),
            "node {} received nothing",
            node.id()
        );
    }
    stop(nodes).await;
}

/// An AppendEntries claiming to come from node `leader` at a high term.
fn forged_append(leader: u64) -> AppendEntries {
    AppendEntries {
        term: Term(1000),
        leader_id: NodeId(leader),
        seq: 1,
        prev_log_id: LogId::new(0, 0),
        entries: Vec::new(),
        leader_commit: LogIndex(0),
    }
}

/// A transport to node 1 at `address` presenting `tls`.
fn transport_to_node_1(address: &str, tls: ClientTlsFiles) -> HttpTransport {
    let mut config = ClientConfig::new(ClusterAuth::new(CLUSTER).unwrap());
    config.tls = Some(ClientTls::load(tls).unwrap());
    HttpTransport::new([(NodeId(1), address.to_owned())], config).unwrap()
}

fn request_error(error: &RaftError) -> &RequestError {
    let RaftError::Transport { source, .. } = error else {
        panic!("not a transport error: {error:?}");
    };
    source.downcast_ref::<RequestError>().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_append_entries_with_a_high_term_are_refused_and_the_term_stays() {
    let (dir, pki) = (tempfile::tempdir().unwrap(), Pki::new(3));
    let (nodes, addresses) = start(dir.path(), vec![pki.options(1)]).await;
    pki.client().wait_for_leader(&addresses).await;
    let before = nodes[0].replica().node().status();
    let ca = pki.path("ca.pem");
    let as_node = |id: u64| {
        ClientTlsFiles::new(&ca).with_certificate(
            pki.path(&format!("node-{id}.pem")),
            pki.path(&format!("node-{id}.key")),
        )
    };

    // Node 2's certificate, claiming to be node 3: 403 wrong-node.
    let error = transport_to_node_1(&addresses[0], as_node(2))
        .append_entries(NodeId(1), forged_append(3))
        .await
        .unwrap_err();
    assert!(
        matches!(
            request_error(&error),
            RequestError::Remote {
                status: 403,
                code: ErrorCode::WrongNode,
                ..
            }
        ),
        "{error:?}"
    );
    // No client certificate at all: 401 certificate-required.
    let error = transport_to_node_1(&addresses[0], ClientTlsFiles::new(&ca))
        .append_entries(NodeId(1), forged_append(2))
        .await
        .unwrap_err();
    assert!(
        matches!(
            request_error(&error),
            RequestError::Remote {
                status: 401,
                code: ErrorCode::CertificateRequired,
                ..
            }
        ),
        "{error:?}"
    );
    // A certificate naming node 2 from another CA: the handshake fails.
    let (certificate, key) = pki.write(
        "foreign-2",
        &TestCa::new("other CA").node(2, Validity::Current),
    );
    let error = transport_to_node_1(
        &addresses[0],
        ClientTlsFiles::new(&ca).with_certificate(certificate, key),
    )
    .append_entries(NodeId(1), forged_append(2))
    .await
    .unwrap_err();
    assert!(
        matches!(request_error(&error), RequestError::Tls { .. }),
        "{error:?}"
    );

    let after = nodes[0].replica().node().status();
    assert_eq!(
        (after.term, after.role),
        (before.term, before.role),
        "nothing changed"
    );
    stop(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_certificates_reach_new_connections_by_the_watch_and_by_a_reload() {
    let (dir, pki) = (tempfile::tempdir().unwrap(), Pki::new(1));
    let mut tls = pki.options(1);
    tls.reload_interval = Some(Duration::from_millis(100));
    let (nodes, addresses) = start(dir.path(), vec![tls]).await;
    let client = pki.client();
    let first = client.certificate(&addresses[0]).await.unwrap();

    // Replaced files are picked up by the watch.
    let second = pki.ca.node(1, Validity::Current);
    pki.write("node-1", &second);
    let mut served = first.clone();
    for _ in 0..50 {
        served = client.certificate(&addresses[0]).await.unwrap();
        if served != first {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_ne!(served, first, "the watch reloaded the new certificate");

    // A broken file is refused and the certificate in force stays.
    std::fs::write(pki.path("node-1.pem"), "not a certificate").unwrap();
    let reloader = nodes[0].tls_reloader().unwrap();
    assert!(reloader.reload().is_err());
    assert_eq!(client.certificate(&addresses[0]).await.unwrap(), served);
    // A good one is used by the next connection as soon as reload returns.
    pki.write("node-1", &pki.ca.node(1, Validity::Current));
    reloader.reload().unwrap();
    let third = client.certificate(&addresses[0]).await.unwrap();
    assert!(third != served && third != first);
    stop(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_over_tls_a_cluster_whose_clients_get_a_certificate_from_another_ca() {
    let (dir, pki) = (tempfile::tempdir().unwrap(), Pki::new(2));
    let api_ca = TestCa::new("API CA");
    let (api_certificate, api_key) = pki.write(
        "api",
        &api_ca.issue(&["127.0.0.1".to_owned()], Validity::Current),
    );
    let addresses = free_addresses(2);
    let mut first = options(
        dir.path(),
        1,
        &addresses[..1],
        pki.options(1)
            .with_client_certificate(&api_certificate, &api_key),
    );
    first.peers.clear();
    let node_1 = KvNode::start(first).await.unwrap();
    // API clients trust the API CA; the peers' CA alone does not do.
    let client = HttpsClient::trusting(&api_ca.pem);
    client.wait_for_leader(&addresses[..1]).await;
    assert!(pki.client().certificate(&addresses[0]).await.is_err());
    for i in 0..10 {
        let answer = client
            .request(
                &addresses[0],
                Method::PUT,
                &format!("/kv/k{i}"),
                &token(),
                Bytes::from("v"),
            )
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::NO_CONTENT);
    }

    let mut second = options(dir.path(), 2, &addresses, pki.options(2));
    second.peers.clear();
    second.join = Some(format!("https://{}", addresses[0]));
    let node_2 = KvNode::start(second).await.unwrap();
    let joined = wait_until(|| {
        let membership = node_1.replica().node().membership().membership;
        membership.learners().any(|id| id == NodeId(2)) && node_2.state().len() == 10
    })
    .await;
    assert!(
        joined,
        "node 2 was added as a learner and caught up over mTLS"
    );
    node_2.shutdown().await;
    node_1.shutdown().await;
}

/// Polls `done` every 50 ms for up to 20 s.
async fn wait_until(done: impl Fn() -> bool) -> bool {
    for _ in 0..400 {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
