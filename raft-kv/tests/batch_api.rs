//! The batch route `POST /kv`: many operations in one log entry, one result each, applied
//! exactly once under the session headers, within its limits, behind the API token, and
//! redirected to the leader by a follower.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::{Answer, authority, request, session, start_cluster, wait_for_leader};
use hyper::{Method, StatusCode};
use raft_core::NodeId;
use raft_kv::server::{KvNode, NodeOptions};
use serde_json::{Value, json};

async fn single_node(dir: &std::path::Path, token: Option<&str>) -> (KvNode, String) {
    let mut options = NodeOptions::new(NodeId(1), "127.0.0.1:0", dir.join("node-1"));
    options.api.max_value_bytes = 64;
    options.api.max_batch_bytes = 1 << 20;
    options.api_token = token.map(str::to_owned);
    let node = KvNode::start(options).await.unwrap();
    let address = node.url().strip_prefix("http://").unwrap().to_owned();
    wait_for_leader(std::slice::from_ref(&address)).await;
    (node, address)
}

async fn call(
    address: &str,
    method: Method,
    path: &str,
    headers: &[(&'static str, String)],
    body: impl Into<Bytes>,
) -> Answer {
    request(address, method, path, headers, body.into())
        .await
        .unwrap()
}

async fn batch(address: &str, headers: &[(&'static str, String)], body: &Value) -> Answer {
    call(
        address,
        Method::POST,
        "/kv",
        headers,
        serde_json::to_vec(body).unwrap(),
    )
    .await
}

fn json_of(answer: &Answer) -> Value {
    serde_json::from_slice(&answer.body).unwrap_or_else(|_| panic!("{}", answer.text()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_one_entry_whose_ops_apply_in_order_each_with_its_result() {
    let dir = tempfile::tempdir().unwrap();
    let (node, address) = single_node(dir.path(), None).await;
    let b = call(&address, Method::PUT, "/kv/b", &[], "B").await;
    let c = call(&address, Method::PUT, "/kv/c", &[], "C").await;
    let (b_version, c_version) = (b.version().unwrap(), c.version().unwrap());

    let answer = batch(
        &address,
        &[],
        &json!({"ops": [
            {"op": "put", "key": "a", "value": "text"},
            {"op": "delete", "key": "b", "if_match": b_version + 100},
            {"op": "put", "key": "c", "value": "x", "if_none_match": true},
            {"op": "incr", "key": "n"},
            {"op": "incr", "key": "a"},
            {"op": "delete", "key": "nothing"},
            {"op": "put", "key": "d", "value": "new", "if_none_match": true},
            {"op": "put", "key": "absent", "value": "x", "if_match": 1},
            {"op": "delete", "key": "b", "if_match": b_version},
            {"op": "incr", "key": "n"},
        ]}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let doc = json_of(&answer);
    let index = doc["index"].as_u64().unwrap();
    assert_eq!(Some(index), answer.index);
    assert_eq!(index, c_version + 1, "the whole batch is the next entry");
    assert_eq!(doc["duplicate"], json!(false));
    let results = doc["results"].as_array().unwrap();
    assert_eq!(results.len(), 10);
    assert_eq!(results[0], json!({"status": 200, "version": index}));
    assert_eq!(results[1], json!({"status": 412, "version": b_version}));
    assert_eq!(results[2], json!({"status": 412, "version": c_version}));
    assert_eq!(
        results[3],
        json!({"status": 200, "version": index, "value": 1})
    );
    assert_eq!(results[4]["status"], json!(422));
    assert!(results[4]["error"].as_str().unwrap().contains("integer"));
    assert_eq!(results[5], json!({"status": 200, "version": null}));
    assert_eq!(results[6], json!({"status": 200, "version": index}));
    assert_eq!(results[7], json!({"status": 412, "version": null}));
    assert_eq!(results[8], json!({"status": 200, "version": index}));
    assert_eq!(
        results[9],
        json!({"status": 200, "version": index, "value": 2})
    );

    // The map after it: every applied op, at the batch's version.
    for (key, value) in [("a", "text"), ("c", "C"), ("n", "2"), ("d", "new")] {
        let get = call(&address, Method::GET, &format!("/kv/{key}"), &[], "").await;
        assert_eq!(get.text(), value, "{key}");
        let expected = if key == "c" { c_version } else { index };
        assert_eq!(get.version(), Some(expected), "{key}");
    }
    for key in ["b", "absent", "nothing"] {
        let get = call(&address, Method::GET, &format!("/kv/{key}"), &[], "").await;
        assert_eq!(get.status, StatusCode::NOT_FOUND, "{key}");
    }
    let next = call(&address, Method::PUT, "/kv/z", &[], "z").await;
    assert_eq!(next.version(), Some(index + 1), "the batch took one index");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_batch_is_answered_again_not_applied_again() {
    let dir = tempfile::tempdir().unwrap();
    let (node, address) = single_node(dir.path(), None).await;
    let body = json!({"ops": [
        {"op": "incr", "key": "n"},
        {"op": "incr", "key": "n"},
        {"op": "put", "key": "once", "value": "1", "if_none_match": true},
    ]});
    let first = batch(&address, &session(4, 1), &body).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let retry = batch(&address, &session(4, 1), &body).await;
    assert_eq!(
        (retry.status, retry.duplicate),
        (StatusCode::OK, Some(true))
    );
    let (mut original, repeated) = (json_of(&first), json_of(&retry));
    assert_eq!(repeated["duplicate"], json!(true));
    original["duplicate"] = json!(true);
    assert_eq!(
        repeated, original,
        "the recorded results, create-only put included"
    );
    assert_eq!(
        call(&address, Method::GET, "/kv/n", &[], "").await.text(),
        "2"
    );
    // The next request id of the session is a new batch.
    let next = batch(&address, &session(4, 2), &body).await;
    let results = json_of(&next)["results"].clone();
    assert_eq!(results[1]["value"], json!(4));
    assert_eq!(results[2]["status"], json!(412));
    // A single write retried with the batch's ids: not a batch's answer.
    let confused = call(&address, Method::POST, "/kv/n/incr", &session(4, 2), "").await;
    assert_eq!(confused.status, StatusCode::CONFLICT);
    node.shutdown().await;
}

/// A batch whose answer is over the session table's bound (64 KiB of the stored, compact
/// results: nine bytes per incr) is answered in full once; a retry learns that it was
/// applied, and where, but not its answer: `409` with `raft-answer-lost`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_of_a_batch_with_a_large_answer_learns_it_was_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    let (node, address) = single_node(dir.path(), None).await;
    let ops: Vec<Value> = (0..raft_kv::api::MAX_BATCH_OPS)
        .map(|i| json!({"op": "incr", "key": format!("k{i}")}))
        .collect();
    let body = json!({ "ops": ops });
    let first = batch(&address, &session(9, 1), &body).await;
    assert_eq!(first.status, StatusCode::OK);
    let applied_at = first.index.expect("the index it was applied at");
    let retry = batch(&address, &session(9, 1), &body).await;
    assert_eq!(
        (retry.status, retry.duplicate),
        (StatusCode::CONFLICT, None),
        "{:.200}",
        retry.text()
    );
    assert_eq!(retry.answer_lost, Some(applied_at));
    assert!(
        retry.text().contains("too large to keep"),
        "{}",
        retry.text()
    );
    // Applied once.
    let k0 = call(&address, Method::GET, "/kv/k0", &[], "").await;
    assert_eq!(k0.text(), "1");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_outside_the_limits_are_refused_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let (node, address) = single_node(dir.path(), None).await;
    let incr = json!({"op": "incr", "key": "n"});
    let too_many = json!({"ops": vec![incr.clone(); raft_kv::api::MAX_BATCH_OPS + 1]});
    let long_value = json!({"ops": [{"op": "put", "key": "k", "value": "v".repeat(65)}]});
    let cases: Vec<(Bytes, StatusCode)> = vec![
        (Bytes::from_static(br#"{"ops":[]}"#), StatusCode::BAD_REQUEST),
        (Bytes::from_static(b"{\"ops\":[{"), StatusCode::BAD_REQUEST),
        (Bytes::from_static(b"not json"), StatusCode::BAD_REQUEST),
        (
            Bytes::from_static(br#"{"ops":[{"op":"put","key":"k"}]}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            Bytes::from_static(br#"{"ops":[{"op":"nop","key":"k"}]}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            Bytes::from_static(
                br#"{"ops":[{"op":"put","key":"k","value":"v","if_match":1,"if_none_match":true}]}"#,
            ),
            StatusCode::BAD_REQUEST,
        ),
        (
            Bytes::from(serde_json::to_vec(&too_many).unwrap()),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            Bytes::from(serde_json::to_vec(&long_value).unwrap()),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (Bytes::from(vec![b' '; (1 << 20) + 1]), StatusCode::PAYLOAD_TOO_LARGE),
    ];
    for (body, expected) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        let answer = call(&address, Method::POST, "/kv", &[], body).await;
        assert_eq!(answer.status, expected, "{shown}: {}", answer.text());
        assert!(!answer.text().is_empty(), "{shown} explains itself");
    }
    // A body over the limit is answered 413 every time, never with a reset connection (the
    // server reads and drops one of up to twice the limit before it answers and closes).
    for _ in 0..20 {
        let over = Bytes::from(vec![b' '; (1 << 20) + 4096]);
        let answer = call(&address, Method::POST, "/kv", &[], over).await;
        assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    }
    let get = call(&address, Method::GET, "/kv", &[], "").await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    // Nothing was applied; the most operations allowed are.
    assert_eq!(
        call(&address, Method::GET, "/kv/n", &[], "").await.status,
        StatusCode::NOT_FOUND
    );
    let most = json!({"ops": vec![incr; raft_kv::api::MAX_BATCH_OPS]});
    let answer = batch(&address, &[], &most).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        call(&address, Method::GET, "/kv/n", &[], "").await.text(),
        raft_kv::api::MAX_BATCH_OPS.to_string()
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_a_write_that_needs_the_api_token() {
    let dir = tempfile::tempdir().unwrap();
    let (node, address) = single_node(dir.path(), Some("sesame")).await;
    let body = json!({"ops": [{"op": "put", "key": "k", "value": "v"}]});
    let refused = batch(&address, &[], &body).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let allowed = batch(
        &address,
        &[("authorization", "Bearer sesame".to_owned())],
        &body,
    )
    .await;
    assert_eq!(allowed.status, StatusCode::OK);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_redirects_a_batch_to_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let (nodes, addresses) = start_cluster(dir.path(), 3, |_| {}).await;
    let leader = wait_for_leader(&addresses).await;
    let follower = addresses.iter().find(|a| **a != leader).unwrap();
    let body = json!({"ops": [{"op": "put", "key": "k", "value": "v"}]});
    let redirected = batch(follower, &session(1, 1), &body).await;
    assert_eq!(redirected.status, StatusCode::TEMPORARY_REDIRECT);
    let location = redirected.location.unwrap();
    assert_eq!(location, format!("http://{leader}/kv"));
    let applied = batch(&authority(&location), &session(1, 1), &body).await;
    assert_eq!(applied.status, StatusCode::OK, "{}", applied.text());
    for node in nodes {
        node.shutdown().await;
    }
}
