//! The batch route, `POST /kv`: many operations in one log entry.
//!
//! ```text
//! {"ops":[{"op":"put","key":"a","value":"text"},
//!         {"op":"delete","key":"b","if_match":12},
//!         {"op":"put","key":"c","value":"x","if_none_match":true},
//!         {"op":"incr","key":"n"}]}
//! ```
//!
//! The body is parsed straight into the command's encoding (no per-operation allocation but
//! for JSON strings with escapes). The operations apply in order, each on its own: one failing
//! its condition or refused does not undo or stop the others. The answer lists one result per
//! operation: `{"status":200,"version":N}` (N the batch's log index; `null` for a delete of an
//! absent key), an incr's also has `"value"`, `{"status":412,"version":V|null}` for a failed
//! condition (the key's version), `{"status":422,"error":"..."}` for a refused incr.

use std::borrow::Cow;
use std::fmt;
use std::io::Write as _;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use raft_wrapper::Applied;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::answer::{BatchAnswer, OpResult};
use crate::cas::different_command;
use crate::command::{BatchEncoder, Condition, OpKind};
use crate::reply::{Refusal, finish, text, with_write_headers};

/// The most operations one batch may hold (more: 413).
pub const MAX_BATCH_OPS: usize = 10_000;

/// The longest key, in bytes, on every route (longer: 413 in a batch, 414 in a path).
pub const MAX_KEY_BYTES: usize = 8 << 10;

/// Parses a batch body into its command's log payload.
///
/// # Errors
/// 400 for malformed JSON, an unknown field or operation, an empty key, a put without a value
/// (or another operation with one), both conditions on one operation, or no operations; 413 for more than [`MAX_BATCH_OPS`]
/// operations, a key over [`MAX_KEY_BYTES`] or a value over `max_value_bytes`.
pub(crate) fn parse(body: &[u8], max_value_bytes: usize) -> Result<Bytes, Refusal> {
    // The encoding is never longer than the JSON (see `command::op_bytes`): no reallocation.
    let mut encoder = BatchEncoder::with_capacity(body.len());
    let mut too_large = false;
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parsed = BodySeed {
        encoder: &mut encoder,
        too_large: &mut too_large,
        max_value_bytes,
    }
    .deserialize(&mut deserializer)
    .and_then(|()| deserializer.end());
    if let Err(error) = parsed {
        let status = if too_large {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        };
        return Err(Refusal::new(status, format!("invalid batch: {error}")));
    }
    if encoder.is_empty() {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "the batch has no operations",
        ));
    }
    Ok(encoder.finish())
}

/// The top-level object: `{"ops": [...]}`.
struct BodySeed<'e> {
    encoder: &'e mut BatchEncoder,
    too_large: &'e mut bool,
    max_value_bytes: usize,
}

impl<'de> DeserializeSeed<'de> for BodySeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for BodySeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object {\"ops\": [...]}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = false;
        while let Some(Text(field)) = map.next_key::<Text<'de>>()? {
            if field != "ops" {
                return Err(de::Error::unknown_field(&field, &["ops"]));
            }
            if seen {
                return Err(de::Error::duplicate_field("ops"));
            }
            seen = true;
            map.next_value_seed(OpsSeed {
                encoder: &mut *self.encoder,
                too_large: &mut *self.too_large,
                max_value_bytes: self.max_value_bytes,
            })?;
        }
        if !seen {
            return Err(de::Error::missing_field("ops"));
        }
        Ok(())
    }
}

/// The `ops` array, each operation checked and encoded as it is read.
struct OpsSeed<'e> {
    encoder: &'e mut BatchEncoder,
    too_large: &'e mut bool,
    max_value_bytes: usize,
}

impl<'de> DeserializeSeed<'de> for OpsSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for OpsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of operations")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(op) = seq.next_element::<OpJson<'de>>()? {
            let position = self.encoder.len();
            if position >= MAX_BATCH_OPS {
                *self.too_large = true;
                return Err(de::Error::custom(format_args!(
                    "more than {MAX_BATCH_OPS} operations"
                )));
            }
            if op.key.0.len() > MAX_KEY_BYTES {
                *self.too_large = true;
                return Err(de::Error::custom(format_args!(
                    "operation {position}: keys are limited to {MAX_KEY_BYTES} bytes"
                )));
            }
            let value = op.value.as_ref().map_or("", |Text(value)| value);
            if value.len() > self.max_value_bytes {
                *self.too_large = true;
                return Err(de::Error::custom(format_args!(
                    "operation {position}: values are limited to {} bytes",
                    self.max_value_bytes
                )));
            }
            let (kind, condition) = op.check().map_err(|reason| {
                de::Error::custom(format_args!("operation {position}: {reason}"))
            })?;
            self.encoder
                .push(kind, op.key.0.as_bytes(), value.as_bytes(), condition);
        }
        Ok(())
    }
}

