//! The binary form of the batch route: `POST /kv` with `Content-Type:
//! application/x-raft-kv-batch` (what raft-kv-client sends). The body is the batch's log
//! command itself, so the server checks it and proposes it as it came, and the answer is the
//! batch's recorded result, sent as it was recorded:
//!
//! ```text
//! request   0x05 count:u32 op{count}
//! op        kind:u8 condition key_len:u32 key [value_len:u32 value]    (the value: put only)
//! kind      0x01 put | 0x02 delete | 0x03 incr
//! condition 0x00 none | 0x01 version:u64 (if-match) | 0x02 (if-none-match)
//! answer    0x06 count:u32 result{count}                   (Raft-Index: the batch's version)
//! result    0x05 applied | 0x02 delete of an absent key | 0x00 value:i64 (incr applied)
//!           | 0x01 len:u32 message (refused, 422) | 0x03 precondition failed, key absent
//!           | 0x04 version:u64 (precondition failed, the key's version)
//! ```
//!
//! Integers are big-endian. Keys and values are any bytes (the JSON form carries text only).
//! The limits and the refusals are the JSON form's.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{HeaderMap, Response, StatusCode};
use raft_wrapper::Applied;

use crate::answer::BatchAnswer;
use crate::batch::{MAX_BATCH_OPS, MAX_KEY_BYTES};
use crate::cas::different_command;
use crate::command::BatchOps;
use crate::reply::{Refusal, finish, text, with_write_headers};

/// The media type of the binary form, request and answer.
pub const BATCH_CONTENT_TYPE: &str = "application/x-raft-kv-batch";

/// Whether a request's body is a binary batch.
pub(crate) fn is_binary(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes() == BATCH_CONTENT_TYPE.as_bytes())
}

/// Checks a binary batch body; the body is then the command's log payload, as it came.
///
/// # Errors
/// 400 for a body that is not a batch command, an operation that does not decode, an empty
/// key, or no operations; 413 for more than [`MAX_BATCH_OPS`] operations, a key over
/// [`MAX_KEY_BYTES`] or a value over `max_value_bytes`.
pub(crate) fn parse(body: Bytes, max_value_bytes: usize) -> Result<Bytes, Refusal> {
    let invalid = |reason: String| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("invalid binary batch: {reason}"),
        )
    };
    let too_large = |reason: String| {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("invalid binary batch: {reason}"),
        )
    };
    let ops = BatchOps::of(&body)
        .ok_or_else(|| invalid("it does not start with the batch tag 0x05".to_owned()))?
        .map_err(invalid)?;
    match ops.announced() as usize {
        0 => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "the batch has no operations",
            ));
        }
        count if count > MAX_BATCH_OPS => {
            return Err(too_large(format!("more than {MAX_BATCH_OPS} operations")));
        }
        _ => {}
    }
    for (position, op) in ops.enumerate() {
        let op = op.map_err(invalid)?;
        if op.key.is_empty() {
            return Err(invalid(format!("operation {position}: the key is empty")));
        }
        if op.key.len() > MAX_KEY_BYTES {
            return Err(too_large(format!(
                "operation {position}: keys are limited to {MAX_KEY_BYTES} bytes"
            )));
        }
        if op.value.len() > max_value_bytes {
            return Err(too_large(format!(
                "operation {position}: values are limited to {max_value_bytes} bytes"
            )));
        }
    }
    Ok(body)
}

