//! Lost answers, silent servers, no quorum and no server: writes retried after their first
//! attempt was applied count once, and each dead end gives its typed error at the deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::Cluster;
use common::proxy::{Fault, Proxy};
use raft_core::NodeId;
use raft_kv::server::{KvNode, NodeOptions};
use raft_kv_client::{Client, Error, Protocol};
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incr_whose_answers_are_lost_is_retried_and_counts_once() {
    let cluster = Cluster::start(1, |_| {}).await;
    for protocol in [Protocol::Http2, Protocol::Http1] {
        let proxy = Proxy::start(&cluster.urls[0], "/incr").await;
        let client = Client::builder([proxy.url.clone()])
            .protocol(protocol)
            .build()
            .unwrap();
        let key = format!("n-{protocol:?}");
        // The node applies the first attempt, but its answer becomes a 504; the second
        // attempt's answer is dropped; the third gets the recorded answer.
        proxy.inject(&[Fault::GatewayTimeout, Fault::Drop]);
        let first = client.incr(&key).await.unwrap();
        assert_eq!(proxy.forwarded(), 3, "{protocol:?}");
        assert_eq!((first.value, first.duplicate), (1, true), "{protocol:?}");
        let second = client.incr(&key).await.unwrap();
        assert_eq!((second.value, second.duplicate), (2, false), "{protocol:?}");
        assert_eq!(client.get(&key).await.unwrap().value, "2");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_whose_answer_is_lost_is_not_applied_again() {
    let cluster = Cluster::start(1, |_| {}).await;
    let proxy = Proxy::start(&cluster.urls[0], "/kv/k").await;
    let client = Client::new([proxy.url.clone()]).unwrap();
    let first = client.put("k", "1").await.unwrap();
    proxy.inject(&[Fault::Drop]);
    let second = client.put("k", "2").await.unwrap();
    assert!(second.duplicate);
    assert!(second.version > first.version);
    // Applied once: the version is the one of its first attempt, and nothing came after.
    let read = client.get("k").await.unwrap();
    assert_eq!(
        (read.value.as_ref(), read.version),
        (&b"2"[..], Some(second.version))
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_times_out_reads_and_leaves_writes_unknown() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    // Accepts connections and holds them without a word.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    for protocol in [Protocol::Http2, Protocol::Http1] {
        let client = Client::builder([url.clone()])
            .protocol(protocol)
            .request_timeout(Duration::from_millis(150))
            .deadline(Duration::from_millis(600))
            .build()
            .unwrap();
        let started = tokio::time::Instant::now();
        match client.get("k").await {
            Err(
                error @ Error::Timeout {
                    outcome_unknown: false,
                    ..
                },
            ) => assert!(!error.is_outcome_unknown()),
            other => panic!("{protocol:?} read: {other:?}"),
        }
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(600) && elapsed < Duration::from_secs(5),
            "{elapsed:?}"
        );
        let write = client.put("k", "v").await.unwrap_err();
        assert!(write.is_outcome_unknown(), "{protocol:?} write: {write:?}");
        // A shorter deadline for one call.
        let started = tokio::time::Instant::now();
        let quick = client.with_deadline(Duration::from_millis(100));
        assert!(matches!(
            quick.incr("n").await,
            Err(Error::Timeout { after, .. }) if after == Duration::from_millis(100)
        ));
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    silent.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_without_a_quorum_fail_with_no_leader_and_were_not_applied() {
    // Node 1 of a 3-node cluster whose other members never start: it can elect no one.
    let dir = tempfile::tempdir().unwrap();
    let addresses = common::free_addresses(3);
    let node = KvNode::start(common::node_options(dir.path(), 1, &addresses))
        .await
        .unwrap();
    let client = Client::builder([node.url()])
        .deadline(Duration::from_secs(1))
        .build()
        .unwrap();
    match client.put("k", "v").await {
        Err(error @ Error::NoLeader { .. }) => {
            assert!(!error.is_outcome_unknown());
            assert!(error.is_transient());
        }
        other => panic!("{other:?}"),
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_nodes_nobody_listens_at_fail_with_a_transport_error() {
    let addresses = common::free_addresses(2);
    let client = Client::builder(addresses.iter().map(|a| format!("http://{a}")))
        .deadline(Duration::from_millis(300))
        .build()
        .unwrap();
    for result in [
        client.get("k").await.err(),
        client.put("k", "v").await.err(),
    ] {
        match result {
            Some(Error::Transport(error)) => {
                assert!(addresses.iter().any(|a| error.endpoint.contains(a)));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_is_reached_again_on_a_new_connection() {
    let dir = tempfile::tempdir().unwrap();
    let options = NodeOptions::new(NodeId(1), "127.0.0.1:0", dir.path().join("node-1"));
    let node = KvNode::start(options).await.unwrap();
    let url = node.url();
    let client = Client::new([url.clone()]).unwrap();
    client.put("k", "before").await.unwrap();
    node.shutdown().await;
    let mut options = NodeOptions::new(
        NodeId(1),
        url.strip_prefix("http://").unwrap(),
        dir.path().join("node-1"),
    );
    options.raft.raft.election_timeout_ms = 400;
    let node = KvNode::start(options).await.unwrap();
    // The pooled connection is dead; the client reconnects on its own.
    assert_eq!(client.get("k").await.unwrap().value, "before");
    client.put("k", "after").await.unwrap();
    assert_eq!(client.get("k").await.unwrap().value, "after");
    node.shutdown().await;
}
