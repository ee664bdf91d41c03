//! The sans-I/O consensus engine: `Engine::step(Input) -> Outputs`.
//!
//! The engine is a plain deterministic state machine. It reads no clock (time arrives in
//! [`Input::Tick`]), does no I/O (it emits [`Output`] commands), spawns nothing and draws
//! randomness only from the seed it was given. Every protocol rule lives here, so the simulator
//! (raft-sim) exercises exactly the code production runs.
//!
//! ```text
//!   inputs (past tense)                       outputs (imperative, run in order)
//!   Tick{now_ms} ─────────┐                ┌─> PersistHardState ──> HardStatePersisted ─┐
//!   Received{from, msg} ──┤                ├─> AppendLog / TruncateLog ──> LogPersisted ─┤
//!   Proposed{id, cmds} ───┼─> Engine::step ┼─> PreCommit / Rollback / Commit             │
//!   ReadRequested{id} ────┤                ├─> Send / SendEntries ──> peer ──> Received ─┤
//!   SendFailed{to, seq} ──┘                └─> Proposal*/Read* answers                   │
//!        ^───────────────────────────── completions come back as inputs ────────────────┘
//! ```
//!
//! Invariants the engine keeps (each checked by raft-sim after every step):
//! - A message that reveals the term or vote leaves only once they are durable; an
//!   AppendEntries success leaves only once the acknowledged entries are durable.
//! - The commit index never goes back and never passes an entry not held by a quorum of
//!   *durable* logs; only entries of the current term are committed by counting (Raft §5.4.2).
//! - Entries at or below the commit index are never truncated; every pre-committed entry that
//!   a conflict removes is rolled back first, in reverse order.
#![deny(clippy::too_many_lines)]

mod commit;
mod core;
mod election;
mod follower;
mod input;
mod install;
mod log_ids;
mod output;
mod quorum;
mod read_index;
mod replication;
mod rng;
mod snapshot;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

use tracing::{debug, info};

pub use self::input::Input;
pub use self::output::Output;

pub(crate) use self::core::Core;
use self::replication::LeaderState;
use self::rng::Rng;
use crate::config::Config;
use crate::error::Error;
use crate::message::Message;
use crate::snapshot::SnapshotMeta;
use crate::types::{Entry, HardState, LogId, LogIndex, Membership, NodeId, Term};

/// The id and payload size of one entry, as a log store reports them at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogEntryMeta {
    /// The entry's id.
    pub log_id: LogId,
    /// The entry's payload size in bytes.
    pub payload_len: u64,
}

/// Durable state handed to a (re)starting engine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoredState {
    /// The durable hard state.
    pub hard_state: HardState,
    /// The latest durable snapshot, if any.
    pub snapshot: Option<SnapshotMeta>,
    /// Every entry of the durable log, in index order from the first held: index 1 without a
    /// snapshot; with one, anywhere up to the snapshot's index plus one (entries the snapshot
    /// covers may still be there). An empty log with a snapshot continues after it.
    pub entries: Vec<LogEntryMeta>,
}

/// A node's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RoleKind {
    /// Follows a leader (or waits for one).
    Follower,
    /// Runs a pre-vote: asks whether it would win before disturbing the cluster.
    PreCandidate,
    /// Runs an election in its own term.
    Candidate,
    /// Leads its term.
    Leader,
}

/// A snapshot of the engine's state, for getters and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// This node.
    pub id: NodeId,
    /// Its role.
    pub role: RoleKind,
    /// Its current term.
    pub term: Term,
    /// Its vote in the current term.
    pub vote: Option<NodeId>,
    /// The leader it believes in.
    pub leader: Option<NodeId>,
    /// Its commit index.
    pub commit_index: LogIndex,
    /// Its last log entry.
    pub last_log_id: LogId,
    /// The last entry of its log known durable.
    pub durable_index: LogIndex,
    /// The last index its latest snapshot covers (zero without one).
    pub snapshot_index: LogIndex,
    /// The index before the first entry its log holds (the compacted prefix ends here).
    pub log_base_index: LogIndex,
}

