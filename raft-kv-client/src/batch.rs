//! [`Batch`]: several writes in one log entry (`POST /kv`), applied in order, exactly once as a
//! whole, each with its own outcome ([`OpOutcome`]).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use hyper::HeaderMap;

use crate::answer::{duplicate, write_index};
use crate::error::Error;

/// The media type of a batch in the binary form, request and answer.
pub(crate) const BATCH_CONTENT_TYPE: &str = "application/x-raft-kv-batch";

/// The most operations the server takes in one batch (more: 413).
pub const MAX_BATCH_OPS: usize = 10_000;

/// Writes sent together: one request, one log entry, one exactly-once retry unit. It travels in
/// raft-kv's binary batch form (`Content-Type: application/x-raft-kv-batch`), which the server
/// proposes as it came. Build it by chaining:
///
/// ```
/// use raft_kv_client::Batch;
///
/// let batch = Batch::new()
///     .put("user/1", "ada")
///     .put_if_absent("user/2", "grace")
///     .delete_if("user/3", 12)
///     .incr("users");
/// assert_eq!(batch.len(), 4);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    ops: Vec<Op>,
}

/// One operation.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    Put {
        key: String,
        value: String,
        if_match: Option<u64>,
        if_none_match: bool,
    },
    Delete {
        key: String,
        if_match: Option<u64>,
    },
    Incr {
        key: String,
        if_match: Option<u64>,
    },
}

// The binary form (see raft-kv's `binary_batch` module): `0x05 count:u32 op{count}`, each op
// `kind:u8 condition key_len:u32 key [value_len:u32 value]`, big-endian.
const BATCH_TAG: u8 = 0x05;
const PUT: u8 = 0x01;
const DELETE: u8 = 0x02;
const INCR: u8 = 0x03;
const NO_CONDITION: u8 = 0x00;
const IF_VERSION: u8 = 0x01;
const IF_ABSENT: u8 = 0x02;
// The answer: `0x06 count:u32 result{count}`.
const ANSWER_TAG: u8 = 0x06;
const INCREMENTED: u8 = 0x00;
const REFUSED: u8 = 0x01;
const ABSENT: u8 = 0x02;
const FAILED_ABSENT: u8 = 0x03;
const FAILED_AT: u8 = 0x04;
const APPLIED: u8 = 0x05;

impl Op {
    fn encode(&self, buf: &mut BytesMut) {
        let (kind, key, value, if_match, if_none_match) = match self {
            Op::Put {
                key,
                value,
                if_match,
                if_none_match,
            } => (PUT, key, Some(value), if_match, *if_none_match),
            Op::Delete { key, if_match } => (DELETE, key, None, if_match, false),
            Op::Incr { key, if_match } => (INCR, key, None, if_match, false),
        };
        buf.put_u8(kind);
        match (if_match, if_none_match) {
            (Some(version), _) => {
                buf.put_u8(IF_VERSION);
                buf.put_u64(*version);
            }
            (None, true) => buf.put_u8(IF_ABSENT),
            (None, false) => buf.put_u8(NO_CONDITION),
        }
        for field in std::iter::once(key).chain(value) {
            // Far below 4 GiB in practice; a larger field is sent as a length the server
            // refuses.
            buf.put_u32(u32::try_from(field.len()).unwrap_or(u32::MAX));
            buf.put_slice(field.as_bytes());
        }
    }

    fn encoded_len(&self) -> usize {
        let fields = match self {
            Op::Put { key, value, .. } => 8 + key.len() + value.len(),
            Op::Delete { key, .. } | Op::Incr { key, .. } => 4 + key.len(),
        };
        2 + 8 + fields
    }
}

impl Batch {
    /// An empty batch (the server refuses to apply one: add operations first).
    #[must_use]
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Sets `key` to `value`.
    #[must_use]
    pub fn put(self, key: impl Into<String>, value: impl Into<String>) -> Batch {
        self.push(Op::Put {
            key: key.into(),
            value: value.into(),
            if_match: None,
            if_none_match: false,
        })
    }

    /// Sets `key` to `value` if the key's version is `version`.
    #[must_use]
    pub fn put_if(self, key: impl Into<String>, value: impl Into<String>, version: u64) -> Batch {
        self.push(Op::Put {
            key: key.into(),
            value: value.into(),
            if_match: Some(version),
            if_none_match: false,
        })
    }

