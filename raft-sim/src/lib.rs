//! raft-sim: a deterministic simulator and safety checker for raft-core's engine.
//!
//! A [`World`](world) runs N production engines against a simulated clock, a network that
//! delays, drops, duplicates and reorders messages and partitions nodes (also in one direction
//! only), disks that lose every write not yet reported durable when a node crashes (or the whole
//! disk, when the nemesis replaces a machine), and clients that write and read a small key-value
//! store all the time. Snapshots are taken, compact the logs and travel to lagging or wiped
//! followers in chunks over the same faulty network. After every step it checks the safety
//! properties of Raft (see [`invariants`](Violation)); at the end it checks the clients'
//! history for linearizability with [`linearizability`].
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
pub mod error;
mod faults;
mod invariants;
mod kv_state;
pub mod linearizability;
mod log;
mod node;
mod rng;
mod world;

pub use error::Error;
pub use faults::Bug;
pub use invariants::Violation;

use linearizability::{Budget, Verdict};

/// Whether and how often the nodes take snapshots.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SnapshotMode {
    /// Drawn per seed: by entry count in three seeds of four (every 3 to 40 entries), always
    /// on request of the nemesis, which also wipes nodes.
    #[default]
    Random,
    /// Never: the simulation draws exactly what it drew before snapshots existed, so seeds
    /// recorded then replay the same runs.
    Off,
    /// In every seed, by entry count, plus what `Random` does.
    Always,
}

impl SnapshotMode {
    /// Every mode.
    pub const ALL: [SnapshotMode; 3] = [
        SnapshotMode::Random,
        SnapshotMode::Off,
        SnapshotMode::Always,
    ];

    /// The name used on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            SnapshotMode::Random => "random",
            SnapshotMode::Off => "off",
            SnapshotMode::Always => "always",
        }
    }

    /// Parses a command-line name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<SnapshotMode> {
        SnapshotMode::ALL
            .into_iter()
            .find(|mode| mode.name() == name)
    }
}

/// What to run for one seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimOptions {
    /// Events to process.
    pub steps: u64,
    /// A rule to break on purpose, to show the checks catch it.
    pub bug: Option<Bug>,
    /// Snapshots, compaction and disk wipes.
    pub snapshots: SnapshotMode,
}

impl Default for SimOptions {
    fn default() -> SimOptions {
        SimOptions {
            steps: 3_000,
            bug: None,
            snapshots: SnapshotMode::Random,
        }
    }
}

/// What snapshots did in one run (or, summed, in many).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotCounts {
    /// Snapshots created by a node and made its latest.
    pub created: u64,
    /// Snapshots received from a leader and stored (the last chunk saved).
    pub installed: u64,
    /// InstallSnapshot chunks a leader filled and handed to the network.
    pub chunks_sent: u64,
    /// Chunks a follower saved (more than one per install: transfers take several; fewer
    /// than sent: the network lost or duplicated some, and transfers resumed).
    pub chunks_saved: u64,
    /// Chunks damaged on their way (on the wire, or before their CRC was computed).
    pub chunks_corrupted: u64,
    /// State machines replaced by a snapshot (installs, and restarts from one).
    pub restored: u64,
    /// Restarts whose durable snapshot replaced a log that ended before it or disagreed with
    /// it (a crash came between storing a snapshot from the leader and cutting the log).
    pub replaced_at_restart: u64,
    /// Log compactions.
    pub compactions: u64,
    /// Disks wiped by the nemesis.
    pub wipes: u64,
}

impl SnapshotCounts {
    /// Adds another run's counts.
    pub fn add(&mut self, other: &SnapshotCounts) {
        self.created += other.created;
        self.installed += other.installed;
        self.chunks_sent += other.chunks_sent;
        self.chunks_saved += other.chunks_saved;
        self.chunks_corrupted += other.chunks_corrupted;
        self.restored += other.restored;
        self.replaced_at_restart += other.replaced_at_restart;
        self.compactions += other.compactions;
        self.wipes += other.wipes;
    }
}

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
    }
}
