//! [`PeerSet`]: one sender task per member other than this node, following the configuration
//! in force. A member added by a membership change gets a task (and the transport its address)
//! before the engine's first request to it runs; a removed member's task ends when its channel
//! closes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{Instrument, Span, info};

use super::events::Event;
use super::peer::{PeerCommand, PeerSender, StreamMetrics};
use crate::error::Error;
use crate::membership::Membership;
use crate::message::Message;
use crate::storage::LogStore;
use crate::transport::Transport;
use crate::types::NodeId;

/// The sender tasks of a node's peers.
pub(crate) struct PeerSet {
    id: NodeId,
    transport: Arc<dyn Transport>,
    log: Arc<dyn LogStore>,
    events: mpsc::UnboundedSender<Event>,
    request_timeout: Duration,
    span: Span,
    /// Addresses the node was started with, for members whose configuration names none.
    bootstrap: BTreeMap<NodeId, String>,
    senders: BTreeMap<NodeId, mpsc::UnboundedSender<PeerCommand>>,
    tasks: Vec<JoinHandle<()>>,
    /// Streaming replication: batches go on streams, heartbeats as requests.
    streaming: bool,
    /// The peer this node (a follower) last opened its entry stream to.
    stream_to: Option<NodeId>,
}

impl PeerSet {
    pub(crate) fn new(
        id: NodeId,
        transport: Arc<dyn Transport>,
        log: Arc<dyn LogStore>,
        events: mpsc::UnboundedSender<Event>,
        request_timeout: Duration,
        bootstrap: BTreeMap<NodeId, String>,
        streaming: bool,
    ) -> PeerSet {
        PeerSet {
            id,
            transport,
            log,
            events,
            request_timeout,
            span: Span::current(),
            bootstrap,
            senders: BTreeMap::new(),
            tasks: Vec::new(),
            streaming,
            stream_to: None,
        }
    }

    /// Runs new tasks under `span` (the node's).
    pub(crate) fn set_span(&mut self, span: Span) {
        self.span = span;
    }

    /// Every other member's address: the configuration's, else the one the node was started
    /// with.
    pub(crate) fn addresses(&self, membership: &Membership) -> BTreeMap<NodeId, String> {
        membership
            .members()
            .into_iter()
            .filter(|&id| id != self.id)
            .filter_map(|id| {
                let address = membership
                    .address(id)
                    .map(str::to_owned)
                    .or_else(|| self.bootstrap.get(&id).cloned())?;
                Some((id, address))
            })
            .collect()
    }

    /// Makes the tasks match `membership`: the transport learns every member's address, new
    /// members get a task, removed ones lose theirs.
    pub(crate) fn sync(&mut self, membership: &Membership) {
        let members = membership.members();
        if !membership.is_empty() || !self.senders.is_empty() {
            // A joining node knows no members yet: leave the transport's peers alone.
            self.transport.update_peers(&self.addresses(membership));
        }
        self.senders.retain(|peer, _| {
            let keep = members.contains(peer);
            if !keep {
                info!(%peer, "no longer a member: stopping its sender");
            }
            keep
        });
        for peer in members {
            if peer == self.id || self.senders.contains_key(&peer) {
                continue;
            }
            let (sender, commands) = mpsc::unbounded_channel();
            let task = PeerSender {
                peer,
                transport: self.transport.clone(),
                log: self.log.clone(),
                events: self.events.clone(),
                request_timeout: self.request_timeout,
                snapshot: None,
                streaming: self.streaming,
                outgoing: Vec::new(),
                incoming: None,
                stream_metrics: StreamMetrics::new(self.streaming, self.id, peer),
            };
            let span = tracing::info_span!(parent: &self.span, "peer", %peer);
            self.tasks
                .push(tokio::spawn(task.run(commands).instrument(span)));
            self.senders.insert(peer, sender);
        }
        self.tasks.retain(|task| !task.is_finished());
    }

    /// Hands a command to `to`'s task; a peer without one (not a member any more) is skipped.
    ///
    /// # Errors
    /// [`Error::Fatal`] if the task is gone (it panicked): replication to that peer would stop
    /// silently, so the node stops instead.
    pub(crate) fn send(&self, to: NodeId, command: PeerCommand) -> Result<(), Error> {
        match self.senders.get(&to) {
            Some(peer) => peer
                .send(command)
                .map_err(|_| Error::Fatal(format!("the sender task for node {to} stopped"))),
            None => Ok(()),
        }
    }

    /// This node (a follower) opens its entry stream to `to`: its stream to any other peer
    /// ends (one stream at a time, to the leader it follows).
    ///
    /// # Errors
    /// As [`PeerSet::send`].
    pub(crate) fn open_stream(&mut self, to: NodeId, open: Message) -> Result<(), Error> {
        if let Some(previous) = self.stream_to.replace(to)
            && previous != to
        {
            self.send(previous, PeerCommand::CloseStream)?;
        }
        if !self.senders.contains_key(&to) {
            // A leader this node does not know as a member yet (its log lags): no way to reach
            // it. The engine hears the stream ended and tries again at the next heartbeat;
            // meanwhile the leader sends batches as requests.
            if let Message::OpenStream(open) = &open {
                let ended = Event::StreamEnded {
                    peer: to,
                    seq: open.seq,
                };
                let _ = self.events.send(ended);
            }
            return Ok(());
        }
        self.send(to, PeerCommand::Message(open))
    }

    /// Closes every channel (the tasks end, abandoning calls in flight) and returns the tasks
    /// to join.
    pub(crate) fn close(&mut self) -> Vec<JoinHandle<()>> {
        self.senders.clear();
        std::mem::take(&mut self.tasks)
    }
}
