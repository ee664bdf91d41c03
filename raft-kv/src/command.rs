//! The key-value commands in the log (their answers are in [`crate::answer`]).
//!
//! ```text
//! command    0x01 key_len:u32 key value        put
//!            0x02 key                          delete
//!            0x03 key                          incr (add 1 to a decimal integer value)
//!            0x04 op                           one operation under a condition
//!            0x05 count:u32 op{count}          a batch: its operations in order, each on its own
//! op         kind:u8 condition key_len:u32 key [value_len:u32 value]   (the value: put only)
//! kind       0x01 put | 0x02 delete | 0x03 incr
//! condition  0x00                              none
//!            0x01 version:u64                  if-match: the key exists at this version
//!            0x02                              if-none-match: the key is absent
//! ```
//!
//! Unconditional single writes keep the first three forms, so logs written before conditions
//! and batches existed decode as they did (and nodes that predate them can still read those).

use bytes::{Buf, BufMut, Bytes, BytesMut};

const PUT: u8 = 0x01;
const DELETE: u8 = 0x02;
const INCR: u8 = 0x03;
const CONDITIONAL: u8 = 0x04;
const BATCH: u8 = 0x05;

const NO_CONDITION: u8 = 0x00;
const IF_VERSION: u8 = 0x01;
const IF_ABSENT: u8 = 0x02;

/// The smallest encoded operation (kind, condition, key length): bounds the capacity a decoder
/// reserves for a batch's count.
const MIN_OP_BYTES: usize = 6;

/// What an operation does to its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// Sets the key to the operation's value.
    Put,
    /// Removes the key (nothing if it is absent).
    Delete,
    /// Adds 1 to the decimal integer stored at the key (absent counts as 0).
    Incr,
}

impl OpKind {
    fn tag(self) -> u8 {
        match self {
            OpKind::Put => PUT,
            OpKind::Delete => DELETE,
            OpKind::Incr => INCR,
        }
    }
}

/// When an operation applies, decided by each replica as it applies the entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Condition {
    /// Always.
    #[default]
    Always,
    /// Only if the key exists and was last written at this log index (`If-Match`).
    IfVersion(u64),
    /// Only if the key is absent (`If-None-Match: *`).
    IfAbsent,
}

/// One operation: a key, what to do to it, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvOp {
    /// What it does.
    pub kind: OpKind,
    /// The key.
    pub key: Bytes,
    /// The value of a put (empty for the other kinds).
    pub value: Bytes,
    /// When it applies.
    pub condition: Condition,
}

impl KvOp {
    /// An operation on a copy of `key` (and of `value`, which only a put carries).
    ///
    /// ```
    /// use raft_kv::command::{Condition, KvCommand, KvOp, OpKind};
    ///
    /// let batch = KvCommand::Batch(vec![
    ///     KvOp::new(OpKind::Put, "a", "1", Condition::IfAbsent),
    ///     KvOp::new(OpKind::Incr, "n", "", Condition::Always),
    /// ]);
    /// assert_eq!(KvCommand::decode(&batch.encode()), Ok(batch));
    /// ```
    #[must_use]
    pub fn new(
        kind: OpKind,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        condition: Condition,
    ) -> KvOp {
        KvOp {
            kind,
            key: Bytes::copy_from_slice(key.as_ref()),
            value: Bytes::copy_from_slice(value.as_ref()),
            condition,
        }
    }
}

/// A command of the key-value state machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvCommand {
    /// Sets `key` to `value`.
    Put {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
    },
    /// Removes `key` (nothing if it is absent).
    Delete {
        /// The key.
        key: Bytes,
    },
    /// Adds 1 to the decimal integer stored at `key` (absent counts as 0) and answers the new
    /// value; a value that is not an integer is left alone and the answer says why.
    Incr {
        /// The key.
        key: Bytes,
    },
    /// One operation under a condition (an unconditional one is encoded as the forms above).
    Conditional(KvOp),
    /// Operations applied in order in one entry, each on its own (one failing or refused does
    /// not undo or stop the others).
    Batch(Vec<KvOp>),
}

