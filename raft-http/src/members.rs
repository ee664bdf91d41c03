//! The two address lists of a node served over HTTP, [`Members`] (client redirects: what the
//! node starts with) and [`PeerAddresses`] (what the transport dials), each with a type of its
//! own because they have the same shape and two meanings (explained on [`Members`]).

use std::collections::BTreeMap;
use std::collections::btree_map;
use std::fmt;

use raft_core::NodeId;

/// Defines one of the two address lists: the map, its accessors and its iterators.
macro_rules! address_list {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct $name(BTreeMap<NodeId, String>);

        impl $name {
            /// An empty list.
            #[must_use]
            pub fn new() -> $name {
                $name(BTreeMap::new())
            }

            #[doc = concat!("Sets the ", $what, " of `id` (replacing an earlier one).")]
            pub fn insert(&mut self, id: NodeId, address: impl Into<String>) {
                self.0.insert(id, address.into());
            }

            #[doc = concat!("The ", $what, " of `id`, if listed.")]
            #[must_use]
            pub fn get(&self, id: NodeId) -> Option<&str> {
                self.0.get(&id).map(String::as_str)
            }

            /// Whether `id` is listed.
            #[must_use]
            pub fn contains(&self, id: NodeId) -> bool {
                self.0.contains_key(&id)
            }

            /// The listed ids, in order.
            pub fn ids(&self) -> impl Iterator<Item = NodeId> + '_ {
                self.0.keys().copied()
            }

            /// `(id, address)` pairs in id order.
            pub fn iter(&self) -> AddressIter<'_> {
                AddressIter(self.0.iter())
            }

            /// How many nodes are listed.
            #[must_use]
            pub fn len(&self) -> usize {
                self.0.len()
            }

            /// Whether the list is empty.
            #[must_use]
            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }
        }

        impl<A: Into<String>> FromIterator<(NodeId, A)> for $name {
            fn from_iter<I: IntoIterator<Item = (NodeId, A)>>(pairs: I) -> $name {
                $name(pairs.into_iter().map(|(id, a)| (id, a.into())).collect())
            }
        }

        impl IntoIterator for $name {
            type Item = (NodeId, String);
            type IntoIter = btree_map::IntoIter<NodeId, String>;

            fn into_iter(self) -> Self::IntoIter {
                self.0.into_iter()
            }
        }

        impl<'a> IntoIterator for &'a $name {
            type Item = (NodeId, &'a str);
            type IntoIter = AddressIter<'a>;

            fn into_iter(self) -> AddressIter<'a> {
                self.iter()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut first = true;
                for (id, address) in self {
                    if !first {
                        f.write_str(", ")?;
                    }
                    first = false;
                    write!(f, "{id}={address}")?;
                }
                Ok(())
            }
        }
    };
}

address_list!(
    /// The member list a Raft node starts with: every voter, **this node included**, and the
    /// address **clients** are redirected to when it leads (`LeaderHint::address` in
    /// `Error::NotLeader`). Pass it to `raft_core::Node::start` or
    /// `raft_wrapper::Replica::start`. It decides who votes: a node missing from it is not in
    /// the cluster.
    ///
    /// It is not where peers are dialled: that is [`PeerAddresses`], what an
    /// [`HttpTransport`](crate::HttpTransport) takes. The local node need not be in that one (it
    /// never sends to itself), and a peer may be dialled at an address clients never see (a
    /// private network, a sidecar, another port). Often a node's two addresses are the same
    /// `host:port` (raft-kv serves its client API and the peer routes on one listener);
    /// [`HttpNode`](crate::HttpNode) builds both lists from one set of `.peer(id, dial_address)`
    /// calls, and `.advertise(id, client_address)` tells them apart when they differ. Both
    /// types iterate as `(NodeId, address)` pairs, so they go wherever such a list is taken.
    ///
    /// ```
    /// use raft_core::NodeId;
    /// use raft_http::Members;
    ///
    /// let members: Members = [(NodeId(1), "10.0.0.1:8080"), (NodeId(2), "10.0.0.2:8080")]
    ///     .into_iter()
    ///     .collect();
    /// assert_eq!(members.get(NodeId(2)), Some("10.0.0.2:8080"));
    /// assert_eq!(members.to_string(), "1=10.0.0.1:8080, 2=10.0.0.2:8080");
    /// ```
    Members,
    "client-facing address"
);

address_list!(
    /// Where an [`HttpTransport`](crate::HttpTransport) **dials** each peer's Raft routes:
    /// `host:port` or `http://host:port`. The local node may be missing; these addresses are
    /// never shown to clients ([`Members`], which explains the difference, holds those).
    PeerAddresses,
    "dial address"
);

/// Iterates a [`Members`] or [`PeerAddresses`] list by reference, as `(id, address)`.
#[derive(Clone, Debug)]
pub struct AddressIter<'a>(btree_map::Iter<'a, NodeId, String>);

impl<'a> Iterator for AddressIter<'a> {
    type Item = (NodeId, &'a str);

    fn next(&mut self) -> Option<(NodeId, &'a str)> {
        self.0.next().map(|(id, address)| (*id, address.as_str()))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for AddressIter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_iterate_as_pairs_by_value_and_by_reference() {
        let mut members = Members::new();
        members.insert(NodeId(2), "b:2");
        members.insert(NodeId(1), "a:1");
        assert_eq!(members.ids().collect::<Vec<_>>(), [NodeId(1), NodeId(2)]);
        let borrowed: Vec<(NodeId, &str)> = (&members).into_iter().collect();
        assert_eq!(borrowed, [(NodeId(1), "a:1"), (NodeId(2), "b:2")]);
        let owned: Vec<(NodeId, String)> = members.clone().into_iter().collect();
        assert_eq!(owned[1], (NodeId(2), "b:2".to_owned()));
        assert_eq!(members.len(), 2);
        assert!(members.contains(NodeId(1)) && !members.contains(NodeId(3)));
        let dial: PeerAddresses = [(NodeId(3), "c:3")].into_iter().collect();
        assert_eq!(dial.to_string(), "3=c:3");
        assert!(PeerAddresses::new().is_empty());
    }
}
