//! The frames of an entry stream (`/raft/v1/stream`, streaming replication): each message
//! travels as a 4-byte big-endian length and the message's body (see
//! [`codec::encode_frame`](crate::codec::encode_frame)). HTTP/2 cuts the byte stream wherever
//! its flow control and frame sizes say, so the reader ([`FrameReader`]) reassembles frames
//! from any split, refuses a frame over its limit as soon as the head announces it (before
//! buffering any of it), and tells a stream that ends inside a frame from one that ends
//! between two. The writer ([`FrameBody`]) is an HTTP body fed by a channel of messages, each
//! encoded when HTTP/2 has room to send it: a receiver that stops reading stops the sender's
//! body at its flow-control window, and what waits behind it is bounded by whoever feeds the
//! channel (raft-core's leader keeps at most `stream_max_unacked_bytes` unanswered on a stream).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::debug;

use crate::codec::{EncodeError, FRAME_HEAD_BYTES};

/// Why an entry stream could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    /// A frame's head announced more than the reader accepts.
    #[error("a frame of {length} bytes is over the limit of {limit} bytes")]
    TooLarge { length: usize, limit: usize },
    /// The stream ended inside a frame.
    #[error("the stream ended inside a frame ({buffered} bytes of it arrived)")]
    Truncated { buffered: usize },
    /// The body failed (a reset stream, a broken connection).
    #[error("the stream broke: {0}")]
    Body(String),
}

/// Reassembles frames from the pieces a body delivers.
#[derive(Debug)]
pub(crate) struct FrameReader {
    buffer: BytesMut,
    limit: usize,
}

impl FrameReader {
    /// A reader refusing frames whose body is over `limit` bytes.
    pub(crate) fn new(limit: usize) -> FrameReader {
        FrameReader {
            buffer: BytesMut::new(),
            limit,
        }
    }

    /// Adds a piece of the stream.
    pub(crate) fn push(&mut self, piece: &[u8]) {
        self.buffer.extend_from_slice(piece);
    }

    /// The next whole frame's body, if it has arrived.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        let Some(head) = self.buffer.get(..FRAME_HEAD_BYTES) else {
            return Ok(None);
        };
        let mut announced = [0; FRAME_HEAD_BYTES];
        announced.copy_from_slice(head);
        let length = u32::from_be_bytes(announced) as usize;
        if length > self.limit {
            return Err(FrameError::TooLarge {
                length,
                limit: self.limit,
            });
        }
        if self.buffer.len() - FRAME_HEAD_BYTES < length {
            // Room for the whole frame at once, so it is not copied again as it grows.
            self.buffer
                .reserve(FRAME_HEAD_BYTES + length - self.buffer.len());
            return Ok(None);
        }
        self.buffer.advance(FRAME_HEAD_BYTES);
        Ok(Some(self.buffer.split_to(length).freeze()))
    }

    /// The stream ended: an error if it ended inside a frame.
    pub(crate) fn finish(&self) -> Result<(), FrameError> {
        if self.buffer.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Truncated {
                buffered: self.buffer.len(),
            })
        }
    }

    /// Reads `body` until the next whole frame: its body, or `None` when the stream ended
    /// cleanly between two frames.
    pub(crate) async fn read<B>(&mut self, body: &mut B) -> Result<Option<Bytes>, FrameError>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Into<raft_core::BoxError>,
    {
        loop {
            if let Some(frame) = self.next_frame()? {
                return Ok(Some(frame));
            }
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.push(&data);
                    }
                }
                Some(Err(error)) => return Err(FrameError::Body(error.into().to_string())),
                None => return self.finish().map(|()| None),
            }
        }
    }
}

/// The request extension [`Server`](crate::Server) gives every request: it turns `true` when
/// the server starts shutting down, and an entry stream then ends (a stream never ends on its
/// own, and shutdown waits for open requests).
#[derive(Clone, Debug)]
pub(crate) struct Draining(pub(crate) watch::Receiver<bool>);