impl KvCommand {
    /// The log payload.
    #[must_use]
    pub fn encode(&self) -> Bytes {
        match self {
            KvCommand::Put { key, value } => {
                let mut buf = BytesMut::with_capacity(5 + key.len() + value.len());
                buf.put_u8(PUT);
                put_len(&mut buf, key.len());
                buf.put_slice(key);
                buf.put_slice(value);
                buf.freeze()
            }
            KvCommand::Delete { key } => tagged(DELETE, key),
            KvCommand::Incr { key } => tagged(INCR, key),
            KvCommand::Conditional(op) => {
                let mut buf = BytesMut::with_capacity(1 + op_bytes(&op.key, &op.value));
                buf.put_u8(CONDITIONAL);
                encode_op(&mut buf, op.kind, &op.key, &op.value, op.condition);
                buf.freeze()
            }
            KvCommand::Batch(ops) => {
                let bytes = ops.iter().map(|op| op_bytes(&op.key, &op.value)).sum();
                let mut encoder = BatchEncoder::with_capacity(bytes);
                for op in ops {
                    encoder.push(op.kind, &op.key, &op.value, op.condition);
                }
                encoder.finish()
            }
        }
    }

    /// Reads a log payload (keys and values are slices of it).
    ///
    /// # Errors
    /// A message saying what is malformed.
    pub fn decode(payload: &Bytes) -> Result<KvCommand, String> {
        let mut buf = payload.clone();
        if !buf.has_remaining() {
            return Err("empty command".to_owned());
        }
        match buf.get_u8() {
            PUT => {
                let key = take_field(&mut buf, "put key")?;
                Ok(KvCommand::Put { key, value: buf })
            }
            DELETE => Ok(KvCommand::Delete { key: buf }),
            INCR => Ok(KvCommand::Incr { key: buf }),
            CONDITIONAL => {
                let op = decode_op(&mut buf)?;
                if buf.has_remaining() {
                    return Err(format!(
                        "{} bytes after a conditional operation",
                        buf.remaining()
                    ));
                }
                Ok(KvCommand::Conditional(op))
            }
            BATCH => {
                let ops = BatchOps::new(&payload[1..])?;
                let bound = payload.len() / MIN_OP_BYTES;
                let mut decoded = Vec::with_capacity((ops.announced() as usize).min(bound));
                for op in ops {
                    decoded.push(op?.to_kv_op(payload));
                }
                Ok(KvCommand::Batch(decoded))
            }
            tag => Err(format!("unknown command tag {tag:#04x}")),
        }
    }
}

/// Builds a batch command operation by operation, straight into its log payload (no
/// intermediate [`KvOp`]s).
#[derive(Debug)]
pub struct BatchEncoder {
    buf: BytesMut,
    count: u32,
}

impl BatchEncoder {
    /// An empty batch with room for `bytes` bytes of operations (see [`op_bytes`]).
    #[must_use]
    pub fn with_capacity(bytes: usize) -> BatchEncoder {
        let mut buf = BytesMut::with_capacity(5 + bytes);
        buf.put_u8(BATCH);
        buf.put_u32(0);
        BatchEncoder { buf, count: 0 }
    }

    /// Appends an operation (`value` is ignored unless `kind` is a put).
    pub fn push(&mut self, kind: OpKind, key: &[u8], value: &[u8], condition: Condition) {
        encode_op(&mut self.buf, kind, key, value, condition);
        self.count = self.count.saturating_add(1);
    }

    /// How many operations it holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether it holds none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The log payload.
    #[must_use]
    pub fn finish(mut self) -> Bytes {
        self.buf[1..5].copy_from_slice(&self.count.to_be_bytes());
        self.buf.freeze()
    }
}

/// The most bytes one operation with this key and value takes in a command.
#[must_use]
pub fn op_bytes(key: &[u8], value: &[u8]) -> usize {
    // kind, condition (tag and version), key length, value length.
    1 + 9 + 4 + 4 + key.len() + value.len()
}

fn encode_op(buf: &mut BytesMut, kind: OpKind, key: &[u8], value: &[u8], condition: Condition) {
    buf.put_u8(kind.tag());
    match condition {
        Condition::Always => buf.put_u8(NO_CONDITION),
        Condition::IfVersion(version) => {
            buf.put_u8(IF_VERSION);
            buf.put_u64(version);
        }
        Condition::IfAbsent => buf.put_u8(IF_ABSENT),
    }
    put_len(buf, key.len());
    buf.put_slice(key);
    if kind == OpKind::Put {
        put_len(buf, value.len());
        buf.put_slice(value);
    }
}

/// A length field. Keys and values are far below 4 GiB (the API's limits); a larger one would
/// be written as `u32::MAX` and refused alike by every replica's decoder.
fn put_len(buf: &mut BytesMut, len: usize) {
    buf.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
}

fn decode_op(buf: &mut Bytes) -> Result<KvOp, String> {
    let whole = buf.clone();
    let mut rest: &[u8] = &whole;
    let op = read_op(&mut rest)?;
    buf.advance(whole.len() - rest.len());
    Ok(op.to_kv_op(&whole))
}

