//! Follower reads (with `SimOptions::follower_reads`): a share of the regular clients' reads
//! goes to a running node other than the one the client takes for the leader (a follower,
//! mostly), as `Input::FollowerReadRequested`. The follower asks its leader for a read index
//! (`ReadIndex`), the engine answers `ReadReady` with it, and the world answers the client once
//! the follower's state machine has applied that index (`serve_reads`), as the runtime's
//! `Node::follower_read` does. The reads are checked like the others: `read-covers-commits`
//! when the engine answers, and the linearizability check of the clients' history at the end.
//!
//! A guard, and a count: an engine gap the simulator found had a follower take the answer to an
//! earlier life's read-index request (same number, same leader, same term) for the answer to
//! its own, and serve reads at a read index older than they were (seed 1000889 at 30 000 steps,
//! pinned). Each engine life now draws its first request number from its seed, and a leader
//! drops a follower's waiting request when a newer one arrives. Reads confirmed by such an
//! answer would still be refused to their clients and left out of the checks, and counted
//! (`FollowerReadCounts::answered_across_lives`, with `stale_across_lives` those below an index
//! committed when they were asked for); both counts stay at zero.

use raft_core::engine::Input;
use raft_core::message::Message;
use raft_core::{LogIndex, NodeId};

use super::World;

/// The share of the regular clients' reads sent to another node as follower reads (the rest
/// are ReadIndex reads, or lease reads with lease reads on).
const FOLLOWER_READ_PERCENT: u64 = 40;

impl World {
    /// Whether the read being started is a follower read (a draw only with follower reads on,
    /// so that without them the run is the one it was before they existed).
    pub(super) fn draw_follower_read(&mut self) -> bool {
        self.options.follower_reads && self.rng.percent(FOLLOWER_READ_PERCENT)
    }

    /// Sends read `id`, of a client that takes `target` for the leader, to another running
    /// node as a follower read (to `target` itself when no other node runs).
    pub(super) fn ask_follower_read(&mut self, target: usize, id: u64) {
        let others: Vec<usize> = (0..self.nodes.len())
            .filter(|&node| node != target && self.nodes[node].is_up())
            .collect();
        let node = others
            .get(self.rng.index(others.len()))
            .copied()
            .unwrap_or(target);
        self.clients.redirect(id, node);
        self.follower_read_counts.requested += 1;
        self.follower_reads_pending.insert(id);
        self.checker.on_read_requested(id);
        self.step_node(node, Input::FollowerReadRequested { id });
    }

    /// The engine confirmed read `id` at `index`: counted if it is a follower read. True when
    /// it is one confirmed across lives (see the module docs): then it is refused to its client
    /// and not judged.
    pub(super) fn on_follower_read_ready(&mut self, id: u64, index: LogIndex) -> bool {
        if !self.follower_reads_pending.remove(&id) {
            return false;
        }
        if !self.answer_across_lives {
            self.follower_read_counts.confirmed += 1;
            return false;
        }
        self.follower_read_counts.answered_across_lives += 1;
        let committed = self.checker.forget_read_request(id);
        if committed.is_some_and(|committed| index < committed) {
            self.follower_read_counts.stale_across_lives += 1;
        }
        let reschedule = self.clients.on_rejected(id, None);
        self.reschedule_clients(reschedule);
        true
    }

    /// `node` sends `message` to `to`: a read-index request is recorded with the life that
    /// first sent a request of that number, in that term, to that leader.
    pub(super) fn note_read_index_sent(&mut self, node: usize, to: NodeId, message: &Message) {
        if let Message::ReadIndex(request) = message {
            let epoch = self.nodes[node].epoch;
            self.read_index_sent
                .entry((node, request.seq, request.term, to))
                .or_insert(epoch);
        }
    }

    /// Whether `input`, about to reach `node`, answers a read-index request whose number an
    /// earlier life of the node also sent, in the same term, to the same leader (answers of
    /// another term are ignored, and of another leader not taken).
    pub(super) fn answers_across_lives(&self, node: usize, input: &Input) -> bool {
        let Input::Received {
            from,
            message: Message::ReadIndexResponse(response),
        } = input
        else {
            return false;
        };
        let key = (node, response.seq, response.term, *from);
        self.read_index_sent
            .get(&key)
            .is_some_and(|&first| first < self.nodes[node].epoch)
    }

    /// The engine refused read `id` (or a proposal of that id): counted if it is a follower
    /// read.
    pub(super) fn on_follower_read_rejected(&mut self, id: u64) {
        if self.follower_reads_pending.remove(&id) {
            self.follower_read_counts.rejected += 1;
        }
    }
}
