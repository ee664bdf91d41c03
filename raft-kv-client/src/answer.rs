//! What the single-key calls return ([`Versioned`], [`Written`], [`Incremented`]), read from
//! the server's answers, and the errors of the answers that are refusals.

use bytes::Bytes;
use hyper::StatusCode;
use hyper::header::{self, HeaderMap};

use crate::error::Error;
use crate::pool::Reply;

/// Response header: the log index at which a write was applied.
pub(crate) const INDEX_HEADER: &str = "raft-index";
/// Response header: `true` when a write was a retry of one applied before.
pub(crate) const DUPLICATE_HEADER: &str = "raft-duplicate";
/// Response header of a `409` to a retry of a write applied before whose answer was not kept:
/// the index it was applied at.
pub(crate) const ANSWER_LOST_HEADER: &str = "raft-answer-lost";
/// The longest server message kept in an error.
const MAX_MESSAGE_CHARS: usize = 1024;

/// A value and its version.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Versioned {
    /// The value.
    pub value: Bytes,
    /// The log index that last wrote the key (the `ETag`), for a conditional write
    /// ([`Condition::Version`](crate::Condition::Version)); `None` from a server that does not
    /// send it.
    pub version: Option<u64>,
}

/// A write applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Written {
    /// The log index of the write: the key's new version (a deleted key has none: this is
    /// the index of the delete).
    pub version: u64,
    /// Whether an earlier attempt of this write had been applied already (a retry answered
    /// from the server's record, not applied again).
    pub duplicate: bool,
}

/// An `incr` applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Incremented {
    /// The counter's new value.
    pub value: i64,
    /// The log index of the write: the key's new version.
    pub version: u64,
    /// Whether an earlier attempt had been applied already (see [`Written::duplicate`]).
    pub duplicate: bool,
}

/// The answer of a `GET`.
pub(crate) fn versioned(reply: Reply) -> Result<Versioned, Error> {
    if reply.status != StatusCode::OK {
        return Err(refusal(&reply));
    }
    Ok(Versioned {
        version: version(&reply.headers)?,
        value: reply.body,
    })
}

/// The answer of a `PUT` or `DELETE`.
pub(crate) fn written(reply: Reply) -> Result<Written, Error> {
    if !reply.status.is_success() {
        return Err(refusal(&reply));
    }
    Ok(Written {
        version: write_version(&reply.headers)?,
        duplicate: duplicate(&reply.headers),
    })
}

/// The answer of an `incr`: the new value as decimal text.
pub(crate) fn incremented(reply: Reply) -> Result<Incremented, Error> {
    if !reply.status.is_success() {
        return Err(refusal(&reply));
    }
    let text = std::str::from_utf8(&reply.body).unwrap_or_default().trim();
    let value = text
        .parse::<i64>()
        .map_err(|_| Error::Protocol(format!("incr answered {text:?}, not an integer")))?;
    Ok(Incremented {
        value,
        version: write_version(&reply.headers)?,
        duplicate: duplicate(&reply.headers),
    })
}

/// The error of an answer that is not a success.
pub(crate) fn refusal(reply: &Reply) -> Error {
    match reply.status {
        StatusCode::NOT_FOUND => Error::NotFound,
        StatusCode::PRECONDITION_FAILED => Error::PreconditionFailed {
            current: version(&reply.headers).ok().flatten(),
        },
        StatusCode::UNAUTHORIZED => Error::Unauthorized {
            message: message(&reply.body),
        },
        StatusCode::CONFLICT if reply.headers.contains_key(ANSWER_LOST_HEADER) => {
            match reply
                .headers
                .get(ANSWER_LOST_HEADER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.parse().ok())
            {
                Some(index) => Error::AppliedAnswerLost { index },
                None => Error::Protocol(format!(
                    "a 409 with a malformed {ANSWER_LOST_HEADER} header: {}",
                    message(&reply.body)
                )),
            }
        }
        status => Error::Rejected {
            status: status.as_u16(),
            message: message(&reply.body),
        },
    }
}

