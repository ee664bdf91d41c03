//! The leader's side of an entry stream (`POST /raft/v1/stream`, streaming replication).
//!
//! A follower opens it with a request whose body is a stream of frames (see `frames.rs`): its
//! `OpenStream` first, then its answers to the leader's batches. The route runs the checks of
//! every RPC on the headers (method, cluster credentials, client certificate, content type),
//! reads the opening within the body read timeout and under the control frame limit
//! ([`MAX_STREAM_CONTROL_FRAME_BYTES`](crate::MAX_STREAM_CONTROL_FRAME_BYTES)), and, with a
//! client certificate, refuses an opening whose `follower_id` the certificate does not name
//! (403 `wrong-node`): the stream's answers carry no sender of their own, so the identity
//! checked at the opening is the one every answer on the stream is taken from. Then it hands
//! the opening to the node ([`ServiceHandler::open_stream`]) and answers 200 with a body of
//! the node's batches, one frame each, sent as HTTP/2 flow control lets them go.
//!
//! The stream ends, on the leader's side, when the node drops its sink (the body ends), when
//! the request body ends or breaks or brings a malformed frame (the answers end, and the node
//! hears the stream closed), when the follower resets the HTTP/2 stream (hyper drops the
//! body, which stops the task reading the answers), and when the [`Server`](crate::Server)
//! starts shutting down.

use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Body;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response};
use raft_core::ServiceHandler;
use raft_core::message::{AppendEntriesResponse, OpenStream};
use tokio::sync::mpsc;
use tracing::debug;

use crate::body::ResponseBody;
use crate::codec::{self, CONTENT_TYPE};
use crate::error::ErrorCode;
use crate::frames::{Draining, FrameBody, FrameError, FrameReader};
use crate::refusal::{Failure, check_headers, check_sender, failure_response, too_large};
use crate::routes::Rpc;
use crate::service_config::ServiceConfig;
use crate::tls::PeerCertificate;

/// Opens a follower's entry stream: the answer, and the bytes of the opening received.
pub(crate) async fn open<B>(
    handler: Arc<dyn ServiceHandler>,
    config: Arc<ServiceConfig>,
    request: Request<B>,
    sent: metrics::Counter,
) -> (Response<ResponseBody>, usize)
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<raft_core::BoxError>,
{
    match accept(handler, &config, request).await {
        Ok((frames, received)) => {
            let response = Response::builder()
                .header(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))
                .body(ResponseBody::stream(frames.counted(sent)))
                .unwrap_or_default();
            (response, received)
        }
        Err(failure) => {
            debug!(code = %failure.code, message = %failure.message, "entry stream refused");
            (failure_response(failure), 0)
        }
    }
}

/// Every check, the opening, the node's consent: the body of batches to send.
async fn accept<B>(
    handler: Arc<dyn ServiceHandler>,
    config: &ServiceConfig,
    request: Request<B>,
) -> Result<(FrameBody<raft_core::message::AppendEntries>, usize), Failure>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<raft_core::BoxError>,
{
    check_headers(config, &request)?;
    let peer = request.extensions().get::<PeerCertificate>().cloned();
    let draining = request.extensions().get::<Draining>().cloned();
    let mut body = Box::pin(request.into_body());
    let mut reader = FrameReader::new(config.body_limit(Rpc::Stream));
    let timeout = config.body_read_timeout;
    let first = match tokio::time::timeout(timeout, reader.read(&mut body)).await {
        Ok(Ok(Some(first))) => first,
        Ok(Ok(None)) => {
            return Err(Failure::new(
                ErrorCode::Malformed,
                "the stream ended before its opening",
            ));
        }
        Ok(Err(FrameError::TooLarge { limit, .. })) => return Err(too_large(limit)),
        Ok(Err(error)) => {
            return Err(Failure::new(
                ErrorCode::Malformed,
                format!("cannot read the opening: {error}"),
            ));
        }
        Err(_) => {
            return Err(Failure::new(
                ErrorCode::BodyTimeout,
                format!("the stream's opening did not arrive within {timeout:?}"),
            ));
        }
    };
    let received = codec::FRAME_HEAD_BYTES + first.len();
    let open: OpenStream = codec::decode(&first)?;
    check_sender(config, peer.as_ref(), open.follower_id)?;
    let follower = open.follower_id;
    let (answers, node_answers) = mpsc::unbounded_channel();
    let sink = handler.open_stream(open, node_answers).await?;
    let reading = tokio::spawn(async move {
        read_answers(body, reader, answers).await;
        debug!(%follower, "the follower's answers ended");
    });
    let frames = FrameBody::new(None, sink.entries, codec::encode_append_entries_frame)
        .with_reader(reading)
        .until(draining);
    Ok((frames, received))
}

/// Hands the follower's answers to the node until the request body ends, breaks, or brings
/// a frame that is not an answer (the node then hears the stream closed).
async fn read_answers<B>(
    mut body: std::pin::Pin<Box<B>>,
    mut reader: FrameReader,
    answers: mpsc::UnboundedSender<AppendEntriesResponse>,
) where
    B: Body<Data = Bytes> + Send,
    B::Error: Into<raft_core::BoxError>,
{
    loop {
        let frame = match reader.read(&mut body).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(error) => {
                debug!(%error, "the follower's stream broke");
                return;
            }
        };
        match codec::decode::<AppendEntriesResponse>(&frame) {
            Ok(answer) => {
                if answers.send(answer).is_err() {
                    return;
                }
            }
            Err(error) => {
                debug!(%error, "a malformed answer on an entry stream; ending it");
                return;
            }
        }
    }
}
