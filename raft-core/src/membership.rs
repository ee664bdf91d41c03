//! Cluster membership: who votes, who only learns, and where each member can be reached.
//!
//! A [`Membership`] is a value carried in log entries ([`Payload::Membership`](crate::Payload))
//! and in snapshots. A node uses the latest one in its log, committed or not (Raft thesis
//! §4.1); a truncation that removes a membership entry reverts to the one before it.
//!
//! A change of the voter set goes through a *joint* configuration (thesis §4.3): the entry
//! lists the new voters and keeps the old ones as `outgoing`, and every decision (commit,
//! election, pre-vote, ReadIndex, check-quorum) needs a majority of both sets. Once the joint
//! entry commits, the leader appends the final configuration on its own. Learners receive the
//! log and snapshots but never count in any quorum and never campaign.
//!
//! ```
//! use raft_core::{Membership, MembershipChange, NodeId};
//!
//! let old = Membership::new([NodeId(1), NodeId(2), NodeId(3)]);
//! // Add node 4 as a learner first, so it can catch up without counting in any quorum.
//! let with_learner = old
//!     .apply(&MembershipChange::add_learner(NodeId(4), "10.0.0.4:7000"))
//!     .unwrap();
//! assert!(with_learner.is_learner(NodeId(4)) && !with_learner.is_joint());
//! // Replace node 3 by node 4: a joint configuration, then the final one.
//! let change = MembershipChange::default().promote(NodeId(4)).remove(NodeId(3));
//! let joint = with_learner.apply(&change).unwrap();
//! assert!(joint.is_joint());
//! // Both majorities: {1, 2} is a majority of the old voters and of the new ones.
//! assert!(joint.is_quorum(|id| id == NodeId(1) || id == NodeId(2)));
//! // {1, 4} is a majority of the new voters {1, 2, 4} but not of the old {1, 2, 3}.
//! assert!(!joint.is_quorum(|id| id == NodeId(1) || id == NodeId(4)));
//! let last = joint.leave_joint();
//! assert_eq!(last.voters().collect::<Vec<_>>(), [NodeId(1), NodeId(2), NodeId(4)]);
//! ```

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, BufMut};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::types::{LogIndex, NodeId};

/// The members of a cluster: voters, the outgoing voters of a joint configuration, learners,
/// and the address of each member that has one (an opaque string the transport interprets).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Membership {
    voters: BTreeSet<NodeId>,
    /// The voters of the configuration being left, while joint.
    #[serde(default)]
    outgoing: Option<BTreeSet<NodeId>>,
    #[serde(default)]
    learners: BTreeSet<NodeId>,
    #[serde(default)]
    addresses: BTreeMap<NodeId, String>,
}

/// A requested change of the members, made in one call. Adding or removing voters goes through
/// a joint configuration; a change of learners only takes effect in one step.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipChange {
    /// New learners and their addresses.
    pub add_learners: BTreeMap<NodeId, String>,
    /// Learners to make voters (a new node joins as a learner first, so it catches up before
    /// it counts in any quorum).
    pub promote: BTreeSet<NodeId>,
    /// Members (voters or learners) to remove.
    pub remove: BTreeSet<NodeId>,
}

impl MembershipChange {
    /// A change that adds one learner.
    #[must_use]
    pub fn add_learner(id: NodeId, address: impl Into<String>) -> MembershipChange {
        MembershipChange::default().with_learner(id, address)
    }

    /// Also adds learner `id` at `address`.
    #[must_use]
    pub fn with_learner(mut self, id: NodeId, address: impl Into<String>) -> MembershipChange {
        self.add_learners.insert(id, address.into());
        self
    }

    /// Also promotes learner `id` to voter.
    #[must_use]
    pub fn promote(mut self, id: NodeId) -> MembershipChange {
        self.promote.insert(id);
        self
    }

    /// Also removes member `id`.
    #[must_use]
    pub fn remove(mut self, id: NodeId) -> MembershipChange {
        self.remove.insert(id);
        self
    }

    /// Whether the change asks for nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.add_learners.is_empty() && self.promote.is_empty() && self.remove.is_empty()
    }
}

impl Membership {
    /// A membership of the given voters, with no learners and no addresses.
    #[must_use]
    pub fn new(voters: impl IntoIterator<Item = NodeId>) -> Membership {
        Membership {
            voters: voters.into_iter().collect(),
            ..Membership::default()
        }
    }

    /// The same membership with `address` recorded for member `id`.
    #[must_use]
    pub fn with_address(mut self, id: NodeId, address: impl Into<String>) -> Membership {
        self.addresses.insert(id, address.into());
        self
    }