/// One operation as sent.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpJson<'a> {
    op: OpName,
    #[serde(borrow)]
    key: Text<'a>,
    #[serde(borrow, default)]
    value: Option<Text<'a>>,
    #[serde(default)]
    if_match: Option<u64>,
    #[serde(default)]
    if_none_match: Option<bool>,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum OpName {
    Put,
    Delete,
    Incr,
}

impl OpJson<'_> {
    /// Its kind and condition, or what is wrong with it.
    fn check(&self) -> Result<(OpKind, Condition), &'static str> {
        let kind = match self.op {
            OpName::Put => OpKind::Put,
            OpName::Delete => OpKind::Delete,
            OpName::Incr => OpKind::Incr,
        };
        if self.key.0.is_empty() {
            // As on the single-key routes, whose paths cannot name it.
            return Err("the key is empty");
        }
        match (kind, &self.value) {
            (OpKind::Put, None) => return Err("a put needs a \"value\" (a string)"),
            (OpKind::Delete | OpKind::Incr, Some(_)) => {
                return Err("only a put takes a \"value\"");
            }
            _ => {}
        }
        let condition = match (self.if_match, self.if_none_match) {
            (Some(_), Some(true)) => return Err("give if_match or if_none_match, not both"),
            (Some(version), _) => Condition::IfVersion(version),
            (None, Some(true)) => Condition::IfAbsent,
            (None, Some(false) | None) => Condition::Always,
        };
        Ok((kind, condition))
    }
}

/// A JSON string, borrowed from the body unless it has escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Text<'a>, D::Error> {
        deserializer.deserialize_str(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Borrowed(text)))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(text.to_owned())))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(text)))
    }
}

/// The response to a batch from its recorded answer: 200 with one result per operation.
pub(crate) fn response(applied: &Applied) -> Response<Full<Bytes>> {
    let response = match BatchAnswer::decode(&applied.result) {
        Ok(results) => finish(
            Response::builder().header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            Bytes::from(render(applied, &results)),
        ),
        Err(_) if applied.duplicate => different_command(),
        Err(reason) => text(StatusCode::INTERNAL_SERVER_ERROR, &reason),
    };
    with_write_headers(response, applied)
}

