//! The network and the nemesis: delays, drops, duplicates, reordering, symmetric and asymmetric
//! partitions, crashes, wiped disks, slow disks, leadership transfers and snapshot requests, all
//! drawn from the seed (membership churn has its own schedule, in `world::churn`).

use std::collections::BTreeSet;

use raft_core::engine::PlantedBug;

use crate::rng::SimRng;

/// Planted bugs: switches that break one rule on purpose, to show the checker catches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// The disk reports hard state durable but keeps only the term: after a crash the vote is
    /// forgotten and the node can vote twice in one term.
    ForgetVote,
    /// The disk reports log writes durable at once, before they are synced: a crash loses
    /// entries the node acknowledged.
    AckBeforeSync,
    /// Reads are served from the contacted node's state machine without ReadIndex, so a
    /// deposed leader or a lagging follower answers with stale data.
    StaleRead,
    /// The engine commits any entry a quorum holds, whatever its term (Raft Figure 8).
    CommitByCount,
    /// The engine grants a second vote in a term it already voted in.
    VoteTwice,
    /// A snapshot's data is read from the state machine when it is written out, not when it
    /// was asked for: entries committed meanwhile leak into a snapshot of an earlier index
    /// (a rule real implementations broke: creation at N must see exactly the state after N).
    LazySnapshot,
    /// The nemesis wipes disks without checking that the entries lost are held by a majority
    /// of the other nodes: a committed entry can then vanish from every quorum.
    UnsafeWipe,
    /// The engine's leader counts itself at its last log index instead of its durable one in
    /// the commit rule: an entry commits while durable on a minority of the disks.
    CommitBeforeOwnSync,
    /// The engine's candidate sends vote requests before its new term and its vote for itself
    /// are durable: after a crash it can vote again in that term, for someone else.
    VoteRequestBeforeSync,
    /// The engine's leader ignores a response carrying a higher term and keeps leading in its
    /// lower term.
    IgnoreHigherTermResponse,
    /// The engine's leader switches a change of voters straight to the new configuration,
    /// with no joint phase: the old and the new voters can form disjoint majorities.
    SkipJointPhase,
    /// The engine puts a configuration in force when it commits instead of when it is
    /// appended: nodes disagree on the voters while an entry is in flight.
    ConfigOnCommit,
    /// The engine's leader counts learners as voters in its commit rule.
    LearnerInQuorum,
    /// The engine's lease lasts twice the election timeout instead of the election timeout
    /// less the clock-drift bound: a deposed leader answers lease reads from its stale state
    /// (needs lease reads on).
    LeaseTooLong,
    /// The engine's follower answers a follower read at once at its own commit index, without
    /// asking the leader for a read index: it answers from a state that may lag the cluster's
    /// (needs follower reads on).
    FollowerReadEarly,
    /// The engine's leader, after a follower rejected an AppendEntries, resumes one entry past
    /// the position the follower denied: `next_index` passes the leader's last index plus one.
    NextIndexPastRejection,
    /// The engine's pre-candidates and candidates never campaign again once their round
    /// failed: safe, but the cluster can stop electing leaders (caught after a heal).
    CandidateNeverRetries,
    /// Under streaming replication the engine's leader takes a follower's stream open for an
    /// acknowledgement: the log position the follower names counts as matching and durable
    /// without the leader checking that its own log holds that entry (turns streaming on).
    StreamOpenTrusted,
}

impl Bug {
    /// Every planted bug.
    pub const ALL: [Bug; 18] = [
        Bug::ForgetVote,
        Bug::AckBeforeSync,
        Bug::StaleRead,
        Bug::CommitByCount,
        Bug::VoteTwice,
        Bug::LazySnapshot,
        Bug::UnsafeWipe,
        Bug::CommitBeforeOwnSync,
        Bug::VoteRequestBeforeSync,
        Bug::IgnoreHigherTermResponse,
        Bug::SkipJointPhase,
        Bug::ConfigOnCommit,
        Bug::LearnerInQuorum,
        Bug::LeaseTooLong,
        Bug::FollowerReadEarly,
        Bug::NextIndexPastRejection,
        Bug::CandidateNeverRetries,
        Bug::StreamOpenTrusted,
    ];