    /// Creates `key` with `value` if it does not exist.
    #[must_use]
    pub fn put_if_absent(self, key: impl Into<String>, value: impl Into<String>) -> Batch {
        self.push(Op::Put {
            key: key.into(),
            value: value.into(),
            if_match: None,
            if_none_match: true,
        })
    }

    /// Removes `key`.
    #[must_use]
    pub fn delete(self, key: impl Into<String>) -> Batch {
        self.push(Op::Delete {
            key: key.into(),
            if_match: None,
        })
    }

    /// Removes `key` if its version is `version`.
    #[must_use]
    pub fn delete_if(self, key: impl Into<String>, version: u64) -> Batch {
        self.push(Op::Delete {
            key: key.into(),
            if_match: Some(version),
        })
    }

    /// Adds 1 to the integer at `key` (absent counts as 0).
    #[must_use]
    pub fn incr(self, key: impl Into<String>) -> Batch {
        self.push(Op::Incr {
            key: key.into(),
            if_match: None,
        })
    }

    /// Adds 1 to the integer at `key` if its version is `version`.
    #[must_use]
    pub fn incr_if(self, key: impl Into<String>, version: u64) -> Batch {
        self.push(Op::Incr {
            key: key.into(),
            if_match: Some(version),
        })
    }

    /// How many operations it holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether it holds none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    fn push(mut self, op: Op) -> Batch {
        self.ops.push(op);
        self
    }

    /// The request body, in the binary form.
    pub(crate) fn body(&self) -> Bytes {
        let mut buf =
            BytesMut::with_capacity(5 + self.ops.iter().map(Op::encoded_len).sum::<usize>());
        buf.put_u8(BATCH_TAG);
        buf.put_u32(u32::try_from(self.ops.len()).unwrap_or(u32::MAX));
        for op in &self.ops {
            op.encode(&mut buf);
        }
        buf.freeze()
    }

    /// Reads the server's answer to this batch: the binary results, the batch's index and
    /// whether it was a duplicate from the headers.
    pub(crate) fn outcome(&self, headers: &HeaderMap, body: &[u8]) -> Result<BatchOutcome, Error> {
        let index = write_index(headers)?;
        let malformed = |what: &str| Error::Protocol(format!("the batch answer {what}"));
        let mut buf = body;
        if buf.remaining() < 5 || buf.get_u8() != ANSWER_TAG {
            return Err(malformed("is not a binary batch answer"));
        }
        let count = buf.get_u32() as usize;
        if count != self.ops.len() {
            return Err(Error::Protocol(format!(
                "{count} results for {} operations",
                self.ops.len()
            )));
        }
        let mut results = Vec::with_capacity(count);
        for _ in 0..count {
            if !buf.has_remaining() {
                return Err(malformed("is cut short"));
            }
            let tag = buf.get_u8();
            let need = match tag {
                INCREMENTED | FAILED_AT => 8,
                REFUSED => 4,
                _ => 0,
            };
            if buf.remaining() < need {
                return Err(malformed("is cut short"));
            }
            results.push(match tag {
                APPLIED | ABSENT => OpOutcome::Applied {
                    version: index,
                    value: None,
                },
                INCREMENTED => OpOutcome::Applied {
                    version: index,
                    value: Some(buf.get_i64()),
                },
                FAILED_ABSENT => OpOutcome::PreconditionFailed { current: None },
                FAILED_AT => OpOutcome::PreconditionFailed {
                    current: Some(buf.get_u64()),
                },
                REFUSED => {
                    let len = buf.get_u32() as usize;
                    if buf.remaining() < len {
                        return Err(malformed("is cut short"));
                    }
                    let message = String::from_utf8_lossy(&buf[..len]).into_owned();
                    buf.advance(len);
                    OpOutcome::Refused {
                        status: 422,
                        message,
                    }
                }
                tag => return Err(malformed(&format!("has an unknown result {tag:#04x}"))),
            });
        }
        if buf.has_remaining() {
            return Err(malformed("has bytes after its results"));
        }
        Ok(BatchOutcome {
            index,
            duplicate: duplicate(headers),
            results,
        })
    }
}

/// What a batch did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchOutcome {
    /// The log index of the batch's entry.
    pub index: u64,
    /// Whether an earlier attempt had been applied already (answered from the server's
    /// record).
    pub duplicate: bool,
    /// One outcome per operation, in order.
    pub results: Vec<OpOutcome>,
}

