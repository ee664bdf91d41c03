//! Checks of membership changes:
//! - `config-quorums-overlap`: every configuration entry appended to any log allows no quorum
//!   disjoint from a quorum of the configuration in force just before it in that log (the
//!   latest earlier configuration entry, else the snapshot's, else the one the node started
//!   with): two leaders, or two different commits at one index, would otherwise be possible.
//!   Checked exhaustively (`Membership::quorums_can_be_disjoint`) as the entry is appended.
//! - `snapshot-membership`: a snapshot, created or restored, carries the committed
//!   configuration in force at its index, with no exception: a node that joined and caught up
//!   through the log knows no configuration below the entry that added it (the first one is
//!   not a log entry), so it takes no snapshot there.
//! - `campaign-as-voter`: a node starts a pre-vote or an election only while it is a voter of
//!   its configuration in force (learners, nodes waiting to be added and nodes that know they
//!   were removed never campaign), or, with pre-vote, while that configuration removed it and
//!   has not committed in its view and it was a voter of the configuration before (the Raft
//!   thesis, §4.2.2: it may be needed to elect a leader until its removal commits).
//! - `removed-cannot-disrupt`: a node removed by a committed configuration cannot disturb the
//!   cluster. Once [`REMOVAL_GRACE_MS`] have passed since the checker saw that configuration
//!   commit, the removed node never starts an election of its own (it becomes a candidate only
//!   on a TimeoutNow from its leader), and no member's term rises on a message from it to a
//!   term no other node holds and above every term held when the grace ended (its *ceiling*),
//!   unless its log is at least as up-to-date as a majority of the committed voters' logs: a
//!   node that never learned its removal committed may campaign (the Raft thesis, §4.2.2), and
//!   stands then as any electable candidate would, among voters that hear from no leader
//!   (else they refuse its pre-vote); if elected it commits its removal and hands over.
//!   Checked only when the seed runs pre-vote, and then whatever the network does: a removed
//!   node whose log lacks the configuration that removed it is less up-to-date than a majority
//!   of some voter set of any configuration it may be in, which holds the committed
//!   configuration that followed that one (a configuration commits with a majority of the
//!   voters before it: the outgoing ones of a joint configuration, the same ones otherwise),
//!   and those nodes refuse a pre-vote to a less up-to-date log; one that holds it campaigns
//!   only while it does not know it committed, and the leader tells it on its next heartbeat
//!   (it keeps replicating to a removed node until then). The nemesis only wipes a disk
//!   when every voter set of every configuration in force anywhere keeps a majority of holders
//!   without it (see `world::nemesis`), so that majority survives. The grace covers pre-vote
//!   grants given before the removal committed and still in flight (one network delay, at
//!   most a few hundred milliseconds). Without pre-vote, Raft lets a removed node that never
//!   learned of its removal time out and campaign, and a member outside a leader's lease
//!   adopts its term (Raft thesis §4.2.3): the check would report the protocol, not a bug.

use raft_core::engine::{RoleKind, Status};
use raft_core::{Entry, Membership, NodeId, Payload, SnapshotMeta};

use super::Checker;
use crate::node::{SimNode, node_by_id};

/// How long after a removal commits the removed node may still act on answers given before.
pub(crate) const REMOVAL_GRACE_MS: u64 = 1_000;

impl Checker {
    /// `config-quorums-overlap` for `entries`, about to be appended to `node`'s log.
    pub(super) fn check_config_append(&mut self, node: &SimNode, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        let mut prev: Option<&Membership> = None;
        for entry in entries {
            let Payload::Membership(next) = &entry.payload else {
                continue;
            };
            let before = prev.unwrap_or_else(|| node.log_membership_before(first.log_id.index));
            if before.quorums_can_be_disjoint(next) {
                let detail = format!(
                    "node {} appends configuration {} ({}) after ({}): some majorities are \
                     disjoint",
                    node.id,
                    entry.log_id,
                    describe(next),
                    describe(before)
                );
                self.fail("config-quorums-overlap", detail);
                return;
            }
            prev = Some(next);
        }
    }

    /// `snapshot-membership` for a snapshot `node` created or restored.
    pub(super) fn check_snapshot_membership(&mut self, node: &SimNode, meta: &SnapshotMeta) {
        if self.configs.is_unknown() {
            return;
        }
        let (_, expected) = self.configs.at(meta.last_log_id.index);
        if &meta.membership != expected {
            let detail = format!(
                "node {}'s {meta} carries ({}); committed there: ({})",
                node.id,
                describe(&meta.membership),
                describe(expected)
            );
            self.fail("snapshot-membership", detail);
        }
    }

