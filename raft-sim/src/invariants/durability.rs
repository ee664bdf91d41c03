//! Consequences checked on the whole cluster after every step, counted on the simulated disks
//! rather than on what the engines believe (so they hold whatever the engine's code looks like):
//! - `commit-durable-on-majority`: the highest entry any node has applied (the checker's
//!   `committed`) is durable on a majority of the voters' disks.
//! - `commit-index-within-durable-majority`: each live node's commit index (its `Status`) names
//!   an entry durable on a majority of the voters' disks.
//! - `progress-bounds`: on a leader, every follower's `match_index < next_index <= last + 1`.
//!
//! After them, the liveness watch of [`liveness`](super::liveness) (`liveness-after-heal`).
//!
//! *The voters* are the incoming voters of the latest committed configuration `C` (the first
//! one, without membership changes); other nodes' disks, removed nodes' among them, do not
//! count. That is the set every commit since `C` needed a majority of: `C` itself committed
//! with a majority of each of its voter sets (a configuration is in force from its append, and
//! no successor can be appended before it commits); a later entry committed under `C`, under a
//! joint successor (whose outgoing voters are `C`'s) or under a successor that changes only
//! learners needs a majority of `C`'s voters too, and one committed under the final
//! configuration that leaves a joint `C` needs a majority of its incoming voters, which are
//! `C`'s incoming voters. (The outgoing voters of a joint `C` are not required: entries after
//! it may commit under the final configuration before that configuration itself commits.)
//!
//! *Durable* means what survives a crash in [`SimNode`]: the entry is in the node's
//! `durable_log` with the same id, or (for a committed entry) the node's durable snapshot
//! reaches its index, since a snapshot at or past an index holds the committed prefix (its
//! state is checked against that prefix elsewhere). Pending writes, the volatile `log` and a
//! snapshot still being received do not count.
//!
//! Only the highest committed index is counted: a durable log holding an entry holds the
//! entries before it (Log Matching, checked as entries are appended) or a durable snapshot
//! covers them (`compact-after-snapshot`), so a majority holding the highest committed entry
//! holds every committed entry. That keeps the check at one look-up per voter and step.
//!
//! A wiped node (a replaced machine) holds nothing until it catches up again, and is counted
//! so. The nemesis wipes a node only when every entry it held durably is durable on a majority
//! of the *other* nodes (see `world::nemesis`), so a deliberate wipe never drops a committed
//! entry below a majority; the planted `unsafe-wipe` bug does, and these checks see it at the
//! step of the wipe.

use std::fmt::Write as _;

use raft_core::engine::{FollowerStatus, RoleKind};
use raft_core::{LogId, LogIndex, NodeId};

use super::Checker;
use super::membership::describe;
use crate::node::{SimNode, node_by_id};

impl Checker {
    /// Runs the cluster-wide checks; `nodes` is every node (the checker knows who votes).
    pub(crate) fn after_world_step(&mut self, nodes: &[SimNode]) {
        let voters: Vec<NodeId> = self.configs.latest().1.voters().collect();
        self.check_commit_durable(nodes, &voters);
        for node in nodes {
            self.check_commit_index(node, nodes, &voters);
            self.check_progress(node);
        }
        self.update_removal_ceilings(nodes);
        if let Some(mut detail) = self.liveness.overdue(self.now_ms) {
            for node in nodes {
                if let Some(engine) = &node.engine {
                    let status = engine.status();
                    let _ = write!(
                        detail,
                        " node {} {:?} of term {} (last {}, commit {}, {});",
                        node.id,
                        status.role,
                        status.term,
                        status.last_log_id,
                        status.commit_index,
                        describe(engine.membership())
                    );
                }
            }
            self.fail("liveness-after-heal", detail);
        }
    }

    /// `commit-durable-on-majority`.
    fn check_commit_durable(&mut self, nodes: &[SimNode], voters: &[NodeId]) {
        let Some((_, &id)) = self.committed.last_key_value() else {
            return;
        };
        let holders = durable_holders(nodes, voters, id, true);
        if holders < majority(voters) {
            let detail = format!(
                "committed entry {id} is durable on {holders} of {} voters' disks (quorum {}); \
                 holders: {}",
                voters.len(),
                majority(voters),
                holder_list(nodes, voters, id, true)
            );
            self.fail("commit-durable-on-majority", detail);
        }
    }

