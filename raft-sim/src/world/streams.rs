//! Streaming replication's transport, simulated: a follower's `OpenStream` opens a stream to
//! its leader (replacing the follower's previous one), the leader's batches (`SendEntries`)
//! travel on the stream it learned of, in order, and the streams fail in every way a real
//! connection does (but a slow link: delivery takes a network delay whatever the bytes, and
//! a half-open connection: both ends always hear of an end): an open lost, duplicated or
//! delayed past a newer one (the leader may even see the open of a stream that already ended,
//! the end's report close behind), or refused because the follower does not know its leader
//! as a member yet (the runtime reaches members only); a stream cut under a batch (a
//! partition, or a fault of the link), losing everything in transit; an end crashing. Each end that knew of a stream hears of its end (`Input::StreamClosed`) a network
//! delay later. A leader with no stream to a follower sends its batch as an ordinary message,
//! as the runtime does. A stale leader keeps its streams until they fail.
//! Answers travel as ordinary messages (lost, duplicated, reordered).

use raft_core::NodeId;
use raft_core::engine::Input;
use raft_core::message::Message;

use super::World;
use super::event::Event;
use super::stream_table::SimStream;

/// The share of batches under which the link breaks besides the network's faults (never once
/// the faults healed).
const CUT_PERCENT: u64 = 1;

impl World {
    /// A follower's `OpenStream` to `to`.
    pub(super) fn open_stream(&mut self, follower: usize, to: NodeId, message: Message) {
        let Message::OpenStream(open) = &message else {
            return;
        };
        let Some(leader) = self.nodes.iter().position(|n| n.id == to) else {
            return;
        };
        if let Some(old) = self.streams.of_follower.remove(&follower) {
            self.end_stream(old);
        }
        let key = self.streams.next_key;
        self.streams.next_key += 1;
        self.streams.counts.opened += 1;
        let stream = SimStream {
            follower,
            follower_epoch: self.nodes[follower].epoch,
            leader,
            leader_epoch: None,
            seq: open.seq,
            tail_ms: self.now_ms,
        };
        self.streams.live.insert(key, stream);
        self.streams.of_follower.insert(follower, key);
        // As the runtime: a node reaches only the members of its configuration in force (a
        // follower whose log lags the change that added its leader cannot open a stream to it).
        let knows_leader = self.nodes[follower]
            .engine
            .as_ref()
            .is_some_and(|engine| engine.membership().members().contains(&to));
        if !knows_leader
            || !self.network.delivers(follower, leader)
            || self.rng.percent(self.network.drop_percent)
        {
            self.streams.counts.open_failed += 1;
            self.end_stream(key);
            return;
        }
        if self.rng.percent(self.network.duplicate_percent) {
            let delay = self.network.delay(&mut self.rng, leader, self.now_ms);
            let copy = Event::StreamOpen {
                key,
                from: follower,
                to: leader,
                message: message.clone(),
            };
            self.schedule(delay, copy);
        }
        let delay = self.network.delay(&mut self.rng, leader, self.now_ms);
        let event = Event::StreamOpen {
            key,
            from: follower,
            to: leader,
            message,
        };
        self.schedule(delay, event);
    }

    /// The open of stream `key` reaches the leader `to`.
    pub(super) fn stream_open_arrives(
        &mut self,
        key: u64,
        from: usize,
        to: usize,
        message: Message,
    ) {
        let Message::OpenStream(open) = &message else {
            return;
        };
        let seq = open.seq;
        let from_id = self.nodes[from].id;
        if !self.streams.live.contains_key(&key) {
            // It ended on the way; the leader may still see the open, the end close behind.
            if self.nodes[to].is_up() && self.rng.percent(50) {
                self.step_node(
                    to,
                    Input::Received {
                        from: from_id,
                        message,
                    },
                );
                let delay = self.network.delay(&mut self.rng, to, self.now_ms);
                self.report_stream_end(to, self.nodes[to].epoch, from_id, seq, delay);
            }
            return;
        }
        if !self.nodes[to].is_up() || !self.network.delivers(from, to) {
            self.streams.counts.open_failed += 1;
            self.end_stream(key);
            return;
        }
        let epoch = self.nodes[to].epoch;
        if let Some(stream) = self.streams.live.get_mut(&key) {
            stream.leader_epoch = Some(epoch);
        }
        self.streams.in_use.insert((to, from), key);
        self.step_node(
            to,
            Input::Received {
                from: from_id,
                message,
            },
        );
    }