    /// The voters (the incoming ones, while joint), in ascending id order.
    pub fn voters(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.iter().copied()
    }

    /// The voters of the configuration being left, while joint.
    pub fn outgoing_voters(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.outgoing.iter().flatten().copied()
    }

    /// The learners, in ascending id order.
    pub fn learners(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.learners.iter().copied()
    }

    /// Every member: voters of either set and learners, in ascending id order, once each.
    #[must_use]
    pub fn members(&self) -> BTreeSet<NodeId> {
        let mut all = self.voters.clone();
        all.extend(self.outgoing_voters());
        all.extend(self.learners());
        all
    }

    /// Whether `id` votes (in the incoming or the outgoing set).
    #[must_use]
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.outgoing.as_ref().is_some_and(|o| o.contains(&id))
    }

    /// Whether `id` is a learner.
    #[must_use]
    pub fn is_learner(&self, id: NodeId) -> bool {
        self.learners.contains(&id)
    }

    /// Whether `id` is a member at all.
    #[must_use]
    pub fn is_member(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.is_learner(id)
    }

    /// Whether this is a joint configuration (a change of voters in progress).
    #[must_use]
    pub fn is_joint(&self) -> bool {
        self.outgoing.is_some()
    }

    /// The address recorded for member `id`.
    #[must_use]
    pub fn address(&self, id: NodeId) -> Option<&str> {
        self.addresses.get(&id).map(String::as_str)
    }

    /// Every recorded address.
    #[must_use]
    pub fn addresses(&self) -> &BTreeMap<NodeId, String> {
        &self.addresses
    }

    /// The number of voters (incoming and outgoing, each counted once).
    #[must_use]
    pub fn len(&self) -> usize {
        self.voters.len()
            + self
                .outgoing_voters()
                .filter(|id| !self.voters.contains(id))
                .count()
    }

    /// Whether there are no voters at all (a node waiting to be added to a cluster).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.voters.is_empty() && self.outgoing.as_ref().is_none_or(BTreeSet::is_empty)
    }

    /// The voter sets a decision needs a majority of: one, or two while joint.
    pub fn voter_sets(&self) -> impl Iterator<Item = &BTreeSet<NodeId>> + '_ {
        std::iter::once(&self.voters).chain(self.outgoing.iter())
    }

    /// Whether the nodes for which `has` is true include a majority of every voter set.
    pub fn is_quorum(&self, has: impl Fn(NodeId) -> bool) -> bool {
        self.voter_sets().all(|set| {
            let count = set.iter().filter(|&&id| has(id)).count();
            count >= majority(set.len())
        })
    }

    /// The highest index that a majority of every voter set has reached, where `index_of`
    /// gives each voter's index (`None` counts as zero).
    pub fn committed_index(&self, index_of: impl Fn(NodeId) -> Option<LogIndex>) -> LogIndex {
        LogIndex(
            self.quorum_value(|id| index_of(id).map(|index| index.0))
                .unwrap_or(0),
        )
    }

    /// The highest value that a majority of every voter set has reached, where `value_of`
    /// gives each voter's value (`None`: below every value); `None` if no quorum has one.
    /// The commit index is this over match indexes; a leader's lease is this over the send
    /// times of the requests its followers acknowledged.
    pub fn quorum_value(&self, value_of: impl Fn(NodeId) -> Option<u64>) -> Option<u64> {
        let mut lowest: Option<Option<u64>> = None;
        for set in self.voter_sets() {
            let values = set.iter().map(|&id| value_of(id));
            // On the commit path at every acknowledgement: no allocation for usual sizes.
            let reached = if set.len() <= STACK_VOTERS {
                let mut buffer = [None; STACK_VOTERS];
                for (slot, value) in buffer.iter_mut().zip(values) {
                    *slot = value;
                }
                quorum_index(&mut buffer[..set.len()], majority(set.len()))
            } else {
                quorum_index(&mut values.collect::<Vec<_>>(), majority(set.len()))
            };
            lowest = Some(lowest.map_or(reached, |low| low.min(reached)));
        }
        lowest.flatten()
    }

    /// The membership after `change`, checked: a joint configuration when the voters change,
    /// the next simple one when only learners do.
    ///
    /// # Errors
    /// [`Error::InvalidChange`] when the change is empty, names a node twice, adds a member
    /// that exists, promotes a node that is not a learner, removes a node that is not a
    /// member, or would leave no voter; [`Error::ChangeInProgress`] on a joint configuration.
    pub fn apply(&self, change: &MembershipChange) -> Result<Membership, Error> {
        let invalid = |reason: String| Err(Error::InvalidChange(reason));
        if self.is_joint() {
            return Err(Error::ChangeInProgress);
        }
        if change.is_empty() {
            return invalid("the change asks for nothing".to_owned());
        }
        for &id in change.add_learners.keys() {
            if self.is_member(id) {
                return invalid(format!("node {id} is a member already"));
            }
            if change.promote.contains(&id) || change.remove.contains(&id) {
                return invalid(format!("node {id} is named twice in the change"));
            }
        }
        for &id in &change.promote {
            if !self.is_learner(id) {
                return invalid(format!("node {id} is not a learner; add it as one first"));
            }
            if change.remove.contains(&id) {
                return invalid(format!("node {id} is named twice in the change"));
            }
        }
        if let Some(&id) = change.remove.iter().find(|&&id| !self.is_member(id)) {
            return invalid(format!("node {id} is not a member"));
        }
        let mut next = self.clone();
        for (&id, address) in &change.add_learners {
            next.learners.insert(id);
            next.addresses.insert(id, address.clone());
        }
        for &id in &change.remove {
            next.voters.remove(&id);
            next.learners.remove(&id);
            next.addresses.remove(&id);
        }
        for &id in &change.promote {
            next.learners.remove(&id);
            next.voters.insert(id);
        }
        if next.voters.is_empty() {
            return invalid("the change would leave no voter".to_owned());
        }
        if next.voters != self.voters {
            // The outgoing voters keep their addresses until the joint phase ends.
            for id in self.voters() {
                if let Some(address) = self.addresses.get(&id) {
                    next.addresses.entry(id).or_insert_with(|| address.clone());
                }
            }
            next.outgoing = Some(self.voters.clone());
        }
        Ok(next)
    }

    /// The final configuration of a joint one: its incoming voters, its learners, and the
    /// addresses of those members only. A simple configuration is returned unchanged.
    #[must_use]
    pub fn leave_joint(&self) -> Membership {
        let mut next = self.clone();
        next.outgoing = None;
        let members = next.members();
        next.addresses.retain(|id, _| members.contains(id));
        next
    }

    /// The same membership switched straight to its final configuration with no joint phase:
    /// only for the simulator's planted bug that shows why the joint phase exists.
    #[doc(hidden)]
    #[must_use]
    pub fn skipping_joint_phase(&self) -> Membership {
        self.leave_joint()
    }

    /// Counts learners as voters: only for the simulator's planted bug.
    #[doc(hidden)]
    #[must_use]
    pub fn counting_learners(&self) -> Membership {
        let mut next = self.clone();
        next.voters.extend(self.learners.iter().copied());
        next
    }

    /// Whether some quorum of `self` and some quorum of `other` can be disjoint: two leaders
    /// could then be elected, or two different entries committed, one in each. Consecutive
    /// configurations must never allow it. Exhaustive over the members (meant for checks and
    /// tests of small clusters; it refuses more than 16 distinct voters and answers `true`).
    #[must_use]
    pub fn quorums_can_be_disjoint(&self, other: &Membership) -> bool {
        let mut all: Vec<NodeId> = self
            .voter_sets()
            .chain(other.voter_sets())
            .flatten()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        all.sort_unstable();
        if all.len() > 16 {
            return true;
        }
        let full = (1u32 << all.len()) - 1;
        (0..=full).any(|mask| {
            let inside = |id: NodeId| {
                all.iter()
                    .position(|&x| x == id)
                    .is_some_and(|bit| mask & (1 << bit) != 0)
            };
            // Quorums only grow with their sets: a disjoint pair exists iff some quorum of
            // `self` leaves a quorum of `other` in its complement.
            self.is_quorum(inside) && other.is_quorum(|id| !inside(id))
        })
    }

    /// The encoded size of this membership, as [`Membership::encode`] writes it.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        let ids = self.voters.len() + self.outgoing_voters().count() + self.learners.len();
        let addresses: usize = self.addresses.values().map(|a| 12 + a.len()).sum();
        2 + 4 * 4 + 8 * ids + addresses
    }

    /// Appends the binary form to `out`: a version byte, a flags byte, then counted lists of
    /// little-endian ids (voters, outgoing voters, learners) and of `(id, length, UTF-8)`
    /// addresses. Stable across releases; [`Membership::decode`] reads it back.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        out.put_u8(ENCODING_VERSION);
        out.put_u8(u8::from(self.is_joint()));
        put_ids(out, self.voters.iter());
        match &self.outgoing {
            Some(outgoing) => put_ids(out, outgoing.iter()),
            None => put_ids(out, [].iter()),
        }
        put_ids(out, self.learners.iter());
        out.put_u32_le(u32::try_from(self.addresses.len()).unwrap_or(u32::MAX));
        for (id, address) in &self.addresses {
            out.put_u64_le(id.0);
            out.put_u32_le(u32::try_from(address.len()).unwrap_or(u32::MAX));
            out.put_slice(address.as_bytes());
        }
    }

    /// The binary form as a fresh buffer.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Reads the binary form written by [`Membership::encode`]; the whole input must be used.
    ///
    /// # Errors
    /// [`Error::Decode`] for an unknown version, a truncated or oversized list, an address that
    /// is not UTF-8, or trailing bytes.
    pub fn decode(mut data: &[u8]) -> Result<Membership, Error> {
        let bad = |reason: &str| Error::Decode(format!("membership: {reason}"));
        if data.remaining() < 2 {
            return Err(bad("truncated header"));
        }
        let version = data.get_u8();
        if version != ENCODING_VERSION {
            return Err(bad(&format!("unknown encoding version {version}")));
        }
        let flags = data.get_u8();
        if flags > 1 {
            return Err(bad(&format!("unknown flags {flags:#x}")));
        }
        let voters = get_ids(&mut data).ok_or_else(|| bad("truncated voter list"))?;
        let outgoing = get_ids(&mut data).ok_or_else(|| bad("truncated outgoing list"))?;
        let learners = get_ids(&mut data).ok_or_else(|| bad("truncated learner list"))?;
        if flags == 0 && !outgoing.is_empty() {
            return Err(bad("outgoing voters in a simple configuration"));
        }
        if flags == 1 && (outgoing.is_empty() || voters.is_empty()) {
            // No quorum of an empty set exists: such a configuration could never commit.
            return Err(bad("a joint configuration with an empty voter set"));
        }
        if data.remaining() < 4 {
            return Err(bad("truncated address count"));
        }
        let count = data.get_u32_le() as usize;
        let mut addresses = BTreeMap::new();
        for _ in 0..count {
            if data.remaining() < 12 {
                return Err(bad("truncated address"));
            }
            let id = NodeId(data.get_u64_le());
            let len = data.get_u32_le() as usize;
            if data.remaining() < len {
                return Err(bad("truncated address"));
            }
            let text = std::str::from_utf8(&data[..len]).map_err(|_| bad("address not UTF-8"))?;
            addresses.insert(id, text.to_owned());
            data.advance(len);
        }
        if data.has_remaining() {
            return Err(bad("trailing bytes"));
        }
        Ok(Membership {
            voters,
            outgoing: (flags == 1).then_some(outgoing),
            learners,
            addresses,
        })
    }
}

