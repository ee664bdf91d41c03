//! The leader's replication to one follower: its progress, what to send it and what its
//! answers mean (Raft §5.3). The leader's state (`leader.rs`) holds one [`Progress`] per
//! follower and calls in here.
//!
//! Each follower has `next_index` (the next entry to send), `match_index` (the highest entry
//! known *durable* on it), a window of in-flight requests keyed by sequence number, an
//! adaptive batch size and a heartbeat timer. A response is used only if its request is still
//! in the window; a failure (rejection, transport error, timeout) discards the window, shrinks
//! the batch (see `batch.rs`), falls back to `match_index + 1` or the conflict hint, and probes
//! with one request at a time until a success shows where the logs match.
//! Invariant: `match_index < next_index <= last_index + 1`.

mod batch;
mod conflict;
mod pacing;
mod progress;
pub(crate) mod snapshot_send;
pub(crate) mod stream;
mod window;

use tracing::{debug, warn};

use self::conflict::next_after_conflict;
use self::pacing::SendPlan;
pub(crate) use self::progress::Progress;
use self::window::Inflight;
use super::core::{Core, PlantedBug};
use super::output::Output;
use crate::config::Replication;
use crate::message::{AppendEntries, AppendEntriesResponse, AppendOutcome, ConflictHint, Message};
use crate::types::{LogId, LogIndex, NodeId};

/// At a tick: a request or snapshot chunk unanswered for the request timeout counts as
/// failed; then whatever the pacing allows goes out.
pub(crate) fn on_tick(core: &mut Core, peer: NodeId, progress: &mut Progress) {
    let now_ms = core.now_ms;
    let timeout_ms = core.config.request_timeout_ms;
    let retry_ms = core.config.heartbeat_interval_ms;
    let mut waiting_since = progress.window.oldest_sent_ms();
    if core.config.replication == Replication::Streaming && !progress.streams.is_empty() {
        // Batches on a stream wait behind each other: one that is old only because the link is
        // slow has not failed while answers keep coming (resending it would queue the backlog
        // again behind itself). A stream that breaks is reported closed; this catches answers
        // lost on their way.
        waiting_since = waiting_since.map(|sent| sent.max(progress.batch_answered_ms));
    }
    if waiting_since.is_some_and(|since| since + timeout_ms <= now_ms) {
        debug!(node = %core.id, %peer, "AppendEntries timed out");
        progress.on_failure(progress.match_index.next());
        progress.retry_after_ms = now_ms + retry_ms;
    }
    if snapshot_send::inflight_sent_ms(progress).is_some_and(|sent| sent + timeout_ms <= now_ms) {
        debug!(node = %core.id, %peer, "InstallSnapshot timed out");
        snapshot_send::on_snapshot_failure(progress, now_ms + retry_ms);
    }
    replicate(core, peer, progress);
}

/// The transport could not deliver request `seq` (or got no answer).
pub(crate) fn on_send_failed(core: &Core, progress: &mut Progress, seq: u64) {
    let retry_after_ms = core.now_ms + core.config.heartbeat_interval_ms;
    if progress.window.contains(seq) {
        progress.on_failure(progress.match_index.next());
        progress.retry_after_ms = retry_after_ms;
    } else if snapshot_send::is_inflight(progress, seq) {
        snapshot_send::on_snapshot_failure(progress, retry_after_ms);
    }
}

/// Notes that the follower answered request `seq` of this term; false (and nothing noted) for
/// an answer that cannot be ours: a seq never sent, or a stale-term refusal.
pub(crate) fn note_answer(
    core: &Core,
    from: NodeId,
    progress: &mut Progress,
    seq: u64,
    stale: bool,
) -> bool {
    let bogus = seq >= core.next_seq;
    if bogus || stale {
        debug!(node = %core.id, %from, seq, "ignoring bogus response");
        return false;
    }
    progress.last_response_ms = Some(core.now_ms);
    progress.acked_seq = progress.acked_seq.max(seq);
    true
}

