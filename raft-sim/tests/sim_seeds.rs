//! The simulator as a test: seeds run clean, replay exactly, and planted bugs are caught.
//!
//! Pinned seeds run with [`SimOptions::as_recorded`]: what the simulator gained since they
//! were pinned (follower reads, the split brain, the heal) is switched off, so each seed
//! replays the very run its test describes.

use raft_sim::{Bug, ClockMode, SimOptions, SnapshotMode, run_seed};

fn options(steps: u64, bug: Option<Bug>) -> SimOptions {
    SimOptions {
        steps,
        bug,
        snapshots: SnapshotMode::Random,
        churn: false,
        ..SimOptions::default()
    }
}

/// Options with membership churn, as the CI churn campaign runs them.
fn options_with_churn(steps: u64, bug: Option<Bug>) -> SimOptions {
    SimOptions {
        churn: true,
        ..options(steps, bug)
    }
}

/// Options with lease reads and clocks drifting within the bound, as the CI lease campaign
/// runs them.
fn options_with_leases(steps: u64, bug: Option<Bug>) -> SimOptions {
    SimOptions {
        leases: true,
        clocks: ClockMode::Drift,
        ..options(steps, bug)
    }
}

/// Options for seeds recorded before snapshots existed: without snapshots a seed replays the
/// same run as then.
fn options_without_snapshots(steps: u64, bug: Option<Bug>) -> SimOptions {
    SimOptions {
        snapshots: SnapshotMode::Off,
        ..options(steps, bug)
    }
}

/// A few hundred seeds with every fault switched on: no violation, and the faults are real
/// (leaders change, entries commit, clients complete operations).
#[test]
fn three_hundred_seeds_run_without_violations() {
    let (mut commits, mut elections, mut client_ops) = (0, 0, 0);
    for seed in 0..300 {
        let report = run_seed(seed, &options(3_000, None));
        assert_eq!(report.violation, None, "seed {seed}");
        commits += report.commits;
        elections += report.elections;
        client_ops += report.client_ops;
    }
    assert!(commits > 10_000, "commits {commits}");
    assert!(elections > 300, "elections {elections}");
    assert!(client_ops > 5_000, "client ops {client_ops}");
}

#[test]
fn long_runs_stay_safe() {
    for seed in 1_000..1_010 {
        let report = run_seed(seed, &options(30_000, None));
        assert_eq!(report.violation, None, "seed {seed}");
    }
}

#[test]
fn a_seed_replays_exactly() {
    let first = run_seed(42, &options(5_000, None));
    let second = run_seed(42, &options(5_000, None));
    assert_eq!(first, second);
}

/// Planted bug: the disk forgets votes. The checker sees a vote revealed before it is durable.
#[test]
fn planted_forgotten_vote_is_caught() {
    let caught = (0..20)
        .filter_map(|seed| run_seed(seed, &options(3_000, Some(Bug::ForgetVote))).violation)
        .count();
    assert!(caught >= 10, "caught in {caught} of 20 seeds");
}

/// Planted bug: log writes reported durable before they are synced.
#[test]
fn planted_ack_before_sync_is_caught() {
    let violations: Vec<_> = (0..20)
        .filter_map(|seed| run_seed(seed, &options(3_000, Some(Bug::AckBeforeSync))).violation)
        .collect();
    assert!(
        violations.len() >= 10,
        "caught in {} of 20 seeds",
        violations.len()
    );
    assert!(violations.iter().all(|v| v.invariant == "ack-only-durable"));
}

/// Regression (seed 195, 20 000 steps, found with the first nemesis): a vote grant held while the
/// node moved to a later term leaves once the later term is durable. That is safe (the node can
/// never vote again in the grant's term) and the checker once reported it.
#[test]
fn vote_grant_released_after_a_later_term_is_durable_is_safe() {
    let report = run_seed(195, &options_without_snapshots(20_000, None).as_recorded());
    assert_eq!(report.violation, None);
}

/// Planted bug: reads answered from a random replica's local state. The linearizability check
/// of the clients' history catches it.
#[test]
fn planted_stale_read_is_caught_by_linearizability() {
    let violations: Vec<_> = (0..10)
        .filter_map(|seed| run_seed(seed, &options(3_000, Some(Bug::StaleRead))).violation)
        .collect();
    assert!(
        violations.len() >= 5,
        "caught in {} of 10 seeds",
        violations.len()
    );
    assert!(violations.iter().all(|v| v.invariant == "linearizability"));
}