    /// `campaign-as-voter` after `node` went from `before` to `after` in one step.
    pub(crate) fn check_campaign_as_voter(
        &mut self,
        node: &SimNode,
        before: &Status,
        after: &Status,
    ) {
        let campaigning = matches!(after.role, RoleKind::PreCandidate | RoleKind::Candidate);
        if !campaigning || (after.role == before.role && after.term == before.term) {
            return;
        }
        let Some(membership) = node.engine.as_ref().map(|engine| engine.membership()) else {
            return;
        };
        // With pre-vote, a node its configuration removed may campaign while it has not seen
        // that configuration commit, if it was a voter of the one before (Raft thesis §4.2.2).
        let index = after.membership_index;
        let removed_uncommitted = self.disruption_checked
            && index > after.commit_index
            && node.log_membership_before(index).is_voter(node.id);
        if !membership.is_voter(node.id) && !removed_uncommitted {
            let detail = format!(
                "node {} becomes {:?} in term {} in configuration ({})",
                node.id,
                after.role,
                after.term,
                describe(membership)
            );
            self.fail("campaign-as-voter", detail);
        }
    }

    /// `removed-cannot-disrupt` after `nodes[node]` went from `before` to `after` on an input,
    /// which was a message from `from` if given (`timeout_now`: a TimeoutNow).
    pub(crate) fn check_disruption(
        &mut self,
        nodes: &[SimNode],
        node: usize,
        from: Option<NodeId>,
        timeout_now: bool,
        before: &Status,
        after: &Status,
    ) {
        if !self.disruption_checked || after.term <= before.term {
            return;
        }
        let Some(sim) = nodes.get(node) else {
            return;
        };
        let now_ms = self.now_ms;
        let campaigns = matches!(after.role, RoleKind::Candidate | RoleKind::Leader);
        if let Some(removal) = self.configs.removal(sim.id)
            && now_ms >= removal.at_ms + REMOVAL_GRACE_MS
            && campaigns
            && !timeout_now
            && !self.electable(nodes, sim.id)
        {
            let detail = format!(
                "node {}, removed by a configuration committed at {} ms, starts an election \
                 in term {} at {now_ms} ms",
                sim.id, removal.at_ms, after.term
            );
            self.fail("removed-cannot-disrupt", detail);
            return;
        }
        let Some(from) = from else {
            return;
        };
        let Some(ceiling) = self.configs.removal(from).and_then(|r| r.ceiling) else {
            return;
        };
        if after.term <= ceiling || !self.configs.latest().1.is_member(sim.id) {
            return;
        }
        let others = nodes
            .iter()
            .filter(|other| other.id != from && other.id != sim.id)
            .map(SimNode::term)
            .max()
            .unwrap_or_default();
        // Raised by the removed node's own campaign (its request, or an answer in the term it
        // campaigns in): judged by whether it may stand (see `electable`).
        if after.term > others.max(before.term) && !self.electable(nodes, from) {
            let detail = format!(
                "member {} went from term {} to {} on a message from removed node {from} \
                 (no other node holds that term; the highest when its removal's grace ended \
                 was {ceiling})",
                sim.id, before.term, after.term
            );
            self.fail("removed-cannot-disrupt", detail);
        }
    }

    /// Whether node `id` could be elected now: its log is at least as up-to-date as the logs
    /// of a majority of the latest committed configuration's voters (by last entry, term
    /// first), which a removed node that never learned its removal committed may then stand
    /// for (the Raft thesis, §4.2.2). It is no disruption: those voters hear from no leader
    /// (else they refuse its pre-vote), and as leader it commits its removal and hands over.
    fn electable(&self, nodes: &[SimNode], id: NodeId) -> bool {
        let Some(candidate) = node_by_id(nodes, id) else {
            return false;
        };
        let last = |sim: &SimNode| {
            let id = match sim.engine.as_ref() {
                Some(engine) => engine.status().last_log_id,
                None => sim.durable_log.last_log_id().unwrap_or_else(|| {
                    sim.snapshot_meta()
                        .map(|meta| meta.last_log_id)
                        .unwrap_or_default()
                }),
            };
            (id.term, id.index)
        };
        let own = last(candidate);
        let (_, committed) = self.configs.latest();
        let voters: Vec<NodeId> = committed.voters().collect();
        let behind = voters
            .iter()
            .filter_map(|&voter| node_by_id(nodes, voter))
            .filter(|sim| last(sim) <= own)
            .count();
        2 * behind > voters.len()
    }

