//! When a leader may send to one follower: the two pacings of DESIGN §3.
//!
//! - `Heartbeat`: only when the follower's heartbeat timer fires; the firing sends
//!   `[next_index, next_index + batch)` if the window has room (an empty heartbeat otherwise),
//!   so with a round trip longer than the interval several requests are in flight.
//! - `Eager`: entries go out as soon as the window has room; the timer still fires an empty
//!   heartbeat when there was nothing to send for a whole interval.
//!
//! While probing (see `Progress::probing`) the window holds one request with entries.
//! After a transport failure or timeout the follower is not sent new batches until its retry
//! time (one heartbeat interval), so a dead peer costs one request per interval, not a busy loop.

use super::Progress;
use crate::config::Pacing;
use crate::types::LogIndex;

/// What to send next to one follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SendPlan {
    Nothing,
    Batch,
    Heartbeat,
}

pub(crate) fn plan(
    pacing: Pacing,
    progress: &Progress,
    last_index: LogIndex,
    max_inflight: usize,
    now_ms: u64,
) -> SendPlan {
    let heartbeat_due = now_ms >= progress.heartbeat_due_ms;
    let capacity = if progress.probing { 1 } else { max_inflight };
    let has_room = progress.window.len_with_entries() < capacity
        && progress.next_index <= last_index
        && now_ms >= progress.retry_after_ms;
    match pacing {
        Pacing::Eager if has_room => SendPlan::Batch,
        Pacing::Eager | Pacing::Heartbeat if !heartbeat_due => SendPlan::Nothing,
        Pacing::Heartbeat if has_room => SendPlan::Batch,
        Pacing::Eager | Pacing::Heartbeat => SendPlan::Heartbeat,
    }
}
