//! The crate's one error type.
//!
//! Protocol outcomes (a vote denied, a log mismatch) are messages or outputs, never errors; this
//! enum is for what a caller can act on.

use crate::types::NodeId;

/// Errors of raft-core.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// This node is not the leader; retry at `leader` when it is known.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader this node believes in, if any.
        leader: Option<NodeId>,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// State handed to the engine at start (from the log store) is inconsistent.
    #[error("inconsistent restored state: {0}")]
    Restore(String),
}
