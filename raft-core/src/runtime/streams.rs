//! Entry streams (streaming replication) in the runtime: the follower's task that reads its
//! stream and answers each batch on it, and the leader's task that turns the follower's
//! answers into events and reports the stream's end. The engine decides what goes on a stream
//! and when to open one; these tasks only carry.
//!
//! Leader side: a follower's open arrives through [`ServiceHandler::open_stream`]; the node
//! hands the stream's sender to the follower's peer task (batches for the follower go on it,
//! in order, instead of being sent as requests) and steps the engine with the open. The
//! follower's answers come back as ordinary answers; when they end (the transport closes them
//! when the stream breaks) the engine hears `Input::StreamClosed`.
//!
//! Follower side: the engine's `OpenStream` goes to the leader's peer task, which runs
//! [`follow`]: it opens the stream through the transport, feeds each batch to the event loop
//! as a request from the leader (so the engine's answer, sent once the entries are durable,
//! finds its way back) and sends the answers on the stream in order. When the stream ends the
//! engine hears `Input::StreamClosed` and opens another at the leader's next message.
//!
//! [`ServiceHandler::open_stream`]: crate::transport::ServiceHandler::open_stream

use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use super::events::{Event, Inbound};
use crate::message::{AppendEntriesResponse, Message, OpenStream};
use crate::transport::Transport;
use crate::types::NodeId;

/// The follower's stream to `leader`: opens it, relays batches in and answers out until it
/// ends, then reports the end.
pub(crate) async fn follow(
    transport: Arc<dyn Transport>,
    leader: NodeId,
    open: OpenStream,
    events: mpsc::UnboundedSender<Event>,
) {
    // Reports the end however the task stops: done, failed, or aborted (a newer stream to
    // another leader, the leader no longer a member, shutdown).
    let _end = EndReport {
        events: events.clone(),
        peer: leader,
        seq: open.seq,
    };
    match transport.open_stream(leader, open).await {
        Ok(stream) => relay(stream, &events).await,
        Err(err) => debug!(%leader, %err, "opening the entry stream failed"),
    }
}

/// Tells the event loop that stream `seq` to `peer` ended, when dropped.
struct EndReport {
    events: mpsc::UnboundedSender<Event>,
    peer: NodeId,
    seq: u64,
}

impl Drop for EndReport {
    fn drop(&mut self) {
        let ended = Event::StreamEnded {
            peer: self.peer,
            seq: self.seq,
        };
        let _ = self.events.send(ended);
    }
}

async fn relay(stream: crate::transport::EntryStream, events: &mpsc::UnboundedSender<Event>) {
    let crate::transport::EntryStream { mut entries, acks } = stream;
    // Answers go back as they come (the leader matches them by seq), so a batch the engine
    // never answers (a malformed one) holds up no other.
    let mut answers = FuturesUnordered::new();
    loop {
        tokio::select! {
            batch = entries.recv() => {
                let Some(request) = batch else { return };
                let (reply, answer) = oneshot::channel();
                if events.send(Event::Inbound(Inbound::Append(request, reply))).is_err() {
                    return;
                }
                answers.push(answer);
            }
            Some(answer) = answers.next(), if !answers.is_empty() => {
                // A batch the engine dropped (not from its leader, malformed) has no answer.
                if let Ok(Ok(response)) = answer
                    && acks.send(response).is_err()
                {
                    return;
                }
            }
        }
    }
}

/// The leader's side of a follower's stream: turns the follower's answers into events and
/// reports the end of the stream when they stop.
pub(crate) async fn serve_answers(
    follower: NodeId,
    seq: u64,
    mut acks: mpsc::UnboundedReceiver<AppendEntriesResponse>,
    events: mpsc::UnboundedSender<Event>,
) {
    while let Some(response) = acks.recv().await {
        let answer = Event::Answer {
            from: follower,
            message: Message::AppendEntriesResponse(response),
        };
        if events.send(answer).is_err() {
            return;
        }
    }
    let _ = events.send(Event::StreamEnded {
        peer: follower,
        seq,
    });
}
