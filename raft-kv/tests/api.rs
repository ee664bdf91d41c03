//! The client API of one in-process node: every route, the exactly-once headers, and bad
//! requests getting a 4xx with a message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::{request, session, wait_for_leader};
use hyper::{Method, StatusCode};
use raft_core::NodeId;
use raft_kv::server::{KvNode, NodeOptions};

/// A bad request: method, path, headers, body and the status it must get.
type Case = (
    Method,
    &'static str,
    Vec<(&'static str, String)>,
    Bytes,
    StatusCode,
);

async fn single_node(dir: &std::path::Path) -> (KvNode, String) {
    let mut options = NodeOptions::new(NodeId(1), "127.0.0.1:0", dir.join("node-1"));
    options.api.max_value_bytes = 1024;
    options.raft.raft.lease_reads = true;
    let node = KvNode::start(options).await.unwrap();
    let address = node.url().strip_prefix("http://").unwrap().to_owned();
    wait_for_leader(std::slice::from_ref(&address)).await;
    (node, address)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_delete_incr_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let (node, address) = single_node(dir.path()).await;
    let call =
        |method: Method, path: &str, headers: Vec<(&'static str, String)>, body: &'static [u8]| {
            let address = address.clone();
            let path = path.to_owned();
            async move {
                request(&address, method, &path, &headers, Bytes::from_static(body))
                    .await
                    .unwrap()
            }
        };

    let put = call(Method::PUT, "/kv/a%2Fb", vec![], b"hello").await;
    assert_eq!(put.status, StatusCode::NO_CONTENT);
    assert_eq!(put.duplicate, Some(false));
    let get = call(Method::GET, "/kv/a%2Fb", vec![], b"").await;
    assert_eq!(
        (get.status, get.body.as_ref()),
        (StatusCode::OK, &b"hello"[..])
    );
    let stale = call(Method::GET, "/kv/a%2Fb?stale=true", vec![], b"").await;
    assert_eq!(stale.body.as_ref(), b"hello");
    for consistency in ["linearizable", "follower", "lease", "stale"] {
        let path = format!("/kv/a%2Fb?consistency={consistency}");
        let read = request(&address, Method::GET, &path, &[], Bytes::new())
            .await
            .unwrap();
        assert_eq!(
            (read.status, read.body.as_ref()),
            (StatusCode::OK, &b"hello"[..]),
            "{consistency}"
        );
    }

    for expected in 1..=3 {
        let incr = call(Method::POST, "/kv/n/incr", session(5, expected), b"").await;
        assert_eq!(
            (incr.status, incr.text()),
            (StatusCode::OK, expected.to_string())
        );
    }
    // A retry of request 3: the original answer, flagged, not applied again.
    let retry = call(Method::POST, "/kv/n/incr", session(5, 3), b"").await;
    assert_eq!(
        (retry.text(), retry.duplicate),
        ("3".to_owned(), Some(true))
    );
    assert_eq!(call(Method::GET, "/kv/n", vec![], b"").await.text(), "3");
    // Refused: a value that is not a number, an old request id.
    let refused = call(Method::POST, "/kv/a%2Fb/incr", vec![], b"").await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    let old = call(Method::POST, "/kv/n/incr", session(5, 1), b"").await;
    // Request 1's result is still kept (4 per client): a duplicate, not an error.
    assert_eq!(old.duplicate, Some(true));

    let delete = call(Method::DELETE, "/kv/a%2Fb", vec![], b"").await;
    assert_eq!(delete.status, StatusCode::NO_CONTENT);
    assert_eq!(
        call(Method::GET, "/kv/a%2Fb", vec![], b"").await.status,
        StatusCode::NOT_FOUND
    );

    let status: serde_json::Value =
        serde_json::from_slice(&call(Method::GET, "/status", vec![], b"").await.body).unwrap();
    assert_eq!(status["id"], 1);
    assert_eq!(status["role"], "leader");
    assert_eq!(status["leader"], 1);
    assert!(status["commit_index"].as_u64().unwrap() >= 6);
    assert_eq!(status["applied_index"], status["commit_index"]);
    assert!(status["last_log_index"].as_u64().unwrap() >= 6);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_client_error_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let (node, address) = single_node(dir.path()).await;
    let cases: Vec<Case> = vec![
        (
            Method::GET,
            "/nowhere",
            vec![],
            Bytes::new(),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            "/kv/",
            vec![],
            Bytes::new(),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/kv/a/b/c",
            vec![],
            Bytes::new(),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            "/kv/a",
            vec![],
            Bytes::new(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::GET,
            "/kv/a/incr",
            vec![],
            Bytes::new(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::GET,
            "/kv/a?stale=perhaps",
            vec![],
            Bytes::new(),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/kv/a?consistency=eventual",
            vec![],
            Bytes::new(),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PUT,
            "/kv/a",
            vec![("client-id", "1".into())],
            Bytes::new(),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PUT,
            "/kv/a",
            session(1, 0),
            Bytes::new(),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PUT,
            "/kv/a",
            vec![("client-id", "x".into()), ("request-id", "1".into())],
            Bytes::new(),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PUT,
            "/kv/a",
            vec![],
            Bytes::from(vec![0u8; 2048]),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        // A peer route without the cluster id never reaches the node.
        (
            Method::POST,
            "/raft/v1/append",
            vec![],
            Bytes::from_static(b"junk"),
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (method, path, headers, body, expected) in cases {
        let answer = request(&address, method.clone(), path, &headers, body)
            .await
            .unwrap();
        assert_eq!(
            answer.status,
            expected,
            "{method} {path}: {}",
            answer.text()
        );
        assert!(!answer.text().is_empty(), "{method} {path} explains itself");
    }
    // Still serving.
    let put = request(
        &address,
        Method::PUT,
        "/kv/ok",
        &[],
        Bytes::from_static(b"1"),
    )
    .await
    .unwrap();
    assert_eq!(put.status, StatusCode::NO_CONTENT);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_route_serves_prometheus_text() {
    let dir = tempfile::tempdir().unwrap();
    let handle = raft_http::metrics::install_prometheus_recorder().unwrap();
    let mut options = NodeOptions::new(NodeId(1), "127.0.0.1:0", dir.path().join("n"));
    options.metrics = Some(handle);
    let node = KvNode::start(options).await.unwrap();
    let address = node.url().strip_prefix("http://").unwrap().to_owned();
    wait_for_leader(std::slice::from_ref(&address)).await;
    request(
        &address,
        Method::PUT,
        "/kv/m",
        &[],
        Bytes::from_static(b"1"),
    )
    .await
    .unwrap();
    let metrics = request(&address, Method::GET, "/metrics", &[], Bytes::new())
        .await
        .unwrap();
    assert_eq!(metrics.status, StatusCode::OK);
    let text = metrics.text();
    assert!(
        text.contains("raft_kv_requests_total{node=\"1\",op=\"put\",status=\"204\"}"),
        "{text}"
    );
    assert!(
        text.contains("raft_commit_index"),
        "raft-core's metrics are there too"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_arriving_gets_408_and_a_whole_one_is_applied() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().unwrap();
    let mut options = NodeOptions::new(NodeId(1), "127.0.0.1:0", dir.path().join("n"));
    options.api.body_timeout = std::time::Duration::from_secs(1);
    let node = KvNode::start(options).await.unwrap();
    let address = node.url().strip_prefix("http://").unwrap().to_owned();
    wait_for_leader(std::slice::from_ref(&address)).await;

    // Ten bytes announced, three sent, then nothing.
    let mut stalled = tokio::net::TcpStream::connect(&address).await.unwrap();
    stalled
        .write_all(b"PUT /kv/slow HTTP/1.1\r\nhost: kv\r\ncontent-length: 10\r\n\r\nabc")
        .await
        .unwrap();
    let mut answer = vec![0; 512];
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stalled.read(&mut answer),
    )
    .await
    .expect("the server answers a stalled body")
    .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let get = request(&address, Method::GET, "/kv/slow", &[], Bytes::new())
        .await
        .unwrap();
    assert_eq!(get.status, StatusCode::NOT_FOUND, "nothing was applied");

    // A body sent in two parts, the second after a pause shorter than the timeout.
    let mut split = tokio::net::TcpStream::connect(&address).await.unwrap();
    split
        .write_all(b"PUT /kv/split HTTP/1.1\r\nhost: kv\r\ncontent-length: 6\r\n\r\nabc")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    split.write_all(b"def").await.unwrap();
    let mut answer = vec![0; 512];
    let read = split.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
    let get = request(&address, Method::GET, "/kv/split", &[], Bytes::new())
        .await
        .unwrap();
    assert_eq!(get.body.as_ref(), b"abcdef");
    node.shutdown().await;
}
