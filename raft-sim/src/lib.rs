//! raft-sim: a deterministic simulator and safety checker for raft-core's engine.
//!
//! A `World` runs N production engines against a simulated clock, a network that
//! delays, drops, duplicates and reorders messages and partitions nodes (also in one direction
//! only), disks that lose every write not yet reported durable when a node crashes (or the whole
//! disk, when the nemesis replaces a machine), and clients that write and read a small key-value
//! store all the time. Snapshots are taken, compact the logs and travel to lagging or wiped
//! followers in chunks over the same faulty network. After every step it checks the safety
//! properties of Raft (see [`invariants`](Violation)), among them that no message reveals a
//! term or vote before it is durable on the sender's simulated disk (`reveal-after-durable`)
//! and that a node adopts a higher term it receives (`higher-term-adopted`); at the end it
//! checks the clients' history for linearizability with [`linearizability`].
//!
//! With [`SimOptions::churn`] the membership changes all the time, mixed with every other
//! fault: learners are added on fresh nodes (empty disks, new ids, started with an empty
//! membership), promoted, voters and learners removed (the leader among them), voters replaced
//! and several changed at once; removed nodes keep running until they are stopped for good.
//! The checks count over the committed configurations (`commit-durable-on-majority` over the
//! voters of the latest one), and more apply: no configuration entry appended to any log allows
//! a majority disjoint from one of the configuration before it (`config-quorums-overlap`), a
//! snapshot carries the committed configuration of its index (`snapshot-membership`), only
//! voters campaign (`campaign-as-voter`), and a removed node cannot disturb the cluster
//! (`removed-cannot-disrupt`). [`ChurnCounts`] reports what churn did. Without churn (and
//! [`SimOptions::as_recorded`]) a seed replays the run it gave before membership changes
//! existed.
//!
//! With [`SimOptions::leases`] the engines serve lease reads (`Config::lease_reads`, with
//! check-quorum and a `max_clock_drift_ms` drawn per seed) and clients ask for them as well as
//! for ReadIndex reads; with [`SimOptions::clocks`] every node's engine sees its own clock
//! ([`ClockMode`]): drifting and jumping forward within the bound `max_clock_drift_ms` states,
//! where every history must stay linearizable, or far beyond it. Reads are checked when the
//! engine answers them, by consequences independent of its arithmetic: a read's index covers
//! every index committed when it was asked for (`read-covers-commits`), a lease read is served
//! only while a quorum would still ignore a vote request (`lease-read-quorum-bound`, the
//! followers' side of the lease, judged by their own clocks) and while no later term has a
//! leader (`lease-read-sole-leader`). [`LeaseCounts`] reports the lease reads served at once
//! and those that fell back to ReadIndex. With lease reads the nemesis also plays a split brain
//! on the leader now and then ([`SimOptions::split_brain`]): the links into it slow down by up
//! to an election timeout, then its own messages are cut off, while the lease readers are sent
//! to it and a writer follows the new leader, so that a lease outliving the followers' promise
//! shows in the clients' history even without the read checks.
//!
//! With [`SimOptions::follower_reads`] (on by default) the clients send some of their reads to
//! followers, which ask the leader for a read index and answer once they applied it; the read
//! checks and the linearizability check judge them like the others ([`FollowerReadCounts`]).
//!
//! With [`SimOptions::heal`] (on by default) the faults stop in half the seeds, at a step drawn
//! per seed: the network heals, every node runs, neither the nemesis nor churn strike again.
//! A probe client then writes to the leader, and one of its writes must commit within ten
//! election timeouts (`liveness-after-heal`, judged in the seeds with pre-vote; [`HealCounts`]).
//!
//! With [`SimOptions::targeted`] (on by default) the nemesis also aims its crashes at the
//! windows a broken durability rule needs: the leader right after it appends or commits, the
//! nodes that acknowledged its newest entries right after their acknowledgements, candidates
//! and voters right after they reveal a vote or win, each losing its unsynced writes; and it
//! slows the disk of exactly one node (the leader, or a follower it then hands leadership to).
//! [`TargetedCounts`] reports the strikes. [`SimOptions::outcomes_only`] judges a run by Raft's
//! safety properties and the clients' history alone, not by the rules an engine follows to
//! keep them: with it, the planted durability bugs show the harm they do (a leader elected
//! without a committed entry, two leaders in a term), which the targeted crashes make tens of
//! times likelier than crashes at random moments.
//!
//! [`SimOptions::as_recorded`] switches off what came after a seed was pinned (follower reads,
//! the split brain, the heal, the targeted nemesis), so the pinned seeds of `tests/` replay
//! their runs ([`SimOptions::untargeted`] only the last).
//!
//! [`Bug`] plants a broken rule to show the checks catch it: forget-vote, ack-before-sync,
//! stale-read, commit-by-count, vote-twice, lazy-snapshot, unsafe-wipe,
//! commit-before-own-sync, vote-request-before-sync, ignore-higher-term-response, with
//! churn skip-joint-phase, config-on-commit, learner-in-quorum, with lease reads
//! lease-too-long, with follower reads follower-read-early, next-index-past-rejection (caught
//! by `progress-bounds`, and by `liveness-after-heal` where it only stalls the followers) and
//! the liveness bug candidate-never-retries (each has a pinned seed or seed range in
//! `tests/`).
//!
//! Everything random comes from the seed, so a failing seed replays exactly:
//!
//! ```
//! let options = raft_sim::SimOptions { steps: 2_000, ..raft_sim::SimOptions::default() };
//! let report = raft_sim::run_seed(7, &options);
//! assert!(report.violation.is_none(), "{:?}", report.violation);
//! assert_eq!(report, raft_sim::run_seed(7, &options));
//! ```
#![forbid(unsafe_code)]

