//! The key-value commands in the log, and the answers their commit produces.
//!
//! ```text
//! command  0x01 key_len:u32 key value     put
//!          0x02 key                       delete
//!          0x03 key                       incr (add 1 to a decimal integer value)
//! answer   (put, delete)                  empty
//!          0x00 value:i64                 incr: the new value
//!          0x01 message                   incr: refused (the value is not an integer)
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};

const PUT: u8 = 0x01;
const DELETE: u8 = 0x02;
const INCR: u8 = 0x03;

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
}

impl KvCommand {
    /// The log payload.
    #[must_use]
    pub fn encode(&self) -> Bytes {
        match self {
            KvCommand::Put { key, value } => {
                let mut buf = BytesMut::with_capacity(5 + key.len() + value.len());
                buf.put_u8(PUT);
                buf.put_u32(u32::try_from(key.len()).unwrap_or(u32::MAX));
                buf.put_slice(key);
                buf.put_slice(value);
                buf.freeze()
            }
            KvCommand::Delete { key } => tagged(DELETE, key),
            KvCommand::Incr { key } => tagged(INCR, key),
        }
    }

    /// Reads a log payload (key and value are slices of it).
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
                if buf.remaining() < 4 {
                    return Err("put without a key length".to_owned());
                }
                let len = buf.get_u32() as usize;
                if buf.remaining() < len {
                    return Err(format!(
                        "put with a {len}-byte key and {} bytes left",
                        buf.remaining()
                    ));
                }
                let key = buf.split_to(len);
                Ok(KvCommand::Put { key, value: buf })
            }
            DELETE => Ok(KvCommand::Delete { key: buf }),
            INCR => Ok(KvCommand::Incr { key: buf }),
            tag => Err(format!("unknown command tag {tag:#04x}")),
        }
    }
}

fn tagged(tag: u8, key: &Bytes) -> Bytes {
    let mut buf = BytesMut::with_capacity(1 + key.len());
    buf.put_u8(tag);
    buf.put_slice(key);
    buf.freeze()
}

/// The answer of an `incr`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IncrAnswer {
    /// The new value.
    Value(i64),
    /// Not applied: the stored value is not an integer (or would overflow).
    Refused(String),
}

impl IncrAnswer {
    /// The commit result bytes.
    #[must_use]
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        match self {
            IncrAnswer::Value(value) => {
                buf.put_u8(0);
                buf.put_i64(*value);
            }
            IncrAnswer::Refused(message) => {
                buf.put_u8(1);
                buf.put_slice(message.as_bytes());
            }
        }
        buf.freeze()
    }

    /// Reads a commit result.
    ///
    /// # Errors
    /// A message if the bytes are not an incr answer.
    pub fn decode(bytes: &Bytes) -> Result<IncrAnswer, String> {
        let mut buf = bytes.clone();
        match buf.first() {
            Some(0) if buf.len() == 9 => {
                buf.advance(1);
                Ok(IncrAnswer::Value(buf.get_i64()))
            }
            Some(1) => Ok(IncrAnswer::Refused(
                String::from_utf8_lossy(&buf[1..]).into_owned(),
            )),
            _ => Err(format!("{} bytes are not an incr answer", bytes.len())),
        }
    }
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
        ];
        for command in cases {
            assert_eq!(KvCommand::decode(&command.encode()), Ok(command));
        }
    }

    #[test]
    fn malformed_commands_are_refused() {
        assert!(KvCommand::decode(&Bytes::new()).is_err());
        assert!(KvCommand::decode(&Bytes::from_static(&[PUT, 0, 0])).is_err());
        assert!(KvCommand::decode(&Bytes::from_static(&[PUT, 0, 0, 0, 9, b'a'])).is_err());
        assert!(KvCommand::decode(&Bytes::from_static(&[0x44])).is_err());
    }

    #[test]
    fn incr_answers_round_trip() {
        for answer in [
            IncrAnswer::Value(-3),
            IncrAnswer::Value(i64::MAX),
            IncrAnswer::Refused("not an integer".to_owned()),
        ] {
            assert_eq!(IncrAnswer::decode(&answer.encode()), Ok(answer));
        }
        assert!(IncrAnswer::decode(&Bytes::new()).is_err());
    }
}
