//! The metric names of ARCHITECTURE.md ("Metrics") are recorded (its own test binary: it
//! installs a global recorder).

use metrics_exporter_prometheus::PrometheusBuilder;
use raft_core::metrics;
use raft_core::testing::{Cluster, MemKv, test_config};

#[tokio::test(start_paused = true)]
async fn node_records_the_documented_metrics() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    ::metrics::set_global_recorder(recorder).expect("first recorder in this binary");

    let cluster = Cluster::start(3, test_config()).await;
    let leader = cluster.node(cluster.wait_for_leader().await);
    for i in 0..20 {
        leader
            .append(vec![MemKv::put(format!("k{i}"), "v")])
            .await
            .unwrap();
    }
    cluster.wait_applied(leader.commit_index()).await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;

    let text = handle.render();
    for name in [
        metrics::TERM,
        metrics::ROLE,
        metrics::COMMIT_INDEX,
        metrics::APPLIED_INDEX,
        metrics::LEADER_CHANGES,
        metrics::PROPOSALS,
        metrics::APPEND_LATENCY,
        metrics::REPLICATION_BATCH_SIZE,
        metrics::REPLICATION_THRESHOLD,
        metrics::REPLICATION_INFLIGHT,
        metrics::REPLICATION_LAG,
        metrics::LOG_BYTES,
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    let leader_label = format!("raft_role{{node=\"{}\"}} 2", leader.id());
    assert!(
        text.contains(&leader_label),
        "{leader_label} missing from:\n{text}"
    );
    let proposals = format!("raft_proposals_total{{node=\"{}\"}} 20", leader.id());
    assert!(
        text.contains(&proposals),
        "{proposals} missing from:\n{text}"
    );
    assert!(text.contains("peer=\""), "per-follower labels missing");
}
