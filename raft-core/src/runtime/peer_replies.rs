//! The way back to peers whose requests wait on the engine.
//!
//! A peer's AppendEntries, RequestVote or InstallSnapshot arrives with a one-shot reply channel;
//! the engine answers later (a follower acknowledges only durable entries; a vote waits for the
//! vote to be durable), as an `Output::Send` of the response. [`PeerReplies`] parks each channel
//! under what the response will carry (sender and sequence number, or sender and kind of vote)
//! and sends the response back on it.

use std::collections::HashMap;

use super::events::Inbound;
use super::results::Reply;
use crate::error::Error;
use crate::message::{
    AppendEntriesResponse, InstallSnapshotResponse, Message, ReadIndexResponse, RequestVoteResponse,
};
use crate::types::{NodeId, Term};

/// A vote request's term and the way back to its candidate.
type VoteWaiter = (Term, Reply<RequestVoteResponse>);

/// Reply channels of peer requests the engine has not answered yet.
#[derive(Default)]
pub(crate) struct PeerReplies {
    appends: HashMap<(NodeId, u64), Reply<AppendEntriesResponse>>,
    snapshots: HashMap<(NodeId, u64), Reply<InstallSnapshotResponse>>,
    read_indexes: HashMap<(NodeId, u64), Reply<ReadIndexResponse>>,
    /// By candidate and kind (pre-vote or not), with the request's term: a retry in a newer
    /// term can arrive before the older request is answered.
    votes: HashMap<(NodeId, bool), Vec<VoteWaiter>>,
}

impl PeerReplies {
    /// Parks the request's reply channel; returns the sender and the message for the engine.
    pub(crate) fn park(&mut self, inbound: Inbound) -> (NodeId, Message) {
        match inbound {
            Inbound::Append(request, reply) => {
                let from = request.leader_id;
                self.appends.insert((from, request.seq), reply);
                (from, Message::AppendEntries(request))
            }
            Inbound::Vote(request, reply) => {
                let from = request.candidate_id;
                let waiting = self.votes.entry((from, request.pre_vote)).or_default();
                waiting.push((request.term, reply));
                (from, Message::RequestVote(request))
            }
            Inbound::Snapshot(request, reply) => {
                let from = request.leader_id;
                self.snapshots.insert((from, request.seq), reply);
                (from, Message::InstallSnapshot(request))
            }
            Inbound::TimeoutNow(request) => (request.leader_id, Message::TimeoutNow(request)),
            Inbound::ReadIndex(request, reply) => {
                let from = request.follower_id;
                self.read_indexes.insert((from, request.seq), reply);
                (from, Message::ReadIndex(request))
            }
        }
    }

    /// Sends a response back on the request it answers (dropped if that request is gone).
    /// Returns the message unchanged if it is a request of our own, for the peer's task.
    pub(crate) fn answer(&mut self, to: NodeId, message: Message) -> Option<Message> {
        match message {
            Message::AppendEntriesResponse(response) => {
                if let Some(reply) = self.appends.remove(&(to, response.seq)) {
                    let _ = reply.send(Ok(response));
                }
            }
            Message::InstallSnapshotResponse(response) => {
                if let Some(reply) = self.snapshots.remove(&(to, response.seq)) {
                    let _ = reply.send(Ok(response));
                }
            }
            Message::RequestVoteResponse(response) => self.answer_vote(to, response),
            Message::ReadIndexResponse(response) => {
                if let Some(reply) = self.read_indexes.remove(&(to, response.seq)) {
                    let _ = reply.send(Ok(response));
                }
            }
            request => return Some(request),
        }
        None
    }

    fn answer_vote(&mut self, to: NodeId, response: RequestVoteResponse) {
        let key = (to, response.pre_vote);
        let Some(waiting) = self.votes.get_mut(&key) else {
            return;
        };
        // A grant carries the request's term; a refusal may carry a newer one, and then
        // answers the newest request.
        let position = waiting
            .iter()
            .position(|(term, _)| *term == response.term)
            .unwrap_or(waiting.len().saturating_sub(1));
        if position < waiting.len() {
            let (_, reply) = waiting.remove(position);
            let _ = reply.send(Ok(response));
        }
        if waiting.is_empty() {
            self.votes.remove(&key);
        }
    }

    /// Forgets requests whose senders gave up (the engine ignored them and never answers).
    pub(crate) fn prune_closed(&mut self) {
        self.appends.retain(|_, reply| !reply.is_closed());
        self.snapshots.retain(|_, reply| !reply.is_closed());
        self.read_indexes.retain(|_, reply| !reply.is_closed());
        self.votes.retain(|_, waiting| {
            waiting.retain(|(_, reply)| !reply.is_closed());
            !waiting.is_empty()
        });
    }

    /// Answers every parked request with [`Error::Shutdown`].
    pub(crate) fn refuse_all(&mut self) {
        for (_, reply) in self.appends.drain() {
            let _ = reply.send(Err(Error::Shutdown));
        }
        for (_, reply) in self.snapshots.drain() {
            let _ = reply.send(Err(Error::Shutdown));
        }
        for (_, reply) in self.read_indexes.drain() {
            let _ = reply.send(Err(Error::Shutdown));
        }
        for (_, waiting) in self.votes.drain() {
            for (_, reply) in waiting {
                let _ = reply.send(Err(Error::Shutdown));
            }
        }
    }
}
