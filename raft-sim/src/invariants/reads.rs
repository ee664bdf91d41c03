//! Reads, checked when the engine answers them (`ReadReady`), by consequences that hold
//! whatever arithmetic the engine used to decide (ReadIndex rounds, leases, clocks):
//! - `read-covers-commits`: a read's index is at least every index any node had committed
//!   when the read was asked for. Sound for ReadIndex: a leader whose round a quorum confirmed
//!   led when the read arrived, so no later leader had committed anything yet, and its commit
//!   index (once its term's no-op committed) covers every entry earlier leaders committed
//!   (leader completeness). Sound for a lease read served at once: while the lease holds no
//!   later leader exists. It needs no client to have seen the newer entries, so it catches a
//!   stale read the linearizability check would miss.
//! - `lease-read-quorum-bound`: when a leader of term `t` serves a lease read at once, a
//!   quorum of every voter set of its configuration would ignore a vote request of a later
//!   term right now: each is the leader itself, is down, or is in term `t` and either in its
//!   quiet period after a start or heard from the leader less than an election timeout ago
//!   by its own clock (the figures the world keeps of each engine's ticks and of the requests
//!   it took). This is the followers' side of the lease, checked at every lease read instead
//!   of the leader's arithmetic (`election_timeout - max_clock_drift` since a quorum's
//!   acknowledged requests were sent, on its own clock): a lease that outlasts the followers'
//!   promise is seen at the first read it serves too late, whether or not another leader
//!   comes. Inside the clock-drift bound the leader's arithmetic guarantees it.
//! - `lease-read-sole-leader`: when a leader of term `t` serves a lease read at once, no node
//!   has led a term above `t`. This is what the lease promises (a quorum acknowledged the
//!   leader recently enough that none of them has voted since; a node that sent TimeoutNow
//!   serves no lease read), checked against the record of every leader ever elected instead
//!   of the engine's clock arithmetic: a lease that lasts too long, or clocks that drift
//!   beyond the bound, show up here as soon as a newer leader is elected, even before it
//!   commits anything.

use raft_core::{LogIndex, NodeId, Term};

use super::Checker;
use crate::node::{SimNode, node_by_id};

/// Whether `sim` would ignore a vote request of a term above `term` now, by the promise it
/// made the leader `leader` of `term` (see the module docs).
fn bound_to(sim: &SimNode, leader: NodeId, term: Term, election_timeout_ms: u64) -> bool {
    let Some(engine) = &sim.engine else {
        return true;
    };
    if sim.id == leader {
        return true;
    }
    let now = sim.engine_now_ms;
    let heard = sim.leader_contact.is_some_and(|(contact_term, from, at)| {
        contact_term == term && from == leader && now.saturating_sub(at) < election_timeout_ms
    });
    let status = engine.status();
    status.term == term && (now < sim.quiet_until_ms || status.leader == Some(leader) && heard)
}

impl Checker {
    /// The highest index any node has committed (applied) so far.
    fn highest_committed(&self) -> LogIndex {
        self.committed
            .last_key_value()
            .map_or(LogIndex::ZERO, |(&index, _)| index)
    }

    /// A client asked for read `id` (ReadIndex or lease), now.
    pub(crate) fn on_read_requested(&mut self, id: u64) {
        let highest = self.highest_committed();
        self.read_requests.insert(id, highest);
    }

    /// Forgets read `id`, which will not be judged; returns the highest index committed when
    /// it was asked for.
    pub(crate) fn forget_read_request(&mut self, id: u64) -> Option<LogIndex> {
        self.read_requests.remove(&id)
    }

    /// `lease-read-quorum-bound` for lease read `id`, served at once by the leader `leader`
    /// (an index into `nodes`).
    pub(crate) fn check_lease_quorum(
        &mut self,
        nodes: &[SimNode],
        leader: usize,
        id: u64,
        election_timeout_ms: u64,
    ) {
        let sim = &nodes[leader];
        let Some(engine) = &sim.engine else {
            return;
        };
        let term = engine.status().term;
        let bound = |voter: NodeId| {
            node_by_id(nodes, voter)
                .is_some_and(|other| bound_to(other, sim.id, term, election_timeout_ms))
        };
        if !engine.membership().is_quorum(bound) {
            let mut loose: Vec<NodeId> = engine
                .membership()
                .voter_sets()
                .flatten()
                .copied()
                .filter(|&voter| !bound(voter))
                .collect();
            loose.dedup();
            let loose: Vec<String> = loose.iter().map(ToString::to_string).collect();
            let detail = format!(
                "node {} serves lease read {id} as leader of term {term}, but voters {} could vote for another leader now",
                sim.id,
                loose.join(",")
            );
            self.fail("lease-read-quorum-bound", detail);
        }
    }

