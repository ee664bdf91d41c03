//! raft-core clusters over mutual TLS on loopback, with certificates made at test time: they
//! elect, replicate, fail over and take a restarted node back; a follower that lost its data
//! catches up by snapshot chunks; `HttpNode` sets TLS up from three files; and a stranger's
//! forged AppendEntries with a high term is refused without touching the node's term, with or
//! without a TLS certificate of its own.

// Helpers of this test file: a broken one should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::tls::{Pki, TestCa, Validity};
use common::{CLUSTER, HttpNodes, append_request, client_config};
use raft_core::runtime::Node;
use raft_core::testing::{self, MemKv, MemLogStore, NodeFactory, test_config};
use raft_core::{Error, LogIndex, NodeId, Term, Transport};
use raft_http::tls::{ClientTls, ClientTlsFiles, node_name};
use raft_http::{HttpNode, HttpTransport, RequestError};
use tokio::net::TcpListener;

/// Writes `count` keys with `prefix` through the leader; returns the last index.
async fn write(leader: &Node, prefix: &str, count: usize) -> LogIndex {
    let mut last = LogIndex::ZERO;
    for i in 0..count {
        let command = MemKv::put(format!("{prefix}{i}"), format!("value {i}"));
        let appended = leader.append(vec![command]).await.expect("committed");
        last = appended.first.index;
    }
    last
}

