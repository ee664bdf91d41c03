//! The on-disk record format of a log segment, and the scanner recovery is built on.
//!
//! A record is a 32-byte header followed by the payload, all integers little-endian:
//!
//! ```text
//!  0      2     3      4        8        16        24            28           32
//!  magic  kind  flags  len:u32  term:u64 index:u64 payload_crc   header_crc   payload (len)
//! ```
//!
//! `kind` says what the payload is: 0 a blank entry (no payload), 1 an application command (the
//! payload is its bytes), 2 a cluster membership (the payload is [`Membership::encode`]'s stable
//! binary form). `flags` is zero. A record whose header checksum holds but whose kind is unknown,
//! whose flags are set, whose size does not suit its kind, or whose membership does not decode was
//! written whole by something other than this version: it is corruption, never a torn tail and
//! never read as a blank entry.
//!
//! `payload_crc` is crc32c of the payload; `header_crc` is crc32c of bytes 0..28 (so it covers
//! the payload's checksum too, hence the whole record). Two checksums instead of one let the
//! scanner trust `len` before reading the payload, and find later records cheaply (magic plus
//! header checksum) when it must decide whether a bad record is a torn tail or corruption.
//!
//! Recovery rule: after a crash only the data written since the last fsync can be damaged, and
//! it is a suffix of the file. So a bad record after which no valid record exists anywhere in
//! the file is a torn tail (the file is cut there, losing only unsynced data); a bad record
//! followed by a valid one is corruption of synced data, which is refused, never skipped.
#![deny(clippy::indexing_slicing)]

use std::path::Path;

use bytes::{Buf, BufMut, Bytes};
use raft_core::{Entry, LogId, LogIndex, Membership, Payload, Term};

use crate::error::Error;

/// Bytes before a record's payload.
pub const HEADER_BYTES: usize = 32;
/// The largest payload a record holds (64 MiB); larger lengths are treated as damage.
pub const MAX_PAYLOAD_BYTES: usize = 64 << 20;

const MAGIC: u16 = 0x4652; // "RF" on disk
const KIND_BLANK: u8 = 0;
const KIND_COMMAND: u8 = 1;
const KIND_MEMBERSHIP: u8 = 2;

/// Appends the record for `entry` to `out`.
///
/// # Errors
/// [`Error::TooLarge`] for a payload over [`MAX_PAYLOAD_BYTES`].
pub fn encode(entry: &Entry, out: &mut Vec<u8>) -> Result<(), Error> {
    let encoded;
    let (kind, payload): (u8, &[u8]) = match &entry.payload {
        Payload::Blank => (KIND_BLANK, &[]),
        Payload::Command(bytes) => (KIND_COMMAND, bytes),
        Payload::Membership(membership) => {
            encoded = membership.to_bytes();
            (KIND_MEMBERSHIP, &encoded)
        }
    };
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(Error::TooLarge {
            index: entry.log_id.index.0,
            len: payload.len(),
            max: MAX_PAYLOAD_BYTES,
        });
    }
    let start = out.len();
    out.reserve(HEADER_BYTES + payload.len());
    out.put_u16_le(MAGIC);
    out.put_u8(kind);
    out.put_u8(0);
    out.put_u32_le(payload.len() as u32);
    out.put_u64_le(entry.log_id.term.0);
    out.put_u64_le(entry.log_id.index.0);
    out.put_u32_le(crc32c::crc32c(payload));
    let header_crc = crc32c::crc32c(out.get(start..).unwrap_or_default());
    out.put_u32_le(header_crc);
    out.put_slice(payload);
    Ok(())
}

/// The size of `entry`'s record.
#[must_use]
pub fn encoded_len(entry: &Entry) -> usize {
    HEADER_BYTES + usize::try_from(entry.payload.len()).unwrap_or(usize::MAX)
}

/// One decoded record and where it starts in the segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Byte offset of the record in the segment.
    pub offset: u64,
    /// The entry (its payload shares the scanned buffer).
    pub entry: Entry,
}

/// What follows the valid records of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tail {
    /// Nothing, or only zeros (preallocated space).
    Clean,
    /// A torn write from `offset` on: truncate the file there.
    Torn {
        /// Where the damage starts (the end of the valid prefix).
        offset: u64,
    },
}

