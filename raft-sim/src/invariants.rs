//! The safety properties checked after every step (Raft §5.2–5.4, Figure 3), plus the rules
//! ARCHITECTURE.md ("Engine") adds. Each check names the property it guards.
//!
//! The checker sees every node's outputs as they are executed, so most properties are checked
//! incrementally: Log Matching by recording, for every entry id ever appended, the id of the
//! term before it and the payload (the same id must always come with the same ones).
//!
//! Logs may start above index 1 once snapshots compact them: an entry a node's log no longer
//! holds is covered by its durable snapshot, which must then be of the committed prefix. The
//! checks that concern snapshots themselves are in [`snapshots`]. The checks of consequences
//! on the whole cluster (commits durable on a majority of the disks, the leader's replication
//! bounds), run after every step, are in [`durability`]; those of what a message reveals
//! (`reveal-after-durable`) and of terms adopted on receipt (`higher-term-adopted`) in
//! [`reveal`]; those of membership changes (`config-quorums-overlap`,
//! `removed-cannot-disrupt`, `snapshot-membership`) in [`membership`], over the committed
//! configurations of [`configs`]; those of reads when the engine answers them
//! (`read-covers-commits`, `lease-read-sole-leader`) in [`reads`]; the one liveness property,
//! checked once the world's faults stop (`liveness-after-heal`), in [`liveness`].
//!
//! Every check counts over node ids, so nodes added later by membership churn are covered
//! like the first ones: one leader per term whichever nodes lead, and Log Matching, State
//! Machine Safety and Leader Completeness over every log and every apply.

mod configs;
mod durability;
mod liveness;
mod membership;
mod reads;
mod reference;
mod reveal;
mod snapshots;

use std::collections::BTreeMap;

use raft_core::engine::{RoleKind, Status};
use raft_core::message::{AppendOutcome, Message, SnapshotOutcome};
use raft_core::{Entry, LogId, LogIndex, Membership, NodeId, Payload, Term};

use self::configs::ConfigHistory;
use self::liveness::Liveness;
pub(crate) use self::liveness::PROBE_KEY;
use self::reference::Reference;
pub(crate) use self::reveal::received_term;
use crate::node::SimNode;

/// A broken safety property.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The property, e.g. `election-safety`.
    pub invariant: &'static str,
    /// What was seen.
    pub detail: String,
    /// The simulation step at which it was seen.
    pub step: u64,
}

/// The properties judged with `SimOptions::outcomes_only`: Raft's own safety properties and
/// what the clients see (plus the simulator's own failures, so that nothing breaks silently).
/// The others are rules an engine follows so that these hold.
pub(crate) const OUTCOMES: [&str; 13] = [
    "election-safety",
    "log-matching",
    "leader-completeness",
    "state-machine-safety",
    "committed-entry-lost",
    "commit-monotonic",
    "snapshot-state",
    "linearizability",
    "liveness-after-heal",
    "commit-beyond-log",
    "restore",
    "restore-snapshot",
    "snapshot-data",
];

#[derive(Debug, Default)]
pub(crate) struct Checker {
    pub(crate) step: u64,
    /// The simulated time of the step being checked.
    pub(crate) now_ms: u64,
    leaders: BTreeMap<Term, NodeId>,
    /// For every entry ever appended: the term of the entry before it, and its payload.
    chain: BTreeMap<LogId, (Term, Payload)>,
    /// Every entry any node applied, by index (state machine safety).
    pub(crate) committed: BTreeMap<LogIndex, LogId>,
    /// The state after each committed prefix, for the snapshots.
    reference: Reference,
    /// The highest durable snapshot index seen on each node since its last wipe.
    durable_snapshots: BTreeMap<NodeId, LogIndex>,
    /// The committed configurations, the nodes they removed, and churn counts.
    pub(crate) configs: ConfigHistory,
    /// Whether `removed-cannot-disrupt` applies: only with pre-vote (see [`membership`]).
    disruption_checked: bool,
    /// Whether the engines serve lease reads (followers in a lease then ignore the term of a
    /// vote answer; see `higher-term-adopted`).
    pub(crate) lease_reads: bool,
    pub(crate) elections: u64,
    /// Reads asked for and not answered yet: the highest index committed when each was.
    read_requests: BTreeMap<u64, LogIndex>,
    /// After the world's heal: whether a leader commits a new entry in time.
    pub(crate) liveness: Liveness,
    /// Only the [`OUTCOMES`] fail a run (see `SimOptions::outcomes_only`).
    pub(crate) outcomes_only: bool,
    pub(crate) violation: Option<Violation>,
}

