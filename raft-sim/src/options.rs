//! What a run is asked to do and the figures it reports: [`SimOptions`] (steps, a planted bug,
//! the [`SnapshotMode`], membership churn, lease reads, the [`ClockMode`], follower reads, the
//! split brain, the heal, the targeted nemesis and outcome-only checks), [`SnapshotCounts`],
//! [`ChurnCounts`], [`LeaseCounts`], [`FollowerReadCounts`], [`HealCounts`] and
//! [`TargetedCounts`], [`StreamCounts`]. They sit below the simulated world so that the world, its parts, the checker and the crate root can
//! all name them; the crate root re-exports them, so their public paths are
//! `raft_sim::SimOptions` and so on.

use crate::clock::ClockMode;
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
    /// Membership churn: learners added on fresh nodes, promoted, voters and learners removed
    /// (the leader among them), several voters changed at once, removed nodes stopped. Off, a
    /// seed replays exactly the run it gave before membership changes existed.
    pub churn: bool,
    /// Lease reads: the engines run with `Config::lease_reads` (and check-quorum) and a
    /// `Config::max_clock_drift_ms` drawn per seed, and clients ask for lease reads as well as
    /// ReadIndex reads. Off, a seed replays exactly the run it gave before leases existed.
    pub leases: bool,
    /// The nodes' clocks: exact (the simulated time), drifting and jumping within the bound
    /// `Config::max_clock_drift_ms` states, or beyond it.
    pub clocks: ClockMode,
    /// The checks of reads when the engine answers them (`read-covers-commits`, and with
    /// lease reads `lease-read-quorum-bound` and `lease-read-sole-leader`). On by default;
    /// off, only the linearizability check of the clients' history judges reads, which shows
    /// what a broken lease does to clients.
    pub read_checks: bool,
    /// Follower reads: the clients send some of their reads to a node other than the one
    /// they take for the leader (`Input::FollowerReadRequested`: the follower asks its leader
    /// for a read index, then answers once it applied it). On by default; off, together with
    /// `split_brain` and `heal`, a seed replays the run it gave before these existed.
    pub follower_reads: bool,
    /// With lease reads: the nemesis sometimes plays a split brain on the leader (the links
    /// into it slowed by an election timeout, then its own messages cut off), with the lease
    /// readers sent to it while the writes follow the new leader, so that a lease outliving
    /// the followers' promise shows in the clients' history. On by default.
    pub split_brain: bool,
    /// In a share of the seeds the faults stop at a step drawn per seed (the network heals,
    /// every node runs), and a leader must then commit a new entry within a bound
    /// (`liveness-after-heal`). On by default.
    pub heal: bool,
    /// The targeted nemesis: now and then, instead of a random fault, crashes aimed at the
    /// windows a broken durability rule needs (the leader right after it appends, the nodes
    /// that acknowledged its newest entries right after their acknowledgements, candidates and
    /// voters right after they reveal a vote, each losing its page cache) or a slow disk on
    /// exactly the leader. On by default; off, a seed replays the run it gave before.
    pub targeted: bool,
    /// Judge only outcomes a user of the cluster sees or Raft's own safety properties
    /// promise (two leaders in a term, logs that disagree, a leader lacking a committed
    /// entry, a committed entry lost or applied differently, a wrong snapshot, a
    /// non-linearizable history, no recovery after the heal), not the rules an engine follows
    /// to get there (durability before replies and reveals, terms adopted, commits durable on
    /// a majority, replication bounds, read and membership rules). Off by default; on, it
    /// shows whether the nemesis turns a broken rule into harm.
    pub outcomes_only: bool,
    /// Streaming replication (`Replication::Streaming`) in every seed: each follower opens
    /// a stream to its leader, batches travel on it in order, and the streams fail: cut
    /// mid-batch (everything in transit lost), by partitions and crashes, their opens lost,
    /// duplicated and delayed past newer ones, a stale leader's stream kept open. Off by
    /// default (pipelined replication, the runs earlier campaigns recorded).
    pub streaming: bool,
}

