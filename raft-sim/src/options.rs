//! What a run is asked to do and the snapshot figures it reports: [`SimOptions`] (steps, a
//! planted bug, the [`SnapshotMode`]) and [`SnapshotCounts`]. They sit below the simulated world
//! so that the world, its parts and the crate root can all name them; the crate root re-exports
//! them, so their public paths are `raft_sim::SimOptions` and so on.

use crate::faults::Bug;

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
