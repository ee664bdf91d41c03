//! [`Node`] as the service its transport serves: the peer requests (AppendEntries, votes,
//! InstallSnapshot, ReadIndex, TimeoutNow) and entry streams opened by followers, each handed
//! to the event loop as an inbound event.

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use super::Node;
use crate::error::Error;
use crate::message::{
    AppendEntries, AppendEntriesResponse, InstallSnapshot, InstallSnapshotResponse, OpenStream,
    ReadIndex, ReadIndexResponse, RequestVote, RequestVoteResponse, TimeoutNow,
};
use crate::runtime::events::{Event, Inbound};
use crate::runtime::results::Reply;
use crate::transport::{ServiceHandler, StreamSink};

impl Node {
    /// Hands a peer request to the event loop and waits for its answer, up to the request
    /// timeout.
    async fn inbound<T>(&self, make: impl FnOnce(Reply<T>) -> Inbound) -> Result<T, Error> {
        let (sender, receiver) = oneshot::channel();
        self.enqueue(Event::Inbound(make(sender)))?;
        let timeout = Duration::from_millis(self.shared().config.raft.request_timeout_ms);
        match tokio::time::timeout(timeout, receiver).await {
            Err(_) => Err(Error::Timeout),
            Ok(Err(_)) if self.shared().lifecycle.is_running() => Err(Error::Timeout),
            Ok(Err(_)) => Err(Error::Shutdown),
            Ok(Ok(answer)) => answer,
        }
    }
}

#[async_trait]
impl ServiceHandler for Node {
    async fn append_entries(&self, request: AppendEntries) -> Result<AppendEntriesResponse, Error> {
        self.inbound(|reply| Inbound::Append(request, reply)).await
    }

    async fn request_vote(&self, request: RequestVote) -> Result<RequestVoteResponse, Error> {
        self.inbound(|reply| Inbound::Vote(request, reply)).await
    }

    async fn timeout_now(&self, request: TimeoutNow) -> Result<(), Error> {
        self.enqueue(Event::Inbound(Inbound::TimeoutNow(request)))
    }

    async fn install_snapshot(
        &self,
        request: InstallSnapshot,
    ) -> Result<InstallSnapshotResponse, Error> {
        self.inbound(|reply| Inbound::Snapshot(request, reply))
            .await
    }

    async fn read_index(&self, request: ReadIndex) -> Result<ReadIndexResponse, Error> {
        self.inbound(|reply| Inbound::ReadIndex(request, reply))
            .await
    }

    async fn open_stream(
        &self,
        open: OpenStream,
        acks: mpsc::UnboundedReceiver<AppendEntriesResponse>,
    ) -> Result<StreamSink, Error> {
        let (entries, sink) = mpsc::unbounded_channel();
        let (follower, seq) = (open.follower_id, open.seq);
        self.enqueue(Event::StreamOpened { open, entries })?;
        let events = self.handle.events.clone();
        tokio::spawn(crate::runtime::streams::serve_answers(
            follower, seq, acks, events,
        ));
        Ok(StreamSink { entries: sink })
    }
}