impl Default for SimOptions {
    fn default() -> SimOptions {
        SimOptions {
            steps: 3_000,
            bug: None,
            snapshots: SnapshotMode::Random,
            churn: false,
            leases: false,
            clocks: ClockMode::Exact,
            read_checks: true,
            follower_reads: true,
            split_brain: true,
            heal: true,
            targeted: true,
            outcomes_only: false,
            streaming: false,
        }
    }
}

impl SimOptions {
    /// These options with what the simulator added since a seed was recorded switched off
    /// (follower reads, the split-brain fault, the heal and the targeted nemesis): pinned
    /// seeds of earlier campaigns replay exactly the runs they gave then.
    #[must_use]
    pub fn as_recorded(self) -> SimOptions {
        SimOptions {
            follower_reads: false,
            split_brain: false,
            heal: false,
            targeted: false,
            ..self
        }
    }

    /// These options without the targeted nemesis: seeds pinned after the heal existed and
    /// before the targeted nemesis did replay the runs they gave then.
    #[must_use]
    pub fn untargeted(self) -> SimOptions {
        SimOptions {
            targeted: false,
            ..self
        }
    }
}

/// What the streams did in one run (or, summed, in many); all zero without streaming.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamCounts {
    /// Streams a follower opened.
    pub opened: u64,
    /// Opens that never reached the leader (lost, partitioned, the leader down or not a
    /// member the follower knows).
    pub open_failed: u64,
    /// Streams cut with traffic on them (mid-batch: what was in transit is lost).
    pub cut: u64,
    /// Streams that ended, for any reason (cut, failed open, an end crashed, the follower
    /// opened another).
    pub ended: u64,
    /// Batches delivered on a stream.
    pub batches: u64,
}

impl StreamCounts {
    /// Adds another run's counts.
    pub fn add(&mut self, other: &StreamCounts) {
        self.opened += other.opened;
        self.open_failed += other.open_failed;
        self.cut += other.cut;
        self.ended += other.ended;
        self.batches += other.batches;
    }
}

/// What the targeted nemesis did in one run (or, summed, in many).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TargetedCounts {
    /// Strikes of the targeted nemesis: traps armed (crashes waiting for an append, a
    /// commit, an acknowledgement, a vote or a win), disks slowed, or both.
    pub traps: u64,
    /// Nodes crashed by a trap, right after the output it waited for.
    pub crashes: u64,
    /// Times one node's disk alone was made slow (the leader's, or a follower's that
    /// leadership was then handed to).
    pub slow_disks: u64,
}

impl TargetedCounts {
    /// Adds another run's counts.
    pub fn add(&mut self, other: &TargetedCounts) {
        self.traps += other.traps;
        self.crashes += other.crashes;
        self.slow_disks += other.slow_disks;
    }
}

/// What the clients' follower reads became in one run (or, summed, in many).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FollowerReadCounts {
    /// Follower reads asked of a node (a follower, mostly).
    pub requested: u64,
    /// Confirmed by the engine (`ReadReady`): answered once the node applied the read index.
    pub confirmed: u64,
    /// Refused (no leader known, the leader changed or refused, the request timed out).
    pub rejected: u64,
    /// Confirmed by an answer to a read-index request whose number an earlier life of the
    /// follower also used, which the follower cannot tell from an answer to that earlier
    /// request (a known engine gap): not judged, and refused to the client.
    pub answered_across_lives: u64,
    /// Of those, the answers whose read index was below an index committed when the read was
    /// asked for: the stale reads the gap would have served.
    pub stale_across_lives: u64,
}

impl FollowerReadCounts {
    /// Adds another run's counts.
    pub fn add(&mut self, other: &FollowerReadCounts) {
        self.requested += other.requested;
        self.confirmed += other.confirmed;
        self.rejected += other.rejected;
        self.answered_across_lives += other.answered_across_lives;
        self.stale_across_lives += other.stale_across_lives;
    }
}

