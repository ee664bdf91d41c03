//! The answers the commit of a command ([`crate::command`]) produces: the bytes the session
//! layer records, so a retry gets the same answer.
//!
//! ```text
//! single   (empty)                 applied: a put, a delete of a present key (before
//!                                  conditions existed: any delete)
//!          0x00 value:i64          incr: the new value
//!          0x01 message            incr: refused (the value is not an integer)
//!          0x02                    delete: the key was absent, nothing changed
//!          0x03                    precondition failed: the key is absent
//!          0x04 version:u64        precondition failed: the key is at this version
//! batch    0x06 count:u32 result{count}
//! result   0x05 (applied) | 0x00 value:i64 | 0x01 len:u32 message | 0x02 | 0x03
//!          | 0x04 version:u64
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};

const INCREMENTED: u8 = 0x00;
const REFUSED: u8 = 0x01;
const ABSENT: u8 = 0x02;
const FAILED_ABSENT: u8 = 0x03;
const FAILED_AT: u8 = 0x04;
const APPLIED: u8 = 0x05;
const BATCH: u8 = 0x06;

/// The answer of one operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpResult {
    /// Applied: a put, or a delete that removed the key.
    Applied,
    /// A delete of an absent key: nothing changed.
    Absent,
    /// An incr: the new value.
    Incremented(i64),
    /// An incr not applied: the stored value is not an integer (or would overflow).
    Refused(String),
    /// Not applied: the condition does not hold. The key's version, if it exists.
    PreconditionFailed(Option<u64>),
}

impl OpResult {
    /// The commit result bytes of a single operation.
    #[must_use]
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        match self {
            OpResult::Applied => {}
            OpResult::Refused(message) => {
                buf.put_u8(REFUSED);
                buf.put_slice(message.as_bytes());
            }
            other => other.encode_into(&mut buf),
        }
        buf.freeze()
    }

    /// Reads the commit result of a single operation.
    ///
    /// # Errors
    /// A message if the bytes are not one (the answer of a batch, say).
    pub fn decode(bytes: &Bytes) -> Result<OpResult, String> {
        match bytes.first() {
            None => Ok(OpResult::Applied),
            Some(&REFUSED) => Ok(OpResult::Refused(
                String::from_utf8_lossy(&bytes[1..]).into_owned(),
            )),
            Some(&tag) if tag != APPLIED => {
                let mut buf = bytes.clone();
                let result = OpResult::decode_from(&mut buf)?;
                if buf.has_remaining() {
                    return Err(format!(
                        "{} bytes are not an operation's answer",
                        bytes.len()
                    ));
                }
                Ok(result)
            }
            Some(_) => Err(format!(
                "{} bytes are not an operation's answer",
                bytes.len()
            )),
        }
    }

    /// Appends its element encoding (a batch's `result`).
    fn encode_into(&self, buf: &mut BytesMut) {
        match self {
            OpResult::Applied => buf.put_u8(APPLIED),
            OpResult::Absent => buf.put_u8(ABSENT),
            OpResult::Incremented(value) => {
                buf.put_u8(INCREMENTED);
                buf.put_i64(*value);
            }
            OpResult::Refused(message) => {
                buf.put_u8(REFUSED);
                buf.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
                buf.put_slice(message.as_bytes());
            }
            OpResult::PreconditionFailed(None) => buf.put_u8(FAILED_ABSENT),
            OpResult::PreconditionFailed(Some(version)) => {
                buf.put_u8(FAILED_AT);
                buf.put_u64(*version);
            }
        }
    }

    /// Reads one element encoding.
    fn decode_from(buf: &mut Bytes) -> Result<OpResult, String> {
        if !buf.has_remaining() {
            return Err("a result is missing".to_owned());
        }
        let tag = buf.get_u8();
        let need = match tag {
            INCREMENTED | FAILED_AT => 8,
            REFUSED => 4,
            _ => 0,
        };
        if buf.remaining() < need {
            return Err(format!("result {tag:#04x} cut short"));
        }
        Ok(match tag {
            APPLIED => OpResult::Applied,
            ABSENT => OpResult::Absent,
            INCREMENTED => OpResult::Incremented(buf.get_i64()),
            REFUSED => {
                let len = buf.get_u32() as usize;
                if buf.remaining() < len {
                    return Err("a refusal's message cut short".to_owned());
                }
                let message = buf.split_to(len);
                OpResult::Refused(String::from_utf8_lossy(&message).into_owned())
            }
            FAILED_ABSENT => OpResult::PreconditionFailed(None),
            FAILED_AT => OpResult::PreconditionFailed(Some(buf.get_u64())),
            other => return Err(format!("unknown result tag {other:#04x}")),
        })
    }
}