/// Replication state of one follower, as the leader sees it (for metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowerStatus {
    /// The follower.
    pub peer: NodeId,
    /// The next index to send.
    pub next_index: LogIndex,
    /// The highest index known durable on the follower.
    pub match_index: LogIndex,
    /// AppendEntries in flight (including heartbeats).
    pub inflight: usize,
    /// Entries per request.
    pub batch: u64,
    /// The batch sizer's threshold.
    pub threshold: u64,
}

/// Per-role state.
#[derive(Debug)]
pub(crate) enum Role {
    Follower(follower::FollowerState),
    PreCandidate(election::VoteTally),
    Candidate(election::VoteTally),
    Leader(Box<LeaderState>),
}

/// A protocol rule broken on purpose, for the simulator's own tests. Only
/// `Engine::plant_bug`, behind the `planted-bugs` feature, can switch one on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlantedBug {
    /// Commit any entry a quorum holds, whatever its term (the Figure 8 mistake).
    CommitByCount,
    /// Grant a vote even after voting for another candidate in the same term.
    VoteTwice,
}

/// One Raft node's consensus logic. See the module docs.
#[derive(Debug)]
pub struct Engine {
    core: Core,
    role: Role,
}

impl Engine {
    /// Builds an engine from durable state. Its first outputs (commit of the restored commit
    /// index, pre-commit of the entries after it) are waiting in [`Engine::drain_outputs`].
    ///
    /// # Errors
    /// [`Error::Config`] for a bad configuration or membership, [`Error::Restore`] when the
    /// restored log is not consecutive, does not start at 1 (or, with a snapshot, at or below
    /// the snapshot's index plus one) or its terms are out of order.
    pub fn new(
        id: NodeId,
        membership: Membership,
        config: Config,
        restored: RestoredState,
        seed: u64,
    ) -> Result<Engine, Error> {
        config.validate()?;
        if membership.is_empty() {
            return Err(Error::Config("membership has no voters".to_owned()));
        }
        let hard_state = restored.hard_state;
        let rebuilt = snapshot::restore_log(
            restored.snapshot.as_ref(),
            &restored.entries,
            hard_state.commit,
        )?;
        let log = rebuilt.log;
        let last = log.last_index();
        let snapshot_index = log.snapshot_id().index;
        let mut core = Core {
            id,
            config,
            membership,
            rng: Rng::new(seed ^ id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            now_ms: 0,
            term: hard_state.term,
            vote: hard_state.vote,
            durable_term_vote: (hard_state.term, hard_state.vote),
            commit_index: rebuilt.commit_index,
            log,
            durable_index: last,
            log_epoch: 0,
            leader_id: None,
            clock_started: false,
            election_deadline_ms: 0,
            leader_contact_ms: None,
            held: Vec::new(),
            outputs: Vec::new(),
            next_seq: 1,
            planted_bug: None,
            snapshot: restored
                .snapshot
                .filter(|s| s.last_log_id.index == snapshot_index),
            creating_snapshot: false,
            receiving: None,
        };
        core.reset_election_timer();
        // The log write of a newer term's entries can become durable before the hard state
        // that announced the term (two separate writes). Adopt the term, with no vote: a vote
        // in it was never revealed, since grants wait for the vote to be durable.
        let log_term = core.log.last_log_id().term;
        if log_term > core.term {
            core.set_term_vote(log_term, None);
        }
        core.outputs.extend(rebuilt.outputs);
        // A crash between a snapshot and its compaction left covered entries behind.
        core.compact_log();
        if core.commit_index > snapshot_index {
            core.outputs.push(Output::Commit {
                upto: core.commit_index,
            });
        }
        if last > core.commit_index {
            core.outputs.push(Output::PreCommit {
                first: core.commit_index.next(),
                last,
            });
        }
        Ok(Engine {
            core,
            role: Role::Follower(follower::FollowerState::default()),
        })
    }

    /// Feeds one input and returns the outputs it produced, to be executed in order.
    pub fn step(&mut self, input: Input) -> std::vec::Drain<'_, Output> {
        match input {
            Input::Tick { now_ms } => self.on_tick(now_ms),
            Input::Received { from, message } => self.on_message(from, message),
            Input::Proposed { id, payloads } => self.on_proposed(id, payloads),
            Input::LogPersisted { upto, epoch } => self.on_log_persisted(upto, epoch),
            Input::HardStatePersisted { hard_state } => self.on_hard_state_persisted(hard_state),
            Input::SendFailed { to, seq } => self.on_send_failed(to, seq),
            Input::ReadRequested { id } => self.on_read_requested(id),
            Input::TransferRequested { to } => self.on_transfer_requested(to),
            Input::SnapshotRequested => self.on_snapshot_requested(),
            Input::SnapshotCreated { meta } => self.on_snapshot_created(meta),
            Input::SnapshotFailed => self.on_snapshot_failed(),
        }
        self.core.outputs.drain(..)
    }

