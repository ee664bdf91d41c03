//! Streaming replication under every fault: streams cut mid-batch (what was in transit is
//! lost), by partitions and crashes; opens lost, duplicated and delayed past newer ones; stale
//! leaders keeping their streams. No property breaks, and a leader that trusted a stream's
//! open without checking its own log is caught.

use raft_sim::{Bug, SimOptions, StreamCounts, run_seed};

fn streaming(bug: Option<Bug>) -> SimOptions {
    SimOptions {
        steps: 3_000,
        bug,
        streaming: true,
        ..SimOptions::default()
    }
}

#[test]
fn streaming_replication_breaks_no_property_under_faults() {
    let mut counts = StreamCounts::default();
    let mut commits = 0;
    for seed in 0..200 {
        let report = run_seed(seed, &streaming(None));
        assert_eq!(report.violation, None, "seed {seed}");
        counts.add(&report.streams);
        commits += report.commits;
    }
    // Every kind of stream failure really happens, and the entries still flow.
    assert!(counts.opened > 1_000, "{counts:?}");
    assert!(counts.open_failed > 100, "{counts:?}");
    assert!(counts.cut > 300, "{counts:?}");
    assert!(counts.batches > 20_000, "{counts:?}");
    assert!(commits > 15_000, "{commits}");
}

#[test]
fn streaming_with_membership_churn_breaks_no_property() {
    for seed in 0..100 {
        let options = SimOptions {
            churn: true,
            ..streaming(None)
        };
        let report = run_seed(seed, &options);
        assert_eq!(report.violation, None, "seed {seed}");
    }
}

/// Regression seed for the planted bug: the leader counts the position a follower named in
/// its stream's open as matching and durable, so an entry commits while a minority holds it.
#[test]
fn a_leader_trusting_a_stream_open_is_caught_in_seed_149() {
    let report = run_seed(149, &streaming(Some(Bug::StreamOpenTrusted)));
    let violation = report.violation.expect("caught");
    assert_eq!(violation.invariant, "commit-durable-on-majority");
    assert_eq!(run_seed(149, &streaming(None)).violation, None);
}
