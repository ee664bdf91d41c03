//! What an engine asks of its runtime: imperative commands, executed in the order given.
//!
//! The contract a runtime keeps:
//! - Outputs run in order. In particular a `Rollback` reaches the state machine before anything
//!   that follows it (the state machine sees the rollback before any replacing entry; the
//!   runtime hands it the entries, so the log may be truncated meanwhile), and an `AppendLog` has
//!   made its entries readable before any later `SendEntries` is filled from the log
//!   (openraft's contract).
//! - `AppendLog`, `TruncateLog` and `PersistHardState` may complete durably later; the runtime
//!   reports durability with [`Input::LogPersisted`] and [`Input::HardStatePersisted`], in the
//!   order the writes were issued. The engine itself holds back every message that depends on
//!   durable state (etcd's `msgsAfterAppend`), so a runtime never has to.
//!
//! [`Input::LogPersisted`]: super::Input::LogPersisted
//! [`Input::HardStatePersisted`]: super::Input::HardStatePersisted

use bytes::Bytes;

use crate::message::{AppendEntries, InstallSnapshot, Message};
use crate::snapshot::SnapshotMeta;
use crate::types::{Entry, HardState, LogId, LogIndex, Membership, NodeId};

/// One command for the runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Write the hard state; report it with `Input::HardStatePersisted`.
    PersistHardState(HardState),
    /// Append entries after the current last entry; report durability with
    /// `Input::LogPersisted`, echoing `epoch`.
    AppendLog {
        /// Consecutive entries following the log's last entry.
        entries: Vec<Entry>,
        /// The log's truncation epoch: it grows at every `TruncateLog`. A report that echoes
        /// an older epoch describes a write from before a truncation and is ignored, even if
        /// an entry with the same id was appended again since (an A-B-A truncation).
        epoch: u64,
    },
    /// Remove every entry at `from` and above. Never at or below the commit index, except
    /// when a snapshot from the leader replaces a log that disagrees with it (then `from` is the
    /// first entry held, and a `CompactLog` past the snapshot follows).
    TruncateLog {
        /// The first index removed.
        from: LogIndex,
    },
    /// Drop the entries below `before` (a durable snapshot covers them). When `before` is past
    /// the last entry the log becomes empty and continues at `before`.
    CompactLog {
        /// The first index kept.
        before: LogIndex,
    },
    /// Capture the state machine's state after `last_log_id` (everything up to it was handed
    /// to `Commit` before this output, nothing after) and store it as a snapshot; report with
    /// `Input::SnapshotCreated` or `Input::SnapshotFailed`.
    CreateSnapshot {
        /// The last entry the snapshot covers (the commit index).
        last_log_id: LogId,
        /// The membership as of that entry, for the snapshot's meta.
        membership: Membership,
    },
    /// Store a chunk of a snapshot the leader is sending: a chunk at offset 0 starts a new
    /// snapshot (abandoning any other being received); the chunk with `done` completes it,
    /// which makes it durable and the store's latest before the outputs that follow run. The
    /// engine has checked the chunk's and the whole data's checksums.
    SaveSnapshotChunk {
        /// The snapshot.
        meta: SnapshotMeta,
        /// Where `data` goes.
        offset: u64,
        /// The chunk.
        data: Bytes,
        /// Whether this is the last chunk.
        done: bool,
    },
    /// Replace the state machine's state with the store's latest snapshot, which is `meta`
    /// (at start, and after a snapshot from the leader was saved). Commits continue after it.
    RestoreSnapshot {
        /// The snapshot.
        meta: SnapshotMeta,
    },
    /// Fill `request.data` with `len` bytes of the store's latest snapshot at `request.offset`
    /// (and `chunk_crc` with their CRC-32C), then send it. If the latest snapshot is not
    /// `request.meta` any more, drop the request and report `SendFailed`.
    SendSnapshot {
        /// The peer.
        to: NodeId,
        /// The request, with `data` empty.
        request: InstallSnapshot,
        /// The chunk's length.
        len: u64,
    },
    /// Call `StateMachine::pre_commit` for each entry in `first..=last`, in index order.
    PreCommit {
        /// The first entry.
        first: LogIndex,
        /// The last entry.
        last: LogIndex,
    },
    /// Call `StateMachine::rollback` for each entry in `first..=last`, from `last` *down* to
    /// `first`; the entries are still in the log, and a `TruncateLog` follows.
    Rollback {
        /// The lowest entry rolled back (rolled back last).
        first: LogIndex,
        /// The highest entry rolled back (rolled back first).
        last: LogIndex,
    },
    /// Every entry up to `upto` is committed: apply them in index order.
    Commit {
        /// The new commit index.
        upto: LogIndex,
    },
    /// Send a complete message.
    Send {
        /// The peer.
        to: NodeId,
        /// The message.
        message: Message,
    },
    /// Fill `request.entries` with the log's entries `first..=last`, then send it. The engine
    /// keeps log ids, not payloads; `last_log_id` lets the runtime check that the log still
    /// holds what the engine meant (if not, drop the request and report `SendFailed`).
    SendEntries {
        /// The peer.
        to: NodeId,
        /// The request, with `entries` empty.
        request: AppendEntries,
        /// The first entry to include.
        first: LogIndex,
        /// The last entry to include.
        last_log_id: LogId,
    },
    /// A proposal was appended at `first..` (one entry per payload, consecutive).
    ProposalAccepted {
        /// The proposal's id.
        id: u64,
        /// The log id of the first entry.
        first: LogId,
        /// The number of entries.
        count: u64,
    },
    /// A proposal was refused: this node is not the leader.
    ProposalRejected {
        /// The proposal's id.
        id: u64,
        /// The leader, if known.
        leader: Option<NodeId>,
    },
    /// A linearizable read may be served once the state machine has applied `index`.
    ReadReady {
        /// The read's id.
        id: u64,
        /// The read index.
        index: LogIndex,
    },
    /// A read could not be confirmed: this node is not (or no longer) the leader.
    ReadRejected {
        /// The read's id.
        id: u64,
        /// The leader, if known.
        leader: Option<NodeId>,
    },
    /// A membership change was appended at `log_id` and is in force on this leader. It is
    /// done once the configuration it leads to (the final one, after a joint phase) commits:
    /// watch [`Engine::membership`](super::Engine::membership).
    MembershipChangeAccepted {
        /// The change's id.
        id: u64,
        /// Where its entry (the joint or the next configuration) was appended.
        log_id: LogId,
        /// The configuration appended (joint when the voters change; its
        /// [`leave_joint`](Membership::leave_joint) is where the change ends).
        membership: Membership,
    },
    /// A membership change was refused; nothing was written.
    MembershipChangeRejected {
        /// The change's id.
        id: u64,
        /// Why.
        reason: ChangeRejection,
    },
}

/// Why a membership change was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeRejection {
    /// This node does not lead; retry at `leader` when known.
    NotLeader {
        /// The leader, if known.
        leader: Option<NodeId>,
    },
    /// Another change has not finished (its entry is not committed, or the joint phase is not
    /// over), or this leader has not committed an entry of its term yet.
    InProgress,
    /// The change does not fit the current membership (the reason says how).
    Invalid(String),
}