impl BatchOutcome {
    /// Whether every operation was applied.
    #[must_use]
    pub fn all_applied(&self) -> bool {
        self.results
            .iter()
            .all(|r| matches!(r, OpOutcome::Applied { .. }))
    }
}

/// What one operation of a batch did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpOutcome {
    /// Applied: the key's new version (the batch's index), and an `incr`'s new value.
    Applied {
        /// The key's version after the operation: the batch's log index (for a delete, the
        /// index that removed the key, or did nothing to an absent one).
        version: u64,
        /// An `incr`'s new value.
        value: Option<i64>,
    },
    /// Not applied: the key's version was not the one expected (`current`: its version, if the
    /// key exists).
    PreconditionFailed {
        /// The key's current version.
        current: Option<u64>,
    },
    /// Not applied for another reason (an `incr` of a value that is not an integer, ...).
    Refused {
        /// The HTTP status the server gave it.
        status: u16,
        /// The server's message.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;
    use raft_kv::answer::{BatchAnswer, OpResult};
    use raft_kv::command::{Condition, KvCommand, KvOp, OpKind};

    #[test]
    fn a_batch_encodes_as_the_servers_batch_command() {
        let batch = Batch::new()
            .put("a", "text")
            .delete_if("b", 12)
            .put_if_absent("c", "x")
            .incr("n")
            .put_if("d", "y", 3)
            .incr_if("m", 4)
            .delete("e");
        let command = KvCommand::Batch(vec![
            KvOp::new(OpKind::Put, "a", "text", Condition::Always),
            KvOp::new(OpKind::Delete, "b", "", Condition::IfVersion(12)),
            KvOp::new(OpKind::Put, "c", "x", Condition::IfAbsent),
            KvOp::new(OpKind::Incr, "n", "", Condition::Always),
            KvOp::new(OpKind::Put, "d", "y", Condition::IfVersion(3)),
            KvOp::new(OpKind::Incr, "m", "", Condition::IfVersion(4)),
            KvOp::new(OpKind::Delete, "e", "", Condition::Always),
        ]);
        let body = batch.body();
        assert_eq!(body, command.encode());
        assert_eq!(
            body.len(),
            5 + batch.ops.iter().map(Op::encoded_len).sum::<usize>() - 8 * 4,
            "room for a version on every op, used by three"
        );
    }

    fn headers(index: &'static str, duplicate: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("raft-index", HeaderValue::from_static(index));
        headers.insert("raft-duplicate", HeaderValue::from_static(duplicate));
        headers
    }

    #[test]
    fn a_batch_answer_gives_one_outcome_per_operation() {
        let batch = Batch::new()
            .put("a", "1")
            .delete_if("b", 12)
            .incr("n")
            .incr("s")
            .delete("gone")
            .put_if_absent("c", "2");
        let mut answer = BatchAnswer::with_capacity(6);
        for result in [
            OpResult::Applied,
            OpResult::PreconditionFailed(Some(7)),
            OpResult::Incremented(5),
            OpResult::Refused("not an integer".to_owned()),
            OpResult::Absent,
            OpResult::PreconditionFailed(None),
        ] {
            answer.push(&result);
        }
        let answer = answer.finish();
        let outcome = batch.outcome(&headers("40", "true"), &answer).unwrap();
        assert_eq!(outcome.index, 40);
        assert!(outcome.duplicate && !outcome.all_applied());
        let applied = |value| OpOutcome::Applied { version: 40, value };
        assert_eq!(
            outcome.results,
            vec![
                applied(None),
                OpOutcome::PreconditionFailed { current: Some(7) },
                applied(Some(5)),
                OpOutcome::Refused {
                    status: 422,
                    message: "not an integer".to_owned()
                },
                applied(None),
                OpOutcome::PreconditionFailed { current: None },
            ]
        );
        let protocol =
            |result: Result<BatchOutcome, Error>| matches!(result, Err(Error::Protocol(_)));
        // Another count, no index, not an answer, cut short, or bytes after it.
        assert!(protocol(
            Batch::new()
                .put("a", "1")
                .outcome(&headers("40", "false"), &answer)
        ));
        assert!(protocol(batch.outcome(&HeaderMap::new(), &answer)));
        assert!(protocol(batch.outcome(&headers("40", "false"), b"<html>")));
        assert!(protocol(
            batch.outcome(&headers("40", "false"), &answer[..answer.len() - 3])
        ));
        let mut longer = answer.to_vec();
        longer.push(0);
        assert!(protocol(batch.outcome(&headers("40", "false"), &longer)));
    }
}