    /// The name used on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Bug::ForgetVote => "forget-vote",
            Bug::AckBeforeSync => "ack-before-sync",
            Bug::StaleRead => "stale-read",
            Bug::CommitByCount => "commit-by-count",
            Bug::VoteTwice => "vote-twice",
            Bug::LazySnapshot => "lazy-snapshot",
            Bug::UnsafeWipe => "unsafe-wipe",
            Bug::CommitBeforeOwnSync => "commit-before-own-sync",
            Bug::VoteRequestBeforeSync => "vote-request-before-sync",
            Bug::IgnoreHigherTermResponse => "ignore-higher-term-response",
            Bug::SkipJointPhase => "skip-joint-phase",
            Bug::ConfigOnCommit => "config-on-commit",
            Bug::LearnerInQuorum => "learner-in-quorum",
            Bug::LeaseTooLong => "lease-too-long",
            Bug::FollowerReadEarly => "follower-read-early",
            Bug::NextIndexPastRejection => "next-index-past-rejection",
            Bug::CandidateNeverRetries => "candidate-never-retries",
            Bug::StreamOpenTrusted => "stream-open-trusted",
        }
    }

    /// Parses a command-line name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Bug> {
        Bug::ALL.into_iter().find(|bug| bug.name() == name)
    }

    /// The engine-level bug to plant, for the bugs that live in the engine.
    pub(crate) fn in_engine(self) -> Option<PlantedBug> {
        match self {
            Bug::CommitByCount => Some(PlantedBug::CommitByCount),
            Bug::VoteTwice => Some(PlantedBug::VoteTwice),
            Bug::CommitBeforeOwnSync => Some(PlantedBug::CommitBeforeOwnSync),
            Bug::VoteRequestBeforeSync => Some(PlantedBug::VoteRequestBeforeSync),
            Bug::IgnoreHigherTermResponse => Some(PlantedBug::IgnoreHigherTermResponse),
            Bug::SkipJointPhase => Some(PlantedBug::SkipJointPhase),
            Bug::ConfigOnCommit => Some(PlantedBug::ConfigOnCommit),
            Bug::LearnerInQuorum => Some(PlantedBug::LearnerInQuorum),
            Bug::LeaseTooLong => Some(PlantedBug::LeaseTooLong),
            Bug::FollowerReadEarly => Some(PlantedBug::FollowerReadEarly),
            Bug::NextIndexPastRejection => Some(PlantedBug::NextIndexPastRejection),
            Bug::CandidateNeverRetries => Some(PlantedBug::CandidateNeverRetries),
            Bug::StreamOpenTrusted => Some(PlantedBug::StreamOpenTrusted),
            Bug::ForgetVote
            | Bug::AckBeforeSync
            | Bug::StaleRead
            | Bug::LazySnapshot
            | Bug::UnsafeWipe => None,
        }
    }
}

/// How messages travel right now.
#[derive(Clone, Debug)]
pub(crate) struct Network {
    pub(crate) drop_percent: u64,
    pub(crate) duplicate_percent: u64,
    pub(crate) delay_min_ms: u64,
    pub(crate) delay_max_ms: u64,
    /// Directed links that deliver nothing: (from, to) by node position.
    pub(crate) blocked: BTreeSet<(usize, usize)>,
    /// Messages to one node take longer and longer (see [`SlowLink`]).
    pub(crate) slow_into: Option<SlowLink>,
}

/// The links into one node slowing down: a message to it sent at `t` takes `(t - since_ms) / 2`
/// milliseconds longer, at most `max_ms`. The delay grows at half the rate of time, so the
/// node goes on hearing the others at a steady pace (a reply sent later never arrives before
/// an earlier one) while they fall further behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SlowLink {
    /// The node, by position.
    pub(crate) node: usize,
    /// When the slowing began.
    pub(crate) since_ms: u64,
    /// The most a message is held up.
    pub(crate) max_ms: u64,
}

impl SlowLink {
    /// The extra delay of a message to `to` sent at `now_ms`.
    fn extra_ms(&self, to: usize, now_ms: u64) -> u64 {
        if to == self.node {
            (now_ms.saturating_sub(self.since_ms) / 2).min(self.max_ms)
        } else {
            0
        }
    }
}

impl Network {
    pub(crate) fn calm() -> Network {
        Network {
            drop_percent: 0,
            duplicate_percent: 0,
            delay_min_ms: 1,
            delay_max_ms: 10,
            blocked: BTreeSet::new(),
            slow_into: None,
        }
    }

    pub(crate) fn delivers(&self, from: usize, to: usize) -> bool {
        !self.blocked.contains(&(from, to))
    }

    /// How long a message to node `to` (by position) sent at `now_ms` travels.
    pub(crate) fn delay(&self, rng: &mut SimRng, to: usize, now_ms: u64) -> u64 {
        let base = rng.range(self.delay_min_ms, self.delay_max_ms + 1);
        // Now and then a latency spike.
        let base = if rng.percent(2) { base * 10 } else { base };
        base + self.slow_into.map_or(0, |slow| slow.extra_ms(to, now_ms))
    }

