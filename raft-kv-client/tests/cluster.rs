//! The client against real raft-kv nodes in this process: every call over HTTP/2 and
//! HTTP/1.1, redirects from a follower, many writers sharing one client, the API token, and a
//! leader stopped under a stream of increments that still count once each.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use common::Cluster;
use raft_kv_client::{Client, Consistency, Error, Protocol};

async fn exercise_every_single_key_call(client: &Client) {
    let put = client.put("a/b", "hello").await.unwrap();
    assert!(!put.duplicate);
    let read = client.get("a/b").await.unwrap();
    assert_eq!(read.value, "hello");
    for consistency in [
        Consistency::Linearizable,
        Consistency::Follower,
        Consistency::Lease,
        Consistency::Stale,
    ] {
        let read = client.get_with("a/b", consistency).await.unwrap();
        assert_eq!(read.value, "hello", "{consistency:?}");
    }
    // Keys are bytes: anything goes, one path segment each.
    let odd: &[u8] = b"sp ace/%2F?#\xff";
    client.put(odd, &b"\x00binary\xff"[..]).await.unwrap();
    assert_eq!(client.get(odd).await.unwrap().value, &b"\x00binary\xff"[..]);

    for expected in 1..=3 {
        let incr = client.incr("n").await.unwrap();
        assert_eq!((incr.value, incr.duplicate), (expected, false));
    }
    assert_eq!(client.get("n").await.unwrap().value, "3");
    match client.incr("a/b").await {
        Err(Error::Rejected {
            status: 409,
            message,
        }) => assert!(!message.is_empty()),
        other => panic!("an incr of text: {other:?}"),
    }

    let deleted = client.delete("a/b").await.unwrap();
    assert!(deleted.version > put.version);
    assert!(matches!(client.get("a/b").await, Err(Error::NotFound)));
    // Deleting an absent key succeeds.
    client.delete("a/b").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_put_delete_and_incr_work_over_http2() {
    let cluster = Cluster::start(1, |_| {}).await;
    let client = cluster.client();
    exercise_every_single_key_call(&client).await;
    assert_eq!(client.leader().as_deref(), Some(cluster.urls[0].as_str()));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_put_delete_and_incr_work_over_http1() {
    let cluster = Cluster::start(1, |_| {}).await;
    let client = cluster
        .client_builder()
        .protocol(Protocol::Http1)
        .build()
        .unwrap();
    exercise_every_single_key_call(&client).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_from_one_client_each_count_once() {
    let cluster = Cluster::start(1, |_| {}).await;
    for protocol in [Protocol::Http2, Protocol::Http1] {
        let client = cluster.client_builder().protocol(protocol).build().unwrap();
        let key = format!("hits-{protocol:?}");
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let (client, key) = (client.clone(), key.clone());
                tokio::spawn(async move { client.incr(&key).await.unwrap().value })
            })
            .collect();
        let mut values = Vec::new();
        for task in tasks {
            values.push(task.await.unwrap());
        }
        values.sort_unstable();
        assert_eq!(values, (1..=64).collect::<Vec<i64>>(), "{protocol:?}");
        assert_eq!(client.get(&key).await.unwrap().value, "64");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_given_only_a_follower_is_redirected_to_the_leader_and_remembers_it() {
    let cluster = Cluster::start(3, |_| {}).await;
    let leader = cluster.wait_for_leader().await;
    let follower = (leader + 1) % 3;
    let client = Client::builder([cluster.urls[follower].clone()])
        .build()
        .unwrap();
    assert_eq!(client.leader(), None);
    let written = client.put("k", "v").await.unwrap();
    assert_eq!(
        client.leader().as_deref(),
        Some(cluster.urls[leader].as_str())
    );
    let read = client.get("k").await.unwrap();
    assert_eq!(
        (read.value.as_ref(), read.version),
        (&b"v"[..], Some(written.version))
    );
    // Lease reads need the leader too; follower and stale reads are served where they land.
    for consistency in [
        Consistency::Lease,
        Consistency::Follower,
        Consistency::Stale,
    ] {
        let mut value = None;
        for _ in 0..100 {
            match client.get_with("k", consistency).await {
                Ok(read) => {
                    value = Some(read.value);
                    break;
                }
                // A stale read on a follower that has not applied the put yet.
                Err(Error::NotFound) if consistency == Consistency::Stale => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(error) => panic!("{consistency:?}: {error}"),
            }
        }
        assert_eq!(value.as_deref(), Some(&b"v"[..]), "{consistency:?}");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increments_through_a_leader_failover_each_count_exactly_once() {
    let mut cluster = Cluster::start(3, |_| {}).await;
    let leader = cluster.wait_for_leader().await;
    let client = cluster
        .client_builder()
        .request_timeout(Duration::from_secs(3))
        .deadline(Duration::from_secs(60))
        .build()
        .unwrap();
    let done = Arc::new(AtomicI64::new(0));
    let writer = {
        let (client, done) = (client.clone(), done.clone());
        tokio::spawn(async move {
            let mut values = Vec::new();
            for _ in 0..60 {
                let incr = client.incr("counter").await.unwrap();
                done.store(incr.value, Ordering::SeqCst);
                values.push(incr.value);
            }
            values
        })
    };
    while done.load(Ordering::SeqCst) < 20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The leader stops while increments are in flight; they move to the new leader.
    cluster.stop(leader).await;
    let values = writer.await.unwrap();
    // One task, one increment at a time: a retry applied twice would skip a number.
    assert_eq!(values, (1..=60).collect::<Vec<i64>>());
    let new_leader = cluster.wait_for_leader().await;
    assert_ne!(new_leader, leader);
    assert_eq!(client.get("counter").await.unwrap().value, "60");
    assert_eq!(
        client.leader().as_deref(),
        Some(cluster.urls[new_leader].as_str())
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_with_a_wrong_or_missing_token_are_unauthorized() {
    let cluster = Cluster::start(1, |options| {
        options.api_token = Some("right-token".to_owned());
    })
    .await;
    let wrong = cluster
        .client_builder()
        .api_token("wrong-token")
        .build()
        .unwrap();
    match wrong.put("k", "v").await {
        Err(Error::Unauthorized { message }) => assert!(message.contains("Bearer")),
        other => panic!("a wrong token: {other:?}"),
    }
    assert!(matches!(
        cluster.client().incr("n").await,
        Err(Error::Unauthorized { .. })
    ));
    let right = cluster
        .client_builder()
        .api_token("right-token")
        .build()
        .unwrap();
    right.put("k", "v").await.unwrap();
    // Reads stay open.
    assert_eq!(wrong.get("k").await.unwrap().value, "v");
    cluster.shutdown().await;
}
