//! AppendEntries, the hot path, encoded and decoded by hand with rmp's low-level functions.
//!
//! The bytes are exactly those rmp-serde writes for raft-core's `AppendEntries` (the wire format
//! stays the serde shape of the message; the proptests compare both ways), but going through
//! serde cost a visible share of the `http` benchmark: per entry a visitor per field, a UTF-8
//! check of the variant name and a `Vec` grown one entry at a time. Here each entry is a few
//! marker reads, the variant name is compared as bytes and the entry vector is sized once.
//!
//! The shape, with structs as arrays and enum variants by name:
//! `[term, leader_id, seq, [prev_term, prev_index], [entry...], leader_commit]`, each entry
//! `[[term, index], payload]`, a payload either the string `"Blank"`, the map
//! `{"Command": bin}` or the map `{"Membership": [voters, outgoing, learners, addresses]}`
//! (voters and learners arrays of ids, outgoing `nil` or an array of ids, addresses a map from
//! id to string).
//!
//! Membership entries are rare (one per configuration change), so their value goes through
//! rmp-serde, not by hand: the bytes are then the serde shape by construction, and the owned
//! decoder and this one agree on every input, damaged ones included.

use std::io::Cursor;

use bytes::Bytes;
use raft_core::message::AppendEntries;
use raft_core::{Entry, LogId, LogIndex, Membership, NodeId, Payload, Term};
use rmp::Marker;
use serde::Deserialize;

use super::envelope::{DecodeError, EncodeError, share};

const BLANK: &[u8] = b"Blank";
const COMMAND: &[u8] = b"Command";
const MEMBERSHIP: &[u8] = b"Membership";

/// The fewest bytes an entry takes (`[[0, 0], "Blank"]`): bounds the vector sized from a length
/// the input declares.
const MIN_ENTRY_BYTES: usize = 10;

/// Writes the message (after the envelope) into `out`.
pub(super) fn write(out: &mut Vec<u8>, request: &AppendEntries) -> Result<(), EncodeError> {
    let failed = |e: rmp::encode::ValueWriteError| EncodeError(e.to_string());
    rmp::encode::write_array_len(out, 6).map_err(failed)?;
    rmp::encode::write_uint(out, request.term.0).map_err(failed)?;
    rmp::encode::write_uint(out, request.leader_id.0).map_err(failed)?;
    rmp::encode::write_uint(out, request.seq).map_err(failed)?;
    write_log_id(out, request.prev_log_id).map_err(failed)?;
    let count = u32::try_from(request.entries.len())
        .map_err(|_| EncodeError("more than 2^32 entries in one request".to_owned()))?;
    rmp::encode::write_array_len(out, count).map_err(failed)?;
    for entry in &request.entries {
        rmp::encode::write_array_len(out, 2).map_err(failed)?;
        write_log_id(out, entry.log_id).map_err(failed)?;
        match &entry.payload {
            Payload::Blank => write_name(out, BLANK).map_err(failed)?,
            Payload::Command(bytes) => {
                rmp::encode::write_map_len(out, 1).map_err(failed)?;
                write_name(out, COMMAND).map_err(failed)?;
                let len = u32::try_from(bytes.len())
                    .map_err(|_| EncodeError("a command over 4 GiB".to_owned()))?;
                rmp::encode::write_bin_len(out, len).map_err(failed)?;
                out.extend_from_slice(bytes);
            }
            Payload::Membership(membership) => {
                rmp::encode::write_map_len(out, 1).map_err(failed)?;
                write_name(out, MEMBERSHIP).map_err(failed)?;
                rmp_serde::encode::write(out, membership)
                    .map_err(|e| EncodeError(format!("a membership: {e}")))?;
            }
        }
    }
    rmp::encode::write_uint(out, request.leader_commit.0).map_err(failed)?;
    Ok(())
}

fn write_log_id(out: &mut Vec<u8>, log_id: LogId) -> Result<(), rmp::encode::ValueWriteError> {
    rmp::encode::write_array_len(out, 2)?;
    rmp::encode::write_uint(out, log_id.term.0)?;
    rmp::encode::write_uint(out, log_id.index.0)?;
    Ok(())
}

fn write_name(out: &mut Vec<u8>, name: &[u8]) -> Result<(), rmp::encode::ValueWriteError> {
    // The names are a few ASCII bytes: the length always fits.
    rmp::encode::write_str_len(out, name.len() as u32)?;
    out.extend_from_slice(name);
    Ok(())
}

