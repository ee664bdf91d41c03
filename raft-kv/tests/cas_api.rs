//! Versions and compare-and-swap on the single-key routes of one in-process node: `ETag` on
//! reads and writes, `If-Match` / `If-None-Match` deciding writes, a 412 recorded as the
//! answer a retry gets again, and malformed conditions refused with 400.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::{Answer, request, session, wait_for_leader};
use hyper::{Method, StatusCode};
use raft_core::NodeId;
use raft_kv::server::{KvNode, NodeOptions};

async fn single_node(dir: &std::path::Path) -> (KvNode, String) {
    let options = NodeOptions::new(NodeId(1), "127.0.0.1:0", dir.join("node-1"));
    let node = KvNode::start(options).await.unwrap();
    let address = node.url().strip_prefix("http://").unwrap().to_owned();
    wait_for_leader(std::slice::from_ref(&address)).await;
    (node, address)
}

async fn call(
    address: &str,
    method: Method,
    path: &str,
    headers: Vec<(&'static str, String)>,
    body: &'static [u8],
) -> Answer {
    request(address, method, path, &headers, Bytes::from_static(body))
        .await
        .unwrap()
}

fn if_match(tag: &str) -> Vec<(&'static str, String)> {
    vec![("if-match", tag.to_owned())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_writes_carry_the_version_of_the_write_as_etag() {
    let dir = tempfile::tempdir().unwrap();
    let (node, address) = single_node(dir.path()).await;

    let put = call(&address, Method::PUT, "/kv/a", vec![], b"1").await;
    assert_eq!(put.status, StatusCode::NO_CONTENT);
    let index = put.index.unwrap();
    assert_eq!(put.etag, Some(format!("\"{index}\"")));
    let get = call(&address, Method::GET, "/kv/a", vec![], b"").await;
    assert_eq!((get.status, get.version()), (StatusCode::OK, Some(index)));
    let stale = call(
        &address,
        Method::GET,
        "/kv/a?consistency=stale",
        vec![],
        b"",
    )
    .await;
    assert_eq!(stale.version(), Some(index));

    // Another key's write leaves this one's version alone; rewriting it moves it.
    let other = call(&address, Method::PUT, "/kv/b", vec![], b"2").await;
    assert!(other.version().unwrap() > index);
    assert_eq!(
        call(&address, Method::GET, "/kv/a", vec![], b"")
            .await
            .version(),
        Some(index)
    );
    let again = call(&address, Method::PUT, "/kv/a", vec![], b"3").await;
    let later = again.version().unwrap();
    assert!(later > other.version().unwrap());
    assert_eq!(
        call(&address, Method::GET, "/kv/a", vec![], b"")
            .await
            .version(),
        Some(later)
    );

    let incr = call(&address, Method::POST, "/kv/n/incr", vec![], b"").await;
    assert_eq!((incr.status, incr.text()), (StatusCode::OK, "1".to_owned()));
    assert_eq!(incr.version(), incr.index);
    let delete = call(&address, Method::DELETE, "/kv/a", vec![], b"").await;
    assert_eq!(delete.status, StatusCode::NO_CONTENT);
    assert_eq!(delete.version(), delete.index);
    // Deleting an absent key changes nothing: no version to give.
    let absent = call(&address, Method::DELETE, "/kv/a", vec![], b"").await;
    assert_eq!((absent.status, absent.etag), (StatusCode::NO_CONTENT, None));
    let missing = call(&address, Method::GET, "/kv/a", vec![], b"").await;
    assert_eq!(
        (missing.status, missing.etag),
        (StatusCode::NOT_FOUND, None)
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_match_applies_a_write_only_at_the_version_read() {
    let dir = tempfile::tempdir().unwrap();
    let (node, address) = single_node(dir.path()).await;
    let version = call(&address, Method::PUT, "/kv/k", vec![], b"old")
        .await
        .version()
        .unwrap();

    // A stale version: 412 with the current ETag, nothing written.
    let stale = format!("\"{}\"", version + 100);
    let refused = call(&address, Method::PUT, "/kv/k", if_match(&stale), b"x").await;
    assert_eq!(refused.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(refused.version(), Some(version));
    assert!(!refused.text().is_empty());
    assert_eq!(
        call(&address, Method::GET, "/kv/k", vec![], b"")
            .await
            .text(),
        "old"
    );

    // The version read (quoted or not): applied, with the new version.
    let swapped = call(
        &address,
        Method::PUT,
        "/kv/k",
        if_match(&format!("\"{version}\"")),
        b"new",
    )
    .await;
    assert_eq!(swapped.status, StatusCode::NO_CONTENT);
    let newer = swapped.version().unwrap();
    assert!(newer > version);
    // The old version no longer matches.
    let late = call(
        &address,
        Method::PUT,
        "/kv/k",
        if_match(&version.to_string()),
        b"late",
    )
    .await;
    assert_eq!(
        (late.status, late.version()),
        (StatusCode::PRECONDITION_FAILED, Some(newer))
    );
    let incr = call(
        &address,
        Method::POST,
        "/kv/k/incr",
        if_match(&newer.to_string()),
        b"",
    )
    .await;
    assert_eq!(incr.status, StatusCode::CONFLICT, "not an integer");
    let delete = call(
        &address,
        Method::DELETE,
        "/kv/k",
        if_match(&newer.to_string()),
        b"",
    )
    .await;
    assert_eq!(delete.status, StatusCode::NO_CONTENT);

    // An absent key matches no version: 412 without an ETag.
    for (method, path) in [
        (Method::PUT, "/kv/k"),
        (Method::DELETE, "/kv/k"),
        (Method::POST, "/kv/k/incr"),
    ] {
        let absent = call(&address, method.clone(), path, if_match("\"1\""), b"v").await;
        assert_eq!(
            (absent.status, absent.etag),
            (StatusCode::PRECONDITION_FAILED, None),
            "{method} {path}"
        );
    }
    assert_eq!(
        call(&address, Method::GET, "/kv/k", vec![], b"")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_none_match_star_creates_only() {
    let dir = tempfile::tempdir().unwrap();
    let (node, address) = single_node(dir.path()).await;
    let create = || vec![("if-none-match", "*".to_owned())];
    let first = call(&address, Method::PUT, "/kv/c", create(), b"first").await;
    assert_eq!(first.status, StatusCode::NO_CONTENT);
    let second = call(&address, Method::PUT, "/kv/c", create(), b"second").await;
    assert_eq!(
        (second.status, second.version()),
        (StatusCode::PRECONDITION_FAILED, first.version())
    );
    assert_eq!(
        call(&address, Method::GET, "/kv/c", vec![], b"")
            .await
            .text(),
        "first"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_conditional_write_gets_its_recorded_answer_again() {
    let dir = tempfile::tempdir().unwrap();
    let (node, address) = single_node(dir.path()).await;
    let version = call(&address, Method::PUT, "/kv/r", vec![], b"v1")
        .await
        .version()
        .unwrap();
    let with = |request: u64, tag: u64| {
        let mut headers = session(9, request);
        headers.push(("if-match", format!("\"{tag}\"")));
        headers
    };

    // Refused (its own entry is the next index), then the key changes at the index after it,
    // so that the same condition would now hold: the retry still gets the 412 recorded when it
    // was applied, flagged as a duplicate.
    let target = version + 2;
    let refused = call(&address, Method::PUT, "/kv/r", with(1, target), b"x").await;
    assert_eq!(refused.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(refused.duplicate, Some(false));
    let changed = call(&address, Method::PUT, "/kv/r", vec![], b"v2").await;
    let changed_version = changed.version().unwrap();
    assert_eq!(changed_version, target, "the index after the refused write");
    let retry = call(&address, Method::PUT, "/kv/r", with(1, target), b"x").await;
    assert_eq!(
        (retry.status, retry.duplicate, retry.version(), retry.index),
        (
            StatusCode::PRECONDITION_FAILED,
            Some(true),
            Some(version),
            refused.index
        )
    );
    assert_eq!(
        call(&address, Method::GET, "/kv/r", vec![], b"")
            .await
            .text(),
        "v2"
    );

    // An applied one: its retry gets the same ETag and is not applied again.
    let applied = call(
        &address,
        Method::PUT,
        "/kv/r",
        with(2, changed_version),
        b"v3",
    )
    .await;
    assert_eq!(applied.status, StatusCode::NO_CONTENT);
    let retry = call(
        &address,
        Method::PUT,
        "/kv/r",
        with(2, changed_version),
        b"v3",
    )
    .await;
    assert_eq!(
        (retry.status, retry.duplicate, retry.etag),
        (StatusCode::NO_CONTENT, Some(true), applied.etag)
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_conditions_are_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (node, address) = single_node(dir.path()).await;
    call(&address, Method::PUT, "/kv/m", vec![], b"v").await;
    let cases: Vec<Vec<(&'static str, String)>> = vec![
        if_match("W/\"1\""),
        if_match("*"),
        if_match("\"1\", \"2\""),
        if_match("one"),
        vec![("if-none-match", "\"1\"".to_owned())],
        vec![
            ("if-match", "\"1\"".to_owned()),
            ("if-none-match", "*".to_owned()),
        ],
    ];
    for headers in cases {
        let answer = call(&address, Method::PUT, "/kv/m", headers.clone(), b"x").await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{headers:?}");
        assert!(!answer.text().is_empty());
    }
    assert_eq!(
        call(&address, Method::GET, "/kv/m", vec![], b"")
            .await
            .text(),
        "v"
    );
    node.shutdown().await;
}