/// The answer to a binary batch: its recorded result as it is, with the batch's index and
/// whether it was a duplicate in the write headers.
pub(crate) fn response(applied: &Applied) -> Response<Full<Bytes>> {
    let response = if BatchAnswer::is_batch(&applied.result) {
        finish(
            Response::builder().header(
                header::CONTENT_TYPE,
                HeaderValue::from_static(BATCH_CONTENT_TYPE),
            ),
            applied.result.clone(),
        )
    } else if applied.duplicate {
        different_command()
    } else {
        text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the batch's answer is not a batch's",
        )
    };
    with_write_headers(response, applied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Condition, KvCommand, KvOp, OpKind};

    fn status(body: Bytes) -> Result<Bytes, StatusCode> {
        parse(body, 16).map_err(|refusal| refusal.status)
    }

    #[test]
    fn a_valid_binary_batch_is_proposed_as_it_came() {
        let command = KvCommand::Batch(vec![
            KvOp::new(OpKind::Put, "a", "text", Condition::Always),
            KvOp::new(OpKind::Delete, "b", "", Condition::IfVersion(12)),
            KvOp::new(OpKind::Put, "\u{0}\u{ff}", "x", Condition::IfAbsent),
            KvOp::new(OpKind::Incr, "n", "", Condition::Always),
        ]);
        let body = command.encode();
        assert_eq!(status(body.clone()), Ok(body));
    }

    #[test]
    fn malformed_binary_batches_are_bad_requests_and_oversized_ones_too_large() {
        let bad = Err(StatusCode::BAD_REQUEST);
        let single = KvCommand::Put {
            key: Bytes::from_static(b"k"),
            value: Bytes::from_static(b"v"),
        };
        let empty_key = KvCommand::Batch(vec![KvOp::new(OpKind::Incr, "", "", Condition::Always)]);
        let mut trailing =
            KvCommand::Batch(vec![KvOp::new(OpKind::Incr, "n", "", Condition::Always)])
                .encode()
                .to_vec();
        trailing.push(0);
        for body in [
            Bytes::new(),
            Bytes::from_static(b"{\"ops\":[]}"),
            Bytes::from_static(&[0x05, 0, 0]),
            KvCommand::Batch(Vec::new()).encode(),
            Bytes::from_static(&[0x05, 0, 0, 0, 2, 0x03, 0, 0, 0, 0, 1, b'n']),
            Bytes::from_static(&[0x05, 0, 0, 0, 1, 0x09, 0, 0, 0, 0, 1, b'n']),
            Bytes::from(trailing),
            single.encode(),
            empty_key.encode(),
        ] {
            assert_eq!(status(body.clone()).map(|_| ()), bad, "{body:?}");
        }
        let too_large = Err(StatusCode::PAYLOAD_TOO_LARGE);
        let long_value = KvCommand::Batch(vec![KvOp::new(
            OpKind::Put,
            "k",
            "12345678901234567",
            Condition::Always,
        )]);
        assert_eq!(status(long_value.encode()).map(|_| ()), too_large);
        let long_key = "k".repeat(MAX_KEY_BYTES + 1);
        let long_key = KvCommand::Batch(vec![KvOp::new(
            OpKind::Incr,
            &long_key,
            "",
            Condition::Always,
        )]);
        assert_eq!(status(long_key.encode()).map(|_| ()), too_large);
        let many = KvCommand::Batch(vec![
            KvOp::new(OpKind::Incr, "n", "", Condition::Always);
            MAX_BATCH_OPS + 1
        ]);
        assert_eq!(status(many.encode()).map(|_| ()), too_large);
        let most = KvCommand::Batch(vec![
            KvOp::new(OpKind::Incr, "n", "", Condition::Always);
            MAX_BATCH_OPS
        ]);
        assert!(status(most.encode()).is_ok());
    }

    #[test]
    fn the_answer_is_the_recorded_result_with_the_write_headers() {
        let mut answer = BatchAnswer::with_capacity(1);
        answer.push(&crate::answer::OpResult::Incremented(5));
        let applied = Applied {
            index: raft_core::LogIndex(9),
            result: answer.finish(),
            duplicate: false,
        };
        let response = response(&applied);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            HeaderValue::from_static(BATCH_CONTENT_TYPE)
        );
        assert_eq!(response.headers()[crate::reply::INDEX_HEADER], "9");
        let duplicate_of_a_single = Applied {
            index: raft_core::LogIndex(9),
            result: Bytes::new(),
            duplicate: true,
        };
        assert_eq!(
            super::response(&duplicate_of_a_single).status(),
            StatusCode::CONFLICT
        );
    }
}
