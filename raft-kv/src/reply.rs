//! The client API's answers: [`Refusal`] (a status, a one-line message and maybe a header) and
//! the helpers that build responses.

use std::fmt::Write as _;

use bytes::{Bytes, BytesMut};
use http_body_util::Full;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};
use raft_wrapper::Applied;

/// Response header: the log index at which a write was applied.
pub const INDEX_HEADER: &str = "raft-index";
/// Response header: `true` when a write was a retry of one applied before.
pub const DUPLICATE_HEADER: &str = "raft-duplicate";
/// Response header of a `409` to a retry of a write applied before whose answer was too large
/// to keep: the log index it was applied at.
pub const ANSWER_LOST_HEADER: &str = "raft-answer-lost";

/// [`INDEX_HEADER`] and [`DUPLICATE_HEADER`] as header names, built once rather than parsed
/// from the string on every write's response.
const INDEX_NAME: HeaderName = HeaderName::from_static(INDEX_HEADER);
const DUPLICATE_NAME: HeaderName = HeaderName::from_static(DUPLICATE_HEADER);

/// A refusal: status, message, and a header when the status needs one (`Location`, `Allow`).
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    message: String,
    header: Option<(HeaderName, String)>,
}

impl Refusal {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            message: message.into(),
            header: None,
        }
    }

    pub(crate) fn with_header(mut self, name: HeaderName, value: String) -> Refusal {
        self.header = Some((name, value));
        self
    }

    pub(crate) fn into_response(self) -> Response<Full<Bytes>> {
        let mut builder = Response::builder().status(self.status).header(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            builder = builder.header(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Some((name, value)) = self.header {
            builder = builder.header(name, value);
        }
        finish(builder, Bytes::from(format!("{}\n", self.message)))
    }
}

/// A response with `message` as its text.
pub(crate) fn text(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    Refusal::new(status, message).into_response()
}

/// The response, or a 500 if the builder refused a header (never a silent default 200).
pub(crate) fn finish(
    builder: hyper::http::response::Builder,
    body: Bytes,
) -> Response<Full<Bytes>> {
    builder.body(Full::new(body)).unwrap_or_else(|error| {
        let mut response = Response::new(Full::new(Bytes::from(format!(
            "cannot build the response: {error}\n"
        ))));
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        response
    })
}

/// A response without a body.
pub(crate) fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    finish(Response::builder().status(status), Bytes::new())
}

/// Adds the headers of a write's answer: its log index and whether it was a retry.
pub(crate) fn with_write_headers(
    mut response: Response<Full<Bytes>>,
    applied: &Applied,
) -> Response<Full<Bytes>> {
    let headers = response.headers_mut();
    let mut index = HeaderValue::from(applied.index.0);
    // Never indexed by HPACK: every write's index is new, so entering it in the connection's
    // header table would only evict entries that repeat.
    index.set_sensitive(true);
    headers.insert(INDEX_NAME, index);
    headers.insert(
        DUPLICATE_NAME,
        HeaderValue::from_static(if applied.duplicate { "true" } else { "false" }),
    );
    response
}

/// Adds `ETag: "<version>"`.
pub(crate) fn with_etag(
    mut response: Response<Full<Bytes>>,
    version: u64,
) -> Response<Full<Bytes>> {
    // `"<version>"` written into one buffer: no intermediate string.
    let mut tag = BytesMut::with_capacity(22);
    // Writing to a `BytesMut` does not fail (it grows).
    let _ = write!(tag, "\"{version}\"");
    if let Ok(value) = HeaderValue::from_maybe_shared(tag.freeze()) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}
