//! Sending a snapshot to a follower whose next entry the leader's log no longer holds.
//!
//! One chunk is in flight at a time. The follower answers with the offset it wants next, so a
//! lost chunk, a timeout or a transport error simply resends from the last offset it
//! confirmed. If the leader takes a newer snapshot meanwhile, the transfer restarts with it.
//! When the follower reports the snapshot installed, its `match_index` is the snapshot's index
//! and normal replication resumes after it.

use tracing::{debug, info};

use super::progress::{Progress, SnapshotSend};
use crate::engine::core::Core;
use crate::engine::output::Output;
use crate::message::{InstallSnapshot, InstallSnapshotResponse, SnapshotOutcome};
use crate::types::NodeId;

/// Whether the follower's next entry is gone from the log (its predecessor's term is unknown).
/// The log knows every term above its base (and the base's own unless a restart lost it), and
/// the base is never above the snapshot's index, so this happens only below the snapshot: no
/// separate comparison with the snapshot's index is needed.
pub(crate) fn needs_snapshot(core: &Core, progress: &Progress) -> bool {
    core.log.log_id_at(progress.next_index.prev()).is_none()
}

/// Starts or continues the transfer: sends the next chunk if none is in flight.
pub(crate) fn send_snapshot(core: &mut Core, peer: NodeId, progress: &mut Progress) {
    let Some(latest) = core.snapshot.clone() else {
        return;
    };
    let transfer = progress.snapshot.get_or_insert_with(|| {
        info!(node = %core.id, %peer, meta = %latest, "sending a snapshot");
        SnapshotSend {
            meta: latest.clone(),
            offset: 0,
            inflight: None,
        }
    });
    if transfer.inflight.is_some() || core.now_ms < progress.retry_after_ms {
        return;
    }
    if transfer.meta != latest {
        debug!(node = %core.id, %peer, "restarting the transfer with a newer snapshot");
        *transfer = SnapshotSend {
            meta: latest,
            offset: 0,
            inflight: None,
        };
    }
    let offset = transfer.offset.min(transfer.meta.size);
    let len = core
        .config
        .snapshot_chunk_bytes
        .min(transfer.meta.size - offset);
    let seq = core.take_seq();
    transfer.inflight = Some((seq, core.now_ms));
    let request = InstallSnapshot {
        term: core.term,
        leader_id: core.id,
        seq,
        meta: transfer.meta.clone(),
        offset,
        data: bytes::Bytes::new(),
        chunk_crc: 0,
        done: offset + len == transfer.meta.size,
    };
    progress.heartbeat_due_ms = core.now_ms + core.config.heartbeat_interval_ms;
    core.send_output(Output::SendSnapshot {
        to: peer,
        request,
        len,
    });
}

/// A chunk failed (transport error or timeout): resend from the confirmed offset later.
pub(crate) fn on_snapshot_failure(progress: &mut Progress, retry_after_ms: u64) {
    if let Some(transfer) = &mut progress.snapshot {
        transfer.inflight = None;
        progress.retry_after_ms = retry_after_ms;
    }
}

/// Whether `seq` is the chunk in flight.
pub(crate) fn is_inflight(progress: &Progress, seq: u64) -> bool {
    progress
        .snapshot
        .as_ref()
        .and_then(|t| t.inflight)
        .is_some_and(|(inflight, _)| inflight == seq)
}

/// Uses the answer to the chunk in flight.
pub(crate) fn apply_snapshot_response(
    core: &Core,
    progress: &mut Progress,
    response: &InstallSnapshotResponse,
) {
    let Some(transfer) = &mut progress.snapshot else {
        return;
    };
    transfer.inflight = None;
    match response.outcome {
        SnapshotOutcome::Continue { offset } => {
            transfer.offset = if offset <= transfer.meta.size {
                offset
            } else {
                0
            };
        }
        SnapshotOutcome::Installed => {
            let at = transfer.meta.last_log_id.index;
            progress.snapshot = None;
            progress.match_index = progress.match_index.max(at);
            progress.next_index = progress.match_index.next();
            progress.probing = false;
        }
        SnapshotOutcome::Covered { commit_index } => {
            // The follower's committed entries match ours; find where its log ends from there.
            progress.snapshot = None;
            let next = commit_index.next().min(core.log.last_index().next());
            progress.next_index = next.max(progress.match_index.next());
            progress.probing = true;
        }
        SnapshotOutcome::StaleTerm => {}
    }
}

/// The oldest time a chunk in flight was sent, for the request timeout.
pub(crate) fn inflight_sent_ms(progress: &Progress) -> Option<u64> {
    progress
        .snapshot
        .as_ref()
        .and_then(|t| t.inflight)
        .map(|(_, sent)| sent)
}
