//! Exactly-once client requests across leader changes, retries, clears and evictions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Cluster, ReplicaCluster, Replicas, decode_value, test_config};
use raft_core::testing::NodeFactory;
use raft_wrapper::{ClientId, Error, RequestId};

const C1: ClientId = ClientId(0xC1);

#[tokio::test(start_paused = true)]
async fn retry_after_leader_failover_applies_once_on_every_replica() {
    let mut cluster = Cluster::start_with(Replicas, 3, test_config()).await;
    let leader = cluster.wait_for_leader().await;

    let first = cluster.submit(C1, RequestId(1), "hits").await;
    assert_eq!(decode_value(&first.result), 1);
    let second = cluster.submit(C1, RequestId(2), "hits").await;
    assert_eq!(decode_value(&second.result), 2);
    assert!(!second.duplicate);
    cluster.wait_converged().await;

    // The leader dies right after answering; the client never saw the answer and retries.
    cluster.stop_node(leader).await;
    let new_leader = cluster.wait_for_leader_among(&cluster.others(leader)).await;
    assert_ne!(new_leader, leader);
    let retry = cluster.submit(C1, RequestId(2), "hits").await;
    assert!(retry.duplicate, "the retry is recognised on the new leader");
    assert_eq!(retry.index, second.index);
    assert_eq!(decode_value(&retry.result), 2, "the original answer");

    let third = cluster.submit(C1, RequestId(3), "hits").await;
    assert!(!third.duplicate);
    assert_eq!(decode_value(&third.result), 3);

    cluster.start_node(leader).await;
    cluster.wait_converged().await;
    for (id, counters) in &cluster.state_machines {
        assert_eq!(counters.value("hits"), 3, "node {id}");
        counters.assert_in_order();
    }
}

#[tokio::test(start_paused = true)]
async fn request_cut_off_from_the_cluster_is_applied_once_after_retry() {
    let cluster = Cluster::start_with(Replicas, 3, test_config()).await;
    let leader = cluster.wait_for_leader().await;
    cluster.submit(C1, RequestId(1), "hits").await;

    // The leader appends the request but cannot replicate it: the outcome is unknown.
    cluster.network.isolate(leader);
    let cut_off = cluster
        .replica(leader)
        .submit_timeout(
            C1,
            RequestId(2),
            Bytes::from_static(b"hits"),
            Duration::from_secs(1),
        )
        .await;
    assert!(
        matches!(cut_off, Err(Error::Timeout | Error::Discarded)),
        "{cut_off:?}"
    );
    cluster.network.heal();

    // Retried wherever the leader now is: applied exactly once, whatever happened to the first.
    let retry = cluster.submit(C1, RequestId(2), "hits").await;
    assert_eq!(decode_value(&retry.result), 2);
    cluster.wait_converged().await;
    for (id, counters) in &cluster.state_machines {
        assert_eq!(counters.value("hits"), 2, "node {id}");
    }
}

#[tokio::test(start_paused = true)]
async fn retry_gets_duplicate_flag_and_original_result_on_the_same_leader() {
    let cluster = Cluster::start_with(Replicas, 3, test_config()).await;
    cluster.wait_for_leader().await;
    let first = cluster.submit(C1, RequestId(10), "a").await;
    let again = cluster.submit(C1, RequestId(10), "a").await;
    let and_again = cluster.submit(C1, RequestId(10), "a").await;
    assert!(!first.duplicate);
    assert!(again.duplicate && and_again.duplicate);
    assert_eq!(again, and_again);
    assert_eq!((again.index, &again.result), (first.index, &first.result));
    cluster.wait_converged().await;
    for counters in cluster.state_machines.values() {
        assert_eq!(counters.value("a"), 1);
    }
}

#[tokio::test(start_paused = true)]
async fn older_request_id_without_a_kept_result_is_refused() {
    let mut config = test_config();
    config.sessions.results_per_client = 2;
    let cluster = Cluster::start_with(Replicas, 3, config).await;
    cluster.wait_for_leader().await;
    for request in 1..=4 {
        cluster.submit(C1, RequestId(request), "a").await;
    }
    let leader = cluster.wait_for_leader().await;
    let old = cluster
        .replica(leader)
        .submit(C1, RequestId(1), Bytes::from_static(b"a"))
        .await;
    match old {
        Err(Error::StaleRequest {
            client,
            request,
            latest,
        }) => {
            assert_eq!((client, request, latest), (C1, RequestId(1), RequestId(4)));
        }
        other => panic!("expected StaleRequest, got {other:?}"),
    }
    // Still kept: the result of the one before the latest.
    let kept = cluster.submit(C1, RequestId(3), "a").await;
    assert!(kept.duplicate);
    assert_eq!(decode_value(&kept.result), 3);
    cluster.wait_converged().await;
    for counters in cluster.state_machines.values() {
        assert_eq!(counters.value("a"), 4);
    }
}

