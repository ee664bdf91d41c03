//! The retry helper on a real cluster: it rides out an election, gives up at its deadline when
//! no quorum exists (having backed off, not spun), and returns errors a retry cannot fix at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Cluster, ReplicaCluster, Replicas, decode_value, test_config};
use raft_wrapper::{ClientId, Error, RequestId, RetryPolicy, submit_with_retry};
use tokio::time::Instant;

const C1: ClientId = ClientId(0xC1);

fn hits() -> Bytes {
    Bytes::from_static(b"hits")
}

#[tokio::test(start_paused = true)]
async fn submit_during_an_election_succeeds_once_a_new_leader_is_elected_and_applies_once() {
    let mut cluster = Cluster::start_with(Replicas, 3, test_config()).await;
    let leader = cluster.wait_for_leader().await;
    // Every handle, the leader's included: it answers Shutdown once stopped.
    let replicas = cluster.replicas();

    cluster.stop_node(leader).await;
    assert_eq!(cluster.nodes().leader(), None, "an election must follow");
    let start = Instant::now();
    let applied = submit_with_retry(&replicas, C1, RequestId(1), hits(), &RetryPolicy::default())
        .await
        .unwrap();
    assert!(
        start.elapsed() > Duration::ZERO,
        "the helper waited for the election"
    );
    assert!(!applied.duplicate);
    assert_eq!(decode_value(&applied.result), 1);
    let new_leader = cluster.wait_for_leader_among(&cluster.others(leader)).await;
    assert_ne!(new_leader, leader);

    cluster.start_node(leader).await;
    cluster.wait_converged().await;
    for (id, counters) in &cluster.state_machines {
        assert_eq!(counters.value("hits"), 1, "node {id}");
        counters.assert_in_order();
    }
}

#[tokio::test(start_paused = true)]
async fn submit_to_an_isolated_leader_times_out_then_applies_once_at_the_new_leader() {
    let cluster = Cluster::start_with(Replicas, 3, test_config()).await;
    let leader = cluster.wait_for_leader().await;
    let replicas = cluster.replicas();

    // The first attempt goes to the cut-off leader (it still believes it leads) and gets no
    // answer; the helper moves on to the others and waits out their election.
    cluster.network.isolate(leader);
    let start = Instant::now();
    let applied = submit_with_retry(&replicas, C1, RequestId(1), hits(), &RetryPolicy::default())
        .await
        .unwrap();
    assert!(
        start.elapsed() >= test_config().submit_timeout,
        "the first attempt went to the cut-off leader and waited out its submit timeout"
    );
    assert_eq!(decode_value(&applied.result), 1);
    assert_ne!(
        cluster.wait_for_leader_among(&cluster.others(leader)).await,
        leader
    );

    cluster.network.heal();
    cluster.wait_converged().await;
    for (id, counters) in &cluster.state_machines {
        assert_eq!(counters.value("hits"), 1, "node {id}");
        counters.assert_in_order();
    }
}

#[tokio::test(start_paused = true)]
async fn without_a_quorum_the_helper_backs_off_and_gives_up_at_the_deadline_having_applied_nothing()
{
    let mut cluster = Cluster::start_with(Replicas, 3, test_config()).await;
    let leader = cluster.wait_for_leader().await;
    let replicas = cluster.replicas();
    let stopped = [leader, cluster.others(leader)[0]];
    for id in stopped {
        cluster.stop_node(id).await;
    }

    let mut policy = RetryPolicy::default();
    policy.deadline = Duration::from_secs(5);
    let start = Instant::now();
    let error = submit_with_retry(&replicas, C1, RequestId(1), hits(), &policy)
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), policy.deadline, "gave up at the deadline");
    let Error::RetriesExhausted {
        attempts,
        outcome_unknown,
        last,
    } = &error
    else {
        panic!("not the give-up error: {error:?}");
    };
    // Backing off from 10 ms to 500 ms makes about 15 attempts in 5 s; retrying at once would
    // make thousands (deadline / 1 ms = 5,000).
    assert!(
        (5..50).contains(attempts),
        "{attempts} attempts in {:?}",
        policy.deadline
    );
    assert!(
        !outcome_unknown && !error.is_outcome_unknown(),
        "every attempt was refused: {error}"
    );
    assert!(
        matches!(**last, Error::NotLeader { leader: None } | Error::Shutdown),
        "{last:?}"
    );
    assert!(!error.is_retryable());
    assert!(error.to_string().contains("nothing was applied"), "{error}");

    // Nothing was applied indeed: once a quorum is back, the same ids apply it, for the first
    // time.
    for id in stopped {
        cluster.start_node(id).await;
    }
    let applied = submit_with_retry(
        &cluster.replicas(),
        C1,
        RequestId(1),
        hits(),
        &RetryPolicy::default(),
    )
    .await
    .unwrap();
    assert!(!applied.duplicate);
    assert_eq!(decode_value(&applied.result), 1);
    cluster.wait_converged().await;
    for (id, counters) in &cluster.state_machines {
        assert_eq!(counters.value("hits"), 1, "node {id}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_error_that_is_not_retryable_is_returned_at_once() {
    let cluster = Cluster::start_with(Replicas, 3, test_config()).await;
    cluster.wait_for_leader().await;
    let replicas = cluster.replicas();
    // Any retry would show: the first wait alone is an hour.
    let mut policy = RetryPolicy::default();
    policy.deadline = Duration::from_secs(24 * 3600);
    policy.initial_backoff = Duration::from_secs(3600);
    policy.max_backoff = Duration::from_secs(3600);

    // Request 1's result is no longer kept after four newer ones (`results_per_client`).
    for request in 1..=5 {
        cluster.submit(C1, RequestId(request), "hits").await;
    }
    let start = Instant::now();
    let stale = submit_with_retry(&replicas, C1, RequestId(1), hits(), &policy).await;
    assert!(
        matches!(stale, Err(Error::StaleRequest { .. })),
        "{stale:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "no retry: {:?}",
        start.elapsed()
    );
    assert!(
        stale.unwrap_err().is_outcome_unknown(),
        "a stale request may have been applied"
    );

    let start = Instant::now();
    let invalid = submit_with_retry(&replicas, C1, RequestId(0), hits(), &policy).await;
    assert!(
        matches!(invalid, Err(Error::InvalidRequest(_))),
        "{invalid:?}"
    );
    assert_eq!(start.elapsed(), Duration::ZERO);
    let none = submit_with_retry(&[], C1, RequestId(6), hits(), &policy).await;
    assert!(matches!(none, Err(Error::InvalidRequest(_))), "{none:?}");

    cluster.wait_converged().await;
    for (id, counters) in &cluster.state_machines {
        assert_eq!(counters.value("hits"), 5, "node {id}");
    }
}
