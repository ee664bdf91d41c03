//! The leader's side of streaming replication (`Replication::Streaming`): a follower opens
//! one stream to its leader and states where its durable log ends; the leader checks that
//! position once and sends batches on the stream while fewer than
//! `Config::stream_max_unacked_bytes` of entries wait for an answer. Without a stream (before
//! the follower opens one, or if it cannot reach this leader: it may not know it as a member
//! yet) batches still go, one at a time, as requests, so a stream is never needed to make
//! progress. The stream is only a
//! carrier: every batch is still an AppendEntries with its own seq in the window, its answer
//! is used only while that seq is there, and `match_index` moves only on answers, never on
//! what the follower stated when it opened (the leader never assumes what it has not heard
//! back).
//!
//! The leader keeps every stream of a follower that was not reported closed, newest last: a
//! delayed open of an older stream may arrive after the newer one (another connection), and
//! the older one's close must then leave the newer one in use.

use tracing::debug;

use super::conflict::next_after_conflict;
use super::progress::Progress;
use crate::engine::core::{Core, PlantedBug};
use crate::message::ConflictHint;
use crate::types::{LogId, NodeId};

/// Streams of one follower kept at most: a transport reports every stream's end, so more
/// means lost reports; the oldest are forgotten.
const STREAMS_KEPT: usize = 8;

/// The follower opened stream `seq` after `durable_end`; it becomes the one in use. Whatever was in flight before is
/// forgotten (its answers become stale); the next batch goes right after `durable_end` if the
/// log holds that entry, else the leader probes backwards from the term's end, one request at
/// a time, as after a rejection. A duplicated or delayed open only makes the leader resend.
pub(crate) fn on_opened(
    core: &Core,
    peer: NodeId,
    progress: &mut Progress,
    seq: u64,
    durable_end: LogId,
) {
    debug!(node = %core.id, %peer, seq, at = %durable_end.index, "stream opened");
    progress.streams.retain(|&open| open != seq);
    progress.streams.push(seq);
    let forgotten = progress.streams.len().saturating_sub(STREAMS_KEPT);
    progress.streams.drain(..forgotten);
    progress.window.clear();
    progress.retry_after_ms = core.now_ms;
    let last = core.log.last_index();
    if core.bug(PlantedBug::StreamOpenTrusted) {
        progress.match_index = progress.match_index.max(durable_end.index.min(last));
        progress.next_index = progress.match_index.next();
        progress.probing = false;
        return;
    }
    let next = if core.log.contains(durable_end) {
        progress.probing = false;
        durable_end.index.next()
    } else {
        progress.probing = true;
        if durable_end.index > last {
            last.next()
        } else {
            let hint = ConflictHint {
                term: Some(durable_end.term),
                index: durable_end.index,
            };
            next_after_conflict(core, hint, durable_end.index)
        }
    };
    // `match_index < next_index <= last_index + 1` holds whatever the follower said.
    progress.next_index = next.max(progress.match_index.next()).min(last.next());
}

/// Stream `seq` to this follower ended. If it was the one in use, what was in flight is taken
/// as lost and the next newest (if any) takes over; with none left, batches go one at a time
/// as requests until the follower opens another.
pub(crate) fn on_closed(core: &Core, peer: NodeId, progress: &mut Progress, seq: u64) {
    let Some(position) = progress.streams.iter().position(|&open| open == seq) else {
        return;
    };
    debug!(node = %core.id, %peer, seq, "stream closed");
    let in_use = position + 1 == progress.streams.len();
    progress.streams.remove(position);
    if in_use && !progress.window.is_empty() {
        progress.on_failure(progress.match_index.next());
    }
}

/// Payload bytes sent to this follower and not acknowledged durable: the entries between
/// `match_index` and `next_index`.
pub(crate) fn unacked_bytes(core: &Core, progress: &Progress) -> u64 {
    let first = progress.match_index.next();
    let last = progress.next_index.prev();
    if last < first {
        return 0;
    }
    core.log.bytes_between(first, last)
}
