//! The bodies raft-http sends: [`ResponseBody`], the body of every answer of
//! [`RaftService`](crate::RaftService) (a whole buffer, or the frames of an entry stream), and
//! the client's request body (a whole buffer, or a follower's answers on its stream).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, SizeHint};
use raft_core::message::{AppendEntries, AppendEntriesResponse};

use crate::frames::FrameBody;

/// The response body of every raft-http answer: a whole buffer for the RPCs and `/metrics`,
/// or the leader's frames on an entry stream (`/raft/v1/stream`).
///
/// An application that serves its own routes beside raft-http's answers them with any
/// buffer it converts (`From<Full<Bytes>>`, `From<Bytes>`, `From<String>`, `From<Vec<u8>>`,
/// `From<&'static str>`), so one hyper service returns one body type:
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use hyper::Response;
/// use raft_http::ResponseBody;
///
/// let own: Response<Full<Bytes>> = Response::new(Full::new(Bytes::from("the app's answer")));
/// let served: Response<ResponseBody> = own.map(ResponseBody::from);
/// # let _ = served;
/// ```
#[derive(Debug)]
pub struct ResponseBody(Kind);

#[derive(Debug)]
enum Kind {
    Full(Full<Bytes>),
    Stream(FrameBody<AppendEntries>),
}

impl ResponseBody {
    /// A body of one buffer.
    #[must_use]
    pub fn full(bytes: impl Into<Bytes>) -> ResponseBody {
        ResponseBody(Kind::Full(Full::new(bytes.into())))
    }

    /// An empty body.
    #[must_use]
    pub fn empty() -> ResponseBody {
        ResponseBody::full(Bytes::new())
    }

    /// The frames of an entry stream.
    pub(crate) fn stream(frames: FrameBody<AppendEntries>) -> ResponseBody {
        ResponseBody(Kind::Stream(frames))
    }
}

impl Default for ResponseBody {
    fn default() -> ResponseBody {
        ResponseBody::empty()
    }
}

impl From<Full<Bytes>> for ResponseBody {
    fn from(body: Full<Bytes>) -> ResponseBody {
        ResponseBody(Kind::Full(body))
    }
}

impl From<Bytes> for ResponseBody {
    fn from(bytes: Bytes) -> ResponseBody {
        ResponseBody::full(bytes)
    }
}

impl From<String> for ResponseBody {
    fn from(text: String) -> ResponseBody {
        ResponseBody::full(text)
    }
}

impl From<Vec<u8>> for ResponseBody {
    fn from(bytes: Vec<u8>) -> ResponseBody {
        ResponseBody::full(bytes)
    }
}

impl From<&'static str> for ResponseBody {
    fn from(text: &'static str) -> ResponseBody {
        ResponseBody::full(text)
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.get_mut().0 {
            Kind::Full(body) => Pin::new(body).poll_frame(cx),
            Kind::Stream(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Full(body) => body.is_end_stream(),
            Kind::Stream(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Full(body) => body.size_hint(),
            Kind::Stream(_) => SizeHint::default(),
        }
    }
}

/// The client's request body: one buffer, or a follower's opening and answers on its stream.
#[derive(Debug)]
pub(crate) enum RequestBody {
    Full(Full<Bytes>),
    Stream(FrameBody<AppendEntriesResponse>),
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            RequestBody::Full(body) => Pin::new(body).poll_frame(cx),
            RequestBody::Stream(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Full(body) => body.is_end_stream(),
            RequestBody::Stream(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Full(body) => body.size_hint(),
            RequestBody::Stream(_) => SizeHint::default(),
        }
    }
}