    /// `node`'s engine confirmed read `id` at `index`; `at_once`: a lease read served in the
    /// step that asked for it.
    pub(crate) fn on_read_ready(
        &mut self,
        node: &SimNode,
        id: u64,
        index: LogIndex,
        at_once: bool,
    ) {
        let Some(committed) = self.read_requests.remove(&id) else {
            return;
        };
        let kind = if at_once {
            "lease read served at once"
        } else {
            "read"
        };
        if index < committed {
            let detail = format!(
                "node {} answers {kind} {id} at index {index}, but {committed} had committed when it was asked for",
                node.id
            );
            self.fail("read-covers-commits", detail);
        }
        let Some(engine) = node.engine.as_ref().filter(|_| at_once) else {
            return;
        };
        let term = engine.status().term;
        if let Some((&newer, &leader)) = self.leaders.range(term.next()..).next() {
            let detail = format!(
                "node {} serves lease read {id} at index {index} as leader of term {term}, \
                 but node {leader} has led term {newer}",
                node.id
            );
            self.fail("lease-read-sole-leader", detail);
        }
    }
}

#[cfg(test)]
mod tests {
    use raft_core::engine::{Engine, RestoredState};
    use raft_core::{Config, HardState, Membership};

    use super::*;

    fn membership() -> Membership {
        Membership::new(vec![NodeId(1), NodeId(2), NodeId(3)])
    }

    /// A running node in `term`, following no one.
    fn node_in_term(id: u64, term: u64) -> SimNode {
        let mut node = SimNode::new(NodeId(id), membership());
        let restored = RestoredState {
            hard_state: HardState {
                term: Term(term),
                ..HardState::default()
            },
            ..RestoredState::default()
        };
        let engine = Engine::new(NodeId(id), membership(), Config::default(), restored, 1);
        node.engine = Some(engine.expect("valid"));
        node
    }

    #[test]
    fn a_read_answered_below_an_index_committed_when_it_was_asked_breaks_read_covers_commits() {
        let node = node_in_term(1, 2);
        let mut checker = Checker::default();
        checker
            .committed
            .insert(LogIndex(5), raft_core::LogId::new(2, 5));
        checker.on_read_requested(7);
        checker.on_read_requested(8);
        checker.on_read_ready(&node, 7, LogIndex(5), false);
        assert_eq!(checker.violation, None);
        checker.on_read_ready(&node, 8, LogIndex(4), false);
        let violation = checker.violation.expect("the stale index is seen");
        assert_eq!(violation.invariant, "read-covers-commits");
    }

    #[test]
    fn a_lease_read_served_while_a_later_term_has_a_leader_breaks_lease_read_sole_leader() {
        let node = node_in_term(1, 2);
        let mut checker = Checker::default();
        checker.leaders.insert(Term(3), NodeId(2));
        // A ReadIndex read is confirmed by a quorum round: no claim about other leaders.
        checker.on_read_requested(1);
        checker.on_read_ready(&node, 1, LogIndex::ZERO, false);
        assert_eq!(checker.violation, None);
        checker.on_read_requested(2);
        checker.on_read_ready(&node, 2, LogIndex::ZERO, true);
        let violation = checker.violation.expect("the newer leader is seen");
        assert_eq!(violation.invariant, "lease-read-sole-leader");
    }

    #[test]
    fn a_lease_read_without_a_quorum_ignoring_elections_breaks_lease_read_quorum_bound() {
        let mut nodes = vec![node_in_term(1, 2), node_in_term(2, 2), node_in_term(3, 2)];
        // Node 2 is in its quiet period after a start; node 3 heard from no leader.
        nodes[1].engine_now_ms = 1_000;
        nodes[1].quiet_until_ms = 1_001;
        let mut checker = Checker::default();
        checker.check_lease_quorum(&nodes, 0, 1, 150);
        assert_eq!(checker.violation, None);
        // A node that is down cannot vote: it still counts.
        nodes[1].quiet_until_ms = 1_000;
        nodes[2].engine = None;
        checker.check_lease_quorum(&nodes, 0, 1, 150);
        assert_eq!(checker.violation, None);
        nodes[2] = node_in_term(3, 2);
        checker.check_lease_quorum(&nodes, 0, 1, 150);
        let violation = checker.violation.expect("no quorum is bound");
        assert_eq!(violation.invariant, "lease-read-quorum-bound");
        assert!(violation.detail.contains("voters 2,3"), "{violation:?}");
    }
}
