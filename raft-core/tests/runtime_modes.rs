//! The three return modes, parallel log appending, reads and getters.

use std::time::Duration;

use bytes::Bytes;
use raft_core::engine::RoleKind;
use raft_core::testing::{Cluster, MemKv, NodeFactory, test_config};
use raft_core::{Error, LogIndex, NodeId};
use tokio::sync::oneshot;

#[tokio::test(start_paused = true)]
async fn blocking_append_resolves_with_commit_results_in_order() {
    let cluster = Cluster::start(3, test_config()).await;
    let leader = cluster.node(cluster.wait_for_leader().await);
    leader.append(vec![MemKv::put("a", "1")]).await.unwrap();
    let appended = leader
        .append(vec![
            MemKv::put("a", "2"),
            MemKv::put("b", "1"),
            MemKv::delete("a"),
        ])
        .await
        .unwrap();
    // A put returns the previous value, a delete the removed one.
    assert_eq!(
        appended.results,
        vec![Bytes::from("1"), Bytes::new(), Bytes::from("2")]
    );
    let indexes: Vec<LogIndex> = appended.entries().map(|(info, _)| info.index).collect();
    assert_eq!(indexes, [LogIndex(3), LogIndex(4), LogIndex(5)]);
    assert_eq!(appended.first.term, leader.term());
    assert!(leader.applied_index() >= LogIndex(5));
}

#[tokio::test(start_paused = true)]
async fn async_handler_returns_the_position_first_and_the_result_later() {
    let cluster = Cluster::start(3, test_config()).await;
    let leader = cluster.node(cluster.wait_for_leader().await);
    let pending = leader
        .append_async(vec![MemKv::put("k", "v"), MemKv::put("k", "w")])
        .await
        .unwrap();
    assert_eq!(pending.first.index, LogIndex(2));
    assert_eq!(pending.count, 2);
    let appended = pending.result().await.unwrap();
    assert_eq!(appended.results, vec![Bytes::new(), Bytes::from("v")]);

    // A dropped result future changes nothing: the command still commits.
    let dropped = leader
        .append_async(vec![MemKv::put("dropped", "1")])
        .await
        .unwrap();
    let index = dropped.first.index;
    drop(dropped);
    cluster.wait_applied(index).await;
    assert_eq!(
        cluster.state_machines[&leader.id()].get(b"dropped"),
        Some(Bytes::from("1"))
    );

    // The callback variant.
    let (sender, receiver) = oneshot::channel();
    let first = leader
        .append_with_callback(vec![MemKv::put("cb", "1")], move |result| {
            let _ = sender.send(result);
        })
        .await
        .unwrap();
    let appended = receiver.await.unwrap().unwrap();
    assert_eq!(appended.first, first);
}

#[tokio::test(start_paused = true)]
async fn follower_refuses_appends_and_reads_with_the_leaders_address() {
    let cluster = Cluster::start(3, test_config()).await;
    let leader = cluster.wait_for_leader().await;
    let follower = cluster.others(leader)[0];
    let node = cluster.node(follower);
    for error in [
        node.append(vec![MemKv::put("k", "v")]).await.unwrap_err(),
        node.linearizable_read().await.unwrap_err(),
        node.append_async(vec![MemKv::put("k", "v")])
            .await
            .unwrap_err(),
    ] {
        match error {
            Error::NotLeader { leader: Some(hint) } => {
                assert_eq!(hint.id, leader);
                assert_eq!(hint.address, cluster.factory.address(leader));
            }
            other => panic!("expected NotLeader, got {other:?}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn linearizable_read_waits_until_the_write_before_it_is_applied() {
    let cluster = Cluster::start(3, test_config()).await;
    let id = cluster.wait_for_leader().await;
    let leader = cluster.node(id);
    let appended = leader.append(vec![MemKv::put("x", "1")]).await.unwrap();
    let read_index = leader.linearizable_read().await.unwrap();
    assert!(read_index >= appended.first.index);
    assert!(leader.applied_index() >= read_index);
    assert_eq!(
        cluster.state_machines[&id].get(b"x"),
        Some(Bytes::from("1"))
    );
}

#[tokio::test(start_paused = true)]
async fn isolated_leader_cannot_serve_a_linearizable_read() {
    let cluster = Cluster::start(3, test_config()).await;
    let id = cluster.wait_for_leader().await;
    let leader = cluster.node(id);
    cluster.network.isolate(id);
    let read = tokio::time::timeout(Duration::from_secs(5), leader.linearizable_read())
        .await
        .expect("the read is answered once the leader steps down");
    assert!(matches!(read, Err(Error::NotLeader { .. })), "{read:?}");
}

#[tokio::test(start_paused = true)]
async fn leader_commits_while_its_own_disk_write_is_in_flight() {
    let cluster = Cluster::start(3, test_config()).await;
    let id = cluster.wait_for_leader().await;
    let leader = cluster.node(id);
    leader.append(vec![MemKv::put("warm", "up")]).await.unwrap();
    let store = &cluster.stores[&id];
    store.set_sync_delay(Duration::from_millis(500));

    let started = tokio::time::Instant::now();
    let appended = leader.append(vec![MemKv::put("k", "v")]).await.unwrap();
    // Committed by the two followers' durable copies before the leader's own fsync finished.
    assert!(started.elapsed() < Duration::from_millis(500));
    assert!(store.durable_index() < appended.first.index);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(store.durable_index() >= appended.first.index);
}

#[tokio::test(start_paused = true)]
async fn getters_report_the_cluster_state_without_the_loop() {
    let cluster = Cluster::start(3, test_config()).await;
    let id = cluster.wait_for_leader().await;
    let leader = cluster.node(id);
    leader.append(vec![MemKv::put("k", "v")]).await.unwrap();
    cluster.wait_applied(LogIndex(2)).await;
    for node in cluster.running() {
        let status = node.status();
        assert_eq!(status.leader, Some(id));
        assert_eq!(status.term, leader.term());
        assert!(status.running);
        assert_eq!(node.is_leader(), node.id() == id);
        assert_eq!(
            node.role(),
            if node.id() == id {
                RoleKind::Leader
            } else {
                RoleKind::Follower
            }
        );
        assert_eq!(
            node.address_of(NodeId(2)),
            Some(cluster.factory.address(NodeId(2)))
        );
    }
    assert!(leader.commit_index() >= LogIndex(2));
}

#[tokio::test(start_paused = true)]
async fn leadership_transfer_hands_over_to_the_chosen_follower() {
    let cluster = Cluster::start(3, test_config()).await;
    let old = cluster.wait_for_leader().await;
    let target = cluster.others(old)[0];
    cluster.node(old).transfer_leadership(target).unwrap();
    for _ in 0..200 {
        if cluster.node(target).is_leader() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(cluster.node(target).is_leader());
    let appended = cluster
        .node(target)
        .append(vec![MemKv::put("k", "v")])
        .await
        .unwrap();
    cluster.wait_applied(appended.first.index).await;
}
