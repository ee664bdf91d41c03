//! When a leader may send to one follower: the two pacings (ARCHITECTURE.md, "Engine").
//!
//! - `Heartbeat`: only when the follower's heartbeat timer fires; the firing sends
//!   `[next_index, next_index + batch)` if the window has room (an empty heartbeat otherwise),
//!   so with a round trip longer than the interval several requests are in flight.
//! - `Eager`: entries go out as soon as the window has room; the timer still fires an empty
//!   heartbeat when there was nothing to send for a whole interval. Room for a partial batch
//!   ends at `max_inflight_partial_requests` requests in flight (Nagle's rule): past that only
//!   a full batch goes, so under load new entries gather while requests are in flight and the
//!   per-request cost is shared, while a request to an idle follower still leaves at once.
//!
//! Under streaming replication (`plan_streaming`) entries go on the follower's open stream as
//! soon as they exist, while the unacknowledged bytes stay under their bound and under the same
//! Nagle's rule (past `max_inflight_partial_requests` unanswered batches, only full ones go;
//! without a stream, one request at a time); heartbeats go on their own timer whatever the
//! stream carries.
//!
//! While probing (see `Progress::probing`) the window holds one request with entries.
//! After a transport failure or timeout the follower is not sent new batches until its retry
//! time (one heartbeat interval), so a dead peer costs one request per interval, not a busy loop.

use super::progress::Progress;
use crate::config::Pacing;
use crate::types::LogIndex;

/// What to send next to one follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SendPlan {
    Nothing,
    Batch,
    Heartbeat,
}

/// The limits `plan` applies, from the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) pacing: Pacing,
    /// Requests with entries in flight at most.
    pub(crate) inflight: usize,
    /// Requests with entries in flight at most before only full batches go (`Eager`).
    pub(crate) inflight_partial: usize,
}

/// What to send to `progress` now. `full_batch` says whether the entries waiting from
/// `next_index` on fill a whole request; it is asked only when that decides.
pub(crate) fn plan(
    limits: Limits,
    progress: &Progress,
    last_index: LogIndex,
    now_ms: u64,
    full_batch: impl FnOnce() -> bool,
) -> SendPlan {
    let heartbeat_due = now_ms >= progress.heartbeat_due_ms;
    let capacity = if progress.probing { 1 } else { limits.inflight };
    let inflight = progress.window.len_with_entries();
    let has_room = inflight < capacity
        && progress.next_index <= last_index
        && now_ms >= progress.retry_after_ms
        && (limits.pacing == Pacing::Heartbeat
            || inflight < limits.inflight_partial
            || full_batch());
    let pacing = limits.pacing;
    match pacing {
        Pacing::Eager if has_room => SendPlan::Batch,
        Pacing::Eager | Pacing::Heartbeat if !heartbeat_due => SendPlan::Nothing,
        Pacing::Heartbeat if has_room => SendPlan::Batch,
        Pacing::Eager | Pacing::Heartbeat => SendPlan::Heartbeat,
    }
}

/// What to send to `progress` now under streaming replication. `under_byte_bound` says whether
/// the entries sent and not acknowledged stay under `Config::stream_max_unacked_bytes`.
/// Without an open stream (none opened yet, or the follower cannot reach this leader) batches
/// go one at a time, as requests: streams make replication faster, never possible. On a
/// stream, Nagle's rule of `plan` applies too: past `inflight_partial` unanswered batches only
/// a full one goes (`full_batch`, asked only when that decides), so under load entries gather
/// into larger batches instead of a stream of small ones, each with its frame, its answer and
/// its trip through both event loops.
pub(crate) fn plan_streaming(
    progress: &Progress,
    last_index: LogIndex,
    now_ms: u64,
    under_byte_bound: bool,
    inflight_partial: usize,
    full_batch: impl FnOnce() -> bool,
) -> SendPlan {
    let capacity = if progress.probing || progress.streams.is_empty() {
        progress.window.len_with_entries() == 0
    } else {
        under_byte_bound && (progress.window.len_with_entries() < inflight_partial || full_batch())
    };
    let has_room =
        capacity && progress.next_index <= last_index && now_ms >= progress.retry_after_ms;
    if has_room {
        SendPlan::Batch
    } else if now_ms >= progress.heartbeat_due_ms {
        SendPlan::Heartbeat
    } else {
        SendPlan::Nothing
    }
}