/// Uses an AppendEntries answer whose request is still in the window.
pub(crate) fn on_append_response(
    core: &Core,
    progress: &mut Progress,
    response: &AppendEntriesResponse,
) {
    if let Some(request) = progress.window.take(response.seq) {
        if request.has_entries() {
            progress.batch_answered_ms = core.now_ms;
        }
        if !matches!(response.outcome, AppendOutcome::StaleTerm) {
            // The follower took this node for its leader when the request arrived, after it
            // was sent: it ignores other candidates for an election timeout from then.
            progress.acked_sent_ms = progress.acked_sent_ms.max(Some(request.sent_ms));
        }
        apply_response(core, progress, request, &response.outcome);
    }
}

/// Uses the response to a request that was still in the window.
fn apply_response(
    core: &Core,
    progress: &mut Progress,
    request: Inflight,
    outcome: &AppendOutcome,
) {
    match *outcome {
        AppendOutcome::Success { match_index } => {
            let matched = match_index.min(request.last_index);
            progress.match_index = progress.match_index.max(matched);
            // The follower's commit index follows `min(leader_commit, last index verified)`.
            progress.known_commit = progress.known_commit.max(request.commit.min(matched));
            progress.next_index = progress.next_index.max(progress.match_index.next());
            // A heartbeat anchored at match_index proves nothing new; a batch or a probe at
            // next_index - 1 shows where the logs match.
            if request.has_entries() || request.last_index.next() >= progress.next_index {
                progress.probing = false;
            }
            if request.has_entries() {
                progress.batch.on_success();
            }
        }
        AppendOutcome::Conflict { hint } if overtook_earlier_request(progress, &request, hint) => {
            // The follower's log ends before this request only because an earlier request
            // still in flight has not reached it yet (the transport reordered them): nothing
            // failed. Resend from here once the earlier one lands; the requests sent after this
            // one would be refused alike, so they are forgotten. No batch penalty, no probing.
            debug!(node = %core.id, prev = %request.prev_index, "AppendEntries overtook an earlier one");
            progress.window.forget_after(request.seq);
            progress.next_index = request.prev_index.next().max(progress.match_index.next());
        }
        AppendOutcome::Conflict { hint } => {
            let next = if core.bug(PlantedBug::NextIndexPastRejection) {
                request.prev_index.next().next()
            } else {
                next_after_conflict(core, hint, request.prev_index)
            };
            if request.prev_index <= progress.match_index {
                // A current answer denies an entry the follower acknowledged as durable: it lost
                // its data (a replaced disk) and restarted. Forget what it had; the commit index
                // stays, and the follower is brought back from the log or a snapshot.
                warn!(
                    node = %core.id,
                    match_index = %progress.match_index,
                    prev = %request.prev_index,
                    "a follower lost entries it had acknowledged"
                );
                progress.match_index = next.prev().min(progress.match_index);
            }
            progress.on_failure(next);
        }
        AppendOutcome::StaleTerm => {}
    }
}

/// Whether a rejection only says that `request` arrived before an earlier request that is still
/// in flight: the follower's log is short of `request`'s predecessor (no term disagrees), its
/// end is above what it acknowledged, and an earlier request reaches the predecessor.
fn overtook_earlier_request(progress: &Progress, request: &Inflight, hint: ConflictHint) -> bool {
    hint.term.is_none()
        && hint.index <= request.prev_index
        && request.prev_index > progress.match_index
        && progress
            .window
            .earlier_reaches(request.seq, request.prev_index)
}

/// Sends to one follower whatever its pacing allows now.
pub(crate) fn replicate(core: &mut Core, peer: NodeId, progress: &mut Progress) {
    let last_index = core.log.last_index();
    loop {
        if progress.snapshot.is_some() || snapshot_send::needs_snapshot(core, progress) {
            snapshot_send::send_snapshot(core, peer, progress);
            return;
        }
        let plan = match core.config.replication {
            Replication::Pipelined => {
                let limits = pacing::Limits {
                    pacing: core.config.pacing,
                    inflight: core.config.max_inflight_requests,
                    inflight_partial: core.config.max_inflight_partial_requests,
                };
                pacing::plan(limits, progress, last_index, core.now_ms, || {
                    full_batch_waiting(core, progress)
                })
            }
            Replication::Streaming => {
                let room =
                    stream::unacked_bytes(core, progress) < core.config.stream_max_unacked_bytes;
                let partial = core.config.max_inflight_partial_requests;
                pacing::plan_streaming(progress, last_index, core.now_ms, room, partial, || {
                    full_batch_waiting(core, progress)
                })
            }
        };
        match plan {
            SendPlan::Nothing => return,
            SendPlan::Batch => {
                if !send_batch(core, peer, progress) {
                    return;
                }
            }
            SendPlan::Heartbeat => {
                send_heartbeat(core, peer, progress, true);
                return;
            }
        }
    }
}

