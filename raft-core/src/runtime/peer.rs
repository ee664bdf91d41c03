//! One task per peer: fills AppendEntries from the log, calls the transport and turns answers
//! and failures into events. Requests to one peer are pipelined (many calls in flight at once,
//! answers in any order); a slow or dead peer holds up only its own task.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use metrics::Counter;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::events::Event;
use super::streams;
use crate::error::Error;
use crate::message::{AppendEntries, InstallSnapshot, Message};
use crate::snapshot::SnapshotReader;
use crate::storage::LogStore;
use crate::transport::Transport;
use crate::types::{LogId, LogIndex, NodeId};

/// Streams of one follower kept at most (as the engine keeps them).
const STREAMS_KEPT: usize = 8;

/// A request for the peer, in the engine's output order.
#[derive(Debug)]
pub(crate) enum PeerCommand {
    /// A complete request.
    Message(Message),
    /// An AppendEntries to fill with the log's entries `first..=last_log_id.index`.
    Entries {
        request: AppendEntries,
        first: LogIndex,
        last_log_id: LogId,
    },
    /// An InstallSnapshot to fill with `len` bytes of the store's latest snapshot.
    Snapshot { request: InstallSnapshot, len: u64 },
    /// The peer (a follower) opened entry stream `seq` to this node: batches for it go on
    /// `entries` from now on.
    StreamFrom {
        seq: u64,
        entries: mpsc::UnboundedSender<AppendEntries>,
    },
    /// This node's own entry stream to the peer ends (it follows another leader now).
    CloseStream,
}

pub(crate) struct PeerSender {
    pub(crate) peer: NodeId,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) log: Arc<dyn LogStore>,
    pub(crate) events: mpsc::UnboundedSender<Event>,
    /// A call still unanswered after this is abandoned (as failed), so a transport that never
    /// answers cannot pile up calls.
    pub(crate) request_timeout: Duration,
    /// The snapshot being sent, kept open between chunks.
    pub(crate) snapshot: Option<Arc<dyn SnapshotReader>>,
    /// Streaming replication: batches go on the peer's stream, not as requests.
    pub(crate) streaming: bool,
    /// The streams the peer (a follower) opened to this node and that are still open, newest
    /// (the one batches go on) last, as the engine keeps them: when the newest ends the one
    /// before takes over.
    pub(crate) outgoing: Vec<mpsc::UnboundedSender<AppendEntries>>,
    /// This node's stream to the peer (its leader): the task that follows it.
    pub(crate) incoming: Option<JoinHandle<()>>,
    /// Streams opened to the peer, and batches sent on the peer's stream.
    pub(crate) stream_metrics: StreamMetrics,
}

/// The stream counters of one peer (no-ops without streaming replication).
#[derive(Clone, Debug)]
pub(crate) struct StreamMetrics {
    pub(crate) opens: Counter,
    pub(crate) batches: Counter,
}

impl StreamMetrics {
    pub(crate) fn new(streaming: bool, node: NodeId, peer: NodeId) -> StreamMetrics {
        if !streaming {
            return StreamMetrics {
                opens: Counter::noop(),
                batches: Counter::noop(),
            };
        }
        let labels = [("node", node.to_string()), ("peer", peer.to_string())];
        StreamMetrics {
            opens: metrics::counter!(crate::metrics::STREAM_OPENS, &labels),
            batches: metrics::counter!(crate::metrics::STREAM_BATCHES, &labels),
        }
    }
}

