//! The safety properties checked after every step (Raft §5.2–5.4, Figure 3), plus the rules
//! DESIGN §3 and PITFALLS add. Each check names the property it guards.
//!
//! The checker sees every node's outputs as they are executed, so most properties are checked
//! incrementally: Log Matching by recording, for every entry id ever appended, the id of the
//! term before it and the payload (the same id must always come with the same ones).

use std::collections::BTreeMap;

use raft_core::engine::{RoleKind, Status};
use raft_core::message::{AppendOutcome, Message};
use raft_core::{Entry, LogId, LogIndex, NodeId, Payload, Term};

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

#[derive(Debug, Default)]
pub(crate) struct Checker {
    pub(crate) step: u64,
    leaders: BTreeMap<Term, NodeId>,
    /// For every entry ever appended: the term of the entry before it, and its payload.
    chain: BTreeMap<LogId, (Term, Payload)>,
    /// Every entry any node applied, by index (state machine safety).
    pub(crate) committed: BTreeMap<LogIndex, LogId>,
    pub(crate) elections: u64,
    pub(crate) violation: Option<Violation>,
}

impl Checker {
    pub(crate) fn fail(&mut self, invariant: &'static str, detail: String) {
        if self.violation.is_none() {
            self.violation = Some(Violation {
                invariant,
                detail,
                step: self.step,
            });
        }
    }

    /// Election safety (§5.2) and, on the step a node becomes leader, leader completeness
    /// (§5.4): its log holds every entry ever committed.
    pub(crate) fn after_step(&mut self, node: &SimNode, before: Status, after: Status) {
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
        for (&index, &log_id) in &self.committed {
            if node.entry(index).map(|e| e.log_id) != Some(log_id) {
                let detail = format!(
                    "node {} leads term {} without committed entry {log_id}",
                    node.id, after.term
                );
                self.fail("leader-completeness", detail);
                return;
            }
        }
    }

    /// Log matching: an entry id always follows the same term and carries the same payload.
    pub(crate) fn on_append(&mut self, node: &SimNode, entries: &[Entry]) {
        let mut prev_term = match entries.first() {
            Some(first) => node
                .entry(first.log_id.index.prev())
                .map_or(Term(0), |e| e.log_id.term),
            None => return,
        };
        if entries.first().map(|e| e.log_id.index.0) != Some(node.log.len() as u64 + 1) {
            self.fail(
                "log-append-position",
                format!("node {} appended out of place", node.id),
            );
            return;
        }
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

    /// Nothing committed is ever removed, and every pre-committed entry removed was rolled back.
    pub(crate) fn on_truncate(&mut self, node: &SimNode, from: LogIndex) {
        if node.pre_committed_last >= from {
            let detail = format!(
                "node {} truncates from {from} with entries up to {} pre-committed",
                node.id, node.pre_committed_last
            );
            self.fail("rollback-before-truncate", detail);
        }
        for entry in node
            .log
            .iter()
            .skip(usize::try_from(from.0 - 1).unwrap_or(usize::MAX))
        {
            if self.committed.get(&entry.log_id.index) == Some(&entry.log_id) {
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

    /// The commit index never goes back within a node's life.
    pub(crate) fn on_commit(&mut self, node: &SimNode, upto: LogIndex) {
        if upto <= node.commit_seen {
            let detail = format!("node {} commit {upto} after {}", node.id, node.commit_seen);
            self.fail("commit-monotonic", detail);
        }
    }

    /// State machine safety (§5.4.3): no two nodes apply different entries at one index.
    pub(crate) fn on_apply(&mut self, node: &SimNode, log_id: LogId) {
        let known = *self.committed.entry(log_id.index).or_insert(log_id);
        if known != log_id {
            let detail = format!(
                "node {} applies {log_id} where {known} was applied",
                node.id
            );
            self.fail("state-machine-safety", detail);
        }
    }

    /// Durability before replies: a vote grant only once the vote is durable, an append
    /// success only once the acknowledged entries are durable.
    pub(crate) fn on_send(&mut self, node: &SimNode, to: NodeId, message: &Message) {
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
                    if match_index > LogIndex::ZERO && (durable.is_none() || durable != current) {
                        let detail = format!("node {} acks {match_index} not durable", node.id);
                        self.fail("ack-only-durable", detail);
                    }
                }
            }
            _ => {}
        }
    }
}