/// The server's one-line message.
pub(crate) fn message(body: &Bytes) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The `ETag` as a version (`"12"`, or the weak `W/"12"`), if there is one.
pub(crate) fn version(headers: &HeaderMap) -> Result<Option<u64>, Error> {
    let Some(value) = headers.get(header::ETAG) else {
        return Ok(None);
    };
    let malformed = || Error::Protocol(format!("malformed ETag {value:?}"));
    let text = value.to_str().map_err(|_| malformed())?.trim();
    let text = text.strip_prefix("W/").unwrap_or(text);
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .and_then(|t| t.parse::<u64>().ok())
        .map(Some)
        .ok_or_else(malformed)
}

/// A write's version: its `ETag`, else its `Raft-Index`.
fn write_version(headers: &HeaderMap) -> Result<u64, Error> {
    if let Some(version) = version(headers)? {
        return Ok(version);
    }
    write_index(headers)
}

/// A write's log index: its `Raft-Index`.
pub(crate) fn write_index(headers: &HeaderMap) -> Result<u64, Error> {
    headers
        .get(INDEX_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or_else(|| Error::Protocol("a write answered without its index".to_owned()))
}

/// Whether a write's answer says an earlier attempt had applied it (`Raft-Duplicate`).
pub(crate) fn duplicate(headers: &HeaderMap) -> bool {
    headers
        .get(DUPLICATE_HEADER)
        .is_some_and(|v| v.as_bytes() == b"true")
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn reply(status: u16, headers: &[(&'static str, &'static str)], body: &'static str) -> Reply {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_static(value));
        }
        Reply {
            status: StatusCode::from_u16(status).unwrap(),
            headers: map,
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    #[test]
    fn etags_are_quoted_decimal_versions() {
        let parse = |etag: &'static str| version(&reply(200, &[("etag", etag)], "").headers);
        assert_eq!(parse("\"12\"").unwrap(), Some(12));
        assert_eq!(parse("W/\"7\"").unwrap(), Some(7));
        for bad in ["12", "\"x\"", "\"-1\"", "*"] {
            assert!(matches!(parse(bad), Err(Error::Protocol(_))), "{bad}");
        }
        assert_eq!(version(&HeaderMap::new()).unwrap(), None);
    }

    #[test]
    fn writes_report_their_version_and_whether_they_were_retries() {
        let put = written(reply(
            204,
            &[("etag", "\"9\""), ("raft-duplicate", "true")],
            "",
        ));
        assert_eq!(
            put.unwrap(),
            Written {
                version: 9,
                duplicate: true
            }
        );
        // A server without ETags: the Raft-Index.
        let old = written(reply(
            204,
            &[("raft-index", "4"), ("raft-duplicate", "false")],
            "",
        ));
        assert_eq!(old.unwrap().version, 4);
        assert!(matches!(
            written(reply(204, &[], "")),
            Err(Error::Protocol(_))
        ));
        let incr = incremented(reply(200, &[("etag", "\"5\"")], "3\n")).unwrap();
        assert_eq!((incr.value, incr.version, incr.duplicate), (3, 5, false));
    }

    #[test]
    fn refusals_become_typed_errors() {
        assert!(matches!(
            refusal(&reply(
                409,
                &[("raft-answer-lost", "77")],
                "applied; result not kept\n"
            )),
            Error::AppliedAnswerLost { index: 77 }
        ));
        // A refused incr is a 409 that names its index too: not a lost answer.
        assert!(matches!(
            refusal(&reply(409, &[("raft-index", "78")], "not an integer\n")),
            Error::Rejected { status: 409, .. }
        ));
        assert!(matches!(
            refusal(&reply(404, &[], "no such key\n")),
            Error::NotFound
        ));
        assert!(matches!(
            refusal(&reply(412, &[("etag", "\"8\"")], "")),
            Error::PreconditionFailed { current: Some(8) }
        ));
        assert!(matches!(
            refusal(&reply(412, &[], "")),
            Error::PreconditionFailed { current: None }
        ));
        assert!(
            matches!(refusal(&reply(401, &[], "writes need a token\n")), Error::Unauthorized { message } if message == "writes need a token")
        );
        assert!(
            matches!(refusal(&reply(409, &[], "not an integer\n")), Error::Rejected { status: 409, message } if message == "not an integer")
        );
        assert_eq!(
            message(&Bytes::from("é".repeat(2000))).chars().count(),
            1027
        );
    }
}
