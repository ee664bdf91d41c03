//! What happens to an engine: past-tense events fed to [`Engine::step`](super::Engine::step).

use bytes::Bytes;

use crate::membership::MembershipChange;
use crate::message::Message;
use crate::snapshot::SnapshotMeta;
use crate::types::{HardState, LogId, NodeId};

/// One event for the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Logical time advanced to `now_ms` (the only source of time the engine has).
    Tick {
        /// Milliseconds on any monotonic clock; a smaller value than before is ignored.
        now_ms: u64,
    },
    /// A message arrived from a peer.
    Received {
        /// The sender.
        from: NodeId,
        /// The message.
        message: Message,
    },
    /// A client proposed commands, to be appended as one batch.
    Proposed {
        /// The caller's name for this batch, echoed in the answer.
        id: u64,
        /// The commands, in order.
        payloads: Vec<Bytes>,
    },
    /// The log store made every entry up to `upto` durable: everything written by the
    /// `AppendLog` that ended at `upto` and by every log output before it.
    LogPersisted {
        /// The last durable entry. Ignored if the log no longer holds this exact entry.
        upto: LogId,
        /// The `epoch` of the `AppendLog` that wrote `upto`.
        epoch: u64,
    },
    /// The hard state store made `hard_state` durable.
    HardStatePersisted {
        /// The state now durable.
        hard_state: HardState,
    },
    /// The transport could not deliver the AppendEntries `seq` to `to`.
    SendFailed {
        /// The peer.
        to: NodeId,
        /// The request's sequence number.
        seq: u64,
    },
    /// The entry stream `seq` between this node and `peer` ended (broken, refused, or
    /// replaced by a newer one); streaming replication only. A follower reopens its stream at
    /// the leader's next message; a leader treats what it sent on the stream and saw no answer
    /// to as lost, and sends `peer` one request at a time until it has a stream again.
    StreamClosed {
        /// The other end.
        peer: NodeId,
        /// The stream's `seq` (from its `OpenStream`).
        seq: u64,
    },
    /// A client asked for a linearizable read (ReadIndex, Raft thesis §6.4).
    ReadRequested {
        /// The caller's name for this read, echoed in the answer.
        id: u64,
    },
    /// A client asked for a lease read: served at once (`ReadReady` at the commit index) while
    /// the leader's lease holds (`Config::lease_reads`), else like `ReadRequested`.
    LeaseReadRequested {
        /// The caller's name for this read, echoed in the answer.
        id: u64,
    },
    /// A client asked this node (a follower, usually) for a linearizable read it serves
    /// itself: a follower asks its leader for a read index (batched with the other reads
    /// waiting) and answers `ReadReady` with it; a leader serves it like `ReadRequested`.
    FollowerReadRequested {
        /// The caller's name for this read, echoed in the answer.
        id: u64,
    },
    /// An operator asked the leader to hand leadership to `to` (Raft thesis §3.10).
    TransferRequested {
        /// The intended successor.
        to: NodeId,
    },
    /// Someone (an operator, the runtime's log-size policy) asked for a snapshot now. Ignored
    /// while one is being created or when nothing was committed since the last one.
    SnapshotRequested,
    /// The snapshot asked for by `Output::CreateSnapshot` is durable and the store's latest.
    SnapshotCreated {
        /// What it covers.
        meta: SnapshotMeta,
    },
    /// The snapshot asked for by `Output::CreateSnapshot` could not be made (or a newer one
    /// replaced it first); a later request tries again.
    SnapshotFailed,
    /// An operator asked for a membership change (only a leader makes one; one at a time).
    MembershipChangeRequested {
        /// The caller's name for this change, echoed in the answer.
        id: u64,
        /// What to change.
        change: MembershipChange,
    },
}
