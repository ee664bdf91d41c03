//! The wire format of the wrapper: what a log entry carries ([`Envelope`]) and what its commit
//! answers the proposer ([`Outcome`]).
//!
//! Both are a tag byte followed by big-endian fixed fields and, last, the opaque bytes (command
//! or result), which decoding slices out of the buffer without copying.
//!
//! ```text
//! envelope  0x01 client:u64 request:u64 command...   a session request
//!           0x02 command...                          a command without a session (no dedup)
//!           0x03 client:u64                          forget the client's session
//! outcome   0x10 result...                           applied now
//!           0x11 index:u64 result...                 a retry: applied before, at `index`
//!           0x12 latest:u64                          older than the latest applied, result gone
//!           0x13                                     the client's session was cleared
//!           0x14 reason...                           the entry was not a wrapper envelope
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};
use raft_core::LogIndex;

use crate::session::{ClientId, RequestId};

const REQUEST: u8 = 0x01;
const PLAIN: u8 = 0x02;
const CLEAR: u8 = 0x03;

const APPLIED: u8 = 0x10;
const DUPLICATE: u8 = 0x11;
const STALE: u8 = 0x12;
const CLEARED: u8 = 0x13;
const MALFORMED: u8 = 0x14;
const NOT_KEPT: u8 = 0x15;

/// What one log entry written by the wrapper carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Envelope {
    /// A command of a client session, applied at most once per (client, request).
    Request {
        client: ClientId,
        request: RequestId,
        command: Bytes,
    },
    /// A command applied every time it commits.
    Plain(Bytes),
    /// Forget the client's session.
    Clear(ClientId),
}

impl Envelope {
    /// The entry payload (one copy of the command).
    pub(crate) fn encode(&self) -> Bytes {
        match self {
            Envelope::Request {
                client,
                request,
                command,
            } => {
                let mut buf = BytesMut::with_capacity(17 + command.len());
                buf.put_u8(REQUEST);
                buf.put_u64(client.0);
                buf.put_u64(request.0);
                buf.put_slice(command);
                buf.freeze()
            }
            Envelope::Plain(command) => {
                let mut buf = BytesMut::with_capacity(1 + command.len());
                buf.put_u8(PLAIN);
                buf.put_slice(command);
                buf.freeze()
            }
            Envelope::Clear(client) => {
                let mut buf = BytesMut::with_capacity(9);
                buf.put_u8(CLEAR);
                buf.put_u64(client.0);
                buf.freeze()
            }
        }
    }

    /// Reads an entry payload; the command is a slice of `payload`.
    pub(crate) fn decode(payload: &Bytes) -> Result<Envelope, String> {
        let mut buf = payload.clone();
        if !buf.has_remaining() {
            return Err("empty payload".to_owned());
        }
        match buf.get_u8() {
            REQUEST => {
                if buf.remaining() < 16 {
                    return Err(format!(
                        "a session request needs 16 bytes of ids, has {}",
                        buf.remaining()
                    ));
                }
                let client = ClientId(buf.get_u64());
                let request = RequestId(buf.get_u64());
                Ok(Envelope::Request {
                    client,
                    request,
                    command: buf,
                })
            }
            PLAIN => Ok(Envelope::Plain(buf)),
            CLEAR if buf.remaining() == 8 => Ok(Envelope::Clear(ClientId(buf.get_u64()))),
            CLEAR => Err(format!(
                "a clear-client entry has 8 bytes after its tag, not {}",
                buf.remaining()
            )),
            tag => Err(format!("unknown envelope tag {tag:#04x}")),
        }
    }
}

/// What the commit of one wrapper entry answers its proposer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The command was applied now, with this result.
    Applied(Bytes),
    /// A retry: the command was applied before, at `index`, with this result.
    Duplicate { index: LogIndex, result: Bytes },
    /// Older than the client's latest applied request, and its result is no longer kept.
    Stale { latest: RequestId },
    /// A retry: the command was applied before, at `index`, and its result was too large to
    /// keep.
    NotKept { index: LogIndex },
    /// The client's session was forgotten.
    Cleared,
    /// The entry was not a wrapper envelope.
    Malformed(String),
}

