//! The leader's peer tasks: requests the engine names by range (`SendEntries`) or by snapshot
//! chunk (`SendSnapshot`) are filled from the log or the durable snapshot, then sent through
//! the faulty network.
//!
//! In the runtime (`raft-core/src/runtime/peer.rs`) a peer task fills a request when it gets
//! to it, after later outputs may have compacted the log, cut it, or replaced the snapshot; the
//! task then drops the request and reports `SendFailed`. With snapshots on, the sim defers some
//! fills by a peer-task latency to race them the same way. A fill done at once must succeed for
//! entries: the engine asked for what its own view of the log holds. A few snapshot chunks are
//! damaged on their way, to exercise the follower's checksums.

use raft_core::message::{InstallSnapshot, Message};
use raft_core::{NodeId, Replication};

use super::World;
use super::event::{Event, Fill};
use crate::options::SnapshotMode;

/// The share of requests a peer task fills later rather than at once.
const DEFERRED_FILL_PERCENT: u64 = 25;
/// The longest a peer task takes to get to a request.
const PEER_LATENCY_MAX_MS: u64 = 5;
/// The share of snapshot chunks damaged on their way.
const CORRUPT_CHUNK_PERCENT: u64 = 3;

impl World {
    /// Hands a request to the peer task for `to`: filled now, or (sometimes, with snapshots on)
    /// a little later.
    pub(super) fn run_fill(&mut self, node: usize, to: NodeId, fill: Fill) {
        if self.snapshot_mode != SnapshotMode::Off && self.rng.percent(DEFERRED_FILL_PERCENT) {
            let delay = self.rng.range(0, PEER_LATENCY_MAX_MS + 1);
            let epoch = self.nodes[node].epoch;
            let fill = Box::new(fill);
            self.schedule(
                delay,
                Event::Fill {
                    node,
                    epoch,
                    to,
                    fill,
                },
            );
            return;
        }
        self.fill(node, to, fill, true);
    }

    /// A peer task gets to a request (unless its node crashed meanwhile).
    pub(super) fn deferred_fill(&mut self, node: usize, epoch: u64, to: NodeId, fill: Fill) {
        if self.nodes[node].epoch == epoch && self.nodes[node].is_up() {
            self.fill(node, to, fill, false);
        }
    }

    /// Fills and sends; a request whose entries or snapshot are gone fails. `at_once`: the
    /// fill runs right after the output that asked for it, so entries must be there.
    fn fill(&mut self, node: usize, to: NodeId, fill: Fill, at_once: bool) {
        match fill {
            Fill::Entries {
                mut request,
                first,
                last_log_id,
            } => match self.nodes[node].log.range(first, last_log_id.index) {
                Some(entries) if entries.last().map(|e| e.log_id) == Some(last_log_id) => {
                    request.entries = entries.to_vec();
                    if self.config.replication == Replication::Streaming {
                        self.send_on_stream(node, to, Message::AppendEntries(request));
                    } else {
                        self.send(node, to, Message::AppendEntries(request));
                    }
                }
                _ if at_once => {
                    let detail = format!("node {} lacks {last_log_id}", self.nodes[node].id);
                    self.checker.fail("send-entries", detail);
                }
                _ => self.schedule_send_failed(node, to, request.seq, 0),
            },
            Fill::Snapshot { request, len } => self.fill_snapshot(node, to, request, len),
        }
    }

    fn fill_snapshot(&mut self, node: usize, to: NodeId, mut request: InstallSnapshot, len: u64) {
        let chunk = match &self.nodes[node].snapshot {
            Some((meta, data)) if *meta == request.meta => {
                let start = usize::try_from(request.offset).unwrap_or(usize::MAX);
                let end = start.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
                if end > data.len() {
                    let detail = format!(
                        "node {} sends {len} bytes at {} of the {meta}",
                        self.nodes[node].id, request.offset
                    );
                    self.checker.fail("send-snapshot-range", detail);
                    return;
                }
                Some(data.slice(start..end))
            }
            _ => None,
        };
        let Some(data) = chunk else {
            // Replaced by a newer snapshot: the engine restarts the transfer with it. The
            // report is an event of its own, as the peer task's would be.
            self.schedule_send_failed(node, to, request.seq, 0);
            return;
        };
        request.chunk_crc = crc32c::crc32c(&data);
        request.data = data;
        self.corrupt_now_and_then(&mut request);
        self.snapshot_counts.chunks_sent += 1;
        self.send(node, to, Message::InstallSnapshot(request));
    }

    /// Flips a byte of a chunk now and then: on the wire (the chunk's CRC catches it), or
    /// before its CRC was computed, as a damaged disk would (only the whole data's checksum,
    /// checked at the last chunk, catches that). The follower must never install either.
    fn corrupt_now_and_then(&mut self, request: &mut InstallSnapshot) {
        if request.data.is_empty() || !self.rng.percent(CORRUPT_CHUNK_PERCENT) {
            return;
        }
        let mut data = request.data.to_vec();
        let at = self.rng.index(data.len());
        if let Some(byte) = data.get_mut(at) {
            *byte ^= 1 << self.rng.range(0, 8);
        }
        request.data = data.into();
        if self.rng.percent(50) {
            request.chunk_crc = crc32c::crc32c(&request.data);
        }
        self.snapshot_counts.chunks_corrupted += 1;
    }
}
