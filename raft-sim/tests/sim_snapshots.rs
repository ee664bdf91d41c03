//! Snapshots in the simulator: taken, compacting the logs, sent in chunks over the faulty
//! network to lagging and wiped followers, restored at restarts; the checks hold throughout,
//! and planted snapshot bugs are caught.

use raft_sim::{Bug, SimOptions, SnapshotCounts, SnapshotMode, run_seed};

fn options(steps: u64, bug: Option<Bug>, snapshots: SnapshotMode) -> SimOptions {
    SimOptions {
        steps,
        bug,
        snapshots,
        churn: false,
        ..SimOptions::default()
    }
}

/// Runs `seeds` with snapshots in every one; asserts none breaks a property and returns what
/// snapshots did.
fn run_clean(seeds: std::ops::Range<u64>, steps: u64) -> SnapshotCounts {
    let mut counts = SnapshotCounts::default();
    for seed in seeds {
        let report = run_seed(seed, &options(steps, None, SnapshotMode::Always));
        assert_eq!(report.violation, None, "seed {seed}");
        counts.add(&report.snapshots);
    }
    counts
}

/// Two hundred seeds with snapshots taken by count in each: no violation, and every part of the
/// snapshot machinery really runs.
#[test]
fn snapshots_in_every_seed_are_taken_sent_installed_and_safe() {
    let counts = run_clean(0..200, 3_000);
    assert!(counts.created > 1_000, "{counts:?}");
    assert!(counts.compactions > 1_000, "{counts:?}");
    assert!(counts.installed > 50, "{counts:?}");
    // Transfers take several chunks, and some chunks are lost and sent again.
    assert!(counts.chunks_saved > counts.installed, "{counts:?}");
    assert!(counts.chunks_sent > counts.chunks_saved, "{counts:?}");
    assert!(
        counts.restored > counts.installed,
        "restarts restore too: {counts:?}"
    );
    assert!(counts.wipes > 20, "{counts:?}");
}

#[test]
fn long_runs_with_snapshots_stay_safe() {
    let counts = run_clean(1_000_000..1_000_010, 30_000);
    assert!(counts.installed > 0, "{counts:?}");
}

#[test]
fn a_seed_with_snapshots_replays_exactly() {
    let options = options(5_000, None, SnapshotMode::Always);
    assert_eq!(run_seed(42, &options), run_seed(42, &options));
}

/// Regression (seed 51, snapshots always, 3 000 steps): a node crashes after storing a
/// snapshot from the leader and before its log's replacement reaches the disk; at restart the
/// snapshot replaces the log, committed entries below it included. This path first showed on
/// seed 26 (which, without the checker's allowance for it, reported `committed-entry-lost`);
/// later engine changes moved that seed, then seed 17, off it, so seed 51 carries the
/// regression now.
/// (If a change to the simulator moves the seed off this path, pick another one: the runs
/// print `replaced_at_restart`. The seed runs `as_recorded`, so later additions to the
/// simulator leave it where it is.)
#[test]
fn restart_after_an_interrupted_install_replaces_the_log() {
    let report = run_seed(
        51,
        &options(3_000, None, SnapshotMode::Always).as_recorded(),
    );
    assert_eq!(report.violation, None);
    assert!(
        report.snapshots.replaced_at_restart > 0,
        "{:?}",
        report.snapshots
    );
}

/// Planted bug: a snapshot's data read when it is written, after later commits. The state
/// check against the committed prefix catches it.
#[test]
fn planted_lazy_snapshot_is_caught() {
    let violations: Vec<_> = (0..40)
        .filter_map(|seed| {
            let options = options(3_000, Some(Bug::LazySnapshot), SnapshotMode::Always);
            run_seed(seed, &options).violation
        })
        .collect();
    assert!(
        violations.len() >= 10,
        "caught in {} of 40 seeds",
        violations.len()
    );
    assert!(violations.iter().all(|v| v.invariant == "snapshot-state"));
}

/// Planted bug: disks wiped even when the lost entries are not on a majority of the other
/// nodes. Losing an acknowledged log breaks Raft: a committed entry goes missing from a later
/// leader. This is why the nemesis checks before it wipes.
#[test]
fn planted_unsafe_wipe_is_caught() {
    let caught = (0..200)
        .filter_map(|seed| {
            let options = options(3_000, Some(Bug::UnsafeWipe), SnapshotMode::Random);
            run_seed(seed, &options).violation
        })
        .count();
    assert!(caught >= 5, "caught in {caught} of 200 seeds");
}

/// Planted bug: unsafe wipes, seen on the disks. Counting the durable copies after every step
/// catches a wipe that leaves a committed entry on a minority of the disks at the step of the
/// wipe, before any leader lacks it, and in more seeds than leader completeness alone did.
#[test]
fn planted_unsafe_wipe_leaves_a_committed_entry_durable_on_a_minority() {
    let violations: Vec<_> = (0..40)
        .filter_map(|seed| {
            let options = options(3_000, Some(Bug::UnsafeWipe), SnapshotMode::Random);
            run_seed(seed, &options).violation
        })
        .collect();
    assert!(
        violations.len() >= 5,
        "caught in {} of 40 seeds",
        violations.len()
    );
    assert!(
        violations
            .iter()
            .all(|v| v.invariant == "commit-durable-on-majority"),
        "{violations:?}"
    );
    assert!(
        violations
            .iter()
            .all(|v| v.detail.contains("voters' disks")),
        "the detail counts the disks: {violations:?}"
    );
}
