//! Lease reads in the simulator, with clocks that drift and jump: inside the bound the engines
//! are configured with (`Config::max_clock_drift_ms`) every history is linearizable and the
//! read checks hold; beyond it leases break, and the checks, the linearizability checker among
//! them, see it.

use raft_core::engine::{Engine, Input, RestoredState};
use raft_core::message::{Message, RequestVote};
use raft_core::{Config, HardState, LogId, LogIndex, Membership, NodeId, Term};
use raft_sim::{Bug, ClockMode, LeaseCounts, SimOptions, run_seed};

fn leases(steps: u64, clocks: ClockMode) -> SimOptions {
    SimOptions {
        steps,
        leases: true,
        clocks,
        ..SimOptions::default()
    }
}

/// Runs `seeds`; asserts none breaks a property and returns what the lease reads became.
fn run_clean(seeds: std::ops::Range<u64>, options: &SimOptions) -> LeaseCounts {
    let mut counts = LeaseCounts::default();
    for seed in seeds {
        let report = run_seed(seed, options);
        assert_eq!(report.violation, None, "seed {seed}");
        counts.add(&report.leases);
    }
    counts
}

/// Every fault, clocks drifting and jumping within the bound: no violation, and leases are
/// really used (most lease reads a leader takes are served at once).
#[test]
fn lease_reads_within_the_clock_drift_bound_are_linearizable_and_served_at_once() {
    let counts = run_clean(0..100, &leases(3_000, ClockMode::Drift));
    assert!(counts.served_at_once > 10_000, "{counts:?}");
    assert!(counts.served_at_once > 10 * counts.fell_back, "{counts:?}");
}

#[test]
fn lease_reads_stay_linearizable_with_membership_churn_and_drifting_clocks() {
    let options = SimOptions {
        churn: true,
        ..leases(3_000, ClockMode::Drift)
    };
    let counts = run_clean(0..50, &options);
    assert!(counts.served_at_once > 1_000, "{counts:?}");
}

/// Raft's safety does not depend on clocks: without leases, clocks far beyond any bound break
/// nothing.
#[test]
fn clocks_beyond_the_bound_break_nothing_without_leases() {
    let options = SimOptions {
        clocks: ClockMode::BeyondBound,
        ..SimOptions::default()
    };
    let counts = run_clean(0..60, &options);
    assert_eq!(counts, LeaseCounts::default());
}

#[test]
fn a_seed_with_leases_and_drifting_clocks_replays_exactly() {
    let options = leases(3_000, ClockMode::Drift);
    assert_eq!(run_seed(5, &options), run_seed(5, &options));
}

/// Beyond the bound a lease outlives the followers' promise. Seed 4699: node 1 leads term 2
/// on a clock running at half speed while the others run at one and a half; cut off at
/// 1242 ms, it keeps its lease while node 2 (whose clock also jumps 90 ms) is elected for term
/// 3 at 1359 ms and commits writes, and node 1 goes on answering lease reads from its old
/// state. With only the linearizability checker judging reads, the clients' history is seen
/// not to be linearizable; with the read checks the first lease read served after three of
/// the four followers stopped ignoring elections is reported at once; within the bound the
/// same seed is clean. (Pinned seeds run `as_recorded`: without the simulator's later
/// additions, so that they replay the runs described.)
#[test]
fn beyond_the_clock_drift_bound_stale_lease_reads_make_the_history_non_linearizable() {
    let beyond = leases(5_000, ClockMode::BeyondBound).as_recorded();
    let unchecked = SimOptions {
        read_checks: false,
        ..beyond.clone()
    };
    let violation = run_seed(4_699, &unchecked)
        .violation
        .expect("the stale reads are seen");
    assert_eq!(violation.invariant, "linearizability");

    let violation = run_seed(4_699, &beyond)
        .violation
        .expect("the lease outliving its quorum is seen");
    assert_eq!(violation.invariant, "lease-read-quorum-bound");
    assert!(violation.step < 5_000, "{violation:?}");
    assert!(violation.detail.contains("voters 2,3,4,5"), "{violation:?}");

    let within = leases(5_000, ClockMode::Drift).as_recorded();
    assert_eq!(run_seed(4_699, &within).violation, None);
}

