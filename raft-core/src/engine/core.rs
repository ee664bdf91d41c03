//! `Core`: the state every role shares (term, vote, log view, commit index, clock, outputs) and
//! the helpers every role uses to change it: persisting term and vote before anything reveals
//! them, holding sends until they are durable, appending locally, committing.

use super::configs::Configs;
use super::log_ids::LogIds;
use super::output::Output;
use super::rng::Rng;
use crate::config::Config;
use crate::message::Message;
use crate::snapshot::SnapshotMeta;
use crate::types::{Entry, HardState, LogIndex, Membership, NodeId, Term};

/// A protocol rule broken on purpose, for the simulator's own tests. Only
/// `Engine::plant_bug`, behind the `planted-bugs` feature, can switch one on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlantedBug {
    /// Commit any entry a quorum holds, whatever its term (the Figure 8 mistake).
    CommitByCount,
    /// Grant a vote even after voting for another candidate in the same term.
    VoteTwice,
    /// The leader counts itself at its last log index, not its durable one, in the commit rule:
    /// an entry can commit while it is durable on a minority of the disks.
    CommitBeforeOwnSync,
    /// A candidate sends its vote requests at once, before its new term and its vote for
    /// itself are durable (bypassing `Core::send`'s hold).
    VoteRequestBeforeSync,
    /// A leader ignores a response that carries a higher term instead of stepping down, and
    /// keeps leading in the lower term.
    IgnoreHigherTermResponse,
    /// A change of voters switches straight to the new configuration, with no joint phase.
    SkipJointPhase,
    /// A configuration takes effect when it commits instead of when it is appended.
    ConfigOnCommit,
    /// The leader's commit rule counts learners as if they voted.
    LearnerInQuorum,
    /// A leader's lease lasts twice the election timeout instead of less than one.
    LeaseTooLong,
    /// A follower answers a follower read at once with its own commit index, without asking
    /// the leader for a read index (its commit index may lag the cluster's).
    FollowerReadEarly,
    /// After a rejection the leader resumes one entry past the position the follower denied
    /// instead of at or before it: a follower's `next_index` can pass the leader's last index
    /// plus one, and the follower never catches up.
    NextIndexPastRejection,
    /// A pre-candidate or candidate whose round failed never campaigns again: its election
    /// timer is not re-armed, so only a leader it hears from gets it going (a liveness bug:
    /// nothing unsafe happens, the cluster can just stop electing leaders).
    CandidateNeverRetries,
    /// Under streaming replication the leader takes a follower's stream open for an
    /// acknowledgement: the position it names counts as matching and durable, unchecked.
    StreamOpenTrusted,
}

/// A snapshot being received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Receiving {
    /// The term and leader sending it: a transfer never spans two leaders.
    pub(crate) term: Term,
    pub(crate) leader: NodeId,
    pub(crate) meta: SnapshotMeta,
    /// The data received so far ends here.
    pub(crate) next_offset: u64,
    /// CRC-32C of the data received so far.
    pub(crate) crc: u32,
}

/// State shared by every role.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) id: NodeId,
    pub(crate) config: Config,
    /// The configurations in the log; the latest is in force.
    pub(crate) configs: Configs,
    pub(crate) rng: Rng,
    pub(crate) now_ms: u64,
    pub(crate) term: Term,
    pub(crate) vote: Option<NodeId>,
    /// The (term, vote) last reported durable.
    pub(crate) durable_term_vote: (Term, Option<NodeId>),
    pub(crate) commit_index: LogIndex,
    pub(crate) log: LogIds,
    /// The last index of the current log known durable.
    pub(crate) durable_index: LogIndex,
    /// Grows at every truncation; see `Output::AppendLog::epoch`.
    pub(crate) log_epoch: u64,
    pub(crate) leader_id: Option<NodeId>,
    /// Whether a tick has set the clock yet; the election timer is armed at the first one.
    pub(crate) clock_started: bool,
    /// With lease reads, a (re)started node ignores elections until this time, as if it had
    /// just heard from a leader: a lease it granted before a crash is kept.
    pub(crate) quiet_until_ms: u64,
    pub(crate) election_deadline_ms: u64,
    /// When this node last heard from the leader of its term (followers).
    pub(crate) leader_contact_ms: Option<u64>,
    /// Sends held until the term and vote they reveal are durable.
    pub(crate) held: Vec<Output>,
    pub(crate) outputs: Vec<Output>,
    /// AppendEntries sequence numbers, unique for the engine's lifetime (across terms, so a
    /// late `SendFailed` of an earlier term never hits a new request).
    pub(crate) next_seq: u64,
    /// Always `None` unless the `planted-bugs` feature's `Engine::plant_bug` set it.
    pub(crate) planted_bug: Option<PlantedBug>,
    /// The latest durable snapshot (created here or installed from a leader).
    pub(crate) snapshot: Option<SnapshotMeta>,
    /// A `CreateSnapshot` is out and not yet reported.
    pub(crate) creating_snapshot: bool,
    /// A snapshot the leader of the current term is sending, chunk by chunk. Kept across role
    /// changes within the term (a follower whose timer fired during a long transfer resumes it).
    pub(crate) receiving: Option<Receiving>,
}