/// Reads the message (after the envelope) from `message`, a part of `body`; every command is a
/// slice of `body`.
pub(super) fn read(body: &Bytes, message: &[u8]) -> Result<AppendEntries, DecodeError> {
    let mut reader = Reader {
        body,
        rest: message,
    };
    reader.array(6, "AppendEntries")?;
    let term = Term(reader.uint("term")?);
    let leader_id = NodeId(reader.uint("leader_id")?);
    let seq = reader.uint("seq")?;
    let prev_log_id = reader.log_id("prev_log_id")?;
    let count = reader.array_len("entries")?;
    let mut entries = Vec::with_capacity(count.min(reader.rest.len() / MIN_ENTRY_BYTES));
    for _ in 0..count {
        reader.array(2, "an entry")?;
        let log_id = reader.log_id("an entry's log id")?;
        let payload = reader.payload()?;
        entries.push(Entry { log_id, payload });
    }
    let leader_commit = LogIndex(reader.uint("leader_commit")?);
    Ok(AppendEntries {
        term,
        leader_id,
        seq,
        prev_log_id,
        entries,
        leader_commit,
    })
}

/// A cursor over the message; `rest` always lies inside `body`.
struct Reader<'a> {
    body: &'a Bytes,
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn malformed(what: &str, detail: impl std::fmt::Debug) -> DecodeError {
        DecodeError::Message(format!("{what}: {detail:?}"))
    }

    fn uint(&mut self, what: &str) -> Result<u64, DecodeError> {
        rmp::decode::read_int(&mut self.rest).map_err(|e| Self::malformed(what, e))
    }

    fn array_len(&mut self, what: &str) -> Result<usize, DecodeError> {
        let len =
            rmp::decode::read_array_len(&mut self.rest).map_err(|e| Self::malformed(what, e))?;
        usize::try_from(len).map_err(|e| Self::malformed(what, e))
    }

    fn array(&mut self, len: usize, what: &str) -> Result<(), DecodeError> {
        let found = self.array_len(what)?;
        if found != len {
            return Err(DecodeError::Message(format!(
                "{what}: an array of {found} items, expected {len}"
            )));
        }
        Ok(())
    }

    fn log_id(&mut self, what: &str) -> Result<LogId, DecodeError> {
        self.array(2, what)?;
        let term = self.uint(what)?;
        let index = self.uint(what)?;
        Ok(LogId::new(term, index))
    }

    /// `len` bytes taken from the front of `rest`.
    fn take(&mut self, len: u32, what: &str) -> Result<&'a [u8], DecodeError> {
        let len = usize::try_from(len).map_err(|e| Self::malformed(what, e))?;
        if len > self.rest.len() {
            return Err(DecodeError::Message(format!(
                "{what}: {len} bytes declared, {} left",
                self.rest.len()
            )));
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(taken)
    }

    /// A variant name (a string), as bytes: compared, never needed as text.
    fn name(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = rmp::decode::read_str_len(&mut self.rest)
            .map_err(|e| Self::malformed("a payload's variant", e))?;
        self.take(len, "a payload's variant")
    }

    fn payload(&mut self) -> Result<Payload, DecodeError> {
        let marker = self
            .rest
            .first()
            .map(|byte| Marker::from_u8(*byte))
            .ok_or_else(|| DecodeError::Message("a payload: the body ends".to_owned()))?;
        match marker {
            Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => {
                let name = self.name()?;
                if name == BLANK {
                    Ok(Payload::Blank)
                } else {
                    Err(unknown_variant(name))
                }
            }
            Marker::FixMap(1) => {
                self.rest = self.rest.get(1..).unwrap_or_default();
                let name = self.name()?;
                if name == COMMAND {
                    let len = rmp::decode::read_bin_len(&mut self.rest)
                        .map_err(|e| Self::malformed("a command", e))?;
                    let bytes = self.take(len, "a command")?;
                    Ok(Payload::Command(share(self.body, bytes)))
                } else if name == MEMBERSHIP {
                    self.membership().map(Payload::Membership)
                } else if name == BLANK {
                    // A unit variant in map form: `{"Blank": nil}`.
                    rmp::decode::read_nil(&mut self.rest)
                        .map_err(|e| Self::malformed("a blank payload", e))?;
                    Ok(Payload::Blank)
                } else {
                    Err(unknown_variant(name))
                }
            }
            other => Err(Self::malformed("a payload", other)),
        }
    }

    /// A membership, read by rmp-serde (the owned decoder's own code) from the front of `rest`.
    fn membership(&mut self) -> Result<Membership, DecodeError> {
        let mut decoder = rmp_serde::Deserializer::new(Cursor::new(self.rest));
        let membership = Membership::deserialize(&mut decoder)
            .map_err(|e| DecodeError::Message(format!("a membership: {e}")))?;
        let used = usize::try_from(decoder.position()).unwrap_or(usize::MAX);
        self.rest = self.rest.get(used..).ok_or_else(|| {
            DecodeError::Message("a membership: read past the end of the body".to_owned())
        })?;
        Ok(membership)
    }
}

fn unknown_variant(name: &[u8]) -> DecodeError {
    DecodeError::Message(format!(
        "unknown payload variant `{}`, expected `Blank`, `Command` or `Membership`",
        String::from_utf8_lossy(name)
    ))
}
