//! What the event loop receives. One unbounded FIFO channel carries everything; client requests
//! are bounded separately by a counter (`Shared::queued`), so a full queue answers
//! `Error::Overloaded` at once while completions from the node's own tasks are never refused
//! (refusing them could deadlock the loop against its own workers).

use bytes::Bytes;
use tokio::sync::oneshot;

use super::applier::Notify;
use crate::error::Error;
use crate::message::{
    AppendEntries, AppendEntriesResponse, InstallSnapshot, InstallSnapshotResponse, Message,
    RequestVote, RequestVoteResponse, TimeoutNow,
};
use crate::snapshot::SnapshotMeta;
use crate::types::{EntryInfo, HardState, LogIndex, NodeId};

/// A one-shot answer to a caller.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, Error>>;

pub(crate) enum Event {
    /// A client's commands (counted in `queued`).
    Propose(Proposal),
    /// A client's linearizable read (counted in `queued`).
    Read(Reply<LogIndex>),
    /// An operator's leadership transfer.
    Transfer(NodeId),
    /// A request from a peer, with the way back to it.
    Inbound(Inbound),
    /// A peer answered one of our requests.
    Answer { from: NodeId, message: Message },
    /// An AppendEntries could not be delivered or got no answer.
    SendFailed { to: NodeId, seq: u64 },
    /// The hard-state writer made this hard state durable.
    HardStatePersisted(HardState),
    /// A plugin task hit an error the node cannot continue after.
    Failed(Error),
    /// `Node::request_snapshot`.
    SnapshotRequested,
    /// The snapshot task stored a snapshot durably as the store's latest.
    SnapshotCreated(SnapshotMeta),
    /// The snapshot task could not store its snapshot.
    SnapshotFailed,
    /// `Node::shutdown` (or the last handle dropped).
    Shutdown,
}

pub(crate) struct Proposal {
    pub(crate) payloads: Vec<Bytes>,
    /// `payloads.len()` as proposed (the loop takes the payloads out).
    pub(crate) count: usize,
    /// Async-handler mode: told the entries' position as soon as they are appended.
    pub(crate) accepted: Option<Reply<EntryInfo>>,
    /// Told the result: the commit result, or the pre-commit result in async replication mode.
    pub(crate) notify: Notify,
}

pub(crate) enum Inbound {
    Append(AppendEntries, Reply<AppendEntriesResponse>),
    Vote(RequestVote, Reply<RequestVoteResponse>),
    TimeoutNow(TimeoutNow),
    Snapshot(InstallSnapshot, Reply<InstallSnapshotResponse>),
}