#[tokio::test(start_paused = true)]
async fn request_id_zero_is_invalid() {
    let cluster = Cluster::start_with(Replicas, 1, test_config()).await;
    let leader = cluster.wait_for_leader().await;
    let answer = cluster
        .replica(leader)
        .submit(C1, RequestId(0), Bytes::from_static(b"a"))
        .await;
    assert!(
        matches!(answer, Err(Error::InvalidRequest(_))),
        "{answer:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn cleared_client_is_forgotten_on_every_replica() {
    let cluster = Cluster::start_with(Replicas, 3, test_config()).await;
    let leader = cluster.wait_for_leader().await;
    cluster.submit(C1, RequestId(5), "a").await;
    cluster.submit(ClientId(2), RequestId(1), "b").await;
    cluster.replica(leader).clear_client(C1).await.unwrap();
    cluster.wait_converged().await;
    for replica in cluster.replicas() {
        assert_eq!(replica.latest_request(C1), None);
        assert_eq!(replica.latest_request(ClientId(2)), Some(RequestId(1)));
        assert_eq!(replica.tracked_clients(), 1);
    }
    // A new session: the same ids are applied again.
    let again = cluster.submit(C1, RequestId(5), "a").await;
    assert!(!again.duplicate);
    assert_eq!(decode_value(&again.result), 2);
}

#[tokio::test(start_paused = true)]
async fn least_recently_active_session_is_evicted_identically_on_every_replica() {
    let mut config = test_config();
    config.sessions.max_clients = 2;
    config.sessions.results_per_client = 1;
    let cluster = Cluster::start_with(Replicas, 3, config).await;
    cluster.wait_for_leader().await;
    let (a, b, c) = (ClientId(1), ClientId(2), ClientId(3));
    cluster.submit(a, RequestId(1), "a").await;
    cluster.submit(b, RequestId(1), "b").await;
    // A retry counts as activity: b is now the least recently active.
    assert!(cluster.submit(a, RequestId(1), "a").await.duplicate);
    cluster.submit(c, RequestId(1), "c").await;
    cluster.wait_converged().await;
    for replica in cluster.replicas() {
        let id = replica.node().id();
        assert_eq!(replica.tracked_clients(), 2, "node {id}");
        assert_eq!(replica.latest_request(a), Some(RequestId(1)), "node {id}");
        assert_eq!(replica.latest_request(b), None, "node {id}");
        assert_eq!(replica.latest_request(c), Some(RequestId(1)), "node {id}");
    }
    // The documented cost of eviction: b's old request is no longer recognised.
    assert!(!cluster.submit(b, RequestId(1), "b").await.duplicate);
}

#[tokio::test(start_paused = true)]
async fn plain_commands_apply_every_time() {
    let cluster = Cluster::start_with(Replicas, 3, test_config()).await;
    let leader = cluster.wait_for_leader().await;
    let replica = cluster.replica(leader);
    let first = replica.execute(Bytes::from_static(b"p")).await.unwrap();
    let second = replica.execute(Bytes::from_static(b"p")).await.unwrap();
    assert_eq!(decode_value(&first.result), 1);
    assert_eq!(decode_value(&second.result), 2);
    assert!(!second.duplicate);
    assert_eq!(replica.tracked_clients(), 0);
}

#[tokio::test(start_paused = true)]
async fn follower_answers_not_leader_with_the_leader_hint() {
    let cluster = Cluster::start_with(Replicas, 3, test_config()).await;
    let leader = cluster.wait_for_leader().await;
    let follower = cluster.others(leader)[0];
    let answer = cluster
        .replica(follower)
        .submit(C1, RequestId(1), Bytes::from_static(b"a"))
        .await;
    match answer {
        Err(Error::NotLeader { leader: Some(hint) }) => {
            assert_eq!(hint.id, leader);
            assert_eq!(hint.address, cluster.factory.address(leader));
        }
        other => panic!("expected NotLeader with a hint, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn async_replication_is_refused_at_start() {
    let mut config = test_config();
    config.node.async_replication = true;
    let network = raft_core::testing::MemNetwork::new(1);
    let id = raft_core::NodeId(1);
    let started = raft_wrapper::Replica::start(
        id,
        [(id, "x")],
        config,
        raft_core::testing::MemLogStore::new().into_arc(),
        common::Counters::default().into_arc(),
        network.transport(id),
    )
    .await;
    assert!(matches!(
        started,
        Err(Error::Raft(raft_core::Error::Config(_)))
    ));
}