    /// `commit-index-within-durable-majority`: the entry at a live node's commit index, as that
    /// node sees it, is durable on a majority.
    fn check_commit_index(&mut self, node: &SimNode, nodes: &[SimNode], voters: &[NodeId]) {
        let Some(engine) = node.engine.as_ref() else {
            return;
        };
        let commit = engine.status().commit_index;
        if commit == LogIndex::ZERO {
            return;
        }
        let Some(id) = self.entry_seen(node, commit) else {
            let detail = format!(
                "node {} has commit index {commit} but neither holds nor covers an entry there",
                node.id
            );
            self.fail("commit-index-within-durable-majority", detail);
            return;
        };
        let committed = self.committed_at(commit) == Some(id);
        let holders = durable_holders(nodes, voters, id, committed);
        if holders < majority(voters) {
            let detail = format!(
                "node {} has commit index {commit} (entry {id}), durable on {holders} of {} \
                 voters' disks (quorum {}); holders: {}",
                node.id,
                voters.len(),
                majority(voters),
                holder_list(nodes, voters, id, committed)
            );
            self.fail("commit-index-within-durable-majority", detail);
        }
    }

    /// The id of the entry `node` has at `index`: in its log, else its durable snapshot's last
    /// entry, else (under that snapshot) the committed one.
    fn entry_seen(&self, node: &SimNode, index: LogIndex) -> Option<LogId> {
        if let Some(entry) = node.entry(index) {
            return Some(entry.log_id);
        }
        let meta = node.snapshot_meta()?;
        if meta.last_log_id.index == index {
            return Some(meta.last_log_id);
        }
        if index < meta.last_log_id.index {
            return self.committed_at(index);
        }
        None
    }

    /// `progress-bounds` on a live leader.
    fn check_progress(&mut self, node: &SimNode) {
        let Some(engine) = node.engine.as_ref() else {
            return;
        };
        if engine.role_kind() != RoleKind::Leader {
            return;
        }
        let last = engine.status().last_log_id.index;
        if let Some(detail) = progress_violation(node.id, last, &engine.followers()) {
            self.fail("progress-bounds", detail);
        }
    }
}

/// Whether `sim`'s disk holds `id` durably: in its durable log, or under its durable snapshot
/// when `id` is committed.
pub(crate) fn holds_durably(sim: &SimNode, id: LogId, committed: bool) -> bool {
    sim.durable_entry(id.index).map(|e| e.log_id) == Some(id)
        || (committed && id.index <= sim.snapshot_index())
        || sim.snapshot_meta().map(|meta| meta.last_log_id) == Some(id)
}

/// The smallest majority of `voters`.
fn majority(voters: &[NodeId]) -> usize {
    voters.len() / 2 + 1
}

/// The voters holding `id` durably.
fn holders<'a>(
    nodes: &'a [SimNode],
    voters: &'a [NodeId],
    id: LogId,
    committed: bool,
) -> impl Iterator<Item = NodeId> + 'a {
    voters.iter().copied().filter(move |&voter| {
        node_by_id(nodes, voter).is_some_and(|sim| holds_durably(sim, id, committed))
    })
}

/// How many voters hold `id` durably.
fn durable_holders(nodes: &[SimNode], voters: &[NodeId], id: LogId, committed: bool) -> usize {
    holders(nodes, voters, id, committed).count()
}

/// The voters holding `id` durably, for a violation's detail.
fn holder_list(nodes: &[SimNode], voters: &[NodeId], id: LogId, committed: bool) -> String {
    let ids: Vec<String> = holders(nodes, voters, id, committed)
        .map(|voter| voter.to_string())
        .collect();
    format!("[{}]", ids.join(", "))
}

