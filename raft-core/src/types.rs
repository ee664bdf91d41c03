//! Identifiers and log records shared by every part of the crate.
//!
//! `NodeId`, `Term` and `LogIndex` are newtypes so that an index, a count and a term can never be
//! mixed up by accident (TigerBeetle's habit). A [`LogId`] names one entry uniquely in a cluster:
//! by the Log Matching property, two entries with the same index and term are the same entry.

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use crate::membership::Membership;

/// The identity of one Raft node in a cluster.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct NodeId(pub u64);

/// A Raft term: a logical clock that increases with every election.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Term(pub u64);

/// The position of an entry in the replicated log. Index 0 is "before the first entry".
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct LogIndex(pub u64);

impl LogIndex {
    /// The index before the first entry of any log.
    pub const ZERO: LogIndex = LogIndex(0);

    /// The following index.
    #[must_use]
    pub fn next(self) -> LogIndex {
        LogIndex(self.0.saturating_add(1))
    }

    /// The previous index, saturating at zero.
    #[must_use]
    pub fn prev(self) -> LogIndex {
        LogIndex(self.0.saturating_sub(1))
    }

    /// The index `count` entries further.
    #[must_use]
    pub fn plus(self, count: u64) -> LogIndex {
        LogIndex(self.0.saturating_add(count))
    }
}

impl Term {
    /// The following term.
    #[must_use]
    pub fn next(self) -> Term {
        Term(self.0.saturating_add(1))
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for LogIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The unique name of one log entry: its term and its index.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LogId {
    /// The term of the leader that created the entry.
    pub term: Term,
    /// The entry's position in the log.
    pub index: LogIndex,
}

impl LogId {
    /// The log id before the first entry of every log.
    pub const ZERO: LogId = LogId {
        term: Term(0),
        index: LogIndex(0),
    };

    /// A log id from raw numbers.
    #[must_use]
    pub fn new(term: u64, index: u64) -> LogId {
        LogId {
            term: Term(term),
            index: LogIndex(index),
        }
    }
}

impl fmt::Display for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.term, self.index)
    }
}

/// What an entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// The no-op a new leader appends at the start of its term (Raft §5.4.2, §8). The state
    /// machine gets it like any entry (so it sees every index) and should change nothing.
    Blank,
    /// An application command, opaque to Raft.
    Command(Bytes),
    /// A new cluster membership. It takes effect on every node as soon as the node appends it
    /// (see [`crate::membership`]); the state machine gets it like any entry and may ignore it.
    Membership(Membership),
}

impl Payload {
    /// The number of payload bytes, used for batch sizing and log accounting.
    #[must_use]
    pub fn len(&self) -> u64 {
        match self {
            Payload::Blank => 0,
            Payload::Command(bytes) => bytes.len() as u64,
            Payload::Membership(membership) => membership.encoded_len() as u64,
        }
    }

    /// Whether the payload carries no bytes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One entry of the replicated log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The entry's term and index.
    pub log_id: LogId,
    /// What the entry carries.
    pub payload: Payload,
}

/// The state that must be durable before any message depending on it leaves the node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: Term,
    /// The candidate this node voted for in `term`, if any.
    pub vote: Option<NodeId>,
    /// The highest index known committed. Persisting it is an optimisation for restarts; it is
    /// never required to be durable before a message is sent.
    pub commit: LogIndex,
}

/// Where an appended command landed in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EntryInfo {
    /// The term of the leader that appended it.
    pub term: Term,
    /// Its index.
    pub index: LogIndex,
}