/// A `len:u32` prefixed field.
fn take_field(buf: &mut Bytes, what: &str) -> Result<Bytes, String> {
    let whole = buf.clone();
    let mut rest: &[u8] = &whole;
    let field = take_slice(&mut rest, what)?;
    buf.advance(whole.len() - rest.len());
    Ok(whole.slice_ref(field))
}

/// One operation read in place from a command's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OpRef<'a> {
    /// What it does.
    pub(crate) kind: OpKind,
    /// When it applies.
    pub(crate) condition: Condition,
    /// The key.
    pub(crate) key: &'a [u8],
    /// A put's value (empty for the other kinds).
    pub(crate) value: &'a [u8],
}

impl OpRef<'_> {
    /// The operation with its key and value as slices of `payload`, which holds them.
    fn to_kv_op(self, payload: &Bytes) -> KvOp {
        KvOp {
            kind: self.kind,
            key: payload.slice_ref(self.key),
            value: payload.slice_ref(self.value),
            condition: self.condition,
        }
    }
}

/// The operations of a batch command, read in place and in order (no copy, no allocation). An
/// operation that does not decode, or bytes after the last, end it with an error.
#[derive(Clone, Debug)]
pub(crate) struct BatchOps<'a> {
    rest: &'a [u8],
    announced: u32,
    position: u32,
    finished: bool,
}

impl<'a> BatchOps<'a> {
    /// The operations of `payload` if it is a batch command; `None` for another command.
    ///
    /// # Errors
    /// A batch without its count.
    pub(crate) fn of(payload: &'a [u8]) -> Option<Result<BatchOps<'a>, String>> {
        match payload.split_first() {
            Some((&BATCH, rest)) => Some(BatchOps::new(rest)),
            _ => None,
        }
    }

    /// `count:u32 op{count}`: a batch command after its tag.
    fn new(mut rest: &'a [u8]) -> Result<BatchOps<'a>, String> {
        if rest.remaining() < 4 {
            return Err("batch without a count".to_owned());
        }
        let announced = rest.get_u32();
        Ok(BatchOps {
            rest,
            announced,
            position: 0,
            finished: false,
        })
    }

    /// How many operations the batch says it holds.
    pub(crate) fn announced(&self) -> u32 {
        self.announced
    }
}

impl<'a> Iterator for BatchOps<'a> {
    type Item = Result<OpRef<'a>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        if self.position == self.announced {
            self.finished = true;
            return (!self.rest.is_empty()).then(|| {
                Err(format!(
                    "{} bytes after a batch of {}",
                    self.rest.len(),
                    self.announced
                ))
            });
        }
        let position = self.position;
        self.position += 1;
        Some(read_op(&mut self.rest).map_err(|reason| {
            self.finished = true;
            format!("batch operation {position}: {reason}")
        }))
    }
}

fn read_op<'a>(buf: &mut &'a [u8]) -> Result<OpRef<'a>, String> {
    if buf.remaining() < 2 {
        return Err("an operation without its kind and condition".to_owned());
    }
    let kind = match buf.get_u8() {
        PUT => OpKind::Put,
        DELETE => OpKind::Delete,
        INCR => OpKind::Incr,
        tag => return Err(format!("unknown operation kind {tag:#04x}")),
    };
    let condition = match buf.get_u8() {
        NO_CONDITION => Condition::Always,
        IF_VERSION if buf.remaining() >= 8 => Condition::IfVersion(buf.get_u64()),
        IF_VERSION => return Err("if-match without its version".to_owned()),
        IF_ABSENT => Condition::IfAbsent,
        tag => return Err(format!("unknown condition {tag:#04x}")),
    };
    let key = take_slice(buf, "key")?;
    let value = if kind == OpKind::Put {
        take_slice(buf, "value")?
    } else {
        &[]
    };
    Ok(OpRef {
        kind,
        condition,
        key,
        value,
    })
}

/// A `len:u32` prefixed field, in place.
fn take_slice<'a>(buf: &mut &'a [u8], what: &str) -> Result<&'a [u8], String> {
    if buf.remaining() < 4 {
        return Err(format!("{what} without its length"));
    }
    let len = buf.get_u32() as usize;
    if buf.remaining() < len {
        return Err(format!(
            "a {len}-byte {what} with {} bytes left",
            buf.remaining()
        ));
    }
    let (field, rest) = buf.split_at(len);
    *buf = rest;
    Ok(field)
}

