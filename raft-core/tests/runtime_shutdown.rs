//! Shutdown answers every caller and joins every task; a storage failure stops the node.

use std::time::Duration;

use raft_core::message::{AppendEntries, RequestVote};
use raft_core::testing::{Cluster, MemKv, test_config};
use raft_core::{Error, NodeId, ServiceHandler};
use raft_core::{LogId, LogIndex, Term};

#[tokio::test(start_paused = true)]
async fn shutdown_answers_every_waiting_caller_and_the_node_restarts_from_its_log() {
    let mut cluster = Cluster::start(3, test_config()).await;
    let id = cluster.wait_for_leader().await;
    let leader = cluster.node(id);
    leader.append(vec![MemKv::put("kept", "1")]).await.unwrap();
    // Cut off from its followers, nothing more can commit: callers wait.
    cluster.network.isolate(id);
    let mut waiting = Vec::new();
    for i in 0..5 {
        let node = leader.clone();
        waiting.push(tokio::spawn(async move {
            node.append(vec![MemKv::put(format!("w{i}"), "1")])
                .await
                .map(|_| ())
        }));
    }
    let node = leader.clone();
    waiting.push(tokio::spawn(async move {
        node.linearizable_read().await.map(|_| ())
    }));
    tokio::time::sleep(Duration::from_millis(5)).await;

    tokio::time::timeout(Duration::from_secs(5), cluster.stop_node(id))
        .await
        .expect("shutdown completes");
    let read = waiting.pop().unwrap();
    for handle in waiting {
        let result = tokio::time::timeout(Duration::from_secs(1), handle)
            .await
            .expect("every writer is answered")
            .unwrap();
        // The writes are in the leader's log: their outcome is unknown, not "refused".
        assert!(matches!(result, Err(Error::Aborted)), "{result:?}");
    }
    let read = tokio::time::timeout(Duration::from_secs(1), read)
        .await
        .expect("the reader is answered")
        .unwrap();
    assert!(
        matches!(read, Err(Error::Shutdown | Error::NotLeader { .. })),
        "{read:?}"
    );
    // A stopped node refuses new calls at once.
    assert!(matches!(
        leader.append(vec![MemKv::put("late", "1")]).await,
        Err(Error::Shutdown)
    ));
    assert!(!leader.status().running);
    leader.shutdown().await; // a second shutdown is harmless

    cluster.network.heal();
    cluster.start_node(id).await;
    let new_leader = cluster.wait_for_leader().await;
    let commit = cluster.node(new_leader).commit_index();
    cluster.wait_applied(commit).await;
    assert_eq!(cluster.state_machines[&id].get(b"kept"), Some("1".into()));
    cluster.assert_replicas_agree();
}

#[tokio::test(start_paused = true)]
async fn failed_log_write_stops_the_leader_and_the_cluster_moves_on() {
    let cluster = Cluster::start(3, test_config()).await;
    let id = cluster.wait_for_leader().await;
    let leader = cluster.node(id);
    cluster.stores[&id].fail_writes(true);
    let result = leader.append(vec![MemKv::put("k", "v")]).await;
    // The failed write may or may not be in the log: its outcome is unknown.
    assert!(matches!(result, Err(Error::Aborted)), "{result:?}");
    let mut status = leader.watch_status();
    tokio::time::timeout(Duration::from_secs(5), status.wait_for(|s| !s.running))
        .await
        .expect("the node stops after a storage failure")
        .unwrap();
    assert!(matches!(
        leader.append(vec![MemKv::put("k", "v")]).await,
        Err(Error::Shutdown)
    ));
    let others = cluster.others(id);
    let new = cluster.wait_for_leader_among(&others).await;
    cluster
        .node(new)
        .append(vec![MemKv::put("after", "1")])
        .await
        .unwrap();
}

/// A node refuses requests that claim to come from itself (a misconfigured peer table or a
/// loop). Requests from nodes it does not know are handled by Raft's rules, since a new leader
/// can be unknown to a lagging follower; strangers are kept out by the transport (cluster id,
/// secret, TLS), and nodes removed from the cluster are refused (see `runtime_membership`).
#[tokio::test(start_paused = true)]
async fn requests_claiming_to_come_from_the_node_itself_are_refused() {
    let cluster = Cluster::start(3, test_config()).await;
    cluster.wait_for_leader().await;
    let node = cluster.node(NodeId(1));
    let append = node
        .append_entries(AppendEntries {
            term: Term(1_000),
            leader_id: NodeId(1),
            seq: 1,
            prev_log_id: LogId::ZERO,
            entries: Vec::new(),
            leader_commit: LogIndex::ZERO,
        })
        .await;
    assert!(matches!(append, Err(Error::Config(_))), "{append:?}");
    let vote = node
        .request_vote(RequestVote {
            term: Term(1_000),
            candidate_id: NodeId(1),
            last_log_id: LogId::ZERO,
            pre_vote: false,
            leadership_transfer: false,
        })
        .await;
    assert!(matches!(vote, Err(Error::Config(_))), "{vote:?}");
    assert!(
        node.term() < Term(1_000),
        "its own forged term is not adopted"
    );
}
