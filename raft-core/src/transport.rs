//! The transport plugins: [`Transport`] sends a node's requests to its peers, and
//! [`ServiceHandler`] is what a server forwards the requests it receives to.
//!
//! A [`Node`](crate::runtime::Node) implements `ServiceHandler`, so any server (raft-http, or the
//! in-process `MemNetwork` of `raft_core::testing`) serves it by decoding a request, calling
//! the handler and encoding the answer. Transports are testable without Raft (against a fake
//! handler) and Raft without a network.

use std::collections::BTreeMap;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::error::Error;
use crate::message::{
    AppendEntries, AppendEntriesResponse, InstallSnapshot, InstallSnapshotResponse, OpenStream,
    ReadIndex, ReadIndexResponse, RequestVote, RequestVoteResponse, TimeoutNow,
};
use crate::types::NodeId;

/// The follower's end of an entry stream (streaming replication,
/// [`Replication::Streaming`](crate::Replication::Streaming)), as [`Transport::open_stream`]
/// returns it: the leader's AppendEntries arrive on `entries` in the order the leader sent
/// them, and the follower's answers go back on `acks`. The stream is over when `entries`
/// ends (the transport drops its sender when the connection breaks); the follower ends it
/// by dropping both halves. Neither channel needs a bound of its own: the leader puts at most
/// `Config::stream_max_unacked_bytes` (plus one batch) of entries it has no answer for on a
/// stream; only after a failure (a rejection, or answers lost for a request timeout) does it
/// resend from the last acknowledged entry, so a stream may briefly hold a second copy.
#[derive(Debug)]
pub struct EntryStream {
    /// The leader's batches, in order.
    pub entries: mpsc::UnboundedReceiver<AppendEntries>,
    /// The follower's answers, to the leader.
    pub acks: mpsc::UnboundedSender<AppendEntriesResponse>,
}

/// The leader's end of an entry stream, as [`ServiceHandler::open_stream`] returns it: the
/// transport sends what arrives on `entries` to the follower, in order, and ends the stream
/// when `entries` ends (the node dropped it: it stopped, or the follower opened another).
#[derive(Debug)]
pub struct StreamSink {
    /// The batches to carry to the follower.
    pub entries: mpsc::UnboundedReceiver<AppendEntries>,
}

/// The client side: requests from this node to a peer.
///
/// Calls may run concurrently, many to the same peer (AppendEntries are pipelined), and their
/// answers may come back in any order. A call that fails or gets no answer in time returns
/// [`Error::Transport`] or [`Error::Timeout`]; the node retries by itself. A transport must never
/// let one dead peer delay requests to another.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Sends an AppendEntries (or a heartbeat, with no entries) and returns the answer.
    async fn append_entries(
        &self,
        to: NodeId,
        request: AppendEntries,
    ) -> Result<AppendEntriesResponse, Error>;

    /// Sends a RequestVote (or a pre-vote) and returns the answer.
    async fn request_vote(
        &self,
        to: NodeId,
        request: RequestVote,
    ) -> Result<RequestVoteResponse, Error>;

    /// Tells the peer to start an election at once (leadership transfer).
    async fn timeout_now(&self, to: NodeId, request: TimeoutNow) -> Result<(), Error>;

    /// Sends one snapshot chunk and returns the answer. Chunks to one peer go one at a time.
    async fn install_snapshot(
        &self,
        to: NodeId,
        request: InstallSnapshot,
    ) -> Result<InstallSnapshotResponse, Error>;

    /// Asks the leader `to` for a read index (follower reads). The default answers that the
    /// transport cannot: follower reads then fail (and callers fall back to the leader).
    async fn read_index(&self, to: NodeId, request: ReadIndex) -> Result<ReadIndexResponse, Error> {
        let _ = request;
        Err(Error::transport(
            to,
            "this transport does not carry ReadIndex requests",
        ))
    }

    /// Whether this transport carries entry streams ([`Transport::open_stream`]); a node with
    /// streaming replication refuses to start on one that does not.
    fn carries_streams(&self) -> bool {
        false
    }

    /// Opens this follower's entry stream to the leader `to` (streaming replication): the
    /// transport delivers `open` to the leader's [`ServiceHandler::open_stream`] and then
    /// carries its batches one way and the follower's answers the other, until either end
    /// drops its half or the connection breaks. The default refuses.
    async fn open_stream(&self, to: NodeId, open: OpenStream) -> Result<EntryStream, Error> {
        let _ = open;
        Err(Error::transport(
            to,
            "this transport carries no entry streams",
        ))
    }

    /// The members' addresses changed (a membership change added or removed a node): every
    /// member other than this node with the address its configuration gives. Called by the
    /// node's event loop before its first request to a new member; it must not block. The
    /// default ignores it, for transports that find peers by id alone.
    fn update_peers(&self, addresses: &BTreeMap<NodeId, String>) {
        let _ = addresses;
    }
}

/// The server side: what a node does with a request that arrived for it.
///
/// Implemented by [`Node`](crate::runtime::Node). Calls may run concurrently. An answer may take
/// as long as the node's disk needs to make the entries durable (a success is sent only then); a
/// request the node does not answer (a vote it ignores during a leader's lease) ends with
/// [`Error::Timeout`] after the configured request timeout; a request from a node removed from
/// the cluster (or claiming to be this node) gets [`Error::Config`] at once, and a stopped node
/// answers [`Error::Shutdown`]. Requests from nodes this node does not know yet are handled:
/// a new member can lead before a lagging follower appended the entry that added it, so keep
/// strangers out at the transport (cluster id, secret, TLS).
/// Servers map errors to their own failure replies.
#[async_trait]
pub trait ServiceHandler: Send + Sync + 'static {
    /// Handles an AppendEntries from the leader `request.leader_id`.
    async fn append_entries(&self, request: AppendEntries) -> Result<AppendEntriesResponse, Error>;

    /// Handles a RequestVote from `request.candidate_id`.
    async fn request_vote(&self, request: RequestVote) -> Result<RequestVoteResponse, Error>;

    /// Handles a TimeoutNow from the leader `request.leader_id`.
    async fn timeout_now(&self, request: TimeoutNow) -> Result<(), Error>;

    /// Handles one snapshot chunk from the leader `request.leader_id`. The answer may wait for
    /// the chunk to be written (and, for the last one, for the snapshot to be durable).
    async fn install_snapshot(
        &self,
        request: InstallSnapshot,
    ) -> Result<InstallSnapshotResponse, Error>;

    /// Handles a follower's opening of its entry stream (streaming replication): `acks`
    /// brings the follower's answers (the transport ends it when the stream breaks); the
    /// returned sink is what the transport carries to the follower. The default refuses.
    async fn open_stream(
        &self,
        open: OpenStream,
        acks: mpsc::UnboundedReceiver<AppendEntriesResponse>,
    ) -> Result<StreamSink, Error> {
        let _ = (open, acks);
        Err(Error::Config(
            "this node does not serve entry streams".to_owned(),
        ))
    }

    /// Handles a follower's request for a read index (the answer waits for a quorum's
    /// confirmation). The default refuses it, for handlers that do not serve follower reads.
    async fn read_index(&self, request: ReadIndex) -> Result<ReadIndexResponse, Error> {
        let _ = request;
        Err(Error::Config(
            "this node does not serve ReadIndex requests".to_owned(),
        ))
    }
}