impl PeerSender {
    /// Runs until the loop drops its sender; calls still in flight are then abandoned.
    pub(crate) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<PeerCommand>) {
        let mut inflight = FuturesUnordered::new();
        loop {
            tokio::select! {
                command = commands.recv() => {
                    let Some(command) = command else { break };
                    let Some(command) = self.streams(command) else { continue };
                    let streamed = self.streaming && matches!(command, PeerCommand::Entries { .. });
                    match self.prepare(command).await {
                        Some(Message::AppendEntries(request)) if streamed => {
                            if let Some(request) = self.stream(request) {
                                let message = Message::AppendEntries(request);
                                let call = call(self.transport.clone(), self.peer, message, self.request_timeout);
                                inflight.push(call);
                            }
                        }
                        Some(message) => {
                            let call = call(self.transport.clone(), self.peer, message, self.request_timeout);
                            inflight.push(call);
                        }
                        None => {}
                    }
                }
                Some(done) = inflight.next(), if !inflight.is_empty() => {
                    if let Some(event) = done {
                        let _ = self.events.send(event);
                    }
                }
            }
        }
        if let Some(task) = self.incoming.take() {
            task.abort();
        }
    }

    /// Handles the commands about entry streams; returns the others.
    fn streams(&mut self, command: PeerCommand) -> Option<PeerCommand> {
        match command {
            PeerCommand::StreamFrom { seq, entries } => {
                debug!(peer = %self.peer, seq, "sending batches on the peer's stream");
                self.outgoing.retain(|stream| !stream.is_closed());
                self.outgoing.push(entries);
                if self.outgoing.len() > STREAMS_KEPT {
                    self.outgoing.remove(0);
                }
                None
            }
            PeerCommand::CloseStream => {
                if let Some(task) = self.incoming.take() {
                    task.abort();
                }
                None
            }
            PeerCommand::Message(Message::OpenStream(open)) => {
                if let Some(task) = self.incoming.take() {
                    task.abort();
                }
                let follow =
                    streams::follow(self.transport.clone(), self.peer, open, self.events.clone());
                self.incoming = Some(tokio::spawn(follow));
                self.stream_metrics.opens.increment(1);
                None
            }
            command => Some(command),
        }
    }

    /// Sends a batch on the peer's newest open stream; with none, hands it back, to go as a
    /// request (the engine sends one at a time without a stream).
    fn stream(&mut self, mut request: AppendEntries) -> Option<AppendEntries> {
        while let Some(entries) = self.outgoing.last() {
            match entries.send(request) {
                Ok(()) => {
                    self.stream_metrics.batches.increment(1);
                    return None;
                }
                Err(mpsc::error::SendError(back)) => {
                    request = back;
                    self.outgoing.pop();
                }
            }
        }
        Some(request)
    }

    /// Fills an AppendEntries from the log. If the log no longer holds exactly the entries the
    /// engine meant (a truncation came in between), the request is dropped as failed.
    async fn prepare(&mut self, command: PeerCommand) -> Option<Message> {
        let (mut request, first, last_log_id) = match command {
            PeerCommand::Message(message) => return Some(message),
            PeerCommand::StreamFrom { .. } | PeerCommand::CloseStream => return None,
            PeerCommand::Snapshot { request, len } => {
                return self.fill_snapshot(request, len).await;
            }
            PeerCommand::Entries {
                request,
                first,
                last_log_id,
            } => {
                // Replication resumed: a transfer is over, so let the store free its snapshot.
                self.snapshot = None;
                (request, first, last_log_id)
            }
        };
        let expected = last_log_id.index.0.saturating_sub(first.0) + 1;
        match self.log.read(first, last_log_id.index).await {
            Ok(entries)
                if entries.len() as u64 == expected
                    && entries.last().map(|e| e.log_id) == Some(last_log_id) =>
            {
                request.entries = entries;
                Some(Message::AppendEntries(request))
            }
            Ok(_) => {
                debug!(peer = %self.peer, %first, %last_log_id, "log changed under a send");
                self.fail(request.seq);
                None
            }
            Err(err) => {
                warn!(peer = %self.peer, %err, "log read for AppendEntries failed");
                self.fail(request.seq);
                None
            }
        }
    }

    /// Reads the chunk the engine asked for from the store's latest snapshot. If that is not
    /// the engine's snapshot any more (a newer one replaced it), the request fails and the
    /// engine restarts the transfer with the newer one.
    async fn fill_snapshot(&mut self, mut request: InstallSnapshot, len: u64) -> Option<Message> {
        let cached = self
            .snapshot
            .as_ref()
            .is_some_and(|reader| *reader.meta() == request.meta);
        if !cached {
            self.snapshot = match self.log.open_snapshot().await {
                Ok(reader) => reader,
                Err(err) => {
                    warn!(peer = %self.peer, %err, "opening the snapshot to send failed");
                    None
                }
            };
        }
        let reader = self
            .snapshot
            .clone()
            .filter(|reader| *reader.meta() == request.meta);
        let Some(reader) = reader else {
            debug!(peer = %self.peer, meta = %request.meta, "the snapshot to send was replaced");
            self.fail(request.seq);
            return None;
        };
        let want = usize::try_from(len).unwrap_or(usize::MAX);
        match reader.read(request.offset, want).await {
            Ok(data) if data.len() == want => {
                request.chunk_crc = crc32c::crc32c(&data);
                request.data = data;
                Some(Message::InstallSnapshot(request))
            }
            Ok(data) => {
                warn!(peer = %self.peer, got = data.len(), want, "short snapshot read");
                self.fail(request.seq);
                None
            }
            Err(err) => {
                warn!(peer = %self.peer, %err, "reading the snapshot to send failed");
                self.fail(request.seq);
                None
            }
        }
    }

    fn fail(&self, seq: u64) {
        let _ = self.events.send(Event::SendFailed { to: self.peer, seq });
    }
}