    /// Changes the network's weather.
    pub(crate) fn reshape(&mut self, rng: &mut SimRng) {
        self.drop_percent = [0, 0, 1, 5, 20][rng.index(5)];
        self.duplicate_percent = [0, 0, 2, 10][rng.index(4)];
        self.delay_min_ms = rng.range(0, 5);
        self.delay_max_ms = self.delay_min_ms + rng.range(1, 40);
    }

    /// Cuts the nodes into two sides; `symmetric` cuts both directions, otherwise only
    /// messages from the first side to the second are lost.
    pub(crate) fn partition(&mut self, rng: &mut SimRng, nodes: usize, symmetric: bool) {
        self.heal();
        let side: Vec<bool> = (0..nodes).map(|_| rng.percent(50)).collect();
        for from in 0..nodes {
            for to in 0..nodes {
                if side.get(from) == Some(&true) && side.get(to) == Some(&false) {
                    self.blocked.insert((from, to));
                    if symmetric {
                        self.blocked.insert((to, from));
                    }
                }
            }
        }
    }

    /// Blocks every link to and from `node`.
    pub(crate) fn isolate(&mut self, node: usize, nodes: usize) {
        self.heal();
        for other in (0..nodes).filter(|&other| other != node) {
            self.blocked.insert((node, other));
            self.blocked.insert((other, node));
        }
    }

    /// Every link delivers again, at the usual speed.
    pub(crate) fn heal(&mut self) {
        self.blocked.clear();
        self.slow_into = None;
    }

    /// Blocks every link from `node` to the others (one way: it still hears them).
    pub(crate) fn cut_off_outgoing(&mut self, node: usize, nodes: usize) {
        for other in (0..nodes).filter(|&other| other != node) {
            self.blocked.insert((node, other));
        }
    }
}

/// One thing the nemesis does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    Heal,
    Partition,
    AsymmetricPartition,
    Crash,
    /// Crash the leader, for a short while: the faults that break Raft hit leaders (Jepsen).
    CrashLeader,
    /// Cut the leader off from everyone.
    IsolateLeader,
    Weather,
    TransferLeadership,
    Calm,
    /// Replace a node's machine: its log and snapshot are gone, its term and vote kept. It
    /// catches up through InstallSnapshot (or the log, if the leader kept it all).
    Wipe,
    /// Ask a random node for a snapshot now (the runtime's log-size policy does so).
    RequestSnapshot,
}

/// The next fault. With `snapshots` off it draws exactly what the nemesis drew before
/// snapshots existed, so old seeds replay the same runs.
pub(crate) fn pick_fault(rng: &mut SimRng, snapshots: bool) -> Fault {
    if snapshots && rng.percent(12) {
        return if rng.percent(40) {
            Fault::Wipe
        } else {
            Fault::RequestSnapshot
        };
    }
    match rng.range(0, 100) {
        0..20 => Fault::Heal,
        20..32 => Fault::Partition,
        32..40 => Fault::AsymmetricPartition,
        40..52 => Fault::Crash,
        52..66 => Fault::CrashLeader,
        66..74 => Fault::IsolateLeader,
        74..86 => Fault::Weather,
        86..92 => Fault::TransferLeadership,
        _ => Fault::Calm,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slowed_link_holds_later_messages_longer_up_to_its_maximum_without_reordering_them() {
        let link = SlowLink {
            node: 1,
            since_ms: 100,
            max_ms: 150,
        };
        assert_eq!(link.extra_ms(0, 400), 0, "only messages to the node");
        assert_eq!(link.extra_ms(1, 100), 0);
        assert_eq!(link.extra_ms(1, 200), 50);
        assert_eq!(link.extra_ms(1, 1_000), 150);
        let arrivals: Vec<u64> = (100..1_000).map(|t| t + link.extra_ms(1, t)).collect();
        assert!(arrivals.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn healing_the_network_ends_a_slowed_link_and_one_way_cuts() {
        let mut network = Network::calm();
        network.slow_into = Some(SlowLink {
            node: 0,
            since_ms: 0,
            max_ms: 150,
        });
        network.cut_off_outgoing(0, 3);
        assert!(!network.delivers(0, 1) && !network.delivers(0, 2));
        assert!(network.delivers(1, 0), "the node still hears the others");
        network.heal();
        assert_eq!(network.slow_into, None);
        assert!(network.delivers(0, 1));
    }
}