/// `{"index":N,"duplicate":false,"results":[...]}`.
fn render(applied: &Applied, results: &[OpResult]) -> Vec<u8> {
    let index = applied.index.0;
    let mut out = Vec::with_capacity(64 + results.len() * 32);
    // Writes to a Vec do not fail.
    let _ = write!(
        out,
        "{{\"index\":{index},\"duplicate\":{},\"results\":[",
        applied.duplicate
    );
    for (position, result) in results.iter().enumerate() {
        if position > 0 {
            out.push(b',');
        }
        let _ = match result {
            OpResult::Applied => write!(out, "{{\"status\":200,\"version\":{index}}}"),
            OpResult::Absent => write!(out, "{{\"status\":200,\"version\":null}}"),
            OpResult::Incremented(value) => write!(
                out,
                "{{\"status\":200,\"version\":{index},\"value\":{value}}}"
            ),
            OpResult::PreconditionFailed(Some(version)) => {
                write!(out, "{{\"status\":412,\"version\":{version}}}")
            }
            OpResult::PreconditionFailed(None) => {
                write!(out, "{{\"status\":412,\"version\":null}}")
            }
            OpResult::Refused(reason) => {
                out.extend_from_slice(b"{\"status\":422,\"error\":");
                let _ = serde_json::to_writer(&mut out, reason);
                out.push(b'}');
                Ok(())
            }
        };
    }
    out.extend_from_slice(b"]}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{KvCommand, KvOp};
    use raft_core::LogIndex;

    fn ops(body: &str) -> Result<Vec<KvOp>, StatusCode> {
        let payload = parse(body.as_bytes(), 16).map_err(|refusal| refusal.status)?;
        match KvCommand::decode(&payload) {
            Ok(KvCommand::Batch(ops)) => Ok(ops),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn batches_parse_into_one_command_with_every_op() {
        let parsed = ops(
            r#"{"ops":[{"op":"put","key":"a","value":"te\"xt"},{"op":"delete","key":"b","if_match":12},
            {"op":"put","key":"c","value":"x","if_none_match":true},{"op":"incr","key":"n","if_none_match":false}]}"#,
        )
        .unwrap();
        let summary: Vec<(OpKind, &[u8], &[u8], Condition)> = parsed
            .iter()
            .map(|op| (op.kind, &op.key[..], &op.value[..], op.condition))
            .collect();
        assert_eq!(
            summary,
            vec![
                (OpKind::Put, &b"a"[..], &b"te\"xt"[..], Condition::Always),
                (OpKind::Delete, b"b", b"", Condition::IfVersion(12)),
                (OpKind::Put, b"c", b"x", Condition::IfAbsent),
                (OpKind::Incr, b"n", b"", Condition::Always),
            ]
        );
    }

    #[test]
    fn malformed_batches_are_bad_requests_and_oversized_ones_too_large() {
        let bad = Err(StatusCode::BAD_REQUEST);
        for body in [
            "",
            "{",
            "[]",
            "{}",
            r#"{"ops":[]}"#,
            r#"{"ops":[]} x"#,
            r#"{"ops":{}}"#,
            r#"{"ops":[],"extra":1}"#,
            r#"{"ops":[{"op":"put","key":"a"}]}"#,
            r#"{"ops":[{"op":"put","key":"a","value":1}]}"#,
            r#"{"ops":[{"op":"delete","key":"a","value":"v"}]}"#,
            r#"{"ops":[{"op":"swap","key":"a"}]}"#,
            r#"{"ops":[{"op":"incr","key":"a","if_match":1,"if_none_match":true}]}"#,
            r#"{"ops":[{"op":"incr","key":"a","if_match":-1}]}"#,
            r#"{"ops":[{"op":"incr","key":"a","iff_match":1}]}"#,
            r#"{"ops":[{"op":"incr","key":""}]}"#,
        ] {
            assert_eq!(ops(body).map(|_| ()), bad, "{body}");
        }
        let too_large = Err(StatusCode::PAYLOAD_TOO_LARGE);
        let long_key = format!(
            r#"{{"ops":[{{"op":"incr","key":"{}"}}]}}"#,
            "k".repeat(MAX_KEY_BYTES + 1)
        );
        assert_eq!(ops(&long_key).map(|_| ()), too_large);
        let longest_key = format!(
            r#"{{"ops":[{{"op":"incr","key":"{}"}}]}}"#,
            "k".repeat(MAX_KEY_BYTES)
        );
        assert!(ops(&longest_key).is_ok());
        let long = r#"{"ops":[{"op":"put","key":"a","value":"12345678901234567"}]}"#;
        assert_eq!(ops(long).map(|_| ()), too_large);
        let many = format!(
            "{{\"ops\":[{}]}}",
            vec![r#"{"op":"incr","key":"n"}"#; MAX_BATCH_OPS + 1].join(",")
        );
        assert_eq!(ops(&many).map(|_| ()), too_large);
        let most = format!(
            "{{\"ops\":[{}]}}",
            vec![r#"{"op":"incr","key":"n"}"#; MAX_BATCH_OPS].join(",")
        );
        assert_eq!(ops(&most).map(|ops| ops.len()), Ok(MAX_BATCH_OPS));
    }

    #[test]
    fn results_render_as_json_with_versions() {
        let applied = Applied {
            index: LogIndex(9),
            result: Bytes::new(),
            duplicate: true,
        };
        let results = [
            OpResult::Applied,
            OpResult::PreconditionFailed(Some(7)),
            OpResult::PreconditionFailed(None),
            OpResult::Incremented(5),
            OpResult::Refused("not \"integer\"".to_owned()),
            OpResult::Absent,
        ];
        let rendered: serde_json::Value =
            serde_json::from_slice(&render(&applied, &results)).unwrap();
        assert_eq!(
            rendered,
            serde_json::json!({"index": 9, "duplicate": true, "results": [
                {"status": 200, "version": 9},
                {"status": 412, "version": 7},
                {"status": 412, "version": null},
                {"status": 200, "version": 9, "value": 5},
                {"status": 422, "error": "not \"integer\""},
                {"status": 200, "version": null},
            ]})
        );
    }
}
