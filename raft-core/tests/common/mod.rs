//! Scenarios shared by the runtime test files (each file is its own crate; this module is
//! compiled into the ones that name it).

use std::time::Duration;

use raft_core::runtime::NodeConfig;
use raft_core::testing::{Cluster, Outcome};

/// How long each concurrent writer pauses after a write.
pub(crate) const PAUSE: Duration = Duration::from_millis(2);

/// A leader crash under load: 3 nodes whose syncs take 1 ms, 8 writers of 40 writes each; 40 ms
/// in, the leader stops and its disk loses what it had not synced; 40 ms after another node
/// leads, it restarts. At least 300 of the 320 writes are acknowledged and every acknowledged
/// one is applied exactly once on every node (an unknown one at most once). Returns the
/// settled cluster for further checks.
pub(crate) async fn writes_survive_a_leader_crash(config: NodeConfig) -> Cluster {
    let mut cluster = Cluster::start(3, config).await;
    for store in cluster.stores.values() {
        store.set_sync_delay(Duration::from_millis(1));
    }
    let first_leader = cluster.wait_for_leader().await;
    let writers = cluster.spawn_writers(8, 40, PAUSE);
    tokio::time::sleep(Duration::from_millis(40)).await;

    cluster.stop_node(first_leader).await;
    cluster.stores[&first_leader].simulate_power_loss();
    let second_leader = cluster.wait_for_leader().await;
    assert_ne!(second_leader, first_leader);
    tokio::time::sleep(Duration::from_millis(40)).await;
    cluster.start_node(first_leader).await;

    let outcomes = writers.join().await;
    let acked = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Acked(_)))
        .count();
    assert!(acked >= 300, "only {acked} of 320 writes were acknowledged");
    cluster.settle().await;
    cluster.assert_exactly_once(&outcomes);
    cluster
}
