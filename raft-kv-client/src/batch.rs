//! [`Batch`]: several writes in one log entry (`POST /kv`), applied in order, exactly once as a
//! whole, each with its own outcome ([`OpOutcome`]).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The most operations the server takes in one batch (more: 413).
pub const MAX_BATCH_OPS: usize = 10_000;

/// Writes sent together: one request, one log entry, one exactly-once retry unit. Keys and
/// values are text (they travel in JSON). Build it by chaining:
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

/// One operation, as the server reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Op {
    Put {
        key: String,
        value: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        if_match: Option<u64>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        if_none_match: bool,
    },
    Delete {
        key: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        if_match: Option<u64>,
    },
    Incr {
        key: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        if_match: Option<u64>,
    },
}

/// The request body.
#[derive(Serialize)]
struct Body<'a> {
    ops: &'a [Op],
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

    /// The JSON request body.
    pub(crate) fn body(&self) -> Result<Bytes, Error> {
        serde_json::to_vec(&Body { ops: &self.ops })
            .map(Bytes::from)
            .map_err(|e| Error::Protocol(format!("cannot encode the batch: {e}")))
    }

    /// Reads the server's answer to this batch.
    pub(crate) fn outcome(&self, body: &[u8]) -> Result<BatchOutcome, Error> {
        let answer: Answer = serde_json::from_slice(body).map_err(|e| {
            Error::Protocol(format!("the batch answer is not the expected JSON: {e}"))
        })?;
        if answer.results.len() != self.ops.len() {
            return Err(Error::Protocol(format!(
                "{} results for {} operations",
                answer.results.len(),
                self.ops.len()
            )));
        }
        let results = answer
            .results
            .into_iter()
            .map(|result| match result.status {
                200..=299 => OpOutcome::Applied {
                    version: result.version.unwrap_or(answer.index),
                    value: result.value,
                },
                412 => OpOutcome::PreconditionFailed {
                    current: result.version,
                },
                status => OpOutcome::Refused {
                    status,
                    message: result.error.unwrap_or_default(),
                },
            })
            .collect();
        Ok(BatchOutcome {
            index: answer.index,
            duplicate: answer.duplicate,
            results,
        })
    }
}

/// The answer's document.
#[derive(Deserialize)]
struct Answer {
    index: u64,
    #[serde(default)]
    duplicate: bool,
    results: Vec<RawResult>,
}

#[derive(Deserialize)]
struct RawResult {
    status: u16,
    version: Option<u64>,
    value: Option<i64>,
    error: Option<String>,
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

    #[test]
    fn a_batch_encodes_as_the_servers_json() {
        let batch = Batch::new()
            .put("a", "text")
            .delete_if("b", 12)
            .put_if_absent("c", "x")
            .incr("n")
            .put_if("d", "y", 3)
            .incr_if("m", 4)
            .delete("e");
        let json: serde_json::Value = serde_json::from_slice(&batch.body().unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"ops": [
                {"op": "put", "key": "a", "value": "text"},
                {"op": "delete", "key": "b", "if_match": 12},
                {"op": "put", "key": "c", "value": "x", "if_none_match": true},
                {"op": "incr", "key": "n"},
                {"op": "put", "key": "d", "value": "y", "if_match": 3},
                {"op": "incr", "key": "m", "if_match": 4},
                {"op": "delete", "key": "e"},
            ]})
        );
    }

    #[test]
    fn a_batch_answer_gives_one_outcome_per_operation() {
        let batch = Batch::new()
            .put("a", "1")
            .delete_if("b", 12)
            .incr("n")
            .incr("s");
        let answer = br#"{"index":40,"duplicate":false,"results":[{"status":200,"version":40},{"status":412,"version":7},{"status":200,"version":40,"value":5},{"status":422,"error":"not an integer"}]}"#;
        let outcome = batch.outcome(answer).unwrap();
        assert_eq!(outcome.index, 40);
        assert!(!outcome.duplicate && !outcome.all_applied());
        assert_eq!(
            outcome.results,
            vec![
                OpOutcome::Applied {
                    version: 40,
                    value: None
                },
                OpOutcome::PreconditionFailed { current: Some(7) },
                OpOutcome::Applied {
                    version: 40,
                    value: Some(5)
                },
                OpOutcome::Refused {
                    status: 422,
                    message: "not an integer".to_owned()
                },
            ]
        );
        assert!(matches!(
            Batch::new().put("a", "1").outcome(answer),
            Err(Error::Protocol(_))
        ));
        assert!(matches!(batch.outcome(b"<html>"), Err(Error::Protocol(_))));
    }
}
