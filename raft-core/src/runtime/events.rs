//! What the event loop receives. One unbounded FIFO channel carries everything; client requests
//! are bounded separately by a counter (`Shared::queued`), so a full queue answers
//! `Error::Overloaded` at once while completions from the node's own tasks are never refused
//! (refusing them could deadlock the loop against its own workers).

use tokio::sync::mpsc;

use super::proposals::Proposal;
use super::reads::{ReadKind, ReadTicket};
use super::results::Reply;
use crate::engine::FollowerStatus;
use crate::error::Error;
use crate::membership::{Membership, MembershipChange};
use crate::message::{
    AppendEntries, AppendEntriesResponse, InstallSnapshot, InstallSnapshotResponse, Message,
    OpenStream, ReadIndex, ReadIndexResponse, RequestVote, RequestVoteResponse, TimeoutNow,
};
use crate::snapshot::SnapshotMeta;
use crate::types::{HardState, LogIndex, NodeId};

pub(crate) enum Event {
    /// A client's commands (counted in `queued`).
    Propose(Proposal),
    /// A group of clients' reads of one kind (counted once in `queued`).
    Read(ReadKind, ReadTicket),
    /// An operator's leadership transfer.
    Transfer(NodeId),
    /// An operator's membership change.
    ChangeMembership(MembershipChange, Reply<Membership>),
    /// `Node::followers`: the leader's view of each follower, with its last log index.
    Followers(Reply<(LogIndex, Vec<FollowerStatus>)>),
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
    /// A follower opened its entry stream to this node; batches for it go on `entries`.
    StreamOpened {
        open: OpenStream,
        entries: mpsc::UnboundedSender<AppendEntries>,
    },
    /// The entry stream `seq` between this node and `peer` ended.
    StreamEnded { peer: NodeId, seq: u64 },
}

pub(crate) enum Inbound {
    Append(AppendEntries, Reply<AppendEntriesResponse>),
    Vote(RequestVote, Reply<RequestVoteResponse>),
    TimeoutNow(TimeoutNow),
    Snapshot(InstallSnapshot, Reply<InstallSnapshotResponse>),
    ReadIndex(ReadIndex, Reply<ReadIndexResponse>),
}

impl Inbound {
    /// The sender of a request that waits for an answer (`TimeoutNow` waits for none).
    pub(crate) fn requester(&self) -> Option<NodeId> {
        match self {
            Inbound::Append(request, _) => Some(request.leader_id),
            Inbound::Vote(request, _) => Some(request.candidate_id),
            Inbound::Snapshot(request, _) => Some(request.leader_id),
            Inbound::ReadIndex(request, _) => Some(request.follower_id),
            Inbound::TimeoutNow(_) => None,
        }
    }

    /// Answers the request with `error` instead of stepping it.
    pub(crate) fn refuse(self, error: Error) {
        match self {
            Inbound::Append(_, reply) => {
                let _ = reply.send(Err(error));
            }
            Inbound::Vote(_, reply) => {
                let _ = reply.send(Err(error));
            }
            Inbound::Snapshot(_, reply) => {
                let _ = reply.send(Err(error));
            }
            Inbound::ReadIndex(_, reply) => {
                let _ = reply.send(Err(error));
            }
            Inbound::TimeoutNow(_) => {}
        }
    }
}

impl Event {
    /// Answers the event's caller, if it has one, instead of handling it (the node is
    /// stopping): a client gets `error`, a peer [`Error::Shutdown`].
    pub(crate) fn refuse(self, error: Error) {
        match self {
            Event::Propose(proposal) => proposal.refuse(error),
            Event::Read(_, ticket) => ticket.finish(Err(error)),
            Event::ChangeMembership(_, reply) => {
                let _ = reply.send(Err(error));
            }
            Event::Followers(reply) => {
                let _ = reply.send(Err(error));
            }
            Event::Inbound(inbound) => inbound.refuse(Error::Shutdown),
            _ => {}
        }
    }
}