fn tagged(tag: u8, key: &Bytes) -> Bytes {
    let mut buf = BytesMut::with_capacity(1 + key.len());
    buf.put_u8(tag);
    buf.put_slice(key);
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip() {
        let cases = [
            KvCommand::Put {
                key: Bytes::from_static(b"k"),
                value: Bytes::from_static(b"v"),
            },
            KvCommand::Put {
                key: Bytes::new(),
                value: Bytes::new(),
            },
            KvCommand::Delete {
                key: Bytes::from_static(b"key/with/slashes"),
            },
            KvCommand::Incr {
                key: Bytes::from_static(b"counter"),
            },
            KvCommand::Conditional(KvOp::new(OpKind::Put, "a", "1", Condition::IfVersion(7))),
            KvCommand::Conditional(KvOp::new(OpKind::Delete, "a", "", Condition::IfAbsent)),
            KvCommand::Batch(vec![
                KvOp::new(OpKind::Put, "a", "text", Condition::Always),
                KvOp::new(OpKind::Delete, "b", "", Condition::IfVersion(u64::MAX)),
                KvOp::new(OpKind::Put, "c", "", Condition::IfAbsent),
                KvOp::new(OpKind::Incr, "", "", Condition::Always),
            ]),
            KvCommand::Batch(Vec::new()),
        ];
        for command in cases {
            assert_eq!(KvCommand::decode(&command.encode()), Ok(command));
        }
    }

    #[test]
    fn logs_written_before_conditions_decode_as_before() {
        // The bytes an older build wrote for a put, a delete and an incr.
        assert_eq!(
            KvCommand::decode(&Bytes::from_static(&[PUT, 0, 0, 0, 1, b'k', b'v', b'w'])),
            Ok(KvCommand::Put {
                key: Bytes::from_static(b"k"),
                value: Bytes::from_static(b"vw"),
            })
        );
        assert_eq!(
            KvCommand::decode(&Bytes::from_static(&[DELETE, b'k'])),
            Ok(KvCommand::Delete {
                key: Bytes::from_static(b"k")
            })
        );
        assert_eq!(
            KvCommand::decode(&Bytes::from_static(&[INCR, b'n'])),
            Ok(KvCommand::Incr {
                key: Bytes::from_static(b"n")
            })
        );
    }

    #[test]
    fn batch_encoder_matches_the_command_encoding() {
        let ops = vec![
            KvOp::new(OpKind::Put, "a", "1", Condition::Always),
            KvOp::new(OpKind::Incr, "n", "", Condition::IfVersion(3)),
        ];
        let mut encoder = BatchEncoder::with_capacity(0);
        for op in &ops {
            encoder.push(op.kind, &op.key, &op.value, op.condition);
        }
        assert_eq!(encoder.len(), 2);
        assert_eq!(encoder.finish(), KvCommand::Batch(ops).encode());
    }

    #[test]
    fn malformed_commands_are_refused() {
        assert!(KvCommand::decode(&Bytes::new()).is_err());
        assert!(KvCommand::decode(&Bytes::from_static(&[PUT, 0, 0])).is_err());
        assert!(KvCommand::decode(&Bytes::from_static(&[PUT, 0, 0, 0, 9, b'a'])).is_err());
        assert!(KvCommand::decode(&Bytes::from_static(&[0x44])).is_err());
        // A conditional op cut short, with an unknown kind or condition, or trailing bytes.
        assert!(KvCommand::decode(&Bytes::from_static(&[CONDITIONAL, PUT])).is_err());
        assert!(KvCommand::decode(&Bytes::from_static(&[CONDITIONAL, 9, 0, 0, 0, 0, 0])).is_err());
        assert!(
            KvCommand::decode(&Bytes::from_static(&[CONDITIONAL, DELETE, 7, 0, 0, 0, 0])).is_err()
        );
        assert!(KvCommand::decode(&Bytes::from_static(&[CONDITIONAL, DELETE, 1, 0, 0])).is_err());
        assert!(
            KvCommand::decode(&Bytes::from_static(&[
                CONDITIONAL,
                DELETE,
                0,
                0,
                0,
                0,
                0,
                1
            ]))
            .is_err()
        );
        // A batch announcing more operations than it holds, or holding more.
        assert!(KvCommand::decode(&Bytes::from_static(&[BATCH, 0, 0])).is_err());
        assert!(
            KvCommand::decode(&Bytes::from_static(&[
                BATCH, 255, 255, 255, 255, INCR, 0, 0, 0, 0, 0
            ]))
            .is_err()
        );
        assert!(
            KvCommand::decode(&Bytes::from_static(&[
                BATCH, 0, 0, 0, 0, INCR, 0, 0, 0, 0, 0
            ]))
            .is_err()
        );
    }
}