impl Checker {
    /// A checker for a cluster that starts with `initial`; `pre_vote` as configured.
    pub(crate) fn new(initial: Membership, pre_vote: bool) -> Checker {
        Checker {
            configs: ConfigHistory::new(initial),
            disruption_checked: pre_vote,
            ..Checker::default()
        }
    }

    pub(crate) fn fail(&mut self, invariant: &'static str, detail: String) {
        if self.outcomes_only && !OUTCOMES.contains(&invariant) {
            return;
        }
        if self.violation.is_none() {
            self.violation = Some(Violation {
                invariant,
                detail,
                step: self.step,
            });
        }
    }

    /// The entry applied at `index`, if any node applied one.
    pub(crate) fn committed_at(&self, index: LogIndex) -> Option<LogId> {
        self.committed.get(&index).copied()
    }

    /// Election safety (§5.2) and, on the step a node becomes leader, leader completeness
    /// (§5.4): its log holds every entry ever committed, or its snapshot covers it.
    pub(crate) fn after_step(&mut self, node: &SimNode, before: Status, after: Status) {
        if after.snapshot_index < before.snapshot_index {
            let detail = format!(
                "node {}'s snapshot went from {} back to {}",
                node.id, before.snapshot_index, after.snapshot_index
            );
            self.fail("snapshot-monotonic", detail);
        }
        if after.role != RoleKind::Leader {
            return;
        }
        let leader = *self.leaders.entry(after.term).or_insert(node.id);
        if leader != node.id {
            let detail = format!(
                "nodes {leader} and {} both lead term {}",
                node.id, after.term
            );
            self.fail("election-safety", detail);
        }
        if before.role == RoleKind::Leader && before.term == after.term {
            return;
        }
        self.elections += 1;
        self.check_leader_completeness(node, after.term);
    }

    fn check_leader_completeness(&mut self, node: &SimNode, term: Term) {
        let covered = node.snapshot_meta().map(|meta| meta.last_log_id);
        if let Some(covered) = covered
            && self.committed_at(covered.index) != Some(covered)
        {
            let detail = format!(
                "node {} leads term {term} with a snapshot at {covered}, not a committed entry",
                node.id
            );
            self.fail("leader-completeness", detail);
            return;
        }
        let covered = covered.map_or(LogIndex::ZERO, |id| id.index);
        for (&index, &log_id) in &self.committed {
            let held = match node.entry(index) {
                Some(entry) => entry.log_id == log_id,
                None => index <= covered,
            };
            if !held {
                let detail = format!(
                    "node {} leads term {term} without committed entry {log_id}",
                    node.id
                );
                self.fail("leader-completeness", detail);
                return;
            }
        }
    }

    /// Log matching: an entry id always follows the same term and carries the same payload.
    pub(crate) fn on_append(&mut self, node: &SimNode, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        if first.log_id.index != node.log.next_index() {
            self.fail(
                "log-append-position",
                format!("node {} appended out of place", node.id),
            );
            return;
        }
        let prev = first.log_id.index.prev();
        let prev_term = match (node.entry(prev), node.snapshot_meta()) {
            (Some(entry), _) => entry.log_id.term,
            (None, Some(meta)) if meta.last_log_id.index == prev => meta.last_log_id.term,
            (None, _) if prev == LogIndex::ZERO => Term(0),
            (None, _) => {
                let detail = format!("node {} appends after {prev}, which it lacks", node.id);
                self.fail("log-append-position", detail);
                return;
            }
        };
        self.check_config_append(node, entries);
        let mut prev_term = prev_term;
        for entry in entries {
            let known = self
                .chain
                .entry(entry.log_id)
                .or_insert_with(|| (prev_term, entry.payload.clone()));
            if *known != (prev_term, entry.payload.clone()) {
                let detail = format!("node {} holds a different entry {}", node.id, entry.log_id);
                self.fail("log-matching", detail);
            }
            prev_term = entry.log_id.term;
        }
    }

    /// Nothing committed is ever removed (except, while a snapshot replaces the log, entries it
    /// covers), and every pre-committed entry removed was rolled back.
    pub(crate) fn on_truncate(&mut self, node: &SimNode, from: LogIndex) {
        if from < node.log.start() {
            let detail = format!(
                "node {} truncates from {from}, below its first entry {}",
                node.id,
                node.log.start()
            );
            self.fail("truncate-position", detail);
        }
        // Entries up to `applied` are committed: they are never rolled back. While a snapshot
        // from the leader replaces the log, the pre-committed entries it covers are not rolled
        // back either (they may have committed; the restore replaces the state): only those
        // above its index must have been.
        let replaced = node.install_window.unwrap_or(LogIndex::ZERO);
        if node.pre_committed_last >= from.max(node.applied.next()).max(replaced.next()) {
            let detail = format!(
                "node {} truncates from {from} with entries up to {} pre-committed",
                node.id, node.pre_committed_last
            );
            self.fail("rollback-before-truncate", detail);
        }
        for entry in node.log.entries_from(from) {
            let index = entry.log_id.index;
            if index > replaced && self.committed_at(index) == Some(entry.log_id) {
                let detail = format!(
                    "node {} truncates committed entry {}",
                    node.id, entry.log_id
                );
                self.fail("committed-entry-lost", detail);
                return;
            }
        }
    }