impl Draining {
    /// Resolves once the server drains (never, if the server is gone without draining).
    fn drained(mut self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            if self.0.wait_for(|draining| *draining).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

/// Aborts a task when dropped: a stream's reading half lives as long as its writing half.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub(crate) JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An HTTP body that sends a first frame, then each message of a channel as a frame, and ends
/// when the channel's senders are gone.
pub(crate) struct FrameBody<T> {
    first: Option<Bytes>,
    messages: mpsc::UnboundedReceiver<T>,
    encode: fn(&T) -> Result<Bytes, EncodeError>,
    /// The other half of the stream, stopped with this one.
    _reader: Option<AbortOnDrop>,
    /// Ends the body early: the server is shutting down.
    drained: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// Counts the bytes sent.
    sent: Option<metrics::Counter>,
}

impl<T> FrameBody<T> {
    /// A body of `first` (when given), then `messages` encoded by `encode`.
    pub(crate) fn new(
        first: Option<Bytes>,
        messages: mpsc::UnboundedReceiver<T>,
        encode: fn(&T) -> Result<Bytes, EncodeError>,
    ) -> FrameBody<T> {
        FrameBody {
            first,
            messages,
            encode,
            _reader: None,
            drained: None,
            sent: None,
        }
    }

    /// Ends the body when `draining` turns `true`.
    pub(crate) fn until(mut self, draining: Option<Draining>) -> FrameBody<T> {
        self.drained = draining.map(Draining::drained);
        self
    }

    /// Counts the bytes of every frame sent on `counter`.
    pub(crate) fn counted(mut self, counter: metrics::Counter) -> FrameBody<T> {
        self.sent = Some(counter);
        self
    }

    /// Stops `reader` when this body is dropped (sent to its end, or its stream reset).
    pub(crate) fn with_reader(mut self, reader: JoinHandle<()>) -> FrameBody<T> {
        self._reader = Some(AbortOnDrop(reader));
        self
    }
}

impl<T> std::fmt::Debug for FrameBody<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameBody")
            .field("first", &self.first.as_ref().map(Bytes::len))
            .finish_non_exhaustive()
    }
}

impl<T> Body for FrameBody<T> {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if let Some(drained) = &mut this.drained
            && drained.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(None);
        }
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        match this.messages.poll_recv(cx) {
            Poll::Ready(Some(message)) => match (this.encode)(&message) {
                Ok(frame) => {
                    if let Some(sent) = &this.sent {
                        sent.increment(frame.len() as u64);
                    }
                    Poll::Ready(Some(Ok(Frame::data(frame))))
                }
                Err(error) => {
                    // Cannot happen with raft-core's messages; the stream ends, the follower
                    // opens another.
                    debug!(%error, "a stream message could not be encoded; ending the stream");
                    Poll::Ready(None)
                }
            },
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use proptest::prelude::*;
    use raft_core::message::TimeoutNow;
    use raft_core::{NodeId, Term};

    fn frames(count: u64) -> Vec<u8> {
        let mut stream = Vec::new();
        for term in 0..count {
            let message = TimeoutNow {
                term: Term(term),
                leader_id: NodeId(7),
            };
            stream.extend_from_slice(&codec::encode_frame(&message).unwrap());
        }
        stream
    }

    fn terms(reader: &mut FrameReader) -> Vec<u64> {
        let mut seen = Vec::new();
        while let Some(frame) = reader.next_frame().unwrap() {
            seen.push(codec::decode::<TimeoutNow>(&frame).unwrap().term.0);
        }
        seen
    }

    #[test]
    fn a_frame_over_the_limit_is_refused_from_its_head_alone() {
        let mut reader = FrameReader::new(100);
        reader.push(&1000u32.to_be_bytes());
        assert!(matches!(
            reader.next_frame(),
            Err(FrameError::TooLarge {
                length: 1000,
                limit: 100
            })
        ));
    }

    #[test]
    fn a_stream_ending_inside_a_frame_is_truncated_and_between_frames_is_clean() {
        let stream = frames(2);
        let mut reader = FrameReader::new(1 << 20);
        reader.push(&stream[..stream.len() - 1]);
        assert_eq!(terms(&mut reader), [0]);
        assert!(matches!(reader.finish(), Err(FrameError::Truncated { .. })));
        let mut whole = FrameReader::new(1 << 20);
        whole.push(&stream);
        assert_eq!(terms(&mut whole), [0, 1]);
        assert!(whole.finish().is_ok());
    }

    proptest! {
        /// However the bytes are cut, the same frames come out, in order.
        #[test]
        fn frames_survive_any_split(cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12)) {
            let stream = frames(5);
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            points.push(0);
            points.push(stream.len());
            points.sort_unstable();
            let mut reader = FrameReader::new(1 << 20);
            let mut seen = Vec::new();
            for pair in points.windows(2) {
                reader.push(&stream[pair[0]..pair[1]]);
                seen.extend(terms(&mut reader));
            }
            prop_assert_eq!(seen, vec![0, 1, 2, 3, 4]);
            prop_assert!(reader.finish().is_ok());
        }

        /// A stream cut at any byte gives the whole frames before the cut, then a clean end
        /// exactly when the cut falls between frames; never a panic.
        #[test]
        fn a_cut_stream_yields_its_whole_frames_then_an_error(cut in any::<prop::sample::Index>()) {
            let stream = frames(3);
            let frame_len = stream.len() / 3;
            let cut = cut.index(stream.len() + 1);
            let mut reader = FrameReader::new(1 << 20);
            reader.push(&stream[..cut]);
            let seen = terms(&mut reader);
            prop_assert_eq!(seen.len(), cut / frame_len);
            prop_assert_eq!(reader.finish().is_ok(), cut % frame_len == 0);
        }

        /// Arbitrary bytes never panic the reader.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64), limit in 0usize..64) {
            let mut reader = FrameReader::new(limit);
            reader.push(&bytes);
            while let Ok(Some(_)) = reader.next_frame() {}
            let _ = reader.finish();
        }
    }
}
