//! Liveness after a heal: in half the seeds the faults stop at a step drawn per seed (the
//! network heals, every node runs), and a leader must then commit a new entry within ten
//! election timeouts (`liveness-after-heal`, judged in the seeds with pre-vote). Healthy runs
//! recover well within the bound; a planted bug that stops elections, or one that keeps
//! followers from catching up, is caught.

use raft_sim::{Bug, HealCounts, SimOptions, run_seed};

fn options(bug: Option<Bug>) -> SimOptions {
    SimOptions {
        steps: 3_000,
        bug,
        ..SimOptions::default()
    }
}

/// The options of the seeds pinned here, recorded before the targeted nemesis existed.
fn pinned(bug: Option<Bug>) -> SimOptions {
    options(bug).untargeted()
}

/// Two hundred seeds: every healed run that is judged recovers within the bound, most of them
/// within a few election timeouts.
#[test]
fn after_a_heal_a_leader_commits_a_new_entry_within_the_bound() {
    let mut counts = HealCounts::default();
    for seed in 0..200 {
        let report = run_seed(seed, &options(None));
        assert_eq!(report.violation, None, "seed {seed}");
        counts.add(&report.heal);
    }
    assert!(counts.healed > 70, "{counts:?}");
    assert!(counts.judged > 50, "{counts:?}");
    assert!(
        counts.recovered >= counts.judged - counts.unfinished,
        "{counts:?}"
    );
    assert!(
        counts.slowest_recovery_timeouts_percent < 1_000,
        "{counts:?}"
    );
}

#[test]
fn without_the_heal_the_faults_never_stop_and_nothing_is_judged() {
    let options = SimOptions {
        heal: false,
        ..options(None)
    };
    for seed in 0..10 {
        let report = run_seed(seed, &options);
        assert_eq!(report.heal, HealCounts::default(), "seed {seed}");
    }
}

/// Planted engine bug: a pre-candidate or candidate whose round failed never campaigns again.
/// Seed 35 (three nodes): when the faults stop every node is a pre-candidate that already
/// lost its round, so no leader is ever elected again; ten election timeouts after the heal
/// the run reports it. Without the bug the same seed commits a new entry 15 ms after the heal.
#[test]
fn planted_candidate_never_retries_is_caught_after_the_heal() {
    let violation = run_seed(35, &pinned(Some(Bug::CandidateNeverRetries)))
        .violation
        .expect("the stalled cluster is caught");
    assert_eq!(violation.invariant, "liveness-after-heal");
    assert!(
        violation.detail.contains("node 1 PreCandidate")
            && violation.detail.contains("node 2 PreCandidate")
            && violation.detail.contains("node 3 PreCandidate"),
        "{violation:?}"
    );
    let clean = run_seed(35, &pinned(None));
    assert_eq!(clean.violation, None);
    assert_eq!(clean.heal.recovered, 1, "{:?}", clean.heal);
}

/// The planted replication bug `next-index-past-rejection` also stalls the cluster where the
/// progress bounds never break. Seed 46: leader 3 of term 4 holds its followers 1, 2 and 5
/// past the entries they lack, so only node 4 keeps up and nothing commits after the heal.
#[test]
fn planted_next_index_past_rejection_stalls_commits_after_the_heal() {
    let violation = run_seed(46, &pinned(Some(Bug::NextIndexPastRejection)))
        .violation
        .expect("the stalled commits are caught");
    assert_eq!(violation.invariant, "liveness-after-heal");
    assert!(
        violation.detail.contains("node 3 Leader of term 4"),
        "{violation:?}"
    );
    assert_eq!(run_seed(46, &pinned(None)).violation, None);
}

/// Seed 6437 (churn) found an engine gap, now closed: node 2, the removed leader, holds the
/// final configuration (voters 1) it appended before crashing, while node 1 is still in the
/// joint configuration (voters 1, outgoing 1,2) with a shorter log. Node 1 needs node 2's
/// vote, which node 2 refuses (node 1's log is shorter). The engine let only voters campaign,
/// so no leader was ever elected again. Now a node removed by a configuration it does not know
/// committed still campaigns (with pre-vote; the Raft thesis, §4.2.2): node 2 is elected by
/// node 1, commits its removal and hands leadership over, and the run is judged.
#[test]
fn a_removed_leader_holding_the_final_configuration_campaigns_and_the_cluster_recovers() {
    let options = SimOptions {
        churn: true,
        ..pinned(None)
    };
    let report = run_seed(6_437, &options);
    assert_eq!(report.violation, None);
    assert_eq!(
        (
            report.heal.healed,
            report.heal.judged,
            report.heal.recovered
        ),
        (1, 1, 1),
        "{:?}",
        report.heal
    );
}
