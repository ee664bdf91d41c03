//! The crate's one error type.
//!
//! Protocol outcomes (a vote denied, a log mismatch) are messages or outputs, never errors; this
//! enum is for what a caller can act on. Plugins (log store, state machine, transport) report
//! their failures through the `Storage`, `StateMachine` and `Transport` variants, wrapping their
//! own error types as the source.

use std::fmt;

use crate::types::{LogIndex, NodeId};

/// Any error a plugin wants to wrap: `Box<dyn Error + Send + Sync>`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Where a client should retry: the leader's id and the address it was configured with.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaderHint {
    /// The leader's node id.
    pub id: NodeId,
    /// The leader's address as given in the node's member list (for example `127.0.0.1:7001`).
    pub address: String,
}

impl fmt::Display for LeaderHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {} at {}", self.id, self.address)
    }
}

/// Errors of raft-core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// This node is not the leader; retry at `leader` when it is known.
    #[error("not the leader (leader: {})", match leader { Some(l) => l.to_string(), None => "unknown".to_owned() })]
    NotLeader {
        /// The leader this node believes in, if any.
        leader: Option<LeaderHint>,
    },
    /// No leader was known within the time waited for one (`Node::wait_for_leader`); nothing
    /// was written. Either an election is still going on, or the cluster cannot elect: fewer
    /// than a quorum of members run or reach each other, or their member lists or cluster ids
    /// disagree. The nodes' `tracing` events (at `debug`) say which.
    #[error("no leader was elected in time; nothing was written")]
    NoLeader,
    /// The log store already backs a running node (two engines writing one log would corrupt
    /// it). Stop that node first, or give this one a store of its own.
    #[error("the log store already backs a running node")]
    StoreInUse,
    /// The node's request queue is full; nothing was queued. Retry later or slow down.
    #[error("overloaded: the request queue is full, retry later")]
    Overloaded,
    /// Refused: the node is shutting down or stopped, and this call queued nothing (a write
    /// was not appended; retrying it elsewhere cannot apply it twice).
    #[error("the node is shut down")]
    Shutdown,
    /// The node stopped (shutdown or fatal error) after it had accepted the write into its log:
    /// the outcome is unknown, as the entries may still commit through another node. Retry only
    /// an idempotent command or one with exactly-once ids (raft-wrapper).
    #[error("the node stopped after accepting the write; the outcome is unknown")]
    Aborted,
    /// No answer in time. For a write the outcome is unknown: it may still commit, so retry
    /// only with an idempotent command or exactly-once ids (raft-wrapper).
    #[error("timed out; the outcome is unknown")]
    Timeout,
    /// Other entries committed in place of the call's from `index` on (a newer leader's log
    /// replaced them): those commands never commit, so retrying them cannot apply them twice.
    /// Commands of the same call before `index` (if any) did commit. A single-command call
    /// that gets this error was not applied. It is given only once the index has committed:
    /// an entry rolled back on its proposer can still commit from another node's copy.
    #[error("entries from {index} were discarded by a newer leader before they committed")]
    Discarded {
        /// The index of the call's first discarded command.
        index: LogIndex,
    },
    /// The log store failed. A node stops after a storage failure rather than acknowledge
    /// what may not be durable.
    #[error("storage failed: {0}")]
    Storage(#[source] BoxError),
    /// The state machine failed to apply a committed entry; the node stops.
    #[error("state machine failed: {0}")]
    StateMachine(#[source] BoxError),
    /// The transport could not reach `peer` or got no answer.
    #[error("transport to node {peer} failed: {source}")]
    Transport {
        /// The peer.
        peer: NodeId,
        /// What went wrong.
        #[source]
        source: BoxError,
    },
    /// The node stopped after a fatal plugin error (described here); restart it from its log.
    #[error("the node stopped after a fatal error: {0}")]
    Fatal(String),
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// State handed to the engine at start (from the log store) is inconsistent.
    #[error("inconsistent restored state: {0}")]
    Restore(String),
    /// A membership change is still in progress (not yet committed, or a joint configuration
    /// not yet left); try again once it finishes.
    #[error("a membership change is in progress; retry when it has finished")]
    ChangeInProgress,
    /// The membership change asked for cannot be made as it stands; nothing was written.
    #[error("invalid membership change: {0}")]
    InvalidChange(String),
    /// Bytes that should hold a value of this crate (read from disk or the network) do not.
    #[error("malformed data: {0}")]
    Decode(String),
}

impl Error {
    /// A storage error from any error value or message.
    pub fn storage(source: impl Into<BoxError>) -> Error {
        Error::Storage(source.into())
    }

    /// A state machine error from any error value or message.
    pub fn state_machine(source: impl Into<BoxError>) -> Error {
        Error::StateMachine(source.into())
    }

    /// A transport error for `peer` from any error value or message.
    pub fn transport(peer: NodeId, source: impl Into<BoxError>) -> Error {
        Error::Transport {
            peer,
            source: source.into(),
        }
    }

    /// The same error for another caller waiting on the same outcome. A plugin's error source
    /// cannot be copied: those variants become [`Error::Fatal`] with the same message.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::NotLeader { leader } => Error::NotLeader {
                leader: leader.clone(),
            },
            Error::NoLeader => Error::NoLeader,
            Error::StoreInUse => Error::StoreInUse,
            Error::Overloaded => Error::Overloaded,
            Error::Shutdown => Error::Shutdown,
            Error::Aborted => Error::Aborted,
            Error::Timeout => Error::Timeout,
            Error::Discarded { index } => Error::Discarded { index: *index },
            Error::Fatal(message) => Error::Fatal(message.clone()),
            Error::Config(message) => Error::Config(message.clone()),
            Error::Restore(message) => Error::Restore(message.clone()),
            Error::ChangeInProgress => Error::ChangeInProgress,
            Error::InvalidChange(message) => Error::InvalidChange(message.clone()),
            Error::Decode(message) => Error::Decode(message.clone()),
            Error::Storage(_) | Error::StateMachine(_) | Error::Transport { .. } => {
                Error::Fatal(self.to_string())
            }
        }
    }
}
