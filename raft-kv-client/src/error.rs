//! [`Error`]: what a call can end with, and whether a write's outcome is known.

use std::fmt;
use std::time::Duration;

/// Errors of the client.
///
/// Writes are retried with the same client and request ids, so a write the client reports as
/// failed was **not applied**, except for [`Error::Timeout`] with `outcome_unknown` (see
/// [`Error::is_outcome_unknown`]): an attempt of it may have been applied before the deadline
/// passed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key does not exist (404).
    #[error("no such key")]
    NotFound,
    /// A conditional write (`If-Match` / `If-None-Match`) was not applied: the key's version
    /// is not the one expected (412). `current` is the key's version when it exists.
    #[error("precondition failed (the key's version is {})", match current { Some(v) => v.to_string(), None => "none: the key is absent".to_owned() })]
    PreconditionFailed {
        /// The key's current version (`None`: the key does not exist, or it was not sent).
        current: Option<u64>,
    },
    /// No node answered as the leader before the deadline (an election, a lost quorum); the
    /// write was not applied.
    #[error("no leader before the deadline: {message}")]
    NoLeader {
        /// The last node's answer.
        message: String,
    },
    /// The deadline passed. For a write with `outcome_unknown`, an attempt may have been
    /// applied (retrying the same call is not exactly-once: the new call has new ids).
    #[error("no answer within {after:?}{}", if *outcome_unknown { " (the write may have been applied)" } else { "" })]
    Timeout {
        /// The deadline that passed.
        after: Duration,
        /// Whether a write may have been applied.
        outcome_unknown: bool,
    },
    /// The API token is missing or wrong (401).
    #[error("unauthorized: {message}")]
    Unauthorized {
        /// The server's message.
        message: String,
    },
    /// A retry of a write found it applied already, at log index `index`, but its answer (a
    /// large batch's: over the server's 64 KiB bound) was not kept: the write is applied,
    /// once, and its answer is lost (409 with a `raft-answer-lost` header).
    #[error(
        "the write was applied at index {index}, but its answer was too large to keep for a retry"
    )]
    AppliedAnswerLost {
        /// The log index the write was applied at.
        index: u64,
    },
    /// The server refused the request for good (400 for a bad request, 409 for an `incr` of a
    /// value that is not an integer, 413 for a value or batch too large, ...).
    #[error("rejected with status {status}: {message}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// No node could be reached before the deadline (connection refused, TLS failure).
    #[error("transport: {0}")]
    Transport(TransportError),
    /// The client's configuration is unusable (a malformed endpoint, an unreadable CA file).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The server's answer does not follow the protocol (a malformed `ETag`, batch document or
    /// `incr` value).
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

impl Error {
    /// Whether a write may have been applied although it failed: [`Error::Timeout`] with
    /// `outcome_unknown`, a server error ([`Error::Rejected`] with a 5xx status: the node
    /// failed while handling it) and [`Error::Protocol`] (an answer that could not be read
    /// may have come after the write applied), and [`Error::AppliedAnswerLost`] (applied, its
    /// answer lost). Every other error of a write means it was not applied.
    #[must_use]
    pub fn is_outcome_unknown(&self) -> bool {
        match self {
            Error::Timeout {
                outcome_unknown, ..
            } => *outcome_unknown,
            Error::Rejected { status, .. } => *status >= 500,
            Error::Protocol(_) | Error::AppliedAnswerLost { .. } => true,
            _ => false,
        }
    }

    /// Whether the same call may succeed later (no leader, a timeout, no node reachable, a
    /// 5xx): the others need a change (another value, version, token or configuration).
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Error::NoLeader { .. } | Error::Timeout { .. } | Error::Transport(_) => true,
            Error::Rejected { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

/// A failure to reach a node: the endpoint and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportError {
    /// The endpoint (`http://host:port`).
    pub endpoint: String,
    /// What failed (connect, TLS handshake, HTTP/2 handshake, the connection dropped).
    pub reason: String,
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.endpoint, self.reason)
    }
}

impl std::error::Error for TransportError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_timed_out_write_has_an_unknown_outcome() {
        let unknown = Error::Timeout {
            after: Duration::from_secs(1),
            outcome_unknown: true,
        };
        assert!(unknown.is_outcome_unknown());
        assert!(unknown.to_string().contains("may have been applied"));
        assert!(
            !Error::Timeout {
                after: Duration::from_secs(1),
                outcome_unknown: false
            }
            .is_outcome_unknown()
        );
        assert!(
            !Error::NoLeader {
                message: "x".into()
            }
            .is_outcome_unknown()
        );
        assert_eq!(
            Error::PreconditionFailed { current: Some(7) }.to_string(),
            "precondition failed (the key's version is 7)"
        );
        assert!(
            Error::PreconditionFailed { current: None }
                .to_string()
                .contains("absent")
        );
    }
}