/// Builds a batch's answer result by result.
#[derive(Debug)]
pub struct BatchAnswer {
    buf: BytesMut,
    count: u32,
}

impl BatchAnswer {
    /// An empty answer with room for `ops` one-byte results (applied puts and deletes); it
    /// grows for the others. Sized tight because the session layer keeps the answer (and so its
    /// allocation) for the client's retries.
    #[must_use]
    pub fn with_capacity(ops: usize) -> BatchAnswer {
        let mut buf = BytesMut::with_capacity(5 + ops);
        buf.put_u8(BATCH);
        buf.put_u32(0);
        BatchAnswer { buf, count: 0 }
    }

    /// Appends the next operation's result.
    pub fn push(&mut self, result: &OpResult) {
        result.encode_into(&mut self.buf);
        self.count = self.count.saturating_add(1);
    }

    /// The commit result bytes.
    #[must_use]
    pub fn finish(mut self) -> Bytes {
        self.buf[1..5].copy_from_slice(&self.count.to_be_bytes());
        self.buf.freeze()
    }

    /// Whether `bytes` look like a batch's commit result (its tag and count; the results are
    /// not read).
    #[must_use]
    pub fn is_batch(bytes: &[u8]) -> bool {
        bytes.len() >= 5 && bytes[0] == BATCH
    }

    /// Reads a batch's commit result: one result per operation, in order.
    ///
    /// # Errors
    /// A message if the bytes are not a batch's answer (a single operation's, say).
    pub fn decode(bytes: &Bytes) -> Result<Vec<OpResult>, String> {
        let mut buf = bytes.clone();
        if buf.remaining() < 5 || buf.get_u8() != BATCH {
            return Err(format!("{} bytes are not a batch's answer", bytes.len()));
        }
        let count = buf.get_u32() as usize;
        let mut results = Vec::with_capacity(count.min(buf.remaining()));
        for _ in 0..count {
            results.push(OpResult::decode_from(&mut buf)?);
        }
        if buf.has_remaining() {
            return Err(format!("{} bytes after a batch's answer", buf.remaining()));
        }
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<OpResult> {
        vec![
            OpResult::Applied,
            OpResult::Absent,
            OpResult::Incremented(-3),
            OpResult::Incremented(i64::MAX),
            OpResult::Refused("not an integer".to_owned()),
            OpResult::PreconditionFailed(None),
            OpResult::PreconditionFailed(Some(7)),
        ]
    }

    #[test]
    fn single_answers_round_trip() {
        for answer in all() {
            assert_eq!(OpResult::decode(&answer.encode()), Ok(answer));
        }
    }

    #[test]
    fn answers_recorded_before_conditions_decode_as_before() {
        // An older build answered a put or delete with nothing and an incr with 0x00/0x01.
        assert_eq!(OpResult::decode(&Bytes::new()), Ok(OpResult::Applied));
        let mut incr = vec![INCREMENTED];
        incr.extend_from_slice(&5i64.to_be_bytes());
        assert_eq!(
            OpResult::decode(&Bytes::from(incr)),
            Ok(OpResult::Incremented(5))
        );
        assert_eq!(
            OpResult::decode(&Bytes::from_static(b"\x01no")),
            Ok(OpResult::Refused("no".to_owned()))
        );
    }

    #[test]
    fn batch_answers_round_trip_and_are_told_apart_from_single_ones() {
        let mut answer = BatchAnswer::with_capacity(2);
        for result in all() {
            answer.push(&result);
        }
        let bytes = answer.finish();
        assert_eq!(BatchAnswer::decode(&bytes), Ok(all()));
        assert!(OpResult::decode(&bytes).is_err());
        assert!(BatchAnswer::decode(&Bytes::new()).is_err());
        assert!(BatchAnswer::decode(&OpResult::Incremented(1).encode()).is_err());
        assert!(BatchAnswer::decode(&bytes.slice(..bytes.len() - 1)).is_err());
        assert!(OpResult::decode(&Bytes::from_static(&[FAILED_AT, 0])).is_err());
        assert!(OpResult::decode(&Bytes::from_static(&[APPLIED])).is_err());
    }
}