const ENCODING_VERSION: u8 = 1;

/// Voter sets up to this size are counted without allocating.
const STACK_VOTERS: usize = 16;

fn put_ids<'a>(out: &mut Vec<u8>, ids: impl ExactSizeIterator<Item = &'a NodeId>) {
    out.put_u32_le(u32::try_from(ids.len()).unwrap_or(u32::MAX));
    for id in ids {
        out.put_u64_le(id.0);
    }
}

fn get_ids(data: &mut &[u8]) -> Option<BTreeSet<NodeId>> {
    if data.remaining() < 4 {
        return None;
    }
    let count = data.get_u32_le() as usize;
    if data.remaining() / 8 < count {
        return None;
    }
    Some((0..count).map(|_| NodeId(data.get_u64_le())).collect())
}

/// The smallest majority of `n` voters.
fn majority(n: usize) -> usize {
    n / 2 + 1
}

/// The largest value that at least `quorum` of `values` have reached. `values` is reordered.
///
/// With fewer values than `quorum`, nothing is reached by a quorum and the answer is the
/// default (zero, `None`).
pub(crate) fn quorum_index<T: Ord + Copy + Default>(values: &mut [T], quorum: usize) -> T {
    if quorum == 0 || values.len() < quorum {
        return T::default();
    }
    values.sort_unstable_by(|a, b| b.cmp(a));
    values.get(quorum - 1).copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(values: &[u64]) -> Vec<NodeId> {
        values.iter().map(|&v| NodeId(v)).collect()
    }

    fn idx(values: &[u64]) -> Vec<LogIndex> {
        values.iter().map(|&v| LogIndex(v)).collect()
    }

    #[test]
    fn quorum_index_is_the_majority_th_largest() {
        assert_eq!(quorum_index(&mut idx(&[5, 3, 9]), 2), LogIndex(5));
        assert_eq!(quorum_index(&mut idx(&[1, 2, 3, 4, 5]), 3), LogIndex(3));
        assert_eq!(quorum_index(&mut idx(&[7]), 1), LogIndex(7));
        assert_eq!(quorum_index(&mut idx(&[9]), 2), LogIndex::ZERO);
    }

    fn joint_123_to_145() -> Membership {
        let m = Membership::new(ids(&[1, 2, 3]))
            .apply(&MembershipChange::add_learner(NodeId(4), "a4").with_learner(NodeId(5), "a5"))
            .unwrap();
        let change = MembershipChange::default()
            .promote(NodeId(4))
            .promote(NodeId(5))
            .remove(NodeId(2))
            .remove(NodeId(3));
        m.apply(&change).unwrap()
    }

    #[test]
    fn joint_commit_needs_both_majorities() {
        let joint = joint_123_to_145();
        let at = |values: [u64; 5]| move |id: NodeId| Some(LogIndex(values[id.0 as usize - 1]));
        // New {1,4,5} reached 9 by a majority, old {1,2,3} only 3.
        assert_eq!(joint.committed_index(at([9, 3, 1, 9, 0])), LogIndex(3));
        assert_eq!(joint.committed_index(at([9, 9, 1, 9, 0])), LogIndex(9));
        assert_eq!(
            joint.leave_joint().committed_index(at([9, 3, 1, 9, 0])),
            LogIndex(9)
        );
    }

    #[test]
    fn learners_never_count_in_a_quorum() {
        let m = Membership::new(ids(&[1, 2, 3]))
            .apply(&MembershipChange::add_learner(NodeId(4), "x").with_learner(NodeId(5), "y"))
            .unwrap();
        assert!(!m.is_quorum(|id| [1, 4, 5].contains(&id.0)));
        assert_eq!(
            m.committed_index(|id| Some(LogIndex(if id.0 == 1 {
                5
            } else if id.0 > 3 {
                9
            } else {
                0
            }))),
            LogIndex::ZERO
        );
        assert!(
            m.counting_learners()
                .is_quorum(|id| [1, 4, 5].contains(&id.0))
        );
    }

    #[test]
    fn joint_configurations_overlap_their_neighbours_but_not_a_direct_switch() {
        let old = Membership::new(ids(&[1, 2, 3]));
        let joint = joint_123_to_145();
        let new = joint.leave_joint();
        assert!(!old.quorums_can_be_disjoint(&joint));
        assert!(!joint.quorums_can_be_disjoint(&new));
        assert!(old.quorums_can_be_disjoint(&new));
        // One voter more or less never allows disjoint quorums.
        assert!(!old.quorums_can_be_disjoint(&Membership::new(ids(&[1, 2, 3, 4]))));
    }

    #[test]
    fn invalid_changes_are_refused_with_a_reason() {
        let m = Membership::new(ids(&[1, 2, 3]));
        let err = |c: MembershipChange| m.apply(&c).unwrap_err().to_string();
        assert!(err(MembershipChange::default()).contains("nothing"));
        assert!(err(MembershipChange::default().promote(NodeId(9))).contains("not a learner"));
        assert!(err(MembershipChange::default().remove(NodeId(9))).contains("not a member"));
        assert!(err(MembershipChange::add_learner(NodeId(2), "x")).contains("already"));
        let all = MembershipChange::default()
            .remove(NodeId(1))
            .remove(NodeId(2))
            .remove(NodeId(3));
        assert!(err(all).contains("no voter"));
        assert!(matches!(
            joint_123_to_145().apply(&MembershipChange::default().remove(NodeId(1))),
            Err(Error::ChangeInProgress)
        ));
    }

    #[test]
    fn learner_only_changes_take_one_step() {
        let m = Membership::new(ids(&[1, 2, 3]))
            .apply(&MembershipChange::add_learner(NodeId(4), "x"))
            .unwrap();
        assert!(!m.is_joint());
        let m = m
            .apply(&MembershipChange::default().remove(NodeId(4)))
            .unwrap();
        assert!(!m.is_joint() && m.members().len() == 3 && m.address(NodeId(4)).is_none());
    }

    #[test]
    fn encoding_round_trips_and_refuses_damage() {
        let joint = joint_123_to_145();
        let bytes = joint.to_bytes();
        assert_eq!(bytes.len(), joint.encoded_len());
        assert_eq!(Membership::decode(&bytes).unwrap(), joint);
        let simple = Membership::new(ids(&[7]));
        assert_eq!(Membership::decode(&simple.to_bytes()).unwrap(), simple);
        for cut in 0..bytes.len() {
            assert!(Membership::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(Membership::decode(&extra).is_err());
        let mut huge = simple.to_bytes();
        huge[2..6].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Membership::decode(&huge).is_err());
    }
}