    /// Sets the ceiling of each removal whose grace just ended: the highest term any node
    /// holds now.
    pub(super) fn update_removal_ceilings(&mut self, nodes: &[SimNode]) {
        let due = self
            .configs
            .removals_without_ceiling(self.now_ms, REMOVAL_GRACE_MS);
        if due.is_empty() {
            return;
        }
        let highest = nodes.iter().map(SimNode::term).max().unwrap_or_default();
        for id in due {
            self.configs.set_ceiling(id, highest);
        }
    }
}

/// A configuration for a violation's detail: `voters 1,2,4 outgoing 1,2,3 learners 5`.
pub(crate) fn describe(membership: &Membership) -> String {
    let list = |ids: &mut dyn Iterator<Item = NodeId>| {
        ids.map(|id| id.to_string()).collect::<Vec<_>>().join(",")
    };
    let mut text = format!("voters {}", list(&mut membership.voters()));
    if membership.is_joint() {
        text.push_str(&format!(
            " outgoing {}",
            list(&mut membership.outgoing_voters())
        ));
    }
    let learners = list(&mut membership.learners());
    if !learners.is_empty() {
        text.push_str(&format!(" learners {learners}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use raft_core::{LogId, LogIndex, MembershipChange, Term};

    use super::*;

    fn ids(values: &[u64]) -> Vec<NodeId> {
        values.iter().map(|&v| NodeId(v)).collect()
    }

    fn config_entry(index: u64, membership: Membership) -> Entry {
        Entry {
            log_id: LogId::new(1, index),
            payload: Payload::Membership(membership),
        }
    }

    fn blank(index: u64) -> Entry {
        Entry {
            log_id: LogId::new(1, index),
            payload: Payload::Blank,
        }
    }

    fn with_learners() -> Membership {
        Membership::new(ids(&[1, 2, 3]))
            .apply(&MembershipChange::add_learner(NodeId(4), "4").with_learner(NodeId(5), "5"))
            .unwrap()
    }

    fn node_with_log(entries: &[Entry]) -> SimNode {
        let mut node = SimNode::new(NodeId(1), Membership::new(ids(&[1, 2, 3])));
        node.log.append(entries);
        node
    }

    fn two_for_one() -> MembershipChange {
        MembershipChange::default()
            .promote(NodeId(4))
            .promote(NodeId(5))
            .remove(NodeId(1))
    }

    #[test]
    fn a_joint_configuration_after_its_predecessor_passes() {
        let node = node_with_log(&[blank(1), config_entry(2, with_learners())]);
        assert_eq!(node.log_membership_before(LogIndex(3)), &with_learners());
        let joint = with_learners().apply(&two_for_one()).unwrap();
        let mut checker = Checker::default();
        checker.check_config_append(&node, &[blank(3), config_entry(4, joint.clone())]);
        checker.check_config_append(&node, &[config_entry(3, joint.clone())]);
        assert_eq!(checker.violation, None);
        // In one batch: the joint configuration, then the final one.
        let batch = [
            config_entry(3, joint.clone()),
            config_entry(4, joint.leave_joint()),
        ];
        checker.check_config_append(&node, &batch);
        assert_eq!(checker.violation, None);
    }

    #[test]
    fn switching_two_voters_without_a_joint_phase_breaks_config_quorums_overlap() {
        let node = node_with_log(&[blank(1), config_entry(2, with_learners())]);
        let direct = with_learners().apply(&two_for_one()).unwrap().leave_joint();
        let mut checker = Checker::default();
        checker.check_config_append(&node, &[config_entry(3, direct)]);
        let violation = checker.violation.map(|v| (v.invariant, v.detail));
        assert_eq!(
            violation.as_ref().map(|v| v.0),
            Some("config-quorums-overlap")
        );
        assert!(
            violation
                .is_some_and(|v| v.1.contains("voters 2,3,4,5") && v.1.contains("learners 4,5")),
            "the detail names both configurations"
        );
    }

    #[test]
    fn the_configuration_a_node_started_with_precedes_its_first_entry() {
        // A founding node's log holds no configuration: the one it started with counts.
        let node = node_with_log(&[blank(1)]);
        let direct = Membership::new(ids(&[1, 4, 5]));
        let mut checker = Checker::default();
        checker.check_config_append(&node, &[config_entry(2, direct)]);
        assert_eq!(
            checker.violation.map(|v| v.invariant),
            Some("config-quorums-overlap")
        );
        // A node started empty (waiting to be added) accepts any first configuration.
        let mut fresh = SimNode::new(NodeId(9), Membership::default());
        fresh.log.append(&[blank(1)]);
        let mut checker = Checker::default();
        checker.check_config_append(&fresh, &[config_entry(2, Membership::new(ids(&[1, 4, 5])))]);
        assert_eq!(checker.violation, None);
    }

    fn status(term: u64, role: RoleKind) -> Status {
        Status {
            id: NodeId(3),
            role,
            term: Term(term),
            vote: None,
            leader: None,
            commit_index: LogIndex::ZERO,
            last_log_id: LogId::new(0, 0),
            durable_index: LogIndex::ZERO,
            snapshot_index: LogIndex::ZERO,
            log_base_index: LogIndex::ZERO,
            membership_index: LogIndex::ZERO,
        }
    }

    /// Node 3 removed at 100 ms (configuration 1, 2, 4).
    fn checker_with_node_3_removed() -> (Checker, Vec<SimNode>) {
        let first = Membership::new(ids(&[1, 2, 3]));
        let mut checker = Checker::new(first.clone(), true);
        let learner = first
            .apply(&MembershipChange::add_learner(NodeId(4), "4"))
            .unwrap();
        let joint = learner
            .apply(
                &MembershipChange::default()
                    .promote(NodeId(4))
                    .remove(NodeId(3)),
            )
            .unwrap();
        checker
            .configs
            .on_committed(LogIndex(2), &learner, None, 50);
        checker.configs.on_committed(LogIndex(3), &joint, None, 60);
        checker
            .configs
            .on_committed(LogIndex(4), &joint.leave_joint(), None, 100);
        // The members hold an entry node 3 lacks: it could not be elected.
        let nodes = (1..=4)
            .map(|id| {
                let mut node = SimNode::new(NodeId(id), first.clone());
                if id != 3 {
                    node.durable_log.append(&[blank(1)]);
                }
                node
            })
            .collect();
        (checker, nodes)
    }

    #[test]
    fn a_removed_node_campaigning_after_the_grace_breaks_removed_cannot_disrupt() {
        let (mut checker, nodes) = checker_with_node_3_removed();
        let (follower, candidate) = (
            status(2, RoleKind::PreCandidate),
            status(3, RoleKind::Candidate),
        );
        checker.now_ms = 100 + REMOVAL_GRACE_MS - 1;
        checker.check_disruption(&nodes, 2, None, false, &follower, &candidate);
        assert_eq!(checker.violation, None, "within the grace");
        checker.now_ms = 100 + REMOVAL_GRACE_MS;
        checker.check_disruption(&nodes, 2, None, true, &follower, &candidate);
        assert_eq!(checker.violation, None, "on a TimeoutNow from its leader");
        checker.check_disruption(&nodes, 2, None, false, &follower, &candidate);
        assert_eq!(
            checker.violation.map(|v| v.invariant),
            Some("removed-cannot-disrupt")
        );
        // One whose log is as up-to-date as a majority of the voters' may stand (it does not
        // know its removal committed; the Raft thesis, §4.2.2).
        let (mut checker, mut nodes) = checker_with_node_3_removed();
        nodes[2].durable_log.append(&[blank(1)]);
        checker.now_ms = 100 + REMOVAL_GRACE_MS;
        checker.check_disruption(&nodes, 2, None, false, &follower, &candidate);
        assert_eq!(checker.violation, None);
    }

    #[test]
    fn a_member_raised_to_a_term_only_a_removed_node_holds_breaks_removed_cannot_disrupt() {
        let (mut checker, mut nodes) = checker_with_node_3_removed();
        for node in &mut nodes {
            node.durable_hard_state.term = Term(2);
        }
        checker.now_ms = 100 + REMOVAL_GRACE_MS;
        checker.update_removal_ceilings(&nodes);
        // Node 3 reached term 5 on its own; node 1 adopts it from node 3's message.
        nodes[2].durable_hard_state.term = Term(5);
        let (before, after) = (status(2, RoleKind::Follower), status(5, RoleKind::Follower));
        checker.check_disruption(&nodes, 0, Some(NodeId(3)), false, &before, &after);
        assert_eq!(
            checker.violation.map(|v| v.invariant),
            Some("removed-cannot-disrupt")
        );
        // A term another node holds already is not the removed node's doing.
        let (mut checker, mut nodes) = checker_with_node_3_removed();
        checker.now_ms = 100 + REMOVAL_GRACE_MS;
        checker.update_removal_ceilings(&nodes);
        nodes[1].durable_hard_state.term = Term(5);
        checker.check_disruption(&nodes, 0, Some(NodeId(3)), false, &before, &after);
        assert_eq!(checker.violation, None);
    }
}