/// Whether the entries from `next_index` on fill a request: the batch size in entries, or more
/// than the byte limit.
fn full_batch_waiting(core: &Core, progress: &Progress) -> bool {
    let first = progress.next_index;
    let last = core.log.last_index();
    if last < first {
        return false;
    }
    last.0 - first.0 + 1 >= progress.batch.batch()
        || core.log.bytes_between(first, last) > core.config.batch_bytes_max
}

/// Sends `[next_index, next_index + batch)`, capped by the log end and the byte limit.
/// Returns false if nothing could be sent.
fn send_batch(core: &mut Core, peer: NodeId, progress: &mut Progress) -> bool {
    let first = progress.next_index;
    let Some(prev_log_id) = core.log.log_id_at(first.prev()) else {
        // The predecessor was compacted away: `replicate` switches to a snapshot.
        return false;
    };
    let max_last = first
        .plus(progress.batch.batch() - 1)
        .min(core.log.last_index());
    let last = core
        .log
        .last_within_bytes(first, max_last, core.config.batch_bytes_max);
    let Some(last_log_id) = core.log.log_id_at(last) else {
        return false;
    };
    let request = track_request(core, progress, prev_log_id, last);
    progress.next_index = last.next();
    if core.config.replication == Replication::Pipelined {
        // A request is a heartbeat too. A streamed batch is not: it may wait behind others on
        // the stream, so streaming keeps the heartbeat timer for heartbeats alone.
        progress.heartbeat_due_ms = core.now_ms + core.config.heartbeat_interval_ms;
    }
    core.send_output(Output::SendEntries {
        to: peer,
        request,
        first,
        last_log_id,
    });
    true
}

/// Sends an empty AppendEntries. With requests in flight it is anchored at `match_index`
/// (known to match, so reordering cannot make it fail) unless the log no longer holds it;
/// otherwise it probes `next_index - 1`.
/// `reset_timer` is false for ReadIndex rounds: under Heartbeat pacing the timer is what sends
/// new entries, and a steady read load must not keep pushing it back.
pub(crate) fn send_heartbeat(
    core: &mut Core,
    peer: NodeId,
    progress: &mut Progress,
    reset_timer: bool,
) {
    // `match_index` may lie in the compacted prefix (a new leader knows 0): anchor at the
    // probe's position then.
    let anchor_known = core.log.log_id_at(progress.match_index).is_some();
    let prev_index = if progress.window.is_empty() || !anchor_known {
        progress.next_index.prev()
    } else {
        progress.match_index
    };
    let Some(prev_log_id) = core.log.log_id_at(prev_index) else {
        return;
    };
    let request = track_request(core, progress, prev_log_id, prev_index);
    if reset_timer {
        progress.heartbeat_due_ms = core.now_ms + core.config.heartbeat_interval_ms;
    }
    core.send(peer, Message::AppendEntries(request));
}

/// An AppendEntries after `prev_log_id` whose entries (none for a heartbeat) end at
/// `last_index`, under a fresh seq recorded in the follower's window. The runtime fills the
/// entries from the log.
fn track_request(
    core: &mut Core,
    progress: &mut Progress,
    prev_log_id: LogId,
    last_index: LogIndex,
) -> AppendEntries {
    let seq = core.take_seq();
    progress.window.push(Inflight {
        seq,
        prev_index: prev_log_id.index,
        last_index,
        commit: core.commit_index,
        sent_ms: core.now_ms,
    });
    AppendEntries {
        term: core.term,
        leader_id: core.id,
        seq,
        prev_log_id,
        entries: Vec::new(),
        leader_commit: core.commit_index,
    }
}