/// Planted engine bug: a vote granted twice in one term. Caught within a few hundred seeds.
#[test]
fn planted_double_vote_is_caught() {
    let caught = (0..400)
        .filter_map(|seed| run_seed(seed, &options(3_000, Some(Bug::VoteTwice))).violation)
        .count();
    assert!(caught >= 5, "caught in {caught} of 400 seeds");
}

/// Planted engine bug: committing an old-term entry by counting replicas (Raft Figure 8). Seed
/// 1686 reaches the Figure 8 sequence: the entry is committed by count, then a later leader
/// lacks it, and leader completeness fails.
#[test]
fn planted_commit_by_count_is_caught() {
    let report = run_seed(
        1_686,
        &options_without_snapshots(30_000, Some(Bug::CommitByCount)).as_recorded(),
    );
    let violation = report.violation.expect("the Figure 8 bug is caught");
    assert_eq!(violation.invariant, "leader-completeness");
    let clean = run_seed(
        1_686,
        &options_without_snapshots(30_000, None).as_recorded(),
    );
    assert_eq!(
        clean.violation, None,
        "the same seed is clean without the bug"
    );
}

/// Planted engine bug: the leader counts its own log at its last index, not its durable one,
/// in the commit rule. Seed 35 commits entry 2-8 while only one of three disks holds it; the
/// disks are counted after the step that committed it. (`commit-index-within-durable-majority`
/// sees the same step; the check of the applied entry runs first.)
#[test]
fn planted_commit_before_own_sync_is_caught() {
    let bug = Some(Bug::CommitBeforeOwnSync);
    let report = run_seed(35, &options(3_000, bug).as_recorded());
    let violation = report
        .violation
        .expect("counting the unsynced log is caught");
    assert_eq!(violation.invariant, "commit-durable-on-majority");
    assert!(violation.detail.contains("1 of 3"), "{violation:?}");
    assert_eq!(
        run_seed(35, &options(3_000, None).as_recorded()).violation,
        None
    );
}

/// Planted engine bug: a candidate asks for votes before its new term and its vote for itself
/// are durable. Seed 0: node 3's first RequestVote leaves with nothing durable yet.
#[test]
fn planted_vote_request_before_sync_is_caught() {
    let bug = Some(Bug::VoteRequestBeforeSync);
    let report = run_seed(0, &options(3_000, bug).as_recorded());
    let violation = report.violation.expect("the early vote request is caught");
    assert_eq!(violation.invariant, "reveal-after-durable");
    assert!(violation.detail.contains("RequestVote"), "{violation:?}");
    assert_eq!(
        run_seed(0, &options(3_000, None).as_recorded()).violation,
        None
    );
}

/// Planted engine bug: a leader ignores a response of a higher term and keeps leading. Seed 16:
/// leader 4 of term 1 hears of term 2 in an AppendEntriesResponse and stays in term 1.
#[test]
fn planted_ignore_higher_term_response_is_caught() {
    let bug = Some(Bug::IgnoreHigherTermResponse);
    let report = run_seed(16, &options(3_000, bug).as_recorded());
    let violation = report.violation.expect("the ignored term is caught");
    assert_eq!(violation.invariant, "higher-term-adopted");
    assert!(violation.detail.contains("Leader"), "{violation:?}");
    assert_eq!(
        run_seed(16, &options(3_000, None).as_recorded()).violation,
        None
    );
}

/// Planted engine bug: a change of voters switches straight to the new configuration. Seed 1
/// (churn): leader 1 replaces voter 2 by learner 6 in one change and appends voters 1,3,4,5,6
/// right after 1,2,3,4,5; a majority of each ({1,2,3} and {4,5,6}) can be disjoint.
#[test]
fn planted_skip_joint_phase_is_caught() {
    let bug = Some(Bug::SkipJointPhase);
    let report = run_seed(1, &options_with_churn(3_000, bug).as_recorded());
    let violation = report.violation.expect("the direct switch is caught");
    assert_eq!(violation.invariant, "config-quorums-overlap");
    assert!(
        violation
            .detail
            .contains("(voters 1,3,4,5,6) after (voters 1,2,3,4,5 learners 6)"),
        "{violation:?}"
    );
    assert_eq!(
        run_seed(1, &options_with_churn(3_000, None).as_recorded()).violation,
        None
    );
}

/// Planted engine bug: configurations take effect when they commit. Seed 1 (churn): leader 1
/// commits the joint configuration (new voters 2,3,4,5,6) counting only the old voters, so the
/// entry is durable on two of the five new voters' disks.
#[test]
fn planted_config_on_commit_is_caught() {
    let bug = Some(Bug::ConfigOnCommit);
    let report = run_seed(1, &options_with_churn(3_000, bug).as_recorded());
    let violation = report
        .violation
        .expect("the commit under the old voters is caught");
    assert_eq!(violation.invariant, "commit-durable-on-majority");
    assert!(violation.detail.contains("2 of 5"), "{violation:?}");
    assert_eq!(
        run_seed(1, &options_with_churn(3_000, None).as_recorded()).violation,
        None
    );
}

