//! The crate's one error type.

use raft_core::{LeaderHint, LogIndex};

use crate::session::{ClientId, RequestId};

/// Errors of raft-wrapper.
///
/// Every error of [`Replica::submit`](crate::Replica::submit) is safe to retry *with the same
/// client and request ids*: while the client's session is kept (not evicted or cleared, see
/// [`SessionConfig`](crate::SessionConfig)), the dedup on apply guarantees the command is
/// applied at most once, whichever node the retry reaches. [`is_retryable`](Error::is_retryable) tells which ones can
/// succeed on a retry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// This node is not the leader; retry at `leader` when it is known.
    #[error("not the leader (leader: {})", match leader { Some(l) => l.to_string(), None => "unknown".to_owned() })]
    NotLeader {
        /// The leader this node believes in, if any.
        leader: Option<LeaderHint>,
    },
    /// The node's request queue is full; nothing was queued. Retry later.
    #[error("overloaded: the request queue is full, retry later")]
    Overloaded,
    /// The node is shutting down or stopped, and nothing was queued.
    #[error("the node is shut down")]
    Shutdown,
    /// No result in time. The command may still be applied: retry with the same ids to learn
    /// its result (it is not applied twice).
    #[error("timed out waiting for the commit; the outcome is unknown (retry with the same ids)")]
    Timeout,
    /// The node stopped after accepting the command. The outcome is unknown: retry with the
    /// same ids at another node.
    #[error(
        "the node stopped after accepting the command; the outcome is unknown (retry with the same ids)"
    )]
    Aborted,
    /// A newer leader replaced the command's entry before it committed: it was not applied.
    #[error(
        "the command's entry was discarded by a newer leader before it committed; it was not applied"
    )]
    Discarded,
    /// The request id is older than the latest one applied for this client and no result is
    /// kept for it. This retry applied nothing; an earlier attempt with the same ids may have
    /// been applied (its result was dropped to bound memory), or it never was (a client must
    /// not reuse or reorder ids). Not retryable.
    #[error(
        "request {request} of client {client} is older than its latest applied request {latest} and no result is kept for it; this retry applied nothing (an earlier attempt may have been applied)"
    )]
    StaleRequest {
        /// The client.
        client: ClientId,
        /// The request id that was refused.
        request: RequestId,
        /// The latest request id applied for the client.
        latest: RequestId,
    },
    /// A retry of a request that was applied (once, at `index`) whose result was larger than
    /// `SessionConfig::max_result_bytes`, so it was answered only to the attempt that applied
    /// it. Not retryable: the command is applied; only its result is lost.
    #[error(
        "request {request} of client {client} was applied at index {index}, but its result was too large to keep for retries"
    )]
    ResultNotKept {
        /// The client.
        client: ClientId,
        /// The request id.
        request: RequestId,
        /// The log index it was applied at.
        index: LogIndex,
    },
    /// The request cannot be submitted as given (for example request id 0).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A committed entry was not written by raft-wrapper (someone appended to the node
    /// directly): every replica answers it with this error and applies nothing.
    #[error("the entry at {index} is not a raft-wrapper command: {reason}")]
    Malformed {
        /// The entry's index.
        index: LogIndex,
        /// What was wrong with it.
        reason: String,
    },
    /// Any other error of the node (storage failure, fatal error, bad configuration).
    #[error(transparent)]
    Raft(raft_core::Error),
    /// [`retry`](crate::retry) (or [`submit_with_retry`](crate::submit_with_retry)) reached
    /// its deadline and gave up. When `outcome_unknown` is true, some attempt may have been
    /// applied (it timed out or was aborted after the command was accepted): the outcome is
    /// unknown, not failed; a later retry with the same ids learns it. When false, every
    /// attempt was refused before anything was queued, or discarded: nothing was applied.
    /// Not [retryable](Error::is_retryable) by the helper (its deadline is spent), but
    /// resubmitting later with the same ids is as safe as any retry.
    #[error(
        "gave up after {attempts} attempt(s) at the retry deadline; {}; last error: {last}",
        if *outcome_unknown { "the outcome is unknown (retry later with the same ids)" } else { "nothing was applied" }
    )]
    RetriesExhausted {
        /// How many attempts were made.
        attempts: u32,
        /// Whether an attempt may have been applied (see [`Error::is_outcome_unknown`]).
        outcome_unknown: bool,
        /// The last attempt's error.
        last: Box<Error>,
    },
}

impl Error {
    /// Whether a retry (with the same ids) can succeed: the node was not the leader, was busy,
    /// stopped, or the outcome is unknown. `false` for errors that a retry would repeat.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::NotLeader { .. }
                | Error::Overloaded
                | Error::Shutdown
                | Error::Timeout
                | Error::Aborted
                | Error::Discarded
        )
    }

    /// Whether the command may have been applied although this call failed, so the failure
    /// must not be reported as "not applied": [`Timeout`](Error::Timeout) and
    /// [`Aborted`](Error::Aborted) (accepted, then no answer: a retry with the same ids learns
    /// the outcome, and does not apply the command twice), [`StaleRequest`](Error::StaleRequest)
    /// (an earlier attempt may have been applied; its result is no longer kept),
    /// [`ResultNotKept`](Error::ResultNotKept) (it was applied; its result is lost),
    /// [`Raft`](Error::Raft) and [`Malformed`](Error::Malformed) (they say nothing either way),
    /// and [`RetriesExhausted`](Error::RetriesExhausted) when one of its attempts was such.
    /// `false` only when nothing was applied: [`NotLeader`](Error::NotLeader),
    /// [`Overloaded`](Error::Overloaded), [`Shutdown`](Error::Shutdown),
    /// [`Discarded`](Error::Discarded), [`InvalidRequest`](Error::InvalidRequest).
    #[must_use]
    pub fn is_outcome_unknown(&self) -> bool {
        match self {
            Error::Timeout
            | Error::Aborted
            | Error::StaleRequest { .. }
            | Error::ResultNotKept { .. }
            | Error::Raft(_)
            | Error::Malformed { .. } => true,
            Error::NotLeader { .. }
            | Error::Overloaded
            | Error::Shutdown
            | Error::Discarded
            | Error::InvalidRequest(_) => false,
            Error::RetriesExhausted {
                outcome_unknown, ..
            } => *outcome_unknown,
        }
    }
}

impl From<raft_core::Error> for Error {
    fn from(error: raft_core::Error) -> Error {
        match error {
            raft_core::Error::NotLeader { leader } => Error::NotLeader { leader },
            // No leader known in time: nothing was written, and a retry may find one.
            raft_core::Error::NoLeader => Error::NotLeader { leader: None },
            raft_core::Error::Overloaded => Error::Overloaded,
            raft_core::Error::Shutdown => Error::Shutdown,
            raft_core::Error::Timeout => Error::Timeout,
            raft_core::Error::Aborted => Error::Aborted,
            raft_core::Error::Discarded { .. } => Error::Discarded,
            other => Error::Raft(other),
        }
    }
}