/// The `RequestError` inside a transport error.
fn request_error(error: &Error) -> &RequestError {
    let Error::Transport { source, .. } = error else {
        panic!("not a transport error: {error:?}");
    };
    source
        .downcast_ref::<RequestError>()
        .expect("a RequestError")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutual_tls_cluster_replicates_fails_over_and_takes_a_restarted_node_back() {
    let pki = Pki::new(3);
    let mut cluster =
        testing::Cluster::start_with(HttpNodes::bind_tls(3, pki.clone()).await, 3, test_config())
            .await;
    let first_leader = cluster.wait_for_leader().await;
    let last = write(&cluster.node(first_leader), "a", 30).await;
    cluster.wait_applied(last).await;

    // The leader goes away (node and server); the others elect a new one over TLS.
    cluster.stop_node(first_leader).await;
    let second_leader = cluster.wait_for_leader().await;
    assert_ne!(second_leader, first_leader);
    let last = write(&cluster.node(second_leader), "b", 20).await;

    // The old leader comes back on the same address and certificate, and catches up.
    cluster.start_node(first_leader).await;
    cluster.wait_applied(last).await;
    let back = &cluster.state_machines[&first_leader];
    assert_eq!(back.get(b"b19").as_deref(), Some(&b"value 19"[..]));
    assert_eq!(back.get(b"a29").as_deref(), Some(&b"value 29"[..]));
    cluster.assert_replicas_agree();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_lost_its_data_catches_up_by_snapshot_chunks_over_tls() {
    let mut config = test_config();
    config.raft.snapshot_entries = 50;
    config.raft.snapshot_keep_entries = 5;
    // Small chunks: the snapshot of ~150 keys takes dozens of requests.
    config.raft.snapshot_chunk_bytes = 512;
    let pki = Pki::new(3);
    let mut cluster =
        testing::Cluster::start_with(HttpNodes::bind_tls(3, pki.clone()).await, 3, config).await;
    let leader_id = cluster.wait_for_leader().await;
    let leader = cluster.node(leader_id);
    let last = write(&leader, "k", 150).await;
    cluster.wait_applied(last).await;
    assert!(leader.status().log_base_index > LogIndex(50), "compacted");

    let follower = cluster.others(leader_id)[0];
    cluster.stop_node(follower).await;
    cluster.stores.insert(follower, MemLogStore::new());
    cluster.start_node(follower).await;
    let last = write(&leader, "after", 5).await;
    cluster.wait_applied(last).await;
    let back = &cluster.state_machines[&follower];
    assert!(!back.restored_from().is_empty(), "installed a snapshot");
    assert_eq!(back.dump(), cluster.state_machines[&leader_id].dump());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_append_entries_from_a_stranger_is_refused_and_changes_no_term() {
    let pki = Pki::new(3);
    let cluster =
        testing::Cluster::start_with(HttpNodes::bind_tls(3, pki.clone()).await, 3, test_config())
            .await;
    let leader = cluster.wait_for_leader().await;
    let target = cluster.others(leader)[0];
    let address = cluster.factory.address(target);
    let term_before = cluster.node(target).status().term;
    let forged = || {
        let mut request = append_request(1, 1);
        request.term = Term(term_before.0 + 1000);
        request.leader_id = leader;
        request
    };

    // 1. Plaintext, with the right cluster id and secret: the TLS port closes on it.
    let plaintext = HttpTransport::new([(target, address.clone())], client_config()).unwrap();
    let error = plaintext
        .append_entries(target, forged())
        .await
        .unwrap_err();
    assert!(
        matches!(request_error(&error), RequestError::Tls { .. }),
        "{error}"
    );

    // 2. TLS trusting the cluster's CA, without a client certificate: the handshake is refused.
    let mut no_certificate = client_config();
    no_certificate.tls = Some(ClientTls::load(ClientTlsFiles::new(pki.path("ca.pem"))).unwrap());
    let anonymous = HttpTransport::new([(target, address.clone())], no_certificate).unwrap();
    let error = anonymous
        .append_entries(target, forged())
        .await
        .unwrap_err();
    assert!(
        matches!(request_error(&error), RequestError::Tls { .. }),
        "{error}"
    );

    // 3. A certificate naming the leader, from a CA of the stranger's own.
    let stranger_ca = TestCa::new("stranger CA");
    let stranger = pki.path("stranger");
    std::fs::create_dir_all(&stranger).unwrap();
    let issued = stranger_ca.issue(&[node_name(CLUSTER, leader)], Validity::Current);
    common::tls::write(&stranger.join("leader.pem"), &issued.certificate);
    common::tls::write(&stranger.join("leader.key"), &issued.key);
    let mut foreign = client_config();
    foreign.tls = Some(
        ClientTls::load(
            ClientTlsFiles::new(pki.path("ca.pem"))
                .with_certificate(stranger.join("leader.pem"), stranger.join("leader.key")),
        )
        .unwrap(),
    );
    let foreign = HttpTransport::new([(target, address.clone())], foreign).unwrap();
    let error = foreign.append_entries(target, forged()).await.unwrap_err();
    assert!(
        matches!(request_error(&error), RequestError::Tls { .. }),
        "{error}"
    );

    // 4. A member's own valid certificate, claiming to be the leader: refused before the node.
    let other = cluster.others(leader)[1];
    let member = HttpTransport::new([(target, address)], pki.client_config(other.0)).unwrap();
    let error = member.append_entries(target, forged()).await.unwrap_err();
    assert!(
        matches!(
            request_error(&error),
            RequestError::Remote {
                status: 403,
                code: raft_http::ErrorCode::WrongNode,
                ..
            }
        ),
        "{error}"
    );

    let status = cluster.node(target).status();
    assert!(
        status.term < Term(term_before.0 + 1000),
        "the forged term never reached the node: {status:?}"
    );
    assert_eq!(status.leader, Some(leader));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_nodes_built_with_tls_files_elect_and_replicate() {
    let pki = Pki::new(3);
    let mut listeners = BTreeMap::new();
    let mut addresses = BTreeMap::new();
    for id in (1..=3).map(NodeId) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        addresses.insert(id, listener.local_addr().unwrap().to_string());
        listeners.insert(id, listener);
    }
    let mut nodes = Vec::new();
    let mut state_machines = Vec::new();
    for (id, listener) in listeners {
        let mut builder = HttpNode::builder(id)
            .listener(listener)
            .cluster(CLUSTER)
            .tls(pki.files(id.0))
            .tls_reload_interval(Duration::from_secs(60))
            .node_config(&test_config());
        for (&peer, address) in &addresses {
            if peer != id {
                builder = builder.peer(peer, format!("https://{address}"));
            }
        }
        let http = builder.bind().await.unwrap();
        assert!(http.tls_reloader().is_some());
        assert!(http.service_config().require_peer_certificate);
        let kv = MemKv::new();
        let node = Node::start(
            http.id(),
            http.members(),
            test_config(),
            MemLogStore::new().into_arc(),
            kv.clone().into_arc(),
            http.transport(),
        )
        .await
        .unwrap();
        nodes.push((node.clone(), http.serve(node)));
        state_machines.push(kv);
    }
    let leader = nodes[0]
        .0
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    let leader = nodes
        .iter()
        .find(|(node, _)| node.id() == leader)
        .map(|(node, _)| node.clone())
        .unwrap();
    let last = write(&leader, "k", 10).await;
    for kv in &state_machines {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while kv.last_applied() < last && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(kv.get(b"k9").as_deref(), Some(&b"value 9"[..]));
    }
    for (node, serving) in nodes {
        serving.shutdown().await;
        node.shutdown().await;
    }
}

#[tokio::test]
async fn an_http_node_refuses_a_certificate_that_does_not_name_it() {
    let pki = Pki::new(2);
    // Node 1 given node 2's files.
    let result = HttpNode::builder(NodeId(1))
        .listen("127.0.0.1:0")
        .cluster(CLUSTER)
        .tls(pki.files(2))
        .bind()
        .await;
    match result {
        Err(raft_http::Error::Tls(message)) => {
            assert!(message.contains("node-1.test-cluster"), "{message}");
            assert!(message.contains("node 2"), "{message}");
        }
        other => panic!("not a TLS error: {other:?}"),
    }
}