/// What breaks `match_index < next_index <= last + 1` for a leader whose last entry is `last`.
pub(crate) fn progress_violation(
    leader: NodeId,
    last: LogIndex,
    followers: &[FollowerStatus],
) -> Option<String> {
    followers.iter().find_map(|f| {
        let ok = f.match_index < f.next_index && f.next_index <= last.next();
        (!ok).then(|| {
            format!(
                "leader {leader} (last index {last}) tracks follower {} with match_index {} and \
                 next_index {}",
                f.peer, f.match_index, f.next_index
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use raft_core::engine::Engine;
    use raft_core::{Config, Entry, HardState, Membership, Payload, SnapshotMeta, Term};

    use super::*;

    fn entries(term: u64, first: u64, last: u64) -> Vec<Entry> {
        (first..=last)
            .map(|index| Entry {
                log_id: LogId::new(term, index),
                payload: Payload::Blank,
            })
            .collect()
    }

    fn cluster(size: u64) -> (Vec<SimNode>, Membership) {
        let ids: Vec<NodeId> = (1..=size).map(NodeId).collect();
        let membership = Membership::new(ids.clone());
        let nodes = ids
            .iter()
            .map(|&id| SimNode::new(id, membership.clone()))
            .collect();
        (nodes, membership)
    }

    fn checker_with_committed(upto: u64) -> Checker {
        let (_, membership) = cluster(3);
        let mut checker = Checker::new(membership, true);
        for index in 1..=upto {
            checker
                .committed
                .insert(LogIndex(index), LogId::new(1, index));
        }
        checker
    }

    fn follower(match_index: u64, next_index: u64) -> FollowerStatus {
        FollowerStatus {
            peer: NodeId(2),
            next_index: LogIndex(next_index),
            match_index: LogIndex(match_index),
            inflight: 0,
            batch: 1,
            threshold: 1,
        }
    }

    #[test]
    fn a_committed_entry_on_a_majority_of_durable_logs_passes() {
        let (mut nodes, _) = cluster(3);
        for node in &mut nodes[..2] {
            node.durable_log.append(&entries(1, 1, 5));
        }
        let mut checker = checker_with_committed(5);
        checker.after_world_step(&nodes);
        assert_eq!(checker.violation, None);
    }

    #[test]
    fn a_committed_entry_only_in_volatile_logs_breaks_commit_durable_on_majority() {
        let (mut nodes, _) = cluster(3);
        nodes[0].durable_log.append(&entries(1, 1, 5));
        // Written (readable) but not yet flushed: a crash would lose it.
        nodes[1].log.append(&entries(1, 1, 5));
        let mut checker = checker_with_committed(5);
        checker.after_world_step(&nodes);
        let violation = checker.violation.as_ref().map(|v| (v.invariant, &v.detail));
        assert_eq!(
            violation.map(|v| v.0),
            Some("commit-durable-on-majority"),
            "{violation:?}"
        );
        assert!(
            violation.is_some_and(|v| v.1.contains("1-5") && v.1.contains("1 of 3")),
            "{violation:?}"
        );
    }

    #[test]
    fn a_durable_snapshot_past_the_committed_index_counts_as_holding_it() {
        let (mut nodes, membership) = cluster(3);
        nodes[0].durable_log.append(&entries(1, 1, 5));
        let meta = SnapshotMeta {
            last_log_id: LogId::new(1, 7),
            membership: membership.clone(),
            size: 0,
            checksum: 0,
        };
        nodes[1].snapshot = Some((meta, Bytes::new()));
        let mut checker = checker_with_committed(5);
        checker.after_world_step(&nodes);
        assert_eq!(checker.violation, None);
    }

    #[test]
    fn a_different_entry_at_the_index_does_not_count() {
        let (mut nodes, _) = cluster(3);
        nodes[0].durable_log.append(&entries(1, 1, 5));
        nodes[1].durable_log.append(&entries(1, 1, 4));
        nodes[1].durable_log.append(&entries(2, 5, 5));
        let mut checker = checker_with_committed(5);
        checker.after_world_step(&nodes);
        assert_eq!(
            checker.violation.map(|v| v.invariant),
            Some("commit-durable-on-majority")
        );
    }

    #[test]
    fn a_wiped_node_no_longer_counts_as_a_holder() {
        let (mut nodes, _) = cluster(3);
        for node in &mut nodes[..2] {
            node.durable_log.append(&entries(1, 1, 5));
        }
        nodes[1].wipe();
        let mut checker = checker_with_committed(5);
        checker.after_world_step(&nodes);
        assert_eq!(
            checker.violation.map(|v| v.invariant),
            Some("commit-durable-on-majority")
        );
    }

    /// A node restarted with commit index 5 from its own disk, while entry 5 is durable on it
    /// alone: the commit index is past what a majority holds.
    #[test]
    fn a_commit_index_past_the_durable_majority_breaks_commit_index_within_durable_majority() {
        let (mut nodes, membership) = cluster(3);
        nodes[0].durable_log.append(&entries(1, 1, 5));
        nodes[0].log.append(&entries(1, 1, 5));
        nodes[1].durable_log.append(&entries(1, 1, 4));
        nodes[0].durable_hard_state = HardState {
            term: Term(1),
            vote: None,
            commit: LogIndex(5),
        };
        let restored = nodes[0].restored_state();
        let engine = Engine::new(
            NodeId(1),
            membership.clone(),
            Config::default(),
            restored,
            1,
        );
        nodes[0].engine = engine.ok();
        let commit = nodes[0].engine.as_ref().map(|e| e.status().commit_index);
        assert_eq!(commit, Some(LogIndex(5)));
        // Entries 1..=4 were applied somewhere; 5 not yet (no node applied it).
        let mut checker = checker_with_committed(4);
        checker.after_world_step(&nodes);
        let violation = checker.violation.map(|v| (v.invariant, v.detail));
        assert_eq!(
            violation.as_ref().map(|v| v.0),
            Some("commit-index-within-durable-majority"),
            "{violation:?}"
        );
        assert!(
            violation.is_some_and(|v| v.1.contains("node 1 has commit index 5")),
            "detail names node and index"
        );
        // Once a second disk holds entry 5 durably, the commit index is within the majority.
        nodes[1].durable_log.append(&entries(1, 5, 5));
        let mut checker = checker_with_committed(4);
        checker.after_world_step(&nodes);
        assert_eq!(checker.violation, None);
    }

    /// Nodes 1, 2, 3 and 4; the committed configuration is joint (voters 2, 3, 4, outgoing
    /// 1, 2, 3) or, with `final_config`, the final one (voters 2, 3, 4).
    fn checker_after_replacing_1_by_4(final_config: bool) -> (Checker, Vec<SimNode>) {
        let (mut nodes, first) = cluster(3);
        nodes.push(SimNode::new(NodeId(4), Membership::default()));
        let mut checker = checker_with_committed(5);
        let learner = first
            .apply(&raft_core::MembershipChange::add_learner(NodeId(4), "4"))
            .unwrap();
        let change = raft_core::MembershipChange::default()
            .promote(NodeId(4))
            .remove(NodeId(1));
        let joint = learner.apply(&change).unwrap();
        checker.configs.on_committed(LogIndex(2), &learner, None, 0);
        checker.configs.on_committed(LogIndex(3), &joint, None, 0);
        if final_config {
            checker
                .configs
                .on_committed(LogIndex(4), &joint.leave_joint(), None, 0);
        }
        (checker, nodes)
    }

    #[test]
    fn a_removed_nodes_disk_no_longer_counts() {
        let (mut checker, mut nodes) = checker_after_replacing_1_by_4(true);
        for node in &mut nodes[..2] {
            node.durable_log.append(&entries(1, 1, 5));
        }
        checker.after_world_step(&nodes);
        let violation = checker.violation.map(|v| (v.invariant, v.detail));
        assert_eq!(
            violation.as_ref().map(|v| v.0),
            Some("commit-durable-on-majority")
        );
        assert!(
            violation.is_some_and(|v| v.1.contains("1 of 3") && v.1.contains("holders: [2]")),
            "node 1 holds the entry but was removed"
        );
        // The incoming voters 2 and 4 are a majority.
        let (mut checker, mut nodes) = checker_after_replacing_1_by_4(true);
        nodes[1].durable_log.append(&entries(1, 1, 5));
        nodes[3].durable_log.append(&entries(1, 1, 5));
        checker.after_world_step(&nodes);
        assert_eq!(checker.violation, None);
    }

    /// While the latest committed configuration is joint, entries after it may commit under
    /// the final configuration, before that one commits: only the incoming voters count.
    #[test]
    fn a_committed_joint_configuration_counts_its_incoming_voters() {
        let (mut checker, mut nodes) = checker_after_replacing_1_by_4(false);
        nodes[1].durable_log.append(&entries(1, 1, 5));
        nodes[3].durable_log.append(&entries(1, 1, 5));
        checker.after_world_step(&nodes);
        assert_eq!(checker.violation, None);
        let (mut checker, mut nodes) = checker_after_replacing_1_by_4(false);
        nodes[0].durable_log.append(&entries(1, 1, 5));
        nodes[1].durable_log.append(&entries(1, 1, 5));
        checker.after_world_step(&nodes);
        assert_eq!(
            checker.violation.map(|v| v.invariant),
            Some("commit-durable-on-majority"),
            "a majority of the outgoing voters 1, 2, 3 is not one of the incoming 2, 3, 4"
        );
    }

    #[test]
    fn progress_within_bounds_passes() {
        let followers = [follower(0, 1), follower(4, 5), follower(3, 11)];
        assert_eq!(
            progress_violation(NodeId(1), LogIndex(10), &followers),
            None
        );
    }

    #[test]
    fn next_index_at_or_below_match_index_breaks_progress_bounds() {
        let detail = progress_violation(NodeId(1), LogIndex(10), &[follower(5, 5)]);
        assert!(
            detail
                .as_ref()
                .is_some_and(|d| d.contains("match_index 5") && d.contains("next_index 5")),
            "{detail:?}"
        );
    }

    #[test]
    fn next_index_past_the_leaders_log_breaks_progress_bounds() {
        let detail = progress_violation(NodeId(1), LogIndex(10), &[follower(3, 12)]);
        assert!(
            detail.is_some_and(|d| d.contains("last index 10")),
            "violation expected"
        );
    }
}
