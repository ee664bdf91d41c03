//! Compare-and-swap on the single-key routes: the `If-Match` / `If-None-Match` headers of a
//! write become the [`Condition`] of its command, and a write's recorded answer becomes its
//! response (`ETag` of the write, or `412 Precondition Failed` with the key's current `ETag`).
//!
//! Versions are log indexes, sent as `ETag: "<index>"`. `If-Match: "<n>"` (or `<n>` unquoted)
//! applies a write only if the key exists at version n; `If-None-Match: *` only if the key is
//! absent. Weak tags (`W/"n"`), lists, `If-Match: *`, any other `If-None-Match` and both headers
//! together are refused with 400. The condition is decided by the state machine as it applies
//! the entry, so every replica agrees, and the 412 is the answer a retry gets again.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderName};
use hyper::{Response, StatusCode};
use raft_wrapper::Applied;

use crate::answer::OpResult;
use crate::command::{Condition, OpKind};
use crate::reply::{Refusal, empty, text, with_etag, with_write_headers};

/// The condition the request's headers put on a write.
pub(crate) fn condition(headers: &HeaderMap) -> Result<Condition, Refusal> {
    let if_match = one_header(headers, &header::IF_MATCH)?;
    let if_none_match = one_header(headers, &header::IF_NONE_MATCH)?;
    match (if_match, if_none_match) {
        (None, None) => Ok(Condition::Always),
        (Some(_), Some(_)) => Err(bad_request(
            "send If-Match or If-None-Match, not both".to_owned(),
        )),
        (Some(tag), None) => version(tag).map(Condition::IfVersion),
        (None, Some("*")) => Ok(Condition::IfAbsent),
        (None, Some(other)) => Err(bad_request(format!(
            "If-None-Match: {other}: only If-None-Match: * (create only) is supported on writes"
        ))),
    }
}

/// The header's value, trimmed, if it is there once.
fn one_header<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<Option<&'h str>, Refusal> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(bad_request(format!("send one {name} header")));
    }
    value
        .to_str()
        .map(|text| Some(text.trim()))
        .map_err(|_| bad_request(format!("{name} is not ASCII text")))
}

/// The version of an `If-Match` tag: `"12"` or `12`.
fn version(tag: &str) -> Result<u64, Refusal> {
    if tag.starts_with("W/") {
        return Err(bad_request(format!(
            "If-Match: {tag}: a weak ETag cannot be used for a compare-and-swap"
        )));
    }
    let inner = tag
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or(tag);
    if !inner.is_empty()
        && inner.bytes().all(|b| b.is_ascii_digit())
        && let Ok(version) = inner.parse::<u64>()
    {
        return Ok(version);
    }
    Err(bad_request(format!(
        "If-Match: {tag}: expected one version, as the ETag of a read gives it (If-Match: \"12\")"
    )))
}

fn bad_request(message: String) -> Refusal {
    Refusal::new(StatusCode::BAD_REQUEST, message)
}

/// The response to a single write (`kind`) from its recorded answer, with the write headers:
/// a put 204, a delete 204 (with the `ETag` of the write if it removed a key), an incr 200 with
/// the new value, a refused incr 409, a failed condition 412.
pub(crate) fn write_response(kind: OpKind, applied: &Applied) -> Response<Full<Bytes>> {
    let index = applied.index.0;
    let response = match (kind, OpResult::decode(&applied.result)) {
        (_, Ok(OpResult::PreconditionFailed(version))) => precondition_failed(version),
        (OpKind::Put | OpKind::Delete, Ok(OpResult::Applied)) => {
            with_etag(empty(StatusCode::NO_CONTENT), index)
        }
        (OpKind::Delete, Ok(OpResult::Absent)) => empty(StatusCode::NO_CONTENT),
        (OpKind::Incr, Ok(OpResult::Incremented(value))) => {
            with_etag(text(StatusCode::OK, &value.to_string()), index)
        }
        (OpKind::Incr, Ok(OpResult::Refused(reason))) => text(StatusCode::CONFLICT, &reason),
        // A retry whose ids were first used for another command (a put, say): its stored
        // answer is not this command's.
        _ if applied.duplicate => different_command(),
        (_, Ok(other)) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("unexpected answer {other:?}"),
        ),
        (_, Err(reason)) => text(StatusCode::INTERNAL_SERVER_ERROR, &reason),
    };
    with_write_headers(response, applied)
}

/// 409: a retry whose ids were first used for a different command.
pub(crate) fn different_command() -> Response<Full<Bytes>> {
    text(
        StatusCode::CONFLICT,
        "these Client-Id/Request-Id were first used for a different command",
    )
}

/// 412 with the key's current version, if it exists.
fn precondition_failed(version: Option<u64>) -> Response<Full<Bytes>> {
    match version {
        Some(version) => with_etag(
            text(
                StatusCode::PRECONDITION_FAILED,
                &format!("precondition failed: the key is at version {version}"),
            ),
            version,
        ),
        None => text(
            StatusCode::PRECONDITION_FAILED,
            "precondition failed: no such key",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn parse(pairs: &[(HeaderName, &'static str)]) -> Result<Condition, StatusCode> {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(name.clone(), HeaderValue::from_static(value));
        }
        condition(&headers).map_err(|refusal| refusal.status)
    }

    #[test]
    fn conditions_come_from_quoted_or_bare_versions_and_a_star() {
        assert_eq!(parse(&[]), Ok(Condition::Always));
        assert_eq!(
            parse(&[(header::IF_MATCH, "\"12\"")]),
            Ok(Condition::IfVersion(12))
        );
        assert_eq!(
            parse(&[(header::IF_MATCH, " 12 ")]),
            Ok(Condition::IfVersion(12))
        );
        assert_eq!(
            parse(&[(header::IF_NONE_MATCH, "*")]),
            Ok(Condition::IfAbsent)
        );
    }

    #[test]
    fn weak_lists_stars_and_both_headers_are_bad_requests() {
        let bad = StatusCode::BAD_REQUEST;
        for tag in [
            "W/\"12\"",
            "*",
            "\"1\", \"2\"",
            "\"12",
            "x",
            "\"\"",
            "+3",
            "-1",
        ] {
            assert_eq!(parse(&[(header::IF_MATCH, tag)]), Err(bad), "{tag}");
        }
        assert_eq!(parse(&[(header::IF_NONE_MATCH, "\"3\"")]), Err(bad));
        assert_eq!(
            parse(&[(header::IF_MATCH, "1"), (header::IF_NONE_MATCH, "*")]),
            Err(bad)
        );
        assert_eq!(
            parse(&[(header::IF_MATCH, "1"), (header::IF_MATCH, "2")]),
            Err(bad)
        );
    }
}