impl Core {
    pub(crate) fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            // Only a durable prefix may be called committed after a restart: a committed
            // index above the durable one could name an entry a crash replaces.
            commit: self.commit_index.min(self.durable_index),
        }
    }

    pub(crate) fn term_vote_durable(&self) -> bool {
        self.durable_term_vote == (self.term, self.vote)
    }

    /// Changes term and vote and asks for them to be persisted; sends wait until they are.
    pub(crate) fn set_term_vote(&mut self, term: Term, vote: Option<NodeId>) {
        debug_assert!(term >= self.term, "terms never go back");
        if (term, vote) == (self.term, self.vote) {
            return;
        }
        self.term = term;
        self.vote = vote;
        let hard_state = self.hard_state();
        // Back-to-back writes (a new term, then a vote in it) need only the last one.
        match self.outputs.last_mut() {
            Some(Output::PersistHardState(pending)) => *pending = hard_state,
            _ => self.outputs.push(Output::PersistHardState(hard_state)),
        }
    }

    /// Sends a message, or holds it until the term and vote are durable.
    pub(crate) fn send(&mut self, to: NodeId, message: Message) {
        self.send_output(Output::Send { to, message });
    }

    pub(crate) fn send_output(&mut self, output: Output) {
        if self.term_vote_durable() {
            self.outputs.push(output);
        } else {
            self.held.push(output);
        }
    }

    pub(crate) fn reset_election_timer(&mut self) {
        let timeout = self.config.election_timeout_ms;
        self.election_deadline_ms = self.now_ms + self.rng.range(timeout, 2 * timeout);
    }

    /// Whether a leader of the current term was heard from within an election timeout (the
    /// lease that pre-vote and check-quorum rely on). A leader trusts itself.
    pub(crate) fn heard_from_leader_recently(&self) -> bool {
        if self.leader_id == Some(self.id) || self.now_ms < self.quiet_until_ms {
            return true;
        }
        self.leader_id.is_some()
            && self.leader_contact_ms.is_some_and(|contact| {
                self.now_ms.saturating_sub(contact) < self.config.election_timeout_ms
            })
    }

    pub(crate) fn commit_to(&mut self, index: LogIndex) {
        if index > self.commit_index {
            self.commit_index = index;
            self.outputs.push(Output::Commit { upto: index });
            let every = self.config.snapshot_entries;
            if every > 0 && index.0 - self.snapshot_index().0 >= every {
                self.create_snapshot();
            }
        }
    }

    /// Appends entries to the local log: `AppendLog` then `PreCommit` of the same range.
    pub(crate) fn append_local(&mut self, entries: Vec<Entry>) {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return;
        };
        let (first, last) = (first.log_id.index, last.log_id.index);
        for entry in &entries {
            self.log.push(entry.log_id, entry.payload.len());
        }
        self.configs.on_append(&entries);
        let epoch = self.log_epoch;
        self.outputs.push(Output::AppendLog { entries, epoch });
        self.outputs.push(Output::PreCommit { first, last });
    }

    /// A fresh request sequence number.
    pub(crate) fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// The configuration in force: the latest in the log, committed or not.
    pub(crate) fn membership(&self) -> &Membership {
        if self.bug(PlantedBug::ConfigOnCommit) {
            return self.configs.at(self.commit_index);
        }
        self.configs.latest()
    }

    /// The index of the configuration in force (zero for the one the node started with).
    pub(crate) fn membership_index(&self) -> LogIndex {
        if self.bug(PlantedBug::ConfigOnCommit) {
            return self.configs.index_at(self.commit_index);
        }
        self.configs.latest_index()
    }

    /// Every other voter: the nodes a candidate asks for votes.
    pub(crate) fn voting_peers(&self) -> Vec<NodeId> {
        let membership = self.membership();
        let mut voters: Vec<NodeId> = membership
            .voters()
            .chain(membership.outgoing_voters())
            .filter(|&id| id != self.id)
            .collect();
        voters.sort_unstable();
        voters.dedup();
        voters
    }

    /// Whether this node votes in the configuration in force.
    pub(crate) fn is_voter(&self) -> bool {
        self.membership().is_voter(self.id)
    }

    /// Whether this node may start a (pre-)election: a voter of its configuration in force, or
    /// (with pre-vote) a node that configuration removed while it does not know that it
    /// committed and that was a voter of the configuration before it (Raft thesis §4.2.2: it
    /// may still be needed to elect a leader until its removal commits). Such a node wins only
    /// with a quorum of the configuration in force, which it is not part of; as leader it then
    /// commits its removal and hands leadership over. Pre-vote keeps it from disturbing a
    /// cluster that already moved on: members that hear from a leader refuse its pre-votes.
    pub(crate) fn may_campaign(&self) -> bool {
        if self.is_voter() {
            return true;
        }
        let index = self.membership_index();
        self.config.pre_vote
            && index > self.commit_index
            && self.configs.at(index.prev()).is_voter(self.id)
    }

    /// Whether the planted bug `bug` is switched on (never, without the feature).
    pub(crate) fn bug(&self, bug: PlantedBug) -> bool {
        self.planted_bug == Some(bug)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::engine::{Engine, RestoredState};
    use crate::types::{Membership, NodeId};

    /// Node 1 of three, election timeout T = 1000 ms, its clock at 10 000.
    fn engine() -> Engine {
        let config = Config {
            election_timeout_ms: 1_000,
            ..Config::default()
        };
        let membership = Membership::new([NodeId(1), NodeId(2), NodeId(3)]);
        let mut engine = Engine::new(NodeId(1), membership, config, RestoredState::default(), 7)
            .expect("valid config");
        engine.core.now_ms = 10_000;
        engine.core.quiet_until_ms = 0;
        engine
    }

    /// Each reset draws the election timeout anew from [T, 2T), over the whole range, so that
    /// nodes seldom time out together (Raft §5.2).
    #[test]
    fn election_timeouts_are_drawn_from_one_to_two_election_timeouts() {
        let mut engine = engine();
        let core = &mut engine.core;
        let timeouts: Vec<u64> = (0..200)
            .map(|_| {
                core.reset_election_timer();
                core.election_deadline_ms - 10_000
            })
            .collect();
        assert!(timeouts.iter().all(|t| (1_000..2_000).contains(t)));
        assert!(timeouts.iter().any(|&t| t < 1_100), "{timeouts:?}");
        assert!(timeouts.iter().any(|&t| t >= 1_900), "{timeouts:?}");
    }

    /// A follower counts its leader as heard from recently for exactly an election timeout
    /// after the last contact: at T after it, pre-votes and votes may be granted again.
    #[test]
    fn a_leader_counts_as_heard_from_for_an_election_timeout_after_the_last_contact() {
        let mut engine = engine();
        let core = &mut engine.core;
        core.leader_id = Some(NodeId(2));
        core.leader_contact_ms = Some(9_000);
        core.now_ms = 9_999;
        assert!(core.heard_from_leader_recently());
        core.now_ms = 10_000;
        assert!(!core.heard_from_leader_recently());
        // No leader known, or never heard from: not recently.
        core.now_ms = 9_500;
        core.leader_id = None;
        assert!(!core.heard_from_leader_recently());
        core.leader_id = Some(NodeId(2));
        core.leader_contact_ms = None;
        assert!(!core.heard_from_leader_recently());
    }

    /// With `snapshot_entries` = 3, a leader asks for a snapshot each time its commit index
    /// gets three entries past its latest snapshot: at 3 (none yet), then at 6, not at every
    /// commit after the first snapshot.
    #[test]
    fn a_snapshot_is_asked_for_every_snapshot_entries_committed_entries() {
        use crate::engine::testing::Cluster;
        use crate::engine::{Input, Output};
        use crate::snapshot::SnapshotMeta;
        use crate::types::LogId;

        let config = Config {
            snapshot_entries: 3,
            ..Config::default()
        };
        let mut cluster = Cluster::new(1, &config);
        cluster.elect(1, 1_000);
        let mut asked = Vec::new();
        for _ in 0..6 {
            cluster.trace.clear();
            cluster.propose(1, "x");
            let created: Vec<LogId> = cluster
                .trace
                .iter()
                .filter_map(|(_, o)| match o {
                    Output::CreateSnapshot { last_log_id, .. } => Some(*last_log_id),
                    _ => None,
                })
                .collect();
            for last_log_id in created {
                asked.push(last_log_id.index.0);
                let meta = SnapshotMeta {
                    last_log_id,
                    membership: cluster.engine(1).membership().clone(),
                    size: 0,
                    checksum: crc32c::crc32c(b""),
                };
                cluster.step(1, Input::SnapshotCreated { meta });
            }
        }
        assert_eq!(cluster.commit_of(1).0, 7, "the no-op and six commands");
        assert_eq!(asked, vec![3, 6]);
    }
}
