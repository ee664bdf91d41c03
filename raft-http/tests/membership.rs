//! Membership changes over real loopback HTTP: nodes that never heard of a new member dial it
//! at the address its configuration entry carries, with no restart; a removed member is
//! forgotten by the transports and refused by the nodes.

// Helpers of this test file: a broken one should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::HttpNodes;
use raft_core::runtime::Node;
use raft_core::testing::{self, MemKv, NodeFactory, test_config};
use raft_core::{LogIndex, MembershipChange, NodeId};

async fn write(leader: &Node, prefix: &str, count: usize) -> LogIndex {
    let mut last = LogIndex::ZERO;
    for i in 0..count {
        let command = MemKv::put(format!("{prefix}{i}"), format!("value {i}"));
        last = leader.append(vec![command]).await.unwrap().first.index;
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_member_is_dialled_at_the_address_its_configuration_carries() {
    // Five ports, three nodes: the transports of nodes 1-3 start knowing only 1-3 and must
    // learn 4 and 5 from the configuration entries.
    let factory = HttpNodes::bind_knowing(5, 3).await;
    let mut cluster = testing::Cluster::start_with(factory, 3, test_config()).await;
    let leader = cluster.leader_node().await;
    write(&leader, "before-", 20).await;

    for id in [NodeId(4), NodeId(5)] {
        cluster.add_joining_node(id).await;
        let address = cluster.factory.address(id);
        leader.add_learner(id, address).await.unwrap();
    }
    for id in [NodeId(4), NodeId(5)] {
        leader
            .wait_for_learner(id, 0, Duration::from_secs(10))
            .await
            .unwrap();
    }
    let change = MembershipChange::default()
        .promote(NodeId(4))
        .promote(NodeId(5));
    let members = leader.change_membership(change).await.unwrap();
    let voters: BTreeSet<NodeId> = members.voters().collect();
    assert_eq!(voters.len(), 5);

    // The old leader leaves; the four others carry on, node 4 or 5 possibly leading.
    let old = leader.id();
    leader.remove_member(old).await.unwrap();
    cluster.stop_node(old).await;
    let rest: Vec<NodeId> = voters.into_iter().filter(|&id| id != old).collect();
    let new_leader = cluster.node(cluster.wait_for_leader_among(&rest).await);
    let last = write(&new_leader, "after-", 20).await;
    cluster.wait_applied(last).await;
    for id in [NodeId(4), NodeId(5)] {
        let kv = &cluster.state_machines[&id];
        assert_eq!(kv.get(b"before-0").as_deref(), Some(&b"value 0"[..]));
        assert_eq!(kv.get(b"after-19").as_deref(), Some(&b"value 19"[..]));
    }
    cluster.shutdown().await;
}

#[test]
fn membership_changes_add_and_forget_learned_peers_but_keep_configured_ones() {
    use std::collections::BTreeMap;

    use raft_core::Transport;
    use raft_http::{ClientConfig, ClusterAuth, HttpTransport};

    let config = ClientConfig::new(ClusterAuth::new("c").unwrap());
    let transport = HttpTransport::new(
        [(NodeId(1), "10.0.0.1:1"), (NodeId(2), "10.0.0.2:1")],
        config,
    )
    .unwrap();
    let members = |pairs: &[(u64, &str)]| -> BTreeMap<NodeId, String> {
        pairs
            .iter()
            .map(|&(id, a)| (NodeId(id), a.to_owned()))
            .collect()
    };
    // Node 2's configuration names another address: the configured dial address stays.
    transport.update_peers(&members(&[(2, "10.9.9.9:9"), (3, "10.0.0.3:1")]));
    assert_eq!(
        transport.peer_address(NodeId(1)).as_deref(),
        Some("10.0.0.1:1")
    );
    assert_eq!(
        transport.peer_address(NodeId(2)).as_deref(),
        Some("10.0.0.2:1")
    );
    assert_eq!(
        transport.peer_address(NodeId(3)).as_deref(),
        Some("10.0.0.3:1")
    );
    // Node 3 leaves: forgotten; node 1, configured by hand, is kept.
    transport.update_peers(&members(&[(2, "10.0.0.2:1")]));
    assert_eq!(transport.peer_address(NodeId(3)), None);
    assert!(transport.peer_address(NodeId(1)).is_some());
}