    pub(crate) fn on_pre_commit(&mut self, node: &SimNode, first: LogIndex, last: LogIndex) {
        let expected = node.pre_committed_last.max(node.applied).next();
        if first != expected || last < first || node.entry(last).is_none() {
            let detail = format!(
                "node {} pre-commits {first}..={last}, expected {expected}",
                node.id
            );
            self.fail("pre-commit-order", detail);
        }
    }

    pub(crate) fn on_rollback(&mut self, node: &SimNode, first: LogIndex, last: LogIndex) {
        if last != node.pre_committed_last || first <= node.applied || first > last {
            let detail = format!(
                "node {} rolls back {first}..={last}; pre-committed up to {}, applied {}",
                node.id, node.pre_committed_last, node.applied
            );
            self.fail("rollback-order", detail);
        }
    }

    /// The commit index never goes back within a node's life (a restore counts as a commit).
    pub(crate) fn on_commit(&mut self, node: &SimNode, upto: LogIndex) {
        if upto <= node.commit_seen {
            let detail = format!("node {} commit {upto} after {}", node.id, node.commit_seen);
            self.fail("commit-monotonic", detail);
        }
    }

    /// State machine safety (§5.4.3): no two nodes apply different entries at one index.
    pub(crate) fn on_apply(&mut self, node: &SimNode, entry: &Entry) {
        let log_id = entry.log_id;
        if !self.committed.contains_key(&log_id.index)
            && let Payload::Membership(membership) = &entry.payload
        {
            let leader = self.leaders.get(&log_id.term).copied();
            let now_ms = self.now_ms;
            self.configs
                .on_committed(log_id.index, membership, leader, now_ms);
        }
        let known = *self.committed.entry(log_id.index).or_insert(log_id);
        if known != log_id {
            let detail = format!(
                "node {} applies {log_id} where {known} was applied",
                node.id
            );
            self.fail("state-machine-safety", detail);
            return;
        }
        self.reference.record(log_id.index, &entry.payload);
        self.liveness.on_apply(&entry.payload, self.now_ms);
    }

    /// Durability before replies: a vote grant only once the vote is durable, an append
    /// success only once the acknowledged entries are durable (or a durable snapshot covers
    /// them), a snapshot reported installed only once it is durable; and no message reveals a
    /// term or vote not yet durable (`reveal-after-durable`, in [`reveal`]).
    pub(crate) fn on_send(&mut self, node: &SimNode, to: NodeId, message: &Message) {
        self.check_durable_replies(node, to, message);
        self.check_reveal(node, to, message);
    }

    fn check_durable_replies(&mut self, node: &SimNode, to: NodeId, message: &Message) {
        match message {
            Message::RequestVoteResponse(response) if response.granted && !response.pre_vote => {
                // Safe once the vote is durable, or once a later term is: the node can then
                // never vote again in the response's term.
                let durable = node.durable_hard_state;
                let vote_durable = durable.term == response.term && durable.vote == Some(to);
                if !vote_durable && durable.term <= response.term {
                    let detail = format!(
                        "node {} grants {to} in term {} with durable {durable:?}",
                        node.id, response.term
                    );
                    self.fail("vote-durable-before-reply", detail);
                }
            }
            Message::AppendEntriesResponse(response) => {
                if let AppendOutcome::Success { match_index } = response.outcome {
                    let durable = node.durable_entry(match_index).map(|e| e.log_id);
                    let current = node.entry(match_index).map(|e| e.log_id);
                    let covered = match_index <= node.snapshot_index();
                    if !covered && (durable.is_none() || durable != current) {
                        let detail = format!("node {} acks {match_index} not durable", node.id);
                        self.fail("ack-only-durable", detail);
                    }
                }
            }
            Message::InstallSnapshotResponse(response)
                if response.outcome == SnapshotOutcome::Installed && node.snapshot.is_none() =>
            {
                let detail = format!("node {} reports a snapshot installed it lacks", node.id);
                self.fail("ack-only-durable", detail);
            }
            _ => {}
        }
    }
}