    /// Outputs produced outside [`Engine::step`] (at construction).
    pub fn drain_outputs(&mut self) -> std::vec::Drain<'_, Output> {
        self.core.outputs.drain(..)
    }

    /// The engine's current state.
    #[must_use]
    pub fn status(&self) -> Status {
        Status {
            id: self.core.id,
            role: self.role_kind(),
            term: self.core.term,
            vote: self.core.vote,
            leader: self.core.leader_id,
            commit_index: self.core.commit_index,
            last_log_id: self.core.log.last_log_id(),
            durable_index: self.core.durable_index,
            snapshot_index: self.core.snapshot_index(),
            log_base_index: self.core.log.base_index(),
        }
    }

    /// The latest durable snapshot this node has, if any.
    #[must_use]
    pub fn snapshot(&self) -> Option<&SnapshotMeta> {
        self.core.snapshot.as_ref()
    }

    /// The node's role.
    #[must_use]
    pub fn role_kind(&self) -> RoleKind {
        match self.role {
            Role::Follower(_) => RoleKind::Follower,
            Role::PreCandidate(_) => RoleKind::PreCandidate,
            Role::Candidate(_) => RoleKind::Candidate,
            Role::Leader(_) => RoleKind::Leader,
        }
    }

    /// Replication state of each follower while this node leads; empty otherwise.
    #[must_use]
    pub fn followers(&self) -> Vec<FollowerStatus> {
        match &self.role {
            Role::Leader(leader) => leader.follower_statuses(),
            _ => Vec::new(),
        }
    }

    /// Breaks one protocol rule on purpose, so a test can show the simulator catches it.
    #[cfg(feature = "planted-bugs")]
    pub fn plant_bug(&mut self, bug: PlantedBug) {
        self.core.planted_bug = Some(bug);
    }

    /// The configuration in force.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.core.config
    }

    fn on_tick(&mut self, now_ms: u64) {
        self.core.now_ms = self.core.now_ms.max(now_ms);
        if !self.core.clock_started {
            // The clock's origin is the runtime's; the first election timeout counts from here.
            self.core.clock_started = true;
            self.core.reset_election_timer();
            return;
        }
        if matches!(self.role, Role::Leader(_)) {
            self.tick_leader();
        } else {
            self.tick_election();
        }
    }

    fn on_message(&mut self, from: NodeId, message: Message) {
        if from == self.core.id || !self.core.membership.is_voter(from) {
            debug!(node = %self.core.id, %from, "dropping message from a non-member");
            return;
        }
        let term = message.term();
        if term > self.core.term {
            match &message {
                Message::RequestVote(request) if request.pre_vote => {}
                Message::RequestVoteResponse(response) if response.pre_vote && response.granted => {
                }
                Message::RequestVote(request)
                    if self.core.config.check_quorum
                        && self.core.heard_from_leader_recently()
                        && !request.leadership_transfer =>
                {
                    debug!(node = %self.core.id, %from, %term, "ignoring vote request in lease");
                    return;
                }
                Message::AppendEntries(request) => {
                    self.become_follower(term, Some(request.leader_id));
                }
                Message::InstallSnapshot(request) => {
                    self.become_follower(term, Some(request.leader_id));
                }
                _ => self.become_follower(term, None),
            }
        } else if term < self.core.term {
            self.on_stale_message(from, &message);
            return;
        }
        match message {
            Message::AppendEntries(request) => self.on_append_entries(from, request),
            Message::AppendEntriesResponse(response) => self.on_append_response(from, &response),
            Message::RequestVote(request) => self.on_request_vote(from, &request),
            Message::RequestVoteResponse(response) => self.on_vote_response(from, &response),
            Message::TimeoutNow(message) => self.on_timeout_now(from, &message),
            Message::InstallSnapshot(request) => self.on_install_snapshot(from, request),
            Message::InstallSnapshotResponse(response) => {
                self.on_snapshot_response(from, &response);
            }
        }
    }

    /// A message from an older term: tell its sender the newer term, so a stale leader or
    /// candidate steps down (Raft §5.1).
    fn on_stale_message(&mut self, from: NodeId, message: &Message) {
        let term = self.core.term;
        let reply = match message {
            Message::AppendEntries(request) => {
                Message::AppendEntriesResponse(crate::message::AppendEntriesResponse {
                    term,
                    seq: request.seq,
                    outcome: crate::message::AppendOutcome::StaleTerm,
                })
            }
            Message::RequestVote(request) => {
                Message::RequestVoteResponse(crate::message::RequestVoteResponse {
                    term,
                    granted: false,
                    pre_vote: request.pre_vote,
                })
            }
            Message::InstallSnapshot(request) => {
                Message::InstallSnapshotResponse(crate::message::InstallSnapshotResponse {
                    term,
                    seq: request.seq,
                    outcome: crate::message::SnapshotOutcome::StaleTerm,
                })
            }
            _ => return,
        };
        self.core.send(from, reply);
    }

    fn on_proposed(&mut self, id: u64, payloads: Vec<bytes::Bytes>) {
        let Role::Leader(leader) = &self.role else {
            let leader = self.core.leader_id;
            self.core
                .outputs
                .push(Output::ProposalRejected { id, leader });
            return;
        };
        if let Some(transfer) = &leader.transfer {
            let leader = Some(transfer.to);
            self.core
                .outputs
                .push(Output::ProposalRejected { id, leader });
            return;
        }
        let term = self.core.term;
        let first = self.core.log.last_index().next();
        let count = payloads.len() as u64;
        self.core.outputs.push(Output::ProposalAccepted {
            id,
            first: LogId { term, index: first },
            count,
        });
        if count == 0 {
            return;
        }
        let entries = payloads
            .into_iter()
            .enumerate()
            .map(|(offset, bytes)| Entry {
                log_id: LogId {
                    term,
                    index: first.plus(offset as u64),
                },
                payload: crate::types::Payload::Command(bytes),
            })
            .collect();
        self.core.append_local(entries);
        self.replicate_to_all();
    }

    fn on_log_persisted(&mut self, upto: LogId, epoch: u64) {
        let current = epoch == self.core.log_epoch && self.core.log.contains(upto);
        if upto.index <= self.core.durable_index || !current {
            return;
        }
        self.core.durable_index = upto.index;
        match &mut self.role {
            Role::Follower(state) => state.flush_acks(&mut self.core),
            Role::Leader(_) => self.after_leader_progress(None),
            Role::PreCandidate(_) | Role::Candidate(_) => {}
        }
    }

    fn on_hard_state_persisted(&mut self, hard_state: HardState) {
        self.core.durable_term_vote = (hard_state.term, hard_state.vote);
        if self.core.term_vote_durable() {
            let held = std::mem::take(&mut self.core.held);
            self.core.outputs.extend(held);
        }
        if matches!(self.role, Role::Candidate(_)) {
            self.maybe_win_election();
        }
    }

    /// Steps down (or stays) a follower in `term`. A higher term clears the vote.
    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        let was = self.role_kind();
        if term > self.core.term {
            self.core.set_term_vote(term, None);
        }
        if let Role::Leader(state) = &mut self.role {
            state.reads.reject_all(&mut self.core.outputs, leader);
        }
        self.role = Role::Follower(follower::FollowerState::default());
        self.core.leader_id = leader;
        self.core.leader_contact_ms = leader.map(|_| self.core.now_ms);
        self.core.reset_election_timer();
        if was != RoleKind::Follower {
            info!(node = %self.core.id, term = %self.core.term, ?was, "became follower");
        }
    }
}