mod client;
mod clock;
pub mod error;
mod faults;
mod invariants;
mod kv_state;
pub mod linearizability;
mod log;
mod node;
mod options;
mod rng;
mod world;

pub use clock::ClockMode;
pub use error::Error;
pub use faults::Bug;
pub use invariants::Violation;
pub use options::{
    ChurnCounts, FollowerReadCounts, HealCounts, LeaseCounts, SimOptions, SnapshotCounts,
    SnapshotMode, StreamCounts, TargetedCounts,
};

use linearizability::{Budget, Verdict};

/// The outcome of one seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedReport {
    /// The seed.
    pub seed: u64,
    /// Steps run.
    pub steps: u64,
    /// The first broken property, if any.
    pub violation: Option<Violation>,
    /// Distinct log indexes committed (and applied) in the cluster.
    pub commits: u64,
    /// Leaderships won.
    pub elections: u64,
    /// Client operations that completed.
    pub client_ops: u64,
    /// True when the linearizability search ran out of budget (not a violation).
    pub linearizability_unknown: bool,
    /// What snapshots did.
    pub snapshots: SnapshotCounts,
    /// What membership churn did (all zero without churn).
    pub churn: ChurnCounts,
    /// What the lease reads became (all zero without lease reads).
    pub leases: LeaseCounts,
    /// What the follower reads became (all zero without follower reads).
    pub follower_reads: FollowerReadCounts,
    /// What the heal did (all zero in a run whose faults never stop).
    pub heal: HealCounts,
    /// What the targeted nemesis did (all zero with it off).
    pub targeted: TargetedCounts,
    /// What the streams did (all zero without streaming).
    pub streams: StreamCounts,
}

/// Runs one seeded simulation and checks it.
#[must_use]
pub fn run_seed(seed: u64, options: &SimOptions) -> SeedReport {
    let mut world = world::World::new(seed, options);
    let mut steps = 0;
    while steps < options.steps && world.checker.violation.is_none() && world.step() {
        steps += 1;
    }
    let mut linearizability_unknown = false;
    if world.checker.violation.is_none() {
        let history = world.clients.history();
        match linearizability::kv::check_kv(
            &history,
            Budget {
                max_steps: 2_000_000,
            },
        ) {
            Verdict::Linearizable => {}
            Verdict::NotLinearizable => {
                let detail = format!("client history of {} operations", history.len());
                world.checker.fail("linearizability", detail);
            }
            Verdict::Unknown => linearizability_unknown = true,
        }
    }
    SeedReport {
        seed,
        steps,
        violation: world.checker.violation.clone(),
        commits: world.checker.committed.len() as u64,
        elections: world.checker.elections,
        client_ops: world.clients.completed,
        linearizability_unknown,
        snapshots: world.snapshot_counts,
        churn: world.churn_counts(),
        leases: world.lease_counts,
        follower_reads: world.follower_read_counts,
        heal: world.heal_counts(),
        targeted: world.targeted_counts,
        streams: world.streams.counts,
    }
}
