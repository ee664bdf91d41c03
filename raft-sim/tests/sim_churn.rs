//! Membership churn in the simulator: learners added on fresh nodes, promoted, voters and
//! learners removed (the leader among them), several voters changed at once, removed nodes
//! kept running and then stopped, mixed with every other fault; the checks hold throughout.

use raft_sim::{ChurnCounts, SimOptions, SnapshotMode, run_seed};

fn churn(steps: u64) -> SimOptions {
    SimOptions {
        steps,
        bug: None,
        snapshots: SnapshotMode::Random,
        churn: true,
        ..SimOptions::default()
    }
}

/// Runs `seeds` with churn; asserts none breaks a property and returns what churn did.
fn run_clean(seeds: std::ops::Range<u64>, steps: u64) -> (ChurnCounts, u64) {
    let (mut counts, mut commits) = (ChurnCounts::default(), 0);
    for seed in seeds {
        let report = run_seed(seed, &churn(steps));
        assert_eq!(report.violation, None, "seed {seed}");
        counts.add(&report.churn);
        commits += report.commits;
    }
    (counts, commits)
}

/// Two hundred seeds with churn: no violation, and every kind of change really happens.
#[test]
fn membership_churn_runs_without_violations_and_changes_the_cluster() {
    let (counts, commits) = run_clean(0..200, 3_000);
    assert!(commits > 4_000, "commits {commits}");
    assert!(counts.accepted > 500, "{counts:?}");
    assert!(counts.completed > 400, "{counts:?}");
    assert!(counts.joint_committed > 150, "{counts:?}");
    assert!(counts.learners_added > 200, "{counts:?}");
    assert!(counts.promoted > 100, "{counts:?}");
    assert!(counts.nodes_removed > 150, "{counts:?}");
    assert!(counts.leaders_removed > 40, "{counts:?}");
    assert!(counts.removed_stopped > 100, "{counts:?}");
    // The engine refuses changes while one is in progress, and the invalid ones.
    assert!(counts.rejected_in_progress > 100, "{counts:?}");
    assert!(counts.rejected_invalid > 10, "{counts:?}");
}

#[test]
fn long_runs_with_churn_stay_safe() {
    let (counts, _) = run_clean(1_000_000..1_000_005, 30_000);
    assert!(counts.completed > 20, "{counts:?}");
}

#[test]
fn a_seed_with_churn_replays_exactly() {
    let options = churn(5_000);
    let first = run_seed(42, &options);
    assert!(first.churn.accepted > 0, "{:?}", first.churn);
    assert_eq!(first, run_seed(42, &options));
}

/// Without churn nothing changes the membership, and the seed runs what it ran before
/// membership changes existed (the campaigns' totals are pinned in CI).
#[test]
fn without_churn_the_membership_never_changes() {
    let options = SimOptions {
        steps: 3_000,
        ..SimOptions::default()
    };
    let report = run_seed(7, &options);
    assert_eq!(report.churn, ChurnCounts::default());
    assert_eq!(report.violation, None);
}