/// The same planted bug seen as a disruption. Seed 1760 (churn, pre-vote on): node 4 was
/// removed, and a node that believes the configuration of its commit index (which still has
/// node 4) acts on node 4's messages: member 3 is raised to a term no other node holds. (Seed
/// 45 showed it until the leader began telling removed nodes that their removal committed.)
#[test]
fn planted_config_on_commit_lets_a_removed_node_disrupt() {
    let bug = Some(Bug::ConfigOnCommit);
    let report = run_seed(1_760, &options_with_churn(3_000, bug).as_recorded());
    let violation = report.violation.expect("the disruption is caught");
    assert_eq!(violation.invariant, "removed-cannot-disrupt");
    assert!(
        violation.detail.contains("member 3 went from term 2 to 3")
            && violation.detail.contains("removed node 4"),
        "{violation:?}"
    );
    assert_eq!(
        run_seed(1_760, &options_with_churn(3_000, None).as_recorded()).violation,
        None
    );
}

/// Planted engine bug: the leader counts learners in its commit rule. Seed 8 (churn): entry
/// 2-29 commits while durable on two of the four voters' disks, the learners making up the
/// rest of the leader's count.
#[test]
fn planted_learner_in_quorum_is_caught() {
    let bug = Some(Bug::LearnerInQuorum);
    let report = run_seed(8, &options_with_churn(3_000, bug).as_recorded());
    let violation = report.violation.expect("counting learners is caught");
    assert_eq!(violation.invariant, "commit-durable-on-majority");
    assert!(violation.detail.contains("2 of 4"), "{violation:?}");
    assert_eq!(
        run_seed(8, &options_with_churn(3_000, None).as_recorded()).violation,
        None
    );
}

/// Planted engine bug: a lease lasts two election timeouts instead of one less the drift bound.
/// Seed 6 (leases, clocks within the bound): node 5 leads term 2, cut off from its followers;
/// it serves lease read 490 when nodes 1, 3 and 4 last heard from it more than an election
/// timeout ago by their own clocks, so they would vote for another leader: the lease no longer
/// stands on a quorum.
#[test]
fn planted_lease_too_long_is_caught() {
    let bug = Some(Bug::LeaseTooLong);
    let report = run_seed(6, &options_with_leases(3_000, bug).as_recorded());
    let violation = report.violation.expect("the overlong lease is caught");
    assert_eq!(violation.invariant, "lease-read-quorum-bound");
    assert!(violation.detail.contains("voters 1,3,4"), "{violation:?}");
    assert_eq!(
        run_seed(6, &options_with_leases(3_000, None).as_recorded()).violation,
        None
    );
}

/// The same planted bug, caught in about one seed in ten of the CI lease campaign.
#[test]
fn planted_lease_too_long_is_caught_in_many_seeds() {
    let bug = Some(Bug::LeaseTooLong);
    let caught = (0..60)
        .filter_map(|seed| run_seed(seed, &options_with_leases(3_000, bug)).violation)
        .count();
    assert!(caught >= 3, "caught in {caught} of 60 seeds");
}

/// Planted engine bug: after a rejection the leader resumes one entry past the position the
/// follower denied. Seed 2: leader 2, whose log ends at 18, moves follower 5 to next index 20
/// (the progress bounds, checked after every step, want at most 19).
#[test]
fn planted_next_index_past_rejection_is_caught() {
    let bug = Some(Bug::NextIndexPastRejection);
    // Pinned before the targeted nemesis existed.
    let report = run_seed(2, &options(3_000, bug).untargeted());
    let violation = report.violation.expect("the overshoot is caught");
    assert_eq!(violation.invariant, "progress-bounds");
    assert!(
        violation.detail.contains(
            "leader 2 (last index 18) tracks follower 5 with match_index 15 and next_index 20"
        ),
        "{violation:?}"
    );
    assert_eq!(
        run_seed(2, &options(3_000, None).untargeted()).violation,
        None
    );
}

/// The same planted bug, caught in most seeds of the CI campaign.
#[test]
fn planted_next_index_past_rejection_is_caught_in_most_seeds() {
    let bug = Some(Bug::NextIndexPastRejection);
    let caught = (0..20)
        .filter_map(|seed| run_seed(seed, &options(3_000, bug)).violation)
        .count();
    assert!(caught >= 10, "caught in {caught} of 20 seeds");
}