impl Outcome {
    /// The commit result bytes. An empty `Applied` result costs no allocation.
    pub(crate) fn encode(&self) -> Bytes {
        match self {
            Outcome::Applied(result) if result.is_empty() => Bytes::from_static(&[APPLIED]),
            Outcome::Applied(result) => {
                let mut buf = BytesMut::with_capacity(1 + result.len());
                buf.put_u8(APPLIED);
                buf.put_slice(result);
                buf.freeze()
            }
            Outcome::Duplicate { index, result } => {
                let mut buf = BytesMut::with_capacity(9 + result.len());
                buf.put_u8(DUPLICATE);
                buf.put_u64(index.0);
                buf.put_slice(result);
                buf.freeze()
            }
            Outcome::Stale { latest } => {
                let mut buf = BytesMut::with_capacity(9);
                buf.put_u8(STALE);
                buf.put_u64(latest.0);
                buf.freeze()
            }
            Outcome::NotKept { index } => {
                let mut buf = BytesMut::with_capacity(9);
                buf.put_u8(NOT_KEPT);
                buf.put_u64(index.0);
                buf.freeze()
            }
            Outcome::Cleared => Bytes::from_static(&[CLEARED]),
            Outcome::Malformed(reason) => {
                let mut buf = BytesMut::with_capacity(1 + reason.len());
                buf.put_u8(MALFORMED);
                buf.put_slice(reason.as_bytes());
                buf.freeze()
            }
        }
    }

    /// Reads a commit result; the result is a slice of `bytes`.
    pub(crate) fn decode(bytes: &Bytes) -> Result<Outcome, String> {
        let mut buf = bytes.clone();
        if !buf.has_remaining() {
            return Err("empty commit result (was the entry written by raft-wrapper?)".to_owned());
        }
        match buf.get_u8() {
            APPLIED => Ok(Outcome::Applied(buf)),
            DUPLICATE if buf.remaining() >= 8 => {
                let index = LogIndex(buf.get_u64());
                Ok(Outcome::Duplicate { index, result: buf })
            }
            STALE if buf.remaining() == 8 => Ok(Outcome::Stale {
                latest: RequestId(buf.get_u64()),
            }),
            NOT_KEPT if buf.remaining() == 8 => Ok(Outcome::NotKept {
                index: LogIndex(buf.get_u64()),
            }),
            CLEARED if !buf.has_remaining() => Ok(Outcome::Cleared),
            MALFORMED => Ok(Outcome::Malformed(
                String::from_utf8_lossy(&buf).into_owned(),
            )),
            tag => Err(format!(
                "commit result with tag {tag:#04x} and {} more bytes is not a raft-wrapper outcome",
                buf.remaining()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn envelopes_round_trip() {
        let cases = [
            Envelope::Request {
                client: ClientId(7),
                request: RequestId(u64::MAX),
                command: Bytes::from_static(b"incr"),
            },
            Envelope::Request {
                client: ClientId(0),
                request: RequestId(1),
                command: Bytes::new(),
            },
            Envelope::Plain(Bytes::from_static(b"put x 1")),
            Envelope::Plain(Bytes::new()),
            Envelope::Clear(ClientId(42)),
        ];
        for envelope in cases {
            assert_eq!(Envelope::decode(&envelope.encode()), Ok(envelope));
        }
    }

    #[test]
    fn outcomes_round_trip() {
        let cases = [
            Outcome::Applied(Bytes::new()),
            Outcome::Applied(Bytes::from_static(b"41")),
            Outcome::Duplicate {
                index: LogIndex(9),
                result: Bytes::from_static(b"x"),
            },
            Outcome::Stale {
                latest: RequestId(3),
            },
            Outcome::NotKept {
                index: LogIndex(11),
            },
            Outcome::Cleared,
            Outcome::Malformed("unknown envelope tag 0x7f".to_owned()),
        ];
        for outcome in cases {
            assert_eq!(Outcome::decode(&outcome.encode()), Ok(outcome));
        }
    }

    #[test]
    fn decoding_a_command_does_not_copy_it() {
        let payload = Envelope::Plain(Bytes::from(vec![5u8; 64])).encode();
        let Ok(Envelope::Plain(command)) = Envelope::decode(&payload) else {
            panic!("a plain envelope");
        };
        assert_eq!(command.as_ptr(), payload[1..].as_ptr());
    }

    #[test]
    fn short_and_unknown_envelopes_are_refused_with_a_reason() {
        assert!(Envelope::decode(&Bytes::new()).is_err());
        assert!(Envelope::decode(&Bytes::from_static(&[REQUEST, 0, 0, 0])).is_err());
        assert!(Envelope::decode(&Bytes::from_static(&[CLEAR, 1])).is_err());
        let unknown = Envelope::decode(&Bytes::from_static(&[0x7f, 1, 2]));
        assert_eq!(unknown, Err("unknown envelope tag 0x7f".to_owned()));
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let bytes = Bytes::from(bytes);
            let _ = Envelope::decode(&bytes);
            let _ = Outcome::decode(&bytes);
        }
    }
}