/// What the heal did in one run (or, summed, in many).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HealCounts {
    /// Runs whose faults stopped.
    pub healed: u64,
    /// Healed runs whose recovery is judged by `liveness-after-heal` (those with pre-vote).
    pub judged: u64,
    /// Healed runs in which a leader committed a new entry after the heal.
    pub recovered: u64,
    /// Judged runs that ended before a new entry committed and before the bound passed.
    pub unfinished: u64,
    /// The longest time from a heal to the commit of a new entry in a judged run (simulated
    /// milliseconds).
    pub slowest_recovery_ms: u64,
    /// The same in election timeouts of that run's configuration, in hundredths (the largest
    /// over the runs).
    pub slowest_recovery_timeouts_percent: u64,
}

impl HealCounts {
    /// Adds another run's counts.
    pub fn add(&mut self, other: &HealCounts) {
        self.healed += other.healed;
        self.judged += other.judged;
        self.recovered += other.recovered;
        self.unfinished += other.unfinished;
        self.slowest_recovery_ms = self.slowest_recovery_ms.max(other.slowest_recovery_ms);
        self.slowest_recovery_timeouts_percent = self
            .slowest_recovery_timeouts_percent
            .max(other.slowest_recovery_timeouts_percent);
    }
}

/// What the clients' lease reads became in one run (or, summed, in many).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeaseCounts {
    /// Lease reads asked of a node.
    pub requested: u64,
    /// Answered at once by a leader whose lease held (no round trip).
    pub served_at_once: u64,
    /// Taken by a leader whose lease did not hold: served as a ReadIndex read, or refused
    /// later when it stopped leading.
    pub fell_back: u64,
    /// Refused at once by a node that did not lead.
    pub rejected: u64,
}

impl LeaseCounts {
    /// Adds another run's counts.
    pub fn add(&mut self, other: &LeaseCounts) {
        self.requested += other.requested;
        self.served_at_once += other.served_at_once;
        self.fell_back += other.fell_back;
        self.rejected += other.rejected;
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

/// What membership churn did in one run (or, summed, in many).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChurnCounts {
    /// Changes asked of the leader.
    pub requested: u64,
    /// Changes the leader accepted (appended).
    pub accepted: u64,
    /// Changes refused: the node asked no longer led.
    pub rejected_not_leader: u64,
    /// Changes refused: another change was in progress (or the leader had not committed in
    /// its term yet).
    pub rejected_in_progress: u64,
    /// Changes refused as not fitting the membership (the nemesis asks for some on purpose).
    pub rejected_invalid: u64,
    /// Changes completed: a simple (not joint) configuration committed.
    pub completed: u64,
    /// Joint configurations committed.
    pub joint_committed: u64,
    /// Learners that joined in a committed configuration (each a fresh node with a new id).
    pub learners_added: u64,
    /// Learners that became voters in a committed configuration.
    pub promoted: u64,
    /// Members gone from a committed configuration.
    pub nodes_removed: u64,
    /// Committed configurations that removed the leader of the term that wrote them.
    pub leaders_removed: u64,
    /// Removed nodes the nemesis stopped for good (until then they keep running).
    pub removed_stopped: u64,
}

impl ChurnCounts {
    /// Adds another run's counts.
    pub fn add(&mut self, other: &ChurnCounts) {
        self.requested += other.requested;
        self.accepted += other.accepted;
        self.rejected_not_leader += other.rejected_not_leader;
        self.rejected_in_progress += other.rejected_in_progress;
        self.rejected_invalid += other.rejected_invalid;
        self.completed += other.completed;
        self.joint_committed += other.joint_committed;
        self.learners_added += other.learners_added;
        self.promoted += other.promoted;
        self.nodes_removed += other.nodes_removed;
        self.leaders_removed += other.leaders_removed;
        self.removed_stopped += other.removed_stopped;
    }

    /// Changes refused, whatever the reason.
    #[must_use]
    pub fn rejected(&self) -> u64 {
        self.rejected_not_leader + self.rejected_in_progress + self.rejected_invalid
    }
}
