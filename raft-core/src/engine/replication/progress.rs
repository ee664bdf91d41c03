//! [`Progress`]: what the leader knows of one follower, and the snapshot transfer to it
//! ([`SnapshotSend`]) when its next entry is gone from the leader's log.

use super::batch::BatchSizer;
use super::window::Window;
use crate::engine::core::Core;
use crate::snapshot::SnapshotMeta;
use crate::types::LogIndex;

/// What the leader knows of one follower.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    pub(crate) next_index: LogIndex,
    pub(crate) match_index: LogIndex,
    pub(crate) window: Window,
    /// Where the follower's log matches is unknown (a new leader, or after a failure): one
    /// request at a time until a success, like etcd's probe state. Pipelining resumes after.
    pub(crate) probing: bool,
    pub(crate) batch: BatchSizer,
    pub(crate) heartbeat_due_ms: u64,
    /// No new batches before this time (set after a transport failure or timeout).
    pub(crate) retry_after_ms: u64,
    /// When the follower last answered anything in this term (check-quorum).
    pub(crate) last_response_ms: Option<u64>,
    /// The highest seq answered in this term (ReadIndex confirmation).
    pub(crate) acked_seq: u64,
    /// When the latest request this follower answered in this term was sent (the leader's
    /// lease starts from a quorum of these).
    pub(crate) acked_sent_ms: Option<u64>,
    /// A snapshot transfer in progress: while set, no AppendEntries go to this follower.
    pub(crate) snapshot: Option<SnapshotSend>,
    /// The highest commit index this follower is known to have learned (from its answers to
    /// requests that carried it).
    pub(crate) known_commit: LogIndex,
    /// Set once a committed configuration left this follower out: the leader keeps it
    /// informed until this time, or until it learned that commit (see `Leader::leaving`).
    pub(crate) leave_by_ms: Option<u64>,
    /// Streaming replication: the follower's streams not reported closed, by their
    /// `OpenStream` seq, the newest (the one the transport sends on) last. Batches are
    /// pipelined only while one is open (one request at a time otherwise).
    pub(crate) streams: Vec<u64>,
    /// When the follower last answered a request that carried entries (the streaming timeout
    /// counts from it).
    pub(crate) batch_answered_ms: u64,
}

impl Progress {
    /// A new leader's view of a follower: nothing known to match, probing from the leader's
    /// no-op at `noop_index`.
    pub(crate) fn new(core: &Core, noop_index: LogIndex) -> Progress {
        let config = &core.config;
        Progress {
            next_index: noop_index,
            match_index: LogIndex::ZERO,
            window: Window::default(),
            probing: true,
            batch: BatchSizer::new(config.batch_entries_initial, config.batch_entries_max),
            heartbeat_due_ms: core.now_ms,
            retry_after_ms: core.now_ms,
            last_response_ms: None,
            acked_seq: 0,
            acked_sent_ms: None,
            snapshot: None,
            known_commit: LogIndex::ZERO,
            leave_by_ms: None,
            streams: Vec::new(),
            batch_answered_ms: core.now_ms,
        }
    }

    /// A failed request: shrink the batch, drop the window, resume after what is known.
    pub(crate) fn on_failure(&mut self, next_index: LogIndex) {
        self.batch.on_failure();
        self.window.clear();
        self.probing = true;
        self.next_index = next_index.max(self.match_index.next());
    }
}

/// A snapshot transfer to one follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SnapshotSend {
    pub(crate) meta: SnapshotMeta,
    /// The next chunk starts here.
    pub(crate) offset: u64,
    /// The chunk in flight: its seq and when it was sent.
    pub(crate) inflight: Option<(u64, u64)>,
}
