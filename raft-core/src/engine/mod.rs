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
//!
//! Layout: this file dispatches each input once on the role; `role.rs` makes the role
//! changes; `leader.rs` holds everything only a leader does (with `replication/`,
//! `commit.rs` and `read_index.rs` under it), `follower.rs` and `install.rs` what a follower
//! does, `election.rs` what candidates and voters do; `core.rs` the state every role shares.
#![deny(clippy::too_many_lines)]

mod commit;
mod configs;
mod core;
mod election;
mod follower;
mod follower_reads;
mod input;
mod install;
mod leader;
mod log_ids;
mod output;
mod read_index;
mod replication;
mod restore;
mod rng;
mod role;
mod snapshot;
mod status;
mod stream;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

use tracing::debug;

pub use self::core::PlantedBug;
pub use self::input::Input;
pub use self::output::{ChangeRejection, Output};
pub use self::restore::{LogEntryMeta, RestoredState};
pub use self::rng::Rng;
pub use self::status::{FollowerStatus, RoleKind, Status};

use self::configs::Configs;
use self::core::Core;
use self::follower::FollowerState;
use self::role::Role;
use crate::config::Config;
use crate::error::Error;
use crate::message::{
    AppendEntriesResponse, AppendOutcome, InstallSnapshotResponse, Message, ReadIndexResponse,
    RequestVoteResponse, SnapshotOutcome,
};
use crate::snapshot::SnapshotMeta;
use crate::types::{HardState, LogId, LogIndex, Membership, NodeId, Term};

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
    /// `membership` is the configuration the cluster started with; the snapshot's and any
    /// membership entry of the log replace it. An empty one (no voters) starts a node that
    /// waits to be added to an existing cluster: it never campaigns and follows whichever
    /// leader replicates to it.
    ///
    /// # Errors
    /// [`Error::Config`] for a bad configuration, [`Error::Restore`] when the
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
        let hard_state = restored.hard_state;
        let rebuilt = restore::restore_log(
            restored.snapshot.as_ref(),
            &restored.entries,
            hard_state.commit,
        )?;
        let log = rebuilt.log;
        let last = log.last_index();
        let snapshot_index = log.snapshot_id().index;
        let config_lease_reads = config.lease_reads;
        let mut configs = match &restored.snapshot {
            Some(snapshot) if snapshot.last_log_id.index == snapshot_index => {
                Configs::new(snapshot_index, snapshot.membership.clone())
            }
            _ => Configs::new(LogIndex::ZERO, membership),
        };
        for (log_id, membership) in restored.memberships {
            if log_id.index > configs.latest_index() && log.contains(log_id) {
                configs.push(log_id.index, membership);
            }
        }
        let mut core = Core {
            id,
            config,
            configs,
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
            // With leases, quiet until the first tick starts the clock (then for a timeout).
            quiet_until_ms: if config_lease_reads { u64::MAX } else { 0 },
            election_deadline_ms: 0,
            leader_contact_ms: None,
            held: Vec::new(),
            outputs: Vec::new(),
            // Request numbers start where the seed says (each life of a node should get its
            // own seed): answers meant for a previous life's requests, still in flight, then
            // match none of this life's. The election timeouts' generator is left untouched.
            next_seq: 1 + (Rng::new(seed ^ id.0 ^ 0x5E9_0000).next_u64() >> 24),
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
            role: Role::Follower(FollowerState::default()),
        })
    }

    /// Feeds one input and returns the outputs it produced, to be executed in order.
    pub fn step(&mut self, input: Input) -> std::vec::Drain<'_, Output> {
        match input {
            Input::Tick { now_ms } => self.on_tick(now_ms),
            Input::Received { from, message } => self.on_message(from, message),
            Input::LogPersisted { upto, epoch } => self.on_log_persisted(upto, epoch),
            Input::HardStatePersisted { hard_state } => self.on_hard_state_persisted(hard_state),
            Input::SnapshotRequested => self.core.create_snapshot(),
            Input::SnapshotCreated { meta } => self.core.on_snapshot_created(meta),
            Input::SnapshotFailed => self.core.on_snapshot_failed(),
            Input::StreamClosed { peer, seq } => match &mut self.role {
                Role::Follower(follower) => stream::on_closed(follower, seq),
                Role::Leader(leader) => leader.on_stream_closed(&self.core, peer, seq),
                Role::PreCandidate(_) | Role::Candidate(_) => {}
            },
            Input::Proposed { .. }
            | Input::ReadRequested { .. }
            | Input::SendFailed { .. }
            | Input::TransferRequested { .. }
            | Input::LeaseReadRequested { .. }
            | Input::FollowerReadRequested { .. }
            | Input::MembershipChangeRequested { .. } => self.on_leader_input(input),
        }
        if let Role::Leader(leader) = &self.role
            && leader.removed
        {
            // Removed from the voters by a committed configuration: leading is over.
            let term = self.core.term;
            self.role.become_follower(&mut self.core, term, None);
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
            membership_index: self.core.membership_index(),
        }
    }

    /// The configuration in force: the latest in the log, committed or not.
    #[must_use]
    pub fn membership(&self) -> &Membership {
        self.core.membership()
    }

    /// The term of the entry at `index`, if this node's log holds it (or its snapshot ends
    /// there).
    #[must_use]
    pub fn log_term(&self, index: LogIndex) -> Option<Term> {
        self.core.log.term_at(index)
    }

    /// The latest committed configuration and the index of its entry (zero for the
    /// configuration the node started with).
    #[must_use]
    pub fn committed_membership(&self) -> (LogIndex, &Membership) {
        let commit = self.core.commit_index;
        (
            self.core.configs.index_at(commit),
            self.core.configs.at(commit),
        )
    }

    /// The latest durable snapshot this node has, if any.
    #[must_use]
    pub fn snapshot(&self) -> Option<&SnapshotMeta> {
        self.core.snapshot.as_ref()
    }

    /// The node's role.
    #[must_use]
    pub fn role_kind(&self) -> RoleKind {
        self.role.kind()
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
        let core = &mut self.core;
        core.now_ms = core.now_ms.max(now_ms);
        if !core.clock_started {
            // The clock's origin is the runtime's; the first election timeout counts from here.
            core.clock_started = true;
            if core.config.lease_reads {
                core.quiet_until_ms = core.now_ms + core.config.election_timeout_ms;
            }
            core.reset_election_timer();
            return;
        }
        match &mut self.role {
            Role::Leader(leader) => {
                if !leader.on_tick(core) {
                    let term = core.term;
                    self.role.become_follower(core, term, None);
                }
            }
            role => {
                if let Role::Follower(follower) = role {
                    follower.reads.on_tick(core);
                }
                let retry = matches!(role, Role::PreCandidate(_) | Role::Candidate(_));
                if retry && core.bug(PlantedBug::CandidateNeverRetries) {
                    return;
                }
                if let Some(pre_vote) = election::campaign_due(core) {
                    role.campaign(core, pre_vote, false);
                }
            }
        }
    }

    /// Inputs only a leader acts on; any other role refuses the callers' requests and ignores
    /// the rest (it has no requests in flight and nothing to hand over).
    fn on_leader_input(&mut self, input: Input) {
        let core = &mut self.core;
        if let Role::Follower(follower) = &mut self.role {
            match input {
                Input::FollowerReadRequested { id } => {
                    follower.reads.on_requested(core, id);
                    return;
                }
                Input::SendFailed { seq, .. } => {
                    follower.reads.on_send_failed(core, seq);
                    return;
                }
                _ => {}
            }
        }
        let Role::Leader(leader) = &mut self.role else {
            let leader = core.leader_id;
            match input {
                Input::Proposed { id, .. } => {
                    core.outputs.push(Output::ProposalRejected { id, leader });
                }
                Input::ReadRequested { id }
                | Input::LeaseReadRequested { id }
                | Input::FollowerReadRequested { id } => {
                    core.outputs.push(Output::ReadRejected { id, leader })
                }
                Input::MembershipChangeRequested { id, .. } => {
                    let reason = ChangeRejection::NotLeader { leader };
                    core.outputs
                        .push(Output::MembershipChangeRejected { id, reason });
                }
                _ => {}
            }
            return;
        };
        match input {
            Input::Proposed { id, payloads } => leader.on_proposed(core, id, payloads),
            Input::ReadRequested { id } | Input::FollowerReadRequested { id } => {
                leader.on_read_requested(core, id);
            }
            Input::LeaseReadRequested { id } => leader.on_lease_read_requested(core, id),
            Input::SendFailed { to, seq } => leader.on_send_failed(core, to, seq),
            Input::TransferRequested { to } => leader.on_transfer_requested(core, to),
            Input::MembershipChangeRequested { id, change } => {
                leader.on_membership_change(core, id, &change);
            }
            _ => {}
        }
    }

    fn on_message(&mut self, from: NodeId, message: Message) {
        let core = &mut self.core;
        // Messages from nodes outside the configuration are handled like any other: a new
        // leader may be unknown to a lagging follower until it appends the entry that added
        // it. A removed node cannot disrupt: the leader replicates to it until its removal
        // commits, so it appends the configuration without it and stops campaigning; one that
        // missed that (it was down) lacks the entry, so no one grants it a (pre-)vote, and
        // check-quorum makes followers with a live leader ignore its higher terms.
        if from == core.id {
            debug!(node = %core.id, "dropping a message from itself");
            return;
        }
        let term = message.term();
        if term > core.term
            && core.bug(PlantedBug::IgnoreHigherTermResponse)
            && self.role.kind() == RoleKind::Leader
            && matches!(
                message,
                Message::AppendEntriesResponse(_)
                    | Message::RequestVoteResponse(_)
                    | Message::InstallSnapshotResponse(_)
            )
        {
            return;
        }
        if term > core.term {
            match &message {
                Message::RequestVote(request) if request.pre_vote => {}
                Message::RequestVoteResponse(response) if response.pre_vote && response.granted => {
                }
                Message::RequestVote(request)
                    if core.config.check_quorum
                        && core.heard_from_leader_recently()
                        && !request.leadership_transfer =>
                {
                    debug!(node = %core.id, %from, %term, "ignoring vote request in lease");
                    return;
                }
                // With lease reads a follower keeps its promise to ignore elections while it
                // hears from its leader: a vote answer (to a pre-vote it sent before) carrying
                // a higher term does not make it drop its leader.
                Message::RequestVoteResponse(_)
                    if core.config.lease_reads
                        && core.leader_id != Some(core.id)
                        && core.heard_from_leader_recently() =>
                {
                    debug!(node = %core.id, %from, %term, "ignoring a vote answer's term in lease");
                    return;
                }
                Message::AppendEntries(request) => {
                    self.role
                        .become_follower(core, term, Some(request.leader_id));
                }
                Message::InstallSnapshot(request) => {
                    self.role
                        .become_follower(core, term, Some(request.leader_id));
                }
                _ => self.role.become_follower(core, term, None),
            }
        } else if term < core.term {
            on_stale_message(core, from, &message);
            return;
        }
        self.on_current_message(from, message);
    }

    /// A message of the current term (or a pre-vote for a later one), by role.
    fn on_current_message(&mut self, from: NodeId, message: Message) {
        let core = &mut self.core;
        let role = &mut self.role;
        match message {
            Message::AppendEntries(request) => {
                if follower::is_well_formed(core, from, &request)
                    && let Some(follower) = role.accept_leader(core, from)
                {
                    let heartbeat = request.entries.is_empty().then_some(request.leader_commit);
                    follower.on_append_entries(core, from, request);
                    stream::after_leader_message(core, follower, from, heartbeat);
                }
            }
            Message::InstallSnapshot(request) => {
                if install::is_from_its_leader(core, from, &request)
                    && let Some(follower) = role.accept_leader(core, from)
                {
                    install::on_install_snapshot(core, follower, request);
                    stream::after_leader_message(core, follower, from, None);
                }
            }
            Message::RequestVote(request) => {
                let leading = matches!(role, Role::Leader(_));
                election::on_request_vote(core, from, &request, leading);
            }
            Message::RequestVoteResponse(response) => role.on_vote_response(core, from, &response),
            Message::TimeoutNow(message) => {
                if matches!(role, Role::Follower(_))
                    && election::timeout_now_applies(core, from, &message)
                {
                    role.campaign(core, false, true);
                }
            }
            Message::AppendEntriesResponse(response) => {
                if let Role::Leader(leader) = role {
                    leader.on_append_response(core, from, &response);
                }
            }
            Message::InstallSnapshotResponse(response) => {
                if let Role::Leader(leader) = role {
                    leader.on_snapshot_response(core, from, &response);
                }
            }
            Message::ReadIndex(request) => match role {
                Role::Leader(leader) => leader.on_remote_read(core, from, request.seq),
                _ => {
                    let response = ReadIndexResponse {
                        term: core.term,
                        seq: request.seq,
                        index: None,
                    };
                    core.send(from, Message::ReadIndexResponse(response));
                }
            },
            Message::ReadIndexResponse(response) => {
                if let Role::Follower(follower) = role {
                    follower.reads.on_response(core, from, &response);
                }
            }
            Message::OpenStream(open) => {
                if let Role::Leader(leader) = role {
                    leader.on_stream_opened(core, from, &open);
                }
            }
        }
    }

    fn on_log_persisted(&mut self, upto: LogId, epoch: u64) {
        let core = &mut self.core;
        let current = epoch == core.log_epoch && core.log.contains(upto);
        if upto.index <= core.durable_index || !current {
            return;
        }
        core.durable_index = upto.index;
        match &mut self.role {
            Role::Follower(state) => state.flush_acks(core),
            Role::Leader(leader) => leader.on_log_persisted(core),
            Role::PreCandidate(_) | Role::Candidate(_) => {}
        }
    }

    fn on_hard_state_persisted(&mut self, hard_state: HardState) {
        let core = &mut self.core;
        core.durable_term_vote = (hard_state.term, hard_state.vote);
        if core.term_vote_durable() {
            let held = std::mem::take(&mut core.held);
            core.outputs.extend(held);
        }
        self.role.maybe_win_election(core);
    }
}

/// A message from an older term: tell its sender the newer term, so a stale leader or
/// candidate steps down (Raft §5.1).
fn on_stale_message(core: &mut Core, from: NodeId, message: &Message) {
    let term = core.term;
    let reply = match message {
        Message::AppendEntries(request) => Message::AppendEntriesResponse(AppendEntriesResponse {
            term,
            seq: request.seq,
            outcome: AppendOutcome::StaleTerm,
        }),
        Message::RequestVote(request) => Message::RequestVoteResponse(RequestVoteResponse {
            term,
            granted: false,
            pre_vote: request.pre_vote,
        }),
        Message::ReadIndex(request) => Message::ReadIndexResponse(ReadIndexResponse {
            term,
            seq: request.seq,
            index: None,
        }),
        Message::InstallSnapshot(request) => {
            Message::InstallSnapshotResponse(InstallSnapshotResponse {
                term,
                seq: request.seq,
                outcome: SnapshotOutcome::StaleTerm,
            })
        }
        _ => return,
    };
    core.send(from, reply);
}