/// Planted engine bug `lease-too-long`, with only the linearizability checker judging reads:
/// the split brain the nemesis plays on the leader makes the overlong lease visible to
/// clients. Seed 66 (clocks within the bound): the old leader, cut off and slow to hear its
/// followers, goes on answering lease reads from its state while its successor commits the
/// writes of the client that follows the newest leader. Without the bug the seed is clean.
/// (Pinned before the targeted nemesis existed, which it runs without.)
#[test]
fn planted_lease_too_long_makes_the_history_non_linearizable_in_a_split_brain() {
    let unchecked = |bug| {
        SimOptions {
            bug,
            read_checks: false,
            ..leases(3_000, ClockMode::Drift)
        }
        .untargeted()
    };
    let violation = run_seed(66, &unchecked(Some(Bug::LeaseTooLong)))
        .violation
        .expect("the stale lease reads are seen");
    assert_eq!(violation.invariant, "linearizability");
    assert_eq!(run_seed(66, &unchecked(None)).violation, None);
    let without_split_brain = SimOptions {
        split_brain: false,
        ..unchecked(Some(Bug::LeaseTooLong))
    };
    assert_eq!(run_seed(66, &without_split_brain).violation, None);
}

/// The same, in a few seeds in a hundred of the CI lease campaign (none before the split brain).
#[test]
fn planted_lease_too_long_is_seen_by_the_linearizability_checker_alone_in_some_seeds() {
    let options = SimOptions {
        bug: Some(Bug::LeaseTooLong),
        read_checks: false,
        ..leases(3_000, ClockMode::Drift)
    };
    let caught: Vec<_> = (0..200)
        .filter_map(|seed| run_seed(seed, &options).violation)
        .collect();
    assert!(caught.len() >= 4, "caught in {} of 200 seeds", caught.len());
    assert!(
        caught.iter().all(|v| v.invariant == "linearizability"),
        "{caught:?}"
    );
}

/// Beyond the bound the read checks see broken leases in a few seeds in a hundred.
#[test]
fn beyond_the_clock_drift_bound_the_read_checks_catch_broken_leases() {
    let options = leases(3_000, ClockMode::BeyondBound);
    let caught: Vec<_> = (0..100)
        .filter_map(|seed| run_seed(seed, &options).violation)
        .collect();
    assert!(caught.len() >= 2, "caught in {} of 100 seeds", caught.len());
    assert!(
        caught
            .iter()
            .all(|v| v.invariant == "lease-read-quorum-bound"),
        "{caught:?}"
    );
}

/// Regression (an engine gap the simulator found): a follower inside a leader's lease took the higher
/// term of a refused pre-vote (the answer to its own pre-vote, sent before it heard from the
/// leader again) and forgets its leader, so it would grant a vote in that term right away.
/// Seed 10890 (leases, clocks within the bound): node 5 leads term 2 and, after a partition
/// heals, counts acknowledgements of nodes 2 and 3; node 2, a pre-candidate before the heal,
/// hears node 4 (a candidate of term 3) refuse its pre-vote and moves to term 3 with no
/// leader, 20 ms after hearing from node 5, which goes on serving lease reads with only
/// node 3 bound. The engine now ignores the term of a vote answer while it heard from its leader
/// within the election timeout (with leases on).
#[test]
fn a_follower_in_a_lease_keeps_its_leader_when_a_refused_pre_vote_carries_a_higher_term() {
    let report = run_seed(10_890, &leases(3_000, ClockMode::Drift).as_recorded());
    assert_eq!(report.violation, None);
}

/// Regression (an engine gap the simulator found): with lease reads, a restarted engine ignores
/// elections for an election timeout from its first tick, and now also before that tick (it
/// granted votes then, so a lease it granted before the crash was lost if a vote request came
/// first).
#[test]
fn a_restarted_engine_with_leases_ignores_vote_requests_before_its_first_tick() {
    let mut config = Config::default();
    config.lease_reads = true;
    config.check_quorum = true;
    let membership = Membership::new(vec![NodeId(1), NodeId(2), NodeId(3)]);
    let restored = RestoredState {
        hard_state: HardState {
            term: Term(3),
            vote: None,
            commit: LogIndex::ZERO,
        },
        ..RestoredState::default()
    };
    let mut engine = Engine::new(NodeId(2), membership, config, restored, 7).expect("valid");
    engine.drain_outputs().for_each(drop);
    let request = RequestVote {
        term: Term(4),
        candidate_id: NodeId(3),
        last_log_id: LogId::new(3, 10),
        pre_vote: false,
        leadership_transfer: false,
    };
    let message = Message::RequestVote(request);
    engine
        .step(Input::Received {
            from: NodeId(3),
            message,
        })
        .for_each(drop);
    assert_eq!(engine.status().term, Term(3), "{:?}", engine.status());
}
