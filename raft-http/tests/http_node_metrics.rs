//! The node id given once to [`HttpNode::builder`] labels both sides' metrics: the server's
//! (`raft_http_requests_total{node=...}`) and the client's (`raft_http_rpc_latency_seconds{node=
//! ..., peer=...}`), and `/metrics` is served from the handle given to the builder. Its own test
//! binary: it installs the process's global recorder.

// Helpers of this test file: a broken one should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::{CLUSTER, FakeHandler, SECRET, append_request, http1};
use http_body_util::Full;
use hyper::{Request, StatusCode};
use raft_core::{NodeId, Transport};
use raft_http::HttpNode;

#[tokio::test]
async fn the_builder_s_node_id_labels_client_and_server_metrics() {
    let handle = raft_http::metrics::install_prometheus_recorder().expect("first recorder");
    let receiver = HttpNode::builder(NodeId(7))
        .listen("127.0.0.1:0")
        .cluster(CLUSTER)
        .secret(SECRET)
        .metrics(handle.clone())
        .bind()
        .await
        .unwrap();
    let addr = receiver.local_addr();
    let sender = HttpNode::builder(NodeId(4))
        .listen("127.0.0.1:0")
        .cluster(CLUSTER)
        .secret(SECRET)
        .peer(NodeId(7), addr.to_string())
        .metrics(handle)
        .bind()
        .await
        .unwrap();
    let handler = FakeHandler::new();
    let service = receiver.service(handler.clone());
    let serving = receiver.serve_with(service);
    for seq in 0..3 {
        sender
            .transport()
            .append_entries(NodeId(7), append_request(seq, 2))
            .await
            .unwrap();
    }

    let scrape = Request::builder()
        .method("GET")
        .uri("/metrics")
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let answer = http1(addr, scrape).await;
    assert_eq!(answer.status, StatusCode::OK);
    let text = answer.body;
    assert!(
        text.contains(r#"raft_http_requests_total{node="7",route="append",status="200"} 3"#),
        "the server's node label:\n{text}"
    );
    assert!(
        text.contains(r#"raft_http_rpc_latency_seconds_bucket{node="4",peer="7",route="append""#),
        "the client's node label:\n{text}"
    );
    assert!(
        text.contains(r#"raft_http_client_connects_total{node="4",peer="7"} 1"#),
        "{text}"
    );
    serving.shutdown().await;
}
