//! The follower's side of an entry stream (`POST /raft/v1/stream`, streaming replication):
//! [`open`] sends the opening on the leader's connection and, once the leader accepted it,
//! runs a task that decodes the leader's batches from the answer's body, frame by frame.
//!
//! The follower's answers go out as the request's body (a [`FrameBody`] fed by the stream's
//! `acks` channel), on the same HTTP/2 stream as the batches come in. The stream ends, on the
//! follower's side, when the leader ends its body (the node dropped the stream, or its server
//! is shutting down), when the body breaks (a reset, a lost connection, keep-alive pings
//! unanswered), when a frame is over [`ClientConfig::max_body_bytes`] or does not decode as
//! an AppendEntries of the leader the stream was opened to, and when the follower drops its
//! end (the reading task stops, and dropping the body resets the HTTP/2 stream).

use std::sync::Arc;

use hyper::body::Incoming;
use raft_core::NodeId;
use raft_core::message::{AppendEntries, AppendEntriesResponse, OpenStream};
use raft_core::transport::EntryStream;
use tokio::sync::mpsc;
use tracing::debug;

use crate::client_config::ClientConfig;
use crate::codec::{self, FRAME_HEAD_BYTES};
use crate::error::RequestError;
use crate::frames::{FrameBody, FrameReader};
use crate::peer::Peer;

/// Opens the stream to `peer` (the leader) with `open`; the batches then arrive on the
/// returned stream's `entries`, and its `acks` go back to the leader.
pub(crate) async fn open(
    peer: &Arc<Peer>,
    open: &OpenStream,
    config: &ClientConfig,
) -> Result<EntryStream, RequestError> {
    let opening = codec::encode_frame(open)?;
    peer.metrics.sent_bytes.increment(opening.len() as u64);
    let (acks, answers) = mpsc::unbounded_channel();
    let encode: fn(&AppendEntriesResponse) -> _ = codec::encode_frame;
    let body =
        FrameBody::new(Some(opening), answers, encode).counted(peer.metrics.sent_bytes.clone());
    let batches = peer.open_stream(body, config).await?;
    let (entries, received) = mpsc::unbounded_channel();
    let reading = read_batches(
        batches,
        peer.id(),
        config.max_body_bytes,
        entries,
        peer.metrics.received_bytes.clone(),
    );
    tokio::spawn(reading);
    Ok(EntryStream {
        entries: received,
        acks,
    })
}

/// Hands the leader's batches to the follower until the stream ends (see the module).
async fn read_batches(
    mut body: Incoming,
    leader: NodeId,
    limit: usize,
    entries: mpsc::UnboundedSender<AppendEntries>,
    received: metrics::Counter,
) {
    let mut reader = FrameReader::new(limit);
    loop {
        let frame = tokio::select! {
            frame = reader.read(&mut body) => frame,
            () = entries.closed() => return,
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                debug!(%leader, "the leader ended the entry stream");
                return;
            }
            Err(error) => {
                debug!(%leader, %error, "the entry stream broke");
                return;
            }
        };
        received.increment((FRAME_HEAD_BYTES + frame.len()) as u64);
        let batch = match codec::decode_append_entries(&frame) {
            Ok(batch) if batch.leader_id == leader => batch,
            Ok(batch) => {
                debug!(%leader, from = %batch.leader_id, "a batch of another leader on the stream; ending it");
                return;
            }
            Err(error) => {
                debug!(%leader, %error, "a malformed batch on the entry stream; ending it");
                return;
            }
        };
        if entries.send(batch).is_err() {
            return;
        }
    }
}
