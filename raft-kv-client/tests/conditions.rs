//! Versions, conditional writes and batches against a real node: compare-and-set, create-only,
//! conditional delete and incr, and batches with an outcome per operation; a conditional write
//! or a batch whose answer was lost is answered from the record on retry, not applied again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Cluster;
use common::proxy::{Fault, Proxy};
use raft_kv_client::{Batch, Client, Condition, Error, MAX_BATCH_OPS, OpOutcome};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_writes_report_the_version_of_the_last_write() {
    let cluster = Cluster::start(1, |_| {}).await;
    let client = cluster.client();
    let first = client.put("k", "1").await.unwrap();
    let read = client.get("k").await.unwrap();
    assert_eq!(read.version, Some(first.version));
    let second = client.put("k", "2").await.unwrap();
    assert!(second.version > first.version);
    assert_eq!(client.get("k").await.unwrap().version, Some(second.version));
    let incr = client.incr("n").await.unwrap();
    assert_eq!(client.get("n").await.unwrap().version, Some(incr.version));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_and_set_applies_only_at_the_expected_version() {
    let cluster = Cluster::start(1, |_| {}).await;
    let client = cluster.client();
    let v1 = client.put("k", "a").await.unwrap().version;
    let v2 = client
        .put_if("k", "b", Condition::Version(v1))
        .await
        .unwrap()
        .version;
    assert!(v2 > v1);
    // The same expected version again: someone (we) wrote since.
    match client.put_if("k", "c", Condition::Version(v1)).await {
        Err(Error::PreconditionFailed { current }) => assert_eq!(current, Some(v2)),
        other => panic!("{other:?}"),
    }
    assert_eq!(client.get("k").await.unwrap().value, "b");

    // Create-only.
    client.put_if("new", "x", Condition::Absent).await.unwrap();
    match client.put_if("new", "y", Condition::Absent).await {
        Err(Error::PreconditionFailed { current: Some(_) }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(client.get("new").await.unwrap().value, "x");

    // A version on an absent key never matches.
    assert!(matches!(
        client.put_if("absent", "z", Condition::Version(v2)).await,
        Err(Error::PreconditionFailed { current: None })
    ));
    assert!(matches!(client.get("absent").await, Err(Error::NotFound)));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_delete_and_incr_check_the_version() {
    let cluster = Cluster::start(1, |_| {}).await;
    let client = cluster.client();
    let v = client.incr("n").await.unwrap().version;
    match client.incr_if("n", v + 1000).await {
        Err(Error::PreconditionFailed { current }) => assert_eq!(current, Some(v)),
        other => panic!("{other:?}"),
    }
    let incr = client.incr_if("n", v).await.unwrap();
    assert_eq!(incr.value, 2);
    assert!(matches!(
        client.delete_if("n", v).await,
        Err(Error::PreconditionFailed { current: Some(current) }) if current == incr.version
    ));
    client.delete_if("n", incr.version).await.unwrap();
    assert!(matches!(client.get("n").await, Err(Error::NotFound)));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compare_and_set_whose_answer_is_lost_succeeds_once_on_retry() {
    let cluster = Cluster::start(1, |_| {}).await;
    let proxy = Proxy::start(&cluster.urls[0], "/kv/k").await;
    let client = Client::new([proxy.url.clone()]).unwrap();
    let v1 = client.put("k", "a").await.unwrap().version;
    // Applied, answer lost: the retry must not fail its own precondition (the key is at the
    // version the first attempt wrote), it gets the recorded success.
    proxy.inject(&[Fault::Drop]);
    let written = client
        .put_if("k", "b", Condition::Version(v1))
        .await
        .unwrap();
    assert!(written.duplicate);
    let read = client.get("k").await.unwrap();
    assert_eq!(
        (read.value.as_ref(), read.version),
        (&b"b"[..], Some(written.version))
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_applies_its_operations_in_one_entry_with_an_outcome_each() {
    let cluster = Cluster::start(1, |_| {}).await;
    let client = cluster.client();
    let b = client.put("b", "old").await.unwrap().version;
    client.put("c", "exists").await.unwrap();
    client.put("text", "not a number").await.unwrap();
    let batch = Batch::new()
        .put("a", "text")
        .delete_if("b", b + 1000)
        .put_if_absent("c", "x")
        .incr("n")
        .incr("text")
        .delete_if("b", b);
    let outcome = client.batch(&batch).await.unwrap();
    assert!(!outcome.duplicate);
    assert!(!outcome.all_applied());
    let index = outcome.index;
    let results = &outcome.results;
    assert_eq!(results.len(), 6);
    assert_eq!(
        results[0],
        OpOutcome::Applied {
            version: index,
            value: None
        }
    );
    assert_eq!(
        results[1],
        OpOutcome::PreconditionFailed { current: Some(b) }
    );
    assert!(matches!(
        results[2],
        OpOutcome::PreconditionFailed { current: Some(_) }
    ));
    assert_eq!(
        results[3],
        OpOutcome::Applied {
            version: index,
            value: Some(1)
        }
    );
    assert!(
        matches!(&results[4], OpOutcome::Refused { status, message } if *status >= 400 && !message.is_empty())
    );
    assert!(matches!(results[5], OpOutcome::Applied { .. }));

    let a = client.get("a").await.unwrap();
    assert_eq!((a.value.as_ref(), a.version), (&b"text"[..], Some(index)));
    assert_eq!(client.get("c").await.unwrap().value, "exists");
    assert_eq!(client.get("n").await.unwrap().value, "1");
    assert!(matches!(client.get("b").await, Err(Error::NotFound)));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_answer_is_lost_is_applied_once() {
    let cluster = Cluster::start(1, |_| {}).await;
    let proxy = Proxy::start(&cluster.urls[0], "/kv").await;
    let client = Client::new([proxy.url.clone()]).unwrap();
    proxy.inject(&[Fault::GatewayTimeout]);
    let outcome = client
        .batch(&Batch::new().incr("n").incr("n").put("k", "v"))
        .await
        .unwrap();
    assert!(outcome.duplicate);
    assert!(outcome.all_applied());
    assert_eq!(
        outcome.results[1],
        OpOutcome::Applied {
            version: outcome.index,
            value: Some(2)
        }
    );
    assert_eq!(client.get("n").await.unwrap().value, "2");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_and_oversized_batches_are_rejected() {
    let cluster = Cluster::start(1, |_| {}).await;
    let client = cluster.client();
    assert!(matches!(
        client.batch(&Batch::new()).await,
        Err(Error::Rejected { status: 400, .. })
    ));
    let mut huge = Batch::new();
    for i in 0..=MAX_BATCH_OPS {
        huge = huge.put(format!("k{i}"), "v");
    }
    assert!(matches!(
        client.batch(&huge).await,
        Err(Error::Rejected { status: 413, .. })
    ));
    assert!(matches!(client.get("k0").await, Err(Error::NotFound)));
    cluster.shutdown().await;
}