/// The result of scanning a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scan {
    /// The valid records, in file order, with consecutive indexes.
    pub records: Vec<Record>,
    /// Bytes of valid records: where the next record is written.
    pub valid_len: u64,
    /// What follows them.
    pub tail: Tail,
}

/// A record header that passed its checksum (what it says is checked by [`Header::problem`]).
struct Header {
    kind: u8,
    flags: u8,
    len: usize,
    term: u64,
    index: u64,
    payload_crc: u32,
}

impl Header {
    /// What is wrong with a header whose checksum holds: this version never writes it, so it is
    /// corruption (a torn write cannot produce a matching header checksum).
    fn problem(&self) -> Option<String> {
        if self.flags != 0 {
            return Some(format!("unknown record flags {:#04x}", self.flags));
        }
        if self.len > MAX_PAYLOAD_BYTES {
            return Some(format!(
                "a payload of {} bytes, more than the {MAX_PAYLOAD_BYTES} a record holds",
                self.len
            ));
        }
        match self.kind {
            KIND_BLANK if self.len != 0 => Some(format!(
                "a blank entry with a payload of {} bytes",
                self.len
            )),
            KIND_MEMBERSHIP if self.len == 0 => {
                Some("a membership entry with an empty payload".to_owned())
            }
            KIND_BLANK | KIND_COMMAND | KIND_MEMBERSHIP => None,
            other => Some(format!("unknown record kind {other}")),
        }
    }

    /// The entry this header describes, its payload the `len` bytes of `data` at `start`
    /// (already checked against the payload checksum; a command shares `data`).
    fn entry(&self, data: &Bytes, start: usize) -> Result<Entry, String> {
        let end = start.saturating_add(self.len);
        let bytes = data
            .get(start..end)
            .ok_or_else(|| "record runs past the end of the data".to_owned())?;
        let payload = match self.kind {
            KIND_BLANK => Payload::Blank,
            KIND_COMMAND => Payload::Command(data.slice(start..end)),
            KIND_MEMBERSHIP => Payload::Membership(
                Membership::decode(bytes)
                    .map_err(|err| format!("a membership record does not decode: {err}"))?,
            ),
            other => return Err(format!("unknown record kind {other}")),
        };
        Ok(Entry {
            log_id: LogId {
                term: Term(self.term),
                index: LogIndex(self.index),
            },
            payload,
        })
    }
}

/// Decodes the header at the start of `bytes`, if one whose checksum holds is there.
fn header(bytes: &[u8]) -> Option<Header> {
    let raw = bytes.get(..HEADER_BYTES)?;
    let covered = raw.get(..HEADER_BYTES - 4)?;
    let mut buf = raw;
    if buf.get_u16_le() != MAGIC {
        return None;
    }
    let kind = buf.get_u8();
    let flags = buf.get_u8();
    let len = buf.get_u32_le() as usize;
    let term = buf.get_u64_le();
    let index = buf.get_u64_le();
    let payload_crc = buf.get_u32_le();
    let header_crc = buf.get_u32_le();
    (header_crc == crc32c::crc32c(covered)).then_some(Header {
        kind,
        flags,
        len,
        term,
        index,
        payload_crc,
    })
}

/// Whether a whole valid record (header and payload) of an entry at or after `min_index`
/// starts at `offset`.
fn valid_record_at(data: &[u8], offset: usize, min_index: u64) -> bool {
    let Some(rest) = data.get(offset..) else {
        return false;
    };
    let Some(header) = header(rest) else {
        return false;
    };
    header.index >= min_index
        && HEADER_BYTES
            .checked_add(header.len)
            .and_then(|end| rest.get(HEADER_BYTES..end))
            .is_some_and(|payload| crc32c::crc32c(payload) == header.payload_crc)
}

