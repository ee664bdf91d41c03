//! The events of the world's queue ([`Event`]) and the requests a leader's peer task fills
//! ([`Fill`], carried by [`Event::Fill`] when the fill is deferred). Plain data: the world and
//! its parts (peers, snapshots, nemesis, clients) create and handle them, and this module
//! depends on none of them.

use bytes::Bytes;
use raft_core::message::{AppendEntries, InstallSnapshot, Message};
use raft_core::{LogId, LogIndex, Membership, NodeId};

/// Something due to happen at a point of simulated time.
#[derive(Clone, Debug)]
pub(super) enum Event {
    /// A node's engine hears the clock (rescheduled while the node is up).
    Tick(usize),
    /// A message arrives at node `to`, if the network still lets it through.
    Deliver {
        from: usize,
        to: usize,
        message: Message,
    },
    /// The transport reports that a request from `node` to `to` failed.
    SendFailed {
        node: usize,
        epoch: u64,
        to: NodeId,
        seq: u64,
    },
    /// The node's written log operations reach its disk.
    LogFlush { node: usize, epoch: u64 },
    /// The node's engine hears how far its log is persisted.
    LogReport { node: usize, epoch: u64 },
    /// The node's pending hard state reaches its disk.
    HardStateFlush { node: usize, epoch: u64 },
    /// A snapshot the node created is written and ready to become its latest.
    SnapshotWritten {
        node: usize,
        epoch: u64,
        last_log_id: LogId,
        membership: Membership,
        /// The data captured when the snapshot was asked for (`None` with the planted bug
        /// `LazySnapshot`: read from the state machine now).
        data: Option<Bytes>,
    },
    /// A peer task gets to a request it was handed earlier.
    Fill {
        node: usize,
        epoch: u64,
        to: NodeId,
        fill: Box<Fill>,
    },
    /// A crash aimed at a node's current life (ignored if it crashed already meanwhile).
    Crash { node: usize, epoch: u64 },
    /// A crash sprung by the targeted nemesis's trap, with the downtime drawn when it sprang
    /// (ignored like `Crash`).
    TrapCrash {
        node: usize,
        epoch: u64,
        downtime_ms: u64,
    },
    /// A crashed node comes back from its durable state.
    Restart(usize),
    /// The nemesis strikes.
    Nemesis,
    /// The split brain's next act on the node: the links into it slow down (`cut` false),
    /// then its own messages are cut off (ignored if it crashed or stopped leading meanwhile,
    /// or once the faults stopped).
    SplitBrain { node: usize, epoch: u64, cut: bool },
    /// After the heal: the probe writes to the leader unless one of its writes committed.
    Probe,
    /// Membership churn strikes (only with churn on).
    Churn,
    /// A client starts its next operation.
    ClientStart(usize),
    /// A client gives up waiting on an operation.
    ClientTimeout(u64),
    /// The open of stream `key` reaches the leader `to` (streaming replication).
    StreamOpen {
        key: u64,
        from: usize,
        to: usize,
        message: Message,
    },
    /// A batch sent on stream `key` reaches the follower `to`, if the stream still lives.
    StreamDeliver {
        key: u64,
        from: usize,
        to: usize,
        message: Message,
    },
    /// A stream's end is reported to `node` (ignored in another life of it).
    StreamClosed {
        node: usize,
        epoch: u64,
        peer: NodeId,
        seq: u64,
    },
}

/// A request to fill and send.
#[derive(Clone, Debug)]
pub(super) enum Fill {
    /// `SendEntries`: the entries `first..=last_log_id` go into `request`.
    Entries {
        request: AppendEntries,
        first: LogIndex,
        last_log_id: LogId,
    },
    /// `SendSnapshot`: `len` bytes of the snapshot at `request.offset` go into `request`.
    Snapshot { request: InstallSnapshot, len: u64 },
}