    /// A leader's batch to `to` goes on the stream it sends on, or as an ordinary message.
    pub(super) fn send_on_stream(&mut self, leader: usize, to: NodeId, message: Message) {
        let Some(follower) = self.nodes.iter().position(|n| n.id == to) else {
            return;
        };
        let epoch = self.nodes[leader].epoch;
        let key = self
            .streams
            .in_use
            .get(&(leader, follower))
            .copied()
            .filter(|key| {
                self.streams
                    .live
                    .get(key)
                    .is_some_and(|s| s.leader_epoch == Some(epoch))
            });
        let Some(key) = key else {
            // No stream: the batch goes as a request (the engine sends one at a time then).
            self.send(leader, to, message);
            return;
        };
        let cut = !self.healed && self.rng.percent(CUT_PERCENT);
        if cut
            || !self.network.delivers(leader, follower)
            || self.rng.percent(self.network.drop_percent)
        {
            // The link breaks under this batch: it and everything in transit is lost.
            self.streams.counts.cut += 1;
            self.end_stream(key);
            return;
        }
        let delay = self.network.delay(&mut self.rng, follower, self.now_ms);
        let now_ms = self.now_ms;
        let Some(stream) = self.streams.live.get_mut(&key) else {
            return;
        };
        let at_ms = (now_ms + delay).max(stream.tail_ms);
        stream.tail_ms = at_ms;
        let event = Event::StreamDeliver {
            key,
            from: leader,
            to: follower,
            message,
        };
        self.schedule(at_ms - now_ms, event);
    }

    /// A batch arrives at the end of stream `key`, unless the stream ended meanwhile.
    pub(super) fn stream_delivers(&mut self, key: u64, from: usize, to: usize, message: Message) {
        if !self.streams.live.contains_key(&key) {
            return;
        }
        if !self.network.delivers(from, to) {
            self.streams.counts.cut += 1;
            self.end_stream(key);
            return;
        }
        self.streams.counts.batches += 1;
        let from = self.nodes[from].id;
        self.step_node(to, Input::Received { from, message });
    }

    /// Ends every stream `node` holds an end of (it crashed or stopped).
    pub(super) fn end_streams_of(&mut self, node: usize) {
        let keys: Vec<u64> = self
            .streams
            .live
            .iter()
            .filter(|(_, s)| s.follower == node || s.leader == node)
            .map(|(&key, _)| key)
            .collect();
        for key in keys {
            self.end_stream(key);
        }
    }

    /// Ends stream `key`: each end that knew of it hears a network delay later.
    fn end_stream(&mut self, key: u64) {
        let Some(stream) = self.streams.live.remove(&key) else {
            return;
        };
        self.streams.counts.ended += 1;
        if self.streams.of_follower.get(&stream.follower) == Some(&key) {
            self.streams.of_follower.remove(&stream.follower);
        }
        let pair = (stream.leader, stream.follower);
        if self.streams.in_use.get(&pair) == Some(&key) {
            self.streams.in_use.remove(&pair);
        }
        let leader_id = self.nodes[stream.leader].id;
        let follower_id = self.nodes[stream.follower].id;
        let delay = self
            .network
            .delay(&mut self.rng, stream.follower, self.now_ms);
        self.report_stream_end(
            stream.follower,
            stream.follower_epoch,
            leader_id,
            stream.seq,
            delay,
        );
        if let Some(epoch) = stream.leader_epoch {
            let delay = self
                .network
                .delay(&mut self.rng, stream.leader, self.now_ms);
            self.report_stream_end(stream.leader, epoch, follower_id, stream.seq, delay);
        }
    }

    fn report_stream_end(
        &mut self,
        node: usize,
        epoch: u64,
        peer: NodeId,
        seq: u64,
        delay_ms: u64,
    ) {
        let event = Event::StreamClosed {
            node,
            epoch,
            peer,
            seq,
        };
        self.schedule(delay_ms, event);
    }

    /// The report of a stream's end reaches one of its ends (if still the same life).
    pub(super) fn stream_end_reported(&mut self, node: usize, epoch: u64, peer: NodeId, seq: u64) {
        if self.nodes[node].epoch == epoch && self.nodes[node].is_up() {
            self.step_node(node, Input::StreamClosed { peer, seq });
        }
    }
}