/// Where a valid record of an entry at or after `min_index` starts after the damage at
/// `offset` (so the damage is not a tail), searching from `from` on.
fn valid_record_after(data: &[u8], offset: usize, from: usize, min_index: u64) -> Option<usize> {
    let magic = MAGIC.to_le_bytes();
    let mut from = from.max(offset + 1);
    while let Some(rest) = data.get(from..) {
        let found = rest.windows(2).position(|w| w == magic)?;
        let at = from + found;
        if valid_record_at(data, at, min_index) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Scans a segment's bytes. `file` names it in errors.
///
/// # Errors
/// [`Error::Corrupt`] when a damaged record is followed by a valid one, when valid records
/// do not have consecutive indexes and non-decreasing terms, or when a record with a valid
/// checksum is not one this version writes (an unknown kind, a membership that does not decode).
pub fn scan(data: &Bytes, file: &Path) -> Result<Scan, Error> {
    let corrupt = |offset: usize, reason: String| Error::Corrupt {
        file: file.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    let mut records: Vec<Record> = Vec::new();
    let mut offset = 0;
    let tail = loop {
        let rest = data.get(offset..).unwrap_or_default();
        if rest.iter().all(|&byte| byte == 0) {
            break Tail::Clean;
        }
        // Where evidence of corruption may start: past the damaged record's own payload when
        // its header is intact (a torn payload may hold bytes that look like records: clients
        // choose payloads), and only records of later entries count.
        let mut search_from = offset + 1;
        let expected = records
            .last()
            .map_or(0, |r| r.entry.log_id.index.0.saturating_add(1));
        let damage = match header(rest) {
            None => "bad record header".to_owned(),
            Some(header) => {
                // Written whole (its checksum holds) yet not a record this version writes.
                if let Some(problem) = header.problem() {
                    return Err(corrupt(offset, problem));
                }
                let start = offset + HEADER_BYTES;
                let end = start + header.len;
                match data.get(start..end) {
                    Some(payload) if crc32c::crc32c(payload) == header.payload_crc => {
                        if let Some(previous) = records.last() {
                            let log_id = previous.entry.log_id;
                            if log_id.index.0.checked_add(1) != Some(header.index)
                                || header.term < log_id.term.0
                            {
                                return Err(corrupt(
                                    offset,
                                    format!(
                                        "entry {}-{} cannot follow {log_id}",
                                        header.term, header.index
                                    ),
                                ));
                            }
                        }
                        let entry = header
                            .entry(data, start)
                            .map_err(|reason| corrupt(offset, reason))?;
                        records.push(Record {
                            offset: offset as u64,
                            entry,
                        });
                        offset = end;
                        continue;
                    }
                    Some(_) => {
                        search_from = end;
                        "payload checksum mismatch".to_owned()
                    }
                    None => {
                        search_from = end;
                        "record runs past the end of the file".to_owned()
                    }
                }
            }
        };
        if let Some(next) = valid_record_after(data, offset, search_from, expected) {
            return Err(corrupt(
                offset,
                format!("{damage}, and a valid record follows at offset {next}"),
            ));
        }
        break Tail::Torn {
            offset: offset as u64,
        };
    };
    Ok(Scan {
        records,
        valid_len: offset as u64,
        tail,
    })
}

/// Decodes `data`, read from `file` at `base_offset`, as whole valid records of consecutive
/// entries starting at `first`: the strict decoder for reads of records known to be written.
///
/// # Errors
/// [`Error::Corrupt`] for any damaged, partial or unexpected record.
pub fn decode_exact(
    data: &Bytes,
    file: &Path,
    base_offset: u64,
    first: LogIndex,
) -> Result<Vec<Entry>, Error> {
    let mut entries = Vec::new();
    let mut offset = 0;
    while offset < data.len() {
        let corrupt = |reason: &str| Error::Corrupt {
            file: file.to_path_buf(),
            offset: base_offset + offset as u64,
            reason: reason.to_owned(),
        };
        let rest = data.get(offset..).unwrap_or_default();
        let header = header(rest).ok_or_else(|| corrupt("bad record header"))?;
        if let Some(problem) = header.problem() {
            return Err(corrupt(&problem));
        }
        let start = offset + HEADER_BYTES;
        let end = start + header.len;
        let payload = data
            .get(start..end)
            .ok_or_else(|| corrupt("record runs past the end of the read"))?;
        if crc32c::crc32c(payload) != header.payload_crc {
            return Err(corrupt("payload checksum mismatch"));
        }
        let expected = first.0 + entries.len() as u64;
        if header.index != expected {
            return Err(corrupt(&format!(
                "found entry {} where entry {expected} was written",
                header.index
            )));
        }
        entries.push(
            header
                .entry(data, start)
                .map_err(|reason| corrupt(&reason))?,
        );
        offset = end;
    }
    Ok(entries)
}

#[cfg(test)]
mod tests;