/// A transport call bounded by `timeout`.
async fn bounded<T>(
    timeout: Duration,
    to: NodeId,
    call: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(timeout, call)
        .await
        .unwrap_or_else(|_| Err(Error::transport(to, "no answer in time")))
}

/// One transport call; the event it produces, if any.
async fn call(
    transport: Arc<dyn Transport>,
    to: NodeId,
    message: Message,
    timeout: Duration,
) -> Option<Event> {
    match message {
        Message::AppendEntries(request) => {
            let seq = Some(request.seq);
            let answer = bounded(timeout, to, transport.append_entries(to, request)).await;
            outcome(
                to,
                "AppendEntries",
                seq,
                answer.map(Message::AppendEntriesResponse),
            )
        }
        Message::RequestVote(request) => {
            let answer = bounded(timeout, to, transport.request_vote(to, request)).await;
            // Unanswered votes need nothing: the election timer runs the next round.
            outcome(
                to,
                "RequestVote",
                None,
                answer.map(Message::RequestVoteResponse),
            )
        }
        Message::TimeoutNow(request) => {
            if let Err(err) = bounded(timeout, to, transport.timeout_now(to, request)).await {
                debug!(peer = %to, %err, "TimeoutNow failed");
            }
            None
        }
        Message::InstallSnapshot(request) => {
            let seq = Some(request.seq);
            let answer = bounded(timeout, to, transport.install_snapshot(to, request)).await;
            outcome(
                to,
                "InstallSnapshot",
                seq,
                answer.map(Message::InstallSnapshotResponse),
            )
        }
        Message::ReadIndex(request) => {
            let seq = Some(request.seq);
            let answer = bounded(timeout, to, transport.read_index(to, request)).await;
            outcome(to, "ReadIndex", seq, answer.map(Message::ReadIndexResponse))
        }
        // Answers travel back on the request they answer, never through a peer task.
        Message::AppendEntriesResponse(_)
        | Message::RequestVoteResponse(_)
        | Message::InstallSnapshotResponse(_)
        | Message::ReadIndexResponse(_) => None,
        // Opened by the peer task itself (`PeerSender::streams`), never a call.
        Message::OpenStream(_) => None,
    }
}

/// The event for a call's outcome: the peer's answer, or the failure of request `seq` (calls
/// without a seq need no report of their failure).
fn outcome(
    to: NodeId,
    kind: &str,
    seq: Option<u64>,
    answer: Result<Message, Error>,
) -> Option<Event> {
    match answer {
        Ok(message) => Some(Event::Answer { from: to, message }),
        Err(err) => {
            debug!(peer = %to, %err, ?seq, "{kind} failed");
            seq.map(|seq| Event::SendFailed { to, seq })
        }
    }
}
