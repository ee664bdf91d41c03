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

use crate::message::{AppendEntries, Message};
use crate::types::{Entry, HardState, LogId, LogIndex, NodeId};

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
    /// Remove every entry at `from` and above. Never at or below the commit index.
    TruncateLog {
        /// The first index removed.
        from: LogIndex,
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
}
